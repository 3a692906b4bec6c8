"""Scoring on K independent reference sets, and what a board says about all K together.

One split is one draw of forget persons, data subset and seeds; a method tuned on
it can rank first there and middling elsewhere. ``split_presets`` derives K
presets that differ in everything a seed decides: which persons are forgotten,
which images form the training subset (``train_size`` set) or the 80/10/10
partition (pooled layout), and every training and run seed. Split 0 is the
preset itself, so its cached references are reused. ``aggregate_splits`` gives
each method's mean and spread over the splits and its rank in each.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from local_eval.errors import EvalError
from local_eval.scoring.presets import MAX_N_MODELS, Preset, validate_preset

# Larger than the 2 x MAX_N_MODELS + 1 seeds one split uses (original, retrained
# models seed + 1 + i, runs seed + i), so no seed of one split recurs in another.
SPLIT_SEED_STRIDE = 10_007
assert SPLIT_SEED_STRIDE > 2 * MAX_N_MODELS + 1


@dataclass(frozen=True)
class SplitSummary:
    """One method over K splits: per-split scores and ranks (``nan`` where it has no score).

    ``std`` is the sample standard deviation (``nan`` with fewer than two
    scores); rank 1 is the best, tied scores share the mean of their ranks.
    """

    scores: tuple[float, ...]
    mean: float
    std: float
    ranks: tuple[float, ...]
    mean_rank: float


def split_origin(name: str) -> tuple[str, int]:
    """The preset a split's name came from and the split's number: ``x-split2`` is ``("x", 2)``."""
    base, marker, number = name.rpartition("-split")
    return (base, int(number)) if marker and number.isdigit() else (name, 0)


def split_preset(preset: Preset, j: int) -> Preset:
    """Split ``j``'s preset alone: the one ``split_presets(preset, K)`` gives as split j for K > j."""
    if j < 0:
        raise EvalError(f"--split {j}: splits are numbered from 0 (the preset itself).")
    return split_presets(preset, j + 1)[j]


def split_presets(preset: Preset, k: int) -> list[Preset]:
    """K presets whose reference sets are independent draws; split 0 is ``preset`` itself."""
    if k < 1:
        raise EvalError(f"--splits {k}: the number of splits must be at least 1.")
    presets = [preset]
    for j in range(1, k):
        other = dataclasses.replace(
            preset, name=f"{preset.name}-split{j}", seed=preset.seed + j * SPLIT_SEED_STRIDE
        )
        validate_preset(other)
        presets.append(other)
    return presets


def aggregate_splits(results: Sequence[Mapping[str, float]]) -> dict[str, SplitSummary]:
    """Per method, its scores over the splits (one mapping method -> score per split).

    A method missing from a split (it failed there) is ranked only where it was
    scored; its mean covers those splits. Methods come out best mean first.
    """
    if not results:
        raise EvalError("aggregate_splits needs the results of at least one split.")
    methods = sorted({name for split in results for name in split})
    scores = np.array(
        [[float(split.get(name, math.nan)) for split in results] for name in methods]
    ).reshape(len(methods), len(results))
    ranks = np.column_stack([_ranks(scores[:, j]) for j in range(len(results))])
    summaries = {}
    for i, name in enumerate(methods):
        present = scores[i][~np.isnan(scores[i])]
        summaries[name] = SplitSummary(
            scores=tuple(scores[i].tolist()),
            mean=float(present.mean()) if len(present) else math.nan,
            std=float(present.std(ddof=1)) if len(present) > 1 else math.nan,
            ranks=tuple(ranks[i].tolist()),
            mean_rank=float(np.nanmean(ranks[i])) if len(present) else math.nan,
        )
    order = sorted(summaries, key=lambda n: (-or_minus_inf(summaries[n].mean), n))
    return {name: summaries[name] for name in order}


def _ranks(column: np.ndarray) -> np.ndarray:
    """Rank 1 for the highest score; ties share their mean rank; nan stays nan."""
    ranks = np.full(len(column), math.nan)
    present = np.flatnonzero(~np.isnan(column))
    values = column[present]
    for position, value in zip(present, values):
        higher = int((values > value).sum())
        equal = int((values == value).sum())
        ranks[position] = higher + (equal + 1) / 2
    return ranks


def or_minus_inf(value: float) -> float:
    """A sort key that puts a missing (NaN) mean last."""
    return -math.inf if math.isnan(value) else value
