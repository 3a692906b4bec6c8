"""Registers a forward hook on every call and never removes it: calls pile up hooks."""

import torch

from methods.base import BaseMethod


def _scale_logits(module, inputs, output):
    return output * 0.9


class HookEveryCall(BaseMethod):
    name = "leak_hook_every_call"

    def run(self, net, retain_loader, forget_loader, val_loader):
        net.fc.register_forward_hook(_scale_logits)
        with torch.no_grad():
            net.fc.bias.add_(0.1)
        net.eval()
