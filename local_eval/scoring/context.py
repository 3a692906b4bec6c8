"""Where and how scoring runs: one value a command builds once and every layer below it reads.

Scoring a method, a board, a comparison and a tuning trial differ in what they
score; they share the same settings of the run itself: the device, the executor
that makes reference models and runs as tasks (``scoring.executors``), whether
progress bars show, whether summaries and boards are printed, B for the
bootstrap intervals, and the folder results are filed under. ``Context`` holds
those six, so each layer takes ``context`` plus what is really its own (a preset,
a scenario, the methods to score). A layer that files elsewhere or prints less
hands down ``dataclasses.replace(context, results_dir=..., echo=False)``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from local_eval.devices import default_device
from local_eval.scoring.executors import Executor, LocalExecutor
from local_eval.store.files import repo_root


@dataclasses.dataclass(frozen=True)
class Context:
    """``bootstrap`` is B for every interval (None: the default for the forget set's size;
    ``runner.NO_INTERVALS``: none); ``results_dir`` holds ``<folder>/<method>.json``."""

    device: torch.device
    executor: Executor
    progress: bool
    echo: bool
    bootstrap: int | None
    results_dir: Path


def default_results_dir() -> Path:
    return repo_root() / "results"


def make_context(
    *,
    device: torch.device | str | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    echo: bool = True,
    bootstrap: int | None = None,
    results_dir: Path | str | None = None,
) -> Context:
    """A context with the defaults for what is not given: the default device (CUDA when present),
    a local executor on it, progress bars and printing on, the default B, ``results/``."""
    device = torch.device(device) if device is not None else default_device()
    return Context(
        device=device,
        executor=executor or LocalExecutor(device),
        progress=progress,
        echo=echo,
        bootstrap=bootstrap,
        results_dir=Path(results_dir) if results_dir is not None else default_results_dir(),
    )
