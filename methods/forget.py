"""Forget: forget-remember cycles of random layer re-initialisation and output distillation.

Eighth place in the NeurIPS 2023 Machine Unlearning challenge (team "Forget",
Kyungpook National University / LG Energy Solution: Ahn, Lee, Bae, Yim, Jung), as
described in their technical report and in Triantafillou et al., "Are we making
progress in unlearning?" (2024). It never reads the forget set.

Cost: about 6.7 retain epochs (5 distillation epochs, each also running the original
model forward, about a third of a training step).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn, optim

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


def reinitialisable_convs(net: nn.Module) -> list[nn.Conv2d]:
    """Convolutions outside the shortcut projections: the layers the team re-initialises."""
    return [
        module
        for name, module in net.named_modules()
        if isinstance(module, nn.Conv2d) and "downsample" not in name
    ]


class Forget(BaseMethod):
    """Cycles of "re-initialise random layers, then distil the original outputs on the retain set".

    For each entry of ``cycle_epochs``: re-initialise ``layers_per_cycle`` randomly
    chosen conv layers (never ``fc`` nor the ``downsample`` shortcuts), then train for
    that many epochs on the retain set to reproduce the original model's logits with
    MSE (SGD from ``lr``, cosine over the cycle), feeding inputs with Gaussian noise of
    standard deviation ``input_noise_std`` added.

    No notebook of this team is preserved (xcadet/deepunlearn keeps the code of the
    seven entries above it, ``kgltop1``..``kgltop7``, none of them this one), so only
    the technical report's description is followed. These decisions are the project's
    own, not the team's: the cycle lengths ``(1, 2, 2)`` and six layers per cycle; a
    "layer" is a convolution outside the ``downsample`` shortcuts, never ``fc``, and
    its BatchNorm keeps its parameters; the input noise (standard deviation
    ``input_noise_std`` on the 0-255 scale the loader gives, the same noisy inputs for
    both models); MSE on logits; each cycle's fresh SGD with momentum and weight decay
    and its per-batch cosine schedule; skipping one-example batches (BatchNorm cannot
    normalise them in train mode).
    """

    name = "forget"

    def __init__(
        self,
        *,
        cycle_epochs: tuple[int, ...] = (1, 2, 2),
        layers_per_cycle: int = 6,
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        input_noise_std: float = 0.01,
    ) -> None:
        self.cycle_epochs = cycle_epochs
        self.layers_per_cycle = layers_per_cycle
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.input_noise_std = input_noise_std

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        original = copy.deepcopy(net).eval()
        for parameter in original.parameters():
            parameter.requires_grad_(False)
        candidates = reinitialisable_convs(net)
        for epochs in self.cycle_epochs:
            count = min(self.layers_per_cycle, len(candidates))
            for index in torch.randperm(len(candidates))[:count].tolist():
                candidates[index].reset_parameters()
            self.remember(net, original, retain_loader, epochs, device)
        net.eval()

    def remember(self, net, original, retain_loader, epochs: int, device) -> None:
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        schedule = optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, epochs * len(retain_loader))
        )
        net.train()
        for _ in range(epochs):
            for batch in retain_loader:
                inputs, _ = unpack_batch(batch, device)
                if inputs.shape[0] < 2:
                    continue
                inputs = inputs + torch.randn_like(inputs) * self.input_noise_std
                with torch.no_grad():
                    target_logits = original(inputs)
                loss = F.mse_loss(net(inputs), target_logits)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
