"""Reset, repair by distillation, then recalibrate the forget set to look unseen.

A research method of this project, built on what the leaders do where the network
memorises (sebastian, fanchuan: a heavy reset or a push away from the original,
then retain training), with two measured steps of its own:

- the repair distils the original on the retain set: on retain data the original
  answers as a model trained without the forget set would (both fit it), so its
  logits are a richer target than the labels, and the reset network relearns
  faster;
- the recalibration needs no guess of strength: the validation set is the picture
  of unseen data, so the original's validation confidences, at each forget
  example's within-class rank, say what a retrained model would give the forget
  set. One scale of the last layer (which never changes a prediction, so neither
  accuracy moves) brings the forget set's mean confidence onto that target.

Cost: about 4.3 retain epochs (``epochs`` = 3.2 epochs of training, each step also
running the original forward, about a third of a training step), plus one pass
over the validation and forget sets to measure; no step depends on elapsed time.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import optim

from methods.base import BaseMethod
from methods.common import count_labels, model_device, unpack_batch
from methods.saliency import collect, confidences, loader_confidences, margin, quantile_targets
from methods.search_space import LogUniform, Uniform
from methods.sebastian import cycle_batches, prunable_layers, ranked_tensors

# The last layer's scales the recalibration chooses from: a log grid wide enough for a
# network fresh from a reset (too unsure) and for one that kept its memory (too sure).
SCALES = tuple(2.0 ** (k / 8) for k in range(-24, 25))


def reset_smallest(net, fraction: float) -> None:
    """Re-initialise the ``fraction`` of conv and linear entries smallest in magnitude.

    Ranked over the whole network, as global magnitude pruning ranks them; the
    chosen weights are drawn afresh (uniform in +-sqrt(1/fan_in)), chosen biases
    are zeroed. The fresh draws are what make one run differ from another, as
    retrained models differ by their random start.
    """
    layers = prunable_layers(net)
    tensors = ranked_tensors(layers)
    with torch.no_grad():
        magnitudes = torch.cat([tensor.abs().flatten() for tensor in tensors])
        count = round(fraction * magnitudes.numel())
        chosen = torch.zeros_like(magnitudes, dtype=torch.bool)
        if count > 0:
            chosen[torch.topk(magnitudes, count, largest=False).indices] = True
        start = 0
        for tensor in tensors:
            size = tensor.numel()
            mask = chosen[start : start + size].view_as(tensor)
            start += size
            if tensor.dim() > 1:
                bound = math.sqrt(1.0 / tensor[0].numel())
                fresh = torch.empty_like(tensor).uniform_(-bound, bound)
                tensor.copy_(torch.where(mask, fresh, tensor))
            else:
                tensor.masked_fill_(mask, 0.0)


def best_scale(logits: torch.Tensor, labels: torch.Tensor, target: float) -> float:
    """The grid scale whose scaled logits give the forget set's mean confidence closest to ``target``."""
    gaps = [abs(float(margin(scale * logits, labels).mean()) - target) for scale in SCALES]
    return SCALES[min(range(len(SCALES)), key=gaps.__getitem__)]


class ResetRecalibrate(BaseMethod):
    """Magnitude reset, retain repair with distillation, last-layer recalibration.

    1. Measure on the original: each forget example's target, the validation
       confidence at its within-class rank (``methods.saliency.quantile_targets``).
    2. Reset: re-initialise the ``reset_fraction`` smallest conv and linear entries
       (``reset_smallest``).
    3. Repair: ``int(epochs x retain batches) + 1`` SGD steps on the retain set with
       class-weighted cross-entropy (weight = count^-``class_weight_power``) plus
       ``distill_weight`` x the KL divergence from the original's softened
       predictions (temperature ``temperature``, scaled by its square).
    4. Recalibrate: scale the last layer's weights and bias by the grid value
       (``SCALES``) that brings the forget set's mean confidence closest to its
       targets' mean. Scaling logits keeps every prediction, so the retain and
       test accuracy are those of step 3.

    One-example batches are skipped (BatchNorm cannot normalise them in train mode).
    """

    name = "reset_recalibrate"
    search_space = {
        "reset_fraction": Uniform(0.8, 0.999),
        "epochs": Uniform(1.0, 5.0),  # 5 epochs: about 0.23 of a retraining in passes
        "lr": LogUniform(1e-4, 1e-2),
        "distill_weight": Uniform(0.0, 4.0),
        "temperature": Uniform(1.0, 8.0),
    }

    def __init__(
        self,
        *,
        reset_fraction: float = 0.99,
        epochs: float = 3.2,
        lr: float = 5e-4,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        class_weight_power: float = 0.1,
        distill_weight: float = 1.0,
        temperature: float = 2.0,
        recalibrate: bool = True,
    ) -> None:
        self.reset_fraction = reset_fraction
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.class_weight_power = class_weight_power
        self.distill_weight = distill_weight
        self.temperature = temperature
        self.recalibrate = recalibrate

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        images, labels = collect(forget_loader, device)
        target = None
        if len(labels) and self.recalibrate:
            val_conf, val_labels = loader_confidences(net, val_loader, device)
            forget_conf = confidences(net, images, labels)
            target = float(quantile_targets(forget_conf, labels, val_conf, val_labels).mean())
        original = copy.deepcopy(net).eval()
        for parameter in original.parameters():
            parameter.requires_grad_(False)
        reset_smallest(net, self.reset_fraction)
        self.repair(net, original, retain_loader, device)
        net.eval()
        if target is not None:
            with torch.no_grad():
                scale = best_scale(net(images).float(), labels, target)
                net.fc.weight.mul_(scale)
                net.fc.bias.mul_(scale)

    def repair(self, net, original, retain_loader, device) -> None:
        counts = count_labels(retain_loader, net.fc.out_features).clamp(min=1).float()
        class_weights = counts.pow(-self.class_weight_power).to(device)
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        batches = cycle_batches(retain_loader)
        net.train()
        for _ in range(int(self.epochs * len(retain_loader)) + 1):
            inputs, targets = unpack_batch(next(batches), device)
            if inputs.shape[0] < 2:
                continue
            logits = net(inputs)
            loss = F.cross_entropy(logits, targets, weight=class_weights)
            if self.distill_weight > 0:
                with torch.no_grad():
                    teacher = F.softmax(original(inputs) / self.temperature, dim=1)
                student = F.log_softmax(logits / self.temperature, dim=1)
                loss = loss + self.distill_weight * self.temperature**2 * F.kl_div(
                    student, teacher, reduction="batchmean"
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
