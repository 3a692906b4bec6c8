"""Time fractions as ratios measured under the same conditions.

A method's seconds divided by a retraining's timed at another moment mixes in
whatever else the machine ran at either moment. Two remedies, both per run:
process CPU time (``time.process_time``, all threads of this process, blind to
other processes' load, but also to GPU work), and a fixed calibration workload
timed on the same device just before and just after each run, so that
``wall / calibration`` is the run's length in units of the machine's speed at
that moment. ``time_fraction`` turns two runs' timings into a method's cost as a
fraction of a retraining on either basis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from local_eval.devices import synchronize
from local_eval.errors import EvalError

BASES = ("calibrated", "process", "thread", "wall")
# Matrix side and repeats of the calibration product: ~50 ms on one CPU core,
# a few ms on a GPU, so two of them per run add little.
CALIBRATION_SIZES = {"cpu": (384, 8), "cuda": (4096, 20)}


@dataclass(frozen=True)
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
    """Run ``fn(*args, **kwargs)`` and return its result with the run's clocks."""
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
