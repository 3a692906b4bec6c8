"""A small seeded slice of the builder fuzz (benchmarks/fuzz_builder.py runs the 10,000)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz_builder.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_builder", FUZZ)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_seeded_fuzz_cases_give_a_notebook_or_one_clear_line(fuzz):
    summary = fuzz.run_fuzz(32, seed=0, log=None, timeout=60.0, chunk_size=32, progress=False)
    assert summary["cases"] == 32
    assert summary["failures"] == [], summary["failures"][0]["detail"]
    counts = summary["counts"]
    assert counts.get("notebook", 0) + counts.get("refusal", 0) == 32


def test_fuzz_cases_are_the_same_for_the_same_seed(fuzz):
    first = [case.source for case in fuzz.chunk_cases(3, seed=5, size=8)]
    assert first == [case.source for case in fuzz.chunk_cases(3, seed=5, size=8)]
    assert first != [case.source for case in fuzz.chunk_cases(3, seed=6, size=8)]
