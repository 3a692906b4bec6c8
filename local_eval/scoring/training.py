"""Training from scratch: the original model of a mock input and the retrained references.

Inputs are float images in 0..255 without normalisation, exactly what the
competition's loaders feed an unlearning method, so models trained here see the
same input scale as the methods that later modify them. Shuffling and
augmentation draw from a private generator seeded by ``seed``: a run is
reproducible on CPU and does not disturb the caller's global RNG.

One loop serves two recipes. The project's own (SGD, one-cycle) reaches good
accuracy in few epochs. The organisers' (``ORGANISERS_RECIPE``) is the one
google-deepmind/unlearning_evaluation trains its original and retrained models
with (``train_lib.py``: ``train``, ``_train``, ``_test``; ``main.py``:
``NUM_EPOCHS``, ``min_save_epoch``; ``surf.py``: class weights): Adam at lr 1e-4
with weight decay 5e-3, ``CosineAnnealingLR(T_max=epochs)`` stepped once per
epoch, cross-entropy weighted by 1/count of each class in the training set, no
augmentation, 30 epochs, and the checkpoint with the best validation accuracy
(from epoch 20 on for retrained models).

Two details of their checkpoint code differ from the rule kept here, which
follows its evident intent: their running best starts at epoch 0 even for the
retrained models, so an epoch from 20 on is saved only if it beats every earlier
epoch (and none may be); and ``train_or_reload_model`` returns the in-memory
model of the last epoch on the run that trains it, the saved checkpoint being
used only when a later run reloads it. Here ``best_val`` keeps the first epoch,
from ``checkpoint_start`` on, with the highest validation accuracy among those
epochs, and the model returned is that checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from local_eval.errors import EvalError
from local_eval.store.checkpoints import EpochCheckpoint, training_owner

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("onecycle", "cosine_epoch")
CLASS_WEIGHTS = (None, "inverse_count")
CHECKPOINTS = ("last", "best_val")
# "bf16": training steps under bfloat16 autocast with channels-last tensors (weights,
# evaluation and the stored model stay float32). Reference models only: methods keep
# float32, being the user's code.
PRECISIONS = ("float32", "bf16")


@dataclass(frozen=True)
class Recipe:
    """How a model is trained; the defaults are the project's SGD one-cycle recipe.

    ``optimizer``: ``"sgd"`` (Nesterov momentum when ``momentum > 0``) or ``"adam"``
    (``momentum`` unused). ``schedule``: ``"onecycle"`` (peak ``lr``, stepped per
    batch) or ``"cosine_epoch"`` (cosine from ``lr`` to 0 over ``epochs``, stepped
    once per epoch, so epoch ``e`` runs at ``lr * (1 + cos(pi e / epochs)) / 2``).
    ``class_weights``: ``None`` or ``"inverse_count"`` (cross-entropy weight of class
    ``c`` is 1 / its count among the weighting images). ``checkpoint``: ``"last"``
    or ``"best_val"``: after every epoch from ``checkpoint_start`` (0-based) on,
    measure validation accuracy and keep the weights of the first epoch that
    reaches the highest one. ``precision``: ``"float32"`` or ``"bf16"`` (training
    steps under bfloat16 autocast, channels-last; see ``PRECISIONS``).
    """

    epochs: int
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    augment: bool = True
    optimizer: str = "sgd"
    schedule: str = "onecycle"
    class_weights: str | None = None
    checkpoint: str = "last"
    checkpoint_start: int = 0
    precision: str = "float32"


# Fields added after cache keys existed: left out of a key while at their default,
# so every preset defined before them keeps its cached reference models.
_KEYED_ONLY_WHEN_CHANGED = (
    "optimizer", "schedule", "class_weights", "checkpoint", "checkpoint_start", "precision",
)  # fmt: skip

ORGANISERS_EPOCHS = 30
ORGANISERS_RETRAIN_CHECKPOINT_START = 20
ORGANISERS_RECIPE = Recipe(
    epochs=ORGANISERS_EPOCHS,
    lr=1e-4,
    weight_decay=5e-3,
    batch_size=64,
    augment=False,
    optimizer="adam",
    schedule="cosine_epoch",
    class_weights="inverse_count",
    checkpoint="best_val",
    checkpoint_start=0,
)
ORGANISERS_RETRAIN_RECIPE = dataclasses.replace(
    ORGANISERS_RECIPE, checkpoint_start=ORGANISERS_RETRAIN_CHECKPOINT_START
)


def _without_later_defaults(recipe: Recipe, later: tuple[str, ...]) -> dict[str, Any]:
    """Every field of ``recipe``, minus the ``later`` ones while they are at their default."""
    options = dataclasses.asdict(recipe)
    for field in dataclasses.fields(Recipe):
        if field.name in later and options[field.name] == field.default:
            del options[field.name]
    return options


def recipe_options(recipe: Recipe) -> dict[str, Any]:
    """The recipe as a cache key sees it: every field, minus later fields at their default."""
    return _without_later_defaults(recipe, _KEYED_ONLY_WHEN_CHANGED)


# Fields added after result files existed: left out of a result's options while at
# their default, so results scored before them are still reused.
_IN_RESULTS_ONLY_WHEN_CHANGED = ("precision",)


def recipe_result_options(recipe: Recipe) -> dict[str, Any]:
    """The recipe as a result file records it: every field, minus later fields at their default."""
    return _without_later_defaults(recipe, _IN_RESULTS_ONLY_WHEN_CHANGED)


def validate_recipe(recipe: Recipe, where: str = "recipe") -> list[str]:
    problems = []
    if recipe.epochs < 1:
        problems.append(f"{where}.epochs={recipe.epochs} must be at least 1")
    for name, allowed in (
        ("optimizer", OPTIMIZERS),
        ("schedule", SCHEDULES),
        ("class_weights", CLASS_WEIGHTS),
        ("checkpoint", CHECKPOINTS),
        ("precision", PRECISIONS),
    ):
        if getattr(recipe, name) not in allowed:
            problems.append(f"{where}.{name}={getattr(recipe, name)!r} must be one of {allowed}")
    if not 0 <= recipe.checkpoint_start < max(recipe.epochs, 1):
        problems.append(
            f"{where}.checkpoint_start={recipe.checkpoint_start} must lie in 0..{recipe.epochs - 1}"
        )
    return problems


def epoch_learning_rates(recipe: Recipe) -> list[float]:
    return [
        recipe.lr * (1 + math.cos(math.pi * epoch / recipe.epochs)) / 2
        for epoch in range(recipe.epochs)
    ]


def train_model(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    indices,
    recipe: Recipe,
    seed: int,
    device: torch.device | str,
    progress: bool = False,
    validation: tuple[torch.Tensor, torch.Tensor, Any] | None = None,
    weight_indices=None,
    history: list[dict[str, Any]] | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> nn.Module:
    """Train ``model`` in place on ``images[indices]`` and return it on ``device`` in eval mode.

    ``validation`` is ``(images, labels, indices)`` of the validation set, needed by
    ``checkpoint="best_val"``. ``weight_indices`` are the images whose class counts
    give ``inverse_count`` weights (default ``indices``): the organisers count the
    whole training set, forget images included, for the retrained models too.
    ``history``, when given, receives one dict per epoch (``epoch``, ``lr``,
    ``loss``, and ``val_accuracy`` where measured) and finally ``{"kept_epoch": e}``.
    ``checkpoint``, when given, saves the loop's state between epochs and resumes
    from a matching saved state (:mod:`local_eval.store.checkpoints`); the history
    then holds every epoch, the resumed ones included.
    """
    device = torch.device(device)
    index = _as_index(indices, len(labels))
    problems = validate_recipe(recipe)
    if problems:
        raise EvalError("Training recipe is not usable: " + "; ".join(problems) + ".")
    if len(index) < 2:
        raise EvalError(f"Training needs at least 2 images (BatchNorm), got {len(index)}.")
    if recipe.checkpoint == "best_val" and validation is None:
        raise EvalError(
            "checkpoint='best_val' keeps the epoch with the best validation accuracy: "
            "pass validation=(images, labels, indices)."
        )
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = len(_batches(index, recipe.batch_size))
    fast = recipe.precision == "bf16"
    layout = torch.channels_last if fast else torch.contiguous_format
    model.to(device, memory_format=layout).train()
    optimizer = _optimizer(model, recipe)
    scheduler = None
    if recipe.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch
        )
    epoch_lrs = epoch_learning_rates(recipe) if recipe.schedule == "cosine_epoch" else None
    weight = None
    if recipe.class_weights == "inverse_count":
        counted = index if weight_indices is None else _as_index(weight_indices, len(labels))
        weight = inverse_count_weights(labels[counted], _num_outputs(model) or None).to(device)
    best_accuracy, best_state, kept_epoch = -1.0, None, recipe.epochs - 1
    records: list[dict[str, Any]] = []
    first_epoch, seconds_before, started = 0, 0.0, time.perf_counter()
    owner = training_owner(dataclasses.asdict(recipe), seed, index) if checkpoint else None
    saved = checkpoint.load(owner) if checkpoint else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        best_accuracy, best_state, kept_epoch = saved["best"]
        records, first_epoch, seconds_before = saved["records"], saved["epoch"] + 1, saved["seconds"]
        checkpoint.resumed_epoch, checkpoint.resumed_seconds = first_epoch, seconds_before
    epochs = tqdm(
        range(first_epoch, recipe.epochs),
        desc="training",
        unit="epoch",
        disable=not progress,
        initial=first_epoch,
        total=recipe.epochs,
    )
    for epoch in epochs:
        if epoch_lrs is not None:
            for group in optimizer.param_groups:
                group["lr"] = epoch_lrs[epoch]
        epoch_lr = optimizer.param_groups[0]["lr"]
        order = index[torch.randperm(len(index), generator=generator)]
        total_loss, seen = 0.0, 0
        for batch in _batches(order, recipe.batch_size):
            inputs = images[batch].to(device).float()
            if recipe.augment:
                inputs = augment_batch(inputs, generator)
            targets = labels[batch].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast):
                logits = model(inputs.contiguous(memory_format=layout))
            loss = F.cross_entropy(logits.float(), targets, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total_loss += float(loss.detach()) * len(batch)
            seen += len(batch)
        record: dict[str, Any] = {"epoch": epoch, "lr": epoch_lr, "loss": total_loss / max(seen, 1)}
        if recipe.checkpoint == "best_val" and epoch >= recipe.checkpoint_start:
            val_images, val_labels, val_indices = validation
            accuracy = evaluate_accuracy(model, val_images, val_labels, val_indices, device)
            record["val_accuracy"] = accuracy
            if accuracy > best_accuracy:
                best_accuracy, kept_epoch = accuracy, epoch
                best_state = copy.deepcopy(model.state_dict())
            model.train()
        records.append(record)
        epochs.set_postfix(loss=f"{record['loss']:.3f}")
        if checkpoint is not None and epoch < recipe.epochs - 1 and checkpoint.due():
            checkpoint.save(
                {
                    "owner": owner,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "generator": generator.get_state(),
                    "best": (best_accuracy, best_state, kept_epoch),
                    "records": records,
                    "seconds": seconds_before + time.perf_counter() - started,
                }
            )
    if best_state is not None:
        model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format)
    if history is not None:
        history.extend(records)
        history.append({"kept_epoch": kept_epoch})
    return model.eval()


def inverse_count_weights(labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Cross-entropy class weights 1/count, float32; a class absent from ``labels`` gets 1.

    The organisers' ``surf.get_dataset`` weights each age group by 1 / its count in
    the training set and gives 1.0 to a group with none; the weighted mean in
    ``cross_entropy`` divides by the batch's total weight, so only ratios matter.
    """
    labels = torch.as_tensor(labels).to(torch.int64).cpu()
    size = max(int(labels.max()) + 1 if len(labels) else 0, num_classes or 0)
    counts = torch.bincount(labels, minlength=size).to(torch.float32)
    return torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.ones_like(counts))


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        # torch's Adam adds weight_decay * w to the gradient (L2), as the organisers' did.
        return torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.momentum > 0,
    )


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
