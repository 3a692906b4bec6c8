"""A result's bootstrap intervals, computed from what the result itself stores.

Every result keeps each run's final forget confidences and accuracies, and the
references cache keeps the N reference models' and the N ceiling models'. That
is all ``scoring.bootstrap`` needs, so intervals are computed here from the
stored figures and never by rescoring: a result scored before intervals existed
gets them when a board reads it (``with_intervals``), and its reuse rule
(``scoring.results.stored_if_current``) does not change, since ``intervals`` is
derived data, not one of the keys a stored result must match.

An interval record is ``{"score": [lo, hi], "forget_quality": [lo, hi], "level",
"num_resamples", "seed"}``; a result holds the method's under ``intervals`` and
the ceiling's under ``ceiling.intervals``. The record also keeps the B resampled
scores and the shapes they were drawn at (``resampled_scores``, ``shape``), so a
board pairs every method with the leader without resampling
(``bootstrap.resampled_statistics`` says why that is exact; on a shared CPU one
resampling of a cpu-preset result took 40-70 s at B = 1000).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from local_eval.scoring.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    SCHEME,
    Interval,
    ModelSide,
    bootstrap_difference,
    bounds,
    check_level,
    resampled_statistics,
    same_draws,
)
from local_eval.scoring.diagnostics import diagnostics
from local_eval.scoring.references import ModelRecord, References

# Past this many forget examples one resample costs N x forget epsilons per side;
# 200 resamples keep a faithful board's intervals affordable.
LARGE_FORGET = 500
LARGE_FORGET_RESAMPLES = 200
BOOTSTRAP_SEED = 0


def default_resamples(num_forget: int) -> int:
    return LARGE_FORGET_RESAMPLES if num_forget > LARGE_FORGET else DEFAULT_RESAMPLES


def records_side(records: Sequence[ModelRecord]) -> ModelSide:
    return ModelSide(
        confidences=np.stack([r.forget_confidences.double().numpy() for r in records]),
        retain_accuracy=[r.retain_accuracy for r in records],
        test_accuracy=[r.test_accuracy for r in records],
    )


def runs_side(result: dict[str, Any]) -> ModelSide | None:
    """A result's runs as the unlearned side; None when its runs kept no forget confidences."""
    runs = result.get("runs") or []
    if not runs or any("forget_confidences" not in run for run in runs):
        return None
    return ModelSide(
        confidences=np.asarray([run["forget_confidences"] for run in runs], dtype=np.float64),
        retain_accuracy=[run["retain_accuracy"] for run in runs],
        test_accuracy=[run["test_accuracy"] for run in runs],
    )


def score_intervals(
    unlearned: ModelSide,
    refs: References,
    num_resamples: int | None = None,
    level: float = DEFAULT_LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """The interval record of one side (a method's runs, or the ceiling) against ``refs``'s reference models.

    Resamples forget examples, and half-samples models on both sides, with the
    draws and centred percentiles of ``bootstrap.bootstrap_score``; the record's
    ``diagnostics`` (KLoM, mean shift, spread ratio: ``scoring.diagnostics``) come
    from the same draws.
    """
    check_level(level)
    resamples = num_resamples or default_resamples(len(refs.data.forget))
    reference = records_side(refs.reference)
    quality, score = resampled_statistics(unlearned, reference, resamples, seed)
    return {
        "score": bounds(score, level).tolist(),
        "forget_quality": bounds(quality, level).tolist(),
        "level": level,
        "num_resamples": resamples,
        "seed": seed,
        "scheme": SCHEME,
        "shape": [*np.shape(unlearned.confidences), len(refs.reference)],
        "resampled_scores": score.tolist(),
        "diagnostics": diagnostics(unlearned, reference, resamples, level, seed),
    }


_CEILINGS: dict[tuple, dict[str, Any]] = {}


def ceiling_intervals(
    refs: References,
    num_resamples: int | None = None,
    level: float = DEFAULT_LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """The retrain ceiling's record, computed once per references (and column order) in a process."""
    forget = refs.data.forget.numpy().tobytes()
    key = (refs.key, forget, len(refs.reference), num_resamples, level, seed)
    if key not in _CEILINGS:
        _CEILINGS[key] = score_intervals(records_side(refs.ceiling), refs, num_resamples, level, seed)
    return _CEILINGS[key]


def needs_intervals(result: dict[str, Any], num_resamples: int | None = None) -> bool:
    """Whether ``result`` lacks intervals, has them from another scheme, or at another B than asked."""
    present = result.get("intervals")
    ceiling = result.get("ceiling", {}).get("intervals")
    if present is None or ceiling is None:
        return True
    if any(r.get("scheme") != SCHEME or "diagnostics" not in r for r in (present, ceiling)):
        return True
    return num_resamples is not None and present.get("num_resamples") != num_resamples


def with_intervals(
    result: dict[str, Any],
    refs: References,
    num_resamples: int | None = None,
    level: float = DEFAULT_LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """``result`` with ``intervals`` for the method and ``ceiling.intervals``: the one place both are computed.

    ``refs`` are the references of the result's final step (whose forget
    confidences the runs' ``forget_confidences`` line up with). A result whose
    runs kept no confidences is returned unchanged.
    """
    unlearned = runs_side(result)
    if unlearned is None:
        return result
    return {
        **result,
        "intervals": score_intervals(unlearned, refs, num_resamples, level, seed),
        "ceiling": {**result["ceiling"], "intervals": ceiling_intervals(refs, num_resamples, level, seed)},
    }


def stored_interval(row: dict[str, Any]) -> Interval | None:
    """A row's score interval as a ``bootstrap.Interval`` (estimate: its score), or None."""
    record = row.get("intervals")
    if record is None:
        return None
    low, high = record["score"]
    return Interval(float(row["score"]), float(low), float(high), float(record["level"]))


def difference_to(
    result: dict[str, Any],
    other: dict[str, Any],
    refs: References,
    num_resamples: int | None = None,
    level: float = DEFAULT_LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any] | None:
    """Paired score difference ``result`` minus ``other`` on ``refs``'s reference models.

    Either is a result or a ceiling's dict. From the two interval records'
    resampled scores when both were drawn alike (exactly ``bootstrap_difference``'s
    interval, without resampling), else by ``bootstrap_difference`` on the runs'
    confidences. Returns ``{"estimate", "low", "high", "level", "num_resamples"}``,
    or None when a side has neither or the two were scored at different N.
    """
    mine, theirs = result.get("intervals") or {}, other.get("intervals") or {}
    if (
        "resampled_scores" in mine
        and "resampled_scores" in theirs
        and same_draws(mine, theirs)
        and mine["seed"] == seed
        and num_resamples in (None, mine["num_resamples"])
    ):
        paired = np.asarray(mine["resampled_scores"]) - np.asarray(theirs["resampled_scores"])
        low, high = bounds(paired, level)
        estimate = float(result["score"]) - float(other["score"])
        return _difference(estimate, low, high, level, mine["num_resamples"])
    a, b = runs_side(result), runs_side(other)
    if a is None or b is None or np.shape(a.confidences) != np.shape(b.confidences):
        return None
    resamples = num_resamples or default_resamples(len(refs.data.forget))
    found = bootstrap_difference(a, b, records_side(refs.reference), resamples, level, seed)
    return _difference(found.score.estimate, found.score.low, found.score.high, level, resamples)


def _difference(estimate: float, low: float, high: float, level: float, resamples: int) -> dict[str, Any]:
    return {
        "estimate": float(estimate),
        "low": float(low),
        "high": float(high),
        "level": level,
        "num_resamples": resamples,
    }
