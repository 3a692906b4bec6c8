"""What of a preset's reference models is on disk: finished, half-trained, or missing.

A faithful build is hours of compute, run in pieces or on a cluster; the first
question before resuming it, and the last after, is how far it got and what a
model cost. This reads the cache without changing it: an entry counts as
finished only when its record verifies against its weights, and a half-trained
model is one whose epoch checkpoint belongs to its recipe and seed.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from local_eval.scoring.presets import Preset
from local_eval.scoring.references import (
    RECORD_KEYS,
    epoch_checkpoint,
    metrics_path,
    model_specs,
    recipe_for,
    references_dir,
    weights_path,
)
from local_eval.store.entries import verified_record


@dataclass(frozen=True)
class ReferenceStatus:
    """How far a preset's 1 + 2N reference models are, and what the finished ones cost."""

    preset: Preset
    directory: str
    total: int
    finished: int
    half_trained: dict[str, int]  # model stem -> epochs saved
    train_seconds: tuple[float, ...]  # of the finished models that recorded it
    devices: tuple[str, ...]


def reference_status(preset: Preset) -> ReferenceStatus:
    """Count the finished models and read the epoch checkpoints of the others (nothing is written)."""
    directory = references_dir(preset)
    finished, seconds, devices, half = 0, [], set(), {}
    for spec in model_specs(preset):
        record = verified_record(
            metrics_path(directory, spec),
            weights_path(directory, spec),
            RECORD_KEYS,
        )
        if record is not None:
            finished += 1
            devices.add(record["device"])
            if record["train_seconds"] == record["train_seconds"]:  # not NaN
                seconds.append(float(record["train_seconds"]))
            continue
        checkpoint = epoch_checkpoint(directory, spec)
        saved = checkpoint.saved_epochs(dataclasses.asdict(recipe_for(preset, spec.role)), spec.seed)
        if saved:
            half[checkpoint.path.stem] = saved
    return ReferenceStatus(
        preset, str(directory), len(model_specs(preset)), finished, half, tuple(seconds),
        tuple(sorted(devices)),
    )  # fmt: skip


def status_text(status: ReferenceStatus) -> str:
    """A few lines for the terminal: progress, half-trained models, cost per model."""
    preset = status.preset
    lines = [
        f"preset {preset.name} (N = {preset.n_models}): {status.finished} of {status.total} "
        f"reference models finished, in {status.directory}"
    ]
    if status.half_trained:
        epochs = preset.retrain_recipe.epochs
        parts = ", ".join(f"{stem} {saved}/{epochs}" for stem, saved in sorted(status.half_trained.items()))
        lines.append(f"half-trained (epochs saved, resumed by the next build): {parts}")
    if status.train_seconds:
        median = statistics.median(status.train_seconds)
        left = status.total - status.finished
        line = (
            f"training time per finished model: median {median:.0f} s on {', '.join(status.devices)} "
            f"(range {min(status.train_seconds):.0f}-{max(status.train_seconds):.0f} s)"
        )
        if left:
            line += f"; the {left} left are about {left * median / 3600:.1f} hours of one such worker"
        lines.append(line)
    return "\n".join(lines)
