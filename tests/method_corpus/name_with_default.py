"""``__init__(self, name="x", lr=0.01)``: the name keyword to the base class, read back in run()."""

import torch
from torch import nn

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch


class NameWithDefault(BaseMethod):
    def __init__(self, name="corpus_named", lr=0.01):
        super().__init__(name=name)
        self.lr = lr
        self.steps = 3

    def run(self, net, retain_loader, forget_loader, val_loader):
        device = model_device(net)
        noise = torch.Generator().manual_seed(len(self.get_name()) + len(self.name))
        optimizer = torch.optim.SGD(net.parameters(), lr=self.lr)
        net.train()
        for step, batch in enumerate(forget_loader):
            if step == self.steps:
                break
            inputs, targets = unpack_batch(batch, device)
            shuffled = targets[torch.randperm(len(targets), generator=noise)]
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(inputs), shuffled).backward()
            optimizer.step()
        net.eval()
