"""The seven winners make the decisions their submitted notebooks made (docs/top-methods.md).

Each test isolates one decision on the tiny torchvision-named ResNet and a few
synthetic images: a learning rate of zero or zero epochs switches the other phases
off, optimizer step hooks record learning rates and momentum state, forward hooks
record batch sizes and the gradients reaching the logits.
"""

from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import DataLoader, Dataset

from local_eval.scoring.models import build_model
from methods.amnesiacs import Amnesiacs
from methods.fanchuan import Fanchuan
from methods.kookmin import Kookmin
from methods.sebastian import Sebastian
from methods.seif import Seif
from methods.sun import Sun

NUM_CLASSES = 10


class Images(Dataset):
    """Competition-style samples (dicts) or CIFAR-style ``(image, label)`` tuples."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, as_dict: bool = True) -> None:
        self.images, self.labels, self.as_dict = images, labels, as_dict

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        if self.as_dict:
            return {"image": self.images[index], "age_group": self.labels[index]}
        return self.images[index], self.labels[index]


def make_loader(
    size: int, batch_size: int = 16, seed: int = 0, labels=None, as_dict: bool = True
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(size, 3, 32, 32, generator=generator) * 255
    if labels is None:
        labels = torch.randint(0, NUM_CLASSES, (size,), generator=generator)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    return DataLoader(
        Images(images, labels, as_dict), batch_size=batch_size, shuffle=True, generator=generator
    )


def tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("resnet18_tiny").eval()


def changed_parameters(before: torch.nn.Module, after: torch.nn.Module) -> set[str]:
    old = dict(before.named_parameters())
    return {name for name, value in after.named_parameters() if not torch.equal(old[name], value)}


@contextlib.contextmanager
def recorded_steps():
    """Every optimizer step while open: (optimizer, lr, weight decay, momentum entries)."""
    steps = []

    def hook(optimizer, args, kwargs):
        group = optimizer.param_groups[0]
        steps.append((optimizer, group["lr"], group["weight_decay"], len(optimizer.state)))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield steps
    finally:
        handle.remove()


@contextlib.contextmanager
def recorded_inputs(net: torch.nn.Module):
    """The input batch of every forward pass of ``net`` while open."""
    inputs = []
    handle = net.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
    try:
        yield inputs
    finally:
        handle.remove()


def one_step_update(net, inputs, loss_of_logits, lr: float) -> dict[str, torch.Tensor]:
    """-lr x the gradient of ``loss_of_logits(net(inputs))`` in train mode: a first SGD step."""
    reference = copy.deepcopy(net).train()
    loss_of_logits(reference(inputs)).backward()
    return {name: -lr * p.grad for name, p in reference.named_parameters() if p.grad is not None}


def cosine_per_epoch(lr: float, epochs: int, steps_per_epoch: int) -> list[float]:
    return [
        lr * (1 + math.cos(math.pi * epoch / epochs)) / 2
        for epoch in range(epochs)
        for _ in range(steps_per_epoch)
    ]


def single_batch(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    (batch,) = list(loader)
    return batch["image"], batch["age_group"]


# --- seif (kgltop3) ---------------------------------------------------------------------


def test_seif_noise_step_changes_only_conv1_weight():
    net = tiny_net()
    before = copy.deepcopy(net)
    Seif(epochs=0).run(net, make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2))
    assert changed_parameters(before, net) == {"conv1.weight"}


def test_seif_all_convs_scope_noises_every_convolution():
    net = tiny_net()
    before = copy.deepcopy(net)
    Seif(epochs=0, noise_scope="all_convs").run(
        net, make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2)
    )
    convs = {
        f"{name}.weight" for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)
    }
    assert len(convs) == 20 and changed_parameters(before, net) == convs


def test_seif_late_noise_lands_on_conv1_after_the_second_to_last_epoch():
    loaders = make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2)
    changed = {}
    for epochs in (1, 2):
        net = tiny_net()
        before = copy.deepcopy(net)
        Seif(epochs=epochs, lr=0.0, noise_std=0.0, late_noise_std=0.1).run(net, *loaders)
        changed[epochs] = changed_parameters(before, net)
    assert changed == {1: set(), 2: {"conv1.weight"}}


def test_seif_cosine_schedule_steps_once_per_epoch():
    with recorded_steps() as steps:
        Seif(epochs=4, lr=1e-3).run(
            tiny_net(), make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2)
        )
    assert [lr for _, lr, _, _ in steps] == pytest.approx(cosine_per_epoch(1e-3, 4, 2))


def seif_first_update(labels, **settings) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(net before, net after) one Seif step without noise, momentum or weight decay."""
    net = tiny_net()
    before = copy.deepcopy(net)
    retain = make_loader(len(labels), batch_size=len(labels), labels=labels)
    Seif(
        epochs=1, lr=1e-2, momentum=0.0, weight_decay=0.0, noise_std=0.0, **settings
    ).run(net, retain, make_loader(16, seed=1), make_loader(16, seed=2))
    return before, net


def test_seif_favours_class_0_even_when_another_class_is_the_majority():
    labels = [1] * 8
    before, after = seif_first_update(labels)
    inputs, targets = single_batch(make_loader(8, batch_size=8, labels=labels))
    plain = one_step_update(before, inputs, lambda z: F.cross_entropy(z, targets), 1e-2)
    actual = after.fc.weight - before.fc.weight
    assert torch.allclose(actual, 0.05 * plain["fc.weight"], rtol=1e-3, atol=1e-6)


def test_seif_scales_the_batch_mean_loss_by_the_batch_mean_class_weight():
    labels = [0, 0, 1, 2, 3, 4, 5, 6]
    before, after = seif_first_update(labels)
    inputs, targets = single_batch(make_loader(8, batch_size=8, labels=labels))
    weights = torch.full((NUM_CLASSES,), 0.05)
    weights[0] = 1.0
    batch_mean = one_step_update(
        before, inputs, lambda z: F.cross_entropy(z, targets) * weights[targets].mean(), 1e-2
    )
    per_example = one_step_update(
        before,
        inputs,
        lambda z: (F.cross_entropy(z, targets, reduction="none") * weights[targets]).mean(),
        1e-2,
    )
    actual = after.fc.weight - before.fc.weight
    assert torch.allclose(actual, batch_mean["fc.weight"], rtol=1e-3, atol=1e-6)
    assert not torch.allclose(actual, per_example["fc.weight"], rtol=1e-2, atol=1e-9)


def test_seif_majority_reading_favours_the_retain_sets_most_frequent_class():
    labels = [1] * 8
    before, after = seif_first_update(labels, favoured_class=None)
    inputs, targets = single_batch(make_loader(8, batch_size=8, labels=labels))
    plain = one_step_update(before, inputs, lambda z: F.cross_entropy(z, targets), 1e-2)
    actual = after.fc.weight - before.fc.weight
    assert torch.allclose(actual, plain["fc.weight"], rtol=1e-3, atol=1e-6)


def test_seif_per_example_reading_weighs_each_examples_loss():
    labels = [0, 0, 1, 2, 3, 4, 5, 6]
    before, after = seif_first_update(labels, class_weighting="per_example")
    inputs, targets = single_batch(make_loader(8, batch_size=8, labels=labels))
    weights = torch.full((NUM_CLASSES,), 0.05)
    weights[0] = 1.0
    per_example = one_step_update(
        before,
        inputs,
        lambda z: (F.cross_entropy(z, targets, reduction="none") * weights[targets]).mean(),
        1e-2,
    )
    actual = after.fc.weight - before.fc.weight
    assert torch.allclose(actual, per_example["fc.weight"], rtol=1e-3, atol=1e-6)


# --- fanchuan (kgltop1) -----------------------------------------------------------------


def test_fanchuan_first_stage_gradient_on_confident_logits_is_p_minus_uniform_over_batch():
    net = tiny_net()
    with torch.no_grad():
        net.fc.bias[3] = 30.0  # every prediction is class 3 with probability ~1
    seen = []

    def keep_gradient(module, args, output):
        output.register_hook(lambda grad: seen.append((output.detach(), grad)))

    handle = net.fc.register_forward_hook(keep_gradient)
    forget = make_loader(8, batch_size=8, seed=1)
    try:
        Fanchuan(epochs=0).run(net, make_loader(32), forget, make_loader(16, seed=2))
    finally:
        handle.remove()
    (logits, grad), = seen
    expected = (F.softmax(logits, dim=1) - 1.0 / NUM_CLASSES) / logits.shape[0]
    assert torch.allclose(grad, expected, atol=1e-7)
    assert grad[:, 3].min() > 0.1  # far from vanishing, unlike KL(p || uniform)'s


def test_fanchuan_retain_rounds_use_batches_of_256_from_the_callers_dataset():
    net = tiny_net()
    retain, forget = make_loader(300, batch_size=16), make_loader(10, batch_size=16, seed=1)
    with recorded_inputs(net) as inputs:
        Fanchuan(epochs=1).run(net, retain, forget, make_loader(16, seed=2))
    # uniform pass (10), contrast pair (10 forget, 256 retain), retain epoch (256 + 44)
    assert [batch.shape[0] for batch in inputs] == [10, 10, 256, 256, 44]


def test_fanchuan_retain_lr_is_scaled_to_the_256_batch():
    with recorded_steps() as steps:
        Fanchuan(epochs=1).run(
            tiny_net(), make_loader(300), make_loader(10, seed=1), make_loader(16, seed=2)
        )
    retain_lrs = [lr for _, lr, decay, _ in steps if decay == 1e-2]
    assert retain_lrs == pytest.approx([1e-3 * 256 / 64] * 2)


# --- kookmin (kgltop2) ------------------------------------------------------------------


def bn_running_means(net) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_kookmin_collects_mask_gradients_in_the_callers_mode():
    moved = {}
    for mode in ("train", "eval"):
        net = tiny_net().train(mode == "train")
        before = bn_running_means(net)
        Kookmin(lr_factors=()).run(
            net, make_loader(64), make_loader(16, seed=1), make_loader(16, seed=2)
        )
        moved[mode] = any(
            not torch.equal(a, b) for a, b in zip(before, bn_running_means(net))
        )
    assert moved == {"train": True, "eval": False}


def recorded_ranking(seed: int, retain: DataLoader, forget: DataLoader):
    net = tiny_net()
    before = copy.deepcopy(net)
    torch.manual_seed(seed)
    with recorded_inputs(net) as inputs:
        Kookmin(lr_factors=()).run(net, retain, forget, make_loader(16, seed=2))
    return before, net, inputs


def dataset_rows(dataset: Images, batch: torch.Tensor) -> list[int]:
    flat = dataset.images.flatten(1)
    return [int((flat == row.flatten()).all(dim=1).nonzero()) for row in batch]


def test_kookmin_ranks_on_a_random_retain_subset_as_large_as_the_forget_set_in_batches_of_64():
    retain, forget = make_loader(200, batch_size=16), make_loader(20, batch_size=16, seed=1)
    subsets = []
    for seed in (0, 1):
        _, _, inputs = recorded_ranking(seed, retain, forget)
        assert [batch.shape[0] for batch in inputs] == [20, 16, 4]
        subsets.append(set(dataset_rows(retain.dataset, inputs[0])))
    assert all(len(rows) == 20 for rows in subsets) and subsets[0] != subsets[1]


def reference_gradients(before, batches, reduction: str) -> dict[str, torch.Tensor]:
    reference = copy.deepcopy(before)
    for inputs, targets, sign in batches:
        loss = F.cross_entropy(reference(inputs), targets, reduction=reduction)
        (sign * loss).backward()
    return {
        name: m.weight.grad.abs()
        for name, m in reference.named_modules()
        if isinstance(m, torch.nn.Conv2d)
    }


def mask_ranks_smallest(mask: torch.Tensor, magnitude: torch.Tensor) -> bool:
    """``mask`` holds round(30 %) entries, none with a larger |grad| than any entry left out."""
    if int(mask.sum()) != round(0.3 * mask.numel()):
        return False
    if bool(mask.all()) or not bool(mask.any()):
        return True
    return bool(magnitude[mask].max() <= magnitude[~mask].min() * (1 + 1e-5))


def test_kookmin_reinitialises_by_the_gradients_of_batch_mean_cross_entropy():
    retain, forget = make_loader(200, batch_size=16), make_loader(20, batch_size=16, seed=1)
    before, after, inputs = recorded_ranking(0, retain, forget)
    batches = [(inputs[0], retain.dataset.labels[dataset_rows(retain.dataset, inputs[0])], 1.0)]
    batches += [
        (batch, forget.dataset.labels[dataset_rows(forget.dataset, batch)], -1.0)
        for batch in inputs[1:]
    ]
    masks = {
        name: ~torch.eq(after.get_submodule(name).weight, m.weight)
        for name, m in before.named_modules()
        if isinstance(m, torch.nn.Conv2d)
    }
    mean_grads = reference_gradients(before, batches, "mean")
    sum_grads = reference_gradients(before, batches, "sum")
    assert all(mask_ranks_smallest(masks[name], mean_grads[name]) for name in masks)
    assert not all(mask_ranks_smallest(masks[name], sum_grads[name]) for name in masks)


# --- sebastian (kgltop4) ----------------------------------------------------------------


def test_sebastian_global_ranking_includes_fc_bias():
    net = tiny_net()
    with torch.no_grad():
        net.fc.bias.copy_(torch.tensor([1e-12] * 5 + [4.0] * 5))
    Sebastian(lr=0.0).run(net, make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2))
    assert torch.equal(net.fc.bias, torch.tensor([0.0] * 5 + [4.0] * 5))


def test_sebastian_result_survives_an_fp16_round_trip():
    net = tiny_net()
    Sebastian(epochs=1.0).run(
        net, make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2)
    )
    floats = [t for t in net.state_dict().values() if t.is_floating_point()]
    assert all(t.dtype == torch.float32 for t in floats)
    assert all(torch.equal(t, t.half().float()) for t in floats)


def test_sebastian_trains_int_epochs_times_batches_plus_one_iterations():
    with recorded_steps() as steps:
        Sebastian(epochs=1.5).run(
            tiny_net(), make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2)
        )
    assert len(steps) == int(1.5 * 2) + 1


# --- amnesiacs (kgltop6) ----------------------------------------------------------------


def test_amnesiacs_softens_both_softmaxes_of_the_soft_terms_at_temperature_5():
    net = tiny_net()
    teacher = copy.deepcopy(net).eval()
    retain = make_loader(8, batch_size=8)
    torch.manual_seed(3)
    Amnesiacs(warmup_epochs=0, epochs=1, lr=1e-2, momentum=0.0, weight_decay=0.0).run(
        after := copy.deepcopy(net), retain, make_loader(16, seed=1), make_loader(16, seed=2)
    )
    torch.manual_seed(3)
    net.conv1.reset_parameters()
    net.fc.reset_parameters()
    inputs, targets = single_batch(retain)
    with torch.no_grad():
        teacher_logits = teacher(inputs)

    def loss(soft_temperature):
        def of(logits):
            soft = F.softmax(teacher_logits / soft_temperature, dim=1)
            soft_ce = -(soft * F.log_softmax(logits / soft_temperature, dim=1)).sum(1).mean()
            kl = F.kl_div(
                F.log_softmax(logits / 5.0, dim=1),
                F.softmax(teacher_logits / 5.0, dim=1),
                reduction="batchmean",
            )
            return F.cross_entropy(logits, targets) + soft_ce + kl

        return of

    actual = after.fc.weight - net.fc.weight
    assert torch.allclose(actual, one_step_update(net, inputs, loss(5.0), 1e-2)["fc.weight"],
                          rtol=1e-3, atol=1e-6)
    assert not torch.allclose(actual, one_step_update(net, inputs, loss(1.0), 1e-2)["fc.weight"],
                              rtol=1e-2, atol=1e-9)


def test_amnesiacs_cosine_schedule_steps_once_per_retain_epoch():
    with recorded_steps() as steps:
        Amnesiacs(warmup_epochs=0, epochs=3, lr=1e-3).run(
            tiny_net(), make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2)
        )
    assert [lr for _, lr, _, _ in steps] == pytest.approx(cosine_per_epoch(1e-3, 3, 2))


# --- sun (kgltop7) ----------------------------------------------------------------------


def sun_partial_epochs(**settings) -> list[tuple[dict[str, torch.Tensor], set[str]]]:
    """Per partial epoch, at its first step: (parameter values, names that train)."""
    net = tiny_net()
    names = {id(p): name for name, p in net.named_parameters()}
    epochs, seen = [], []

    def hook(optimizer, args, kwargs):
        if any(optimizer is known for known in seen):
            return
        seen.append(optimizer)  # kept alive, so no later optimizer is mistaken for it
        values = {name: p.detach().clone() for name, p in net.named_parameters()}
        training = {names[id(p)] for group in optimizer.param_groups for p in group["params"]
                    if p.requires_grad}
        epochs.append((values, training))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        Sun(partial_lr=0.0, final_lrs=(), **settings).run(
            net, make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2)
        )
    finally:
        handle.remove()
    return epochs


def noised_after_chosen(epochs) -> list[set[str]]:
    """Per epoch from the second: tensors noised then that an earlier epoch had chosen."""
    overlaps = []
    for index in range(1, len(epochs)):
        previous, current = epochs[index - 1][0], epochs[index][0]
        noised = {name for name in current if not torch.equal(previous[name], current[name])}
        chosen_before = set().union(*(training for _, training in epochs[:index]))
        overlaps.append(noised & chosen_before)
    return overlaps


def test_sun_never_noises_a_tensor_chosen_in_an_earlier_epoch():
    epochs = sun_partial_epochs(partial_epochs=8)
    first_noise = {
        name for name in epochs[1][0] if not torch.equal(epochs[0][0][name], epochs[1][0][name])
    }
    assert len(first_noise) > 0
    assert noised_after_chosen(epochs) == [set()] * 7


def test_sun_renoise_reading_noises_tensors_chosen_before():
    epochs = sun_partial_epochs(partial_epochs=8, renoise=True)
    assert any(noised_after_chosen(epochs))


def test_sun_treats_the_shortcut_batchnorm_as_a_candidate_not_as_batchnorm():
    epochs = sun_partial_epochs(partial_epochs=8)
    bn = {name for name in epochs[0][0] if "bn" in name}
    shortcut_bn = {name for name in epochs[0][0] if "downsample.1" in name}
    for _, training in epochs:
        assert bn <= training and len(training - bn) == 9
    chosen_shortcut = [training & shortcut_bn for _, training in epochs]
    assert any(chosen_shortcut) and not all(chosen == shortcut_bn for chosen in chosen_shortcut)


def test_sun_module_reading_always_trains_the_shortcut_batchnorm():
    epochs = sun_partial_epochs(partial_epochs=3, batchnorm_detection="module")
    batchnorm = {name for name in epochs[0][0] if "bn" in name or "downsample.1" in name}
    assert all(batchnorm <= training and len(training - batchnorm) == 9 for _, training in epochs)


def test_sun_each_final_epoch_starts_with_fresh_momentum():
    with recorded_steps() as steps:
        Sun(partial_epochs=1, final_lrs=(1e-3, 2e-3, 3e-3)).run(
            tiny_net(), make_loader(32), make_loader(16, seed=1), make_loader(16, seed=2)
        )
    final = [(lr, entries == 0) for _, lr, _, entries in steps[2:]]
    assert final == [(1e-3, True), (1e-3, False), (2e-3, True), (2e-3, False),
                     (3e-3, True), (3e-3, False)]
