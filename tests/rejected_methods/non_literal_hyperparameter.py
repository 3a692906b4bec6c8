import torch

from methods.base import BaseMethod


class NonLiteral(BaseMethod):
    name = "non_literal"

    def __init__(self):
        self.mask = torch.ones(3)

    def run(self, net, retain_loader, forget_loader, val_loader):
        print(self.mask)
        net.eval()
