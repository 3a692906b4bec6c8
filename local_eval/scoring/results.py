"""Where results are stored, and when a stored one still counts.

Every scenario writes the same kind of JSON (see ``runner.score_method``) to
``results/<preset>/<method>.json`` (the competition's setting) or
``results/<preset>-<scenario>/<method>.json``, with its picture beside it.
Scoring takes minutes, so a board reuses a stored result while it describes
exactly what a fresh run would compute: same preset options, same method source
and default hyperparameters, same result format and the scenario's own keys
(its reference models). Anything else is scored again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from local_eval.scoring.context import default_results_dir
from local_eval.scoring.intervals import needs_intervals, with_intervals
from local_eval.scoring.method_calls import method_source_hash, resolve_hyperparameters
from local_eval.scoring.presets import Preset, preset_options
from local_eval.scoring.scenarios import COMPETITION, Prepared
from local_eval.store.files import atomic_write_json, stored_if_matches
from methods.base import BaseMethod

RESULT_FORMAT = 1


def results_folder(preset: str, mode: str = COMPETITION) -> str:
    """``<preset>`` for the competition's setting, ``<preset>-<scenario>`` for the others."""
    return preset if mode == COMPETITION else f"{preset}-{mode}"


def result_paths(
    results_dir: Path | str | None, preset: str, method: str, mode: str = COMPETITION
) -> tuple[Path, Path]:
    """A method's JSON and PNG: ``results/<folder>/<method>.{json,png}``."""
    root = Path(results_dir) if results_dir is not None else default_results_dir()
    folder = root / results_folder(preset, mode)
    return folder / f"{method}.json", folder / f"{method}.png"


def stored_if_current(
    path: Path,
    method_cls: type[BaseMethod],
    preset: Preset,
    overrides: dict[str, Any] | None = None,
    **expected: Any,
) -> dict[str, Any] | None:
    """The result stored at ``path`` if a fresh run would compute exactly it, else None.

    Same result format, preset options, method source and hyperparameters (the
    defaults with ``overrides``), plus the scenario's ``expected`` fields
    (``Prepared.reuse``: its reference keys).
    """
    stamp = {
        "format": RESULT_FORMAT,
        "options": preset_options(preset),
        "source_sha256": method_source_hash(method_cls),
        "hyperparameters": resolve_hyperparameters(method_cls, overrides),
        **expected,
    }
    return stored_if_matches(path, stamp)


def current_result(
    path: Path,
    method_cls: type[BaseMethod],
    preset: Preset,
    prepared: Prepared,
    overrides: dict[str, Any] | None = None,
    bootstrap: int | None = None,
) -> dict[str, Any] | None:
    """``stored_if_current``, with intervals (B = ``bootstrap``) added and written back if it lacks them.

    The intervals come from the stored confidences: nothing is rescored, and the
    reuse rule never looks at them.
    """
    stored = stored_if_current(path, method_cls, preset, overrides, **prepared.reuse)
    if stored is None or not needs_intervals(stored, bootstrap):
        return stored
    completed = with_intervals(stored, prepared.final, bootstrap)
    if completed is not stored:
        atomic_write_json(path, completed)
    return completed
