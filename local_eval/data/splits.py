"""Retain/forget splits shaped like the competition's.

In the competition the forget set is a few people's whole photo collections
(about 2 % of the training images), and a person has a single age group. The
metric compares unlearned models against models retrained without those
people, so the grouping matters: forgetting a person's near-duplicate photos is
harder than forgetting unrelated images. ``"random"`` mirrors the CIFAR-10
development phase, where the forget set was a uniform 10 % sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from local_eval.errors import EvalError

MODES = ("persons", "random")
PERSONS_FORGET_FRACTION = 0.02
RANDOM_FORGET_FRACTION = 0.10


@dataclass(frozen=True, eq=False)
class CompetitionSplit:
    """Indices into the training set; ``person_ids[i]`` is the person of training image ``i``."""

    retain: np.ndarray
    forget: np.ndarray
    person_ids: np.ndarray

    @property
    def forget_persons(self) -> np.ndarray:
        return np.unique(self.person_ids[self.forget])


def assign_persons(
    labels: np.ndarray | torch.Tensor,
    seed: int,
    images_per_person: tuple[int, int] = (5, 40),
    first_id: int = 0,
) -> np.ndarray:
    """A synthetic person per image: each class is cut into groups of seeded random sizes.

    Person numbers are shuffled so that they reveal nothing about the class, and
    start at ``first_id`` so that validation persons can follow training persons.
    """
    labels = _as_labels(labels)
    low, high = _check_person_sizes(images_per_person)
    rng = np.random.default_rng(seed)
    groups: list[np.ndarray] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        while start < len(members):
            size = _person_size(int(rng.integers(low, high + 1)), len(members) - start, low, high)
            groups.append(members[start : start + size])
            start += size
    numbering = rng.permutation(len(groups)) + first_id
    person_ids = np.empty(len(labels), dtype=np.int64)
    for number, members in zip(numbering, groups):
        person_ids[members] = number
    return person_ids


def _person_size(drawn: int, rest: int, low: int, high: int) -> int:
    """``drawn``, adjusted so the class's remaining images can still form persons of ``low``+.

    Only a class with fewer than ``low`` images, or a range too narrow to tile the
    class, yields a person outside ``[low, high]``.
    """
    if rest - drawn >= low or rest <= drawn:
        return min(drawn, rest)
    if rest <= high:
        return rest
    if rest - low >= low:
        return rest - low
    return rest


def make_split(
    labels: np.ndarray | torch.Tensor,
    seed: int,
    forget_fraction: float | None = None,
    mode: str = "persons",
    images_per_person: tuple[int, int] = (5, 40),
) -> CompetitionSplit:
    """Split training images into retain and forget, deterministically for ``seed``.

    ``forget_fraction`` defaults to 2 % for ``"persons"`` (the competition) and
    10 % for ``"random"`` (the CIFAR-10 development phase). In ``"persons"`` mode
    whole persons are drawn in a seeded order and kept while they fit the target,
    so the forget set exceeds it only when no single person fits; in
    ``"random"`` mode every image is its own person.
    """
    labels = _as_labels(labels)
    if mode not in MODES:
        raise EvalError(f"Unknown split mode {mode!r}: use 'persons' or 'random'.")
    if forget_fraction is None:
        forget_fraction = PERSONS_FORGET_FRACTION if mode == "persons" else RANDOM_FORGET_FRACTION
    if not 0.0 < forget_fraction < 1.0:
        raise EvalError(
            f"forget_fraction must be strictly between 0 and 1, got {forget_fraction}: "
            "the competition uses 0.02."
        )
    if len(labels) < 2:
        raise EvalError(f"A split needs at least 2 training images, got {len(labels)}.")
    target = max(1, round(forget_fraction * len(labels)))
    rng = np.random.default_rng([seed, 0x5E1])
    if mode == "random":
        person_ids = np.arange(len(labels), dtype=np.int64)
        forget = np.sort(rng.choice(len(labels), size=target, replace=False))
    else:
        person_ids = assign_persons(labels, seed, images_per_person)
        forget = _whole_persons(person_ids, target, rng)
    if len(forget) >= len(labels):
        raise EvalError(
            f"The forget set would take all {len(labels)} training images: use more images "
            "or smaller persons (images_per_person)."
        )
    retain = np.setdiff1d(np.arange(len(labels)), forget, assume_unique=True)
    return CompetitionSplit(retain.astype(np.int64), forget.astype(np.int64), person_ids)


def _whole_persons(person_ids: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Persons in seeded order, each taken if the total stays within ``target``; at least one."""
    persons, counts = np.unique(person_ids, return_counts=True)
    order = rng.permutation(len(persons))
    chosen: list[int] = []
    total = 0
    for k in order:
        if total + counts[k] <= target:
            chosen.append(int(persons[k]))
            total += int(counts[k])
        if total == target:
            break
    if not chosen:
        chosen.append(int(persons[order[0]]))
    return np.flatnonzero(np.isin(person_ids, chosen))


def _as_labels(labels: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.cpu().numpy()
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise EvalError(f"Labels must be one label per image (1-D), got shape {labels.shape}.")
    return labels.astype(np.int64)


def _check_person_sizes(images_per_person: tuple[int, int]) -> tuple[int, int]:
    low, high = (int(v) for v in images_per_person)
    if not 1 <= low <= high:
        raise EvalError(
            f"images_per_person must be (min, max) with 1 <= min <= max, got {images_per_person}."
        )
    return low, high
