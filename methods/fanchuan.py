"""Fanchuan: push forget predictions to uniform, then contrast them against retain outputs.

A top solution of the NeurIPS 2023 Machine Unlearning challenge (team "Fanchuan"), as
described in Triantafillou et al., "Are we making progress in unlearning?" (2024).

Cost: about 8.4 retain epochs (8 cross-entropy epochs on the retain set, plus one
uniform pass and eight contrastive rounds over the forget set, each round also
running the network forward on as many retain examples; the forget set is about 2 %
of the data).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import optim

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


def cycle_batches(loader):
    """Batches of ``loader`` forever, reshuffled on each pass, none cached in memory."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            return


def loader_batch_size(loader) -> int:
    """The loader's batch size: the retain learning rate is scaled by it."""
    size = getattr(loader, "batch_size", None)
    if isinstance(size, int) and size > 0:
        return size
    for batch in loader:
        inputs, _ = unpack_batch(batch, torch.device("cpu"))
        return int(inputs.shape[0])
    return 1


class Fanchuan(BaseMethod):
    """Uniform-target pass, then 8 rounds of forget-vs-retain contrast and retain fine-tuning.

    1. One pass over the forget set minimising KL(softmax(f(x_f)) || uniform), which
       equals log(K) minus the prediction entropy (SGD ``uniform_lr``, momentum).
    2. ``epochs`` times: a forget round pairing each forget batch with a random retain
       batch (an iterator cycling over the shuffled retain loader), loss = mean over
       the forget-by-retain similarity matrix of -log_softmax((logits_f @ logits_r.T) /
       ``temperature``) with the retain logits detached (SGD ``contrast_lr``, cosine to
       ``contrast_min_lr`` over all forget rounds); then one cross-entropy epoch on the
       retain set (SGD ``retain_lr`` x batch size / ``reference_batch_size``, weight
       decay ``retain_weight_decay``).

    The team's notebook was not available offline, so this follows the published
    description and the project's specification; where they are silent: the retain
    logits are computed in train mode under ``torch.no_grad`` (BatchNorm statistics
    still update, as with ``.detach()``); the three phases use separate SGD optimisers
    so momentum does not leak between objectives; one-example batches are skipped
    in train mode (BatchNorm cannot normalise them).
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
        self.reference_batch_size = reference_batch_size
        self.momentum = momentum
        self.retain_weight_decay = retain_weight_decay

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
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
        batch_scale = loader_batch_size(retain_loader) / self.reference_batch_size
        retain_optimizer = optim.SGD(
            net.parameters(),
            lr=self.retain_lr * batch_scale,
            momentum=self.momentum,
            weight_decay=self.retain_weight_decay,
        )
        retain_batches = cycle_batches(retain_loader)
        for _ in range(self.epochs):
            net.train()
            self.contrast_round(
                net, forget_loader, retain_batches, contrast_optimizer, contrast_schedule, device
            )
            self.retain_epoch(net, retain_loader, retain_optimizer, device)
        net.eval()

    def push_forget_to_uniform(self, net, forget_loader, device) -> None:
        optimizer = optim.SGD(net.parameters(), lr=self.uniform_lr, momentum=self.momentum)
        for batch in forget_loader:
            inputs, _ = unpack_batch(batch, device)
            if inputs.shape[0] < 2:
                continue
            log_probs = F.log_softmax(net(inputs), dim=1)
            # KL(p || uniform) = sum p log p + log K: maximises prediction entropy.
            loss = (log_probs.exp() * log_probs).sum(dim=1).mean() + math.log(log_probs.shape[1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def contrast_round(
        self, net, forget_loader, retain_batches, optimizer, schedule, device
    ) -> None:
        for batch in forget_loader:
            forget_inputs, _ = unpack_batch(batch, device)
            retain_inputs, _ = unpack_batch(next(retain_batches), device)
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
