"""The competition's own setting: one call per run on a fresh copy of the original model."""

from __future__ import annotations

import dataclasses
from typing import Any

from local_eval.scoring.context import Context
from local_eval.scoring.presets import Preset
from local_eval.scoring.references import build_references
from local_eval.scoring.scenarios import (
    DIAGNOSTIC_COLUMNS,
    INTERVAL_COLUMNS,
    Board,
    Column,
    Prepared,
    Step,
    ratio_columns,
)


@dataclasses.dataclass(frozen=True)
class Standard:
    """N runs, each one call on a fresh original, scored against N models retrained without the forget set."""

    name = "standard"
    make_argument = ""
    companion = None

    def prepare(self, preset: Preset, context: Context) -> Prepared:
        refs = build_references(
            preset, device=context.device, progress=context.progress, executor=context.executor
        )
        return Prepared(
            steps=(Step(refs=refs, given=refs.data),), record={}, reuse={"references_key": refs.key}
        )

    def board(self, preset: Preset, prepared: Prepared, generated: str) -> Board:
        data = prepared.final.data
        return Board(
            title=f"Leaderboard: preset `{preset.name}`",
            intro=(
                f"Dataset `{preset.dataset}`, model `{preset.arch}`, N = {preset.n_models} unlearned "
                f"models per method against N retrained ones; forget set {len(data.forget)} images "
                f"({preset.forget_mode}, {preset.forget_fraction:.0%}), retain {len(data.retain)}, "
                f"validation {len(data.val)}, test {len(data.test)}. {generated}."
            ),
            explanation=(
                "Score = F x retain ratio x test ratio (the competition's metric, computed locally). "
                "The retrain ceiling scores the other N retrained models as if they were a method: "
                "the best score reachable at this N. s / run and the fastest run are wall seconds, "
                "for scale only: other jobs on the machine lengthen them. KLoM (the Easy Data "
                "Unlearning Bench's metric) is the mean over forget examples of the KL divergence "
                "between the method's and the retrained models' binned margins: 0 is retraining, "
                "lower is better, and the ceiling's is its floor at this N. *shift*: the method's "
                "mean logit-scaled confidence on a forget example minus the retrained models' "
                "(above 0: it still remembers; below 0: it over-forgot). *spread ratio*: its "
                "run-to-run spread over theirs (below 1: runs too alike). The score punishes both."
            ),
            columns=(
                *INTERVAL_COLUMNS,
                *DIAGNOSTIC_COLUMNS,
                *ratio_columns(),
                Column("s / run", lambda row: f"{row['seconds_per_run']:.2f}"),
                Column("fastest run (s)", lambda row: f"{_fastest(row):.2f}"),
            ),
            picture_title=f"Leaderboard: preset {preset.name}, N = {preset.n_models}",
            doing=f"scoring on preset {preset.name} (N={preset.n_models})",
            left_out_label="Registered but not scored in this run",
            compares_with_kaggle=True,
        )

    @staticmethod
    def describe(result: dict[str, Any]) -> str:
        return ""


def _fastest(row: dict[str, Any]) -> float:
    """The quickest run's seconds: other load on the machine only ever adds time."""
    seconds = [run["seconds"] for run in row.get("runs", ()) if "seconds" in run]
    return min(seconds) if seconds else row["seconds_per_run"]


SCENARIO = Standard
