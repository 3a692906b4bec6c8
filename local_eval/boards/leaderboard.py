"""Score registered methods in one scenario and publish the ranking as Markdown and a picture.

One builder for every scenario's board: the scenario (``scoring.scenarios``)
says what its board's header says and which columns it has; the rest (reusing
stored results, ranking, the retrain ceiling's row, the notes on failed and
left-out methods, the picture, the command under the table) is the same.
Scoring a method takes minutes, so results from earlier runs are reused while
they still describe the same thing (``scoring.results.stored_if_current``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import methods
from local_eval.boards.plots import plot_board
from local_eval.boards.report import evaluate_method
from local_eval.cache import atomic_write_text, repo_root
from local_eval.devices import default_device
from local_eval.errors import EvalError
from local_eval.scoring.executors import Executor
from local_eval.scoring.presets import Preset, get_preset
from local_eval.scoring.results import (
    default_results_dir,
    result_paths,
    results_folder,
    stored_if_current,
)
from local_eval.scoring.runner import resolve_preset, score_models
from local_eval.scoring.scenarios import Board, Prepared, Scenario, get_scenario
from local_eval.scoring.scenarios.standard import Standard
from methods.base import BaseMethod

CEILING_LABEL = "*retrain ceiling*"


def build_leaderboard(
    preset: str | Preset = "cpu",
    n_models: int | None = None,
    *,
    scenario: Scenario | None = None,
    only: list[str] | None = None,
    with_companion: bool = True,
    device: torch.device | str | None = None,
    results_dir: Path | str | None = None,
    docs_dir: Path | str | None = None,
    rerun: bool = False,
    progress: bool = True,
    echo: bool = True,
    executor: Executor | None = None,
    ensemble: int = 1,
    **options: Any,
) -> Path:
    """Score (or reuse) registered methods in ``scenario`` and write ``docs/leaderboard-<folder>.md``.

    A method that fails gets a line saying so instead of stopping the others.
    ``only`` restricts the run to some registered methods (when scoring all would
    take too long); the table then names the ones left out, so a partial board
    never passes for a complete one. ``options`` are preset fields (``data_root``,
    ``batch_format``, ...); every method runs with its default hyperparameters.
    When the scenario has a companion (the federated board shows the standard
    score) and ``with_companion`` is set, each method's companion result is reused
    from its own folder when current, else scored into
    ``results/<folder>/<companion>/`` so the companion's own results are never
    overwritten at another N. ``executor`` and ``ensemble`` decide where reference
    models and runs are made (``scoring.executors``; default: in this process).
    """
    scenario = scenario or Standard()
    preset = resolve_preset(preset, options, n_models)
    device = torch.device(device) if device is not None else default_device()
    results_root = Path(results_dir) if results_dir is not None else default_results_dir()
    chosen, left_out = choose_methods(only)
    prepared = scenario.prepare(preset, device, progress, executor=executor, ensemble=ensemble)
    board = scenario.board(preset, prepared, "")

    def score(method_cls: type[BaseMethod], where: Scenario, folder: Path) -> dict[str, Any]:
        return evaluate_method(
            method_cls,
            preset,
            scenario=where,
            device=device,
            results_dir=folder,
            progress=progress,
            echo=echo,
            executor=executor,
            ensemble=ensemble,
        )

    rows, failures = gather_results(
        chosen,
        lambda method_cls: _reused(method_cls, preset, scenario, prepared, (results_root,), rerun),
        lambda method_cls: score(method_cls, scenario, results_root),
        lambda name: result_paths(results_root, preset.name, name, scenario.name)[0],
        board.doing,
        echo,
    )
    companions: dict[str, dict[str, Any]] = {}
    if scenario.companion is not None and with_companion and rows:
        companion = get_scenario(scenario.companion)
        companion_prepared = companion.prepare(
            preset, device, progress, executor=executor, ensemble=ensemble
        )
        spare = results_root / results_folder(preset.name, scenario.name) / companion.name
        for row in rows:
            name = row["method"]
            try:
                companions[name] = _reused(
                    chosen[name], preset, companion, companion_prepared, (results_root, spare), rerun
                ) or score(chosen[name], companion, spare)
            except EvalError as exc:
                say(echo, f"{name}: failed: {exc}")
                failures[name] = str(exc)
    ceilings = [score_models(step.refs.ceiling, step.refs) for step in prepared.steps]
    text = render_board(scenario, preset, prepared, rows, ceilings, companions, failures, left_out)
    docs = Path(docs_dir) if docs_dir is not None else repo_root() / "docs"
    stem = f"leaderboard-{results_folder(preset.name, scenario.name)}"
    plot_board(
        docs / f"{stem}.png",
        board.picture_title,
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
        list(chosen) if left_out else None,
        echo,
    )


def render_board(
    scenario: Scenario,
    preset: Preset,
    prepared: Prepared,
    results: list[dict[str, Any]],
    ceilings: list[dict[str, Any]],
    companions: dict[str, dict[str, Any]],
    failures: dict[str, str],
    left_out: list[str] | None = None,
) -> str:
    """Markdown: what the numbers stand for, then methods by (final) score with the ceiling among them.

    ``ceilings`` holds the retrain ceiling after each step; ``companions`` each
    method's result in the scenario's companion, shown where its board asks.
    """
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    devices = sorted({row["device"] for row in results}) or ["(no method scored)"]
    board: Board = scenario.board(preset, prepared, f"Generated {today} on {', '.join(devices)}")
    lines = [
        f"# {board.title}",
        "",
        board.intro,
        "",
        board.explanation,
        "",
        "| rank | method | " + " | ".join(column.header for column in board.columns) + " |",
        "|---:|---|" + "---:|" * len(board.columns),
    ]
    ceiling_row = {
        **ceilings[-1],
        "method": CEILING_LABEL,
        "steps": ceilings,
        "time_fraction": 1.0,
        "seconds_per_run": prepared.final.retrain_seconds,
    }
    rank = 0
    for row in sorted([*results, ceiling_row], key=lambda r: r["score"], reverse=True):
        is_ceiling = row["method"] == CEILING_LABEL
        rank += 0 if is_ceiling else 1
        view = {**row, "companion": companions.get(row["method"])}
        cells = " | ".join(column.cell(view) for column in board.columns)
        lines.append(f"| {'' if is_ceiling else rank} | {row['method']} | {cells} |")
    lines += board_notes(failures, left_out, board.left_out_label)
    return "\n".join(lines) + "\n"


def choose_methods(
    names: list[str] | None,
) -> tuple[dict[str, type[BaseMethod]], list[str]]:
    """The registered methods a board scores (all when ``names`` is None) and those it leaves out.

    Registry order, whatever order ``names`` came in, so the same choice always
    gives the same board and the same command under it.
    """
    handlers = methods.all_method_handlers()
    unknown = [name for name in dict.fromkeys(names or ()) if name not in handlers]
    if unknown:
        raise EvalError(
            f"Cannot restrict the leaderboard to {', '.join(map(repr, unknown))}: not registered. "
            f"Registered methods: {', '.join(handlers)}."
        )
    chosen = {name: cls for name, cls in handlers.items() if names is None or name in names}
    return chosen, [name for name in handlers if name not in chosen]


def gather_results(
    chosen: dict[str, type[BaseMethod]],
    stored: Callable[[type[BaseMethod]], dict[str, Any] | None],
    score: Callable[[type[BaseMethod]], dict[str, Any]],
    where: Callable[[str], Path],
    doing: str,
    echo: bool,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Each method's stored result if still current, else a fresh score; failures by name.

    A method that fails is recorded instead of stopping the others: one broken
    method should not cost the hours the rest of a board takes.
    """
    rows, failures = [], {}
    for name, method_cls in chosen.items():
        try:
            result = stored(method_cls)
            if result is not None:
                say(echo, f"{name}: reusing {where(name)}")
            else:
                say(echo, f"{name}: {doing}")
                result = score(method_cls)
            rows.append(result)
        except EvalError as exc:
            say(echo, f"{name}: failed: {exc}")
            failures[name] = str(exc)
    return rows, failures


def _json_path(results_root: Path, preset: Preset, method_cls: type, scenario: Scenario) -> Path:
    return result_paths(results_root, preset.name, method_cls.name, scenario.name)[0]


def _reused(
    method_cls: type[BaseMethod],
    preset: Preset,
    scenario: Scenario,
    prepared: Prepared,
    folders: tuple[Path, ...],
    rerun: bool,
) -> dict[str, Any] | None:
    """The first current result of ``method_cls`` in ``scenario`` under any of ``folders``."""
    for folder in () if rerun else folders:
        stored = stored_if_current(
            _json_path(folder, preset, method_cls, scenario), method_cls, preset, **prepared.reuse
        )
        if stored is not None:
            return stored
    return None


def write_board(
    docs: Path,
    stem: str,
    text: str,
    preset: Preset,
    mode: str = "",
    methods: list[str] | None = None,
    echo: bool = True,
) -> Path:
    """Write ``<stem>.md``: the table, its picture ``<stem>.png`` and the command that makes both.

    The command carries N and the method list only when they differ from the
    defaults, so it is the shortest one that reproduces this exact board.
    """
    command = f"make leaderboard PRESET={preset.name}"
    if mode:
        command += f" {mode}"
    if preset.n_models != get_preset(preset.name).n_models:
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
    path = atomic_write_text(docs / f"{stem}.md", text)
    say(echo, f"\n{text}\nwrote {path}")
    return path


def board_notes(failures: dict[str, str], left_out: list[str] | None, left_out_label: str) -> list[str]:
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


def say(echo: bool, message: str) -> None:
    if echo:
        print(message, flush=True)
