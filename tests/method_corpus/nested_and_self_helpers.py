import math

import torch
import torch.nn.functional as F

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch

WARMUP_FRACTION = 0.25


class NestedAndSelfHelpers(BaseMethod):
    name = "corpus_nested"

    def __init__(self, lr=0.01, epochs=2, schedule=("cosine", 0.1)):
        self.lr = lr
        self.epochs = epochs
        self.schedule = list(schedule)
        self.total_steps = epochs * 3

    def _lr_at(self, step):
        kind, floor = self.schedule
        if step < WARMUP_FRACTION * self.total_steps:
            return self.lr * (step + 1) / (WARMUP_FRACTION * self.total_steps)
        progress = step / max(1, self.total_steps)
        return floor * self.lr + (1 - floor) * self.lr * 0.5 * (1 + math.cos(math.pi * progress))

    def _forget_step(self, net, optimizer, inputs):
        def entropy(logits):
            probs = F.softmax(logits, dim=1)
            return -(probs * probs.clamp_min(1e-12).log()).sum(1).mean()

        loss = -entropy(net(inputs))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def run(self, net, retain_loader, forget_loader, val_loader):
        device = model_device(net)
        optimizer = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=0.9)
        step = 0
        net.train()
        for _ in range(self.epochs):
            for group in optimizer.param_groups:
                group["lr"] = self._lr_at(step)
            for batch in forget_loader:
                inputs, _ = unpack_batch(batch, device)
                self._forget_step(net, optimizer, inputs)
            batches = [unpack_batch(b, device) for b in retain_loader]
            squares = [x.pow(2).mean() for x, _ in batches]
            for inputs, targets in batches[: len(squares)]:
                loss = F.cross_entropy(net(inputs), targets)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            step += 1
        net.eval()
