"""SCRUB: a student that moves away from the original model on the forget set and stays close on the retain set.

Kurmanji et al., "Towards Unbounded Machine Unlearning" (NeurIPS 2023).

Cost: about 4.1 retain epochs (3 retain epochs, each also running the original model
forward, about a third of a training step; plus 2 max-step passes over the forget
set, about 2 % of the data).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import optim

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


def distill_kl(logits, teacher_logits, temperature: float) -> torch.Tensor:
    """SCRUB's DistillKL: KL(teacher || student) at a temperature, times T^2, per example."""
    return (
        F.kl_div(
            F.log_softmax(logits / temperature, dim=1),
            F.softmax(teacher_logits / temperature, dim=1),
            reduction="sum",
        )
        * temperature**2
        / logits.shape[0]
    )


class Scrub(BaseMethod):
    """Alternate max-steps on the forget set and min-steps on the retain set against the original.

    For ``epochs`` epochs: in the first ``max_epochs`` of them, one pass over the
    forget set maximising the divergence between the student and the frozen original
    model (loss = -KL at temperature ``temperature``); then, every epoch, one pass over
    the retain set minimising ``ce_weight`` x cross-entropy + ``kl_weight`` x KL to the
    original. One SGD optimiser for both steps.

    Description versus code: the description says KL(student || original); the
    authors' code (``DistillKL``) computes KL(original || student) on
    temperature-softened predictions, multiplied by T^2 and averaged per example.
    This follows the code. One-example batches are skipped (BatchNorm cannot
    normalise them in train mode).
    """

    name = "scrub"

    def __init__(
        self,
        *,
        epochs: int = 3,
        max_epochs: int = 2,
        temperature: float = 4.0,
        ce_weight: float = 0.99,
        kl_weight: float = 0.001,
        lr: float = 5e-4,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        self.epochs = epochs
        self.max_epochs = max_epochs
        self.temperature = temperature
        self.ce_weight = ce_weight
        self.kl_weight = kl_weight
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        original = copy.deepcopy(net).eval()
        for parameter in original.parameters():
            parameter.requires_grad_(False)
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        net.train()
        for epoch in range(self.epochs):
            if epoch < self.max_epochs:
                self.max_step(net, original, forget_loader, optimizer, device)
            self.min_step(net, original, retain_loader, optimizer, device)
        net.eval()

    def max_step(self, net, original, forget_loader, optimizer, device) -> None:
        for batch in forget_loader:
            inputs, _ = unpack_batch(batch, device)
            if inputs.shape[0] < 2:
                continue
            with torch.no_grad():
                teacher_logits = original(inputs)
            loss = -distill_kl(net(inputs), teacher_logits, self.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def min_step(self, net, original, retain_loader, optimizer, device) -> None:
        for batch in retain_loader:
            inputs, targets = unpack_batch(batch, device)
            if inputs.shape[0] < 2:
                continue
            with torch.no_grad():
                teacher_logits = original(inputs)
            logits = net(inputs)
            loss = self.ce_weight * F.cross_entropy(logits, targets) + self.kl_weight * distill_kl(
                logits, teacher_logits, self.temperature
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
