"""Everything a board shows, as data: each method's result, the retrain ceiling, the differences.

Boards are views. A board asks this module once (``score_board``, or
``score_splits`` for a board over K splits) and renders what comes back, so a
preset travels down the layers (here, then the scenario, its references, the
runner) and never comes back up to a board. Scoring a method takes minutes, so
a result from an earlier run is reused while it still describes the same thing
(``results.stored_if_current``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import methods
from local_eval.errors import EvalError
from local_eval.scoring.context import Context
from local_eval.scoring.intervals import ceiling_intervals, difference_to
from local_eval.scoring.presets import Preset
from local_eval.scoring.results import current_result, result_paths, results_folder
from local_eval.scoring.runner import Scored, resolve_preset, score_method, score_models
from local_eval.scoring.scenarios import COMPETITION, Prepared, Scenario, get_scenario
from local_eval.scoring.several_splits import split_presets
from methods.base import BaseMethod

CEILING_LABEL = "*retrain ceiling*"

# What a caller does with a freshly scored method (a board draws its plot and prints its summary).
Present = Callable[[Scored], None]


@dataclasses.dataclass(frozen=True)
class BoardScores:
    """One preset's board as data: ``rows`` (results by method), ``ceilings`` (the retrain
    ceiling after each step, the final one with intervals), ``companions`` (each method's result
    in the scenario's companion), ``differences`` (paired difference to the leader, by name)."""

    preset: Preset
    scenario: Scenario
    prepared: Prepared
    chosen: dict[str, type[BaseMethod]]
    left_out: list[str]
    rows: list[dict[str, Any]]
    failures: dict[str, str]
    ceilings: list[dict[str, Any]]
    companions: dict[str, dict[str, Any]]
    differences: dict[str, dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class Gathering:
    """How each method's result is obtained: ``context`` (results under ``context.results_dir``),
    whether stored results are scored again anyway, and what to do with a fresh score."""

    context: Context
    rerun: bool = False
    present: Present | None = None

    def score(
        self, method_cls: type[BaseMethod], preset: Preset, where: Scenario, folder: Path
    ) -> dict[str, Any]:
        context = dataclasses.replace(self.context, results_dir=folder)
        scored = score_method(method_cls, preset, scenario=where, context=context)
        if self.present is not None:
            self.present(scored)
        return scored.result

    def reused(
        self,
        method_cls: type[BaseMethod],
        preset: Preset,
        scenario: Scenario,
        prepared: Prepared,
        folders: tuple[Path, ...],
    ) -> dict[str, Any] | None:
        """The first current result of ``method_cls`` in ``scenario`` under any of ``folders``
        (``results.current_result``: one without intervals gets them, written back)."""
        for folder in () if self.rerun else folders:
            path = result_paths(folder, preset.name, method_cls.name, scenario.name)[0]
            stored = current_result(
                path, method_cls, preset, prepared, bootstrap=self.context.bootstrap
            )
            if stored is not None:
                return stored
        return None


def score_board(
    preset: str | Preset,
    scenario: Scenario,
    context: Context,
    *,
    only: list[str] | None = None,
    n_models: int | None = None,
    rerun: bool = False,
    with_companion: bool = True,
    with_differences: bool = True,
    present: Present | None = None,
    options: dict[str, Any] | None = None,
) -> BoardScores:
    """Score (or reuse) the chosen methods (all registered when ``only`` is None) on one preset.

    A method that fails is recorded in ``failures`` instead of stopping the others.
    When the scenario has a companion (the federated board shows the standard
    score) and ``with_companion`` is set, each method's companion result is reused
    from its own folder when current, else scored into
    ``results/<folder>/<companion>/`` so the companion's own results are never
    overwritten at another N. ``with_differences`` off skips the paired differences
    to the leader (a bootstrap per method), for boards that do not show them.
    """
    preset = resolve_preset(preset, options, n_models)
    chosen, left_out = choose_methods(only)
    gathering = Gathering(context, rerun, present)
    prepared = scenario.prepare(preset, context)
    rows, failures = method_results(chosen, preset, scenario, prepared, gathering)
    companions: dict[str, dict[str, Any]] = {}
    if scenario.companion is not None and with_companion and rows:
        companion = get_scenario(scenario.companion)
        companion_prepared = companion.prepare(preset, context)
        root = context.results_dir
        spare = root / results_folder(preset.name, scenario.name) / companion.name
        for row in rows:
            name = row["method"]
            try:
                companions[name] = gathering.reused(
                    chosen[name], preset, companion, companion_prepared, (root, spare)
                ) or gathering.score(chosen[name], preset, companion, spare)
            except EvalError as exc:
                say(context.echo, f"{name}: failed: {exc}")
                failures[name] = str(exc)
    ceilings = [score_models(step.refs.ceiling, step.refs) for step in prepared.steps]
    ceilings[-1]["intervals"] = ceiling_intervals(prepared.final, context.bootstrap)
    differences = (
        differences_to_leader(rows, ceilings[-1], prepared, context.bootstrap)
        if with_differences
        else {}
    )
    return BoardScores(
        preset, scenario, prepared, chosen, left_out, rows, failures, ceilings, companions, differences
    )


def score_splits(
    preset: str | Preset,
    k: int,
    scenario: Scenario,
    context: Context,
    *,
    only: list[str] | None = None,
    n_models: int | None = None,
    rerun: bool = False,
    present: Present | None = None,
    options: dict[str, Any] | None = None,
) -> list[BoardScores]:
    """``score_board`` on each of K independent reference sets (``several_splits.split_presets``),
    one split after another; companions and differences are not computed here."""
    base = resolve_preset(preset, options, n_models)
    return [
        score_board(
            split,
            scenario,
            context,
            only=only,
            rerun=rerun,
            with_companion=False,
            with_differences=False,
            present=present,
        )
        for split in split_presets(base, k)
    ]


def method_results(
    chosen: dict[str, type[BaseMethod]],
    preset: Preset,
    scenario: Scenario,
    prepared: Prepared,
    gathering: Gathering,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Each method's stored result if still current, else a fresh score; failures by name.

    A method that fails is recorded instead of stopping the others: one broken
    method should not cost the hours the rest of a board takes.
    """
    root, echo = gathering.context.results_dir, gathering.context.echo
    mode = "" if scenario.name == COMPETITION else f" {scenario.name}"
    doing = f"scoring{mode} on preset {preset.name} (N={preset.n_models})"
    rows, failures = [], {}
    for name, method_cls in chosen.items():
        try:
            result = gathering.reused(method_cls, preset, scenario, prepared, (root,))
            if result is not None:
                say(echo, f"{name}: reusing {result_paths(root, preset.name, name, scenario.name)[0]}")
            else:
                say(echo, f"{name}: {doing}")
                result = gathering.score(method_cls, preset, scenario, root)
            rows.append(result)
        except EvalError as exc:
            say(echo, f"{name}: failed: {exc}")
            failures[name] = str(exc)
    return rows, failures


def differences_to_leader(
    rows: list[dict[str, Any]],
    ceiling: dict[str, Any],
    prepared: Prepared,
    bootstrap: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Each row's (and the ceiling's) paired score difference to the leader, by name.

    The leader is the best-scoring method; it has no entry, nor has a row whose
    runs kept no confidences or were scored at another N.
    """
    if not rows:
        return {}
    refs = prepared.final
    leader = max(rows, key=lambda row: row["score"])
    found = {
        row["method"]: difference_to(row, leader, refs, bootstrap)
        for row in rows
        if row is not leader
    }
    found[CEILING_LABEL] = difference_to(ceiling, leader, refs, bootstrap)
    return {name: value for name, value in found.items() if value is not None}


def choose_methods(
    names: list[str] | None, doing: str = "restrict the leaderboard to"
) -> tuple[dict[str, type[BaseMethod]], list[str]]:
    """The registered methods a board scores (all when ``names`` is None) and those it leaves out.

    Registry order, whatever order ``names`` came in, so the same choice always
    gives the same board and the same command under it. ``doing`` completes
    "Cannot ..." in the error for an unregistered name, so it names the command.
    """
    handlers = methods.all_method_handlers()
    unknown = [name for name in dict.fromkeys(names or ()) if name not in handlers]
    if unknown:
        raise EvalError(
            f"Cannot {doing} {', '.join(map(repr, unknown))}: not registered. "
            f"Registered methods: {', '.join(handlers)}."
        )
    if names is None:
        handlers = {name: cls for name, cls in handlers.items() if not is_alias(cls, handlers)}
    chosen = {name: cls for name, cls in handlers.items() if names is None or name in names}
    return chosen, [name for name in handlers if name not in chosen]


def is_alias(cls: type[BaseMethod], handlers: dict[str, type[BaseMethod]]) -> bool:
    """A registered method that only renames another (``MyMethod``, the starter kit's name).

    It subclasses a registered method and defines nothing but its name, so it would
    score the same computation twice: a full board leaves it out (naming it with
    ``METHODS=`` still scores it).
    """
    base = cls.__bases__[0]
    own = {key for key in vars(cls) if not key.startswith("__")}
    return base in handlers.values() and own <= {"name"}


def say(echo: bool, message: str) -> None:
    if echo:
        print(message, flush=True)
