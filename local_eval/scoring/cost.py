"""What a method costs against one retraining, measured so that the ratio means something.

A time fraction is only a ratio when both sides were timed under the same
conditions. The cached references were trained at another moment (often while
other jobs shared the machine), so their wall times cannot be the denominator.
Instead, a scoring process trains one extra retrained model itself, timed like
every method call, and divides by that. Each run gets two remedies against load:
process CPU time (``time.process_time``, all threads of this process, blind to
other processes' load, but also to GPU work), and a fixed calibration workload
timed on the same device just before and just after, so that
``wall / calibration`` is the run's length in units of the machine's speed at
that moment.

Passes are the load-free figure: examples a method pushes through the model,
forward and backward, over what one retraining's recipe pushes through, in the
unit the competition's budget was really about (a backward pass costs about two
forwards, hence ``BACKWARD_WEIGHT``). Counting hooks the top-level model: a
forward pre-hook adds each call's batch size to ``forward``, and a forward hook
registers a gradient hook on the output, so every backward pass that reaches the
output adds that batch's size to ``backward`` (a ``no_grad`` forward adds nothing
there). Copies made with ``copy.deepcopy`` inside the method (teachers,
snapshots) carry the hooks and count too; networks built from scratch, or
sub-modules called directly (``model.layer4(x)``), are not seen.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from local_eval.data.roles import EvalData
from local_eval.devices import synchronize
from local_eval.errors import EvalError
from local_eval.scoring.executors import Executor, LocalExecutor, Task, TaskLabel, run_tasks
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import Preset
from local_eval.scoring.references import References
from local_eval.scoring.training import Recipe, evaluate_accuracy, train_model

BACKWARD_WEIGHT = 2.0
BASES = ("calibrated", "process", "thread", "wall")
# Matrix side and repeats of the calibration product: ~50 ms on one CPU core,
# a few ms on a GPU, so two of them per run add little.
CALIBRATION_SIZES = {"cpu": (384, 8), "cuda": (4096, 20)}
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


@dataclasses.dataclass
class PassCount:
    """Examples through the model's forward, and through a backward pass from its output."""

    forward: int = 0
    backward: int = 0


@dataclasses.dataclass(frozen=True)
class RelativeCost:
    """A method's passes as fractions of one retraining's; ``combined`` weighs backward x2."""

    forward: float
    backward: float
    combined: float


@contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCount]:
    """Count passes through ``model`` while the block runs; the hooks go when it ends."""
    counted = PassCount()

    def before_forward(module, args, kwargs):
        counted.forward += _batch_size(args, kwargs)

    def after_forward(module, args, kwargs, output):
        size = _batch_size(args, kwargs)
        tensor = _first_grad_tensor(output)
        if tensor is not None:

            def on_backward(grad):
                counted.backward += size

            tensor.register_hook(on_backward)

    handles = [
        model.register_forward_pre_hook(before_forward, with_kwargs=True),
        model.register_forward_hook(after_forward, with_kwargs=True),
    ]
    try:
        yield counted
    finally:
        for handle in handles:
            handle.remove()


def retraining_passes(recipe: Recipe, train_size: int, val_size: int = 0) -> PassCount:
    """One retraining's passes under ``recipe`` on ``train_size`` retain images.

    Every epoch is a forward and a backward of every training image; a
    ``best_val`` checkpoint adds a forward of the ``val_size`` validation images
    after each epoch from ``checkpoint_start`` on, as ``training.train_model`` does.
    """
    if train_size < 1:
        raise EvalError(f"train_size={train_size} must be positive: the retain set's size.")
    forward = backward = recipe.epochs * train_size
    if recipe.checkpoint == "best_val":
        forward += (recipe.epochs - recipe.checkpoint_start) * val_size
    return PassCount(forward=forward, backward=backward)


def relative_passes(
    method: PassCount, retraining: PassCount, backward_weight: float = BACKWARD_WEIGHT
) -> RelativeCost:
    if retraining.forward < 1 or retraining.backward < 1:
        raise EvalError(
            f"A retraining with {retraining.forward} forward and {retraining.backward} backward "
            "passes cannot be a unit of cost: compute it with retraining_passes()."
        )
    combined = (method.forward + backward_weight * method.backward) / (
        retraining.forward + backward_weight * retraining.backward
    )
    return RelativeCost(
        forward=method.forward / retraining.forward,
        backward=method.backward / retraining.backward,
        combined=combined,
    )


def _batch_size(args: tuple, kwargs: dict) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 0


def _first_grad_tensor(output) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output if output.requires_grad else None
    if isinstance(output, dict):
        output = tuple(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_grad_tensor(item)
            if found is not None:
                return found
    return None


@dataclasses.dataclass(frozen=True)
class RunTiming:
    """One run's clocks: wall, this process's CPU, the calling thread's CPU, calibration wall.

    ``calibration_seconds`` is the mean of the workload timed before and after
    the run (``None`` when not calibrated).
    """

    wall_seconds: float
    process_seconds: float
    thread_seconds: float
    calibration_seconds: float | None
    # Set when the clocks are a long retraining's first epochs scaled to all of them:
    # (epochs timed, epochs in the recipe). None: the whole run was timed.
    scaled_from: tuple[int, int] | None = None


def calibration_seconds(device: torch.device | str = "cpu") -> float:
    """Wall time of a fixed matrix-product workload on ``device`` (synchronised)."""
    device = torch.device(device)
    size, repeats = CALIBRATION_SIZES["cuda" if device.type == "cuda" else "cpu"]
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator).to(device)
    b = torch.rand(size, size, generator=generator).to(device)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a = (a @ b) / size
    synchronize(device)
    return time.perf_counter() - started


def time_run(
    fn: Callable[..., Any],
    *args: Any,
    device: torch.device | str = "cpu",
    calibrate: bool = True,
    **kwargs: Any,
) -> tuple[Any, RunTiming]:
    device = torch.device(device)
    before = calibration_seconds(device) if calibrate else None
    synchronize(device)
    wall, process, thread = time.perf_counter(), time.process_time(), time.thread_time()
    result = fn(*args, **kwargs)
    synchronize(device)
    timing = (
        time.perf_counter() - wall,
        time.process_time() - process,
        time.thread_time() - thread,
    )
    after = calibration_seconds(device) if calibrate else None
    calibration = (before + after) / 2 if calibrate else None
    return result, RunTiming(*timing, calibration_seconds=calibration)


def time_fraction(method: RunTiming, retraining: RunTiming, basis: str = "calibrated") -> float:
    """The method's time over one retraining's, both on ``basis``.

    ``"calibrated"`` compares wall times each divided by its own run's calibration,
    which cancels a machine that was uniformly slower during one of the runs.
    """
    if basis not in BASES:
        raise EvalError(f"basis={basis!r} must be one of {BASES}.")
    if basis == "calibrated":
        if method.calibration_seconds is None or retraining.calibration_seconds is None:
            raise EvalError(
                "basis='calibrated' needs both runs timed with calibrate=True; "
                "use basis='process' otherwise."
            )
        numerator = method.wall_seconds / method.calibration_seconds
        denominator = retraining.wall_seconds / retraining.calibration_seconds
    else:
        numerator = getattr(method, f"{basis}_seconds")
        denominator = getattr(retraining, f"{basis}_seconds")
    if not denominator > 0:
        raise EvalError(f"The retraining's {basis} time is {denominator}: it must be positive.")
    return numerator / denominator


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
        retraining_passes(refs.preset.retrain_recipe, len(refs.data.retain), len(refs.data.val)),
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
