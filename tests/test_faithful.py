"""The faithful preset follows the organisers' set-up: split, persons, recipe, checkpoint rule."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from local_eval.data.datasets import load_dataset
from local_eval.data.roles import load_eval_data
from local_eval.data.splits import make_person_count_split, pooled_partition
from local_eval.errors import EvalError
from local_eval.scoring import training
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import get_preset, validate_preset
from local_eval.scoring.references import references_key
from local_eval.scoring.training import Recipe, inverse_count_weights, train_model

# The keys at commit a0be3e6, before the recipe and layout options existed.
KEYS_BEFORE_THE_FAITHFUL_OPTIONS = {
    "smoke": "a2bb9bb444a9f1cc",
    "cpu": "c21172a0dd9c941e",
    "gpu": "ce95a66546e30ff6",
}


def small_pooled_preset(**changes):
    """The faithful preset on the synthetic set's 2,500 pooled images with a tiny network."""
    preset = get_preset(
        "faithful",
        {"dataset": "synthetic", "train_size": None, "arch": "resnet18_tiny", "n_models": 3},
    )
    return dataclasses.replace(preset, **changes)


@pytest.mark.parametrize("name", sorted(KEYS_BEFORE_THE_FAITHFUL_OPTIONS))
def test_presets_defined_before_the_faithful_options_keep_their_cache_keys(name):
    assert references_key(get_preset(name)) == KEYS_BEFORE_THE_FAITHFUL_OPTIONS[name]


def test_changing_a_new_recipe_option_changes_the_cache_key():
    smoke = get_preset("smoke")
    adam = dataclasses.replace(smoke.retrain_recipe, optimizer="adam")
    assert references_key(dataclasses.replace(smoke, retrain_recipe=adam)) != references_key(smoke)


FAITHFUL_PRESETS = ("faithful", "faithful_full", "faithful_small", "faithful_small_full")


def test_faithful_presets_use_the_organisers_recipe():
    for name in FAITHFUL_PRESETS:
        preset = get_preset(name)
        for recipe in (preset.original_recipe, preset.retrain_recipe):
            assert (recipe.optimizer, recipe.lr, recipe.weight_decay) == ("adam", 1e-4, 5e-3)
            assert (recipe.schedule, recipe.epochs, recipe.batch_size) == ("cosine_epoch", 30, 64)
            assert (recipe.class_weights, recipe.augment) == ("inverse_count", False)
            assert recipe.checkpoint == "best_val"
        assert (
            preset.original_recipe.checkpoint_start,
            preset.retrain_recipe.checkpoint_start,
        ) == (
            0,
            20,
        )


@pytest.mark.parametrize("narrow_name", ["faithful", "faithful_small"])
def test_faithful_presets_differ_only_in_width(narrow_name):
    narrow, full = get_preset(narrow_name), get_preset(f"{narrow_name}_full")
    assert (narrow.arch, full.arch) == ("resnet18_w8", "resnet18")
    assert dataclasses.replace(narrow, name="x", arch="y") == dataclasses.replace(
        full, name="x", arch="y"
    )


def test_width_pair_differs_from_faithful_only_in_pool_and_forget_persons():
    small, faithful = get_preset("faithful_small"), get_preset("faithful")
    assert (small.train_size, small.forget_persons) == (800, 5)
    same = {"name": "x", "train_size": 0, "forget_persons": 0}
    assert dataclasses.replace(small, **same) == dataclasses.replace(faithful, **same)


def test_width_pair_forgets_about_two_percent_as_whole_persons_of_several_images():
    preset = get_preset("faithful_small")
    train = pooled_partition(preset.train_size, preset.seed).train
    labels = np.random.default_rng(0).integers(0, 10, len(train))
    split = make_person_count_split(labels, preset.seed, preset.forget_persons)
    assert len(split.forget_persons) == 5
    assert 0.01 < len(split.forget) / len(train) < 0.03
    assert len(split.forget) > len(split.forget_persons)


def test_pooled_partition_cuts_70000_images_as_the_organisers_do():
    part = pooled_partition(70_000, seed=0)
    assert (len(part.train), len(part.val), len(part.test)) == (56_000, 7_000, 7_000)


def test_faithful_pool_makes_a_retain_epoch_of_several_hundred_steps():
    preset = get_preset("faithful")
    train = len(pooled_partition(preset.train_size, preset.seed).train)
    retain_steps = train * (1 - preset.forget_fraction) / preset.batch_size
    assert train == 20_800 and retain_steps > 300


def test_pooled_partition_parts_are_disjoint_and_cover_the_pool():
    part = pooled_partition(1001, seed=3)
    everything = np.concatenate([part.train, part.val, part.test])
    assert sorted(everything.tolist()) == list(range(1001))


def test_pooled_partition_depends_on_the_seed():
    assert not np.array_equal(pooled_partition(500, 0).val, pooled_partition(500, 1).val)


def test_person_count_split_forgets_exactly_the_asked_number_of_whole_persons():
    labels = np.random.default_rng(0).integers(0, 10, 5000)
    split = make_person_count_split(labels, seed=0, forget_persons=15)
    assert len(split.forget_persons) == 15
    retain_persons = set(split.person_ids[split.retain].tolist())
    assert retain_persons.isdisjoint(split.forget_persons.tolist())


def test_person_count_split_forgets_about_two_percent():
    labels = np.random.default_rng(1).integers(0, 10, 20_000)
    fractions = [
        len(make_person_count_split(labels, seed=s, forget_persons=15).forget) / len(labels)
        for s in range(5)
    ]
    assert 0.015 < np.mean(fractions) < 0.025


def test_person_count_split_refuses_to_forget_every_person():
    with pytest.raises(EvalError, match="forget_persons=15"):
        make_person_count_split(np.arange(20) % 2, seed=0, forget_persons=15, forget_fraction=0.9)


def test_small_faithful_preset_splits_the_pool_80_10_10():
    data = load_eval_data(small_pooled_preset())
    assert (len(data.train), len(data.val), len(data.test)) == (2000, 250, 250)
    assert len(data.split.forget_persons) == 15


def test_small_faithful_preset_keeps_validation_and_test_images_out_of_training():
    data = load_eval_data(small_pooled_preset())
    train = {bytes(image.numpy()) for image in data.train.images}
    heldout = [bytes(image.numpy()) for image in data.heldout.images]
    assert not train.intersection(heldout)


def test_pooled_layout_rejects_a_validation_size():
    with pytest.raises(EvalError, match="val_size=100 must be None with layout='pooled'"):
        get_preset("faithful", {"val_size": 100})


def test_class_weights_are_one_over_the_class_count():
    weights = inverse_count_weights(torch.tensor([0, 0, 0, 0, 1, 2, 2]), num_classes=4)
    assert torch.allclose(weights, torch.tensor([1 / 4, 1.0, 1 / 2, 1.0]))


def _tiny_data():
    data = load_dataset("synthetic", "train", size=96)
    return data.images, data.labels


def test_cosine_epoch_schedule_runs_each_epoch_at_the_organisers_learning_rate():
    images, labels = _tiny_data()
    recipe = Recipe(epochs=5, lr=1e-3, batch_size=32, augment=False, optimizer="adam",
                    schedule="cosine_epoch")  # fmt: skip
    history = []
    torch.manual_seed(0)
    train_model(build_model("resnet18_tiny"), images, labels, range(96), recipe, 0, "cpu",
                history=history)  # fmt: skip
    # What torch's CosineAnnealingLR(T_max=epochs), stepped once per epoch, gives.
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=5)
    expected = []
    for _ in range(5):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert [h["lr"] for h in history[:-1]] == pytest.approx(expected, rel=1e-12)


def test_cosine_epoch_learning_rates_follow_the_closed_form():
    rates = training.epoch_learning_rates(Recipe(epochs=4, lr=1.0, schedule="cosine_epoch"))
    assert rates == pytest.approx([(1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])


def test_adam_recipe_trains_with_adam(monkeypatch):
    made = []
    real = torch.optim.Adam

    def recording(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", recording)
    images, labels = _tiny_data()
    recipe = get_preset("faithful").original_recipe
    train_model(build_model("resnet18_tiny"), images, labels, range(96),
                dataclasses.replace(recipe, epochs=1, checkpoint="last"), 0, "cpu")  # fmt: skip
    assert made == [{"lr": 1e-4, "weight_decay": 5e-3}]


def test_best_val_checkpoint_keeps_the_first_best_epoch_from_the_start_epoch_on(monkeypatch):
    """Crafted validation accuracies: the best overall (epoch 1) lies before the start epoch."""
    crafted = iter([0.5, 0.9, 0.7, 0.9, 0.8][2:])  # measured only from epoch 2 on
    snapshots = []

    def crafted_accuracy(model, *args, **kwargs):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(crafted)

    monkeypatch.setattr(training, "evaluate_accuracy", crafted_accuracy)
    images, labels = _tiny_data()
    recipe = Recipe(epochs=5, lr=0.05, batch_size=32, augment=False, checkpoint="best_val",
                    checkpoint_start=2)  # fmt: skip
    history = []
    torch.manual_seed(0)
    model = train_model(build_model("resnet18_tiny"), images, labels, range(64), recipe, 0,
                        "cpu", validation=(images, labels, range(64, 96)), history=history)  # fmt: skip
    assert history[-1] == {"kept_epoch": 3}
    kept = snapshots[1]  # the snapshot measured at epoch 3
    assert all(torch.equal(v, kept[k]) for k, v in model.state_dict().items())


def test_best_val_checkpoint_needs_a_validation_set():
    images, labels = _tiny_data()
    with pytest.raises(EvalError, match="pass validation="):
        train_model(build_model("resnet18_tiny"), images, labels, range(96),
                    Recipe(epochs=1, checkpoint="best_val"), 0, "cpu")  # fmt: skip


def test_unknown_recipe_option_is_rejected_with_the_allowed_values():
    preset = get_preset("smoke")
    bad = dataclasses.replace(preset.retrain_recipe, schedule="linear")
    with pytest.raises(EvalError, match=r"retrain_recipe.schedule='linear' must be one of"):
        validate_preset(dataclasses.replace(preset, retrain_recipe=bad))
