"""Specification of where the kit keeps things: every default path hangs off the checkout."""

from __future__ import annotations

from pathlib import Path

from local_eval.scoring.context import default_results_dir
from local_eval.store.files import CACHE_ENV, cache_dir, repo_root

CHECKOUT = Path(__file__).resolve().parent.parent


def test_repo_root_is_the_checkout_that_holds_the_makefile():
    assert repo_root() == CHECKOUT
    assert (repo_root() / "Makefile").is_file()


def test_the_default_cache_is_the_checkouts_dot_cache(monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_dir() == CHECKOUT / ".cache"


def test_the_environment_variable_moves_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"


def test_results_go_to_the_checkouts_results_folder():
    assert Path(default_results_dir()) == CHECKOUT / "results"
