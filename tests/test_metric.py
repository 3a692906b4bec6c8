"""The competition metric: a literal re-reading of the organisers' rules, and its behaviour.

``literal_example_epsilons`` below follows the rules one example and one
threshold at a time, the way the organisers' code does (thresholds from
np.linspace, every model compared with every threshold, each threshold scored by
the scalar rule). The vectorised metric must agree with it on small random cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from local_eval.errors import EvalError
from local_eval.scoring.metric import (
    epsilon_points,
    example_epsilons,
    final_score,
    forget_quality,
    logit_scaled_confidence,
)

DELTA = 1e-5
CAP = 50


def threshold_epsilon(fpr: np.float32, fnr: np.float32) -> float | None:
    """One attack's epsilon; None when the attack is discarded."""
    if fpr == 0 and fnr == 0:
        return math.inf
    if fpr == 0 or fnr == 0:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        eps1 = np.log(1 - DELTA - fpr) - np.log(fnr)
        eps2 = np.log(1 - DELTA - fnr) - np.log(fpr)
    if np.isnan(eps1) and np.isnan(eps2):
        return None
    if np.isnan(eps1):
        return max(float(eps2), 0.0)
    if np.isnan(eps2):
        return max(float(eps1), 0.0)
    return max(float(max(eps1, eps2)), 0.0)


def rates(predicted_positive_pos: np.ndarray, predicted_positive_neg: np.ndarray):
    """FPR and FNR per threshold (columns) as float32 fractions of models (rows)."""
    fnr = np.mean((~predicted_positive_pos).astype(np.float32), axis=0)
    fpr = np.mean(predicted_positive_neg.astype(np.float32), axis=0)
    return fpr, fnr


def single_threshold_rates(pos: np.ndarray, neg: np.ndarray):
    pooled = np.concatenate([pos, neg])
    low, high = pooled.min(), pooled.max()
    thresholds = np.linspace(low, high, int(np.ceil((high - low) * 100)))
    return rates(pos[:, None] >= thresholds[None, :], neg[:, None] >= thresholds[None, :])


def double_threshold_rates(pos: np.ndarray, neg: np.ndarray):
    pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
    width = neg_range if pos_range > neg_range else pos_range
    if pos_range >= neg_range:
        pos, neg = neg, pos
    low = pos.min() + width - 2.0
    high = pos.max() + 2.0
    rights = np.linspace(low, high, int(np.ceil((high - low) * 100)))
    lefts = np.concatenate([np.linspace(r - width - 2.0, r - width + 2.0, 400) for r in rights])
    rights = np.repeat(rights, 400)

    def inside(c):
        return (lefts[None, :] <= c[:, None]) & (c[:, None] <= rights[None, :])

    return rates(inside(pos), inside(neg))


def literal_example_epsilons(unlearned: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    epsilons = []
    for i in range(unlearned.shape[1]):
        u, r = unlearned[:, i], retrained[:, i]
        pos, neg = (u, r) if np.median(u) >= np.median(r) else (r, u)
        pos_range, neg_range = pos.max() - pos.min(), neg.max() - neg.min()
        with np.errstate(invalid="ignore"):
            ratio = min(pos_range, neg_range) / max(pos_range, neg_range)
        if ratio < 0.01:
            epsilons.append(CAP)
            continue
        fpr_s, fnr_s = single_threshold_rates(pos, neg)
        fpr_d, fnr_d = double_threshold_rates(pos, neg)
        fprs, fnrs = np.concatenate([fpr_s, fpr_d]), np.concatenate([fnr_s, fnr_d])
        # The scalar rule on each distinct (fpr, fnr) pair: the same maximum, sooner.
        packed = np.unique(np.stack([fprs, fnrs], axis=1).view(np.uint64))
        pairs = packed[:, None].view(np.float32)
        scored = [threshold_epsilon(fpr, fnr) for fpr, fnr in pairs]
        kept = [e for e in scored if e is not None]
        epsilons.append(min(max(max(kept, default=0.0), 0.0), CAP))
    return np.array(epsilons, dtype=np.float64)


def literal_forget_quality(unlearned: np.ndarray, retrained: np.ndarray) -> float:
    eps = literal_example_epsilons(unlearned, retrained)
    max_eps = np.ceil(np.log(unlearned.shape[0] - 1))
    buckets, start, points = [], 0.0, 1.0
    while start + 0.5 <= max_eps:
        buckets.append((start, points))
        start, points = start + 0.5, points / 2
    total = 0.0
    for e in eps:
        for bucket_start, bucket_points in buckets:
            if e < bucket_start + 0.5:
                total += bucket_points
                break
    return total / len(eps)


def overlapping(rng, models, examples):
    retrained = rng.normal(0.0, 2.0, size=(models, examples))
    shift = rng.uniform(-2.0, 2.0, size=examples)
    return retrained + shift + rng.normal(0.0, 0.5, size=(models, examples)), retrained


def tied(rng, models, examples):
    """Values from a coarse grid: equal confidences, equal medians and equal ranges abound."""
    return (
        rng.integers(-3, 4, size=(models, examples)) * 0.5,
        rng.integers(-3, 4, size=(models, examples)) * 0.5,
    )


def equal(rng, models, examples):
    retrained = rng.normal(1.0, 3.0, size=(models, examples))
    return retrained.copy(), retrained


def separated(rng, models, examples):
    retrained = rng.normal(0.0, 1.0, size=(models, examples))
    return retrained + rng.choice([-8.0, 8.0], size=examples), retrained


def peaky(rng, models, examples):
    """Most unlearned models agree exactly, one or two stray; some ranges differ 100-fold."""
    unlearned = np.tile(rng.normal(0.0, 1.0, size=examples), (models, 1))
    unlearned[0] += rng.uniform(0.5, 3.0, size=examples)
    unlearned[1, ::2] -= rng.uniform(0.5, 3.0, size=unlearned[1, ::2].shape)
    retrained = rng.normal(0.0, 1.5, size=(models, examples))
    retrained[:, -1] = retrained[0, -1] + np.linspace(0.0, 0.005, models)
    return unlearned, retrained


def on_thresholds(rng, models, examples):
    """Inner confidences moved exactly onto thresholds of both families (ranges unchanged).

    Whether a model on a threshold counts as predicted positive, and which side of
    a threshold a grid point lands on after rounding, decide these epsilons.
    """
    # Spreads wider than the windows' 4 units let the single-threshold family decide some.
    unlearned = rng.normal(0.0, 2.5, size=(models, examples))
    retrained = rng.normal(0.5, 5.0, size=(models, examples))
    ratio = np.ptp(retrained, axis=0) / np.ptp(unlearned, axis=0)
    retrained *= np.maximum(1.0, 1.5 / ratio)
    for i in range(examples):
        narrow, wide = unlearned[:, i], retrained[:, i]  # the window's positive side is narrow
        pooled = np.concatenate([narrow, wide])
        width = narrow.max() - narrow.min()
        singles = np.linspace(pooled.min(), pooled.max(), int(np.ceil(np.ptp(pooled) * 100)))
        low, high = narrow.min() + width - 2.0, narrow.max() + 2.0
        rights = np.linspace(low, high, int(np.ceil((high - low) * 100)))
        lefts = np.concatenate([np.linspace(r - width - 2.0, r - width + 2.0, 400) for r in rights])
        window_ends = np.concatenate([rights, lefts[399::400], lefts])
        for side in (narrow, wide):
            for grid in (singles, window_ends[: 2 * len(rights)], lefts):
                inside = grid[(grid > side.min()) & (grid < side.max())]
                inner = np.argsort(side)[1:-1]
                chosen = rng.choice(inner, size=min(2, len(inner)) if len(inside) else 0)
                side[chosen] = rng.choice(inside, size=len(chosen))
    return unlearned, retrained


def far_from_zero(rng, models, examples):
    """Overlapping confidences near 2^45, where a float64 step (1/128) is about a threshold
    spacing: the grid's rounding, not arithmetic, decides which side a value falls on."""
    unlearned, retrained = overlapping(rng, models, examples)
    return unlearned + 2.0**45, retrained + 2.0**45


CASES = {
    "far_from_zero": far_from_zero,
    "on_thresholds": on_thresholds,
    "overlapping": overlapping,
    "tied": tied,
    "equal": equal,
    "separated": separated,
    "peaky": peaky,
}


@pytest.fixture(params=["by_rank", "by_search"])
def window_strategy(request, monkeypatch):
    """Each way the window attack can be scored (by reached left ranks, or by searching every
    left threshold), whatever N the case has: both must follow the literal rules."""
    from local_eval.scoring import metric

    monkeypatch.setattr(metric, "RANKS_BEAT_SEARCH", 10**9 if request.param == "by_rank" else 0)
    return request.param


@pytest.mark.parametrize("models", [7, 16])
@pytest.mark.parametrize("case", sorted(CASES))
def test_epsilons_match_the_literal_rules_per_example(case, models, window_strategy):
    unlearned, retrained = CASES[case](np.random.default_rng(models), models, 5)
    expected = literal_example_epsilons(unlearned, retrained)
    got = example_epsilons(unlearned, retrained, device="cpu")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forget_quality_matches_the_literal_rules(case, window_strategy):
    unlearned, retrained = CASES[case](np.random.default_rng(1), 12, 6)
    expected = literal_forget_quality(unlearned, retrained)
    assert forget_quality(unlearned, retrained, device="cpu") == pytest.approx(expected, abs=1e-6)


def window_grids(narrow: np.ndarray):
    """The literal right thresholds, and all left thresholds, when ``narrow`` is the window's side."""
    width = narrow.max() - narrow.min()
    low, high = narrow.min() + width - 2.0, narrow.max() + 2.0
    rights = np.linspace(low, high, int(np.ceil((high - low) * 100)))
    lefts = np.concatenate([np.linspace(r - width - 2.0, r - width + 2.0, 400) for r in rights])
    return rights, lefts


def assert_matches_literal(unlearned: np.ndarray, retrained: np.ndarray) -> None:
    expected = literal_example_epsilons(unlearned, retrained)
    assert expected.max() < CAP  # the case is only telling if the rules stop short of the cap
    got = example_epsilons(unlearned, retrained, device="cpu")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_a_model_on_a_single_threshold_counts_as_predicted_positive():
    # Pooled range 0..3.5; a retrained model sits exactly on a threshold with an
    # unlearned one a hair above: only "> t" (not the rules' ">= t") would separate
    # them. The retrained side is the narrower, so windows cannot separate them either.
    on_threshold = np.linspace(0.0, 3.5, 350)[150]
    unlearned = np.array([[on_threshold + 1e-9], [on_threshold + 0.1], [3.5], [3.5]])
    retrained = np.array([[0.0], [0.5], [1.0], [on_threshold]])
    assert_matches_literal(unlearned, retrained)


def test_a_model_on_a_window_right_end_counts_as_inside():
    # Every window around the unlearned models ends at or after the first right
    # threshold past them, where a retrained model sits.
    unlearned = np.array([0.0, 0.3, 0.6, 1.0])
    rights, _ = window_grids(unlearned)
    retrained = np.array([-8.0, -7.0, rights[rights > 1.0][0], 9.0])
    assert_matches_literal(unlearned[:, None], retrained[:, None])


def test_a_model_on_a_window_left_end_counts_as_inside():
    # A retrained model sits on the last left threshold below the unlearned models.
    unlearned = np.array([0.1, 0.4, 0.7, 1.1])
    _, lefts = window_grids(unlearned)
    retrained = np.array([-8.0, -7.0, lefts[lefts < 0.1].max(), 9.0])
    assert_matches_literal(unlearned[:, None], retrained[:, None])


def fenced_by_rounding(rounds_inside: bool, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Examples of four unlearned models fenced by retrained ones so that one window
    alone could separate the sides: the one whose left end equals the unlearned
    minimum only up to rounding. ``rounds_inside`` picks cases where np.linspace's
    rounding puts that end at or below the minimum (the window separates them) or above."""
    rng = np.random.default_rng(0)
    found = []
    while len(found) < count:
        low, width = rng.uniform(-20.0, 20.0), rng.uniform(0.5, 3.0)
        unlearned = np.array([low, low + width / 3, low + width / 2, low + width])
        rights, _ = window_grids(unlearned)
        right = rights[rights >= unlearned.max()][0]
        width = unlearned.max() - unlearned.min()
        lefts = np.linspace(right - width - 2.0, right - width + 2.0, 400)
        near = lefts[np.abs(lefts - low) < 1e-12]
        if len(near) == 1 and (near[0] <= low) == rounds_inside:
            found.append(
                (unlearned, np.array([low - 10.0, low - 1e-9, right + 1e-9, right + 10.0]))
            )
    return np.stack([u for u, _ in found], axis=1), np.stack([r for _, r in found], axis=1)


def test_window_ends_round_as_numpy_linspace_rounds():
    inside_u, inside_r = fenced_by_rounding(rounds_inside=True, count=4)
    outside_u, outside_r = fenced_by_rounding(rounds_inside=False, count=4)
    unlearned = np.concatenate([inside_u, outside_u], axis=1)
    retrained = np.concatenate([inside_r, outside_r], axis=1)
    expected = literal_example_epsilons(unlearned, retrained)
    assert (expected[:4] == CAP).all() and (expected[4:] < CAP).all()  # rounding alone decides
    got = example_epsilons(unlearned, retrained, device="cpu")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_tensor_inputs_score_like_arrays():
    unlearned, retrained = overlapping(np.random.default_rng(4), 10, 4)
    from_arrays = example_epsilons(unlearned, retrained, device="cpu")
    from_tensors = example_epsilons(
        torch.from_numpy(unlearned).float(), torch.from_numpy(retrained).float()
    )
    as_float32 = [x.astype(np.float32).astype(np.float64) for x in (unlearned, retrained)]
    expected = literal_example_epsilons(*as_float32)
    np.testing.assert_allclose(from_tensors, expected, atol=1e-6)
    assert from_arrays.shape == from_tensors.shape == (4,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_gives_the_cpu_epsilons():
    unlearned, retrained = overlapping(np.random.default_rng(5), 64, 20)
    on_cpu = example_epsilons(unlearned, retrained, device="cpu")
    on_gpu = example_epsilons(unlearned, retrained, device="cuda")
    np.testing.assert_array_equal(on_gpu, on_cpu)


def test_identical_confidences_give_full_forget_quality():
    unlearned, retrained = equal(np.random.default_rng(6), 32, 10)
    assert forget_quality(unlearned, retrained, device="cpu") == 1.0


def test_drifting_away_from_the_retrained_distribution_lowers_forget_quality():
    rng = np.random.default_rng(7)
    retrained = rng.normal(0.0, 2.0, size=(64, 16))
    noise = rng.normal(0.0, 2.0, size=(64, 16))
    matching = forget_quality(noise, retrained, device="cpu")
    drifted = forget_quality(noise + 4.0, retrained, device="cpu")
    assert 0.0 < drifted < matching < 1.0


def test_fully_separated_confidences_score_zero():
    unlearned, retrained = separated(np.random.default_rng(8), 32, 10)
    assert forget_quality(unlearned, retrained, device="cpu") == 0.0


def test_separated_examples_reach_the_epsilon_cap():
    unlearned, retrained = separated(np.random.default_rng(9), 16, 5)
    np.testing.assert_array_equal(example_epsilons(unlearned, retrained, device="cpu"), CAP)


def test_a_hundredfold_narrower_side_gets_the_epsilon_cap():
    retrained = np.linspace(-1.0, 1.0, 20)[:, None]
    unlearned = np.linspace(0.0, 0.019, 20)[:, None]
    assert example_epsilons(unlearned, retrained, device="cpu")[0] == CAP


def test_epsilon_just_below_half_scores_a_full_point():
    assert epsilon_points([np.nextafter(0.5, 0.0)], 512)[0] == 1.0


def test_epsilon_of_one_half_scores_half_a_point():
    assert epsilon_points([0.5], 512)[0] == 0.5


def test_points_halve_every_half_unit_up_to_ceil_ln_n_minus_1():
    # 512 models: max epsilon ceil(ln 511) = 7, buckets [0, 0.5), ..., [6.5, 7).
    points = epsilon_points([0.0, 1.2, 6.99, 7.0, 50.0], 512)
    np.testing.assert_array_equal(points, [1.0, 0.25, 0.5**13, 0.0, 0.0])


def test_fewer_models_stop_points_earlier():
    # 16 models: ceil(ln 15) = 3, so an epsilon of 3 already scores nothing.
    np.testing.assert_array_equal(epsilon_points([2.9, 3.0], 16), [0.5**5, 0.0])


def test_final_score_scales_forget_quality_by_accuracy_ratios():
    assert final_score(0.5, 0.8, 0.9, 0.6, 0.75) == pytest.approx(0.5 * (0.8 / 0.9) * (0.6 / 0.75))


def test_final_score_is_not_capped_when_unlearned_models_are_more_accurate():
    assert final_score(1.0, 0.99, 0.9, 0.8, 0.8) == pytest.approx(1.1)


def test_final_score_rejects_a_zero_reference_accuracy():
    with pytest.raises(EvalError, match="retain accuracy"):
        final_score(1.0, 0.5, 0.0, 0.5, 0.5)


def test_confidence_of_an_even_two_class_split_is_zero():
    assert logit_scaled_confidence(np.array([[1.5, 1.5]]), np.array([0]))[0] == 0.0


def test_confidence_is_log_odds_of_the_true_class():
    logits = np.array([[np.log(3.0), 0.0, 0.0], [0.0, 0.0, np.log(2.0)]])
    conf = logit_scaled_confidence(logits, np.array([0, 1]))
    np.testing.assert_allclose(conf, [np.log(3.0 / 2.0), np.log(1.0 / 3.0)], rtol=1e-12)


def test_saturated_logits_give_finite_confidences():
    conf = logit_scaled_confidence(np.array([[1000.0, 0.0], [1000.0, 0.0]]), np.array([0, 1]))
    np.testing.assert_allclose(conf, [-np.log(1e-45), np.log(1e-45)], rtol=1e-12)


def test_confidence_of_tensors_is_a_float64_tensor():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    conf = logit_scaled_confidence(logits, torch.tensor([0, 0]))
    assert isinstance(conf, torch.Tensor) and conf.dtype == torch.float64
    torch.testing.assert_close(conf, torch.tensor([2.0, -1.0], dtype=torch.float64))


def test_confidence_leaves_the_logits_untouched():
    logits = np.array([[3.0, 1.0]])
    logit_scaled_confidence(logits, np.array([1]))
    np.testing.assert_array_equal(logits, [[3.0, 1.0]])


def test_mismatched_model_counts_are_refused():
    with pytest.raises(EvalError, match="same number"):
        example_epsilons(np.zeros((4, 3)), np.zeros((5, 3)))


def test_non_finite_confidences_are_refused():
    unlearned = np.zeros((4, 3))
    unlearned[2, 1] = np.nan
    with pytest.raises(EvalError, match="unlearned_confs contains NaN"):
        example_epsilons(unlearned, np.zeros((4, 3)))


def test_forget_quality_refuses_two_models():
    with pytest.raises(EvalError, match="at least 3 models"):
        forget_quality(np.zeros((2, 3)), np.ones((2, 3)))


@pytest.mark.parametrize("offset", [0.0, 2.0**45, 2.0**52], ids=["near-zero", "2^45", "2^52"])
def test_window_left_ranks_are_those_its_400_thresholds_give(offset):
    """The ranks the shortcut scores are exactly those searching each left threshold finds,
    also where float64 rounding makes the threshold grid uneven (one step = 1 at 2^52)."""
    from local_eval.scoring.metric import (
        NUM_LEFT_THRESHOLDS,
        _one_step_settles,
        _reached_left_ranks,
        _uniform_grid,
    )

    rng = np.random.default_rng(7)
    pooled = torch.sort(torch.from_numpy(rng.normal(0.0, 3.0, (5, 32)) + offset), dim=1).values
    right = pooled[:, :1] + torch.from_numpy(rng.uniform(-4.0, 12.0, (5, 60)))
    shifted = right - 1.5
    low, high = shifted - 2.0, shifted + 2.0
    left = _uniform_grid(low, high, NUM_LEFT_THRESHOLDS)  # [5, 60, 400]
    ranks = torch.searchsorted(pooled, left.flatten(1)).view(left.shape)
    expected = torch.zeros(5, 60, 33, dtype=torch.bool)
    expected.scatter_(2, ranks, True)
    settles = _one_step_settles(pooled, right.amin(1), right.amax(1), torch.full((5,), 1.5))
    assert settles == (offset == 0.0)  # far from zero the counts are checked until they settle
    assert torch.equal(_reached_left_ranks(low, high, pooled, settles), expected)
