"""Specification of presets and of the cached reference models scoring compares against."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from local_eval.errors import EvalError
from local_eval.scoring import references
from local_eval.scoring.models import model_from_state
from local_eval.scoring.presets import PRESETS, get_preset
from local_eval.scoring.references import build_references, references_dir, references_key
from tests import tiny_references


@pytest.fixture
def tiny_preset():
    """Seven one-epoch models on synthetic data: enough to watch the cache work."""
    return tiny_references.tiny_preset(epochs=1)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def training_calls(monkeypatch):
    """Record every model the build trains, while still training it."""
    calls = []
    real = references.train_model

    def counting(*args, **kwargs):
        calls.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(references, "train_model", counting)
    return calls


def test_presets_smoke_cpu_and_gpu_exist_with_their_datasets():
    assert {name: PRESETS[name].dataset for name in ("smoke", "cpu", "gpu")} == {
        "smoke": "synthetic",
        "cpu": "fashion_mnist",
        "gpu": "cifar10",
    }


def test_cpu_preset_keeps_the_competition_batches():
    preset = get_preset("cpu")
    assert (preset.batch_size, preset.batch_format, preset.forget_mode) == (64, "dict", "persons")


def test_random_forget_mode_defaults_to_ten_percent():
    assert get_preset("cpu", {"forget_mode": "random"}).forget_fraction == 0.1


def test_overrides_from_the_command_line_are_converted_to_numbers():
    preset = get_preset("smoke", {"n_models": "5", "forget_fraction": "0.03"})
    assert (preset.n_models, preset.forget_fraction) == (5, 0.03)


def test_unknown_override_names_the_option_and_the_valid_ones():
    with pytest.raises(EvalError, match="no option 'epochz'.*n_models"):
        get_preset("cpu", {"epochz": 3})


def test_unknown_preset_lists_the_presets():
    with pytest.raises(EvalError, match="smoke, cpu, gpu"):
        get_preset("laptop")


@pytest.mark.parametrize("n_models", [2, 513])
def test_n_models_outside_what_the_metric_supports_is_rejected(n_models):
    with pytest.raises(EvalError, match="n_models"):
        get_preset("gpu", {"n_models": n_models})


@pytest.mark.parametrize(
    "change",
    [
        {"dataset": "fashion_mnist"},
        {"train_size": 300},
        {"test_size": 64},
        {"forget_mode": "random"},
        {"forget_fraction": 0.1},
        {"arch": "resnet18_w16"},
        {"seed": 1},
    ],
)
def test_cache_key_changes_with_every_option_that_shapes_a_model(change):
    smoke = get_preset("smoke")
    assert references_key(get_preset("smoke", change)) != references_key(smoke)


def test_cache_key_changes_with_the_training_recipe():
    smoke = get_preset("smoke")
    longer = dataclasses.replace(smoke.retrain_recipe, epochs=smoke.retrain_recipe.epochs + 1)
    assert references_key(dataclasses.replace(smoke, retrain_recipe=longer)) != references_key(
        smoke
    )


@pytest.mark.parametrize(
    "change", [{"n_models": 8}, {"batch_format": "tuple"}, {"data_root": "/x"}]
)
def test_cache_key_ignores_options_that_do_not_shape_a_model(change):
    assert references_key(get_preset("smoke", change)) == references_key(get_preset("smoke"))


def test_build_trains_one_original_and_two_n_retrained_models_with_distinct_seeds(
    tiny_preset, cache, training_calls
):
    refs = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    assert len(refs.retrained) == 2 * tiny_preset.n_models
    assert len(training_calls) == 2 * tiny_preset.n_models + 1
    assert len(set(training_calls)) == len(training_calls)


def test_reference_and_ceiling_are_disjoint_halves_of_the_retrained_models(tiny_preset, cache):
    refs = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    reference_seeds = {r.seed for r in refs.reference}
    ceiling_seeds = {r.seed for r in refs.ceiling}
    assert len(reference_seeds) == len(ceiling_seeds) == tiny_preset.n_models
    assert not reference_seeds & ceiling_seeds


def test_models_are_stored_one_file_each_under_the_cache_key(tiny_preset, cache):
    refs = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    assert refs.directory == references_dir(tiny_preset)
    assert refs.directory.parent == cache / "references"
    weights = sorted(p.name for p in refs.directory.glob("*.pt"))
    assert len(weights) == 2 * tiny_preset.n_models + 1


def test_each_model_keeps_its_forget_confidences_and_accuracies(tiny_preset, cache):
    refs = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    for record in (refs.original, *refs.retrained):
        assert record.forget_confidences.shape == (len(refs.data.forget),)
        for accuracy in (record.retain_accuracy, record.test_accuracy, record.forget_accuracy):
            assert 0.0 <= accuracy <= 1.0
        assert record.train_seconds > 0


def test_cached_measurements_match_the_stored_weights(tiny_preset, cache):
    refs = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    state = torch.load(refs.retrained[1].path, map_location="cpu", weights_only=True)
    model = model_from_state(tiny_preset.arch, state, torch.device("cpu"))
    measured = references.measure_model(model, refs.data, torch.device("cpu"))
    torch.testing.assert_close(measured["forget_confidences"], refs.retrained[1].forget_confidences)


def test_second_build_trains_nothing(tiny_preset, cache, training_calls):
    build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    training_calls.clear()
    build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    assert training_calls == []


def test_a_model_file_present_is_not_retrained_even_without_its_measurements(
    tiny_preset, cache, training_calls
):
    refs = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    refs.retrained[2].path.with_suffix(".json").unlink()
    training_calls.clear()
    rebuilt = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    assert training_calls == []
    torch.testing.assert_close(
        rebuilt.retrained[2].forget_confidences, refs.retrained[2].forget_confidences
    )


def test_interrupted_build_resumes_with_the_missing_models_only(tiny_preset, cache, monkeypatch):
    real = references.train_model
    trained = []

    def interrupted_after_three(*args, **kwargs):
        if len(trained) == 3:
            raise KeyboardInterrupt
        trained.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(references, "train_model", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    monkeypatch.setattr(references, "train_model", real)

    resumed = []

    def recording(*args, **kwargs):
        resumed.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(references, "train_model", recording)
    build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    assert len(resumed) == 2 * tiny_preset.n_models + 1 - 3
    assert not set(resumed) & set(trained)


def test_raising_n_models_reuses_the_models_already_built(tiny_preset, cache, training_calls):
    build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    training_calls.clear()
    bigger = dataclasses.replace(tiny_preset, n_models=tiny_preset.n_models + 1)
    build_references(bigger, device=torch.device("cpu"), progress=False)
    assert len(training_calls) == 2
