"""KLoM and the confidence diagnostics: zero where nothing differs, and they name what differs."""

from __future__ import annotations

import numpy as np
import pytest

from local_eval.boards.two_metrics import separated_by_klom, two_metric_lines
from local_eval.boards.views import DIAGNOSTIC_COLUMNS
from local_eval.scoring.bootstrap import ModelSide
from local_eval.scoring.diagnostics import diagnostics, klom_per_example, paired_difference

N_MODELS, N_FORGET = 32, 24


def side(rng: np.random.Generator, shift: float = 0.0, spread: float = 1.0) -> ModelSide:
    """Retrained-like confidences: an example's own level, models varying around it."""
    level = np.linspace(-3, 3, N_FORGET)
    confidences = level + shift + spread * rng.normal(size=(N_MODELS, N_FORGET))
    return ModelSide(confidences, [0.9] * N_MODELS, [0.8] * N_MODELS)


def test_klom_is_zero_for_identical_model_sets():
    confidences = np.random.default_rng(0).normal(size=(16, 10))
    assert np.allclose(klom_per_example(confidences, confidences), 0.0)


def test_klom_grows_with_a_known_shift():
    rng = np.random.default_rng(1)
    retrained = side(rng).confidences
    base = rng.normal(size=retrained.shape) + np.linspace(-3, 3, N_FORGET)
    kloms = [klom_per_example(base + shift, retrained).mean() for shift in (0.0, 1.0, 2.0, 4.0)]
    assert kloms == sorted(kloms) and kloms[-1] > 2 * kloms[0]


def test_retrained_against_retrained_has_no_shift_and_a_spread_ratio_near_one():
    rng = np.random.default_rng(2)
    found = diagnostics(side(rng), side(rng), num_resamples=200)
    low, high = found["mean_shift"]["interval"]
    assert low <= 0 <= high and abs(found["mean_shift"]["estimate"]) < 0.2
    low, high = found["spread_ratio"]["interval"]
    assert low <= 1 <= high and abs(found["spread_ratio"]["estimate"] - 1) < 0.15


def test_an_over_confident_method_is_flagged_by_its_mean_shift():
    rng = np.random.default_rng(3)
    found = diagnostics(side(rng, shift=1.5), side(rng), num_resamples=200)
    assert found["mean_shift"]["interval"][0] > 1.0


def test_an_under_spread_method_is_flagged_by_its_spread_ratio():
    rng = np.random.default_rng(4)
    found = diagnostics(side(rng, spread=0.3), side(rng), num_resamples=200)
    assert found["spread_ratio"]["interval"][1] < 0.5
    low, high = found["mean_shift"]["interval"]
    assert low <= 0 <= high


@pytest.mark.parametrize("name", ["klom", "mean_shift", "spread_ratio"])
def test_every_diagnostic_interval_contains_its_estimate(name):
    rng = np.random.default_rng(5)
    found = diagnostics(side(rng, shift=0.5, spread=0.7), side(rng), num_resamples=200)
    low, high = found[name]["interval"]
    assert low <= found[name]["estimate"] <= high


def test_a_paired_klom_difference_needs_the_same_draws():
    rng = np.random.default_rng(6)
    reference = side(rng)
    a = diagnostics(side(rng, shift=2.0), reference, num_resamples=100, seed=0)
    b = diagnostics(side(rng), reference, num_resamples=100, seed=0)
    assert paired_difference(a, b, "klom")["low"] > 0
    assert paired_difference(a, diagnostics(side(rng), reference, 100, seed=1), "klom") is None


def rows_with(shifts: dict[str, float]) -> list[dict]:
    rng = np.random.default_rng(7)
    reference = side(rng)
    return [
        {
            "method": name,
            "score": 1.0 / (1 + shift),
            "intervals": {"diagnostics": diagnostics(side(rng, shift=shift), reference, 200)},
        }
        for name, shift in shifts.items()
    ]


def test_klom_separates_a_far_method_from_its_leader_and_not_the_leader_itself():
    leader, separated = separated_by_klom(rows_with({"near": 0.0, "far": 3.0}))
    assert (leader, separated) == ("near", ["far"])


def test_the_board_says_how_many_methods_each_metric_separates_and_how_alike_they_order():
    rows = rows_with({"near": 0.0, "mid": 1.0, "far": 3.0})
    differences = {"mid": {"high": 0.1}, "far": {"high": -0.1}}
    text = "\n".join(two_metric_lines(rows, differences))
    assert "the score tells 1 from its leader `near`" in text
    assert "Kendall's tau = 1.00" in text


@pytest.mark.parametrize("column", DIAGNOSTIC_COLUMNS, ids=lambda c: c.header)
def test_a_diagnostic_column_shows_estimate_and_interval_and_is_blank_without_them(column):
    row = rows_with({"a": 1.0})[0]
    assert column.cell(row).count("[") == 1
    assert column.cell({"method": "old", "score": 0.1}) == ""
