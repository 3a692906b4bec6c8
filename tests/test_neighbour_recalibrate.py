"""Specification of neighbour_recalibrate's target: what unseen look-alikes of a forget example get."""

from __future__ import annotations

import torch
from torch import nn

from methods.neighbour_recalibrate import neighbour_targets
from methods.saliency import margin


class FeaturesAreInputs(nn.Module):
    """A network whose penultimate features are its inputs, so neighbours are chosen by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


VAL = torch.tensor([[1.0, 0.1], [0.9, 0.5], [0.0, 1.0], [1.0, 0.0], [0.1, 1.0]])
VAL_LABELS = torch.tensor([0, 0, 0, 1, 1])


def val_margins(net):
    return margin(net(VAL), VAL_LABELS)


def test_a_target_is_the_mean_confidence_of_the_nearest_same_class_validation_images():
    net = FeaturesAreInputs()
    forget = torch.tensor([[1.0, 0.05]])
    targets = neighbour_targets(net, forget, torch.tensor([0]), VAL, VAL_LABELS, neighbours=2)
    # By cosine, class 0's nearest to (1, 0.05) are (1, 0.1) and (0.9, 0.5); (0, 1) is farther.
    assert torch.allclose(targets, val_margins(net)[[0, 1]].mean().reshape(1))


def test_other_classes_are_never_neighbours():
    net = FeaturesAreInputs()
    forget = torch.tensor([[0.0, 1.0]])
    targets = neighbour_targets(net, forget, torch.tensor([1]), VAL, VAL_LABELS, neighbours=1)
    # Class 0's (0, 1) is the same point, yet only class 1's (1, 0) and (0.1, 1) are candidates.
    assert torch.allclose(targets, val_margins(net)[[4]])


def test_a_class_without_validation_images_takes_its_neighbours_from_all_of_them():
    net = FeaturesAreInputs()
    val_labels = torch.tensor([0, 0, 0, 0, 0])
    forget = torch.tensor([[0.0, 1.0]])
    targets = neighbour_targets(net, forget, torch.tensor([1]), VAL, val_labels, neighbours=1)
    assert torch.allclose(targets, margin(net(VAL), val_labels)[[2]])


def test_asking_for_more_neighbours_than_a_class_has_uses_them_all():
    net = FeaturesAreInputs()
    forget = torch.tensor([[1.0, 0.0]])
    targets = neighbour_targets(net, forget, torch.tensor([1]), VAL, VAL_LABELS, neighbours=10)
    assert torch.allclose(targets, val_margins(net)[[3, 4]].mean().reshape(1))


def test_measuring_leaves_the_network_in_the_mode_it_was_in_and_without_hooks():
    net = FeaturesAreInputs().train()
    neighbour_targets(net, VAL[:1], VAL_LABELS[:1], VAL, VAL_LABELS)
    assert net.training and not net.fc._forward_hooks
