"""Persons with an identity: one subject filmed many times, as in CASIA-SURF.

The competition's data came from video: each of about 1,000 subjects sat in front
of the camera while it recorded, so one person's images are frames of the same
face that differ by small changes of pose (rotation, position, distance) and light
(brightness, contrast), plus sensor noise. A model that memorised the face carries
it to every near-duplicate frame, and a model that never saw the face is unsure on
all of them; forgetting a person is forgetting a subject, not a handful of
unrelated pictures.

Fashion-MNIST has no subjects, so ``"frames"`` makes them: every image of a
synthetic person (see :func:`local_eval.data.splits.assign_persons`) is replaced
by a frame of the person's first image, drawn with seeded variations of the size a
video's frames show. Labels, indices and splits are those of ``"groups"`` (the
persons as random same-class images), so the two kinds compare on the same pool,
split and seed, image for image.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from local_eval.data.datasets import ImageDataset
from local_eval.errors import EvalError

PERSON_KINDS = ("groups", "frames")

# How far one frame strays from its subject. A face filmed at 32x32 moves a pixel or
# two and turns a few degrees between frames; the distance to the camera and the
# light drift a little; the sensor adds noise of a few grey levels.
MAX_ROTATION_DEGREES = 8.0
MAX_SHIFT_PIXELS = 2.0
MAX_SCALE_CHANGE = 0.08
MAX_BRIGHTNESS = 12.0
MAX_CONTRAST_CHANGE = 0.15
NOISE_STD = 4.0


def subjects(person_ids: np.ndarray) -> np.ndarray:
    """For each image, the index of its person's first image: the subject it is a frame of."""
    _, first, inverse = np.unique(person_ids, return_index=True, return_inverse=True)
    return first[inverse].astype(np.int64)


def film_persons(dataset: ImageDataset, person_ids: np.ndarray, seed: int) -> ImageDataset:
    """``dataset`` with every image replaced by a frame of its person's subject.

    Every image, the subject's own included, is a varied frame, so no frame is
    privileged; the variations are seeded per image, so a dataset is the same on
    every machine and every run.
    """
    person_ids = np.asarray(person_ids)
    if len(person_ids) != len(dataset):
        raise EvalError(
            f"{len(person_ids)} person ids for {len(dataset)} images: give one person per image."
        )
    source = dataset.images[torch.from_numpy(subjects(person_ids))].float()
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + 0xF4A)
    frames = _vary(source, generator)
    return ImageDataset(frames, dataset.labels, dataset.classes, dataset.name)


def _vary(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small seeded changes of pose, distance and light, then sensor noise; uint8 out."""
    n, _, height, width = images.shape

    def uniform(bound: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * bound

    angle = uniform(math.radians(MAX_ROTATION_DEGREES))
    scale = 1 + uniform(MAX_SCALE_CHANGE)
    shift_x = uniform(MAX_SHIFT_PIXELS) * 2 / width
    shift_y = uniform(MAX_SHIFT_PIXELS) * 2 / height
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    contrast = (1 + uniform(MAX_CONTRAST_CHANGE)).view(n, 1, 1, 1)
    brightness = uniform(MAX_BRIGHTNESS).view(n, 1, 1, 1)
    mean = moved.mean(dim=(1, 2, 3), keepdim=True)
    lit = (moved - mean) * contrast + mean + brightness
    noise = torch.randn(n, 1, height, width, generator=generator) * NOISE_STD
    return (lit + noise).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class PersonSimilarity:
    """Mean Pearson correlation of pixels within a person and with other persons of its class.

    ``nearest_same_person`` is the share of images (of persons with two or more)
    whose most correlated image of the same class is of the same person, and
    ``nearest_by_chance`` what a random same-class image would give.
    """

    within: float
    between: float
    nearest_same_person: float
    nearest_by_chance: float
    persons: int

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def person_similarity(
    images: torch.Tensor, labels: torch.Tensor, person_ids: np.ndarray
) -> PersonSimilarity:
    """How alike a person's images are, against images of other persons of the same class.

    Pixel correlation is the measure because it needs no trained model: near-duplicate
    frames correlate near 1, two different garments of one class much less. Only
    persons with at least two images count for ``within``.
    """
    flat = images.reshape(len(images), -1).double()
    flat = flat - flat.mean(dim=1, keepdim=True)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    person_ids = np.asarray(person_ids)
    labels_np = np.asarray(labels)
    within, between, nearest, chance, persons = [], [], [], [], set()
    for c in np.unique(labels_np):
        members = np.flatnonzero(labels_np == c)
        corr = (flat[members] @ flat[members].T).numpy()
        np.fill_diagonal(corr, -np.inf)
        same = person_ids[members][:, None] == person_ids[members][None, :]
        np.fill_diagonal(same, False)
        paired = same.any(axis=1)
        within.append(corr[same])
        between.append(corr[~same & np.isfinite(corr)])
        if paired.any() and len(members) > 1:
            best = corr.argmax(axis=1)
            nearest.append(same[np.arange(len(members)), best][paired])
            chance.append(same.sum(axis=1)[paired] / (len(members) - 1))
            persons.update(person_ids[members][paired].tolist())
    within_all, between_all = np.concatenate(within), np.concatenate(between)
    if not len(within_all) or not len(between_all):
        raise EvalError(
            "Similarity needs persons of at least two images and two persons in a class: "
            "use more images."
        )
    return PersonSimilarity(
        within=float(within_all.mean()),
        between=float(between_all.mean()),
        nearest_same_person=float(np.concatenate(nearest).mean()),
        nearest_by_chance=float(np.concatenate(chance).mean()),
        persons=len(persons),
    )
