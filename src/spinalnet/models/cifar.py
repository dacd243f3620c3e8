"""The CIFAR CNN with dropout used by the paper (three conv stages, 4096 features at 32x32)."""

from __future__ import annotations

from torch import nn

from spinalnet.models.base import ZooParts
from spinalnet.models.shapes import feature_width


def cifar_cnn_features(in_channels: int) -> nn.Sequential:
    def stage(cin: int, cout: int, drop: float) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                *([nn.Dropout2d(drop)] if drop else [])]

    return nn.Sequential(*stage(in_channels, 32, 0.0), *stage(32, 128, 0.05), *stage(128, 256, 0.0), nn.Flatten())


def cifar_cnn(in_channels: int, image_size: tuple[int, int]) -> ZooParts:
    """fc: Dropout(0.1) -> 4096-1024-512-C. Spinal: split 2048, width 128 (256 for CIFAR-100 configs), 4 layers."""
    features = cifar_cnn_features(in_channels)
    width = feature_width(features, in_channels, image_size)
    return ZooParts(features, width, lambda c: nn.Sequential(
        nn.Dropout(0.1), nn.Linear(width, 1024), nn.ReLU(inplace=True), nn.Linear(1024, 512), nn.ReLU(inplace=True),
        nn.Dropout(0.1), nn.Linear(512, c)), dict(layer_width=128, num_layers=4, dropout=0.1))
