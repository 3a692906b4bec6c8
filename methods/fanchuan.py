"""Fanchuan: push forget predictions to uniform, then contrast them against retain outputs.

The winning solution of the NeurIPS 2023 Machine Unlearning challenge (team "Fanchuan"),
as described in Triantafillou et al., "Are we making progress in unlearning?" (2024),
and as its submitted notebook did it (decision by decision in docs/top-methods.md).

Cost: about 8.4 retain epochs (8 cross-entropy epochs on the retain set, plus one
uniform pass and eight contrastive rounds over the forget set, each round also
running the network forward on as many retain batches of 256; the forget set is
about 2 % of the data).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import optim

from methods.base import BaseMethod
from methods.common import model_device, reshuffled_loader, unpack_batch


def uniform_target_loss(logits: torch.Tensor) -> torch.Tensor:
    """KL(uniform || softmax(logits)), batch mean.

    Its gradient with respect to the logits is (p - u) / batch, so it keeps pulling
    a confident prediction towards uniform; the reverse divergence KL(p || u) has a
    gradient that vanishes as p approaches one class.
    """
    uniform = torch.full_like(logits, 1.0 / logits.shape[1])
    return F.kl_div(F.log_softmax(logits, dim=1), uniform, reduction="batchmean")


class Fanchuan(BaseMethod):
    """Uniform-target pass, then 8 rounds of forget-vs-retain contrast and retain fine-tuning.

    1. One pass over the forget set minimising KL(uniform || softmax(f(x_f)))
       (``uniform_target_loss``; SGD ``uniform_lr``, momentum, no weight decay).
    2. ``epochs`` times: a forget round pairing each forget batch with a batch of a
       fresh shuffled pass over the retain set at ``retain_batch_size`` (the round
       ends with the shorter of the two), loss = mean over the forget-by-retain
       similarity matrix of -log_softmax((logits_f @ logits_r.T) / ``temperature``)
       with the retain logits detached (SGD ``contrast_lr``, cosine to
       ``contrast_min_lr`` over all forget rounds, stepped per batch); then one
       cross-entropy epoch on the retain set at ``retain_batch_size`` (SGD
       ``retain_lr`` x ``retain_batch_size`` / ``reference_batch_size``, weight decay
       ``retain_weight_decay``).

    Both retain loaders are rebuilt from the caller's retain dataset at
    ``retain_batch_size`` (256 in the notebook, so the retain lr is 4e-3); the forget
    set keeps the caller's batches. The project's own choices: the retain logits are
    computed under ``torch.no_grad`` (the same values and BatchNorm updates as the
    notebook's ``.detach()``, without building their graph); one-example batches are
    skipped (BatchNorm cannot normalise them in train mode).
    """

    name = "fanchuan"

    def __init__(
        self,
        *,
        epochs: int = 8,
        uniform_lr: float = 5e-3,
        contrast_lr: float = 3e-4,
        contrast_min_lr: float = 1e-6,
        temperature: float = 1.15,
        retain_lr: float = 1e-3,
        retain_batch_size: int = 256,
        reference_batch_size: int = 64,
        momentum: float = 0.9,
        retain_weight_decay: float = 1e-2,
    ) -> None:
        self.epochs = epochs
        self.uniform_lr = uniform_lr
        self.contrast_lr = contrast_lr
        self.contrast_min_lr = contrast_min_lr
        self.temperature = temperature
        self.retain_lr = retain_lr
        self.retain_batch_size = retain_batch_size
        self.reference_batch_size = reference_batch_size
        self.momentum = momentum
        self.retain_weight_decay = retain_weight_decay

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        retain_round_loader = reshuffled_loader(retain_loader, self.retain_batch_size)
        paired_retain_loader = reshuffled_loader(retain_loader, self.retain_batch_size)
        net.train()
        self.push_forget_to_uniform(net, forget_loader, device)

        contrast_optimizer = optim.SGD(
            net.parameters(), lr=self.contrast_lr, momentum=self.momentum
        )
        contrast_schedule = optim.lr_scheduler.CosineAnnealingLR(
            contrast_optimizer,
            T_max=max(1, self.epochs * len(forget_loader)),
            eta_min=self.contrast_min_lr,
        )
        retain_optimizer = optim.SGD(
            net.parameters(),
            lr=self.retain_lr * self.retain_batch_size / self.reference_batch_size,
            momentum=self.momentum,
            weight_decay=self.retain_weight_decay,
        )
        for _ in range(self.epochs):
            net.train()
            self.contrast_round(
                net, forget_loader, paired_retain_loader, contrast_optimizer, contrast_schedule,
                device,
            )
            self.retain_epoch(net, retain_round_loader, retain_optimizer, device)
        net.eval()

    def push_forget_to_uniform(self, net, forget_loader, device) -> None:
        optimizer = optim.SGD(net.parameters(), lr=self.uniform_lr, momentum=self.momentum)
        for batch in forget_loader:
            inputs, _ = unpack_batch(batch, device)
            if inputs.shape[0] < 2:
                continue
            loss = uniform_target_loss(net(inputs))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def contrast_round(
        self, net, forget_loader, paired_retain_loader, optimizer, schedule, device
    ) -> None:
        for forget_batch, retain_batch in zip(forget_loader, paired_retain_loader):
            forget_inputs, _ = unpack_batch(forget_batch, device)
            retain_inputs, _ = unpack_batch(retain_batch, device)
            if forget_inputs.shape[0] < 2 or retain_inputs.shape[0] < 2:
                schedule.step()
                continue
            logits_forget = net(forget_inputs)
            with torch.no_grad():
                logits_retain = net(retain_inputs)
            similarity = logits_forget @ logits_retain.T / self.temperature
            loss = -F.log_softmax(similarity, dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()

    def retain_epoch(self, net, retain_loader, optimizer, device) -> None:
        for batch in retain_loader:
            inputs, targets = unpack_batch(batch, device)
            if inputs.shape[0] < 2:
                continue
            loss = F.cross_entropy(net(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
