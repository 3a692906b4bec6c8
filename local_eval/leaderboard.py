"""Score every registered method on one preset and publish the ranking as Markdown.

Scoring a method takes minutes, so results from earlier runs are reused while
they still describe the same thing: same preset options, same reference models,
same method source and default hyperparameters. Anything else is re-scored.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import methods
from local_eval.cache import atomic_write_text, repo_root
from local_eval.errors import EvalError
from local_eval.evaluate import (
    RESULT_FORMAT,
    default_results_dir,
    evaluate_method,
    method_source_hash,
    resolve_hyperparameters,
    resolve_preset,
    score_models,
)
from local_eval.leaderboard_plots import plot_standard_leaderboard
from local_eval.presets import Preset, get_preset, preset_options
from local_eval.references import build_references, references_key
from local_eval.report import result_paths
from local_eval.scoring.executors import Executor
from methods.base import BaseMethod

CEILING_LABEL = "*retrain ceiling*"


def build_leaderboard(
    preset: str | Preset = "cpu",
    n_models: int | None = None,
    *,
    device: torch.device | str | None = None,
    results_dir: Path | str | None = None,
    docs_dir: Path | str | None = None,
    rerun: bool = False,
    only: list[str] | None = None,
    progress: bool = True,
    echo: bool = True,
    executor: Executor | None = None,
    ensemble: int = 1,
    **options: Any,
) -> Path:
    """Score (or reuse) every method in ``methods.all_method_handlers()`` and write the table.

    A method that fails gets a line saying so instead of stopping the others; the
    table goes to ``docs/leaderboard-<preset>.md``. ``only`` restricts the run to
    some registered methods (when scoring all would take too long); the table then
    names the ones left out, so a partial board never passes for a complete one.
    ``options`` are preset fields (``data_root``, ``batch_format``, ...), as for
    ``evaluate_method``; every method runs with its default hyperparameters.
    ``executor`` and ``ensemble`` decide where reference models and runs are made.
    """
    preset = resolve_preset(preset, options, n_models)
    device = torch.device(device) if device is not None else None
    results_dir = Path(results_dir) if results_dir is not None else default_results_dir()
    chosen, left_out = choose_methods(only)
    rows, failures = gather_results(
        chosen,
        lambda method_cls: None if rerun else reusable_result(method_cls, preset, results_dir),
        lambda method_cls: evaluate_method(
            method_cls,
            preset,
            device=device,
            results_dir=results_dir,
            progress=progress,
            echo=echo,
            executor=executor,
            ensemble=ensemble,
        ),
        lambda name: result_paths(results_dir, preset.name, name)[0],
        f"scoring on preset {preset.name} (N={preset.n_models})",
        echo,
    )
    refs = build_references(
        preset, device=device, progress=progress, executor=executor, ensemble=ensemble
    )
    ceiling = score_models(refs.ceiling, refs)
    text = render_leaderboard(
        preset, rows, ceiling, failures, refs.retrain_seconds, _sizes(refs), left_out
    )
    docs = Path(docs_dir) if docs_dir is not None else repo_root() / "docs"
    stem = f"leaderboard-{preset.name}"
    plot_standard_leaderboard(
        docs / f"{stem}.png", f"Leaderboard: preset {preset.name}, N = {preset.n_models}",
        rows, ceiling["score"],
    )
    return write_board(docs, stem, text, preset, methods=list(chosen) if left_out else None, echo=echo)


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


def stored_if_current(
    path: Path, method_cls: type[BaseMethod], preset: Preset, **expected: Any
) -> dict[str, Any] | None:
    """The result stored at ``path`` if a fresh run would compute exactly it, else None.

    Same preset options, method source and default hyperparameters, plus the
    mode's own ``expected`` fields (result format, reference keys, ...).
    """
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    current = {
        "options": json.loads(json.dumps(preset_options(preset))),
        "source_sha256": method_source_hash(method_cls),
        "hyperparameters": json.loads(json.dumps(resolve_hyperparameters(method_cls, None))),
        **expected,
    }
    if any(result.get(key) != value for key, value in current.items()):
        return None
    return result


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


def reusable_result(
    method_cls: type[BaseMethod], preset: Preset, results_dir: Path
) -> dict[str, Any] | None:
    """The stored result if it was computed exactly as a fresh run would be, else None."""
    return stored_if_current(
        result_paths(results_dir, preset.name, method_cls.name)[0],
        method_cls,
        preset,
        format=RESULT_FORMAT,
        references_key=references_key(preset),
    )


def render_leaderboard(
    preset: Preset,
    results: list[dict[str, Any]],
    ceiling: dict[str, Any],
    failures: dict[str, str],
    retrain_seconds: float,
    sizes: dict[str, int],
    left_out: list[str] | None = None,
) -> str:
    """Markdown: a header with what the numbers stand for, then methods by score."""
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    ceiling_row = {
        **ceiling,
        "method": CEILING_LABEL,
        "time_fraction": 1.0,
        "seconds_per_run": retrain_seconds,
    }
    ranked = sorted([*results, ceiling_row], key=lambda row: row["score"], reverse=True)
    devices = sorted({row["device"] for row in results}) or ["(no method scored)"]
    lines = [
        f"# Leaderboard: preset `{preset.name}`",
        "",
        f"Dataset `{preset.dataset}`, model `{preset.arch}`, N = {preset.n_models} unlearned models per "
        f"method against N retrained ones; forget set {sizes['forget']} images "
        f"({preset.forget_mode}, {preset.forget_fraction:.0%}), retain {sizes['retain']}, "
        f"validation {sizes['val']}, test {sizes['test']}. Generated {today} on {', '.join(devices)}; "
        f"one retraining takes {retrain_seconds:.1f} s.",
        "",
        "Score = F x retain ratio x test ratio (the competition's metric, computed locally). "
        "The retrain ceiling scores the other N retrained models as if they were a method: "
        "the best score reachable at this N. Time fraction is one run's mean time over one "
        "retraining's; the fastest run is the better cost estimate when other jobs shared the machine.",
        "",
        "| rank | method | score | F | retain ratio | test ratio | time fraction | s / run | fastest run (s) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rank = 0
    for row in ranked:
        is_ceiling = row["method"] == CEILING_LABEL
        rank += 0 if is_ceiling else 1
        lines.append(
            f"| {'' if is_ceiling else rank} | {row['method']} | {row['score']:.4f} | "
            f"{row['forget_quality']:.4f} | {row['retain_ratio']:.3f} | {row['test_ratio']:.3f} | "
            f"{row['time_fraction']:.3f} | {row['seconds_per_run']:.2f} | {_fastest(row):.2f} |"
        )
    lines += board_notes(failures, left_out, "Registered but not scored in this run")
    return "\n".join(lines) + "\n"


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


def _fastest(row: dict[str, Any]) -> float:
    """The quickest run's seconds: other load on the machine only ever adds time."""
    seconds = [run["seconds"] for run in row.get("runs", ()) if "seconds" in run]
    return min(seconds) if seconds else row["seconds_per_run"]


def _sizes(refs) -> dict[str, int]:
    data = refs.data
    return {
        "retain": len(data.retain),
        "forget": len(data.forget),
        "val": len(data.val),
        "test": len(data.test),
    }


def say(echo: bool, message: str) -> None:
    if echo:
        print(message, flush=True)
