"""The bf16 training option: keyed, float32 out, and close to float32 training."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from local_eval.data.datasets import load_dataset
from local_eval.errors import EvalError
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import get_preset, preset_options, validate_preset
from local_eval.scoring.references import references_key
from local_eval.scoring.training import Recipe, evaluate_accuracy, train_model


def with_precision(preset, precision):
    return dataclasses.replace(
        preset,
        original_recipe=dataclasses.replace(preset.original_recipe, precision=precision),
        retrain_recipe=dataclasses.replace(preset.retrain_recipe, precision=precision),
    )


def test_the_precision_option_changes_the_reference_key_and_float32_keeps_it():
    preset = get_preset("faithful_small_full")
    assert references_key(with_precision(preset, "float32")) == references_key(preset)
    assert references_key(with_precision(preset, "bf16")) != references_key(preset)


def test_the_bf16_preset_is_the_float32_one_with_bf16_references_only():
    float32, bf16 = get_preset("faithful_small_full"), get_preset("faithful_small_full_bf16")
    assert bf16 == dataclasses.replace(
        with_precision(float32, "bf16"), name="faithful_small_full_bf16"
    )
    assert references_key(bf16) != references_key(float32)


def test_results_scored_before_the_precision_option_stay_current_and_bf16_results_differ():
    preset = get_preset("faithful_small_full")
    float32 = preset_options(preset)
    assert "precision" not in float32["original_recipe"]
    assert "precision" not in float32["retrain_recipe"]
    assert preset_options(with_precision(preset, "bf16")) != float32


def test_an_unknown_precision_is_refused_with_the_field_named():
    with pytest.raises(EvalError, match="precision"):
        validate_preset(with_precision(get_preset("smoke"), "fp8"))


def test_bf16_training_returns_a_float32_contiguous_model_as_accurate_as_float32():
    data = load_dataset("synthetic", "train", seed=0, size=320)
    accuracy = {}
    for precision in ("float32", "bf16"):
        recipe = Recipe(epochs=6, lr=0.05, batch_size=32, augment=False, precision=precision)
        model = train_model(
            build_model("resnet18_tiny"), data.images, data.labels, range(320), recipe, seed=0,
            device="cpu",
        )
        assert all(p.dtype == torch.float32 and p.is_contiguous() for p in model.parameters())
        accuracy[precision] = evaluate_accuracy(model, data.images, data.labels, range(320), "cpu")
    assert accuracy["float32"] > 0.5
    assert accuracy["bf16"] >= accuracy["float32"] - 0.1
