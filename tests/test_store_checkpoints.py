"""Specification of epoch checkpoints: a killed training resumes and ends where it would have."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from local_eval.data.datasets import load_dataset
from local_eval.scoring import references
from local_eval.scoring.models import build_model
from local_eval.scoring.presets import get_preset
from local_eval.scoring.references import (
    build_references,
    epoch_checkpoint,
    reference_status,
    references_dir,
    status_text,
)
from local_eval.scoring.training import Recipe, train_model
from local_eval.store.checkpoints import EpochCheckpoint
from tests import tiny_references

EPOCHS = 4
# The organisers' recipe at four epochs: Adam, cosine per epoch, class weights, best-validation
# checkpoint from epoch 1 on, so every piece of state a resume must restore is in play.
ORGANISERS_SHORT = dataclasses.replace(
    get_preset("faithful").retrain_recipe, epochs=EPOCHS, checkpoint_start=1, batch_size=32
)
ONE_CYCLE_AUGMENTED = Recipe(epochs=EPOCHS, lr=0.05, batch_size=32, augment=True)
ORIGINAL = references.ModelSpec("original", 0, 0)


class Killed(BaseException):
    """Stands for the process dying right after a checkpoint reached the disk (not an Exception,
    so no executor keeps it as one task's failure and goes on)."""


def _data():
    data = load_dataset("synthetic", "train", size=96)
    return data.images, data.labels


def _train(recipe, checkpoint=None, history=None):
    images, labels = _data()
    torch.manual_seed(0)
    return train_model(
        build_model("resnet18_tiny"), images, labels, range(64), recipe, seed=3, device="cpu",
        validation=(images, labels, range(64, 96)), history=history, checkpoint=checkpoint,
    )  # fmt: skip


def _kill_after_saves(monkeypatch, saves):
    real = EpochCheckpoint.save
    done = []

    def saving_then_dying(self, state):
        real(self, state)
        done.append(state["epoch"])
        if len(done) == saves:  # dies once; a resumed run saves normally
            raise Killed

    monkeypatch.setattr(EpochCheckpoint, "save", saving_then_dying)
    return done


def _killed_once(recipe, tmp_path, monkeypatch) -> EpochCheckpoint:
    """Train ``recipe`` until it dies after its second saved epoch; return a fresh handle on
    the checkpoint it left, for the next attempt (which saves normally)."""
    _kill_after_saves(monkeypatch, saves=2)
    with pytest.raises(Killed):
        _train(recipe, checkpoint=EpochCheckpoint(tmp_path / "run.pt", every_seconds=0))
    monkeypatch.undo()
    return EpochCheckpoint(tmp_path / "run.pt", every_seconds=0)


def _same_weights(a, b):
    return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


@pytest.mark.parametrize("recipe", [ORGANISERS_SHORT, ONE_CYCLE_AUGMENTED], ids=["adam-cosine-bestval", "sgd-onecycle-augment"])
def test_a_training_killed_after_an_epoch_resumes_to_the_same_model(recipe, tmp_path, monkeypatch):
    expected_history = []
    expected = _train(recipe, history=expected_history)
    checkpoint = _killed_once(recipe, tmp_path, monkeypatch)
    history = []
    resumed = _train(recipe, checkpoint=checkpoint, history=history)
    assert _same_weights(resumed, expected)
    assert history == expected_history


def test_a_resumed_training_starts_after_the_saved_epoch(tmp_path, monkeypatch):
    checkpoint = _killed_once(ORGANISERS_SHORT, tmp_path, monkeypatch)
    _train(ORGANISERS_SHORT, checkpoint=checkpoint)
    assert checkpoint.resumed_epoch == 2
    assert checkpoint.resumed_seconds > 0


def test_a_checkpoint_of_another_recipe_is_ignored(tmp_path, monkeypatch):
    checkpoint = _killed_once(ONE_CYCLE_AUGMENTED, tmp_path, monkeypatch)
    model = _train(ORGANISERS_SHORT, checkpoint=checkpoint)
    assert checkpoint.resumed_epoch is None
    assert _same_weights(model, _train(ORGANISERS_SHORT))


def test_an_unreadable_checkpoint_is_ignored(tmp_path):
    (tmp_path / "run.pt").write_bytes(b"cut short")
    checkpoint = EpochCheckpoint(tmp_path / "run.pt", every_seconds=0)
    model = _train(ORGANISERS_SHORT, checkpoint=checkpoint)
    assert checkpoint.resumed_epoch is None
    assert _same_weights(model, _train(ORGANISERS_SHORT))


def test_no_checkpoint_is_written_before_its_interval_has_passed(tmp_path):
    _train(ORGANISERS_SHORT, checkpoint=EpochCheckpoint(tmp_path / "run.pt", every_seconds=3600))
    assert not (tmp_path / "run.pt").exists()


def test_the_last_epoch_writes_no_checkpoint(tmp_path, monkeypatch):
    saved = _kill_after_saves(monkeypatch, saves=0)  # never dies
    _train(ORGANISERS_SHORT, checkpoint=EpochCheckpoint(tmp_path / "run.pt", every_seconds=0))
    assert saved == list(range(EPOCHS - 1))


@pytest.fixture
def tiny_preset(tmp_path, monkeypatch):
    """Three-epoch reference models that checkpoint after every epoch."""
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(references, "CHECKPOINT_EVERY_SECONDS", 0)
    return tiny_references.tiny_preset(epochs=3)


def _trainings(monkeypatch):
    calls = []
    real = references.train_model

    def recording(*args, **kwargs):
        calls.append(kwargs["checkpoint"])
        return real(*args, **kwargs)

    monkeypatch.setattr(references, "train_model", recording)
    return calls


def test_a_reference_build_killed_mid_model_resumes_that_model_from_its_checkpoint(
    tiny_preset, monkeypatch
):
    _kill_after_saves(monkeypatch, saves=1)  # in the original's first epoch
    with pytest.raises(Killed):
        build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    trainings = _trainings(monkeypatch)
    built = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    resumed = [c for c in trainings if c.resumed_epoch is not None]
    assert [c.resumed_epoch for c in resumed] == [1]
    assert resumed[0].path == epoch_checkpoint(references_dir(tiny_preset), ORIGINAL).path
    assert built.original.train_seconds >= resumed[0].resumed_seconds > 0


def test_a_reference_model_resumed_from_its_checkpoint_equals_one_trained_at_once(
    tiny_preset, tmp_path, monkeypatch
):
    _kill_after_saves(monkeypatch, saves=1)
    with pytest.raises(Killed):
        build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    resumed = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    monkeypatch.setenv("UNLEARNKIT_CACHE", str(tmp_path / "other-cache"))
    at_once = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    assert torch.equal(
        torch.load(resumed.original.path, weights_only=True)["fc.weight"],
        torch.load(at_once.original.path, weights_only=True)["fc.weight"],
    )
    assert resumed.original.forget_confidences.tolist() == at_once.original.forget_confidences.tolist()


def test_a_stored_model_leaves_no_epoch_checkpoint_behind(tiny_preset):
    built = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    assert not list((built.directory / "training").glob("*.pt"))


def test_status_of_a_finished_build_counts_every_model_and_its_training_time(tiny_preset):
    build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    status = reference_status(tiny_preset)
    assert (status.finished, status.total, status.half_trained) == (7, 7, {})
    assert len(status.train_seconds) == 7 and status.devices == ("cpu",)


def test_status_of_a_killed_build_names_the_half_trained_model_and_its_saved_epochs(
    tiny_preset, monkeypatch
):
    _kill_after_saves(monkeypatch, saves=1)
    with pytest.raises(Killed):
        build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    status = reference_status(tiny_preset)
    assert status.finished == 0 and status.half_trained == {"original": 1}
    assert "half-trained (epochs saved, resumed by the next build): original 1/3" in status_text(status)


def test_status_does_not_count_a_model_whose_weights_no_longer_match(tiny_preset):
    built = build_references(tiny_preset, device=torch.device("cpu"), progress=False)
    built.original.path.write_bytes(b"not the weights")
    assert reference_status(tiny_preset).finished == 6
