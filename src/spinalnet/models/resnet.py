"""CIFAR ResNet-18/34 (3x3 stem, no max-pool) with the paper's position-wise Spinal head.

Both heads read the same pooled features, as in the authors' scripts
(dipuk0506/SpinalNet, CIFAR-10/ResNet_default_and_SpinalFC_CIFAR10.py and
CIFAR-100/ResNet_Default_and_SpinalFC_CIFAR100.py): the Spinal model max-pools the final 4x4 map to
2x2 (``SpinalResNet.__init__``: ``self.maxpool2 = nn.MaxPool2d(kernel_size=2, stride=2)``, about line 143
of the CIFAR-10 script, one line later in the CIFAR-100 one) and feeds positions (0,0), (0,1), (1,0), (1,1)
to its four hidden layers (``SpinalResNet.forward``); the plain model max-pools the whole 4x4 map
(``ResNet.__init__``: ``self.maxpool = nn.MaxPool2d(kernel_size=4, stride=1)``) into ``Linear(256, C)``.
A global max is the max over the four 2x2 maxima, so here the backbone ends with the shared 2x2
max-pool and the fc head takes the max over its four positions: neither head sees features the
other does not. (The authors' backbone is narrower, 32-64-128-256 channels; the paper configs declare it.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

from spinalnet.models.base import ZooParts


class CifarResNetFeatures(nn.Module):
    """The residual stages of a torchvision ResNet with a CIFAR stem; returns the last feature map."""

    def __init__(self, blocks: list[int], in_channels: int) -> None:
        super().__init__()
        net = ResNet(BasicBlock, blocks)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.layer1, net.layer2, net.layer3, net.layer4)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class PositionPool(nn.Module):
    """Max-pool the 512-channel map to 2x2 and lay it out position-major: 4 chunks of 512."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.adaptive_max_pool2d(x, 2).permute(0, 2, 3, 1).flatten(1)


class PositionMax(nn.Module):
    """Max over the positions of :class:`PositionPool`'s output: the global max-pool of the feature map."""

    def __init__(self, positions: int = 4) -> None:
        super().__init__()
        self.positions = positions

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(1, (self.positions, -1)).amax(1)


def _cifar_resnet(blocks: list[int], width_default: int):
    def build(in_channels: int, image_size: tuple[int, int]) -> ZooParts:
        # the shared pooled features, 4 positions x 512 channels, are the backbone's output; each of the 4
        # spatial positions feeds one hidden layer of the Spinal head
        features = nn.Sequential(CifarResNetFeatures(blocks, in_channels), PositionPool())
        return ZooParts(features, 4 * 512, lambda c: nn.Sequential(PositionMax(4), nn.Linear(512, c)),
                        dict(layer_width=width_default, num_layers=4, num_splits=4))

    build.__doc__ = (f"CIFAR ResNet {blocks}, features max-pooled to 2x2 for every head. fc: max over the 4 "
                     f"positions (the global max-pool) -> Linear(512, C). Spinal: one position per hidden "
                     f"layer, width {width_default}, 4 layers.")
    return build


resnet18_cifar = _cifar_resnet([2, 2, 2, 2], 256)
resnet34_cifar = _cifar_resnet([3, 4, 6, 3], 512)
