"""Epoch checkpoints: a long training resumes after a kill at the last saved epoch.

A faithful-preset reference model is 30 epochs over 56,000 images, about half an
hour of one CPU core; losing that to a stopped session or a pre-empted node
wastes more than the model cache can save. So a training given a checkpoint
path saves everything its next epoch depends on (weights, optimiser and
schedule state, the shuffling generator, the best-validation checkpoint so far,
the per-epoch history and the seconds spent) at most every ``every_seconds``
and picks it up on the next attempt. The resumed model is bit for bit the one
an uninterrupted run gives, because nothing else feeds the loop. A checkpoint
records what it belongs to (recipe, seed, the training indices' hash); one
that does not match, or cannot be read, is ignored and overwritten.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from local_eval.store.files import atomic_torch_save, read_saved_state

DEFAULT_EVERY_SECONDS = 60.0


@dataclass
class EpochCheckpoint:
    """Where one training keeps its between-epoch state, and how often it writes it.

    ``every_seconds=0`` writes after every epoch (what tests use to interrupt at a
    known epoch); the default keeps quick trainings (seconds) from writing at all.
    """

    path: Path
    every_seconds: float = DEFAULT_EVERY_SECONDS
    # Set by the training when it resumes: the epoch it went on from and the seconds
    # the saved epochs had cost, so a caller can report the model's whole training time.
    resumed_epoch: int | None = None
    resumed_seconds: float = 0.0
    _last_write: float = field(default_factory=time.perf_counter, repr=False)

    def due(self) -> bool:
        return time.perf_counter() - self._last_write >= self.every_seconds

    def save(self, state: dict[str, Any]) -> None:
        atomic_torch_save(state, self.path)
        self._last_write = time.perf_counter()

    def load(self, owner: dict[str, Any]) -> dict[str, Any] | None:
        """The saved state if it belongs to ``owner`` (see :func:`training_owner`), else None."""
        state = read_saved_state(self.path)
        if state is None or state.get("owner") != owner:
            return None
        return state

    def saved_epochs(self, recipe_fields: dict[str, Any], seed: int) -> int:
        """How many epochs a checkpoint of this recipe and seed holds (0: none), for status reports.

        Read without the training data, so the indices' hash is not checked: the
        training itself still refuses a checkpoint of other examples.
        """
        state = read_saved_state(self.path)
        owner = state.get("owner") if state is not None else None
        if not isinstance(owner, dict) or owner.get("recipe") != recipe_fields or owner.get("seed") != seed:
            return 0
        return int(state["epoch"]) + 1

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def training_owner(recipe_fields: dict[str, Any], seed: int, index: torch.Tensor) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the recipe, the seed and the examples."""
    digest = hashlib.sha256(index.to(torch.int64).cpu().numpy().tobytes()).hexdigest()
    return {"recipe": recipe_fields, "seed": seed, "indices_sha256": digest}
