import functools
from typing import Optional

import torch
from torch import nn

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    return wrapper


@torch.no_grad()
def _perturb(net: nn.Module, scale: float) -> None:
    for param in net.parameters():
        param.add_(torch.randn_like(param) * scale)


class DecoratorsAndSignatures(BaseMethod):
    name = "corpus_decorators"

    def __init__(
        self,
        noise: float = 0.01,
        lr: float = 0.01,
        epochs: int = 1,
    ) -> None:
        self.noise = noise
        self.lr = lr
        self.epochs = epochs

    @staticmethod
    def _criterion() -> nn.Module:
        return nn.CrossEntropyLoss()

    @logged
    def _epoch(
        self,
        net: nn.Module,
        loader,
        optimizer: torch.optim.Optimizer,
        clip: Optional[float] = None,
    ) -> float:
        device = model_device(net)
        total = 0.0
        criterion = self._criterion()
        for batch in loader:
            inputs, targets = unpack_batch(batch, device)
            optimizer.zero_grad()
            loss = criterion(net(inputs), targets)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(net.parameters(), clip)
            optimizer.step()
            total += loss.item()
        return total

    def run(
        self,
        net: nn.Module,
        retain_loader,
        forget_loader,
        val_loader,
    ) -> None:
        _perturb(net, self.noise)
        optimizer = torch.optim.SGD(net.parameters(), lr=self.lr)
        net.train()
        for _ in range(self.epochs):
            self._epoch(net, retain_loader, optimizer, clip=1.0)
        net.eval()
