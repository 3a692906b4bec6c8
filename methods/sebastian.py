"""Sebastian: prune almost every weight, re-initialise it, and re-learn with entropy matching.

Fourth place in the NeurIPS 2023 Machine Unlearning challenge (team "Sebastian"), as
described in Triantafillou et al., "Are we making progress in unlearning?" (2024).

Cost: about 4.3 retain epochs (3.2 epochs' worth of training iterations, each also
running the original model forward, about a third of a training step; plus one
label-counting pass that runs no network).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn, optim

from methods.base import BaseMethod
from methods.common import count_labels, model_device, unpack_batch


def prunable_layers(net: nn.Module) -> list[nn.Module]:
    """Convolutions and linear layers: the weights global pruning ranks together."""
    return [module for module in net.modules() if isinstance(module, (nn.Conv2d, nn.Linear))]


def cycle_batches(loader):
    """Batches of ``loader`` forever, reshuffled on each pass, none cached in memory."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            return


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each example's softmax: the quantity matched to the original model."""
    log_probs = F.log_softmax(logits, dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1)


class Sebastian(BaseMethod):
    """Global magnitude pruning with re-initialisation, then entropy-matched fine-tuning.

    1. Rank the absolute values of all conv and linear weights together and take the
       ``prune_fraction`` smallest (global L1 unstructured pruning); instead of being
       left at zero they are re-initialised uniformly in +-sqrt(1/fan_in).
    2. Train for ``round(epochs x batches per retain epoch)`` iterations on the retain
       set (SGD) with loss = class-weighted cross-entropy (weight = count^-``class_weight_power``)
       + MSE between the entropy of the model's predictions and the original model's
       on the same batch.

    The team's notebook was not available offline, so this follows the published
    description and the project's specification. Where they are silent: the mask is
    applied once (weights are free to move afterwards, no pruning hooks remain, so the
    parameter set is unchanged); classes absent from the retain set count as one
    example; the learning rate is constant; one-example batches are skipped
    (BatchNorm cannot normalise them in train mode).
    """

    name = "sebastian"

    def __init__(
        self,
        *,
        prune_fraction: float = 0.99,
        epochs: float = 3.2,
        lr: float = 5e-4,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        class_weight_power: float = 0.1,
    ) -> None:
        self.prune_fraction = prune_fraction
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.class_weight_power = class_weight_power

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        num_classes = net.fc.out_features
        counts = count_labels(retain_loader, num_classes).clamp(min=1).float()
        class_weights = counts.pow(-self.class_weight_power).to(device)
        original = copy.deepcopy(net).eval()
        for parameter in original.parameters():
            parameter.requires_grad_(False)

        self.prune_and_reinitialise(net)
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        steps = round(self.epochs * len(retain_loader))
        batches = cycle_batches(retain_loader)
        net.train()
        for _ in range(steps):
            inputs, targets = unpack_batch(next(batches), device)
            if inputs.shape[0] < 2:
                continue
            logits = net(inputs)
            with torch.no_grad():
                original_entropy = prediction_entropy(original(inputs))
            loss = F.cross_entropy(logits, targets, weight=class_weights) + F.mse_loss(
                prediction_entropy(logits), original_entropy
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()

    def prune_and_reinitialise(self, net) -> None:
        layers = prunable_layers(net)
        with torch.no_grad():
            magnitudes = torch.cat([layer.weight.abs().flatten() for layer in layers])
            count = int(self.prune_fraction * magnitudes.numel())
            if count == 0:
                return
            threshold = torch.kthvalue(magnitudes.cpu(), count).values.item()
            for layer in layers:
                weight = layer.weight
                fan_in = weight[0].numel()
                bound = math.sqrt(1.0 / fan_in)
                fresh = torch.empty_like(weight).uniform_(-bound, bound)
                weight.copy_(torch.where(weight.abs() <= threshold, fresh, weight))
