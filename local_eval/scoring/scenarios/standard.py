"""The competition's own setting: one call per run on a fresh copy of the original model."""

from __future__ import annotations

import dataclasses

from local_eval.scoring.context import Context
from local_eval.scoring.presets import Preset
from local_eval.scoring.references import build_references
from local_eval.scoring.scenarios import Prepared, Step


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


SCENARIO = Standard
