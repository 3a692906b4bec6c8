"""Forget sets are whole synthetic persons, about 2 % of the images, reproducible for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from local_eval.data.splits import assign_persons, make_split
from local_eval.errors import EvalError

LABELS = np.random.default_rng(7).integers(0, 10, size=5000)


def test_split_is_deterministic_for_a_seed():
    first, again = make_split(LABELS, seed=3), make_split(LABELS, seed=3)
    assert np.array_equal(first.forget, again.forget)
    assert np.array_equal(first.person_ids, again.person_ids)


def test_different_seeds_forget_different_images():
    assert not np.array_equal(make_split(LABELS, seed=0).forget, make_split(LABELS, seed=1).forget)


def test_retain_and_forget_partition_the_training_images():
    split = make_split(LABELS, seed=0)
    both = np.concatenate([split.retain, split.forget])
    assert np.array_equal(np.sort(both), np.arange(len(LABELS)))


def test_forget_set_is_made_of_whole_persons():
    split = make_split(LABELS, seed=0)
    retain_persons = set(split.person_ids[split.retain].tolist())
    assert len(split.forget_persons) >= 1
    assert retain_persons.isdisjoint(split.forget_persons.tolist())


def test_forget_set_is_about_two_percent_of_the_images():
    for seed in range(5):
        fraction = len(make_split(LABELS, seed=seed).forget) / len(LABELS)
        assert 0.015 <= fraction <= 0.02


def test_forget_fraction_option_scales_the_forget_set():
    fraction = len(make_split(LABELS, seed=0, forget_fraction=0.1).forget) / len(LABELS)
    assert 0.09 <= fraction <= 0.1


def test_a_tiny_fraction_still_forgets_one_whole_person():
    split = make_split(LABELS, seed=0, forget_fraction=1e-6)
    assert len(split.forget_persons) == 1
    assert len(split.forget) == int(np.sum(split.person_ids == split.forget_persons[0]))


def test_each_person_has_a_single_label():
    person_ids = assign_persons(LABELS, seed=0)
    for person in np.unique(person_ids):
        assert len(np.unique(LABELS[person_ids == person])) == 1


def test_person_sizes_stay_in_the_requested_range():
    person_ids = assign_persons(LABELS, seed=0, images_per_person=(5, 40))
    sizes = np.bincount(person_ids)
    assert sizes.min() >= 5 and sizes.max() <= 40


def test_person_numbers_are_consecutive_from_first_id():
    person_ids = assign_persons(LABELS[:300], seed=0, first_id=100)
    assert np.array_equal(np.unique(person_ids), np.arange(100, 100 + len(np.unique(person_ids))))


def test_random_mode_forgets_a_uniform_ten_percent_by_default():
    split = make_split(LABELS, seed=0, mode="random")
    assert len(split.forget) == len(LABELS) // 10
    assert len(np.unique(split.person_ids)) == len(LABELS)


def test_split_accepts_torch_labels():
    import torch

    split = make_split(torch.from_numpy(LABELS), seed=0)
    assert np.array_equal(split.forget, make_split(LABELS, seed=0).forget)


@pytest.mark.parametrize(
    ("options", "mentions"),
    [
        ({"forget_fraction": 1.5}, "forget_fraction"),
        ({"mode": "people"}, "persons"),
        ({"images_per_person": (10, 5)}, "images_per_person"),
    ],
)
def test_invalid_options_are_clear_errors(options, mentions):
    with pytest.raises(EvalError, match=mentions):
        make_split(LABELS, seed=0, **options)
