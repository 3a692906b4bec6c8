"""Specification of the sequential-requests mode: K forget requests served in order on one model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from local_eval.boards.leaderboard import build_leaderboard
from local_eval.boards.report import evaluate_method
from local_eval.data.roles import load_eval_data
from local_eval.errors import EvalError
from local_eval.scoring import board_scores, references
from local_eval.scoring.context import make_context
from local_eval.scoring.presets import get_preset
from local_eval.scoring.references import references_key
from local_eval.scoring.scenarios.requests import Requests, plan_requests, request_references
from local_eval.scoring.training import Recipe
from local_eval.store.files import CACHE_ENV
from methods.base import BaseMethod

ONE_EPOCH = Recipe(epochs=1, lr=0.05, batch_size=32, augment=False)


def evaluate_requests(method, preset, k, **kwargs):
    """Score ``method`` serving the forget set as ``k`` requests."""
    return evaluate_method(method, preset, scenario=Requests(k), **kwargs)


def leaderboard_requests(preset, k, method_names=None, **kwargs):
    """The board of the requests scenario with ``k`` requests."""
    return build_leaderboard(preset, scenario=Requests(k), only=method_names, **kwargs)


@pytest.fixture(scope="module")
def tiny():
    """Three one-epoch models per side on 160 synthetic images: enough to watch the mode work."""
    return dataclasses.replace(
        get_preset("smoke", {"n_models": 3, "train_size": 160, "val_size": 16, "test_size": 32}),
        original_recipe=ONE_EPOCH,
        retrain_recipe=ONE_EPOCH,
    )


@pytest.fixture
def results_dir(tmp_path):
    return tmp_path / "results"


class Recorder(BaseMethod):
    """Records what each call starts from and is given, then nudges the model so calls differ."""

    name = "recorder"
    calls: list[dict] = []

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        Recorder.calls.append(
            {
                "checksum": float(sum(p.detach().double().sum() for p in net.parameters())),
                "retain": len(retain_loader.dataset),
                "forget": len(forget_loader.dataset),
            }
        )
        with torch.no_grad():
            net.fc.bias.add_(0.01)
        net.eval()


@pytest.fixture
def recorded(tiny, results_dir):
    Recorder.calls = []
    result = evaluate_requests(
        Recorder, tiny, 2, context=make_context(results_dir=results_dir, progress=False, echo=False)
    )
    return result, Recorder.calls


def test_requests_cover_the_forget_set_exactly_once(tiny):
    data = load_eval_data(tiny)
    plan = plan_requests(data, 3, seed=0)
    assert len(plan.requests) == 3
    assert torch.cat(plan.requests).sort().values.tolist() == data.forget.tolist()


def test_requests_keep_each_person_together_when_there_are_enough_persons(tiny):
    data = load_eval_data(dataclasses.replace(tiny, forget_fraction=0.3))
    persons = np.asarray(data.split.person_ids)
    plan = plan_requests(data, 2, seed=0)
    assert plan.grouping == "persons"
    owners = [set(persons[r.numpy()].tolist()) for r in plan.requests]
    assert owners[0].isdisjoint(owners[1])


def test_more_requests_than_forget_examples_is_refused_with_the_limit(tiny):
    data = load_eval_data(tiny)
    with pytest.raises(EvalError, match=f"at most {len(data.forget)}"):
        plan_requests(data, len(data.forget) + 1, seed=0)


def test_references_after_a_request_are_retrained_without_everything_served_so_far(
    tiny, monkeypatch, tmp_path
):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "fresh-cache"))
    trained = []
    real = references.train_model

    def recording(model, images, labels, indices, *args, **kwargs):
        trained.append(set(torch.as_tensor(indices).tolist()))
        return real(model, images, labels, indices, *args, **kwargs)

    monkeypatch.setattr(references, "train_model", recording)
    plan, _ = request_references(tiny, 2, progress=False)
    first, second = (set(r.tolist()) for r in plan.requests)
    intermediate = [s for s in trained if second <= s]
    assert intermediate, "request 1's references were trained"
    assert all(not (first & s) for s in intermediate if len(s) < 160)


def test_last_request_is_scored_against_the_standard_references(recorded, tiny):
    result, _ = recorded
    assert result["steps"][-1]["references_key"] == references_key(tiny)
    assert result["steps"][0]["references_key"] != references_key(tiny)


def test_each_request_starts_from_the_model_the_previous_one_returned(recorded, tiny):
    _, calls = recorded
    first, second = calls[0], calls[1]
    assert second["checksum"] != pytest.approx(first["checksum"])
    assert calls[2]["checksum"] == pytest.approx(first["checksum"])  # next run: the original again


def test_a_request_gives_its_own_examples_and_keeps_unserved_ones_in_the_retain_set(recorded, tiny):
    result, calls = recorded
    data = load_eval_data(tiny)
    sizes = result["request_sizes"]
    assert [c["forget"] for c in calls[:2]] == sizes
    assert [c["retain"] for c in calls[:2]] == [len(data.retain) + sizes[1], len(data.retain)]


def test_scores_are_reported_after_every_request_on_all_forget_data_served_so_far(recorded):
    result, _ = recorded
    sizes = result["request_sizes"]
    assert [step["served"] for step in result["steps"]] == [sizes[0], sizes[0] + sizes[1]]
    assert [len(step["epsilons"]) for step in result["steps"]] == [sizes[0], sum(sizes)]
    assert result["score"] == result["steps"][-1]["score"]


def test_result_is_written_under_the_presets_requests_folder(recorded, results_dir):
    result, _ = recorded
    path = results_dir / "smoke-requests" / "recorder.json"
    assert json.loads(path.read_text())["steps"] == json.loads(json.dumps(result["steps"]))


def test_a_failing_method_is_reported_with_the_request_it_failed_on(tiny, results_dir):
    class FailsLater(BaseMethod):
        name = "fails_later"
        calls = 0

        def run(self, net, retain_loader, forget_loader, val_loader) -> None:
            FailsLater.calls += 1
            if FailsLater.calls == 2:
                raise ValueError("boom")

    with pytest.raises(EvalError, match="request 2 of 2"):
        evaluate_requests(
            FailsLater, tiny, 2,
            context=make_context(results_dir=results_dir, progress=False, echo=False),
        )  # fmt: skip


def finetune_board(tiny, results_dir, docs):
    """The requests board of finetune alone, over 2 requests."""
    return leaderboard_requests(
        tiny,
        2,
        method_names=["finetune"],
        context=make_context(results_dir=results_dir, progress=False, echo=False),
        docs_dir=docs,
    )


def test_leaderboard_shows_every_requests_score_and_the_ceiling(tiny, results_dir, tmp_path):
    path = finetune_board(tiny, results_dir, tmp_path / "docs")
    text = path.read_text()
    assert path.name == "leaderboard-smoke-requests.md"
    assert "| after 1 | after 2 |" in text
    assert "| 1 | finetune |" in text and "*retrain ceiling*" in text


def test_leaderboard_names_the_registered_methods_it_left_out(tiny, results_dir, tmp_path):
    text = finetune_board(tiny, results_dir, tmp_path / "docs").read_text()
    left_out = text.split("not scored in this mode")[1]
    assert "`kookmin`" in left_out and "`finetune`" not in left_out


def test_leaderboard_reuses_a_current_result_instead_of_scoring_again(
    tiny, results_dir, tmp_path, monkeypatch
):
    options = dict(
        method_names=["finetune"],
        context=make_context(results_dir=results_dir, progress=False, echo=False),
        docs_dir=tmp_path / "docs",
    )
    leaderboard_requests(tiny, 2, **options)

    def must_not_run(*args, **kwargs):
        raise AssertionError("scored again")

    monkeypatch.setattr(board_scores, "score_method", must_not_run)
    assert "finetune" in leaderboard_requests(tiny, 2, **options).read_text()


def test_leaderboard_names_an_unknown_method(tiny, tmp_path):
    with pytest.raises(EvalError, match="'nope'"):
        leaderboard_requests(
            tiny, 2, method_names=["nope"], docs_dir=tmp_path, context=make_context(progress=False)
        )
