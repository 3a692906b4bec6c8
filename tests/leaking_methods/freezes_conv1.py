"""Freezes conv1 to fine-tune the rest and never unfreezes it: later calls start frozen."""

import torch
from torch import nn

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


class FreezesConv1(BaseMethod):
    name = "leak_freezes_conv1"

    def __init__(self, lr: float = 0.01):
        self.lr = lr

    def run(self, net, retain_loader, forget_loader, val_loader):
        device = model_device(net)
        for parameter in net.conv1.parameters():
            parameter.requires_grad_(False)
        optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=self.lr)
        net.train()
        for batch in retain_loader:
            inputs, targets = unpack_batch(batch, device)
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(inputs), targets).backward()
            optimizer.step()
            break
        net.eval()
