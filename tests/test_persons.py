"""Persons with an identity: a person's images are frames of one subject, the split is unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from local_eval.data.datasets import load_dataset
from local_eval.data.persons import film_persons, person_similarity, subjects
from local_eval.data.roles import load_eval_data
from local_eval.data.splits import assign_persons
from local_eval.errors import EvalError
from local_eval.scoring.presets import PRESETS, get_preset
from local_eval.scoring.references import references_key

# The faithful family's keys before persons had an identity (commit a01931a): their
# ``_groups`` shortcuts must keep them, so references built then still serve.
KEYS_BEFORE_PERSONS_HAD_AN_IDENTITY = {
    "faithful_groups": "bea20451b7480a35",
    "faithful_full_groups": "616ff57eb26867da",
    "faithful_small_groups": "5a216ed4a417e0d5",
    "faithful_small_full_groups": "dd2bec8c5825e335",
}


@pytest.fixture(scope="module")
def synthetic_persons():
    data = load_dataset("synthetic", "train", seed=0, size=600)
    return data, assign_persons(data.labels, seed=0, images_per_person=(3, 8))


def test_a_persons_frames_are_closer_to_each_other_than_to_other_persons_of_their_class(
    synthetic_persons,
):
    data, person_ids = synthetic_persons
    filmed = film_persons(data, person_ids, seed=0)
    similarity = person_similarity(filmed.images, filmed.labels, person_ids)
    assert similarity.within > similarity.between + 0.1
    assert similarity.nearest_same_person > 3 * similarity.nearest_by_chance


def test_random_groups_are_no_closer_within_a_person_than_across_persons(synthetic_persons):
    data, person_ids = synthetic_persons
    similarity = person_similarity(data.images, data.labels, person_ids)
    assert abs(similarity.within - similarity.between) < 0.05


def test_every_frame_of_a_person_comes_from_the_persons_first_image():
    person_ids = np.array([4, 7, 4, 9, 7, 4])
    assert subjects(person_ids).tolist() == [0, 1, 0, 3, 1, 0]


def test_frames_are_the_same_for_a_seed_and_differ_between_seeds(synthetic_persons):
    data, person_ids = synthetic_persons
    first, again = film_persons(data, person_ids, 3), film_persons(data, person_ids, 3)
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, film_persons(data, person_ids, 4).images)
    assert torch.equal(first.labels, data.labels)


def test_frames_keep_the_split_labels_and_persons_of_the_groups():
    preset = get_preset(
        "faithful_small_groups", {"dataset": "synthetic", "train_size": 600, "n_models": 3}
    )
    groups = load_eval_data(preset)
    frames = load_eval_data(dataclasses.replace(preset, persons="frames"))
    assert torch.equal(groups.retain, frames.retain) and torch.equal(groups.forget, frames.forget)
    assert torch.equal(groups.train.labels, frames.train.labels)
    assert not torch.equal(groups.train.images, frames.train.images)
    assert torch.equal(groups.heldout.images, frames.heldout.images)


def test_the_person_kind_is_part_of_the_reference_key():
    frames = get_preset("faithful_small_full")
    assert references_key(frames) != references_key(dataclasses.replace(frames, persons="groups"))


@pytest.mark.parametrize("name", sorted(KEYS_BEFORE_PERSONS_HAD_AN_IDENTITY))
def test_groups_shortcuts_keep_the_keys_built_before_persons_had_an_identity(name):
    assert references_key(get_preset(name)) == KEYS_BEFORE_PERSONS_HAD_AN_IDENTITY[name]


@pytest.mark.parametrize("name", sorted(n for n in PRESETS if n.startswith("faithful")))
def test_faithful_presets_film_their_persons_unless_named_groups(name):
    expected = "groups" if name.endswith("_groups") else "frames"
    assert PRESETS[name].persons == expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"persons": "faces"}, "persons='faces'"),
        ({"persons": "frames", "forget_mode": "random"}, "needs forget_mode='persons'"),
    ],
)
def test_unusable_person_options_are_refused_with_the_option_named(overrides, message):
    with pytest.raises(EvalError, match=message):
        get_preset("cpu", overrides)
