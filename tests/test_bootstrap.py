"""Bootstrap intervals for F and the score: coverage, pairing, ties."""

from __future__ import annotations

import numpy as np
import pytest

from local_eval.errors import EvalError
from local_eval.scoring import metric
from local_eval.scoring.bootstrap import (
    Interval,
    ModelSide,
    bootstrap_difference,
    bootstrap_score,
    draw_resamples,
    tied_with_leader,
)

N_MODELS, N_FORGET = 16, 8


def synthetic_pair(rng: np.random.Generator, n_models: int = N_MODELS, n_forget: int = N_FORGET):
    """Half the forget examples forgotten (same distribution on both sides), half still shifted.

    Each model adds one offset to all its confidences, so models vary as a whole,
    as trained networks do, and resampling models matters.
    """
    shift = np.where(rng.random(n_forget) < 0.5, 0.0, 1.5)
    mean = rng.normal(0, 2, n_forget)
    retrained = mean + 0.3 * rng.normal(size=(n_models, 1)) + rng.normal(size=(n_models, n_forget))
    unlearned = (
        mean + shift + 0.3 * rng.normal(size=(n_models, 1)) + rng.normal(size=(n_models, n_forget))
    )

    def accuracies():
        return list(0.9 + 0.01 * rng.normal(size=n_models))

    return (
        ModelSide(unlearned, accuracies(), accuracies()),
        ModelSide(retrained, accuracies(), accuracies()),
    )


@pytest.fixture
def coarse_metric(monkeypatch):
    """The real metric on a 10x coarser threshold grid, so hundreds of bootstraps take seconds."""
    monkeypatch.setattr(metric, "THRESHOLDS_PER_UNIT", 10)
    monkeypatch.setattr(metric, "NUM_LEFT_THRESHOLDS", 40)


def _forget_quality(side_u: ModelSide, side_r: ModelSide) -> float:
    return metric.forget_quality(side_u.confidences, side_r.confidences, device="cpu")


@pytest.mark.parametrize("level", [0.9, 0.95])
def test_interval_covers_the_true_forget_quality_at_about_its_level(coarse_metric, level):
    rng = np.random.default_rng(7)
    # The true value: F's expectation over draws of models and forget examples.
    true_f = np.mean([_forget_quality(*synthetic_pair(rng)) for _ in range(400)])
    replicates = 60
    covered = 0
    for k in range(replicates):
        interval = bootstrap_score(
            *synthetic_pair(rng), num_resamples=100, level=level, seed=k, device="cpu"
        ).forget_quality
        covered += interval.low <= true_f <= interval.high
    assert abs(covered / replicates - level) <= 0.08


def test_estimate_is_the_metric_on_the_data_as_given(coarse_metric):
    unlearned, retrained = synthetic_pair(np.random.default_rng(0))
    intervals = bootstrap_score(unlearned, retrained, num_resamples=20, device="cpu")
    expected_f = _forget_quality(unlearned, retrained)
    expected_score = metric.final_score(
        expected_f,
        np.mean(unlearned.retain_accuracy),
        np.mean(retrained.retain_accuracy),
        np.mean(unlearned.test_accuracy),
        np.mean(retrained.test_accuracy),
    )
    assert intervals.forget_quality.estimate == pytest.approx(expected_f)
    assert intervals.score.estimate == pytest.approx(expected_score)


def test_same_seed_gives_the_same_interval(coarse_metric):
    pair = synthetic_pair(np.random.default_rng(0))
    first = bootstrap_score(*pair, num_resamples=30, seed=3, device="cpu")
    assert bootstrap_score(*pair, num_resamples=30, seed=3, device="cpu") == first


def test_paired_difference_of_a_method_with_itself_is_exactly_zero(coarse_metric):
    unlearned, retrained = synthetic_pair(np.random.default_rng(0))
    difference = bootstrap_difference(unlearned, unlearned, retrained, num_resamples=30)
    assert (difference.score.low, difference.score.high) == (0.0, 0.0)


def test_paired_difference_is_narrower_than_the_gap_between_separate_intervals(coarse_metric):
    """B is A with slightly lower test accuracy: pairing sees a small, certain difference."""
    rng = np.random.default_rng(1)
    a, retrained = synthetic_pair(rng)
    b = ModelSide(a.confidences, a.retain_accuracy, [x - 0.05 for x in a.test_accuracy])
    paired = bootstrap_difference(a, b, retrained, num_resamples=50, device="cpu").score
    separate_a = bootstrap_score(a, retrained, num_resamples=50, device="cpu").score
    separate_b = bootstrap_score(b, retrained, num_resamples=50, device="cpu").score
    assert paired.low > 0 and separate_a.overlaps(separate_b)


def test_difference_needs_both_methods_on_the_same_models_and_examples():
    a, retrained = synthetic_pair(np.random.default_rng(0))
    b, _ = synthetic_pair(np.random.default_rng(1), n_models=12)
    with pytest.raises(EvalError, match="same N and forget set"):
        bootstrap_difference(a, ModelSide(b.confidences[:, :N_FORGET], *_accs(12)), retrained)


def _accs(n):
    return [0.9] * n, [0.9] * n


def test_accuracies_must_match_the_models():
    unlearned, retrained = synthetic_pair(np.random.default_rng(0))
    short = ModelSide(
        unlearned.confidences, unlearned.retain_accuracy[:-1], unlearned.test_accuracy
    )
    with pytest.raises(EvalError, match="16 models but 15 values of retain_accuracy"):
        bootstrap_score(short, retrained)


def test_resamples_hold_a_part_fixed_when_it_is_not_resampled():
    draws = draw_resamples(5, 4, 6, 6, seed=0, resample=("examples",))
    assert (draws.unlearned == np.arange(6)).all() and (draws.retrained == np.arange(6)).all()


def test_methods_whose_interval_overlaps_the_leaders_are_tied():
    intervals = {
        "a": Interval(0.50, 0.40, 0.60, 0.95),
        "b": Interval(0.45, 0.35, 0.55, 0.95),
        "c": Interval(0.20, 0.10, 0.39, 0.95),
    }
    assert tied_with_leader(intervals) == {"a": True, "b": True, "c": False}


def test_every_interval_contains_its_estimate(coarse_metric):
    rng = np.random.default_rng(11)
    for k in range(20):
        intervals = bootstrap_score(*synthetic_pair(rng), num_resamples=100, seed=k, device="cpu")
        for interval in (intervals.forget_quality, intervals.score):
            assert interval.low <= interval.estimate <= interval.high


def test_model_resamples_never_repeat_a_model():
    draws = draw_resamples(50, 4, 16, 12, seed=0)
    for rows, size in ((draws.unlearned, 16), (draws.retrained, 12)):
        assert rows.shape[1] == size // 2
        assert all(len(set(row.tolist())) == len(row) for row in rows)


def test_forget_examples_are_still_resampled_with_replacement():
    draws = draw_resamples(50, 10, 16, 16, seed=0)
    assert any(len(set(row.tolist())) < 10 for row in draws.examples)
