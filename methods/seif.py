"""Seif: drown the conv weights in noise, then re-learn from the retain set's majority class.

A top solution of the NeurIPS 2023 Machine Unlearning challenge (team "Seif"), as
described in Triantafillou et al., "Are we making progress in unlearning?" (2024).

Cost: about 4 retain epochs (4 cross-entropy epochs, plus one label-counting pass
over the retain set that runs no network).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from methods.base import BaseMethod
from methods.common import count_labels, model_device, unpack_batch


def add_conv_noise(net: nn.Module, std: float) -> None:
    """Gaussian noise on every convolution's weight, shortcut projections included."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.add_(torch.randn_like(module.weight) * std)


class Seif(BaseMethod):
    """Noise every conv weight, then majority-class-weighted cross-entropy on the retain set.

    Adds N(0, ``noise_std``^2) to every conv weight, then trains ``epochs`` epochs of
    cross-entropy on the retain set (SGD, cosine schedule over all steps) with
    per-example weights ``majority_weight`` for examples of the retain set's most
    frequent class and ``other_weight`` for the rest. The weighted losses are averaged
    over the batch (not normalised by the weights' sum), so a batch with few
    majority-class examples takes a smaller step. Before the last epoch,
    N(0, ``late_noise_std``^2) is added to the conv weights again.

    The team's notebook was not available offline, so this follows the published
    description and the project's specification. Where they are silent: "conv weight"
    means every ``nn.Conv2d`` including the ``downsample`` projections; the cosine
    schedule steps per batch; one-example batches are skipped (BatchNorm cannot
    normalise them in train mode).
    """

    name = "seif"

    def __init__(
        self,
        *,
        epochs: int = 4,
        lr: float = 7e-4,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        noise_std: float = 0.6,
        late_noise_std: float = 0.005,
        majority_weight: float = 1.0,
        other_weight: float = 0.05,
    ) -> None:
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.noise_std = noise_std
        self.late_noise_std = late_noise_std
        self.majority_weight = majority_weight
        self.other_weight = other_weight

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        num_classes = net.fc.out_features
        counts = count_labels(retain_loader, num_classes)
        class_weights = torch.full((num_classes,), self.other_weight, device=device)
        class_weights[int(torch.argmax(counts))] = self.majority_weight

        add_conv_noise(net, self.noise_std)
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        schedule = optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, self.epochs * len(retain_loader))
        )
        net.train()
        for epoch in range(self.epochs):
            if epoch == self.epochs - 1:
                add_conv_noise(net, self.late_noise_std)
            for batch in retain_loader:
                inputs, targets = unpack_batch(batch, device)
                if inputs.shape[0] < 2:
                    continue
                losses = F.cross_entropy(net(inputs), targets, reduction="none")
                loss = (losses * class_weights[targets]).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        net.eval()
