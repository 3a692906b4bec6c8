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
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from local_eval.scoring.context import Context, make_context
from local_eval.scoring.presets import Preset, apply_overrides
from local_eval.scoring.references import build_references
from local_eval.scoring.results import current_result, result_paths
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


# (method_cls, params, split, n_models, *, label, intervals=False) -> TrialScore
ScoreTrial = Callable[..., TrialScore]


def make_scorer(preset: Preset, runs_dir: Path, context: Context) -> ScoreTrial:
    """A ``ScoreTrial`` on ``preset``'s splits, filing each result under ``runs_dir/<label>/``.

    Results go to their own folder, never to ``results/<preset>/<method>.json``,
    so tuning leaves the boards' results alone. ``context``'s executor runs every
    trial's runs; trials print nothing, whatever ``context.echo`` says.

    ``intervals``: with the score's bootstrap interval (else ``interval`` is None).
    Trials compare point scores, and a bootstrap costs more than a cpu preset's
    runs, so only the report asks for intervals; a result already filed under
    ``label`` with the same hyperparameters is then completed, not rerun (its
    references are loaded on ``context.device``, any missing one built in this
    process).
    """

    def score_trial(
        method_cls: type[BaseMethod],
        params: dict[str, Any],
        split: int,
        n_models: int,
        *,
        label: str,
        intervals: bool = False,
    ) -> TrialScore:
        target = resolve_preset(split_preset(preset, split), {}, n_models)
        folder = Path(runs_dir) / label
        stored = None
        if intervals:
            prepared = Standard().prepare(
                target, make_context(device=context.device, progress=False)
            )
            path = result_paths(folder, target.name, method_cls.name, Standard.name)[0]
            stored = current_result(path, method_cls, target, prepared, params)
        trial = dataclasses.replace(
            context,
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


def prepare_split(preset: Preset, split: int, n_models: int, context: Context) -> None:
    """Build split ``split``'s reference models once, before several workers would race to."""
    build_references(
        split_preset(apply_overrides(preset, {"n_models": n_models}), split),
        progress=context.progress,
        executor=context.executor,
    )
