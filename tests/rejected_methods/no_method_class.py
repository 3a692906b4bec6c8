import torch


def unlearning(net, retain_loader, forget_loader, val_loader):
    net.eval()


HELPER = torch.zeros(1)
