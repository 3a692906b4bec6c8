"""Specification of intervals on results and boards: computed from stored runs, ties, paired differences."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from local_eval.boards.leaderboard import board_and_data
from local_eval.boards.report import evaluate_method
from local_eval.scoring.context import make_context
from local_eval.scoring.intervals import (
    default_resamples,
    difference_to,
    runs_side,
    score_intervals,
)
from local_eval.scoring.scenarios.standard import Standard
from tests.test_scenarios import PRESET, ceiling, prepared, rows


@pytest.fixture(scope="module")
def finetune_result(smoke_references, tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    return evaluate_method(
        "finetune", "smoke", context=make_context(results_dir=folder, progress=False, echo=False)
    )


def test_every_result_has_score_and_f_intervals_containing_the_estimate(finetune_result):
    record = finetune_result["intervals"]
    assert record["score"][0] <= finetune_result["score"] <= record["score"][1]
    assert record["forget_quality"][0] <= finetune_result["forget_quality"] <= record["forget_quality"][1]
    assert (record["level"], record["num_resamples"]) == (0.95, 1000)


def test_the_ceiling_of_every_result_has_its_interval(finetune_result):
    low, high = finetune_result["ceiling"]["intervals"]["score"]
    assert low <= finetune_result["ceiling"]["score"] <= high


def test_large_forget_sets_default_to_fewer_resamples():
    assert (default_resamples(22), default_resamples(1100)) == (1000, 200)


def with_intervals(board_rows: list[dict], bounds: dict[str, tuple[float, float]]) -> list[dict]:
    for row in board_rows:
        row["intervals"] = {"score": list(bounds[row["method"]]), "level": 0.95, "num_resamples": 9}
    return board_rows


def tied_cells(text: str) -> dict[str, str]:
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    column = header.index("tied with #1")
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    return {row[1]: row[column] for row in cells}


def test_board_marks_as_tied_exactly_the_methods_whose_interval_overlaps_the_leaders():
    # rows(): ams_unlearn 0.163 leads, then ftsu 0.115, kookmin 0.087, finetune 0.065.
    bounds = {
        "ams_unlearn": (0.12, 0.20),
        "ftsu": (0.08, 0.13),
        "kookmin": (0.05, 0.11),
        "finetune": (0.03, 0.09),
    }
    text = board_and_data(
        Standard(), PRESET, prepared(), with_intervals(rows(), bounds), [ceiling()], {}, {}
    )[0]
    marks = tied_cells(text)
    assert {name: marks[name] for name in bounds} == {
        "ams_unlearn": "tied",
        "ftsu": "tied",
        "kookmin": "",
        "finetune": "",
    }


def test_board_shows_each_score_with_its_interval():
    bounds = {name: (0.01, 0.3) for name in ("ams_unlearn", "ftsu", "kookmin", "finetune")}
    text = board_and_data(Standard(), PRESET, prepared(), with_intervals(rows(), bounds), [ceiling()], {}, {})[0]
    assert "| 1 | ams_unlearn | 0.1632 [0.0100, 0.3000] |" in text


def synthetic_refs(n_models: int, n_forget: int, seed: int = 0) -> types.SimpleNamespace:
    """References whose N reference models' confidences are standard normal."""
    rng = np.random.default_rng(seed)
    records = tuple(
        types.SimpleNamespace(
            forget_confidences=torch.tensor(rng.normal(size=n_forget)),
            retain_accuracy=0.9,
            test_accuracy=0.8,
        )
        for _ in range(n_models)
    )
    preset = types.SimpleNamespace(n_models=n_models)
    return types.SimpleNamespace(
        reference=records, data=types.SimpleNamespace(forget=torch.arange(n_forget)), preset=preset
    )


def synthetic_result(shift: float, n_models: int, n_forget: int, seed: int) -> dict:
    """A result whose runs' confidences are normal around ``shift`` (0: like retraining)."""
    rng = np.random.default_rng(seed)
    runs = [
        {
            "forget_confidences": (rng.normal(size=n_forget) + shift).tolist(),
            "retain_accuracy": 0.9,
            "test_accuracy": 0.8,
        }
        for _ in range(n_models)
    ]
    return {"runs": runs}


def test_paired_interval_against_the_leader_is_below_zero_for_a_clearly_worse_method():
    refs = synthetic_refs(16, 20)
    leader = synthetic_result(0.0, 16, 20, seed=1)
    worse = synthetic_result(6.0, 16, 20, seed=2)
    found = difference_to(worse, leader, refs, num_resamples=200)
    assert found["high"] < 0 and found["estimate"] < 0


def test_paired_interval_changes_sign_when_the_sides_swap():
    refs = synthetic_refs(16, 20)
    leader = synthetic_result(0.0, 16, 20, seed=1)
    worse = synthetic_result(6.0, 16, 20, seed=2)
    found = difference_to(leader, worse, refs, num_resamples=200)
    assert found["low"] > 0


def test_paired_interval_from_stored_resamples_equals_resampling_again():
    refs = synthetic_refs(16, 20)
    sides = [synthetic_result(shift, 16, 20, seed) for shift, seed in ((0.0, 1), (1.0, 2))]
    stored = [
        {**side, "score": 0.0, "intervals": score_intervals(runs_side(side), refs, 200)}
        for side in sides
    ]
    from_stored = difference_to(stored[1], stored[0], refs, num_resamples=200)
    resampled = difference_to(sides[1], sides[0], refs, num_resamples=200)
    assert (from_stored["low"], from_stored["high"]) == pytest.approx(
        (resampled["low"], resampled["high"])
    )
