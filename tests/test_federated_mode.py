"""Specification of the federated mode: FedAvg models, the forget set on one client, a server-side method."""

from __future__ import annotations

import copy
import dataclasses
import json
import os

import pytest
import torch

from local_eval.boards.leaderboard import build_leaderboard
from local_eval.boards.report import evaluate_method
from local_eval.data.roles import load_eval_data
from local_eval.errors import EvalError
from local_eval.scoring.context import make_context
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import get_preset
from local_eval.scoring.runner import run_plan, unlearning_run_task
from local_eval.scoring.scenarios import federated
from local_eval.scoring.scenarios.federated import (
    Federated,
    client_shards,
    fedavg_train,
    federated_references,
)
from local_eval.scoring.training import Recipe, train_model
from local_eval.store.files import CACHE_ENV
from methods.base import BaseMethod
from methods.common import SCENARIO_ENV
from methods.ftsu import load_server_state

ONE_EPOCH = Recipe(epochs=1, lr=0.05, batch_size=32, augment=False)


def evaluate_federated(method, preset, k, **kwargs):
    """Score ``method`` on the server of a ``k``-client federation."""
    return evaluate_method(method, preset, scenario=Federated(clients=k), **kwargs)


def leaderboard_federated(preset, k, method_names=None, with_standard=True, **kwargs):
    """The federated board for ``k`` clients, with or without the standard score beside it."""
    return build_leaderboard(
        preset,
        scenario=Federated(clients=k),
        only=method_names,
        with_companion=with_standard,
        **kwargs,
    )


@pytest.fixture(scope="module")
def tiny():
    """Three models per side on 160 synthetic images, two FedAvg rounds each."""
    return dataclasses.replace(
        get_preset("smoke", {"n_models": 3, "train_size": 160, "val_size": 16, "test_size": 32}),
        original_recipe=dataclasses.replace(ONE_EPOCH, epochs=2),
        retrain_recipe=dataclasses.replace(ONE_EPOCH, epochs=2),
    )


@pytest.fixture(scope="module")
def data(tiny):
    return load_eval_data(tiny)


class ServerSide(BaseMethod):
    """Records whether the server's state was reachable during the call, then nudges ``fc``."""

    name = "server_side"
    seen: list[dict | None] = []

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        ServerSide.seen.append(load_server_state(net))
        with torch.no_grad():
            net.fc.bias.add_(0.01)
        net.eval()


def test_clients_hold_disjoint_shards_covering_the_training_set(data):
    shards = client_shards(data, 3, seed=0, with_forget=True)
    together = torch.cat(shards)
    assert len(together) == len(set(together.tolist()))
    assert sorted(together.tolist()) == sorted(torch.cat([data.retain, data.forget]).tolist())


def test_the_forget_set_belongs_to_client_zero_alone(data):
    shards = client_shards(data, 3, seed=0, with_forget=True)
    forget = set(data.forget.tolist())
    assert forget <= set(shards[0].tolist())
    assert all(forget.isdisjoint(s.tolist()) for s in shards[1:])


def test_retrained_federations_keep_every_retain_shard_and_drop_the_forget_set(data):
    with_forget = client_shards(data, 3, seed=0, with_forget=True)
    without = client_shards(data, 3, seed=0, with_forget=False)
    forget = set(data.forget.tolist())
    assert [set(a.tolist()) - forget for a in with_forget] == [set(b.tolist()) for b in without]


def test_too_many_clients_is_refused_with_the_limit(data):
    with pytest.raises(EvalError, match=f"at most {len(data.retain) // 2}"):
        client_shards(data, len(data.retain), seed=0, with_forget=True)


def test_one_client_and_one_round_is_central_training(data):
    torch.manual_seed(0)
    start = build_model("resnet18_tiny")
    federated_model, central = copy.deepcopy(start), copy.deepcopy(start)
    indices = data.retain
    fedavg_train(
        federated_model,
        data.train.images,
        data.train.labels,
        [indices],
        ONE_EPOCH,
        1,
        1,
        seed=5,
        device=torch.device("cpu"),
    )
    train_model(
        central,
        data.train.images,
        data.train.labels,
        indices,
        ONE_EPOCH,
        seed=5 * 100_003,
        device="cpu",
    )
    for key, value in central.state_dict().items():
        assert torch.allclose(
            federated_model.state_dict()[key].float(), value.float(), atol=1e-6
        ), key


def test_server_keeps_the_last_rounds_updates_and_the_forget_clients_share(data):
    torch.manual_seed(0)
    model = build_model("resnet18_tiny")
    shards = client_shards(data, 2, seed=0, with_forget=True)
    state = fedavg_train(
        model,
        data.train.images,
        data.train.labels,
        shards,
        ONE_EPOCH,
        3,
        1,
        seed=1,
        device=torch.device("cpu"),
        kept_rounds=2,
    )
    assert len(state["client_updates"]) == len(state["aggregate_updates"]) == 2
    assert state["client_weight"] == pytest.approx(
        len(shards[0]) / (len(shards[0]) + len(shards[1]))
    )
    assert state["parameter_names"] == [name for name, _ in model.named_parameters()]


def test_with_one_client_its_contribution_is_the_aggregated_update(data):
    torch.manual_seed(0)
    model = build_model("resnet18_tiny")
    state = fedavg_train(
        model,
        data.train.images,
        data.train.labels,
        [data.retain],
        ONE_EPOCH,
        2,
        1,
        seed=1,
        device=torch.device("cpu"),
        kept_rounds=1,
    )
    for client, aggregate in zip(state["client_updates"][0], state["aggregate_updates"][0]):
        assert torch.allclose(client, aggregate, atol=1e-6)


def test_federated_models_are_cached_and_never_trained_twice(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    calls = []
    real = federated.fedavg_train

    def counting(*args, **kwargs):
        calls.append(kwargs.get("kept_rounds", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(federated, "fedavg_train", counting)
    first = federated_references(tiny, Federated(clients=2), progress=False)
    trained = len(calls)
    second = federated_references(tiny, Federated(clients=2), progress=False)
    assert trained == 1 + 2 * tiny.n_models and len(calls) == trained
    assert first.refs.key == second.refs.key and first.server_state.exists()


def test_server_state_reaches_the_method_during_the_runs_only(tiny, tmp_path):
    ServerSide.seen = []
    evaluate_federated(ServerSide, tiny, 2, context=make_context(results_dir=tmp_path, progress=False, echo=False))
    assert len(ServerSide.seen) == tiny.n_models
    assert all(state is not None and state["n_clients"] == 2 for state in ServerSide.seen)
    assert SCENARIO_ENV not in os.environ


def test_a_run_reads_the_server_state_shipped_with_it_not_the_drivers_file(tiny):
    """Workers of another machine share no disk: the run carries the file's content."""
    prepared = Federated(clients=2).prepare(tiny, make_context(device="cpu", progress=False))
    plan = run_plan(ServerSide, {}, tiny, prepared)
    stored = federated_references(tiny, Federated(clients=2), progress=False).server_state
    hidden = stored.with_name("hidden-" + stored.name)
    ServerSide.seen = []
    stored.rename(hidden)
    try:
        unlearning_run_task(plan, 0, False, device=torch.device("cpu"))
    finally:
        hidden.rename(stored)
    assert ServerSide.seen[0] is not None and ServerSide.seen[0]["n_clients"] == 2


def test_result_records_the_federation_and_is_written_under_the_presets_federated_folder(
    tiny, tmp_path
):
    result = evaluate_federated(
        "finetune", tiny, 2, context=make_context(results_dir=tmp_path, progress=False, echo=False)
    )
    stored = json.loads((tmp_path / "smoke-federated" / "finetune.json").read_text())
    assert stored["federation"]["clients"] == 2 and stored["federation"]["forget_client"] == 0
    assert stored["score"] == result["score"]
    assert len(result["runs"]) == tiny.n_models


def test_leaderboard_shows_the_federated_and_the_standard_score(tiny, tmp_path):
    path = leaderboard_federated(
        tiny,
        2,
        method_names=["finetune"],
        context=make_context(results_dir=tmp_path / "results", progress=False, echo=False),
        docs_dir=tmp_path / "docs",
    )
    text = path.read_text()
    standard = json.loads(
        (
            tmp_path / "results" / "smoke-federated" / "standard" / "smoke" / "finetune.json"
        ).read_text()
    )
    assert path.name == "leaderboard-smoke-federated.md"
    assert "| standard score |" in text and "*retrain ceiling*" in text
    assert f"{standard['score']:.4f} |" in text.split("| finetune |")[1].splitlines()[0]


def test_leaderboard_names_the_registered_methods_it_left_out(tiny, tmp_path):
    text = leaderboard_federated(
        tiny,
        2,
        method_names=["finetune"],
        with_standard=False,
        context=make_context(results_dir=tmp_path / "results", progress=False, echo=False),
        docs_dir=tmp_path / "docs",
    ).read_text()
    left_out = text.split("not scored in this mode")[1]
    assert "`kookmin`" in left_out and "`finetune`" not in left_out


def test_a_preset_keeping_the_best_validation_checkpoint_is_refused_in_one_line():
    with pytest.raises(EvalError, match="best-validation checkpoint.*keep the last epoch"):
        federated_references(get_preset("faithful"), Federated())
