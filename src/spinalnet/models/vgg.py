"""VGG-5 (the paper's MNIST-family VGG) and VGG-19-bn for CIFAR, with fc or Spinal heads."""

from __future__ import annotations

import torchvision
from torch import nn

from spinalnet.models.base import ZooParts
from spinalnet.models.shapes import feature_width

VGG5_CONFIG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M"]


def vgg_features(config: list, in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for v in config:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(in_channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers, nn.Flatten())


def vgg5(in_channels: int, image_size: tuple[int, int]) -> ZooParts:
    """256 features at 28x28. Spinal: split 128, width 128, 4 layers, dropout 0.5, BN (the paper's).

    The fc head has the same hidden width (4 x 128 = 512):
    Dropout -> Linear(256, 512) -> BN -> ReLU -> Dropout -> Linear(512, C).
    """
    features = vgg_features(VGG5_CONFIG, in_channels)
    width = feature_width(features, in_channels, image_size)
    return ZooParts(features, width, lambda c: nn.Sequential(
        nn.Dropout(0.5), nn.Linear(width, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(512, c)), dict(layer_width=128, num_layers=4, dropout=0.5, batch_norm=True))


FAST_CNN_CONFIG = [32, 32, "M", 64, 64, "M", 128, "M"]


def fast_cnn(in_channels: int, image_size: tuple[int, int]) -> ZooParts:
    """A small VGG-style CNN for quick CPU runs (not from the paper): 1152 features at 28x28.

    fc: Dropout(0.2) -> Linear(F, 256) -> ReLU -> Dropout(0.2) -> Linear(256, C).
    Spinal: split F/2, width 64, 4 layers (the same 256 hidden units), dropout 0.2.
    """
    features = vgg_features(FAST_CNN_CONFIG, in_channels)
    width = feature_width(features, in_channels, image_size)
    return ZooParts(features, width, lambda c: nn.Sequential(
        nn.Dropout(0.2), nn.Linear(width, 256), nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(256, c)),
        dict(layer_width=64, num_layers=4, dropout=0.2))


def vgg19bn(in_channels: int, image_size: tuple[int, int]) -> ZooParts:
    """torchvision's VGG-19-bn convolutions (512 features at 32x32).

    fc: the classic 512-4096-4096 stack; Spinal: split 256, width 512, 4 layers, dropout 0.5, BN.
    """
    convs = torchvision.models.vgg19_bn(weights=None).features
    if in_channels != 3:
        convs[0] = nn.Conv2d(in_channels, 64, 3, padding=1)
    features = nn.Sequential(convs, nn.Flatten())
    width = feature_width(features, in_channels, image_size)
    return ZooParts(features, width, lambda c: nn.Sequential(
        nn.Linear(width, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
        nn.Linear(4096, c)), dict(layer_width=512, num_layers=4, dropout=0.5, batch_norm=True))
