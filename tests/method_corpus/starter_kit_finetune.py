"""The starter kit's fine-tuning method in its own form: name in the constructor, a DEVICE global.

Rewritten only where the kit's rules differ from the notebook's: no ``phase``
argument, the model changed in place, nothing returned.
"""

import torch
from torch import nn, optim

from methods.base import BaseMethod

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


class StarterKitFinetune(BaseMethod):
    def __init__(self, name, epochs=1, lr=0.001, momentum=0.9, weight_decay=5e-4):
        super().__init__(name)
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay

    def run(self, net, retain_loader, forget_loader, val_loader):
        criterion = nn.CrossEntropyLoss()
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs)
        net.to(DEVICE)
        net.train()
        for _ in range(self.epochs):
            for sample in retain_loader:
                inputs = sample["image"].to(DEVICE)
                targets = sample["age_group"].to(DEVICE)
                optimizer.zero_grad()
                loss = criterion(net(inputs), targets)
                loss.backward()
                optimizer.step()
            scheduler.step()
        net.eval()
