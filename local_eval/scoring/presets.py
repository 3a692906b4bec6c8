"""Named evaluation set-ups: which data, model and budget a local score stands for.

A preset fixes every option that shapes the reference models, so that two scores
from the same preset are comparable and the models can be cached under it. The
three presets trade faithfulness for speed: ``smoke`` runs in tests, ``cpu`` on a
laptop, ``gpu`` is the competition's CIFAR-10 development set-up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from local_eval.errors import EvalError
from local_eval.scoring.training import Recipe

MIN_N_MODELS = 3
MAX_N_MODELS = 512
FORGET_MODES = ("persons", "random")
BATCH_FORMATS = ("dict", "tuple")
RANDOM_FORGET_FRACTION = 0.1


@dataclass(frozen=True)
class Preset:
    """Everything that decides the reference models and how a method is run.

    ``train_size`` examples of the training split become retain + forget; the test
    split gives ``val_size`` examples to methods as their validation loader and a
    disjoint ``test_size`` examples for test accuracy, so a method cannot tune on
    the examples it is scored on.
    """

    name: str
    dataset: str
    arch: str
    original_recipe: Recipe
    retrain_recipe: Recipe
    n_models: int
    train_size: int | None
    val_size: int
    test_size: int
    forget_mode: str = "persons"
    forget_fraction: float = 0.02
    batch_size: int = 64
    batch_format: str = "dict"
    seed: int = 0
    data_root: str | None = None


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        dataset="synthetic",
        arch="resnet18_tiny",
        original_recipe=Recipe(epochs=6, lr=0.05, batch_size=32, augment=False),
        retrain_recipe=Recipe(epochs=6, lr=0.05, batch_size=32, augment=False),
        n_models=4,
        train_size=320,
        val_size=64,
        test_size=128,
        forget_fraction=0.05,
    ),
    "cpu": Preset(
        name="cpu",
        dataset="fashion_mnist",
        arch="resnet18_w16",
        # 1200 images x 16 epochs: ~20 s of one core per model (65 models: ~22 min), train
        # accuracy 0.998 against 0.82 test, so the original clearly memorises its forget set.
        original_recipe=Recipe(epochs=16, lr=0.05, batch_size=64, augment=False),
        retrain_recipe=Recipe(epochs=16, lr=0.05, batch_size=64, augment=False),
        n_models=32,
        train_size=1200,
        val_size=500,
        test_size=1000,
    ),
    "gpu": Preset(
        name="gpu",
        dataset="cifar10",
        arch="resnet18",
        original_recipe=Recipe(epochs=30, lr=0.1, batch_size=128, augment=True),
        retrain_recipe=Recipe(epochs=30, lr=0.1, batch_size=128, augment=True),
        n_models=64,
        train_size=None,
        val_size=5000,
        test_size=5000,
    ),
}

_OVERRIDABLE = (
    "n_models",
    "dataset",
    "data_root",
    "train_size",
    "val_size",
    "test_size",
    "forget_mode",
    "forget_fraction",
    "batch_size",
    "batch_format",
    "seed",
    "arch",
)


def get_preset(name: str, overrides: dict[str, Any] | None = None) -> Preset:
    """The named preset with ``overrides`` applied (e.g. ``{"n_models": 8}``)."""
    if name not in PRESETS:
        raise EvalError(
            f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)} "
            "(PRESET=... on make, --preset on the command line)."
        )
    return apply_overrides(PRESETS[name], overrides)


def apply_overrides(preset: Preset, overrides: dict[str, Any] | None) -> Preset:
    """A copy of ``preset`` with fields replaced; strings from the command line are coerced.

    Choosing ``forget_mode="random"`` without a fraction forgets 10 %, as in the
    CIFAR-10 development phase, rather than the persons mode's 2 %.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_OVERRIDABLE))
    if unknown:
        raise EvalError(
            f"Preset {preset.name!r} has no option {', '.join(map(repr, unknown))}: "
            f"the options you can override are {', '.join(_OVERRIDABLE)}."
        )
    fields = {field.name: field for field in dataclasses.fields(Preset)}
    changes = {key: _coerce(key, value, fields[key].type) for key, value in overrides.items()}
    if changes.get("forget_mode") == "random" and "forget_fraction" not in changes:
        changes["forget_fraction"] = RANDOM_FORGET_FRACTION
    updated = dataclasses.replace(preset, **changes)
    validate_preset(updated)
    return updated


def validate_preset(preset: Preset) -> None:
    """Reject combinations that would fail late, after minutes of training."""
    problems = []
    if not MIN_N_MODELS <= preset.n_models <= MAX_N_MODELS:
        problems.append(
            f"n_models={preset.n_models} must be between {MIN_N_MODELS} and {MAX_N_MODELS} "
            "(the metric compares distributions over models; with 2 every method scores 0)"
        )
    if preset.forget_mode not in FORGET_MODES:
        problems.append(f"forget_mode={preset.forget_mode!r} must be one of {FORGET_MODES}")
    if not 0 < preset.forget_fraction < 1:
        problems.append(f"forget_fraction={preset.forget_fraction} must be between 0 and 1")
    if preset.batch_format not in BATCH_FORMATS:
        problems.append(f"batch_format={preset.batch_format!r} must be one of {BATCH_FORMATS}")
    for key in ("batch_size", "val_size", "test_size"):
        if getattr(preset, key) < 1:
            problems.append(f"{key}={getattr(preset, key)} must be positive")
    if preset.train_size is not None and preset.train_size < 10:
        problems.append(f"train_size={preset.train_size} must be at least 10 (or None for all)")
    if problems:
        raise EvalError(f"Preset {preset.name!r} is not usable: " + "; ".join(problems) + ".")


def model_options(preset: Preset) -> dict[str, Any]:
    """The options that shape a reference model: what its cache key hashes.

    ``n_models``, batch size and batch format only change how methods are run,
    and ``data_root`` only where the same data is read from, so they stay out:
    raising N reuses every model already built.
    """
    return {
        "dataset": preset.dataset,
        "train_size": preset.train_size,
        "val_size": preset.val_size,
        "test_size": preset.test_size,
        "forget_mode": preset.forget_mode,
        "forget_fraction": preset.forget_fraction,
        "arch": preset.arch,
        "original_recipe": dataclasses.asdict(preset.original_recipe),
        "retrain_recipe": dataclasses.asdict(preset.retrain_recipe),
        "seed": preset.seed,
    }


def preset_options(preset: Preset) -> dict[str, Any]:
    """Every field, JSON-ready, for result files and for checking they are still current."""
    return dataclasses.asdict(preset)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = str(annotation)
    if value.lower() == "none" and "None" in text:
        return None
    try:
        if text.startswith("int"):
            return int(value)
        if text.startswith("float"):
            return float(value)
    except ValueError:
        raise EvalError(
            f"Preset option {key}={value!r} is not a number: pass e.g. {key}=8."
        ) from None
    return value
