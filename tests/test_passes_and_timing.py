"""Exact pass counts and one-run time ratios: the two cost columns that do not depend on load."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from local_eval.data.datasets import load_dataset
from local_eval.errors import EvalError
from local_eval.scoring.cost import (
    PassCount,
    RunTiming,
    count_passes,
    relative_passes,
    retraining_passes,
    time_fraction,
    time_run,
)
from local_eval.scoring.models import build_model
from local_eval.scoring.training import Recipe, train_model


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("resnet18_tiny")


def test_pass_counter_counts_a_known_training_loop_exactly(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with count_passes(model) as counted:
        for _epoch in range(3):
            for _batch in range(5):
                loss = F.cross_entropy(
                    model(torch.rand(7, 3, 32, 32)), torch.zeros(7, dtype=torch.long)
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    assert (counted.forward, counted.backward) == (105, 105)


def test_forward_without_gradients_counts_no_backward_pass(model):
    with count_passes(model) as counted, torch.no_grad():
        model(torch.rand(9, 3, 32, 32))
    assert (counted.forward, counted.backward) == (9, 0)


def test_forward_whose_loss_is_never_backpropagated_counts_no_backward_pass(model):
    with count_passes(model) as counted:
        model(torch.rand(4, 3, 32, 32)).sum()
    assert (counted.forward, counted.backward) == (4, 0)


def test_copies_of_the_model_made_inside_the_run_are_counted(model):
    with count_passes(model) as counted:
        teacher = copy.deepcopy(model)
        with torch.no_grad():
            teacher(torch.rand(6, 3, 32, 32))
    assert counted.forward == 6


def test_hooks_are_gone_after_the_block(model):
    with count_passes(model) as counted:
        pass
    model(torch.rand(3, 3, 32, 32))
    assert counted.forward == 0


def test_retraining_passes_equal_what_training_with_a_best_val_checkpoint_counts(model):
    data = load_dataset("synthetic", "train", size=90)
    recipe = Recipe(epochs=3, lr=0.05, batch_size=32, augment=False, checkpoint="best_val",
                    checkpoint_start=1)  # fmt: skip
    with count_passes(model) as counted:
        train_model(model, data.images, data.labels, range(70), recipe, 0, "cpu",
                    validation=(data.images, data.labels, range(70, 90)))  # fmt: skip
    assert counted == retraining_passes(recipe, train_size=70, val_size=20)


def test_relative_passes_weigh_a_backward_as_two_forwards():
    cost = relative_passes(PassCount(forward=30, backward=10), PassCount(forward=100, backward=100))
    assert (cost.forward, cost.backward, cost.combined) == (0.3, 0.1, pytest.approx(50 / 300))


def test_relative_passes_refuse_an_empty_retraining():
    with pytest.raises(EvalError, match="retraining_passes"):
        relative_passes(PassCount(1, 1), PassCount(0, 0))


def test_calibrated_fraction_cancels_a_machine_twice_as_slow_during_the_method():
    retraining = RunTiming(wall_seconds=100.0, process_seconds=90.0, thread_seconds=80.0,
                           calibration_seconds=0.05)  # fmt: skip
    method = RunTiming(wall_seconds=20.0, process_seconds=9.0, thread_seconds=8.0,
                       calibration_seconds=0.10)  # fmt: skip
    assert time_fraction(method, retraining) == pytest.approx(0.1)
    assert time_fraction(method, retraining, basis="process") == pytest.approx(0.1)
    assert time_fraction(method, retraining, basis="wall") == pytest.approx(0.2)


def test_calibrated_fraction_needs_calibrated_runs():
    plain = RunTiming(1.0, 1.0, 1.0, None)
    with pytest.raises(EvalError, match="calibrate=True"):
        time_fraction(plain, plain)


def test_time_run_returns_the_result_and_a_calibration():
    result, timing = time_run(lambda x, y: x + y, 2, y=3)
    assert result == 5 and timing.calibration_seconds > 0


def test_the_timed_retraining_runs_at_the_thread_count_of_the_runs(monkeypatch):
    from types import SimpleNamespace

    from local_eval.scoring import cost
    from local_eval.scoring.executors import LocalExecutor

    seen = []

    def fake_retraining(preset, data, progress, *, device):
        seen.append(torch.get_num_threads())
        return {"wall_seconds": 1.0}

    monkeypatch.setattr(cost, "timed_retraining_task", fake_retraining)
    monkeypatch.setattr(cost, "_TIMED", {})
    refs = SimpleNamespace(key="probe", preset=None, data=None)
    callers = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cost.timed_retraining(refs, torch.device("cpu"), executor=LocalExecutor(threads=1))
        cost.timed_retraining(refs, torch.device("cpu"))
    finally:
        torch.set_num_threads(callers)
    assert seen == [1]  # the default executor is the same local one: timed once, at 1 thread


def _timed_recipes(monkeypatch, limit):
    """Run the timed-retraining task on small data; return the recipes it trained with and its timing."""
    import dataclasses

    from local_eval.data.roles import load_eval_data
    from local_eval.scoring import cost
    from local_eval.scoring.presets import get_preset

    preset = get_preset("smoke", {"n_models": 3, "train_size": 120, "val_size": 16, "test_size": 32})
    preset = dataclasses.replace(
        preset, retrain_recipe=dataclasses.replace(get_preset("faithful").retrain_recipe, epochs=5,
                                                   checkpoint_start=3)
    )  # fmt: skip
    recipes = []
    real = cost.train_model

    def recording(*args, **kwargs):
        recipes.append(args[4])
        return real(*args, **kwargs)

    monkeypatch.setattr(cost, "train_model", recording)
    monkeypatch.setattr(cost, "WHOLE_TIMING_LIMIT", limit)
    timing = cost.timed_retraining_task(preset, load_eval_data(preset), False, device=torch.device("cpu"))
    return recipes, timing


def test_a_long_retraining_is_timed_over_its_first_epochs_and_scaled(monkeypatch):
    recipes, timing = _timed_recipes(monkeypatch, limit=0)
    assert [r.epochs for r in recipes] == [2]
    assert timing.scaled_from == (2, 5)
    assert timing.process_seconds > 0


def test_a_short_retraining_is_timed_whole(monkeypatch):
    recipes, timing = _timed_recipes(monkeypatch, limit=10**9)
    assert [r.epochs for r in recipes] == [5]
    assert timing.scaled_from is None
