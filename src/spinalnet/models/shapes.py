"""Feature widths found by running the backbone once, so every model works at any input size."""

from __future__ import annotations

import torch
from torch import nn

from spinalnet.errors import UsageError


def feature_width(features: nn.Module, in_channels: int, image_size: tuple[int, int]) -> int:
    was_training = features.training
    try:
        with torch.no_grad():
            out = features.eval()(torch.zeros(1, in_channels, *image_size))
    except RuntimeError as err:
        raise UsageError(f"{type(features).__name__} cannot take {in_channels}x{image_size[0]}x{image_size[1]} "
                         f"images ({str(err).splitlines()[0]}); try --image-size") from None
    finally:
        features.train(was_training)
    return out.flatten(1).shape[1]
