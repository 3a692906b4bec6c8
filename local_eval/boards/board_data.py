"""A board as data: ``docs/leaderboard-<x>.json``, written beside its Markdown from the same rows.

The Markdown is for people; the JSON is what commands read (``agree``, through
``board_orders.read_board``), so nothing parses a table. The renderers build it
in the pass that writes their table, from the values the table shows, unrounded:
each method's rank, score with its interval, retain and test ratios and, where
its result has them, KLoM, mean shift and spread ratio with theirs; the retrain
ceiling apart. A board of several steps (requests) adds each step's figures (it
ranks by the last); a board over K splits gives each method's mean, sd and mean
rank and its figures, tie and rank on each split. A value a board leaves blank
is null.
"""

from __future__ import annotations

import math
from typing import Any

from local_eval.scoring.diagnostics import STATISTICS
from local_eval.scoring.presets import Preset

FORMAT = 1


def board_data(
    title: str,
    setup: str,
    preset: Preset,
    scenario: str,
    methods: list[dict[str, Any]],
    ceiling: dict[str, Any] | None,
    splits: int | None = None,
) -> dict[str, Any]:
    """The board's header and entries; ``splits`` is K on a board over K splits, else None."""
    return {
        "format": FORMAT,
        "title": title,
        "setup": setup,
        "preset": preset.name,
        "n_models": preset.n_models,
        "scenario": scenario,
        "splits": splits,
        "methods": methods,
        "ceiling": ceiling,
    }


def figures(row: dict[str, Any], steps: bool = False) -> dict[str, Any]:
    """A result's (or the ceiling's) score with its interval, ratios and diagnostics, as stored."""
    record = row.get("intervals") or {}
    found = {"score": number(row["score"]), "score_interval": pair(record.get("score"))}
    found |= {name: number(row[name]) for name in ("retain_ratio", "test_ratio") if name in row}
    diagnostics = record.get("diagnostics") or {}
    for name in (name for name in STATISTICS if name in diagnostics):
        found[name] = number(diagnostics[name]["estimate"])
        found[f"{name}_interval"] = pair(diagnostics[name]["interval"])
    if steps:
        found["steps"] = [figures(step) for step in row["steps"]]
    return found


def number(value: Any) -> float | None:
    """A plain float, or None for what the board leaves blank (missing or NaN)."""
    return None if value is None or math.isnan(value) else float(value)


def pair(interval: Any) -> list[float] | None:
    return None if interval is None else [float(end) for end in interval]
