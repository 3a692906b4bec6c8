"""Finished runs of a method survive a kill: scoring resumes inside a method, not at its start.

On the faithful preset one method's 16 runs can cost several retrainings, an
hour or more of a CPU; a board stopped in the middle of a method (a session
ending, a pre-empted node, a laptop lid) would otherwise throw away every run
it had finished. So each finished run is stored as soon as it comes back, under
a key of everything the run depends on (the method's identity: source,
hyperparameters, preset options; the scenario; the reference sets; the device),
and the next attempt runs only the missing ones. Once the method's result is
written the runs are deleted: the result file is the lasting record, and a
fresh scoring of the same method starts fresh.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from local_eval.store.files import atomic_torch_save, cache_dir, read_saved_state


@dataclass(frozen=True)
class RunCache:
    """Where one scoring of one method keeps its finished runs, one file per run."""

    directory: Path
    key: str

    def finished(self, n_runs: int) -> dict[int, dict[str, Any]]:
        """The stored runs among indices 0..n_runs-1 that can be read back and belong here."""
        return {index: run for index in range(n_runs) if (run := self._read(index)) is not None}

    def save(self, index: int, run: dict[str, Any]) -> None:
        atomic_torch_save({"key": self.key, "index": index, "run": run}, self._path(index))

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _path(self, index: int) -> Path:
        return self.directory / f"run_{index:04d}.pt"

    def _read(self, index: int) -> dict[str, Any] | None:
        stored = read_saved_state(self._path(index))  # None: not run yet, or cut short
        if stored is None or stored.get("key") != self.key or stored.get("index") != index:
            return None
        return stored["run"] if isinstance(stored.get("run"), dict) else None


def run_cache(
    identity: dict[str, Any], scenario: dict[str, Any], references: list[str], device: torch.device
) -> RunCache:
    """The run store of a method scored with ``identity`` in ``scenario`` against ``references``.

    ``device`` is part of the key: a run on a GPU is not the same computation, bit
    for bit, as one on a CPU, and one result should not mix them.
    """
    described = {
        "identity": identity,
        "scenario": scenario,
        "references": references,
        "device": str(device),
    }
    key = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()
    return RunCache(cache_dir() / "runs" / f"{identity['method']}-{key[:16]}", key)
