"""The competition's ResNet-18 and narrower copies of it for quick local runs.

Narrow variants keep every module name and the block structure of torchvision's
ResNet-18 (``conv1``, ``bn1``, ``layer1``..``layer4`` of ``BasicBlock``s with
``downsample``, ``fc``), so methods that reach layers by name, re-initialise
``fc`` or freeze ``layer4`` behave the same; only channel counts shrink. The
stem stays torchvision's 7x7 stride-2 convolution plus max-pool, as on Kaggle.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock, ResNet

from local_eval.errors import EvalError

ARCHITECTURES = ("resnet18", "resnet18_w16", "resnet18_w8", "resnet18_tiny")
_BASE_WIDTHS = {"resnet18_w16": 16, "resnet18_w8": 8, "resnet18_tiny": 4}


def build_model(arch: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised network; seed torch's global RNG first for a reproducible start."""
    if arch == "resnet18":
        return resnet18(weights=None, num_classes=num_classes)
    if arch in _BASE_WIDTHS:
        return NarrowResNet18(_BASE_WIDTHS[arch], num_classes)
    raise EvalError(f"Unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}.")


def model_from_state(arch: str, state: dict[str, torch.Tensor], device: torch.device) -> nn.Module:
    model = build_model(arch)
    model.load_state_dict(state)
    return model.to(device)


class NarrowResNet18(ResNet):
    """torchvision's ResNet-18 with ``base_width`` channels in the stem instead of 64.

    Subclassing ``ResNet`` reuses its ``_make_layer`` and ``forward``, so the
    blocks, downsample branches and weight initialisation are torchvision's own
    and ``isinstance(net, ResNet)`` holds.
    """

    def __init__(self, base_width: int, num_classes: int = 10) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = base_width
        self.dilation = 1
        self.groups = 1
        self.base_width = 64  # BasicBlock's own parameter, which it requires to be 64
        self.conv1 = nn.Conv2d(3, base_width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, base_width, 2)
        self.layer2 = self._make_layer(BasicBlock, base_width * 2, 2, stride=2)
        self.layer3 = self._make_layer(BasicBlock, base_width * 4, 2, stride=2)
        self.layer4 = self._make_layer(BasicBlock, base_width * 8, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(base_width * 8, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
