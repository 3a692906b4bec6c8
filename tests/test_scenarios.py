"""Specification of the scenario protocol: one registry, one renderer, one side channel for methods."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import types
from pathlib import Path

import pytest
import torch

from local_eval.boards.leaderboard import board_and_data
from local_eval.errors import EvalError
from local_eval.scoring.presets import get_preset
from local_eval.scoring.scenarios import Prepared, Step, get_scenario, scenario_names
from local_eval.scoring.scenarios.federated import Federated
from local_eval.scoring.scenarios.requests import Requests
from local_eval.scoring.scenarios.standard import Standard
from methods.common import SCENARIO_ENV, scenario_context

# Boards rendered from the inputs below (date masked): first written by the three per-scenario
# renderers at a0be3e6, regenerated when intervals, ties, the paired difference and the cost
# note were added (every other line and cell checked unchanged).
BOARDS = Path(__file__).parent / "boards"
FAILURES = {"broken": "RuntimeError: shape\n  mismatch"}
LEFT_OUT = ["sebastian", "hirs"]


def rows(steps: int = 0) -> list[dict]:
    rnd = random.Random(7)
    out = []
    for name in ["finetune", "kookmin", "ftsu", "ams_unlearn"]:
        row = {
            "method": name,
            "device": "cpu",
            "score": rnd.random() * 0.2,
            "forget_quality": rnd.random(),
            "retain_ratio": rnd.random(),
            "test_ratio": rnd.random(),
            "time_fraction": rnd.random() * 0.3,
            "seconds_per_run": rnd.random() * 100,
            "runs": [{"seconds": rnd.random() * 50} for _ in range(3)],
        }
        if steps:
            row["steps"] = [{"score": rnd.random() * 0.2} for _ in range(steps)]
            row["score"] = row["steps"][-1]["score"]
        out.append(row)
    return out


def ceiling(seed: int = 3) -> dict:
    rnd = random.Random(seed)
    return {
        "score": 0.15,
        "forget_quality": rnd.random(),
        "retain_ratio": rnd.random(),
        "test_ratio": rnd.random(),
    }


def prepared(steps: int = 1, record: dict | None = None) -> Prepared:
    data = types.SimpleNamespace(
        retain=torch.arange(1000),
        forget=torch.arange(1000, 1021),
        val=torch.arange(100),
        test=torch.arange(300),
    )
    refs = types.SimpleNamespace(data=data, retrain_seconds=123.4, key="k")
    return Prepared(steps=(Step(refs=refs, given=data),) * steps, record=record or {}, reuse={})


def expected(name: str) -> str:
    return (BOARDS / f"{name}.md").read_text()


def masked(text: str) -> str:
    return re.sub(r"Generated \d{4}-\d{2}-\d{2}", "Generated DATE", text)


PRESET = get_preset("cpu", {"n_models": 8})


def test_registry_finds_the_three_scenarios_by_their_result_mode():
    assert {"standard", "requests", "federated"} <= set(scenario_names())


def test_an_unknown_scenario_is_refused_with_the_known_ones():
    with pytest.raises(EvalError, match="choose one of .*federated.*requests.*standard"):
        get_scenario("class_forgetting")


def test_standard_board_renders_as_before():
    text = board_and_data(Standard(), PRESET, prepared(), rows(), [ceiling()], {}, FAILURES, LEFT_OUT)[0]
    assert masked(text) == expected("standard")


def test_requests_board_renders_as_before():
    text = board_and_data(
        Requests(3),
        PRESET,
        prepared(3, {"k": 3, "grouping": "persons", "request_sizes": [7, 7, 7]}),
        rows(3),
        [ceiling(1), ceiling(2), ceiling(3)],
        {},
        FAILURES,
        LEFT_OUT,
    )[0]
    assert masked(text) == expected("requests")


def test_federated_board_renders_as_before_with_the_companion_score():
    companions = {"finetune": {"score": 0.1234}, "ftsu": {"score": 0.05}}
    text = board_and_data(
        Federated(clients=4), PRESET, prepared(), rows(), [ceiling()], companions, FAILURES, LEFT_OUT
    )[0]
    assert masked(text) == expected("federated")


def test_scenario_context_is_none_where_nothing_is_offered(monkeypatch):
    monkeypatch.delenv(SCENARIO_ENV, raising=False)
    assert scenario_context() is None


def test_scenario_context_returns_what_the_scenario_offers(monkeypatch):
    monkeypatch.setenv(SCENARIO_ENV, json.dumps({"scenario": "requests", "request": 2}))
    assert scenario_context() == {"scenario": "requests", "request": 2}


def test_scenario_context_ignores_a_value_that_is_not_a_json_object(monkeypatch):
    monkeypatch.setenv(SCENARIO_ENV, "not json")
    assert scenario_context() is None


@pytest.mark.parametrize("name", sorted(scenario_names()))
def test_a_scenario_says_what_to_compute_and_leaves_its_board_to_the_views(name):
    cls = scenario_names()[name]
    assert not hasattr(cls, "board") and not hasattr(cls, "describe")


def test_a_scenario_without_a_view_is_shown_as_the_standard_board_with_its_name():
    from local_eval.boards.views import board_view, standard_view

    @dataclasses.dataclass(frozen=True)
    class WholeClass:
        name = "whole_class"

    board = board_view(WholeClass(), PRESET, prepared(), "Generated today")
    standard = standard_view(Standard(), PRESET, prepared(), "Generated today")
    assert board.title == standard.title + ", whole_class"
    assert [c.header for c in board.columns] == [c.header for c in standard.columns]
    assert not board.compares_with_kaggle and standard.compares_with_kaggle


@pytest.mark.parametrize("name", sorted(scenario_names()))
def test_every_scenario_has_a_view_with_its_summary_phrase(name):
    from local_eval.boards.views import VIEWS

    assert name in VIEWS


def test_a_result_of_a_scenario_without_a_view_is_summarised_by_its_name():
    from local_eval.boards.views import describe

    assert describe({"mode": "whole_class"}) == ", whole_class"
    assert describe({}) == ""
