"""One Optuna study per method and preset, in SQLite, that any number of workers share.

The study lives in ``results/<preset>/tune/<method>.db``. Workers take trials from
it through Optuna's RDB storage, whose transactions hand every trial number (and
every queued trial) to exactly one worker. Each running trial sends a heartbeat;
one whose worker was killed goes stale after the grace period, is marked failed
and queued again with the same parameters, so a killed study resumes where it
stopped. The budget is the study's: ``--trials 40`` means 40 trials in the
study, so rerunning the same command after a kill runs only what is missing
(workers that check at the same moment may together run up to workers - 1 more).

Pruning: the scorer cannot report a score part-way through its runs, so a trial
is scored in two stages. First ``prune_at`` runs against as many references; the
median pruner stops a trial whose first-stage score is below the median of the
completed trials' first stages. Survivors are then scored on all N runs (the first
stage's runs included, so a full trial costs (prune_at + N) / N of one score).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler, TPESampler
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from local_eval.errors import EvalError
from local_eval.scoring.presets import MIN_N_MODELS
from local_eval.tuning.scorer import ScoreTrial
from local_eval.tuning.space import suggest
from methods.base import BaseMethod
from methods.search_space import Dimension

TUNING_SPLIT = 0
HELDOUT_SPLIT = 1
# Retries of a trial whose worker died; a trial that kills its worker every time stops there.
MAX_RETRY = 2
# Completed trials the median pruner waits for before it prunes anything.
PRUNER_STARTUP_TRIALS = 5
# Trials that fail with no trial completed before the tuner gives up on the method.
FAILURES_BEFORE_GIVING_UP = 3


def study_path(results_dir: Path, preset_name: str, method_name: str) -> Path:
    return Path(results_dir) / preset_name / "tune" / f"{method_name}.db"


def runs_dir(results_dir: Path, preset_name: str, method_name: str) -> Path:
    """Where each trial's full result JSON goes: beside the study, never on the board."""
    return Path(results_dir) / preset_name / "tune" / f"{method_name}-runs"


def trial_label(number: int) -> str:
    """The folder a trial's runs are filed under (and where the report finds them again)."""
    return f"trial-{number:04d}"


def default_prune_at(n_models: int) -> int:
    """A quarter of the runs, at least the metric's minimum; 0 (no pruning) when that is over half."""
    first = max(MIN_N_MODELS, n_models // 4)
    return first if first <= n_models // 2 else 0


class TrialSeededTPE(BaseSampler):
    """TPE whose randomness comes from the seed and the trial's number, not from the process.

    Two workers seeded alike would otherwise draw the same parameters for their
    trials; seeding each trial by its number (which the storage hands out once)
    keeps the search reproducible for one worker and distinct across several.
    """

    def __init__(self, seed: int, **tpe_options: Any) -> None:
        self._seed = seed
        self._options = tpe_options
        self._samplers: dict[int, TPESampler] = {}

    def _for(self, trial: FrozenTrial) -> TPESampler:
        if trial.number not in self._samplers:
            self._samplers[trial.number] = TPESampler(
                seed=self._seed + trial.number, **self._options
            )
        return self._samplers[trial.number]

    def infer_relative_search_space(self, study, trial):
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self._for(trial).before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._samplers.pop(trial.number, None)


def open_study(
    path: Path,
    study_name: str,
    seed: int,
    *,
    heartbeat_interval: int,
    grace_period: int,
    fresh: bool = False,
) -> optuna.Study:
    """Create or load the study; with ``fresh`` a previous one of that name is deleted first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Optuna creates a new database's tables without guarding against a second process
    # doing the same at that moment; workers starting together take turns here.
    with _exclusive(path.with_name(path.name + ".lock")), _experimental_ok():
        storage = RDBStorage(
            url=f"sqlite:///{path}",
            engine_kwargs={"connect_args": {"timeout": 120}},
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
        )
        if fresh and study_name in optuna.get_all_study_names(storage):
            optuna.delete_study(study_name=study_name, storage=storage)
        return optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction="maximize",
            sampler=TrialSeededTPE(seed, constant_liar=True),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS),
            load_if_exists=True,
        )


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """An advisory lock between processes (POSIX); elsewhere no lock, and start workers apart."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_settings(study: optuna.Study, settings: dict[str, Any], path: Path) -> None:
    """Refuse to add trials scored some other way to a study: their scores would not compare."""
    settings = json.loads(json.dumps(settings, default=str))
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", settings)
        return
    differ = sorted(k for k in settings.keys() | stored.keys() if settings.get(k) != stored.get(k))
    if differ:
        raise EvalError(
            f"{path}: this study was run with other settings (different {', '.join(differ)}): rerun "
            "with the same options, or pass --fresh (make tune FRESH=1) to start it over."
        )


def trials_counted(study: optuna.Study) -> tuple[int, int]:
    """(trials that use up the budget, trials running).

    A trial retried after its worker died counts once, through its retry; one
    interrupted with Ctrl-C does not count (another takes its place); queued
    trials count once they start.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    counted = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        or (
            t.state == TrialState.FAIL
            and t.number not in retried
            and not t.user_attrs.get("interrupted")
        )
    ]
    return len(counted), sum(t.state == TrialState.RUNNING for t in trials)


def make_objective(
    method_cls: type[BaseMethod],
    space: dict[str, Dimension],
    score_trial: ScoreTrial,
    n_models: int,
    prune_at: int,
    echo: Callable[[str], None],
) -> Callable[[optuna.Trial], float]:
    """Score one trial on the tuning split, in two stages when ``prune_at`` is set."""

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        label = trial_label(trial.number)
        try:
            if prune_at:
                first = score_trial(
                    method_cls, params, TUNING_SPLIT, prune_at, label=f"{label}-first"
                )
                trial.set_user_attr("first", dict(first))
                trial.report(first["score"], step=prune_at)
                if trial.should_prune():
                    echo(
                        f"trial {trial.number}: pruned after {prune_at} runs "
                        f"(score {first['score']:.4f}) {params_text(params)}"
                    )
                    raise optuna.TrialPruned()
            full = score_trial(method_cls, params, TUNING_SPLIT, n_models, label=label)
        except EvalError as exc:
            trial.set_user_attr("error", str(exc))
            echo(f"trial {trial.number}: failed: {exc}")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        trial.set_user_attr("full", dict(full))
        echo(
            f"trial {trial.number}: score {full['score']:.4f}, time fraction "
            f"{full['time_fraction']:.3f} {params_text(params)}"
        )
        return full["score"]

    return objective


def run_worker(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    target: int,
    *,
    wait_for_others: bool,
    poll_seconds: float,
    grace_period: float,
    on_trial: Callable[[], None] = lambda: None,
) -> None:
    """Run trials until the study holds ``target``; with ``wait_for_others``, until none runs.

    Waiting matters for the process that reports: a trial still running elsewhere
    may become the best one, and one whose worker died goes stale after the grace
    period and is queued again, which this loop then runs.
    """
    while True:
        with _experimental_ok():
            fail_stale_trials(study)
        counted, running = trials_counted(study)
        if counted < target:
            study.optimize(objective, n_trials=1, catch=(EvalError,), gc_after_trial=False)
            on_trial()
            _give_up_if_hopeless(study)
            continue
        if not wait_for_others or running == 0:
            return
        _fail_unstarted(study, grace_period)
        time.sleep(poll_seconds)


def _fail_unstarted(study: optuna.Study, grace_period: float) -> None:
    """Fail running trials whose objective never started, long after they were taken.

    A worker killed between taking a trial and its first heartbeat leaves a trial
    that can never go stale; without this the reporting process would wait for it
    for ever. Such a trial counts as a failed one.
    """
    limit = datetime.timedelta(seconds=grace_period)
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start
        if "worker" not in trial.user_attrs and started and now - started > limit:
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except (RuntimeError, ValueError):  # finished meanwhile, by its worker or another
                pass


@contextlib.contextmanager
def _experimental_ok() -> Iterator[None]:
    """Heartbeats and their retry are what make a killed study resumable; Optuna still
    calls them experimental, which is no news to print on every trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _give_up_if_hopeless(study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == TrialState.FAIL and "error" in t.user_attrs]
    if len(failed) >= FAILURES_BEFORE_GIVING_UP and not any(
        t.state == TrialState.COMPLETE for t in trials
    ):
        raise EvalError(
            f"{len(failed)} trials failed and none completed; the last one: "
            f"{failed[-1].user_attrs['error']}"
        )


def params_text(params: dict[str, Any], separator: str = " ") -> str:
    """``lr=0.0123 epochs=3``: floats to four significant digits, so a trial's line stays short."""
    return separator.join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items()
    )
