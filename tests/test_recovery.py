"""The repair the research methods share: it stops when validation accuracy is back, not on a clock."""

from __future__ import annotations

import copy

import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models.resnet import BasicBlock, ResNet

from methods.recovery import accuracy, frozen_copy, recovery_targets, repair_until_recovered

NUM_CLASSES = 3


def tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=NUM_CLASSES).eval()


def loader(size: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(size, 3, 32, 32, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (size,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=False)


def repair(net, target: float, max_epochs: float = 2.0, masks=None, retain_target=None):
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    targets = recovery_targets(net, loader(32, 0), loader(16, 1), torch.device("cpu"), 1.0)
    targets.update(val=target, retain=target if retain_target is None else retain_target)
    return repair_until_recovered(
        net,
        frozen_copy(net),
        loader(32, 0),
        loader(16, 1),
        torch.device("cpu"),
        optimizer,
        targets=targets,
        max_epochs=max_epochs,
        check_every=0.5,
        masks=masks,
    )


def test_the_repair_stops_at_the_first_check_where_validation_accuracy_reaches_the_target():
    log = repair(tiny_net(), target=0.0)
    assert [entry["epochs"] for entry in log] == [0.5]


def test_the_repair_runs_its_whole_budget_while_the_target_is_out_of_reach():
    log = repair(tiny_net(), target=1.5, max_epochs=2.0)
    assert [entry["epochs"] for entry in log] == [0.5, 1.0, 1.5, 2.0]


def test_the_repair_goes_on_while_retain_accuracy_is_short_of_its_target():
    log = repair(tiny_net(), target=0.0, retain_target=1.5, max_epochs=1.0)
    assert [entry["epochs"] for entry in log] == [0.5, 1.0]


def test_the_targets_are_the_recovery_fraction_of_the_originals_accuracies():
    net = tiny_net()
    device = torch.device("cpu")
    full = recovery_targets(net, loader(32, 0), loader(16, 1), device, 1.0)
    half = recovery_targets(net, loader(32, 0), loader(16, 1), device, 0.5)
    assert full["val"] == accuracy(net, loader(16, 1), device)
    assert (half["val"], half["retain"]) == (0.5 * full["val"], 0.5 * full["retain"])


def test_the_repair_reports_the_accuracy_it_measured_and_leaves_eval_mode():
    net = tiny_net()
    log = repair(net, target=1.5, max_epochs=0.5)
    assert log[-1]["val_accuracy"] == accuracy(net, loader(16, 1), torch.device("cpu"))
    assert not net.training


def test_the_repair_moves_only_masked_entries():
    net = tiny_net()
    before = copy.deepcopy(net)
    masks = [torch.zeros_like(p) for p in net.parameters()]
    masks[-1] = torch.ones_like(masks[-1])  # only the last layer's bias
    repair(net, target=1.5, max_epochs=0.5, masks=masks)
    moved = [
        not torch.equal(p, q) for p, q in zip(net.parameters(), before.parameters(), strict=True)
    ]
    assert moved[-1] and not any(moved[:-1])
