"""A load-free cost: how many examples a method pushes through the model, forward and backward.

Seconds depend on what else the machine runs; example passes do not. A method's
count, divided by one retraining's, says what fraction of a retraining it costs
in the unit the competition's budget was really about (a backward pass costs
about two forwards, hence ``backward_weight``).

Counting hooks the top-level model: a forward pre-hook adds each call's batch
size to ``forward``, and a forward hook registers a gradient hook on the output,
so every backward pass that reaches the output adds that batch's size to
``backward`` (a ``no_grad`` forward adds nothing there). Copies made with
``copy.deepcopy`` inside the method (teachers, snapshots) carry the hooks and
count too; networks built from scratch, or sub-modules called directly
(``model.layer4(x)``), are not seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from local_eval.errors import EvalError
from local_eval.scoring.training import Recipe

BACKWARD_WEIGHT = 2.0


@dataclass
class PassCount:
    """Examples through the model's forward, and through a backward pass from its output."""

    forward: int = 0
    backward: int = 0


@dataclass(frozen=True)
class RelativeCost:
    """A method's passes as fractions of one retraining's; ``combined`` weighs backward x2."""

    forward: float
    backward: float
    combined: float


@contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCount]:
    """Count passes through ``model`` while the block runs; the hooks go when it ends."""
    counted = PassCount()

    def before_forward(module, args, kwargs):
        counted.forward += _batch_size(args, kwargs)

    def after_forward(module, args, kwargs, output):
        size = _batch_size(args, kwargs)
        tensor = _first_grad_tensor(output)
        if tensor is not None:

            def on_backward(grad):
                counted.backward += size

            tensor.register_hook(on_backward)

    handles = [
        model.register_forward_pre_hook(before_forward, with_kwargs=True),
        model.register_forward_hook(after_forward, with_kwargs=True),
    ]
    try:
        yield counted
    finally:
        for handle in handles:
            handle.remove()


def retraining_passes(recipe: Recipe, train_size: int, val_size: int = 0) -> PassCount:
    """One retraining's passes under ``recipe`` on ``train_size`` retain images.

    Every epoch is a forward and a backward of every training image; a
    ``best_val`` checkpoint adds a forward of the ``val_size`` validation images
    after each epoch from ``checkpoint_start`` on, as ``training.train_model`` does.
    """
    if train_size < 1:
        raise EvalError(f"train_size={train_size} must be positive: the retain set's size.")
    forward = backward = recipe.epochs * train_size
    if recipe.checkpoint == "best_val":
        forward += (recipe.epochs - recipe.checkpoint_start) * val_size
    return PassCount(forward=forward, backward=backward)


def relative_passes(
    method: PassCount, retraining: PassCount, backward_weight: float = BACKWARD_WEIGHT
) -> RelativeCost:
    """``method``'s passes over ``retraining``'s: forward, backward and weighted together."""
    if retraining.forward < 1 or retraining.backward < 1:
        raise EvalError(
            f"A retraining with {retraining.forward} forward and {retraining.backward} backward "
            "passes cannot be a unit of cost: compute it with retraining_passes()."
        )
    combined = (method.forward + backward_weight * method.backward) / (
        retraining.forward + backward_weight * retraining.backward
    )
    return RelativeCost(
        forward=method.forward / retraining.forward,
        backward=method.backward / retraining.backward,
        combined=combined,
    )


def _batch_size(args: tuple, kwargs: dict) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 0


def _first_grad_tensor(output) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output if output.requires_grad else None
    if isinstance(output, dict):
        output = tuple(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = _first_grad_tensor(item)
            if found is not None:
                return found
    return None
