"""torchvision (``tv:NAME``) and timm (``timm:NAME``) backbones with their own or a Spinal head."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from spinalnet.errors import UsageError, unknown_name
from spinalnet.heads.spinalize import find_classifier, replace_classifier, spinalize
from spinalnet.models.base import SpinalOptions
from spinalnet.models.pretrained import ORIGINAL_WEIGHTS, load_torchvision_file, timm_with_file


def _fc_head(model: nn.Module, num_classes: int) -> None:
    """Keep the model's own classifier and resize only its last Linear to ``num_classes``."""
    site = find_classifier(model)
    if site.drop_after:
        last = [n for n, m in site.parent.named_children() if isinstance(m, nn.Linear)][-1]
        old = getattr(site.parent, last)
        setattr(site.parent, last, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    else:
        replace_classifier(model, lambda f: nn.Linear(f, num_classes))


def _head_path(model: nn.Module) -> str:
    return find_classifier(model).path.split(".")[0]


def torchvision_model(name: str, num_classes: int, head: str, spinal_options: SpinalOptions,
                      pretrained: str | None) -> nn.Module:
    import torchvision

    if name not in torchvision.models.list_models():
        raise unknown_name("torchvision model", name, torchvision.models.list_models(torchvision.models))
    weights = "DEFAULT" if pretrained == ORIGINAL_WEIGHTS else None
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise UsageError(f"cannot download pretrained weights for tv:{name} ({err}); "
                         "pass --pretrained PATH to a local weights file") from None
    if pretrained not in (None, ORIGINAL_WEIGHTS):
        load_torchvision_file(model, Path(pretrained), f"tv:{name}")
    head_path = _head_path(model)
    if head == "fc":
        _fc_head(model, num_classes)
    else:
        spinalize(model, num_classes, **spinal_options.resolve(layer_width=128))
    model.head_path = head_path
    return model


def timm_model(name: str, num_classes: int, head: str, spinal_options: SpinalOptions,
               pretrained: str | None) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise UsageError("timm models need timm: pip install 'spinalnet[timm]'") from None
    if not timm.is_model(name):
        raise unknown_name("timm model", name, timm.list_models())
    try:
        if pretrained not in (None, ORIGINAL_WEIGHTS):
            model = timm_with_file(name, Path(pretrained), num_classes=num_classes)
        else:
            model = timm.create_model(name, pretrained=pretrained is not None, num_classes=num_classes)
    except (OSError, RuntimeError) as err:
        raise UsageError(f"cannot load pretrained weights for timm:{name} ({str(err).splitlines()[0]}); "
                         "pass --pretrained PATH to a local weights file") from None
    if head == "spinal":
        spinalize(model, num_classes, **spinal_options.resolve(layer_width=128))
    path = next(p for p, m in model.named_modules() if m is model.get_classifier())
    model.head_path = path
    return model
