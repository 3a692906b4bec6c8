"""What the competition's score does not say: a second metric (KLoM) and why a method loses.

Both read the same figures as the score: each model's logit-scaled confidence
on each forget example, log(p / (1 - p)) of the true class. For a softmax that is
the true logit minus the log-sum-exp of the others, the *margin* that KLoM is
defined on, so nothing new has to be stored.

- **KLoM** (Georgiev et al. 2024, "Attribute-to-Delete"; the Easy Data
  Unlearning Bench's metric): per forget example, the KL divergence from the
  retrained models' margin distribution to the unlearned models', each a
  histogram on 20 bins shared by the two sides (the pair's combined range), with a
  small floor so an empty bin is finite. The board reports its mean over forget
  examples: 0 is indistinguishable from retraining, lower is better.
- **Mean shift**: the unlearned models' mean confidence minus the retrained
  models', per example, averaged: above 0 the method is more confident than a
  model that never saw the example (it still remembers), below 0 less (it
  over-forgot, which the attacks see just as well).
- **Spread ratio**: the unlearned models' run-to-run standard deviation over the
  retrained models', per example, averaged: below 1 the runs agree with each
  other more than retrained models do (too deterministic), above 1 less.

Intervals use the score's resampling (``bootstrap.draw_resamples``: examples
with replacement, half of each side's models without), centred on the estimate,
so a KLoM difference between two methods is paired exactly as the score's is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from local_eval.scoring.bootstrap import (
    DEFAULT_LEVEL,
    SCHEME,
    ModelSide,
    _as_array,
    bounds,
    draw_resamples,
    same_draws,
)

KLOM_BINS = 20
KLOM_FLOOR = 1e-5
# Margins beyond this are clipped, so one saturated model cannot stretch the bins.
KLOM_CLIP = 100.0
STATISTICS = ("klom", "mean_shift", "spread_ratio")
# Neither can be negative: a centred interval's low end is cut at 0.
NON_NEGATIVE = ("klom", "spread_ratio")


def klom_per_example(unlearned: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    """KL(unlearned || retrained) of each column's binned margins: ``[..., N, n]`` in, ``[..., n]`` out.

    Leading axes are batches (resamples); the bins are per column, over the
    range of both sides' values in that column.
    """
    u = np.clip(np.asarray(unlearned, dtype=np.float64), -KLOM_CLIP, KLOM_CLIP)
    r = np.clip(np.asarray(retrained, dtype=np.float64), -KLOM_CLIP, KLOM_CLIP)
    low = np.minimum(u.min(axis=-2), r.min(axis=-2))[..., None, :]
    width = np.maximum(u.max(axis=-2), r.max(axis=-2))[..., None, :] - low
    width = np.where(width > 0, width, 1.0)
    p, q = (_histogram((side - low) / width) for side in (u, r))
    return (p * np.log(p / q)).sum(axis=-1)


def _histogram(scaled: np.ndarray) -> np.ndarray:
    """Floored, normalised bin shares of values in [0, 1]: ``[..., N, n]`` to ``[..., n, bins]``."""
    bins = np.minimum((scaled * KLOM_BINS).astype(np.int64), KLOM_BINS - 1)
    onehot = bins[..., None] == np.arange(KLOM_BINS)
    shares = onehot.mean(axis=-3) + KLOM_FLOOR
    return shares / shares.sum(axis=-1, keepdims=True)


def statistics_per_example(unlearned: np.ndarray, retrained: np.ndarray) -> dict[str, np.ndarray]:
    """KLoM, mean shift and spread ratio of every column: ``[..., N, n]`` in, ``[..., n]`` each."""
    spread_r = retrained.std(axis=-2, ddof=1)
    return {
        "klom": klom_per_example(unlearned, retrained),
        "mean_shift": unlearned.mean(axis=-2) - retrained.mean(axis=-2),
        "spread_ratio": unlearned.std(axis=-2, ddof=1) / np.maximum(spread_r, 1e-12),
    }


def diagnostics(
    unlearned: ModelSide,
    retrained: ModelSide,
    num_resamples: int = 1000,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Each statistic's estimate, interval and centred resamples (for paired differences).

    ``{"klom": {"estimate", "interval": [lo, hi], "resampled": [...]}, "mean_shift":
    ..., "spread_ratio": ..., "level", "num_resamples", "seed", "scheme", "shape"}``.
    """
    confs_u, confs_r = _as_array(unlearned.confidences), _as_array(retrained.confidences)
    n_forget = confs_u.shape[1]
    draws = draw_resamples(num_resamples, n_forget, len(confs_u), len(confs_r), seed)
    estimates = {k: float(v.mean()) for k, v in statistics_per_example(confs_u, confs_r).items()}
    record: dict[str, Any] = {
        "level": level,
        "num_resamples": num_resamples,
        "seed": seed,
        "scheme": SCHEME,
        "shape": [*confs_u.shape, len(confs_r)],
    }
    per_chunk = max(1, (1 << 20) // max(1, confs_u.size))
    resampled: dict[str, list[np.ndarray]] = {k: [] for k in STATISTICS}
    for first in range(0, num_resamples, per_chunk):
        rows = slice(first, first + per_chunk)
        u = confs_u[draws.unlearned[rows]]  # [b, m, n]
        r = confs_r[draws.retrained[rows]]
        found = statistics_per_example(u, r)
        for name in STATISTICS:
            resampled[name].append(
                np.take_along_axis(found[name], draws.examples[rows], axis=1).mean(axis=1)
            )
    for name in STATISTICS:
        values = np.concatenate(resampled[name])
        centred = estimates[name] + values - values.mean()
        low, high = bounds(centred, level)
        record[name] = {
            "estimate": estimates[name],
            "interval": [max(0.0, low) if name in NON_NEGATIVE else float(low), float(high)],
            "resampled": centred.tolist(),
        }
    return record


def paired_difference(mine: dict[str, Any], theirs: dict[str, Any], name: str) -> dict[str, Any] | None:
    """``name``'s difference between two diagnostics records, or None unless drawn alike."""
    if not same_draws(mine, theirs):
        return None
    paired = np.asarray(mine[name]["resampled"]) - np.asarray(theirs[name]["resampled"])
    low, high = bounds(paired, mine["level"])
    return {
        "estimate": mine[name]["estimate"] - theirs[name]["estimate"],
        "low": float(low),
        "high": float(high),
    }
