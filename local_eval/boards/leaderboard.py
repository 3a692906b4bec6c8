"""One scenario's board: the figures ``scoring.board_scores`` returns, as Markdown, JSON and a picture.

One view for every scenario's board: the scenario's view (``boards.views``) says
what its board's header says and which columns it has; the rest (ranking, the
retrain ceiling's row, the notes on failed and left-out methods, the picture,
the command under the table) is the same. Nothing here scores: the board asks
``score_board`` once, then only renders.
"""

from __future__ import annotations

import datetime
from functools import partial
from pathlib import Path
from typing import Any

from local_eval.boards.board_data import board_data, figures
from local_eval.boards.kaggle_order import agreement_lines, kaggle_agreement
from local_eval.boards.plots import plot_board
from local_eval.boards.report import present
from local_eval.boards.two_metrics import two_metric_lines
from local_eval.boards.views import Board, board_view
from local_eval.scoring.board_scores import CEILING_LABEL, say, score_board
from local_eval.scoring.bootstrap import tied_with_leader
from local_eval.scoring.context import Context, make_context
from local_eval.scoring.intervals import stored_interval
from local_eval.scoring.presets import Preset, get_preset
from local_eval.scoring.results import results_folder
from local_eval.scoring.scenarios import Prepared, Scenario
from local_eval.scoring.scenarios.standard import Standard
from local_eval.scoring.several_splits import split_origin
from local_eval.store.files import atomic_write_json, atomic_write_text, repo_root


def build_leaderboard(
    preset: str | Preset = "cpu",
    n_models: int | None = None,
    *,
    scenario: Scenario | None = None,
    only: list[str] | None = None,
    with_companion: bool = True,
    context: Context | None = None,
    docs_dir: Path | str | None = None,
    rerun: bool = False,
    **options: Any,
) -> Path:
    """Score (or reuse) registered methods in ``scenario``; write ``docs/leaderboard-<folder>.md`` and .json.

    A method that fails gets a line saying so instead of stopping the others.
    ``only`` restricts the run to some registered methods (when scoring all would
    take too long); the table then names the ones left out, so a partial board
    never passes for a complete one. ``options`` are preset fields (``data_root``,
    ``batch_format``, ...); every method runs with its default hyperparameters.
    When the scenario has a companion (the federated board shows the standard
    score) and ``with_companion`` is set, each method's companion result is reused
    from its own folder when current, else scored into
    ``results/<folder>/<companion>/`` so the companion's own results are never
    overwritten at another N. ``context`` (default: ``make_context()``) says where
    reference models and runs are made (``scoring.executors``), where results are
    filed and B for the intervals (stored intervals are kept unless B differs).
    """
    context = context or make_context()
    scores = score_board(
        preset,
        scenario or Standard(),
        context,
        only=only,
        n_models=n_models,
        rerun=rerun,
        with_companion=with_companion,
        present=partial(present, echo=context.echo),
        options=options,
    )
    scenario, preset, prepared = scores.scenario, scores.preset, scores.prepared
    rows, ceilings, companions = scores.rows, scores.ceilings, scores.companions
    text, data = board_and_data(
        scenario,
        preset,
        prepared,
        rows,
        ceilings,
        companions,
        scores.failures,
        scores.left_out,
        scores.differences,
    )
    docs = Path(docs_dir) if docs_dir is not None else repo_root() / "docs"
    stem = f"leaderboard-{results_folder(preset.name, scenario.name)}"
    plot_board(
        docs / f"{stem}.png",
        board_view(scenario, preset, prepared).picture_title,
        rows,
        ceilings,
        companions if scenario.companion is not None else None,
    )
    return write_board(
        docs,
        stem,
        text,
        preset,
        scenario.make_argument,
        list(scores.chosen) if scores.left_out else None,
        context.echo,
        data,
    )


def board_and_data(
    scenario: Scenario,
    preset: Preset,
    prepared: Prepared,
    results: list[dict[str, Any]],
    ceilings: list[dict[str, Any]],
    companions: dict[str, dict[str, Any]],
    failures: dict[str, str],
    left_out: list[str] | None = None,
    differences: dict[str, dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any]]:
    """Markdown: what the numbers stand for, then methods by (final) score with the ceiling among them;
    and the same board as data (``boards.board_data``), built from the same rows in the same pass.

    ``ceilings`` holds the retrain ceiling after each step; ``companions`` each
    method's result in the scenario's companion, shown where its board asks;
    ``differences`` each row's paired difference to the leader (by name).
    Rows whose score interval overlaps the leader's are marked tied.
    """
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    devices = sorted({row["device"] for row in results}) or ["(no method scored)"]
    board: Board = board_view(scenario, preset, prepared, f"Generated {today} on {', '.join(devices)}")
    lines = [
        f"# {board.title}",
        "",
        board.intro,
        "",
        board.explanation,
        "",
        uncertainty_note(results, ceilings[-1]),
        "",
        cost_note(results, prepared),
        "",
        "| rank | method | " + " | ".join(column.header for column in board.columns) + " |",
        "|---:|---|" + "---:|" * len(board.columns),
    ]
    # The ceiling is retraining: its time is the first timed retraining's, else the references' median.
    retraining = next((r["cost"]["retraining"] for r in results if r.get("cost")), None)
    ceiling_row = {
        **ceilings[-1],
        "method": CEILING_LABEL,
        "steps": ceilings,
        "time_fraction": 1.0,
        "cost": {"passes_fraction": 1.0},
        "seconds_per_run": retraining["wall_seconds"]
        if retraining
        else prepared.final.retrain_seconds,
    }
    ties = ties_with_leader(results)
    rank, entries, ceiling_entry = 0, [], None
    for row in sorted([*results, ceiling_row], key=lambda r: r["score"], reverse=True):
        is_ceiling = row["method"] == CEILING_LABEL
        rank += 0 if is_ceiling else 1
        view = {
            **row,
            "companion": companions.get(row["method"]),
            "tied": ties.get(row["method"], False),
            "vs_leader": (differences or {}).get(row["method"]),
        }
        cells = " | ".join(column.cell(view) for column in board.columns)
        lines.append(f"| {'' if is_ceiling else rank} | {row['method']} | {cells} |")
        entry = {"method": row["method"], **figures(view, steps=len(prepared.steps) > 1)}
        if is_ceiling:
            ceiling_entry = entry
        else:
            entries.append({"rank": rank, **entry, "tied": view["tied"]})
    if board.compares_with_kaggle:
        lines += agreement_lines(kaggle_agreement(results))
        lines += two_metric_lines(results, differences or {})
    lines += board_notes(failures, left_out, board.left_out_label)
    data = board_data(board.title, board.intro, preset, scenario.name, entries, ceiling_entry)
    return "\n".join(lines) + "\n", data


def ties_with_leader(results: list[dict[str, Any]]) -> dict[str, bool]:
    """Methods whose score interval overlaps the leader's (the leader included).

    Empty when the leader has no interval: a tie cannot be told without it.
    """
    if not results:
        return {}
    leader = max(results, key=lambda row: row["score"])
    if stored_interval(leader) is None:
        return {}
    intervals = {row["method"]: stored_interval(row) for row in results}
    return tied_with_leader({name: iv for name, iv in intervals.items() if iv is not None})


def uncertainty_note(results: list[dict[str, Any]], ceiling: dict[str, Any]) -> str:
    """What the brackets mean, with the level and B the results' intervals were computed at."""
    records = [r["intervals"] for r in [*results, ceiling] if r.get("intervals")]
    if not records:
        return "No intervals: these results kept no per-run forget confidences."
    levels = sorted({f"{record['level']:.0%}" for record in records})
    resamples = sorted({record["num_resamples"] for record in records})
    return (
        f"Brackets are {'/'.join(levels)} intervals (B = {', '.join(map(str, resamples))} "
        "resamples: the forget examples with replacement, half of the method's runs and half of "
        "the reference models without, so no model repeats; the estimate plus the percentiles "
        "of the resamples' deviations from their mean). *tied with #1*: the interval overlaps "
        "the leader's, so this N cannot tell the two apart. *Δ vs leader*: the paired "
        "difference to the leader on the same resamples (an interval excluding 0 says they "
        "differ)."
    )


# What each result's ``time_fraction_basis`` means, for the board's header.
BASES = {
    "cpu": "process CPU time of each run over that of one retraining timed in the same scoring "
    "process",
    "calibrated": "each run's wall time in units of a calibration workload timed beside it, over "
    "the same for one retraining timed in the same scoring process",
}


def cost_note(results: list[dict[str, Any]], prepared: Prepared) -> str:
    """How the time fraction was measured, with the timed retraining's seconds."""
    timed = [r for r in results if r.get("cost")]
    if not timed:
        return (
            "Time fraction: one run's mean wall time over the cached references' median training "
            f"time ({prepared.final.retrain_seconds:.1f} s); these results predate one-run timing."
        )
    bases = sorted({BASES.get(r.get("time_fraction_basis"), "") for r in timed} - {""})
    cpu = _span([r["cost"]["retraining"]["process_seconds"] for r in timed])
    wall = _span([r["cost"]["retraining"]["wall_seconds"] for r in timed])
    scaled = sorted({tuple(r["cost"]["retraining"].get("scaled_from") or ()) for r in timed} - {()})
    how = "".join(
        f"; its first {k} of {epochs} epochs and one validation pass timed, scaled by the "
        "recipe's counts"
        for k, epochs in scaled
    )
    resumed = [
        f"`{r['method']}` ({len(r['resumed_runs'])} of {r['n_models']} runs)"
        for r in timed
        if r.get("resumed_runs")
    ]
    kept = (
        f" Resumed after an interruption: {', '.join(resumed)}; the kept runs were timed in "
        "the earlier process, against its own conditions."
        if resumed
        else ""
    )
    return (
        f"Time fraction: {'; '.join(bases)} (one retraining: {cpu} s CPU, {wall} s wall{how}). "
        "Passes: the forward and backward example passes of one run over one retraining's, "
        f"counted exactly.{kept}"
    )


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}"


def write_board(
    docs: Path,
    stem: str,
    text: str,
    preset: Preset,
    mode: str = "",
    methods: list[str] | None = None,
    echo: bool = True,
    data: dict[str, Any] | None = None,
) -> Path:
    """Write ``<stem>.md``: the table, its picture ``<stem>.png`` and the command that makes both;
    with ``data``, first ``<stem>.json``: the board as data (``boards.board_data``) and that command.

    The command carries N and the method list only when they differ from the
    defaults, so it is the shortest one that reproduces this exact board.
    """
    base, split = split_origin(preset.name)
    command = f"make leaderboard PRESET={base}"
    if split:
        command += f" SPLIT={split}"
    if mode:
        command += f" {mode}"
    if preset.n_models != get_preset(base).n_models:
        command += f" N={preset.n_models}"
    if methods:
        command += f" METHODS={','.join(methods)}"
    footer = [
        "",
        f"![{stem}]({stem}.png)",
        "",
        f"Made with `{command}` (results are reused while a method's source, hyperparameters "
        "and the references are unchanged).",
    ]
    text += "\n".join(footer) + "\n"
    if data is not None:
        atomic_write_json(docs / f"{stem}.json", {**data, "command": command})
    path = atomic_write_text(docs / f"{stem}.md", text)
    say(echo, f"\n{text}\nwrote {path}")
    return path


def board_notes(
    failures: dict[str, str],
    left_out: list[str] | None,
    left_out_label: str,
) -> list[str]:
    """Lines under a table for the methods it lacks, so a partial board never passes for a full one."""
    lines: list[str] = []
    if failures:
        lines += ["", "Methods that failed (fix them and run `make leaderboard` again):", ""]
        lines += [
            f"- `{name}`: {' '.join(message.split())}" for name, message in sorted(failures.items())
        ]
    if left_out:
        lines += ["", f"{left_out_label}: " + ", ".join(f"`{name}`" for name in left_out) + "."]
    return lines
