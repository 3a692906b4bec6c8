"""Specification of the run cache: a scoring killed between runs resumes with the missing runs only."""

from __future__ import annotations

import shutil

import pytest

from local_eval.scoring import runner
from local_eval.scoring.context import make_context
from local_eval.scoring.presets import get_preset
from local_eval.scoring.runner import score_method
from local_eval.store.files import cache_dir
from local_eval.store.runs import RunCache

SMOKE = get_preset("smoke")


class Killed(BaseException):
    """The process dying right after a run reached the disk (not an Exception, so no executor
    keeps it as one task's failure and goes on)."""


@pytest.fixture(autouse=True)
def no_stored_runs(smoke_references):
    """Each test starts with no stored runs, though the reference models are shared."""
    shutil.rmtree(cache_dir() / "runs", ignore_errors=True)


def _kill_after_saves(monkeypatch, saves):
    real = RunCache.save
    done = []

    def saving_then_dying(self, index, run):
        real(self, index, run)
        done.append(index)
        if len(done) == saves:
            raise Killed

    monkeypatch.setattr(RunCache, "save", saving_then_dying)
    return done


def _run_indices(monkeypatch):
    """Record which runs are actually made, while still making them."""
    made = []
    real = runner.unlearning_run_task

    def recording(plan, index, keep_state, *, device):
        made.append(index)
        return real(plan, index, keep_state, device=device)

    monkeypatch.setattr(runner, "unlearning_run_task", recording)
    return made


def _score(tmp_path, **overrides):
    return score_method(
        "finetune", "smoke", overrides or None,
        context=make_context(results_dir=tmp_path / "results", progress=False),
    )  # fmt: skip


def _killed_after_two_runs(tmp_path):
    # Its own patcher: undoing the test's ``monkeypatch`` would also move the hermetic cache.
    with pytest.MonkeyPatch.context() as patch:
        _kill_after_saves(patch, saves=2)
        with pytest.raises(Killed):
            _score(tmp_path)


def _stored_runs():
    return sorted((cache_dir() / "runs").glob("*/run_*.pt"))


def test_a_scoring_killed_after_two_runs_makes_only_the_others_when_run_again(
    smoke_references, tmp_path, monkeypatch
):
    _killed_after_two_runs(tmp_path)
    made = _run_indices(monkeypatch)
    result = _score(tmp_path).result
    assert made == list(range(2, SMOKE.n_models))
    assert result["resumed_runs"] == [0, 1]


def test_a_resumed_scoring_gives_the_result_of_one_never_interrupted(
    smoke_references, tmp_path, monkeypatch
):
    _killed_after_two_runs(tmp_path)
    resumed = _score(tmp_path)
    at_once = _score(tmp_path)
    assert "resumed_runs" not in at_once.result
    assert resumed.result["epsilons"] == at_once.result["epsilons"]
    assert resumed.result["score"] == at_once.result["score"]
    assert resumed.unlearned[0].tolist() == at_once.unlearned[0].tolist()


def test_the_stored_runs_are_deleted_once_the_result_is_written(smoke_references, tmp_path):
    _score(tmp_path)
    assert _stored_runs() == []


def test_runs_stored_with_other_hyperparameters_are_not_reused(
    smoke_references, tmp_path, monkeypatch
):
    _killed_after_two_runs(tmp_path)
    made = _run_indices(monkeypatch)
    result = _score(tmp_path, lr=0.002).result
    assert made == list(range(SMOKE.n_models))
    assert "resumed_runs" not in result


def test_an_unreadable_stored_run_is_made_again(smoke_references, tmp_path, monkeypatch):
    _killed_after_two_runs(tmp_path)
    _stored_runs()[0].write_bytes(b"cut short")
    made = _run_indices(monkeypatch)
    result = _score(tmp_path).result
    assert made == [0, *range(2, SMOKE.n_models)]
    assert result["resumed_runs"] == [1]


def test_a_board_names_the_resumed_method_and_says_its_kept_runs_were_timed_earlier(tmp_path):
    from local_eval.boards.leaderboard import build_leaderboard

    _killed_after_two_runs(tmp_path)
    board = build_leaderboard(
        "smoke", only=["finetune"], with_companion=False, docs_dir=tmp_path / "docs",
        context=make_context(results_dir=tmp_path / "results", progress=False, echo=False),
    )  # fmt: skip
    text = " ".join(board.read_text().split())
    assert (
        f"Resumed after an interruption: `finetune` (2 of {SMOKE.n_models} runs); "
        "the kept runs were timed in the earlier process" in text
    )
