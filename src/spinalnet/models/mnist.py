"""The paper's MNIST-family models: the PyTorch MNIST example CNN ("default-cnn") and "Arch2"."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spinalnet.layers.spinal_linear import SpinalLinear
from spinalnet.models.base import ZooParts
from spinalnet.models.shapes import feature_width


class DefaultCNNFeatures(nn.Sequential):
    """conv(10, 5x5) -> pool -> relu -> conv(20, 5x5) -> dropout2d -> pool -> relu -> flatten (320 at 28x28)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 20, 5), nn.Dropout2d(), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
        )


def default_cnn(in_channels: int, image_size: tuple[int, int]) -> ZooParts:
    """fc head: Linear(F, 50) -> relu -> dropout -> Linear(50, C). Spinal: split F/2, width 8, 6 layers."""
    features = DefaultCNNFeatures(in_channels)
    width = feature_width(features, in_channels, image_size)
    return ZooParts(features, width,
                    lambda c: nn.Sequential(nn.Linear(width, 50), nn.ReLU(), nn.Dropout(0.5), nn.Linear(50, c)),
                    dict(layer_width=8, num_layers=6))


class Arch2Features(nn.Module):
    """The default CNN's convolutions, exposing conv2 output, conv1 output and raw pixels, concatenated."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 10, 5), nn.MaxPool2d(2), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(10, 20, 5), nn.Dropout2d(), nn.MaxPool2d(2), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        c1 = self.conv1(x)
        c2 = self.conv2(c1)
        return torch.cat([c2.flatten(1), c1.flatten(1), x.flatten(1)], 1)


class SpinalBranches(nn.Module):
    """Several Spinal branches over consecutive segments of the input, their outputs summed.

    Followed by ReLU, that equals a Linear over the concatenated hidden outputs of all branches
    (the paper's ``fc 26w -> 50``), since a Linear over a concatenation is a sum of Linears.
    """

    def __init__(self, segments: list[int], layers: list[int], hidden: int, options: dict) -> None:
        super().__init__()
        self.segments = segments
        self.branches = nn.ModuleList(
            SpinalLinear(seg, hidden, **{**options, "num_layers": n}) for seg, n in zip(segments, layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        parts = torch.split(x, self.segments, dim=1)
        return sum(branch(part) for branch, part in zip(self.branches, parts))


def arch2(in_channels: int, image_size: tuple[int, int], layer_width: int | None = None) -> ZooParts:
    """Spinal branches over conv2 (8 layers), conv1 (8 layers), pixels (10 layers), width w (default 50).

    The fc head reads the same concatenated features: Linear(F, 26w) -> relu -> Linear(26w, 50) -> ...
    (w: ``layer_width``, the run's --layer-width). The branches' ``num_layers`` are the paper's 8, 8 and 10.
    """
    features = Arch2Features(in_channels)
    c1 = feature_width(features.conv1, in_channels, image_size)
    c2 = feature_width(nn.Sequential(features.conv1, features.conv2), in_channels, image_size)
    segments = [c2, c1, in_channels * image_size[0] * image_size[1]]
    width = sum(segments)
    w = layer_width or 50

    def fc(c: int) -> nn.Module:
        return nn.Sequential(nn.Linear(width, 26 * w), nn.ReLU(), nn.Linear(26 * w, 50), nn.ReLU(),
                             nn.Dropout(0.5), nn.Linear(50, c))

    def spinal(c: int, options: dict) -> nn.Module:
        return nn.Sequential(SpinalBranches(segments, [8, 8, 10], 50, options), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(50, c))

    return ZooParts(features, width, fc, dict(layer_width=w, num_layers=8), spinal)
