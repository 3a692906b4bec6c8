"""Repair after an impair step: retain training that stops once validation accuracy is back.

Where the network memorises its training set (the competition's full width), an
impair step that is strong enough to forget also costs retain accuracy, and a
repair of fixed length either stops short or overshoots depending on the
network's size. The validation set is the picture of unseen data, so the
original's accuracy on it is what a repaired model should reach again: the
repair measures it every ``check_every`` retain epochs and stops there. The
original also teaches: on retain data it answers as a model that never saw the
forget set would (both fit that data), so its softened predictions are a richer
target than the labels (the distillation step of reset_recalibrate and of the
competition's leaders).
"""

from __future__ import annotations

import copy
import logging
import math

import torch
import torch.nn.functional as F

from methods.amnesiacs import distillation_kl
from methods.common import unpack_batch
from methods.reset_recalibrate import best_scale
from methods.saliency import masked_step

LOGGER = logging.getLogger("unlearnkit.recovery")


def frozen_copy(net) -> torch.nn.Module:
    """An eval-mode copy of ``net`` without gradients: the teacher the repair distils."""
    teacher = copy.deepcopy(net).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


@torch.no_grad()
def accuracy(net, loader, device) -> float:
    """Top-1 accuracy of ``net`` in eval mode on ``loader`` (0.0 for an empty loader)."""
    was_training = net.training
    net.eval()
    correct = total = 0
    for batch in loader:
        inputs, labels = unpack_batch(batch, device)
        correct += int((net(inputs).argmax(dim=1) == labels).sum())
        total += int(labels.numel())
    net.train(was_training)
    return correct / total if total else 0.0


def distilled_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    distill_weight: float,
    temperature: float,
) -> torch.Tensor:
    """Cross-entropy plus ``distill_weight`` x the temperature-scaled KL to the teacher."""
    loss = F.cross_entropy(logits, labels)
    if teacher_logits is not None and distill_weight > 0:
        loss = loss + distill_weight * temperature**2 * distillation_kl(
            logits, teacher_logits, temperature
        )
    return loss


def recovery_targets(net, retain_loader, val_loader, device, recovery: float, sample_batches: int = 4) -> dict:
    """What the repair must reach again: ``recovery`` x the original's accuracy on retain and validation data.

    Measured on ``net`` before any change. The retain accuracy is read on the
    first ``sample_batches`` retain batches, kept for the later checks: a
    memorising original is at 1.0 there, a model that never saw those images at
    its validation accuracy, and the metric's retain ratio compares with a
    retrained model, which fits them.
    """
    images, labels = [], []
    for batch in retain_loader:
        if len(images) >= sample_batches:
            break
        inputs, targets = unpack_batch(batch, device)
        images.append(inputs)
        labels.append(targets)
    sample = (torch.cat(images), torch.cat(labels)) if images else None
    return {
        "sample": sample,
        "retain": recovery * _sample_accuracy(net, sample),
        "val": recovery * accuracy(net, val_loader, device),
    }


def repair_until_recovered(
    net,
    teacher,
    retain_loader,
    val_loader,
    device,
    optimizer,
    *,
    targets: dict,
    max_epochs: float,
    check_every: float = 0.5,
    masks: list[torch.Tensor] | None = None,
    weight_decay: float = 5e-4,
    distill_weight: float = 1.0,
    temperature: float = 2.0,
) -> list[dict]:
    """Retain training in chunks of ``check_every`` epochs until retain and validation accuracy are back.

    Each step is cross-entropy plus distillation from ``teacher`` in train mode;
    with ``masks`` only masked entries move (``methods.saliency.masked_step``).
    Stops as soon as both accuracies measured after a chunk reach ``targets``
    (``recovery_targets``), or after ``max_epochs``. Returns one entry per chunk
    (epochs done, retain and validation accuracy): what the stop saw.
    """
    log: list[dict] = []
    chunk = max(1, math.ceil(check_every * len(retain_loader)))
    budget = max(0, math.ceil(max_epochs * len(retain_loader)))
    done = 0
    batches = _cycle(retain_loader)
    if masks is None:
        masks = [torch.ones_like(p) for p in net.parameters()]
    while done < budget:
        net.train()
        for _ in range(min(chunk, budget - done)):
            inputs, labels = unpack_batch(next(batches), device)
            done += 1
            if inputs.shape[0] < 2:  # BatchNorm cannot normalise one example in train mode
                continue
            teacher_logits = teacher(inputs) if distill_weight > 0 else None
            loss = distilled_loss(net(inputs), labels, teacher_logits, distill_weight, temperature)
            masked_step(net, optimizer, masks, loss, weight_decay)
        entry = {
            "epochs": done / max(len(retain_loader), 1),
            "retain_accuracy": _sample_accuracy(net, targets["sample"]),
            "val_accuracy": accuracy(net, val_loader, device),
        }
        log.append(entry)
        LOGGER.info(
            "repair: %.2f retain epochs, retain accuracy %.3f, validation accuracy %.3f",
            *entry.values(),
        )
        if entry["retain_accuracy"] >= targets["retain"] and entry["val_accuracy"] >= targets["val"]:
            break
    net.eval()
    return log


@torch.no_grad()
def _sample_accuracy(net, sample) -> float:
    if sample is None:
        return 0.0
    was_training = net.training
    net.eval()
    images, labels = sample
    correct = int((net(images).argmax(dim=1) == labels).sum())
    net.train(was_training)
    return correct / max(len(labels), 1)


@torch.no_grad()
def recalibrate_last_layer(net, images: torch.Tensor, labels: torch.Tensor, target: float) -> float:
    """Scale the last layer so the forget set's mean confidence comes closest to ``target``.

    Scaling the logits never changes a prediction, so retain and test accuracy
    stay as the repair left them; the scale is chosen from reset_recalibrate's
    grid (``SCALES``) and returned.
    """
    net.eval()
    scale = best_scale(net(images).float(), labels, target)
    net.fc.weight.mul_(scale)
    if net.fc.bias is not None:
        net.fc.bias.mul_(scale)
    return scale


def _cycle(loader):
    while True:
        produced = False
        for batch in loader:
            produced = True
            yield batch
        if not produced:
            return
