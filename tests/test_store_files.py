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


def test_a_stored_json_counts_while_it_carries_the_whole_stamp(tmp_path):
    from local_eval.store.files import atomic_write_json, stored_if_matches

    path = atomic_write_json(tmp_path / "r.json", {"source": "abc", "sizes": [1, 2], "score": 0.1})
    assert stored_if_matches(path, {"source": "abc", "sizes": (1, 2)})["score"] == 0.1
    assert stored_if_matches(path, {"source": "abd"}) is None
    assert stored_if_matches(path, {"source": "abc", "extra": 1}) is None


def test_an_unreadable_or_absent_stored_json_does_not_count(tmp_path):
    from local_eval.store.files import stored_if_matches

    (tmp_path / "bad.json").write_text("{not json")
    assert stored_if_matches(tmp_path / "bad.json", {}) is None
    assert stored_if_matches(tmp_path / "absent.json", {}) is None
