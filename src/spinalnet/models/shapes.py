"""Feature widths found by running the backbone once, so every model works at any input size."""

from __future__ import annotations

import torch
from torch import nn

from spinalnet.errors import UsageError


def feature_width(features: nn.Module, in_channels: int, image_size: tuple[int, int]) -> int:
    was_training = features.training
    try:
        out = _probe(features, in_channels, image_size)
    except RuntimeError as err:
        fits = _smallest_fitting(features, in_channels, max(image_size))
        hint = f"--image-size {fits} is the smallest of the usual sizes it takes" if fits else "try a larger --image-size"
        raise UsageError(f"{type(features).__name__} cannot take {in_channels}x{image_size[0]}x{image_size[1]} "
                         f"images ({str(err).splitlines()[0]}); {hint}") from None
    finally:
        features.train(was_training)
    return out.flatten(1).shape[1]


#: Sides tried for the hint of a too-small image, smallest first.
USUAL_SIZES = (16, 28, 32, 64, 96, 128, 224)


def _probe(features: nn.Module, in_channels: int, image_size: tuple[int, int]) -> torch.Tensor:
    with torch.no_grad():
        return features.eval()(torch.zeros(1, in_channels, *image_size))


def _smallest_fitting(features: nn.Module, in_channels: int, side: int) -> int | None:
    for size in (s for s in USUAL_SIZES if s > side):
        try:
            _probe(features, in_channels, (size, size))
            return size
        except RuntimeError:
            continue
    return None
