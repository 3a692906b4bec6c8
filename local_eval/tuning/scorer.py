"""The one place the tuner meets the scoring engine: re-point this file, nothing else.

The tuner only ever calls a ``ScoreTrial``: score a method with given
hyperparameters on reference split ``split`` (0 is the tuning split, 1 the
held-out one no trial sees) with ``n_models`` runs and references, and return a
``TrialScore``. It calls the runner (``score_method``) directly: a trial writes
its result JSON and draws nothing. Split ``k`` is ``several_splits.split_preset``,
the project's one definition of another split (other training subset, forget
persons, reference models and cache key). It returns the result's bootstrap
score interval and its passes fraction.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol, TypedDict

import torch

from local_eval.scoring.context import Context, make_context
from local_eval.scoring.intervals import needs_intervals, with_intervals
from local_eval.scoring.presets import Preset, apply_overrides
from local_eval.scoring.references import build_references
from local_eval.scoring.results import result_paths, stored_if_current, write_result
from local_eval.scoring.runner import NO_INTERVALS, resolve_preset, score_method
from local_eval.scoring.scenarios.standard import Standard
from local_eval.scoring.several_splits import split_preset
from methods.base import BaseMethod


class TrialScore(TypedDict):
    score: float
    interval: tuple[float, float] | None
    time_fraction: float
    passes: float | None
    ceiling: float | None


class ScoreTrial(Protocol):
    """``intervals``: with the score's bootstrap interval (else ``interval`` is None).

    Trials compare point scores, and a bootstrap costs more than a cpu preset's
    runs, so only the report asks for intervals; a result already filed under
    ``label`` with the same hyperparameters is then completed, not rerun.
    """

    def __call__(
        self,
        method_cls: type[BaseMethod],
        params: dict[str, Any],
        split: int,
        n_models: int,
        executor: Any = None,
        *,
        label: str,
        intervals: bool = False,
    ) -> TrialScore: ...


def make_scorer(preset: Preset, runs_dir: Path, context: Context) -> ScoreTrial:
    """A ``ScoreTrial`` on ``preset``'s splits, filing each result under ``runs_dir/<label>/``.

    Results go to their own folder, never to ``results/<preset>/<method>.json``,
    so tuning leaves the boards' results alone. ``context``'s executor runs every
    trial's runs unless a call names its own; trials print nothing, whatever
    ``context.echo`` says.
    """

    def score_trial(
        method_cls: type[BaseMethod],
        params: dict[str, Any],
        split: int,
        n_models: int,
        executor: Any = None,
        *,
        label: str,
        intervals: bool = False,
    ) -> TrialScore:
        target = resolve_preset(split_preset(preset, split), {}, n_models)
        folder = Path(runs_dir) / label
        stored = (
            completed_result(method_cls, params, target, folder, context.device)
            if intervals
            else None
        )
        trial = dataclasses.replace(
            context,
            executor=executor or context.executor,
            echo=False,
            bootstrap=None if intervals else NO_INTERVALS,
            results_dir=folder,
        )
        result = stored or score_method(method_cls, target, overrides=params, context=trial).result
        interval = result.get("intervals")
        return {
            "score": result["score"],
            "interval": tuple(interval["score"]) if interval else None,
            "time_fraction": result["time_fraction"],
            "passes": (result.get("cost") or {}).get("passes_fraction"),
            "ceiling": result["ceiling"]["score"],
        }

    return score_trial


def completed_result(
    method_cls: type[BaseMethod],
    params: dict[str, Any],
    preset: Preset,
    folder: Path,
    device: torch.device | str | None = None,
) -> dict[str, Any] | None:
    """The result filed under ``folder`` for exactly this run, with intervals added and written back.

    Its references are loaded on ``device`` (any missing one is built in this process).
    """
    prepared = Standard().prepare(preset, make_context(device=device, progress=False))
    path, _ = result_paths(folder, preset.name, method_cls.name, Standard.name)
    stored = stored_if_current(path, method_cls, preset, params, **prepared.reuse)
    if stored is None:
        return None
    if needs_intervals(stored):
        stored = with_intervals(stored, prepared.final)
        write_result(stored, path)
    return stored


def prepare_split(preset: Preset, split: int, n_models: int, context: Context) -> None:
    """Build split ``split``'s reference models once, before several workers would race to."""
    build_references(
        split_preset(apply_overrides(preset, {"n_models": n_models}), split),
        progress=context.progress,
        executor=context.executor,
    )
