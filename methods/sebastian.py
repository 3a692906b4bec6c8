"""Sebastian: prune almost every weight, re-initialise it, and re-learn with entropy matching.

Fourth place in the NeurIPS 2023 Machine Unlearning challenge (team "Sebastian"), as
described in Triantafillou et al., "Are we making progress in unlearning?" (2024), and
as its submitted notebook did it (decision by decision in docs/top-methods.md).

Cost: about 4.3 retain epochs (3.2 epochs' worth of training iterations plus one, each also
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
    """Convolutions and linear layers: their weights and biases are ranked together."""
    return [module for module in net.modules() if isinstance(module, (nn.Conv2d, nn.Linear))]


def ranked_tensors(layers: list[nn.Module]) -> list[torch.Tensor]:
    """Each layer's weight, then its bias where it has one: the global ranking's order."""
    tensors = []
    for layer in layers:
        tensors.append(layer.weight)
        if layer.bias is not None:
            tensors.append(layer.bias)
    return tensors


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

    1. Rank the absolute values of all conv and linear weights and biases together
       and take the ``prune_fraction`` (rounded) smallest (global L1 unstructured
       pruning, as ``torch.nn.utils.prune`` does it). The selected weights, and any
       weight that was already exactly zero, are re-initialised uniformly in
       +-sqrt(1/fan_in); selected biases stay at zero.
    2. Train for ``int(epochs x batches per retain epoch) + 1`` iterations on the
       retain set (SGD, constant learning rate) with loss = class-weighted
       cross-entropy (weight = count^-``class_weight_power``) + MSE between the
       entropy of the model's predictions and the original model's on the same batch.
    3. Round every parameter and buffer through float16 and back.

    The project's own choices: the mask is applied once (weights are free to move
    afterwards and no pruning hooks remain, as after the notebook's ``prune.remove``);
    classes absent from the retain set count as one example; one-example batches are
    skipped (BatchNorm cannot normalise them in train mode).
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
        steps = int(self.epochs * len(retain_loader)) + 1
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
        net.half()
        net.float()

    def prune_and_reinitialise(self, net) -> None:
        layers = prunable_layers(net)
        tensors = ranked_tensors(layers)
        with torch.no_grad():
            magnitudes = torch.cat([tensor.abs().flatten() for tensor in tensors])
            count = round(self.prune_fraction * magnitudes.numel())
            pruned = torch.zeros_like(magnitudes, dtype=torch.bool)
            if count > 0:
                pruned[torch.topk(magnitudes, count, largest=False).indices] = True
            start = 0
            for tensor in tensors:
                size = tensor.numel()
                tensor.masked_fill_(pruned[start : start + size].view_as(tensor), 0.0)
                start += size
            for layer in layers:
                weight = layer.weight
                bound = math.sqrt(1.0 / weight[0].numel())
                fresh = torch.empty_like(weight).uniform_(-bound, bound)
                weight.copy_(torch.where(weight == 0, fresh, weight))
