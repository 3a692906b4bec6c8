"""Helpers that methods share and the builder inlines into notebooks.

Everything here must stay importable with only torch and the standard library:
the builder copies whatever a method uses into the competition notebook, which
runs offline on Kaggle.
"""

from __future__ import annotations

import json
import os

import torch
from torch.utils.data import DataLoader, Subset

ASSETS_ENV = "UNLEARNKIT_ASSETS_DIR"
SCENARIO_ENV = "UNLEARNKIT_SCENARIO"


def get_device() -> torch.device:
    """The accelerator when there is one: Kaggle gives a GPU, laptops often not."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def unpack_batch(batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels of a batch on ``device``, whatever loader produced it.

    The competition yields dicts (``image`` as float 0-255, ``age_group`` as the
    label); CIFAR-style development loaders yield ``(inputs, targets)`` tuples.
    """
    if isinstance(batch, dict):
        inputs, targets = batch["image"], batch["age_group"]
    else:
        inputs, targets = batch[0], batch[1]
    return inputs.to(device).float(), targets.to(device).long()


def model_device(net: torch.nn.Module) -> torch.device:
    """Where ``net`` lives, so that methods follow the caller's placement."""
    for tensor in net.parameters():
        return tensor.device
    return get_device()


def asset_path(filename: str) -> str:
    """Path of a bundled asset: the notebook sets the folder from ``ASSETS_DIR``."""
    folder = os.environ.get(ASSETS_ENV)
    if not folder:
        raise FileNotFoundError(
            f"asset {filename!r} requested but {ASSETS_ENV} is not set; "
            "declare it in the method's `assets` and run through the notebook or evaluator"
        )
    path = os.path.join(folder, filename)
    if not os.path.exists(path):
        raise FileNotFoundError(f"asset {filename!r} not found in {folder}")
    return path


def count_labels(loader, num_classes: int) -> torch.Tensor:
    """Examples per class in ``loader``: several methods weight losses by class frequency."""
    counts = torch.zeros(num_classes, dtype=torch.long)
    for batch in loader:
        _, targets = unpack_batch(batch, torch.device("cpu"))
        counts += torch.bincount(targets, minlength=num_classes)
    return counts


def reshuffled_loader(loader, batch_size: int, indices=None) -> DataLoader:
    """A shuffled loader over the caller's dataset (or the ``indices`` of it) at ``batch_size``.

    Some teams rebuilt the competition's loaders at their own batch size. Starting from
    ``loader.dataset`` keeps the caller's examples, collate function and batch format
    (dicts on Kaggle, tuples in CIFAR-style code); the order comes from a generator
    seeded off torch's global RNG, so a seeded caller gets the same batches every run.
    """
    dataset = getattr(loader, "dataset", None)
    if dataset is None:
        raise TypeError(
            f"expected a torch DataLoader with a .dataset, got {type(loader).__name__}: "
            "this method rebuilds the loader at its own batch size"
        )
    if indices is not None:
        dataset = Subset(dataset, indices)
    seed = int(torch.randint(0, 2**62, (1,)).item())
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=getattr(loader, "collate_fn", None),
        num_workers=getattr(loader, "num_workers", 0),
    )


def dataset_size(loader) -> int:
    """Examples behind ``loader``: its dataset's length, else a count over one pass."""
    dataset = getattr(loader, "dataset", None)
    if dataset is not None:
        return len(dataset)
    return sum(unpack_batch(batch, torch.device("cpu"))[0].shape[0] for batch in loader)


def scenario_context() -> dict | None:
    """What the scoring scenario offers beyond the four loaders, or None where it offers nothing.

    The local evaluator sets ``UNLEARNKIT_SCENARIO`` to a JSON object while a
    method runs in a scenario other than the competition's own: the federated
    one offers ``{"scenario": "federated", "server_state": <path of what the
    server kept>}``, the sequential-requests one ``{"scenario": "requests",
    "request": j, "requests": k}``. Nothing sets it on Kaggle, in the notebooks or
    in the standard setting, so a method reading it must work without it.
    """
    text = os.environ.get(SCENARIO_ENV)
    if not text:
        return None
    try:
        context = json.loads(text)
    except ValueError:
        return None
    return context if isinstance(context, dict) else None
