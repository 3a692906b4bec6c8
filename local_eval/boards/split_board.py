"""A board over K independent splits: each method's mean and spread, and its rank on each split.

One split's order can be luck of its forget persons, data subset and seeds: a
method can rank first on the split it was tuned on and middling on the next.
This board scores (or reuses) every method on K reference sets
(``several_splits.split_presets``, split 0 being the preset itself, so its
results are the ordinary board's) and sets side by side what a single board
cannot show: each split's score with its interval, the mean and standard
deviation over the splits, and the ranks split by split.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from functools import partial
from pathlib import Path
from typing import Any

from local_eval.boards.board_data import board_data, figures, number
from local_eval.boards.kaggle_order import agreement_table, kaggle_agreement
from local_eval.boards.leaderboard import (
    board_notes,
    cost_note,
    ties_with_leader,
    uncertainty_note,
    write_board,
)
from local_eval.boards.plots import plot_splits
from local_eval.boards.report import present
from local_eval.boards.views import DIAGNOSTIC_COLUMNS, board_view, score_cell
from local_eval.scoring.board_scores import CEILING_LABEL, score_splits
from local_eval.scoring.context import Context, make_context
from local_eval.scoring.presets import Preset
from local_eval.scoring.results import results_folder
from local_eval.scoring.scenarios import Prepared, Scenario
from local_eval.scoring.scenarios.standard import Standard
from local_eval.scoring.several_splits import SplitSummary, aggregate_splits, or_minus_inf
from local_eval.store.files import repo_root


@dataclasses.dataclass(frozen=True)
class SplitRows:
    """One split's preset, its scenario made concrete, its results, ceiling and ties."""

    preset: Preset
    prepared: Prepared
    rows: list[dict[str, Any]]
    ceiling: dict[str, Any]
    ties: dict[str, bool]


def build_split_leaderboard(
    preset: str | Preset = "cpu",
    k: int = 3,
    n_models: int | None = None,
    *,
    scenario: Scenario | None = None,
    only: list[str] | None = None,
    context: Context | None = None,
    docs_dir: Path | str | None = None,
    rerun: bool = False,
    **options: Any,
) -> Path:
    """Score (or reuse) methods on ``k`` splits; write ``docs/leaderboard-<folder>-splits<k>.md``, .json, .png.

    Split j's results go to ``results/<preset>-split<j>[-<scenario>]/`` (split 0:
    the preset's own folder). A scenario's companion scores are not shown here.
    ``context`` makes every split's references and runs as on a one-split board,
    one split after another.
    """
    context = context or make_context()
    scenario = scenario or Standard()
    boards = score_splits(
        preset,
        k,
        scenario,
        context,
        only=only,
        n_models=n_models,
        rerun=rerun,
        present=partial(present, echo=context.echo),
        options=options,
    )
    base, chosen, left_out = boards[0].preset, boards[0].chosen, boards[0].left_out
    splits, failures = [], {}
    for j, board in enumerate(boards):
        failures.update({f"{name} (split {j})": message for name, message in board.failures.items()})
        ceiling = board.ceilings[-1]
        splits.append(
            SplitRows(board.preset, board.prepared, board.rows, ceiling, ties_with_leader(board.rows))
        )
    summary = aggregate_splits([{row["method"]: row["score"] for row in s.rows} for s in splits])
    text, data = split_board_and_data(scenario, base, splits, summary, failures, left_out)
    docs = Path(docs_dir) if docs_dir is not None else repo_root() / "docs"
    stem = f"leaderboard-{results_folder(base.name, scenario.name)}-splits{k}"
    plot_splits(
        docs / f"{stem}.png",
        f"{board_view(scenario, base, splits[0].prepared).picture_title}, {k} splits",
        summary,
        [s.ceiling["score"] for s in splits],
    )
    make_argument = " ".join(filter(None, [scenario.make_argument, f"SPLITS={k}"]))
    named = list(chosen) if left_out else None
    return write_board(docs, stem, text, base, make_argument, named, context.echo, data)


def split_board_and_data(
    scenario: Scenario,
    preset: Preset,
    splits: list[SplitRows],
    summary: dict[str, SplitSummary],
    failures: dict[str, str],
    left_out: list[str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Markdown: the scenario's header for split 0, what the splits are, then methods by mean score;
    and the same board as data (``boards.board_data``), built from the same rows in the same pass."""
    k = len(splits)
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    results = [row for s in splits for row in s.rows]
    devices = sorted({row["device"] for row in results}) or ["(no method scored)"]
    board = board_view(scenario, preset, splits[0].prepared, f"Generated {today} on {', '.join(devices)}")
    names = ", ".join(f"`{s.preset.name}`" for s in splits)
    shows_klom = DIAGNOSTIC_COLUMNS[0] in board.columns
    title, setup = f"{board.title}, {k} splits", board.intro + " (Sizes are split 0's.)"
    lines = [
        f"# {title}",
        "",
        setup,
        "",
        f"Each split is an independent reference set: other forget persons, another training "
        f"subset and other seeds for every model and run (presets {names}; split 0 is the preset "
        "itself). *mean* and *sd* are over the splits' scores; *ranks* gives the rank on each "
        "split (1 = best, equal scores share a rank); a † marks a score whose interval overlaps "
        "that split's leader's, and *tied with #1* counts those splits. The retrain ceiling is "
        "not ranked."
        + (
            " *mean KLoM*: the KLoM of one-split boards (0 is retraining, lower is better) "
            "averaged over the splits; blank where a split lacks it."
            if shows_klom
            else ""
        ),
        "",
        uncertainty_note(results, splits[0].ceiling),
        "",
        cost_note(results, splits[0].prepared),
        "",
        "| rank | method | mean score | sd | "
        + " | ".join(f"split {j} [lo, hi]" for j in range(k))
        + " | ranks | mean rank | tied with #1 |"
        + (" mean KLoM |" if shows_klom else ""),
        "|---:|---|" + "---:|" * (k + 5 + shows_klom),
    ]
    by_split = [{row["method"]: row for row in s.rows} for s in splits]
    ceiling_scores = [s.ceiling["score"] for s in splits]
    entries = [(name, summary[name].mean) for name in summary]
    entries.append((CEILING_LABEL, _mean(ceiling_scores)))
    rank, methods, ceiling = 0, [], None
    for name, mean in sorted(entries, key=lambda e: -or_minus_inf(e[1])):
        # The ceiling's row is a method's row without ranks and ties.
        is_ceiling = name == CEILING_LABEL
        found = None if is_ceiling else summary[name]
        sd = _sd(ceiling_scores) if is_ceiling else found.std
        cells, each = [_number(mean), _number(sd)], []
        for j, s in enumerate(splits):
            row = s.ceiling if is_ceiling else by_split[j].get(name)
            mark = " †" if s.ties.get(name) else ""
            cells.append("" if row is None else score_cell(row) + mark)
            ranked = {} if is_ceiling else {"tied": bool(mark), "rank": number(found.ranks[j])}
            each.append(None if row is None else figures(row) | ranked)
        tied = sum(bool(s.ties.get(name)) for s in splits)
        if is_ceiling:
            cells += ["", "", ""]
        else:
            ranks = ", ".join(_rank(r) for r in found.ranks)
            cells += [ranks, _number(found.mean_rank, ".2f"), f"{tied}/{k}"]
        klom = _mean_klom(each)
        cells += [_number(klom, ".2f")] if shows_klom else []
        rank += 0 if is_ceiling else 1
        lines.append(f"| {'' if is_ceiling else rank} | {name} | " + " | ".join(cells) + " |")
        entry = {"method": name, "mean": number(mean), "sd": number(sd), "splits": each}
        entry |= {"mean_klom": number(klom)} if shows_klom else {}
        if is_ceiling:
            ceiling = entry
        else:
            extra = {"mean_rank": number(found.mean_rank), "tied_splits": tied}
            methods.append({"rank": rank, **entry, **extra})
    if board.compares_with_kaggle:
        lines += agreement_table(
            [(f"split {j}", kaggle_agreement(s.rows)) for j, s in enumerate(splits)]
        )
    lines += board_notes(failures, left_out, board.left_out_label)
    data = board_data(title, setup, preset, scenario.name, methods, ceiling, splits=k)
    return "\n".join(lines) + "\n", data


def _mean_klom(each: list[dict[str, Any] | None]) -> float:
    """KLoM averaged over the splits; NaN (blank) unless every split has it."""
    found = [None if figures is None else figures.get("klom") for figures in each]
    return math.nan if None in found else _mean(found)


def _number(value: float, spec: str = ".4f") -> str:
    return "" if math.isnan(value) else format(value, spec)


def _rank(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:g}"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _sd(values: list[float]) -> float:
    if len(values) < 2:
        return math.nan
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))

