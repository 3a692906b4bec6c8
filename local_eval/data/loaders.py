"""DataLoaders shaped like the competition's, over an in-memory image tensor.

The competition hands ``unlearning()`` loaders whose batches are dicts with
``image`` (float 0..255) and ``age_group``; CIFAR-style development code uses
``(inputs, targets)`` tuples. Methods must handle both, so local runs can serve
either. Shuffling uses a seeded ``torch.Generator`` so that two runs of a
method see the same batches, and no worker processes are used so results do
not depend on the machine's core count.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from local_eval.errors import EvalError

BATCH_FORMATS = ("dict", "tuple")


class IndexedImages(Dataset):
    """``images[indices]`` as a map-style dataset; ``len()`` is the subset's size, as methods expect."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, indices, batch_format: str = "dict"
    ) -> None:
        if batch_format not in BATCH_FORMATS:
            raise EvalError(f"Unknown batch_format {batch_format!r}: use 'dict' or 'tuple'.")
        self.images = images
        self.labels = labels
        self.indices = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        self.batch_format = batch_format

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int):
        i = int(self.indices[item])
        image = self.images[i].float()
        label = self.labels[i].to(torch.int64)
        if self.batch_format == "dict":
            return {"image": image, "age_group": label}
        return image, label


def make_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    indices,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int = 0,
    batch_format: str = "dict",
) -> DataLoader:
    """A loader over ``images[indices]``: float32 0..255 ``[B, 3, 32, 32]`` and int64 labels.

    Each pass over a shuffled loader draws a new order from the seeded generator,
    so epochs differ from each other but a rerun reproduces all of them.
    """
    dataset = IndexedImages(images, labels, indices, batch_format)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0
    )
