"""Specification of ensemble training: M reference models in one vectorised task."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from local_eval.errors import EvalError
from local_eval.scoring.ensemble import train_ensemble
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import get_preset
from local_eval.scoring.references import (
    build_references,
    load_eval_data,
    measure_model,
    train_indices,
)
from local_eval.scoring.runner import score_models
from local_eval.scoring.training import ORGANISERS_RETRAIN_RECIPE, Recipe, train_model

CPU = torch.device("cpu")
ONE_EPOCH = Recipe(epochs=1, lr=0.05, batch_size=32, augment=True)


@pytest.fixture(scope="module")
def ensemble_refs(tmp_path_factory):
    """Three-model ensembles for the retrained models of a small smoke build."""
    preset = dataclasses.replace(
        get_preset("smoke", {"n_models": 3, "train_size": 120, "val_size": 16, "test_size": 32}),
        original_recipe=ONE_EPOCH,
        retrain_recipe=ONE_EPOCH,
    )
    patcher = pytest.MonkeyPatch()
    patcher.setenv("UNLEARNKIT_CACHE", str(tmp_path_factory.mktemp("ensemble-cache")))
    try:
        yield build_references(preset, device=CPU, progress=False, ensemble=3)
    finally:
        patcher.undo()


def test_an_ensemble_member_matches_the_single_model_training_with_its_seed(tmp_path):
    preset = get_preset("smoke")
    data = load_eval_data(preset)
    indices = train_indices(data, "retrained")[:64]  # two steps: before rounding can grow
    seeds = [5, 6]
    members = []
    for seed in seeds:
        torch.manual_seed(seed)
        members.append(build_model(preset.arch))
    train_ensemble(members, data.train.images, data.train.labels, indices, ONE_EPOCH, seeds, CPU)
    torch.manual_seed(seeds[1])
    single = build_model(preset.arch)
    train_model(single, data.train.images, data.train.labels, indices, ONE_EPOCH, seeds[1], CPU)
    expected, got = single.state_dict(), members[1].state_dict()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-4, msg=key)


def test_ensemble_checkpoints_load_into_the_model_and_reproduce_their_records(ensemble_refs):
    for record in ensemble_refs.retrained:
        model = build_model(ensemble_refs.preset.arch)
        model.load_state_dict(torch.load(record.path, weights_only=True), strict=True)
        measured = measure_model(model, ensemble_refs.data, CPU)
        torch.testing.assert_close(measured["forget_confidences"], record.forget_confidences)


def test_ensemble_models_score_as_references(ensemble_refs):
    ceiling = score_models(ensemble_refs.ceiling, ensemble_refs)
    assert 0.0 <= ceiling["score"] <= 1.0
    assert len(ceiling["epsilons"]) == len(ensemble_refs.data.forget)


def test_ensemble_models_are_distinct_models_each_with_its_seed(ensemble_refs):
    first, second = (torch.load(r.path, weights_only=True) for r in ensemble_refs.retrained[:2])
    assert not torch.equal(first["fc.weight"], second["fc.weight"])
    assert len({r.seed for r in ensemble_refs.retrained}) == len(ensemble_refs.retrained)


def test_ensemble_records_say_which_trainer_made_them(ensemble_refs):
    stored = json.loads(ensemble_refs.retrained[0].path.with_suffix(".json").read_text())
    assert stored["trainer"] == "ensemble of 3"


def test_a_recipe_the_ensemble_cannot_vectorise_is_refused_naming_its_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path))
    preset = dataclasses.replace(
        get_preset("smoke", {"n_models": 3}), retrain_recipe=ORGANISERS_RETRAIN_RECIPE
    )
    with pytest.raises(EvalError, match=r"--ensemble 2: .*optimizer='adam'.*drop --ensemble"):
        build_references(preset, device=CPU, progress=False, ensemble=2)
