import torch
import torch.nn.functional as F

from methods.base import BaseMethod
from methods.common import model_device, unpack_batch

STEPS = 2


def _loss(net, inputs, targets):
    return F.cross_entropy(net(inputs), targets)


def _step(net, optimizer, batch, device):
    inputs, targets = unpack_batch(batch, device)
    optimizer.zero_grad()
    loss = _loss(net, inputs, targets)
    loss.backward()
    optimizer.step()
    return loss.item()


def _train(net, loader, lr):
    device = model_device(net)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    for _ in range(STEPS):
        for batch in loader:
            _step(net, optimizer, batch, device)


class HelpersCallingHelpers(BaseMethod):
    name = "corpus_helpers_calling_helpers"

    def __init__(self, lr=0.01):
        self.lr = lr

    def run(self, net, retain_loader, forget_loader, val_loader):
        net.train()
        _train(net, retain_loader, self.lr)
        net.eval()
