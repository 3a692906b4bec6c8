"""Does a local board predict the competition? Its order of the winners against Kaggle's.

The kit is trusted to the extent that a board ranks methods as the competition
ranked them. Seven of its methods are competition entries whose places on the
private leaderboard are known, so every standard board can say how well it
reproduces that order: Kendall's tau between the board's scores and the places
(+1: the same order, 0: unrelated, -1: reversed), with a bootstrap interval, the
chance that a random order agrees as well, and how many of the seven beat
finetune (on Kaggle all seven did).

The interval reuses each result's stored resampled scores: results at the same
shapes and bootstrap seed were resampled with the same draws, so resample b
gives one paired ordering of every method, and tau over those orderings is its
sampling distribution. Without such records there is no interval, only tau.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from local_eval.scoring.bootstrap import bounds

# Places on the NeurIPS 2023 Machine Unlearning private leaderboard. The first four and
# the sixth and seventh are deepunlearn's kgltop1..kgltop7 files (docs/top-methods.md;
# kgltop5, the fifth, is no method here); `forget` placed eighth (its team's report).
KAGGLE_PRIVATE_PLACES: dict[str, int] = {
    "fanchuan": 1,
    "kookmin": 2,
    "seif": 3,
    "sebastian": 4,
    "amnesiacs": 6,
    "sun": 7,
    "forget": 8,
}
BASELINE = "finetune"
MIN_METHODS = 3  # tau over fewer pairs says nothing


@dataclass(frozen=True)
class KaggleAgreement:
    """How one board's scores order the competition entries it scored."""

    methods: tuple[str, ...]
    tau: float
    interval: tuple[float, float] | None
    level: float | None
    chance: float  # share of all orderings of these methods with tau >= this one
    above_baseline: tuple[str, ...] | None  # None: the baseline was not scored
    clearly_above_baseline: tuple[str, ...] | None  # paired difference excludes 0


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) pairs over the pairs untied on each side."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs two sequences of one length, got {len(x)} and {len(y)}")
    concordant = discordant = untied_x = untied_y = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        untied_x += dx != 0
        untied_y += dy != 0
        concordant += dx * dy > 0
        discordant += dx * dy < 0
    if untied_x == 0 or untied_y == 0:
        return 0.0
    return float((concordant - discordant) / math.sqrt(untied_x * untied_y))


def chance_of_agreement(tau: float, count: int) -> float:
    """The share of the count! orderings whose tau against a fixed untied order is at least ``tau``.

    Against an untied order tau is ``1 - 4 * inversions / (count * (count - 1))``, so
    the share follows from how many orderings have each number of inversions
    (Mahonian numbers): exact at any size, where listing the orderings stops at about 10.
    """
    ways = [1]  # ways[k]: orderings of the first m items with k inversions
    for m in range(1, count):
        grown = [0] * (len(ways) + m)
        for k, w in enumerate(ways):
            for extra in range(m + 1):
                grown[k + extra] += w
        ways = grown
    pairs = count * (count - 1) / 2
    if pairs == 0:
        return 1.0
    agreeing = sum(w for k, w in enumerate(ways) if 1 - 2 * k / pairs >= tau - 1e-12)
    return agreeing / math.factorial(count)


def kaggle_agreement(
    results: Sequence[Mapping[str, Any]],
    places: Mapping[str, int] = KAGGLE_PRIVATE_PLACES,
    baseline: str = BASELINE,
) -> KaggleAgreement | None:
    """Tau of the board's scores against the places, or None with fewer than three entries."""
    by_name = {row["method"]: row for row in results}
    methods = tuple(sorted((m for m in places if m in by_name), key=places.__getitem__))
    if len(methods) < MIN_METHODS:
        return None
    # Place 1 is best and a higher score is better: agreement means score against -place.
    truth = [-places[m] for m in methods]
    tau = kendall_tau([float(by_name[m]["score"]) for m in methods], truth)
    draws = _paired_resamples([by_name[m] for m in methods])
    interval, level = None, None
    if draws is not None:
        scores, level = draws
        taus = [kendall_tau(list(column), truth) for column in scores.T]
        low, high = bounds(taus, level)
        interval = (float(low), float(high))
    above = clearly = None
    if baseline in by_name:
        base = by_name[baseline]
        above = tuple(m for m in methods if by_name[m]["score"] > base["score"])
        clearly = tuple(m for m in methods if _clearly_above(by_name[m], base))
    return KaggleAgreement(
        methods, tau, interval, level, chance_of_agreement(tau, len(methods)), above, clearly
    )


def agreement_lines(agreement: KaggleAgreement | None, subject: str = "this board") -> list[str]:
    """A board's paragraph on how its order (or ``subject``'s, e.g. one split's) compares with Kaggle's."""
    if agreement is None:
        return []
    places = ", ".join(f"`{m}` {KAGGLE_PRIVATE_PLACES[m]}" for m in agreement.methods)
    interval = _tau_interval(agreement)
    if agreement.interval:
        interval += f" ({agreement.level:.0%})"
    text = (
        f"**Against Kaggle's order.** Of the {len(agreement.methods)} competition entries "
        f"scored here (private-leaderboard places: {places}), {subject} orders them with "
        f"Kendall's tau = {agreement.tau:.2f}{interval} against the competition's order "
        f"(1: the same order, 0: unrelated); a random order does at least as well "
        f"{share_text(agreement.chance)} of the time."
    )
    if agreement.above_baseline is not None:
        text += (
            f" {len(agreement.above_baseline)} of them score above `{BASELINE}` "
            f"({len(agreement.clearly_above_baseline)} with a paired interval above 0); "
            "on Kaggle all of them did."
        )
    return ["", text]


def agreement_table(agreements: Sequence[tuple[str, KaggleAgreement | None]]) -> list[str]:
    """One row per labelled board (e.g. per split): the same figures as ``agreement_lines``."""
    found = [(label, a) for label, a in agreements if a is not None]
    if not found:
        return []
    lines = [
        "",
        "**Against Kaggle's order**: Kendall's tau between the competition entries' scores and "
        "their private-leaderboard places (1: the same order, 0: unrelated; on Kaggle all of "
        f"them beat `{BASELINE}`).",
        "",
        "| | entries | tau [lo, hi] | a random order does as well | above finetune (clearly) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, a in found:
        interval = _tau_interval(a)
        above = (
            f"{len(a.above_baseline)} ({len(a.clearly_above_baseline)})"
            if a.above_baseline is not None
            else ""
        )
        lines.append(
            f"| {label} | {len(a.methods)} | {a.tau:.2f}{interval} | {share_text(a.chance)} | {above} |"
        )
    return lines


def _tau_interval(agreement: KaggleAgreement) -> str:
    """`` [lo, hi]`` of tau, or nothing where the rows carried no paired resamples."""
    if not agreement.interval:
        return ""
    low, high = agreement.interval
    return f" [{low:.2f}, {high:.2f}]"


def share_text(value: float) -> str:
    """A chance as a percentage, "<1%" rather than a "0%" that reads as impossible."""
    return "<1%" if 0 < value < 0.01 else f"{value:.0%}"


def _paired_resamples(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, float] | None:
    """``[methods, B]`` resampled scores drawn alike for every row, with their level, or None."""
    records = [row.get("intervals") or {} for row in rows]
    if not all("resampled_scores" in record for record in records):
        return None
    first = records[0]
    keys = ("num_resamples", "seed", "shape", "level")
    if any(any(record.get(k) != first.get(k) for k in keys) for record in records):
        return None
    return np.asarray([record["resampled_scores"] for record in records]), float(first["level"])


def _clearly_above(row: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    paired = _paired_resamples([row, base])
    if paired is None:
        return False
    scores, level = paired
    return bool(np.quantile(scores[0] - scores[1], (1 - level) / 2) > 0)
