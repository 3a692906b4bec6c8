"""SalUn: random-label unlearning restricted to the weights most salient for the forget set.

Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency
in both Image Classification and Generation" (ICLR 2024), random-label variant.

Cost: about 10.6 retain epochs (10 retain epochs, 10 passes over the forget set with
random labels, and one gradient pass over the forget set for the mask; the forget set
is about 2 % of the data).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import optim

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


class SalUn(BaseMethod):
    """Saliency mask from forget-set gradients, then masked random-label + retain training.

    1. Accumulate the gradient of cross-entropy over the forget set; rank every
       parameter entry of the network together by |gradient|; the top
       ``saliency_fraction`` are trainable, the rest are frozen.
    2. ``epochs`` times: one pass over the forget set with uniformly random labels,
       then one pass over the retain set with the true labels (SGD, momentum).
       Weight decay is added to the gradient before masking, so frozen entries get a
       zero update and zero momentum and keep their original values exactly.

    Where the specification is silent: random labels are drawn afresh for every
    batch (uniform over the classes, the true one included), since the loaders
    reshuffle and cannot carry a fixed label per example. The mask is computed in eval mode so that BatchNorm statistics are untouched by
    it; one-example batches are skipped in training (BatchNorm cannot normalise them).
    """

    name = "salun"

    def __init__(
        self,
        *,
        epochs: int = 10,
        saliency_fraction: float = 0.5,
        lr: float = 0.013,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        self.epochs = epochs
        self.saliency_fraction = saliency_fraction
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        num_classes = net.fc.out_features
        masks = self.saliency_masks(net, forget_loader, device)
        optimizer = optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum)
        net.train()
        for _ in range(self.epochs):
            for batch in forget_loader:
                inputs, _ = unpack_batch(batch, device)
                random_labels = torch.randint(0, num_classes, (inputs.shape[0],), device=device)
                self.masked_step(net, optimizer, masks, inputs, random_labels)
            for batch in retain_loader:
                inputs, targets = unpack_batch(batch, device)
                self.masked_step(net, optimizer, masks, inputs, targets)
        net.eval()

    def saliency_masks(self, net, forget_loader, device) -> list[torch.Tensor]:
        """One boolean mask per parameter, True where the entry may change."""
        net.eval()
        net.zero_grad()
        for batch in forget_loader:
            inputs, targets = unpack_batch(batch, device)
            F.cross_entropy(net(inputs), targets, reduction="sum").backward()
        with torch.no_grad():
            magnitudes = [
                p.grad.abs() if p.grad is not None else torch.zeros_like(p)
                for p in net.parameters()
            ]
            flat = torch.cat([m.flatten() for m in magnitudes])
            keep = int(round(self.saliency_fraction * flat.numel()))
            if keep <= 0:
                threshold = float("inf")
            else:
                threshold = torch.kthvalue(flat.cpu(), flat.numel() - keep + 1).values.item()
            masks = [m >= threshold for m in magnitudes]
        net.zero_grad(set_to_none=True)
        return masks

    def masked_step(self, net, optimizer, masks, inputs, targets) -> None:
        if inputs.shape[0] < 2:
            return
        optimizer.zero_grad()
        F.cross_entropy(net(inputs), targets).backward()
        with torch.no_grad():
            for parameter, mask in zip(net.parameters(), masks):
                if parameter.grad is not None:
                    parameter.grad.add_(parameter, alpha=self.weight_decay).mul_(mask)
        optimizer.step()
