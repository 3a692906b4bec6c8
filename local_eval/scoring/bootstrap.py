"""Confidence intervals for F and the final score, and for differences between methods.

A local score is a mean over a few dozen forget examples, computed from N
unlearned and N retrained models: all three are samples, and the score would
move with another draw of any of them. Each resample draws the forget examples
with replacement (the same columns on both sides, since the metric pairs them),
and half of the unlearned and half of the retrained models *without*
replacement (each model's forget confidences together with its retain and test
accuracy), and rescores.

Why halves and not the usual bootstrap of models: a bootstrap resample repeats
models, and repeated confidences are easier for the threshold attacks to tell
apart, so resampled scores sat below the estimate and intervals could exclude
their own estimate (21 of 248 on the boards before this scheme). A half-sample
never repeats a model, and for a mean over models its spread about the full
sample's value is the full sample's own standard error (m = N/2 of N without
replacement: variance sigma^2/m x (N-m)/(N-1), about sigma^2/N). Half as many
models also move the metric's level (its epsilon grid is coarser), so the
resampled values are centred: an interval is the estimate plus the percentiles
of the resampled values' deviations from their own mean. It therefore always
holds its estimate, unless the deviations are wildly skewed. The coverage
check on synthetic confidences is in tests/test_bootstrap.py.

The work is vectorised through the metric itself: the metric treats every forget
example on its own, so the epsilons of all B model resamples are one call on
confidences of shape ``[N, B x n_forget]`` (in chunks), and resampling the
examples afterwards only re-averages those epsilons' points.

Inputs are plain: confidences ``[num_models, num_forget]`` (numpy or torch, the
values ``metric.logit_scaled_confidence`` gives, forget examples in the same
order on both sides) and per-model accuracy lists in 0..1. For the retrain
ceiling pass the ceiling models as the unlearned side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from local_eval.errors import EvalError
from local_eval.scoring.metric import epsilon_points, example_epsilons

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
# Columns (model resample x forget example) per metric call: bounds memory at
# 8 bytes x N x this per side (N = 64: ~134 MB).
CHUNK_COLUMNS = 1 << 18


@dataclass(frozen=True)
class Interval:
    """A point estimate (on the data as given) and a percentile interval at ``level``."""

    estimate: float
    low: float
    high: float
    level: float

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high


@dataclass(frozen=True)
class ScoreIntervals:
    """Intervals of forget quality F and of the final score, from the same resamples."""

    forget_quality: Interval
    score: Interval


@dataclass(frozen=True)
class ModelSide:
    """One side of the metric: N models' forget confidences and their accuracies.

    ``confidences`` is ``[N, num_forget]``; ``retain_accuracy`` and
    ``test_accuracy`` hold one value per model, in the rows' order.
    """

    confidences: np.ndarray | torch.Tensor
    retain_accuracy: Sequence[float]
    test_accuracy: Sequence[float]


@dataclass(frozen=True)
class Resamples:
    """Row and column draws shared by every statistic of one bootstrap.

    ``examples`` is ``[B, num_forget]`` (with replacement); ``unlearned`` and
    ``retrained`` are ``[B, m]``, m model rows drawn without replacement (all rows,
    in order, for a side that is not resampled).
    """

    examples: np.ndarray
    unlearned: np.ndarray
    retrained: np.ndarray


RESAMPLED = ("examples", "unlearned", "retrained")
# Stored with every interval record, so records made by another scheme are recomputed.
SCHEME = "half-sampled models, centred"
# The metric needs at least this many models a side.
MIN_MODELS = 3


def half(num_models: int) -> int:
    """How many models a half-sample draws: N/2, but never fewer than the metric needs."""
    return min(num_models, max(MIN_MODELS, num_models // 2))


def draw_resamples(
    num_resamples: int,
    num_forget: int,
    num_unlearned: int,
    num_retrained: int,
    seed: int,
    resample: Sequence[str] = RESAMPLED,
) -> Resamples:
    """Seeded draws; the same seed gives the same resamples on any machine.

    Examples are drawn with replacement, models as half-samples without
    replacement (:func:`half`). A part left out of ``resample`` keeps its identity
    order in every resample (e.g. ``("examples",)`` holds the models fixed).
    """
    if num_resamples < 1:
        raise EvalError(f"num_resamples={num_resamples} must be at least 1 (1000 is usual).")
    unknown = sorted(set(resample) - set(RESAMPLED))
    if unknown:
        raise EvalError(f"resample={tuple(resample)}: {unknown} not among {RESAMPLED}.")
    rng = np.random.default_rng([seed, 0xB007])

    def models(size: int, part: str) -> np.ndarray:
        if part not in resample:
            return np.broadcast_to(np.arange(size), (num_resamples, size))
        keys = rng.random((num_resamples, size))
        return np.sort(np.argsort(keys, axis=1)[:, : half(size)], axis=1)

    drawn = {
        "examples": rng.integers(0, num_forget, (num_resamples, num_forget))
        if "examples" in resample
        else np.broadcast_to(np.arange(num_forget), (num_resamples, num_forget)),
        "unlearned": models(num_unlearned, "unlearned"),
        "retrained": models(num_retrained, "retrained"),
    }
    return Resamples(**drawn)


def bootstrap_score(
    unlearned: ModelSide,
    retrained: ModelSide,
    num_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> ScoreIntervals:
    """Intervals for one method's (or the ceiling's) F and score against the reference models.

    ``retrained`` is the reference side: the N models the metric's distribution
    comes from, whose mean accuracies divide the method's in the score.
    """
    _check_sides(unlearned, retrained)
    draws = _draws(unlearned, retrained, num_resamples, seed)
    estimate_f, estimate_s = _point(unlearned, retrained, device)
    f, s = _resampled(unlearned, retrained, draws, device, (estimate_f, estimate_s))
    return ScoreIntervals(_interval(estimate_f, f, level), _interval(estimate_s, s, level))


def bootstrap_difference(
    method_a: ModelSide,
    method_b: ModelSide,
    retrained: ModelSide,
    num_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> ScoreIntervals:
    """Paired intervals of A minus B (F and score) on the same reference models.

    Both methods see the same resampled forget examples, the same resampled
    reference models and the same resampled run indices (run i of A with run i of
    B, which share a seed in the project's runs), so what the two have in common
    cancels and the interval is narrower than comparing two separate intervals.
    An interval excluding 0 says A and B differ at this level.
    """
    _check_sides(method_a, retrained)
    _check_sides(method_b, retrained)
    if np.shape(method_a.confidences) != np.shape(method_b.confidences):
        raise EvalError(
            f"A paired interval needs both methods scored with the same N and forget set; got "
            f"confidences of shapes {tuple(np.shape(method_a.confidences))} and "
            f"{tuple(np.shape(method_b.confidences))}."
        )
    draws = _draws(method_a, retrained, num_resamples, seed)
    fa, sa = _point(method_a, retrained, device)
    fb, sb = _point(method_b, retrained, device)
    ra, rsa = _resampled(method_a, retrained, draws, device, (fa, sa))
    rb, rsb = _resampled(method_b, retrained, draws, device, (fb, sb))
    return ScoreIntervals(_interval(fa - fb, ra - rb, level), _interval(sa - sb, rsa - rsb, level))


def resampled_statistics(
    unlearned: ModelSide,
    retrained: ModelSide,
    num_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """F and the score under each of the B seeded resamples, both shape ``[B]``.

    Each is the estimate plus the resample's deviation from the resamples' mean
    (centred, so percentiles are the interval). The draws depend only on the seed
    and the sides' shapes, so two methods' arrays at the same shapes and seed
    subtract into exactly the paired difference ``bootstrap_difference``
    computes: keep them, and a board pairs any two methods without resampling
    again.
    """
    _check_sides(unlearned, retrained)
    return _resampled(unlearned, retrained, _draws(unlearned, retrained, num_resamples, seed), device)


def tied_with_leader(intervals: Mapping[str, Interval]) -> dict[str, bool]:
    """Which entries are tied with the leader (highest estimate): their intervals overlap its.

    The leader itself is tied with itself (True), so a board can mark every
    method it cannot tell apart from first place, the leader included.
    """
    if not intervals:
        return {}
    leader = max(intervals, key=lambda name: intervals[name].estimate)
    return {name: interval.overlaps(intervals[leader]) for name, interval in intervals.items()}


def _draws(unlearned: ModelSide, retrained: ModelSide, num_resamples: int, seed: int) -> Resamples:
    n_u, n_forget = np.shape(unlearned.confidences)
    n_r = np.shape(retrained.confidences)[0]
    return draw_resamples(num_resamples, n_forget, n_u, n_r, seed)


def _point(
    unlearned: ModelSide, retrained: ModelSide, device: torch.device | str | None
) -> tuple[float, float]:
    confs_u, confs_r = _as_array(unlearned.confidences), _as_array(retrained.confidences)
    points = epsilon_points(example_epsilons(confs_u, confs_r, device=device), len(confs_u))
    quality = float(points.mean())
    return quality, quality * _utility(
        np.asarray(unlearned.retain_accuracy, dtype=np.float64)[None],
        np.asarray(unlearned.test_accuracy, dtype=np.float64)[None],
        np.asarray(retrained.retain_accuracy, dtype=np.float64)[None],
        np.asarray(retrained.test_accuracy, dtype=np.float64)[None],
    )[0]


def _resampled(
    unlearned: ModelSide,
    retrained: ModelSide,
    draws: Resamples,
    device: torch.device | str | None,
    estimates: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`resampled_statistics` on given draws (and estimates, when known)."""
    confs_u, confs_r = _as_array(unlearned.confidences), _as_array(retrained.confidences)
    points = _resampled_points(confs_u, confs_r, draws, device)  # [B, n_forget]
    quality = np.take_along_axis(points, draws.examples, axis=1).mean(axis=1)
    utility = _utility(
        np.asarray(unlearned.retain_accuracy, dtype=np.float64)[draws.unlearned],
        np.asarray(unlearned.test_accuracy, dtype=np.float64)[draws.unlearned],
        np.asarray(retrained.retain_accuracy, dtype=np.float64)[draws.retrained],
        np.asarray(retrained.test_accuracy, dtype=np.float64)[draws.retrained],
    )
    score = quality * utility
    estimate_f, estimate_s = estimates or _point(unlearned, retrained, device)
    return estimate_f + quality - quality.mean(), estimate_s + score - score.mean()


def _resampled_points(
    confs_u: np.ndarray,
    confs_r: np.ndarray,
    draws: Resamples,
    device: torch.device | str | None,
) -> np.ndarray:
    """Points of every forget example under every model resample: ``[B, n_forget]``.

    The epsilon grid is the resampled sides' size (a half-sample has m models).

    Column ``b * n_forget + j`` of the stacked inputs is example ``j`` seen by the
    models of resample ``b``; the metric scores columns independently.
    """
    n_forget = confs_u.shape[1]
    num_models = draws.unlearned.shape[1]
    num_resamples = len(draws.unlearned)
    per_chunk = max(1, CHUNK_COLUMNS // n_forget)
    points = np.empty((num_resamples, n_forget), dtype=np.float64)
    for first in range(0, num_resamples, per_chunk):
        rows = slice(first, first + per_chunk)
        stacked_u = _stack(confs_u, draws.unlearned[rows])
        stacked_r = _stack(confs_r, draws.retrained[rows])
        eps = example_epsilons(stacked_u, stacked_r, device=device)
        points[rows] = epsilon_points(eps, num_models).reshape(-1, n_forget)
    return points


def _stack(confs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``[m, b x n_forget]``: resample k's m models for every example, side by side."""
    picked = confs[rows]  # [b, m, n_forget]
    return np.ascontiguousarray(picked.transpose(1, 0, 2).reshape(rows.shape[1], -1))


def _utility(ra_u: np.ndarray, ta_u: np.ndarray, ra_r: np.ndarray, ta_r: np.ndarray) -> np.ndarray:
    """The score's accuracy factor per resample (rows): mean ratios, as ``metric.final_score``."""
    ra_ref, ta_ref = ra_r.mean(axis=1), ta_r.mean(axis=1)
    if not (ra_ref > 0).all() or not (ta_ref > 0).all():
        raise EvalError(
            "The reference models' retain and test accuracies must be positive: the score "
            "divides by their means. Check that the references were trained and measured."
        )
    return (ra_u.mean(axis=1) / ra_ref) * (ta_u.mean(axis=1) / ta_ref)


def check_level(level: float) -> None:
    if not 0 < level < 1:
        raise EvalError(f"level={level} must lie strictly between 0 and 1 (e.g. 0.95).")


def bounds(values: np.ndarray | Sequence[float], level: float) -> np.ndarray:
    """``[low, high]``: the central ``level`` share of ``values`` lies between them."""
    tail = (1 - level) / 2
    return np.quantile(values, [tail, 1 - tail])


def same_draws(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Whether two records' resamples were drawn alike, so they subtract into a paired difference."""
    return all(mine.get(k) == theirs.get(k) for k in ("num_resamples", "seed", "shape", "scheme"))


def _interval(estimate: float, resampled: np.ndarray, level: float) -> Interval:
    check_level(level)
    low, high = bounds(resampled, level)
    return Interval(float(estimate), float(low), float(high), level)


def _as_array(confs: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(confs, torch.Tensor):
        return confs.detach().cpu().to(torch.float64).numpy()
    return np.asarray(confs, dtype=np.float64)


def _check_sides(unlearned: ModelSide, retrained: ModelSide) -> None:
    for side, name in ((unlearned, "unlearned"), (retrained, "retrained")):
        shape = np.shape(side.confidences)
        if len(shape) != 2 or shape[0] < 3 or shape[1] < 1:
            raise EvalError(
                f"The {name} side's confidences have shape {shape}; they must be "
                "[num_models, num_forget] with at least 3 models and one forget example."
            )
        for field in ("retain_accuracy", "test_accuracy"):
            if len(getattr(side, field)) != shape[0]:
                raise EvalError(
                    f"The {name} side has {shape[0]} models but {len(getattr(side, field))} "
                    f"values of {field}: pass one accuracy per model, in the rows' order."
                )
    if np.shape(unlearned.confidences)[1] != np.shape(retrained.confidences)[1]:
        raise EvalError(
            f"The unlearned side has {np.shape(unlearned.confidences)[1]} forget examples and "
            f"the retrained side {np.shape(retrained.confidences)[1]}: both must score the "
            "same forget set, in the same order."
        )
