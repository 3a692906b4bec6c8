"""Fixtures shared across the suite: a hermetic cache and the smallest real mock input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from local_eval.store.files import CACHE_ENV

TINY_MOCK_OPTIONS = {
    "dataset": "synthetic",
    "n_train": 400,
    "n_val": 100,
    "seed": 0,
    "epochs": 1,
    "arch": "resnet18",
}
# The smallest input that still has whole forget persons and every class in retain and
# validation (its one forget person is 9 of 160 images, not 2 %): what the dry-runs need.
DRYRUN_MOCK_OPTIONS = {**TINY_MOCK_OPTIONS, "n_train": 160, "n_val": 48}


def pytest_configure(config) -> None:
    """One intra-op thread, here and in every kernel or process a test starts (they inherit it).

    The suite runs as two processes on a 2-core machine (``make test``); more
    threads per process would only wait on each other.
    """
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items) -> None:
    """Modules with the most slow tests first, each kept whole (its module fixtures are built once).

    Two processes share the suite (``make test``); starting with the longest work
    leaves short tests to fill the end instead of one long dry-run finishing alone.
    """
    slow: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        slow[module] = slow.get(module, 0) + bool(item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[item.nodeid.split("::")[0]])


@pytest.fixture(autouse=True)
def hermetic_cache(tmp_path_factory, monkeypatch) -> Path:
    """Point ``cache_dir()`` at the session's temp folder: tests never read or fill ``.cache/``."""
    folder = tmp_path_factory.getbasetemp() / "unlearnkit-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="module")
def smoke_references(tmp_path_factory) -> Path:
    """One smoke-preset reference cache for every scoring test module: the models are the slow part."""
    folder = tmp_path_factory.getbasetemp() / "smoke-references"
    patcher = pytest.MonkeyPatch()
    patcher.setenv(CACHE_ENV, str(folder))
    yield folder
    patcher.undo()


@pytest.fixture(scope="session")
def tiny_mock(tmp_path_factory) -> Path:
    """A complete competition input (CSVs, PNGs, trained ResNet-18) built in seconds."""
    from local_eval.replica.mock_input import build_mock_input

    out = tmp_path_factory.mktemp("tiny_mock") / "mock"
    return build_mock_input(out, progress=False, **TINY_MOCK_OPTIONS)


@pytest.fixture(scope="session")
def dryrun_mock(tmp_path_factory) -> Path:
    """The input every dry-run test shares: registered methods run on it at their full
    default settings, so each dry-run's cost scales with its retain set."""
    from local_eval.replica.mock_input import build_mock_input

    out = tmp_path_factory.mktemp("dryrun_mock") / "mock"
    return build_mock_input(out, progress=False, **DRYRUN_MOCK_OPTIONS)
