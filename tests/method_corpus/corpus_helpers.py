"""A second module the corpus methods import from: inlined transitively."""

import torch
import torch.nn.functional as F

SHRINK = 0.5
UNUSED_CONSTANT = "dropped by the builder"


def scaled(value):
    return value * SHRINK


def soft_targets(logits, temperature: float = 2.0):
    return F.softmax(logits / temperature, dim=1)


def unused_helper():
    return torch.zeros(1)


class Momentum:
    """A helper class with its own state, kept whole."""

    def __init__(self, beta):
        self.beta = beta
        self.value = None

    def update(self, x):
        self.value = x if self.value is None else self.beta * self.value + (1 - self.beta) * x
        return self.value
