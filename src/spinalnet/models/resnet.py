"""CIFAR ResNet-18/34 (3x3 stem, no max-pool) with the paper's position-wise Spinal head."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, ResNet

from spinalnet.models.base import HeadedNet, SpinalOptions, spinal


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


def _cifar_resnet(blocks: list[int], width_default: int):
    def build(num_classes: int, in_channels: int, image_size: tuple[int, int], head: str,
              spinal_options: SpinalOptions) -> HeadedNet:
        features = CifarResNetFeatures(blocks, in_channels)
        if head == "fc":
            top = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))
        else:  # each of the 4 spatial positions feeds one hidden layer
            top = nn.Sequential(PositionPool(), spinal(4 * 512, num_classes, spinal_options,
                                                       layer_width=width_default, num_layers=4, num_splits=4))
        return HeadedNet(features, top, 512, head)

    build.__doc__ = (f"CIFAR ResNet {blocks}. fc: global average pool -> Linear(512, C). Spinal: max-pool to "
                     f"2x2, one position per hidden layer, width {width_default}, 4 layers.")
    return build


resnet18_cifar = _cifar_resnet([2, 2, 2, 2], 256)
resnet34_cifar = _cifar_resnet([3, 4, 6, 3], 512)
