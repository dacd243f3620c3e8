"""The shape every zoo model shares: a backbone producing a feature vector, then a head."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from torch import Tensor, nn

from spinalnet.layers.spinal_linear import SpinalLinear


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


@dataclass
class ZooParts:
    """A zoo model before its head: the backbone, its feature width, its own (fc) head for any class count,
    and its paper setting of the Spinal head (``spinal_head`` builds one that is not a single SpinalLinear)."""

    features: nn.Module
    width: int
    own_head: Callable[[int], nn.Module]
    spinal_defaults: dict[str, Any] = field(default_factory=dict)
    spinal_head: Callable[[int, dict[str, Any]], nn.Module] | None = None


def classifier_spec(classifier: nn.Module) -> tuple[str, int, dict[str, Any]]:
    """What :func:`build_classifier` needs to build a classifier like ``classifier`` for any class count."""
    if isinstance(classifier, SpinalLinear):
        return "spinal", classifier.in_features, classifier.options()
    if isinstance(classifier, nn.Linear):
        return "linear", classifier.in_features, {"bias": classifier.bias is not None}
    raise TypeError(f"a head must end in a Linear or a SpinalLinear, not a {type(classifier).__name__}")


def build_classifier(spec: tuple[str, int, dict[str, Any]], num_classes: int) -> nn.Module:
    """A fresh classifier from :func:`classifier_spec` with ``num_classes`` outputs (0: ``nn.Identity``, as timm)."""
    kind, in_features, options = spec
    if num_classes == 0:
        return nn.Identity()
    if kind == "spinal":
        return SpinalLinear(in_features, num_classes, **options)
    return nn.Linear(in_features, num_classes, **options)


class HeadedNet(nn.Module):
    """``head(features(x))`` with timm's head protocol; ``head_kind`` is the arm's name ("fc", "spinal", ...).

    The head is a single classifier module or an ``nn.Sequential`` whose *last* module is the
    classifier (what comes before it: pooling, flatten, hidden layers of an fc head). As in timm:
    ``forward_features(x)`` is the backbone's output, ``forward_head(x, pre_logits=True)`` the
    classifier's input (``head_hidden_size`` wide), ``get_classifier()`` the classifier and
    ``reset_classifier(n)`` a fresh one of the same kind and options with ``n`` outputs.
    ``num_features`` is the width of the backbone's feature vector.
    """

    head_path = "head"

    def __init__(self, features: nn.Module, head: nn.Module, num_features: int, head_kind: str) -> None:
        super().__init__()
        self.features, self.head = features, head
        self.num_features, self.head_kind = num_features, head_kind
        classifier = self.get_classifier()
        self.num_classes, self.head_hidden_size = classifier.out_features, classifier.in_features
        self._classifier_spec = classifier_spec(classifier)  # still known after reset_classifier(0)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if not pre_logits:
            return self.head(x)
        if isinstance(self.head, nn.Sequential):
            for module in list(self.head)[:-1]:
                x = module(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def get_classifier(self) -> nn.Module:
        return self.head[-1] if isinstance(self.head, nn.Sequential) else self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of the same kind with ``num_classes`` outputs."""
        param = next(self.features.parameters())
        new = build_classifier(self._classifier_spec, num_classes).to(device=param.device, dtype=param.dtype)
        if isinstance(self.head, nn.Sequential):
            self.head[-1] = new
        else:
            self.head = new
        self.num_classes = num_classes
