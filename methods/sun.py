"""Sun: reset the classifier, then re-learn through random, noised subsets of the weights.

A top solution of the NeurIPS 2023 Machine Unlearning challenge (team "Sun"), as
described in Triantafillou et al., "Are we making progress in unlearning?" (2024).

Cost: about 8 retain epochs (9 retain epochs; in the first 5 only a few weight
tensors and BatchNorm train, so their backward passes are cheaper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


def split_batchnorm_parameters(net: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(BatchNorm parameters, all other parameters): BatchNorm always trains."""
    batchnorm, others = [], []
    for module in net.modules():
        target = batchnorm if isinstance(module, nn.modules.batchnorm._BatchNorm) else others
        target.extend(module.parameters(recurse=False))
    return batchnorm, others


class Sun(BaseMethod):
    """Reset ``fc``; train random noised parameter subsets, then everything.

    ``fc`` is re-initialised. In each of the first ``partial_epochs`` epochs,
    ``tensors_per_epoch`` random non-BatchNorm parameter tensors are chosen; from the
    second epoch on, ``noise_fraction`` of them (rounded) get N(0, 1) x ``noise_scale``
    added; only the chosen tensors and BatchNorm's parameters train that epoch, at
    ``partial_lr`` (a fresh SGD each epoch). The following ``len(final_lrs)`` epochs
    train every parameter, one learning rate per epoch. All SGD with momentum and
    weight decay, cross-entropy on the retain set.

    The team's notebook was not available offline, so this follows the published
    description and the project's specification. Where they are silent: "70 % of
    them" is read as 70 % of the chosen tensors (not of their entries); weight
    tensors and bias tensors are chosen alike; frozen tensors are frozen with
    ``requires_grad`` and their flags are restored afterwards; one-example batches
    are skipped (BatchNorm cannot normalise them in train mode).
    """

    name = "sun"

    def __init__(
        self,
        *,
        partial_epochs: int = 5,
        tensors_per_epoch: int = 9,
        noise_fraction: float = 0.7,
        noise_scale: float = 0.04,
        partial_lr: float = 2e-4,
        final_lrs: tuple[float, ...] = (2e-4, 2e-4, 2e-4, 1e-3),
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        self.partial_epochs = partial_epochs
        self.tensors_per_epoch = tensors_per_epoch
        self.noise_fraction = noise_fraction
        self.noise_scale = noise_scale
        self.partial_lr = partial_lr
        self.final_lrs = final_lrs
        self.momentum = momentum
        self.weight_decay = weight_decay

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        net.fc.reset_parameters()
        batchnorm, others = split_batchnorm_parameters(net)
        flags = [parameter.requires_grad for parameter in net.parameters()]
        net.train()
        try:
            for epoch in range(self.partial_epochs):
                chosen = self.choose_and_perturb(others, add_noise=epoch > 0)
                for parameter in others:
                    parameter.requires_grad_(False)
                for parameter in chosen:
                    parameter.requires_grad_(True)
                optimizer = optim.SGD(
                    batchnorm + chosen,
                    lr=self.partial_lr,
                    momentum=self.momentum,
                    weight_decay=self.weight_decay,
                )
                self.train_epoch(net, retain_loader, optimizer, device)
            for parameter in others:
                parameter.requires_grad_(True)
            optimizer = optim.SGD(
                net.parameters(),
                lr=self.partial_lr,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
            )
            for lr in self.final_lrs:
                for group in optimizer.param_groups:
                    group["lr"] = lr
                self.train_epoch(net, retain_loader, optimizer, device)
        finally:
            for parameter, flag in zip(net.parameters(), flags):
                parameter.requires_grad_(flag)
        net.eval()

    def choose_and_perturb(self, others, add_noise: bool) -> list[nn.Parameter]:
        count = min(self.tensors_per_epoch, len(others))
        order = torch.randperm(len(others))[:count].tolist()
        chosen = [others[index] for index in order]
        if add_noise:
            noised = round(self.noise_fraction * count)
            with torch.no_grad():
                for parameter in chosen[:noised]:
                    parameter.add_(torch.randn_like(parameter) * self.noise_scale)
        return chosen

    def train_epoch(self, net, retain_loader, optimizer, device) -> None:
        for batch in retain_loader:
            inputs, targets = unpack_batch(batch, device)
            if inputs.shape[0] < 2:
                continue
            optimizer.zero_grad()
            F.cross_entropy(net(inputs), targets).backward()
            optimizer.step()
