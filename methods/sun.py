"""Sun: reset the classifier, then re-learn through random, noised subsets of the weights.

A top solution of the NeurIPS 2023 Machine Unlearning challenge (team "Sun"), as
described in Triantafillou et al., "Are we making progress in unlearning?" (2024), and
as its submitted notebook did it (decision by decision in docs/top-methods.md).

Cost: about 8 retain epochs (9 retain epochs; in the first 5 only a few weight
tensors and BatchNorm train, so their backward passes are cheaper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch

BATCHNORM_DETECTIONS = ("name", "module")


def split_batchnorm_parameters(
    net: nn.Module, detection: str
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(BatchNorm parameters, which always train; the others, which are candidates).

    ``"name"``: a parameter is BatchNorm's when its name contains "bn", as in the
    submitted notebook, so torchvision's shortcut BatchNorm (``downsample.1``) is a
    candidate like any weight; ``"module"``: every ``nn.BatchNorm*`` parameter.
    """
    if detection == "name":
        batchnorm, others = [], []
        for name, parameter in net.named_parameters():
            (batchnorm if "bn" in name else others).append(parameter)
        return batchnorm, others
    if detection == "module":
        batchnorm, others = [], []
        for module in net.modules():
            target = batchnorm if isinstance(module, nn.modules.batchnorm._BatchNorm) else others
            target.extend(module.parameters(recurse=False))
        return batchnorm, others
    raise ValueError(
        f"sun: batchnorm_detection={detection!r}; use one of {', '.join(BATCHNORM_DETECTIONS)}"
    )


class Sun(BaseMethod):
    """Reset ``fc``; train random noised parameter subsets, then everything.

    ``fc`` is re-initialised. In each of the first ``partial_epochs`` epochs,
    ``tensors_per_epoch`` random candidate tensors are chosen; from the second epoch
    on, ``int(noise_fraction x tensors_per_epoch)`` of them are drawn and those never
    chosen in an earlier epoch get N(0, 1) x ``noise_scale`` added (with
    ``renoise=True``, every drawn one). Only the chosen tensors and BatchNorm's
    parameters (``batchnorm_detection``) train that epoch, at ``partial_lr``. The
    following ``len(final_lrs)`` epochs train every parameter, one learning rate per
    epoch. Every epoch starts a fresh SGD (momentum and weight decay), so momentum
    never carries over; cross-entropy on the retain set throughout.

    Named readings of the prose, off by default because Kaggle scored the notebook:
    ``batchnorm_detection="module"`` (the shortcut BatchNorm always trains, never
    chosen) and ``renoise=True``. The project's own choices: frozen tensors are frozen
    with ``requires_grad`` and their flags restored afterwards; the notebook's
    per-epoch validation accuracy (printed, never used) is not computed; one-example
    batches are skipped (BatchNorm cannot normalise them in train mode).
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
        batchnorm_detection: str = "name",
        renoise: bool = False,
    ) -> None:
        self.partial_epochs = partial_epochs
        self.tensors_per_epoch = tensors_per_epoch
        self.noise_fraction = noise_fraction
        self.noise_scale = noise_scale
        self.partial_lr = partial_lr
        self.final_lrs = final_lrs
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batchnorm_detection = batchnorm_detection
        self.renoise = renoise

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        net.fc.reset_parameters()
        batchnorm, others = split_batchnorm_parameters(net, self.batchnorm_detection)
        flags = [parameter.requires_grad for parameter in net.parameters()]
        chosen_before: set[int] = set()
        net.train()
        try:
            for epoch in range(self.partial_epochs):
                chosen = self.choose(others)
                if epoch > 0:
                    self.perturb(others, chosen, chosen_before)
                chosen_before.update(chosen)
                for index, parameter in enumerate(others):
                    parameter.requires_grad_(index in chosen)
                trained = batchnorm + [others[index] for index in chosen]
                self.train_epoch(net, retain_loader, trained, self.partial_lr, device)
            for parameter in others:
                parameter.requires_grad_(True)
            for lr in self.final_lrs:
                self.train_epoch(net, retain_loader, list(net.parameters()), lr, device)
        finally:
            for parameter, flag in zip(net.parameters(), flags):
                parameter.requires_grad_(flag)
        net.eval()

    def choose(self, others) -> list[int]:
        """Indices of this epoch's tensors among the candidates."""
        count = min(self.tensors_per_epoch, len(others))
        return torch.randperm(len(others))[:count].tolist()

    def perturb(self, others, chosen: list[int], chosen_before: set[int]) -> None:
        drawn = int(self.noise_fraction * self.tensors_per_epoch)
        drawn = min(drawn, len(chosen))
        order = torch.randperm(len(chosen))[:drawn].tolist()
        with torch.no_grad():
            for position in order:
                index = chosen[position]
                if index in chosen_before and not self.renoise:
                    continue
                others[index].add_(torch.randn_like(others[index]) * self.noise_scale)

    def train_epoch(self, net, retain_loader, parameters, lr: float, device) -> None:
        optimizer = optim.SGD(
            parameters, lr=lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        for batch in retain_loader:
            inputs, targets = unpack_batch(batch, device)
            if inputs.shape[0] < 2:
                continue
            optimizer.zero_grad()
            F.cross_entropy(net(inputs), targets).backward()
            optimizer.step()
