"""The competition's data roles: which examples are retained, forgotten, validated and tested.

Every model of a preset (original, retrained, unlearned) sees the same examples in
the same roles; this module cuts them from the preset's data options. It reads only
the fields of :class:`DataOptions`, which a scoring preset has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from local_eval.data.datasets import ImageDataset, load_dataset, load_pooled_dataset, subset_dataset
from local_eval.data.persons import film_persons
from local_eval.data.splits import (
    CompetitionSplit,
    make_person_count_split,
    make_split,
    pooled_partition,
)


class DataOptions(Protocol):
    """The options that decide the examples and their roles (a preset's data half)."""

    dataset: str
    data_root: str | None
    seed: int
    train_size: int | None
    val_size: int | None
    test_size: int | None
    forget_fraction: float
    forget_mode: str
    layout: str
    forget_persons: int | None
    persons: str


@dataclass(frozen=True)
class EvalData:
    """The examples every model of a preset sees, with the competition's roles.

    ``train`` holds retain + forget (``split`` also knows the persons); ``heldout``
    comes from the dataset's test split and is cut into ``val`` (given to methods)
    and ``test`` (test accuracy only). Index sets are int64 tensors.
    """

    train: ImageDataset
    split: CompetitionSplit
    retain: torch.Tensor
    forget: torch.Tensor
    heldout: ImageDataset
    val: torch.Tensor
    test: torch.Tensor


def load_eval_data(preset: DataOptions) -> EvalData:
    """The train subset, its retain/forget split and the validation/test examples.

    With ``persons="frames"`` each training person becomes one subject filmed
    several times (:mod:`local_eval.data.persons`); the split is the same.
    """
    if preset.layout == "pooled":
        train, heldout, val, test = _pooled_roles(preset)
    else:
        train, heldout, val, test = _heldout_roles(preset)
    if preset.forget_persons is not None:
        split = make_person_count_split(
            train.labels, preset.seed, preset.forget_persons, preset.forget_fraction
        )
    else:
        split = make_split(
            train.labels,
            seed=preset.seed,
            forget_fraction=preset.forget_fraction,
            mode=preset.forget_mode,
        )
    if preset.persons == "frames":
        train = film_persons(train, split.person_ids, preset.seed)
    return EvalData(
        train=train,
        split=split,
        retain=torch.as_tensor(split.retain, dtype=torch.int64),
        forget=torch.as_tensor(split.forget, dtype=torch.int64),
        heldout=heldout,
        val=val,
        test=test,
    )


def _heldout_roles(preset: DataOptions) -> tuple[ImageDataset, ImageDataset, torch.Tensor, torch.Tensor]:
    """Train from the training file; validation and test from the test file."""
    train = load_dataset(
        preset.dataset,
        split="train",
        data_root=preset.data_root,
        seed=preset.seed,
        size=preset.train_size,
    )
    heldout = load_dataset(
        preset.dataset,
        split="test",
        data_root=preset.data_root,
        seed=preset.seed,
        size=preset.val_size + preset.test_size,
    )
    order = torch.randperm(
        len(heldout.labels), generator=torch.Generator().manual_seed(preset.seed)
    )
    val_size = min(preset.val_size, len(order) // 2)
    return train, heldout, order[:val_size].sort().values, order[val_size:].sort().values


def _pooled_roles(preset: DataOptions) -> tuple[ImageDataset, ImageDataset, torch.Tensor, torch.Tensor]:
    """The organisers' layout: both files pooled and cut 80/10/10 (validation and test held out)."""
    pool = load_pooled_dataset(
        preset.dataset, data_root=preset.data_root, seed=preset.seed, size=preset.train_size
    )
    part = pooled_partition(len(pool), preset.seed)
    heldout = subset_dataset(pool, np.concatenate([part.val, part.test]))
    val = torch.arange(len(part.val))
    test = torch.arange(len(part.val), len(part.val) + len(part.test))
    return subset_dataset(pool, part.train), heldout, val, test


def train_indices(data: EvalData, role: str) -> torch.Tensor:
    """The original sees retain + forget; a retrained model sees retain only."""
    if role == "original":
        return torch.cat([data.retain, data.forget]).sort().values
    return data.retain
