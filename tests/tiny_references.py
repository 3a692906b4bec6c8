"""A smoke preset small enough to build its seven reference models in seconds, shared by
the reference-cache and epoch-checkpoint specifications."""

from __future__ import annotations

import dataclasses

from local_eval.scoring.presets import Preset, get_preset
from local_eval.scoring.training import Recipe


def tiny_preset(epochs: int) -> Preset:
    """Seven models (original, 3 + 3 retrained) of ``epochs`` epochs on 120 synthetic images."""
    recipe = Recipe(epochs=epochs, lr=0.05, batch_size=32, augment=False)
    return dataclasses.replace(
        get_preset("smoke", {"n_models": 3, "train_size": 120, "val_size": 16, "test_size": 32}),
        original_recipe=recipe,
        retrain_recipe=recipe,
    )
