"""Pictures of the leaderboards, written next to their Markdown tables.

A table answers "who is first"; the question researchers come back with is
"what does that score cost, and how far is it from retraining". So the standard
board is drawn as score against time fraction with the retrain ceiling as a
line (and, where it scored competition entries, their scores at their places on
Kaggle's private leaderboard: does the board predict the competition?), the requests board as one score curve per method over the requests, and
the federated board as each method's federated score beside its standard one.
``make agree`` draws two written boards' scores against each other, so a
researcher sees which swaps between two set-ups their intervals could explain.
Rows are the result dicts the leaderboards already hold; nothing is recomputed.
``plot_board`` picks the picture from what the board holds, so a new scenario's
board gets one without code here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from local_eval.boards.board_orders import Board, OrderAgreement, short_title
from local_eval.boards.kaggle_order import (
    BASELINE,
    KAGGLE_PRIVATE_PLACES,
    KaggleAgreement,
    kaggle_agreement,
    share_text,
)
from local_eval.store.files import atomic_write_figure

CEILING_COLOUR = "tab:red"


def plot_board(
    path: Path | str,
    title: str,
    rows: list[dict[str, Any]],
    ceilings: list[dict[str, Any]],
    companions: dict[str, dict[str, Any]] | None,
) -> Path:
    """The board's picture: score per step when runs make several calls, the score beside the
    companion scenario's when the board has one (None: it has none), else score and cost."""
    if len(ceilings) > 1:
        return _score_per_step(path, title, rows, ceilings)
    if companions is not None:
        return _score_beside_companion(path, title, rows, companions, ceilings[-1]["score"])
    return _score_and_cost(path, title, rows, ceilings[-1]["score"])


def error_bars(rows: list[dict[str, Any]]) -> list[list[float]]:
    """Matplotlib's ``[[below], [above]]`` from each row's score interval (0 where it has none).

    A percentile interval can sit beside its estimate; the bar then starts at the estimate.
    """
    return _bars_around(
        [
            (row["score"], (row.get("intervals") or {}).get("score", (row["score"], row["score"])))
            for row in rows
        ]
    )


def _bars_around(estimates: list[tuple[float, tuple[float, float]]]) -> list[list[float]]:
    below = [max(score - low, 0.0) for score, (low, _) in estimates]
    above = [max(high - score, 0.0) for score, (_, high) in estimates]
    return [below, above]


def _score_and_cost(
    path: Path | str, title: str, rows: list[dict[str, Any]], ceiling_score: float
) -> Path:
    """Bars of each method's score, and score against time fraction on a log axis."""
    from matplotlib.figure import Figure

    ordered = sorted(rows, key=lambda row: row["score"])
    agreement = kaggle_agreement(rows)
    panels = 3 if agreement is not None else 2
    figure = Figure(
        figsize=(13 + 5 * (panels - 2), max(4.0, 0.35 * len(ordered) + 1.5)), layout="constrained"
    )
    bars, scatter, *rest = figure.subplots(1, panels, width_ratios=[1, 1.2, 1][:panels])

    names = [row["method"] for row in ordered]
    bars.barh(
        names, [row["score"] for row in ordered], color="tab:blue",
        xerr=error_bars(ordered), capsize=3, error_kw={"elinewidth": 1},
    )
    _ceiling_line(bars.axvline, ceiling_score)
    bars.set_xlabel("score (F x retain ratio x test ratio), bootstrap interval")
    bars.set_title("Score")
    bars.legend(loc="lower right", fontsize=8)

    for row, low, high in zip(ordered, *error_bars(ordered)):
        fraction = max(row["time_fraction"], 1e-4)
        scatter.errorbar(
            fraction, row["score"], yerr=[[low], [high]], color="tab:blue", fmt="o", capsize=3
        )
        scatter.annotate(
            row["method"], (fraction, row["score"]), fontsize=8,
            xytext=(4, 3), textcoords="offset points",
        )
    scatter.scatter(1.0, ceiling_score, color=CEILING_COLOUR, marker="*", s=120)
    _ceiling_line(scatter.axhline, ceiling_score)
    scatter.set_xscale("log")
    scatter.set_xlabel("time fraction (one run / one retraining, log)")
    scatter.set_ylabel("score")
    scatter.set_title("Score against cost")
    if rest:
        _against_kaggle(rest[0], rows, agreement)
    figure.suptitle(title)
    return atomic_write_figure(figure, path, dpi=100)


def _against_kaggle(axes, rows: list[dict[str, Any]], agreement: KaggleAgreement) -> None:
    """The competition entries' local scores (with intervals) at their Kaggle places."""
    by_name = {row["method"]: row for row in rows}
    entries = [by_name[name] for name in agreement.methods]
    places = [KAGGLE_PRIVATE_PLACES[name] for name in agreement.methods]
    below, above = error_bars(entries)
    axes.errorbar(
        places, [row["score"] for row in entries], yerr=[below, above],
        fmt="o", color="tab:blue", capsize=3,
    )  # fmt: skip
    for place, row in zip(places, entries):
        axes.annotate(
            row["method"], (place, row["score"]), fontsize=8, xytext=(4, 3),
            textcoords="offset points",
        )  # fmt: skip
    if BASELINE in by_name:
        axes.axhline(by_name[BASELINE]["score"], color="grey", linestyle=":", label=BASELINE)
        axes.legend(loc="upper right", fontsize=8)
    axes.set_xticks(range(1, max(places) + 1))
    axes.set_xlabel("place on Kaggle's private leaderboard")
    axes.set_ylabel("local score")
    interval = (
        f" [{agreement.interval[0]:.2f}, {agreement.interval[1]:.2f}]" if agreement.interval else ""
    )
    axes.set_title(f"Against Kaggle's order: Kendall's tau {agreement.tau:.2f}{interval}")


def _score_per_step(
    path: Path | str, title: str, rows: list[dict[str, Any]], ceilings: list[dict[str, Any]]
) -> Path:
    """One line per method: its score after each request, the ceiling's dashed."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5.5), layout="constrained")
    axis = figure.subplots()
    steps = range(1, len(ceilings) + 1)
    for row in sorted(rows, key=lambda r: r["score"], reverse=True):
        line = axis.plot(
            steps, [step["score"] for step in row["steps"]], marker="o", label=row["method"]
        )[0]
        # The interval is the final request's: drawn on the last point.
        axis.errorbar(
            [len(ceilings)], [row["score"]], yerr=error_bars([row]), color=line.get_color(),
            capsize=3,
        )
    axis.plot(
        steps, [c["score"] for c in ceilings], color=CEILING_COLOUR, linestyle="--",
        marker="*", label="retrain ceiling",
    )
    axis.set_xticks(list(steps))
    axis.set_xlabel("after request")
    axis.set_ylabel("score on all forget data served so far")
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    figure.suptitle(title)
    return atomic_write_figure(figure, path, dpi=100)


def _score_beside_companion(
    path: Path | str,
    title: str,
    rows: list[dict[str, Any]],
    companions: dict[str, dict[str, Any]],
    ceiling_score: float,
) -> Path:
    """Paired bars: the federated score and, where scored, the standard one."""
    from matplotlib.figure import Figure

    ordered = sorted(rows, key=lambda row: row["score"])
    figure = Figure(figsize=(9, max(4.0, 0.45 * len(ordered) + 1.5)), layout="constrained")
    axis = figure.subplots()
    positions = list(range(len(ordered)))
    height = 0.4
    axis.barh(
        [p + height / 2 for p in positions], [row["score"] for row in ordered], height,
        label="federated", color="tab:blue", xerr=error_bars(ordered), capsize=3,
    )
    axis.barh(
        [p - height / 2 for p in positions],
        [companions[row["method"]]["score"] if row["method"] in companions else 0.0 for row in ordered],
        height, label="standard (same N)", color="tab:grey",
    )
    _ceiling_line(axis.axvline, ceiling_score, label="federated retrain ceiling")
    axis.set_yticks(positions, [row["method"] for row in ordered])
    axis.set_xlabel("score")
    axis.legend(fontsize=8, loc="lower right")
    figure.suptitle(title)
    return atomic_write_figure(figure, path, dpi=100)


def plot_splits(
    path: Path | str,
    title: str,
    summary: dict[str, Any],
    ceiling_scores: list[float],
) -> Path:
    """Each method's mean score over the splits (bar, sd as error bar) and every split's score (dots)."""
    from matplotlib.figure import Figure

    names = [name for name in reversed(list(summary))]
    figure = Figure(figsize=(9, max(4.0, 0.4 * len(names) + 1.5)), layout="constrained")
    axis = figure.subplots()
    means = [summary[name].mean for name in names]
    spreads = [0.0 if math.isnan(summary[name].std) else summary[name].std for name in names]
    axis.barh(names, means, xerr=spreads, color="tab:blue", alpha=0.6, capsize=3, label="mean, sd")
    for position, name in enumerate(names):
        scores = [score for score in summary[name].scores if not math.isnan(score)]
        axis.scatter(scores, [position] * len(scores), color="black", s=12, zorder=3)
    axis.scatter([], [], color="black", s=12, label="one split")
    _ceiling_line(axis.axvline, sum(ceiling_scores) / len(ceiling_scores), "mean retrain ceiling")
    axis.set_xlabel("score")
    axis.legend(fontsize=8, loc="lower right")
    figure.suptitle(title)
    return atomic_write_figure(figure, path, dpi=100)


def plot_agreement(
    path: Path | str,
    first: Board,
    second: Board,
    found: OrderAgreement,
) -> Path:
    """Each common method's score on one board against the other's, with both intervals.

    Points on a rising line are an order kept; the error bars show which swaps
    the boards' own uncertainty could explain.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 6.5), layout="constrained")
    axis = figure.subplots()
    xs = [first.scores[m] for m in found.methods]
    ys = [second.scores[m] for m in found.methods]
    axis.errorbar(
        xs, ys, xerr=_bars(first, found.methods), yerr=_bars(second, found.methods),
        fmt="o", color="tab:blue", ecolor="tab:blue", alpha=0.8, capsize=3,
    )  # fmt: skip
    for method, x, y in zip(found.methods, xs, ys):
        axis.annotate(method, (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")
    axis.set_xlabel(f"score on A: {short_title(first)}")
    axis.set_ylabel(f"score on B: {short_title(second)}")
    chance = (
        f", a random order as good {share_text(found.chance)} of the time"
        if found.chance is not None
        else ""
    )
    axis.set_title(f"Kendall's tau {found.tau:.2f} over {len(found.methods)} methods{chance}")
    return atomic_write_figure(figure, path, dpi=100)


def _bars(board: Board, methods: tuple[str, ...]) -> list[list[float]]:
    """Error bars from a written board's intervals (none where it has none)."""
    scores = [board.scores[m] for m in methods]
    return _bars_around([(s, board.intervals.get(m, (s, s))) for m, s in zip(methods, scores)])


def _ceiling_line(draw, score: float, label: str = "retrain ceiling") -> None:
    draw(score, color=CEILING_COLOUR, linestyle="--", label=f"{label} ({score:.3f})")

