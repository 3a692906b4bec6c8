"""Fine-tune on the retain set: the competition's reference method.

Cost: one epoch of the retain set.
"""

from __future__ import annotations

import torch
from torch import nn, optim

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch
from methods.search_space import IntRange, LogUniform, Uniform


class Finetune(BaseMethod):
    """One epoch of SGD with a cosine schedule, cross-entropy on the retain set."""

    name = "finetune"
    # What `make tune` tries: a few epochs at most (cost), learning rates around the default's.
    search_space = {
        "epochs": IntRange(1, 3),
        "lr": LogUniform(1e-4, 1e-1),
        "momentum": Uniform(0.0, 0.95),
        "weight_decay": LogUniform(1e-5, 1e-2),
    }

    def __init__(
        self,
        epochs: int = 1,
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        criterion = nn.CrossEntropyLoss()
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        net.train()
        for _ in range(self.epochs):
            for batch in retain_loader:
                inputs, targets = unpack_batch(batch, device)
                optimizer.zero_grad()
                loss = criterion(net(inputs), targets)
                loss.backward()
                optimizer.step()
            scheduler.step()
        net.eval()


class MyMethod(Finetune):
    """The starter kit's placeholder name, kept so its commands keep working."""

    name = "my_method"
