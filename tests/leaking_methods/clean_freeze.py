"""Freezes conv1 for its own training and restores the flag: nothing left behind."""

import torch
from torch import nn

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


class CleanFreeze(BaseMethod):
    name = "clean_freeze"

    def __init__(self, lr: float = 0.01):
        self.lr = lr

    def run(self, net, retain_loader, forget_loader, val_loader):
        device = model_device(net)
        frozen = list(net.conv1.parameters())
        for parameter in frozen:
            parameter.requires_grad_(False)
        handle = net.fc.register_forward_hook(_identity)
        optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=self.lr)
        net.train()
        for batch in retain_loader:
            inputs, targets = unpack_batch(batch, device)
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(inputs), targets).backward()
            optimizer.step()
            break
        handle.remove()
        for parameter in frozen:
            parameter.requires_grad_(True)
        net.eval()


def _identity(module, inputs, output):
    return output
