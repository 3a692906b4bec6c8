"""Amnesiacs: reset the input and output layers, then re-learn by distilling the original model.

A top solution of the NeurIPS 2023 Machine Unlearning challenge (team "Amnesiacs"), as
described in Triantafillou et al., "Are we making progress in unlearning?" (2024), and
as its submitted notebook did it (decision by decision in docs/top-methods.md).

Cost: about 4 retain epochs (3 retain epochs, each also running the original model
forward, about a third of a training step; plus 3 distillation epochs on the
validation set, which is a few times smaller than the retain set in the competition).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import optim

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


def distillation_kl(logits, teacher_logits, temperature: float) -> torch.Tensor:
    """KL(teacher || student) between the temperature-softened predictions, batch mean."""
    return F.kl_div(
        F.log_softmax(logits / temperature, dim=1),
        F.softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
    )


def soft_cross_entropy(logits, teacher_logits, temperature: float) -> torch.Tensor:
    """Cross-entropy against the teacher's temperature-softened probabilities, batch mean."""
    soft_targets = F.softmax(teacher_logits / temperature, dim=1)
    return -(soft_targets * F.log_softmax(logits / temperature, dim=1)).sum(dim=1).mean()


class Amnesiacs(BaseMethod):
    """Reset ``conv1`` and ``fc``, warm up on the validation set, then distil on the retain set.

    1. ``conv1`` and ``fc`` get fresh default initialisations, erasing what the first
       and last layers memorised.
    2. ``warmup_epochs`` epochs on the validation set (never trained on, so it carries
       no forget-set memory) distilling the original model: KL at temperature
       ``temperature`` (SGD ``warmup_lr``).
    3. ``epochs`` epochs on the retain set, cosine from ``lr`` stepped once per epoch,
       loss = cross-entropy + soft cross-entropy to the original model's probabilities
       + KL to the original model; both soft terms soften the teacher's and the
       student's softmax at ``temperature`` (5 in the notebook), neither is
       multiplied by T^2.

    The project's own choice: one-example batches are skipped (BatchNorm cannot
    normalise them in train mode).
    """

    name = "amnesiacs"

    def __init__(
        self,
        *,
        warmup_epochs: int = 3,
        warmup_lr: float = 9e-4,
        epochs: int = 3,
        lr: float = 1e-3,
        temperature: float = 5.0,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        self.warmup_epochs = warmup_epochs
        self.warmup_lr = warmup_lr
        self.epochs = epochs
        self.lr = lr
        self.temperature = temperature
        self.momentum = momentum
        self.weight_decay = weight_decay

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        original = copy.deepcopy(net).eval()
        for parameter in original.parameters():
            parameter.requires_grad_(False)
        net.conv1.reset_parameters()
        net.fc.reset_parameters()

        net.train()
        self.warm_up(net, original, val_loader, device)
        self.distil_on_retain(net, original, retain_loader, device)
        net.eval()

    def warm_up(self, net, original, val_loader, device) -> None:
        optimizer = optim.SGD(
            net.parameters(),
            lr=self.warmup_lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )
        for _ in range(self.warmup_epochs):
            for batch in val_loader:
                inputs, _ = unpack_batch(batch, device)
                if inputs.shape[0] < 2:
                    continue
                with torch.no_grad():
                    teacher_logits = original(inputs)
                loss = distillation_kl(net(inputs), teacher_logits, self.temperature)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

    def distil_on_retain(self, net, original, retain_loader, device) -> None:
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.epochs))
        for _ in range(self.epochs):
            for batch in retain_loader:
                inputs, targets = unpack_batch(batch, device)
                if inputs.shape[0] < 2:
                    continue
                with torch.no_grad():
                    teacher_logits = original(inputs)
                logits = net(inputs)
                loss = (
                    F.cross_entropy(logits, targets)
                    + soft_cross_entropy(logits, teacher_logits, self.temperature)
                    + distillation_kl(logits, teacher_logits, self.temperature)
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            schedule.step()
