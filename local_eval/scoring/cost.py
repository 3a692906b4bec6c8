"""What a method costs, measured so that the ratio to a retraining means something.

A time fraction is only a ratio when both sides were timed under the same
conditions. The cached references were trained at another moment (often while
other jobs shared the machine), so their wall times cannot be the denominator.
Instead, a scoring process trains one extra retrained model itself, timed like
every method call (wall, process CPU, and wall over a calibration workload timed
beside it), and divides by that. Passes are the load-free figure: examples through
the model forward and backward, over what one retraining's recipe pushes through.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from local_eval.data.roles import EvalData
from local_eval.devices import synchronize
from local_eval.scoring.executors import Executor, LocalExecutor, Task, TaskLabel, run_tasks
from local_eval.scoring.models import build_model
from local_eval.scoring.passes import PassCount, relative_passes, retraining_passes
from local_eval.scoring.presets import Preset
from local_eval.scoring.references import References
from local_eval.scoring.timing import RunTiming, time_fraction, time_run
from local_eval.scoring.training import evaluate_accuracy, train_model

# The timed retraining's seed: far from the references' seeds, so it is never one of them.
TIMED_RETRAINING_SEED = 7_919_000
# A retraining of more training image-passes than this is timed over its first
# ``TIMED_EPOCHS`` epochs and one validation pass, then scaled by the recipe's exact
# epoch and validation counts: every epoch does the same work (the schedule changes
# only the learning rate), and timing the faithful preset's 1.6 M image-passes whole
# would add half an hour of one core to every scoring process. The cpu preset
# (16 x 1,178) stays timed whole.
WHOLE_TIMING_LIMIT = 200_000
TIMED_EPOCHS = 2
_TIMED: dict[tuple[str, str, str], RunTiming] = {}


def timed_retraining(
    refs: References,
    device: torch.device,
    progress: bool = False,
    executor: Executor | None = None,
) -> RunTiming:
    """One retraining on the retain set, timed where the runs are timed (once per references).

    Always one task of ``executor`` (default: the local one, in this process), so
    that a run is divided by a retraining made with the same threads and device
    as the run itself: a retraining at the process's own thread count would cost
    a different CPU time than the same work at a task's one thread.
    """
    executor = executor or LocalExecutor(device)
    key = (refs.key, str(device), executor.name, getattr(executor, "threads", None))
    if key not in _TIMED:
        task = Task(
            TaskLabel("timed retraining", (0,), (TIMED_RETRAINING_SEED,)),
            timed_retraining_task,
            (refs.preset, refs.data, False),
        )
        timings: list[RunTiming] = []
        run_tasks(
            executor,
            [task],
            lambda _, timing: timings.append(timing),
            "timed retraining",
            progress=progress,
        )
        _TIMED[key] = timings[0]
    return _TIMED[key]


def timed_retraining_task(
    preset: Preset, data: EvalData, progress: bool, *, device: torch.device
) -> RunTiming:
    """Train one retrained model from scratch and return how long it took (the model is dropped).

    A long recipe (see ``WHOLE_TIMING_LIMIT``) is timed over its first epochs and
    one validation pass, each clock scaled to the recipe's counts; ``scaled_from``
    says so.
    """
    recipe = preset.retrain_recipe
    torch.manual_seed(TIMED_RETRAINING_SEED)
    model = build_model(preset.arch).to(device)
    validation = (data.heldout.images, data.heldout.labels, data.val)
    scaled = recipe.epochs > TIMED_EPOCHS and recipe.epochs * len(data.retain) > WHOLE_TIMING_LIMIT
    timed_recipe = (
        dataclasses.replace(recipe, epochs=TIMED_EPOCHS, checkpoint="last", checkpoint_start=0)
        if scaled
        else recipe
    )

    def train() -> None:
        train_model(
            model,
            data.train.images,
            data.train.labels,
            data.retain,
            timed_recipe,
            seed=TIMED_RETRAINING_SEED,
            device=device,
            progress=progress,
            validation=validation,
            weight_indices=torch.arange(len(data.train)),
        )

    _, timing = time_run(train, device=device)
    synchronize(device)
    if not scaled:
        return timing
    validations = recipe.epochs - recipe.checkpoint_start if recipe.checkpoint == "best_val" else 0
    _, one_validation = time_run(
        evaluate_accuracy, model, *validation, device, device=device, calibrate=False
    )
    per_epoch = recipe.epochs / TIMED_EPOCHS

    def total(clock: str) -> float:
        return getattr(timing, clock) * per_epoch + getattr(one_validation, clock) * validations

    return RunTiming(
        wall_seconds=total("wall_seconds"),
        process_seconds=total("process_seconds"),
        thread_seconds=total("thread_seconds"),
        calibration_seconds=timing.calibration_seconds,
        scaled_from=(TIMED_EPOCHS, recipe.epochs),
    )


def retraining_pass_count(refs: References) -> PassCount:
    """One retraining's passes under the preset's retrain recipe."""
    return retraining_passes(refs.preset.retrain_recipe, len(refs.data.retain), len(refs.data.val))


def cost_summary(calls: list[dict[str, Any]], refs: References, retraining: RunTiming) -> dict[str, Any]:
    """A run set's cost against one retraining: per-run means of every clock, and passes.

    ``calls`` holds one entry per run (its calls summed): ``seconds``,
    ``cpu_seconds``, ``calibrated_seconds``, ``forward``, ``backward``.
    """
    n = len(calls)
    mean = {key: sum(c[key] for c in calls) / n for key in calls[0]}
    method = RunTiming(
        wall_seconds=mean["seconds"],
        process_seconds=mean["cpu_seconds"],
        thread_seconds=mean["cpu_seconds"],
        calibration_seconds=mean["seconds"] / mean["calibrated_seconds"]
        if mean["calibrated_seconds"] > 0
        else None,
    )
    passes = relative_passes(
        PassCount(forward=round(mean["forward"]), backward=round(mean["backward"])),
        retraining_pass_count(refs),
    )
    return {
        "retraining": dataclasses.asdict(retraining),
        "time_fraction_cpu": time_fraction(method, retraining, "process"),
        "time_fraction_calibrated": time_fraction(method, retraining, "calibrated")
        if method.calibration_seconds
        else None,
        "time_fraction_wall": time_fraction(method, retraining, "wall"),
        "forward_passes_per_run": mean["forward"],
        "backward_passes_per_run": mean["backward"],
        "passes_fraction": passes.combined,
    }
