"""Specification of `make tune`: a resumable, shareable Optuna study reported on a held-out split."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from builder.discover import resolve_target
from builder.extract import extract_unlearning
from cli.main import main
from local_eval.errors import EvalError
from local_eval.store.files import CACHE_ENV
from local_eval.tuning.importance import spearman
from local_eval.tuning.report import pareto_front
from local_eval.tuning.space import parse_space, search_space
from local_eval.tuning.study import make_objective, open_study, run_worker
from local_eval.tuning.tune import TuneRequest, tune
from methods import all_method_handlers
from methods.base import BaseMethod
from methods.search_space import IntRange, LogUniform

ROOT = Path(__file__).resolve().parent.parent
FINETUNE = all_method_handlers()["finetune"]


def cli_tune(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "tune", "finetune", "--preset", "smoke", *args]


def subprocess_env(cache: Path) -> dict[str, str]:
    return {**os.environ, CACHE_ENV: str(cache), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def load(db: Path) -> optuna.Study:
    return optuna.load_study(study_name="finetune-smoke", storage=f"sqlite:///{db}")


@pytest.fixture(scope="module")
def smoke_tuned(smoke_references, tmp_path_factory):
    """`tune finetune --preset smoke --trials 3` once, through the command line, in temp folders."""
    out = tmp_path_factory.mktemp("tune")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            ["tune", "finetune", "--preset", "smoke", "--trials", "3",
             "--results-dir", str(out / "results"), "--docs-dir", str(out / "docs")]
        )
    return {"code": code, "out": out, "printed": printed.getvalue()}


def test_tune_smoke_leaves_a_study_of_three_trials(smoke_tuned):
    assert smoke_tuned["code"] == 0
    study = load(smoke_tuned["out"] / "results" / "smoke" / "tune" / "finetune.db")
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 3


def test_tune_prints_tuning_and_heldout_scores_and_a_set_line(smoke_tuned):
    lines = smoke_tuned["printed"].splitlines()
    best = next(line for line in lines if line.strip().startswith("best (#"))
    tuning, heldout, gap = (float(x) for x in best.split(")")[1].split()[:3])
    assert gap == pytest.approx(heldout - tuning, abs=2e-4)
    assert any(line.strip().startswith("defaults") for line in lines)
    assert lines[-1].startswith('SET="') and "lr=" in lines[-1]


def test_tune_writes_the_report_with_its_pngs(smoke_tuned):
    docs = smoke_tuned["out"] / "docs"
    text = (docs / "finetune-smoke.md").read_text()
    assert "held-out" in text and "SET=" in text
    for png in ("history", "importance", "pareto"):
        assert (docs / f"finetune-smoke-{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_trials_file_their_results_and_draw_no_picture(smoke_tuned):
    runs = smoke_tuned["out"] / "results" / "smoke" / "tune"
    assert list(runs.rglob("finetune.json"))
    assert not list(runs.rglob("*.png"))


def test_trials_are_scored_without_intervals(smoke_tuned):
    study = load(smoke_tuned["out"] / "results" / "smoke" / "tune" / "finetune.db")
    assert all(t.user_attrs["full"]["interval"] is None for t in study.trials if "full" in t.user_attrs)


def test_the_report_gives_every_score_an_interval_from_the_trials_own_runs(smoke_tuned):
    lines = smoke_tuned["printed"].splitlines()
    best = next(line for line in lines if line.strip().startswith("best (#"))
    assert "n/a" not in best and best.count("[") == 2
    runs = smoke_tuned["out"] / "results" / "smoke" / "tune" / "finetune-runs"
    assert not (runs / "defaults").exists()  # the defaults were trial 0: completed, not rerun


def test_tune_leaves_the_boards_results_alone(smoke_tuned):
    results = smoke_tuned["out"] / "results" / "smoke"
    assert not (results / "finetune.json").exists()
    assert (results / "tune" / "finetune-runs" / "trial-0000").is_dir()


def test_killed_study_resumes_and_reruns_the_killed_trial(smoke_tuned, smoke_references, tmp_path, monkeypatch):
    results = tmp_path / "results"
    db = results / "smoke" / "tune" / "finetune.db"
    worker = subprocess.Popen(
        cli_tune("--trials", "1", "--results-dir", str(results), "--no-report"),
        cwd=ROOT, env=subprocess_env(smoke_references),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    killed = _wait_for_started_trial(db, worker)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    monkeypatch.setenv(CACHE_ENV, str(smoke_references))
    tune(TuneRequest(
        method="finetune", preset="smoke", trials=1, results_dir=str(results),
        docs_dir=str(tmp_path / "docs"), heartbeat_interval=1, grace_period=1,
        poll_seconds=0.2, progress=False,
    ))
    trials = load(db).trials
    assert trials[killed].state == TrialState.FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == killed)
    assert retry.state == TrialState.COMPLETE and retry.params == trials[killed].params
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]


def _wait_for_started_trial(db: Path, worker: subprocess.Popen, timeout: float = 180) -> int:
    """The number of the worker's first trial once its objective (and heartbeat) has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker ended before a trial started"
        if db.exists():
            with contextlib.closing(sqlite3.connect(db, timeout=30)) as connection:
                try:
                    row = connection.execute(
                        "SELECT t.number FROM trials t JOIN trial_user_attributes a "
                        "ON a.trial_id = t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'worker'"
                    ).fetchone()
                except sqlite3.OperationalError:  # tables not created yet
                    row = None
            if row is not None:
                time.sleep(0.5)
                return row[0]
        time.sleep(0.1)
    raise AssertionError("no trial started in time")


def test_two_workers_on_one_study_never_run_the_same_trial(smoke_tuned, smoke_references, tmp_path):
    results = tmp_path / "results"
    command = cli_tune("--trials", "4", "--results-dir", str(results), "--no-report")
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=subprocess_env(smoke_references),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    evaluated = [
        int(line.split()[1].rstrip(":"))
        for output in outputs for line in output.splitlines() if line.startswith("trial ")
    ]
    trials = load(results / "smoke" / "tune" / "finetune.db").trials
    finished = [t.number for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert sorted(evaluated) == sorted(finished)
    assert len(set(evaluated)) == len(evaluated) >= 4
    params = [tuple(sorted(t.params.items())) for t in trials if t.number in finished]
    assert len(set(params)) == len(params)


def test_pruned_trials_are_never_scored_on_all_runs(tmp_path):
    calls: list[tuple[str, int]] = []

    def fake_score(method_cls, params, split, n_models, *, label, intervals=False):
        calls.append((label, n_models))
        return {"score": -abs(params["lr"] - 0.01), "interval": None, "time_fraction": 0.1,
                "passes": None, "ceiling": None}

    study = open_study(tmp_path / "s.db", "s", 0, heartbeat_interval=5, grace_period=10)
    space = {"lr": LogUniform(1e-4, 1.0)}
    objective = make_objective(FINETUNE, space, fake_score, 8, 3, lambda line: None)
    run_worker(study, objective, 14, wait_for_others=True, poll_seconds=0.1, grace_period=10)
    pruned = [t.number for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned
    full_labels = {label for label, n in calls if n == 8}
    assert not full_labels & {f"trial-{n:04d}" for n in pruned}


def test_space_token_error_names_the_token():
    with pytest.raises(EvalError, match="'lr=log:1e-1'"):
        parse_space(["epochs=int:1:3 lr=log:1e-1"])


def test_space_override_replaces_a_declared_dimension():
    defaults = FINETUNE().hyperparameters()
    space = search_space(FINETUNE, defaults, ["lr=log:1e-3:1e-2 epochs=int:2:4"])
    assert space["lr"] == LogUniform(1e-3, 1e-2) and space["epochs"] == IntRange(2, 4)
    assert "weight_decay" in space


class NoSpace(BaseMethod):
    name = "no_space"

    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        net.eval()


def test_method_without_search_space_is_refused_in_one_line():
    with pytest.raises(EvalError, match="declares no search_space") as caught:
        search_space(NoSpace, {"lr": 0.1}, [])
    assert "\n" not in str(caught.value)


def test_search_space_is_no_notebook_constant():
    extracted = extract_unlearning(resolve_target("finetune"))
    assert "search_space" not in extracted.source and "LogUniform" not in extracted.source
    assert set(extracted.hyperparameters) <= set(FINETUNE().hyperparameters())


def test_pareto_front_drops_trials_beaten_on_score_and_cost():
    def trial(number, score, cost):
        made = optuna.trial.create_trial(
            value=score, user_attrs={"full": {"score": score, "time_fraction": cost}}
        )
        made.number = number
        return made

    front = pareto_front([trial(0, 0.1, 0.5), trial(1, 0.2, 0.4), trial(2, 0.3, 0.9)])
    assert [t.number for t in front] == [1, 2]


def test_spearman_fallback_is_one_for_a_monotone_relation():
    import numpy as np

    assert spearman(np.array([1e-4, 1e-3, 1e-2]), np.array([0.1, 0.5, 0.6])) == pytest.approx(1.0)


def test_several_worker_processes_on_ray_are_refused_in_one_line():
    from local_eval.tuning.tune import TuneRequest, tune

    with pytest.raises(EvalError, match="--no-report"):
        tune(TuneRequest(method="finetune", preset="smoke", workers=2, executor="ray"))
