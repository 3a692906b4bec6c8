"""What the four research methods and their shared saliency helpers promise beyond the contract.

The contract every registered method keeps is ``tests/test_method_contract.py``.

The methods run on a tiny torchvision-named ResNet and tiny random data with
shortened schedules; the helpers are checked on hand-made tensors.
"""

from __future__ import annotations

import copy
import json
import logging
import math

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.models.resnet import BasicBlock, ResNet

from local_eval.scoring.metric import logit_scaled_confidence
from methods import ams_unlearn
from methods.ams_unlearn import AmsUnlearn
from methods.common import SCENARIO_ENV
from methods.ftsu import SERVER_STATE_FORMAT, Ftsu, load_server_state
from methods.hirs import Hirs, filter_final_layer, penultimate_features
from methods.progressive_saliency import ProgressiveSaliency
from methods.saliency import (
    confidences,
    margin,
    quantile_targets,
    targeted_pass,
    top_fraction_masks,
    weights_fingerprint,
)

NUM_CLASSES = 4
BATCH_SIZE = 16
SHORT_RUNS = {
    ProgressiveSaliency: {"max_rounds": 2},
    AmsUnlearn: {"rounds": 1},
    Hirs: {"repair_epochs": 1},
    Ftsu: {},
}


class DictDataset(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "age_group": self.labels[index]}


@pytest.fixture(autouse=True)
def empty_method_state(monkeypatch):
    """Each test starts with no state carried over from another test's requests."""
    monkeypatch.setattr(ams_unlearn, "_STATE", {})
    monkeypatch.delenv(SCENARIO_ENV, raising=False)


def tiny_resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=NUM_CLASSES).eval()


def make_loader(size: int, seed: int, batch_format: str = "dict") -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(size, 3, 32, 32, generator=generator) * 255
    labels = torch.randint(0, NUM_CLASSES, (size,), generator=generator)
    dataset = (
        DictDataset(images, labels) if batch_format == "dict" else TensorDataset(images, labels)
    )
    return DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=True, generator=generator)


def make_loaders(batch_format: str = "dict", retain: int = 32, forget: int = 16, val: int = 16):
    return (
        make_loader(retain, 1, batch_format),
        make_loader(forget, 2, batch_format),
        make_loader(val, 3, batch_format),
    )


def run_method(method_class, loaders, **hyperparameters):
    torch.manual_seed(0)
    net = tiny_resnet()
    before = copy.deepcopy(net)
    returned = method_class(**{**SHORT_RUNS[method_class], **hyperparameters}).run(net, *loaders)
    return before, net, returned


def weights_changed(before: torch.nn.Module, after: torch.nn.Module) -> bool:
    return any(
        not torch.equal(before.state_dict()[key], value)
        for key, value in after.state_dict().items()
        if value.is_floating_point()
    )


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    return all(
        torch.equal(value, second.state_dict()[key]) for key, value in first.state_dict().items()
    )


# --- shared saliency helpers ------------------------------------------------------------


def test_margin_is_the_metrics_logit_scaled_confidence():
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)) * 4
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    expected = logit_scaled_confidence(logits, labels).float()
    assert torch.allclose(margin(logits, labels), expected, atol=1e-5)


def test_quantile_targets_follow_the_validation_ranks_within_a_class():
    forget_conf = torch.tensor([9.0, 7.0, 8.0])
    forget_labels = torch.zeros(3, dtype=torch.long)
    val_conf = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    targets = quantile_targets(
        forget_conf, forget_labels, val_conf, torch.zeros(6, dtype=torch.long)
    )
    assert targets.argsort().tolist() == forget_conf.argsort().tolist()
    assert set(targets.tolist()) <= set(val_conf.tolist())


def test_quantile_targets_never_raise_a_confidence():
    forget_conf = torch.tensor([-3.0, 0.0])
    targets = quantile_targets(
        forget_conf,
        torch.zeros(2, dtype=torch.long),
        torch.full((8,), 5.0),
        torch.zeros(8, dtype=torch.long),
    )
    assert torch.equal(targets, forget_conf)


def test_quantile_targets_use_all_validation_examples_for_a_rare_class():
    targets = quantile_targets(
        torch.tensor([10.0]),
        torch.tensor([1]),
        torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        torch.tensor([0, 0, 0, 0, 0, 1]),
        min_class_examples=5,
    )
    assert targets.item() in (3.0, 4.0)  # the median of all six, not class 1's lone 6.0


def test_top_fraction_masks_rank_entries_across_all_tensors():
    scores = [torch.tensor([1.0, 5.0]), torch.tensor([[3.0, 4.0], [2.0, 6.0]])]
    masks = top_fraction_masks(scores, 0.5)
    assert [m.tolist() for m in masks] == [[False, True], [[False, True], [False, True]]]


def test_top_fraction_masks_never_select_entries_without_gradient():
    masks = top_fraction_masks([torch.tensor([0.0, 0.0, 1.0])], 1.0)
    assert masks[0].tolist() == [False, False, True]


def test_mean_pull_leaves_a_forget_set_alone_whose_mean_is_on_target():
    """Examples above and below their targets cancel: only the set's mean excess is pulled."""
    net = tiny_resnet()
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    labels = torch.arange(8) % NUM_CLASSES
    current = confidences(net, images, labels)
    targets = current + torch.tensor([1.0, -1.0] * 4)  # mean excess exactly 0
    masks = [torch.ones_like(p, dtype=torch.bool) for p in net.parameters()]
    results = {}
    for per_example in (False, True):
        model = copy.deepcopy(net)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        targeted_pass(model, optimizer, masks, images, labels, targets, 8, 0.0, 1.0, per_example)
        results[per_example] = model
    assert same_weights(results[False], net)
    assert not same_weights(results[True], net)


def test_fingerprint_changes_with_a_running_statistic():
    net = tiny_resnet()
    before = weights_fingerprint(net)
    net.bn1.running_mean.add_(1e-3)
    assert weights_fingerprint(net) != before


# --- progressive_saliency: adaptive rounds ----------------------------------------------


def logged_rounds(caplog, loaders, **hyperparameters) -> list:
    """The rounds one progressive_saliency run logged: what its stopping rule saw."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="unlearnkit.progressive_saliency"):
        run_method(ProgressiveSaliency, loaders, **hyperparameters)
    return [r for r in caplog.records if r.name == "unlearnkit.progressive_saliency"]


def test_progressive_saliency_logs_one_signal_per_round(caplog):
    rounds = logged_rounds(caplog, make_loaders(), max_rounds=3, band=-1.0)
    assert [r.round for r in rounds] == [1, 2, 3]
    assert all(isinstance(r.signal, float) for r in rounds)


def test_progressive_saliency_stops_once_the_signal_settles_and_accuracy_is_back(caplog):
    rounds = logged_rounds(
        caplog, make_loaders(), max_rounds=3, min_rounds=1, band=math.inf, recovery=0.0
    )
    assert len(rounds) == 1


def test_progressive_saliency_goes_on_while_validation_accuracy_is_below_the_original(caplog):
    rounds = logged_rounds(
        caplog, make_loaders(), max_rounds=3, min_rounds=1, band=math.inf, recovery=2.0
    )
    assert len(rounds) == 3


def test_progressive_saliency_pulls_the_forget_set_down_only_while_it_is_above_the_band(caplog):
    calm = logged_rounds(caplog, make_loaders(), max_rounds=2, band=math.inf)
    assert [r.forget_loss for r in calm] == [0.0, 0.0]
    pulled = logged_rounds(caplog, make_loaders(), max_rounds=2, band=-math.inf)
    assert pulled[0].forget_loss > 0.0


def test_progressive_saliency_runs_at_least_its_minimum_rounds(caplog):
    rounds = logged_rounds(
        caplog, make_loaders(), max_rounds=3, min_rounds=2, band=math.inf, recovery=0.0
    )
    assert len(rounds) == 2


# --- ams_unlearn: state across requests -------------------------------------------------


def test_ams_unlearn_and_ftsu_are_different_computations_in_the_standard_setting():
    """At their defaults: ams_unlearn alternates pull and repair in rounds, ftsu pulls once."""
    models = []
    for method_class in (AmsUnlearn, Ftsu):
        torch.manual_seed(0)
        net = tiny_resnet()
        torch.manual_seed(1)
        method_class().run(net, *make_loaders(retain=48))
        models.append(net)
    assert not same_weights(*models)


def test_ams_unlearn_leaves_state_for_the_model_it_returned():
    _, after, _ = run_method(AmsUnlearn, make_loaders())
    assert list(ams_unlearn._STATE) == [weights_fingerprint(after)]


def test_ams_unlearn_ignores_state_left_on_another_model():
    _, alone, _ = run_method(AmsUnlearn, make_loaders())
    ams_unlearn._STATE.clear()
    run_method(AmsUnlearn, make_loaders(), noise_scale=0.5)  # leaves state on a different model
    _, again, _ = run_method(AmsUnlearn, make_loaders())
    assert same_weights(alone, again)


def test_ams_unlearn_next_request_uses_what_the_first_one_left():
    _, first, _ = run_method(AmsUnlearn, make_loaders())
    second_request = make_loaders(forget=8)
    stored = dict(ams_unlearn._STATE)

    def serve(state: dict) -> torch.nn.Module:
        ams_unlearn._STATE.clear()
        ams_unlearn._STATE.update(state)
        net = copy.deepcopy(first)
        torch.manual_seed(1)
        AmsUnlearn(rounds=1).run(net, *second_request)
        return net

    assert not same_weights(serve(stored), serve({}))


def test_ams_unlearn_keeps_earlier_requests_examples_in_its_state():
    _, first, _ = run_method(AmsUnlearn, make_loaders(forget=16))
    AmsUnlearn(rounds=1).run(first, *make_loaders(forget=8))
    (state,) = ams_unlearn._STATE.values()
    assert len(state["labels"]) == 24


def test_ams_unlearn_keeps_only_a_few_states():
    for i in range(ams_unlearn._KEPT_STATES + 2):
        run_method(AmsUnlearn, make_loaders(), noise_scale=0.1 * (i + 1))
    assert len(ams_unlearn._STATE) == ams_unlearn._KEPT_STATES


# --- hirs: logit-level filtration ---------------------------------------------------------


def test_final_layer_filtration_gives_forget_logits_their_changes():
    net = tiny_resnet()
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255
    features = penultimate_features(net, images)
    changes = torch.zeros(4, NUM_CLASSES, dtype=torch.float64)
    changes[torch.arange(4), torch.tensor([0, 1, 2, 3])] = torch.tensor(
        [-1.0, -2.0, -0.5, -3.0], dtype=torch.float64
    )
    before = net(images).detach().double()
    filter_final_layer(net, features, changes, features[:0], retain_weight=0.0, ridge=1e-9)
    assert torch.allclose(net(images).detach().double() - before, changes, atol=1e-3)


def test_final_layer_filtration_spares_retain_logits_it_is_told_to_keep():
    net = tiny_resnet()
    generator = torch.Generator().manual_seed(0)
    forget = torch.rand(4, 3, 32, 32, generator=generator) * 255
    retain = torch.rand(64, 3, 32, 32, generator=generator) * 255
    changes = torch.zeros(4, NUM_CLASSES, dtype=torch.float64)
    changes[:, 0] = -2.0
    loose, tight = copy.deepcopy(net), copy.deepcopy(net)
    retain_before = net(retain).detach()
    for model, weight in ((loose, 0.0), (tight, 100.0)):
        filter_final_layer(
            model,
            penultimate_features(model, forget),
            changes,
            penultimate_features(model, retain),
            weight,
            1e-3,
        )
    drift_loose = (loose(retain).detach() - retain_before).abs().mean()
    drift_tight = (tight(retain).detach() - retain_before).abs().mean()
    assert drift_tight < drift_loose


# --- ftsu: what the federated server kept -------------------------------------------------


def server_state_file(tmp_path, net, scale: float = 1.0, names=None):
    updates = [torch.full_like(p, scale) for p in net.parameters()]
    path = tmp_path / "server_state.pt"
    torch.save(
        {
            "format": SERVER_STATE_FORMAT,
            "parameter_names": names or [n for n, _ in net.named_parameters()],
            "client_updates": [updates],
            "aggregate_updates": [updates],
            "forget_client": 0,
            "n_clients": 2,
            "client_weight": 0.5,
        },
        path,
    )
    return path


def offer_server_state(monkeypatch, path: str) -> None:
    """What the federated scenario offers a method: the server-state file's path."""
    monkeypatch.setenv(SCENARIO_ENV, json.dumps({"scenario": "federated", "server_state": path}))


def test_ftsu_without_server_state_runs_as_in_the_standard_setting():
    assert load_server_state(tiny_resnet()) is None


def test_ftsu_reads_the_server_state_named_by_the_environment(tmp_path, monkeypatch):
    net = tiny_resnet()
    offer_server_state(monkeypatch, str(server_state_file(tmp_path, net)))
    assert load_server_state(net)["client_weight"] == 0.5


def test_ftsu_ignores_a_server_state_for_another_architecture(tmp_path, monkeypatch):
    net = tiny_resnet()
    offer_server_state(monkeypatch, str(server_state_file(tmp_path, net, names=["x"])))
    assert load_server_state(net) is None


def test_ftsu_rolls_back_the_forget_clients_updates(tmp_path, monkeypatch):
    _, standard, _ = run_method(Ftsu, make_loaders())
    offer_server_state(monkeypatch, str(server_state_file(tmp_path, tiny_resnet(), scale=0.01)))
    _, federated, _ = run_method(Ftsu, make_loaders())
    assert not same_weights(standard, federated)


def repair_learning_rates(monkeypatch, **hyperparameters) -> list[float]:
    """The learning rates of the optimisers Ftsu builds, in order (the last one repairs)."""
    import methods.ftsu as ftsu_module

    seen: list[float] = []
    real_sgd = ftsu_module.optim.SGD

    def recording_sgd(params, lr, **kwargs):
        seen.append(lr)
        return real_sgd(params, lr=lr, **kwargs)

    monkeypatch.setattr(ftsu_module.optim, "SGD", recording_sgd)
    run_method(Ftsu, make_loaders(), **hyperparameters)
    return seen


def test_ftsu_repairs_at_lr_in_the_standard_setting(monkeypatch):
    assert repair_learning_rates(monkeypatch, lr=0.02, federated_lr=0.001)[-1] == 0.02


def test_ftsu_repairs_at_federated_lr_when_the_server_state_is_given(tmp_path, monkeypatch):
    offer_server_state(monkeypatch, str(server_state_file(tmp_path, tiny_resnet(), scale=0.01)))
    assert repair_learning_rates(monkeypatch, lr=0.02, federated_lr=0.001)[-1] == 0.001
