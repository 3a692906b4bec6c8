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
    _check_forget_fraction(forget_fraction)
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
    return _split(len(labels), forget, person_ids)


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


def _check_forget_fraction(forget_fraction: float) -> None:
    if not 0.0 < forget_fraction < 1.0:
        raise EvalError(
            f"forget_fraction must be strictly between 0 and 1, got {forget_fraction}: "
            "the competition uses 0.02."
        )


def _split(num_images: int, forget: np.ndarray, person_ids: np.ndarray) -> CompetitionSplit:
    retain = np.setdiff1d(np.arange(num_images), forget, assume_unique=True)
    return CompetitionSplit(retain.astype(np.int64), forget.astype(np.int64), person_ids)


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


# The organisers' set-up (google-deepmind/unlearning_evaluation, surf.py): the pooled
# examples are shuffled with a fixed seed and cut at int(0.8 n) and int(0.9 n) into
# train / validation / test; the forget set is every training image of 15 persons
# (LeavePGroupsOut(n_groups=15)), about 2 % of train.
ORGANISERS_FRACTIONS = (0.8, 0.1, 0.1)
ORGANISERS_FORGET_PERSONS = 15


@dataclass(frozen=True, eq=False)
class PooledPartition:
    """Positions in the pooled data of the training, validation and test images (sorted)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def pooled_partition(
    num_images: int, seed: int, fractions: tuple[float, float, float] = ORGANISERS_FRACTIONS
) -> PooledPartition:
    """A seeded shuffle of all pooled images cut into train / validation / test.

    The cuts fall where the organisers' do, at ``int(f_train * n)`` and
    ``int((f_train + f_val) * n)``, so 70,000 images give 56,000 / 7,000 / 7,000.
    The cut is per image, as theirs was: nothing keeps a class or person together.
    """
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise EvalError(
            f"fractions={fractions} must be three positive shares of train, validation and "
            "test that sum to 1 (the organisers used (0.8, 0.1, 0.1))."
        )
    first, second = int(fractions[0] * num_images), int((fractions[0] + fractions[1]) * num_images)
    if first < 2 or second - first < 1 or num_images - second < 1:
        raise EvalError(
            f"{num_images} pooled images are too few for a {fractions} split: every part "
            "needs images (and training at least 2)."
        )
    order = np.random.default_rng([seed, 0x80_10_10]).permutation(num_images)
    return PooledPartition(
        np.sort(order[:first]), np.sort(order[first:second]), np.sort(order[second:])
    )


def make_person_count_split(
    labels: np.ndarray | torch.Tensor,
    seed: int,
    forget_persons: int = ORGANISERS_FORGET_PERSONS,
    forget_fraction: float = PERSONS_FORGET_FRACTION,
) -> CompetitionSplit:
    """Forget every image of ``forget_persons`` persons, sized to make about ``forget_fraction``.

    The organisers forget a fixed number of persons; Fashion-MNIST has no persons,
    so synthetic ones (see ``assign_persons``) are drawn with sizes uniform in
    [m/2, 3m/2], m = forget_fraction x images / forget_persons, so that 15 of them
    make about 2 % of train, as in the competition. The forget set's size varies
    with the persons drawn (a sum of 15 sizes: roughly +-8 % around the target).
    """
    labels = _as_labels(labels)
    if forget_persons < 1:
        raise EvalError(f"forget_persons={forget_persons} must be at least 1 (the organisers use 15).")
    _check_forget_fraction(forget_fraction)
    mean_size = forget_fraction * len(labels) / forget_persons
    sizes = (max(1, round(mean_size / 2)), max(1, round(1.5 * mean_size)))
    person_ids = assign_persons(labels, seed, sizes)
    persons = np.unique(person_ids)
    if forget_persons >= len(persons):
        raise EvalError(
            f"{len(labels)} training images form only {len(persons)} persons, so "
            f"forget_persons={forget_persons} would forget all of them: use more images."
        )
    rng = np.random.default_rng([seed, 0x5E1, forget_persons])
    chosen = rng.choice(persons, size=forget_persons, replace=False)
    forget = np.flatnonzero(np.isin(person_ids, chosen))
    return _split(len(labels), forget, person_ids)
