"""The shape every zoo model shares: a backbone producing a feature vector, then a head."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from torch import Tensor, nn

from spinalnet.layers import SpinalLinear


@dataclass(frozen=True)
class SpinalOptions:
    """Options of a Spinal head; ``None`` fields take the model's paper default."""

    layer_width: int | None = None
    num_layers: int | None = None
    num_splits: int | None = None
    dropout: float | None = None
    batch_norm: bool | None = None
    activation: str | None = None

    def resolve(self, **defaults: Any) -> dict[str, Any]:
        """Merge with a model's defaults: explicit user values win."""
        merged = dict(defaults)
        merged.update({k: v for k, v in self.__dict__.items() if v is not None})
        return merged


def spinal(in_features: int, num_classes: int, options: SpinalOptions, **defaults: Any) -> SpinalLinear:
    return SpinalLinear(in_features, num_classes, **options.resolve(**defaults))


class HeadedNet(nn.Module):
    """``head(features(x))`` with timm-style accessors; ``head_kind`` is "fc" or "spinal"."""

    head_path = "head"

    def __init__(self, features: nn.Module, head: nn.Module, num_features: int, head_kind: str) -> None:
        super().__init__()
        self.features, self.head = features, head
        self.num_features, self.head_kind = num_features, head_kind

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def get_classifier(self) -> nn.Module:
        return self.head
