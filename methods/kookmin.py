"""Kookmin: re-initialise the conv weights that matter least, then fine-tune on the retain set.

A top-2 solution of the NeurIPS 2023 Machine Unlearning challenge (team "Kookmin"),
as described in Triantafillou et al., "Are we making progress in unlearning?" (2024),
and as its submitted notebook did it (decision by decision in docs/top-methods.md).

Cost: about 5.1 retain epochs (5 fine-tuning epochs plus one forward/backward pass
over the forget set and an equally large random retain subset to rank the weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from methods.base import BaseMethod
from methods.common import dataset_size, model_device, reshuffled_loader, unpack_batch

RANKING_MODES = ("caller", "train", "eval")


def conv_weights(net: nn.Module) -> list[torch.nn.Parameter]:
    """Every convolution's weight, shortcut projections included."""
    return [module.weight for module in net.modules() if isinstance(module, nn.Conv2d)]


class Kookmin(BaseMethod):
    """Gradient-ranked re-initialisation of conv weights, then masked-rate fine-tuning.

    1. Accumulate, in the mode the caller left the network in (``ranking_mode``), the
       gradients of batch-mean cross-entropy on a random retain subset as large as the
       forget set (batches of ``ranking_batch_size``), then of negated batch-mean
       cross-entropy on the caller's forget batches. On Kaggle the network arrives in
       train mode, so batch statistics normalise and BatchNorm's running statistics move.
    2. In each conv layer (shortcut projections included), re-initialise (Kaiming
       normal, fan_out, relu) the ``reinit_fraction`` (rounded) of weights with the
       smallest |gradient|.
    3. Fine-tune on the retain set for ``len(lr_factors)`` epochs, SGD with learning
       rate ``lr`` x the epoch's factor; conv-weight gradients are multiplied by
       ``reinit_grad_scale`` on re-initialised entries and ``kept_grad_scale`` on the
       others (BatchNorm and ``fc`` are not scaled).

    The project's own choice: one-example batches are skipped whenever the network
    is in train mode (BatchNorm cannot normalise a single example there).
    """

    name = "kookmin"

    def __init__(
        self,
        *,
        reinit_fraction: float = 0.3,
        lr: float = 1e-3,
        lr_factors: tuple[float, ...] = (
            0.3333333333333333,
            0.6666666666666666,
            1.0,
            0.6666666666666666,
            0.3333333333333333,
        ),
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        reinit_grad_scale: float = 1.0,
        kept_grad_scale: float = 0.1,
        ranking_batch_size: int = 64,
        ranking_mode: str = "caller",
    ) -> None:
        self.reinit_fraction = reinit_fraction
        self.lr = lr
        self.lr_factors = lr_factors
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.reinit_grad_scale = reinit_grad_scale
        self.kept_grad_scale = kept_grad_scale
        self.ranking_batch_size = ranking_batch_size
        self.ranking_mode = ranking_mode

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        self.accumulate_gradients(net, retain_loader, forget_loader, device)
        grad_scales = self.reinitialise_least_sensitive(net)
        self.fine_tune(net, retain_loader, grad_scales, device)
        net.eval()

    def accumulate_gradients(self, net, retain_loader, forget_loader, device) -> None:
        if self.ranking_mode not in RANKING_MODES:
            raise ValueError(
                f"kookmin: ranking_mode={self.ranking_mode!r}; use one of {', '.join(RANKING_MODES)}"
            )
        if self.ranking_mode != "caller":
            net.train(self.ranking_mode == "train")
        subset = torch.randperm(dataset_size(retain_loader))[: dataset_size(forget_loader)]
        retain_subset = reshuffled_loader(retain_loader, self.ranking_batch_size, subset.tolist())
        net.zero_grad()
        for batch in retain_subset:
            inputs, targets = unpack_batch(batch, device)
            if net.training and inputs.shape[0] < 2:
                continue
            F.cross_entropy(net(inputs), targets).backward()
        for batch in forget_loader:
            inputs, targets = unpack_batch(batch, device)
            if net.training and inputs.shape[0] < 2:
                continue
            (-F.cross_entropy(net(inputs), targets)).backward()

    def reinitialise_least_sensitive(self, net) -> list[tuple[nn.Parameter, torch.Tensor]]:
        """Re-initialised conv entries, returned as per-weight gradient multipliers."""
        grad_scales = []
        with torch.no_grad():
            for weight in conv_weights(net):
                grad = weight.grad if weight.grad is not None else torch.zeros_like(weight)
                magnitude = grad.abs().flatten()
                count = round(self.reinit_fraction * magnitude.numel())
                reinit = torch.zeros_like(magnitude, dtype=torch.bool)
                if count > 0:
                    reinit[torch.argsort(magnitude)[:count]] = True
                reinit = reinit.view_as(weight)
                fresh = nn.init.kaiming_normal_(
                    torch.empty_like(weight), mode="fan_out", nonlinearity="relu"
                )
                weight.copy_(torch.where(reinit, fresh, weight))
                scale = torch.full_like(weight, self.kept_grad_scale)
                scale[reinit] = self.reinit_grad_scale
                grad_scales.append((weight, scale))
        net.zero_grad(set_to_none=True)
        return grad_scales

    def fine_tune(self, net, retain_loader, grad_scales, device) -> None:
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        net.train()
        for factor in self.lr_factors:
            for group in optimizer.param_groups:
                group["lr"] = self.lr * factor
            for batch in retain_loader:
                inputs, targets = unpack_batch(batch, device)
                if inputs.shape[0] < 2:
                    continue
                optimizer.zero_grad()
                F.cross_entropy(net(inputs), targets).backward()
                for weight, scale in grad_scales:
                    if weight.grad is not None:
                        weight.grad.mul_(scale)
                optimizer.step()
