import torch

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch

from .corpus_helpers import scaled as shrink

LR = 0.5  # a module constant that collides with the hyperparameter's constant name


def step(net, batch, lr):
    device = model_device(net)
    inputs, targets = unpack_batch(batch, device)
    net.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(inputs), targets)
    loss.backward()
    with torch.no_grad():
        for param in net.parameters():
            if param.grad is not None:
                param.sub_(shrink(lr) * LR * param.grad)


class NameCollisions(BaseMethod):
    name = "corpus_collisions"

    def __init__(self, lr=0.02):
        self.lr = lr

    def step(self, net, batch):
        # the method `step` and the module function `step` must both survive
        step(net, batch, self.lr)

    def run(self, net, retain_loader, forget_loader, val_loader):
        net.train()
        for batch in retain_loader:
            self.step(net, batch)
        net.eval()
