"""Training from scratch: the original model of a mock input and the retrained references.

Inputs are float images in 0..255 without normalisation, exactly what the
competition's loaders feed an unlearning method, so models trained here see the
same input scale as the methods that later modify them. Shuffling and
augmentation draw from a private generator seeded by ``seed``: a run is
reproducible on CPU and does not disturb the caller's global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from local_eval.errors import EvalError


@dataclass(frozen=True)
class Recipe:
    """SGD with a one-cycle schedule: few epochs reach good accuracy without tuning."""

    epochs: int
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    augment: bool = True


def train_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    indices,
    recipe: Recipe,
    seed: int,
    device: torch.device | str,
    progress: bool = False,
) -> nn.Module:
    """Train ``model`` in place on ``images[indices]`` and return it on ``device`` in eval mode."""
    device = torch.device(device)
    index = _as_index(indices, len(labels))
    if recipe.epochs < 1:
        raise EvalError(f"Training needs at least one epoch, got epochs={recipe.epochs}.")
    if len(index) < 2:
        raise EvalError(f"Training needs at least 2 images (BatchNorm), got {len(index)}.")
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(_batches(index, recipe.batch_size))
    model.to(device).train()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.momentum > 0,
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch
    )
    epochs = tqdm(range(recipe.epochs), desc="training", unit="epoch", disable=not progress)
    for _ in epochs:
        order = index[torch.randperm(len(index), generator=generator)]
        total_loss, seen = 0.0, 0
        for batch in _batches(order, recipe.batch_size):
            inputs = images[batch].to(device).float()
            if recipe.augment:
                inputs = augment_batch(inputs, generator)
            targets = labels[batch].to(device)
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += float(loss.detach()) * len(batch)
            seen += len(batch)
        epochs.set_postfix(loss=f"{total_loss / max(seen, 1):.3f}")
    return model.eval()


def augment_batch(inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 32x32 crop of the zero-padded (by 4) image, then a random horizontal flip.

    Offsets and flips are drawn on the CPU generator so that the same seed gives
    the same augmentation whatever the device.
    """
    n, _, h, w = inputs.shape
    padded = F.pad(inputs, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (n, 2), generator=generator).to(inputs.device)
    flips = (torch.rand(n, generator=generator) < 0.5).to(inputs.device)
    rows = offsets[:, 0:1] + torch.arange(h, device=inputs.device)  # [n, h]
    cols = offsets[:, 1:2] + torch.arange(w, device=inputs.device)  # [n, w]
    batch_index = torch.arange(n, device=inputs.device)[:, None, None, None]
    channel_index = torch.arange(inputs.shape[1], device=inputs.device)[None, :, None, None]
    cropped = padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]
    return torch.where(flips[:, None, None, None], cropped.flip(3), cropped)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: torch.Tensor,
    indices,
    device: torch.device | str,
    batch_size: int = 512,
) -> torch.Tensor:
    """Logits for ``images[indices]`` in the given order, on the CPU, computed in eval mode.

    The model's train/eval mode is restored afterwards, so scoring a model never
    changes how a caller's later training behaves.
    """
    device = torch.device(device)
    index = _as_index(indices, len(images))
    was_training = model.training
    model.to(device).eval()
    try:
        chunks = [
            model(images[index[start : start + batch_size]].to(device).float()).float().cpu()
            for start in range(0, len(index), batch_size)
        ]
    finally:
        model.train(was_training)
    if not chunks:
        return torch.empty(0, _num_outputs(model))
    return torch.cat(chunks)


def evaluate_accuracy(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    indices,
    device: torch.device | str,
    batch_size: int = 512,
) -> float:
    """Top-1 accuracy on ``images[indices]``, a fraction in 0..1."""
    index = _as_index(indices, len(labels))
    if len(index) == 0:
        raise EvalError("Cannot measure accuracy on an empty set of images.")
    logits = predict_logits(model, images, index, device, batch_size)
    return float((logits.argmax(dim=1) == labels[index].cpu()).float().mean())


def _batches(order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Consecutive slices of ``order``; a trailing batch of one joins the previous one.

    A single-image batch would make BatchNorm fail on the 1x1 feature map of
    ``layer4`` in train mode.
    """
    n = len(order)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    ends = starts[1:] + [n]
    return [order[s:e] for s, e in zip(starts, ends)]


def _as_index(indices, n: int) -> torch.Tensor:
    if isinstance(indices, torch.Tensor):
        index = indices.to(torch.int64).cpu()
    else:
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    if index.ndim != 1:
        raise EvalError(
            f"Indices must be a 1-D list of image positions, got shape {tuple(index.shape)}."
        )
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= n):
        raise EvalError(
            f"Image indices must lie in 0..{n - 1}; got {int(index.min())}..{int(index.max())}."
        )
    return index


def _num_outputs(model: nn.Module) -> int:
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else 0
