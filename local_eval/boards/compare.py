"""Is method A better than method B? Their paired score difference on the same references.

Two separate intervals that overlap do not say two methods are equal, and two
that barely miss each other overstate the gap: the score is noisy mostly
through what both methods share (the forget examples and the reference
models). Pairing cancels that. Both methods are scored (or their current
stored results reused, as a board does) against one set of references, and the
bootstrap resamples the forget examples, the reference models and the run
indices alike for both, so the interval of A - B is what the data say about
the gap itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_eval.boards.views import DIAGNOSTIC_COLUMNS
from local_eval.errors import EvalError
from local_eval.scoring.board_scores import Gathering, choose_methods, method_results
from local_eval.scoring.context import Context, make_context
from local_eval.scoring.intervals import difference_to, stored_interval
from local_eval.scoring.presets import Preset
from local_eval.scoring.runner import resolve_preset
from local_eval.scoring.scenarios import Scenario
from local_eval.scoring.scenarios.standard import Standard
from local_eval.scoring.several_splits import split_preset


@dataclass(frozen=True)
class Comparison:
    """A's and B's results and the paired difference A - B (``intervals.difference_to``'s dict)."""

    preset: Preset
    scenario: str
    a: dict[str, Any]
    b: dict[str, Any]
    difference: dict[str, Any]

    @property
    def verdict(self) -> str:
        """``"ahead"`` / ``"behind"`` when the interval excludes 0, else ``"tied"``."""
        if self.difference["low"] > 0:
            return "ahead"
        if self.difference["high"] < 0:
            return "behind"
        return "tied"


def compare_methods(
    a: str,
    b: str,
    preset: str | Preset = "cpu",
    n_models: int | None = None,
    *,
    scenario: Scenario | None = None,
    context: Context | None = None,
    split: int = 0,
    **options: Any,
) -> Comparison:
    """Score (or reuse) registered methods ``a`` and ``b`` on one preset; their paired difference.

    ``split`` j > 0 compares on the preset's j-th independent reference set (the
    one ``SPLITS=`` boards call split j), e.g. a split no tuning saw. ``context``
    (default: ``make_context()``) as for a board.
    """
    if a == b:
        raise EvalError(f"compare needs two different methods; got {a!r} twice.")
    scenario = scenario or Standard()
    context = context or make_context()
    preset = split_preset(resolve_preset(preset, options, n_models), split)
    chosen, _ = choose_methods([a, b], doing="compare")
    gathering = Gathering(context, rerun=False)
    prepared = scenario.prepare(preset, context)
    rows, failures = method_results(chosen, preset, scenario, prepared, gathering)
    if failures:
        name, message = next(iter(failures.items()))
        raise EvalError(f"{name} could not be scored: {' '.join(message.split())}")
    by_name = {row["method"]: row for row in rows}
    difference = difference_to(by_name[a], by_name[b], prepared.final, context.bootstrap)
    if difference is None:
        raise EvalError(
            f"{a} and {b} have no paired interval: a stored result kept no per-run confidences. "
            "Score them again (delete their result files) and compare."
        )
    return Comparison(preset, scenario.name, by_name[a], by_name[b], difference)


def comparison_text(found: Comparison) -> str:
    """Three lines: each score with its interval, then the difference and what it means."""
    a, b, d = found.a["method"], found.b["method"], found.difference
    mode = "" if found.scenario == "standard" else f", {found.scenario}"
    setup = f"preset {found.preset.name}{mode}, N = {found.preset.n_models}"
    meaning = {
        "ahead": f"{a} scores higher than {b}",
        "behind": f"{a} scores lower than {b}",
        "tied": f"tied: this N cannot tell {a} and {b} apart",
    }[found.verdict]
    return "\n".join(
        [
            _score_line(found.a),
            _score_line(found.b),
            f"{a} - {b} = {d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] "
            f"({d['level']:.0%} paired bootstrap, B = {d['num_resamples']}; {setup}): {meaning}",
        ]
    )


def _score_line(row: dict[str, Any]) -> str:
    """The score with its interval, then KLoM, the mean shift and the spread ratio where stored."""
    interval = stored_interval(row)
    bracket = f" [{interval.low:.4f}, {interval.high:.4f}]" if interval else ""
    diagnostics = [
        f"{column.header.removesuffix(' [lo, hi]')} {cell}"
        for column in DIAGNOSTIC_COLUMNS
        if (cell := column.cell(row))
    ]
    return f"{row['method']}: score {row['score']:.4f}{bracket}" + "".join(
        f"; {part}" for part in diagnostics
    )
