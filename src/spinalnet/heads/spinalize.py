"""Put a Spinal head on an existing torchvision or timm classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from spinalnet.layers.spinal_linear import SpinalLinear

#: Attributes that hold the classifier of torchvision models, in the order they are tried.
CLASSIFIER_ATTRIBUTES = ("fc", "classifier", "heads", "head")
DEFAULT_LAYER_WIDTH = 128


@dataclass
class ClassifierSite:
    """Where a model's classifier lives, as :func:`find_classifier` found it.

    ``path``: its attribute path in the model (``"fc"``, ``"classifier.1"``, ``"head.fc"``); ``parent`` and
    ``name``: ``getattr(parent, name)`` is the classifier, and is what a new head replaces; ``in_features``: the
    width the classifier reads (a new head's input); ``drop_after``: the later entries of a Sequential head
    (VGG's, AlexNet's hidden layers), removed with it.
    """

    parent: nn.Module
    name: str
    in_features: int
    path: str
    drop_after: tuple[str, ...] = ()

    def __repr__(self) -> str:  # the parent is often the whole model: its type is enough
        after = f", drop_after={self.drop_after}" if self.drop_after else ""
        return (f"ClassifierSite(path={self.path!r}, in_features={self.in_features}, "
                f"parent={type(self.parent).__name__}, name={self.name!r}{after})")


# A classifier is a Linear, or a SpinalLinear that an earlier spinalize put there (spinalize again replaces it).
_CLASSIFIERS = (nn.Linear, SpinalLinear)


def _first_linear_in(seq: nn.Sequential) -> tuple[str, nn.Linear | SpinalLinear] | None:
    for name, module in seq.named_children():
        if isinstance(module, _CLASSIFIERS):
            return name, module
    return None


def _is_timm(model: nn.Module) -> bool:
    return callable(getattr(model, "get_classifier", None)) and callable(getattr(model, "reset_classifier", None))


def _timm_site(model: nn.Module) -> ClassifierSite:
    head = model.get_classifier()
    if isinstance(head, _CLASSIFIERS):
        in_features = head.in_features
    elif hasattr(model, "num_features"):
        in_features = int(getattr(model, "head_hidden_size", model.num_features))
    else:
        raise ValueError(f"spinalize: cannot tell the input width of {type(model).__name__}'s classifier")
    for path, module in model.named_modules():
        if module is head and path:
            parent_path, _, name = path.rpartition(".")
            return ClassifierSite(model.get_submodule(parent_path), name, in_features, path)
    raise ValueError(f"spinalize: get_classifier() of {type(model).__name__} is not a submodule of it")


def find_classifier(model: nn.Module) -> ClassifierSite:
    """Locate the classifier: timm's ``get_classifier()``, else the first of :data:`CLASSIFIER_ATTRIBUTES`.

    A Linear is replaced alone. In a Sequential head, what comes before the first Linear
    (pooling, norm, flatten, dropout) is kept, and the first Linear *and everything after it*
    is replaced: for VGG and AlexNet that is the whole fully connected stack, as in the paper.
    """
    if _is_timm(model):
        return _timm_site(model)
    for attr in CLASSIFIER_ATTRIBUTES:
        module = getattr(model, attr, None)
        if isinstance(module, _CLASSIFIERS):
            return ClassifierSite(model, attr, module.in_features, attr)
        if isinstance(module, nn.Sequential) and (found := _first_linear_in(module)):
            name, linear = found
            names = [n for n, _ in module.named_children()]
            after = tuple(names[names.index(name) + 1 :])
            return ClassifierSite(module, name, linear.in_features, f"{attr}.{name}", after)
    looked = ", ".join(f".{a}" for a in CLASSIFIER_ATTRIBUTES)
    raise ValueError(
        f"spinalize: cannot find the classifier of {type(model).__name__}: looked for timm's "
        f"get_classifier() and for {looked} as an nn.Linear (or a SpinalLinear) or an nn.Sequential containing one"
    )


def replace_classifier(model: nn.Module, make_head: Callable[[int], nn.Module]) -> nn.Module:
    """Replace the classifier found by :func:`find_classifier` with ``make_head(in_features)``."""
    site = find_classifier(model)
    head = make_head(site.in_features)
    for name in site.drop_after:
        delattr(site.parent, name)
    setattr(site.parent, site.name, head)  # an existing name keeps its place in a Sequential
    return model


def spinalize(
    model: nn.Module,
    num_classes: int,
    *,
    freeze_backbone: bool = False,
    layer_width: int = DEFAULT_LAYER_WIDTH,
    **spinal_kwargs: Any,
) -> nn.Module:
    """Replace the classifier of a torchvision or timm model with a :class:`SpinalLinear`.

    Args:
        model: a torchvision classification model or any timm model.
        num_classes: output width of the new head.
        freeze_backbone: ``True`` trains only the new head (classic transfer learning);
            ``False`` (default) trains everything, the paper's "transferred initialization".
        layer_width: hidden width of the Spinal head.
        **spinal_kwargs: further :class:`SpinalLinear` options (``num_layers``, ``dropout``, ...).

    Returns the same model, modified in place. Auxiliary classifiers (GoogLeNet, Inception v3)
    are left alone. With ``freeze_backbone`` the backbone's BatchNorm2d layers become frozen batch norms
    (timm's ``freeze_batch_norm_2d`` for timm models, torchvision's ``FrozenBatchNorm2d`` otherwise), so
    their statistics stay fixed under ``model.train()``; dropout and stochastic depth inside the backbone
    still act in train mode (``model.eval()`` on the backbone turns them off, as the ``spinalnet`` command does).
    """
    head_box: list[nn.Module] = []

    def make(in_features: int) -> nn.Module:
        head_box.append(SpinalLinear(in_features, num_classes, layer_width=layer_width, **spinal_kwargs))
        return head_box[0]

    replace_classifier(model, make)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    if freeze_backbone:
        freeze_batch_norms(model, keep=head_box[0])
        model.requires_grad_(False)
        head_box[0].requires_grad_(True)
    return model


def freeze_batch_norms(model: nn.Module, keep: nn.Module | None = None) -> None:
    """Every BatchNorm2d of ``model`` (but those inside ``keep``) as a frozen batch norm: the same function with
    its statistics and affine parameters fixed, whatever the mode. The library's own converter does it."""
    if _is_timm(model):
        from timm.layers import freeze_batch_norm_2d

        for name, child in list(model.named_children()):
            if child is not keep:
                setattr(model, name, freeze_batch_norm_2d(child))
        return
    from torchvision.ops.misc import FrozenBatchNorm2d

    inside = {id(m) for m in keep.modules()} if keep is not None else set()
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.BatchNorm2d and child.track_running_stats and id(child) not in inside:
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                with torch.no_grad():
                    if child.affine:
                        frozen.weight.copy_(child.weight)
                        frozen.bias.copy_(child.bias)
                    frozen.running_mean.copy_(child.running_mean)
                    frozen.running_var.copy_(child.running_var)
                setattr(module, child_name, frozen)
