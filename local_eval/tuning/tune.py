"""``make tune``: search a method's hyperparameters on one split, report them on another.

The command's process opens (or resumes) the study, queues the method's defaults
as the first trial when they lie in the space, starts ``workers - 1`` more
worker processes on the same study, runs trials itself until the study holds
``trials``, waits for the others, then scores the best trial and the defaults on
the held-out split and writes ``docs/tuning/<method>.md``. Workers started by
hand on the same study (``--no-report``) just run trials.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from tqdm.auto import tqdm

from local_eval.errors import EvalError
from local_eval.scoring.context import default_results_dir, make_context
from local_eval.scoring.executors import DEFAULT_GPU_FRACTION, make_executor
from local_eval.scoring.method_calls import (
    method_source_hash,
    resolve_hyperparameters,
    resolve_method,
)
from local_eval.scoring.presets import MIN_N_MODELS, preset_options
from local_eval.scoring.runner import resolve_preset
from local_eval.store.files import repo_root
from local_eval.tuning.report import report_paths, summarise, summary_lines, write_report
from local_eval.tuning.scorer import make_scorer, prepare_split
from local_eval.tuning.space import contains, describe, search_space
from local_eval.tuning.study import (
    HELDOUT_SPLIT,
    TUNING_SPLIT,
    check_settings,
    default_prune_at,
    make_objective,
    open_study,
    run_worker,
    runs_dir,
    study_path,
    trials_counted,
)


@dataclass(frozen=True)
class TuneRequest:
    """Everything a tuning process needs; picklable, so spawned workers get the same one."""

    method: str
    preset: str = "cpu"
    preset_fields: dict[str, Any] = field(default_factory=dict)
    trials: int = 40
    space: tuple[str, ...] = ()
    seed: int = 0
    workers: int = 1
    prune_at: int | None = None
    report: bool = True
    fresh: bool = False
    results_dir: str | None = None
    docs_dir: str | None = None
    heartbeat_interval: int = 20
    grace_period: int = 60
    poll_seconds: float = 5.0
    progress: bool = True
    # Where each trial's runs and the references are made (``scoring.executors``).
    executor: str = "local"
    ray_address: str | None = None
    task_cpus: float = 1
    task_gpus: float = DEFAULT_GPU_FRACTION


def tune(request: TuneRequest) -> dict[str, Any] | None:
    """Run the study to ``request.trials`` trials; with ``report``, return and write the summary."""
    # Trials print their own one-line outcome; Optuna's log would add tracebacks.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _check_request(request)
    setup = _setup(request, fresh=request.fresh)
    with closing(setup["context"].executor):
        return _tune(request, setup)


def _tune(request: TuneRequest, setup: dict[str, Any]) -> dict[str, Any] | None:
    if request.report:
        _queue_defaults(setup)
    # Reference models are built here, with their progress bars, before any worker needs them.
    prepare_split(setup["preset"], TUNING_SPLIT, setup["n_models"], setup["context"])
    children = []
    if request.workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // request.workers))
        child_request = dataclasses.replace(
            request, workers=1, report=False, fresh=False, progress=False
        )
        context = multiprocessing.get_context("spawn")
        children = [
            context.Process(target=worker_process, args=(child_request, request.workers))
            for _ in range(request.workers - 1)
        ]
        for child in children:
            child.start()
    try:
        _work(setup, request, wait_for_others=request.report)
    finally:
        for child in children:
            child.join()
    for index, child in enumerate(children, start=2):
        if child.exitcode:
            tqdm.write(f"worker {index} exited with code {child.exitcode} (its message is above)")
    if not request.report:
        return None
    prepare_split(setup["preset"], HELDOUT_SPLIT, setup["n_models"], setup["context"])
    summary = summarise(
        setup["study"], setup["method_cls"], setup["space"], setup["defaults"],
        setup["score_trial"], setup["n_models"],
    )
    docs_dir = Path(request.docs_dir) if request.docs_dir else repo_root() / "docs" / "tuning"
    paths = report_paths(docs_dir, setup["method_cls"].name, setup["preset"].name)
    report_file = write_report(
        setup["study"], summary, paths, preset=setup["preset"].name,
        study_file=setup["study_file"], prune_at=setup["prune_at"], seed=request.seed,
    )
    for line in summary_lines(summary, setup["study_file"], report_file):
        print(line)
    return summary


def worker_process(request: TuneRequest, workers: int) -> None:
    """Entry point of a spawned worker: trials only, errors as one line."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # as in tune()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    try:
        setup = _setup(request, fresh=False)
        with closing(setup["context"].executor):
            _work(setup, request, wait_for_others=False)
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _check_request(request: TuneRequest) -> None:
    if request.trials < 1:
        raise EvalError(f"--trials {request.trials}: give at least 1 (TRIALS=40 on make).")
    if request.workers < 1:
        raise EvalError(f"--workers {request.workers}: give at least 1.")
    if request.workers > 1 and request.executor != "local":
        raise EvalError(
            f"--workers {request.workers} with --executor {request.executor}: each trial's runs are "
            "already Ray tasks; for more trials at once start more `tune ... --no-report "
            "--executor ray --ray-address ADDRESS` processes on the same study."
        )


def _setup(request: TuneRequest, *, fresh: bool) -> dict[str, Any]:
    method_cls = resolve_method(request.method)
    preset = resolve_preset(request.preset, request.preset_fields, None)
    n_models = preset.n_models
    defaults = resolve_hyperparameters(method_cls, None)
    space = search_space(method_cls, defaults, list(request.space))
    prune_at = default_prune_at(n_models) if request.prune_at is None else request.prune_at
    if prune_at and not MIN_N_MODELS <= prune_at < n_models:
        raise EvalError(
            f"--prune-at {prune_at}: the first stage needs between {MIN_N_MODELS} and "
            f"{n_models - 1} runs (N={n_models}), or 0 for no pruning."
        )
    results_dir = Path(request.results_dir) if request.results_dir else default_results_dir()
    study_file = study_path(results_dir, preset.name, method_cls.name)
    study = open_study(
        study_file,
        f"{method_cls.name}-{preset.name}",
        request.seed,
        heartbeat_interval=request.heartbeat_interval,
        grace_period=request.grace_period,
        fresh=fresh,
    )
    check_settings(
        study,
        {
            "method_class": f"{method_cls.__module__}.{method_cls.__qualname__}",
            "source_sha256": method_source_hash(method_cls),
            "preset": preset_options(preset),
            "space": {name: describe(d) for name, d in space.items()},
            "prune_at": prune_at,
            "seed": request.seed,
        },
        study_file,
    )
    executor = make_executor(
        request.executor, address=request.ray_address, cpus=request.task_cpus,
        gpus=request.task_gpus,
    )
    # Progress bars for the references this process builds; none for each trial's runs.
    context = make_context(executor=executor, progress=request.progress, results_dir=results_dir)
    score_trial = make_scorer(
        preset, runs_dir(results_dir, preset.name, method_cls.name),
        dataclasses.replace(context, progress=False),
    )
    return {
        "method_cls": method_cls,
        "preset": preset,
        "n_models": n_models,
        "defaults": defaults,
        "space": space,
        "prune_at": prune_at,
        "study": study,
        "study_file": study_file,
        "score_trial": score_trial,
        "context": context,
    }


def _queue_defaults(setup: dict[str, Any]) -> None:
    """The defaults as a new study's first trial, so the report compares them at no extra cost.

    A study that already has trials (a resumed one, or one that workers started by
    hand) is left as it is: its queue may hold retries of killed trials, which come
    first; the report then scores the defaults on their own.
    """
    space, defaults, study = setup["space"], setup["defaults"], setup["study"]
    if not study.get_trials(deepcopy=False) and all(contains(dimension, defaults[name]) for name, dimension in space.items()):
        study.enqueue_trial(
            {name: defaults[name] for name in space},
            user_attrs={"defaults": True},
            skip_if_exists=True,
        )


def _work(setup: dict[str, Any], request: TuneRequest, *, wait_for_others: bool) -> None:
    study = setup["study"]
    objective = make_objective(
        setup["method_cls"], setup["space"], setup["score_trial"], setup["n_models"],
        setup["prune_at"], tqdm.write,
    )
    bar = tqdm(
        total=request.trials,
        initial=min(trials_counted(study)[0], request.trials),
        desc=f"tune {setup['method_cls'].name} ({setup['preset'].name})",
        unit="trial",
        disable=not request.progress,
    )

    def advance() -> None:
        bar.n = min(trials_counted(study)[0], request.trials)
        bar.refresh()

    with bar:
        run_worker(
            study, objective, request.trials,
            wait_for_others=wait_for_others, poll_seconds=request.poll_seconds,
            grace_period=request.grace_period, on_trial=advance,
        )
