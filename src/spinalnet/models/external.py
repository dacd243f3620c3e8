"""torchvision (``tv:NAME``) and timm (``timm:NAME``) backbones with any arm's head.

The ``fc`` arm keeps the model's own classifier: torchvision's with its last Linear sized for the classes,
timm's as ``create_model(num_classes=C)`` makes it, with the dropout the library applies before it (timm's
``drop_rate``; the Dropout at the start of a torchvision ``classifier``). Every other arm replaces the classifier
(the whole fully connected stack, as :func:`~spinalnet.heads.spinalize.find_classifier` finds it) and turns
that model dropout off: its own options say where it has dropout. Newly created head layers are initialised
by the one rule of :mod:`spinalnet.heads.arms`; layers loaded from pretrained weights keep them.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path

from torch import nn

from spinalnet.errors import UsageError
from spinalnet.heads.arms import (INIT_RULE, HeadContext, build, describe_head, input_dropout, reinitialise, resolve,
                                  seeded, set_dropout)
from spinalnet.heads.spec import ArmSpec
from spinalnet.heads.spinalize import ClassifierSite, find_classifier, replace_classifier
from spinalnet.models.base import SpinalOptions
from spinalnet.models.names import check_external_name, import_timm
from spinalnet.models.pretrained import ORIGINAL_WEIGHTS, load_torchvision_file, timm_with_file

#: A tv: or timm: model's Spinal head unless the run says otherwise (README, Models).
SPINAL_DEFAULTS = {"layer_width": 128, "num_layers": 4}


def external_model(model: str, num_classes: int, spec: ArmSpec, options: SpinalOptions, pretrained: str | None,
                   reference: ArmSpec | None, head_seed: int | None) -> nn.Module:
    parsed = check_external_name(model)
    timm_model = parsed.library == "timm"
    net, kept = (_timm if timm_model else _torchvision)(parsed.name, num_classes, pretrained)
    site = find_classifier(net)
    head_path = site.path if timm_model else site.path.split(".")[0]
    own = net.get_submodule(head_path)
    # the head as the library made it, kept by reference: a replaced classifier inside it stays reachable here
    original = nn.Sequential(OrderedDict(own.named_children())) if isinstance(own, nn.Sequential) else own
    timm_drop = float(getattr(net, "drop_rate", 0.0) or 0.0) if timm_model else 0.0
    context = HeadContext(site.in_features, num_classes, options.resolve(**SPINAL_DEFAULTS),
                          lambda: _fresh_copy(original, kept),
                          own_head_params=sum(p.numel() for p in own.parameters()), own_input_dropout=timm_drop)
    resolved = resolve(spec, context, reference)
    if spec.kind == "fc":  # the model's own head, in place: what a copy of it would get, without the copy
        with seeded(head_seed):
            reinitialise(own, kept)
        if resolved.get("dropout") is not None:
            set_dropout(own, resolved.get("dropout"))
        if timm_model:
            net.drop_rate = input_dropout(resolved, context)
    else:
        with seeded(head_seed):
            head = build(resolved, context)
        for name in _leading_dropouts(site):  # new modules: the library's own stay as they were in ``original``
            setattr(site.parent, name, nn.Dropout(0.0))
        replace_classifier(net, lambda width: head)
        if timm_model and hasattr(net, "drop_rate"):
            net.drop_rate = 0.0
    net.head_path, net.head_arm, net.head_context = head_path, resolved, context
    #: dropout the model applies to the head's input before calling it (timm's drop_rate), 0 otherwise
    net.head_input_dropout = input_dropout(resolved, context)
    fresh = spec.kind != "fc" or not (kept & {id(m) for m in own.modules()})
    net.head_info = {**describe_head(net.get_submodule(head_path), net.head_input_dropout),
                     "init": INIT_RULE if fresh else f"pretrained layers kept, new layers {INIT_RULE}"}
    return net


def _fresh_copy(module: nn.Module, kept: frozenset[int]) -> nn.Module:
    """A copy of the model's own head, initialised anew except where its weights are pretrained."""
    duplicate = copy.deepcopy(module)
    keep = frozenset(id(c) for c, m in zip(duplicate.modules(), module.modules()) if id(m) in kept)
    return reinitialise(duplicate, keep)


def _leading_dropouts(site: ClassifierSite) -> list[str]:
    """The names of the Dropout modules just before the classifier in its Sequential (torchvision's EfficientNet,
    MobileNet v2 and AlexNet put one there): the model's own head dropout."""
    if not isinstance(site.parent, nn.Sequential):
        return []
    children = list(site.parent.named_children())
    index = [n for n, _ in children].index(site.name)
    found = []
    for name, module in reversed(children[:index]):
        if not isinstance(module, nn.Dropout):
            break
        found.append(name)
    return found


def _torchvision(name: str, num_classes: int, pretrained: str | None) -> tuple[nn.Module, frozenset[int]]:
    """The model with its own classifier sized for ``num_classes``, and the ids of the modules whose weights
    came from ``pretrained`` (none without)."""
    import torchvision

    weights = "DEFAULT" if pretrained == ORIGINAL_WEIGHTS else None
    try:
        net = torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as err:  # URLError is an OSError
        raise UsageError(f"cannot download pretrained weights for tv:{name} ({err}); "
                         "pass --pretrained PATH to a local weights file") from None
    if pretrained not in (None, ORIGINAL_WEIGHTS):
        load_torchvision_file(net, Path(pretrained), f"tv:{name}")
    kept = {id(m) for m in net.modules()} if pretrained is not None else set()
    site = find_classifier(net)
    last = [n for n, m in site.parent.named_children() if isinstance(m, nn.Linear)][-1] if site.drop_after \
        else site.name
    old = getattr(site.parent, last)
    if old.out_features != num_classes or pretrained is None:
        setattr(site.parent, last, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
        kept.discard(id(old))
    return net, frozenset(kept)


def _timm(name: str, num_classes: int, pretrained: str | None) -> tuple[nn.Module, frozenset[int]]:
    timm = import_timm()
    try:
        if pretrained not in (None, ORIGINAL_WEIGHTS):
            net = timm_with_file(name, Path(pretrained), num_classes=num_classes)
        else:
            net = timm.create_model(name, pretrained=pretrained is not None, num_classes=num_classes)
    except (OSError, RuntimeError) as err:
        raise UsageError(f"cannot load pretrained weights for timm:{name} ({str(err).splitlines()[0]}); "
                         "pass --pretrained PATH to a local weights file") from None
    kept = {id(m) for m in net.modules()} if pretrained is not None else set()
    if num_classes != net.pretrained_cfg.get("num_classes", 1000):  # timm made a new classifier for these classes
        kept -= {id(m) for m in net.get_classifier().modules()}
    return net, frozenset(kept)
