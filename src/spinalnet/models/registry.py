"""Model names -> builders. Every model takes any arm (``head="fc"``, ``"spinal"``, ``"mlp"``, ...) and differs
only there: the backbone is built first, from the caller's random state; the head after it, from its own seed."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from spinalnet.errors import UsageError, unknown_name
from spinalnet.heads.arms import INIT_RULE, HeadContext, build, count_params, describe_head, resolve, seeded
from spinalnet.heads.spec import ArmSpec, parse_arm
from spinalnet.models.base import HeadedNet, SpinalOptions, ZooParts
from spinalnet.models.external import external_model
from spinalnet.models.names import check_external_name, is_external


@dataclass(frozen=True)
class ModelInfo:
    """A zoo model: its builder as ``module:function`` (imported when the model is built, so a run loads only its
    own family), what it is, and whether the builder takes the Spinal width (Arch2's branches are built with it)."""

    builder: str
    description: str
    takes_width: bool = False

    @property
    def build(self) -> Callable[..., ZooParts]:
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)


MODELS: dict[str, ModelInfo] = {
    "default-cnn": ModelInfo("spinalnet.models.mnist:default_cnn",
                             "the PyTorch MNIST example CNN (320 features at 28x28)"),
    "arch2": ModelInfo("spinalnet.models.mnist:arch2",
                       "the paper's Arch2: Spinal branches over conv2, conv1 and raw pixels", takes_width=True),
    "vgg5": ModelInfo("spinalnet.models.vgg:vgg5", "VGG-5 with batch norm (256 features at 28x28)"),
    "fast-cnn": ModelInfo("spinalnet.models.vgg:fast_cnn",
                          "a small VGG-style CNN for quick CPU runs (not from the paper)"),
    "cifar-cnn": ModelInfo("spinalnet.models.cifar:cifar_cnn", "CIFAR CNN with dropout (4096 features at 32x32)"),
    "vgg19bn": ModelInfo("spinalnet.models.vgg:vgg19bn", "VGG-19-bn convolutions (512 features at 32x32)"),
    "resnet18-cifar": ModelInfo("spinalnet.models.resnet:resnet18_cifar", "ResNet-18 with a CIFAR stem"),
    "resnet34-cifar": ModelInfo("spinalnet.models.resnet:resnet34_cifar", "ResNet-34 with a CIFAR stem"),
}
PREFIXED = {"tv:": "any torchvision classification model, e.g. tv:resnet18, tv:wide_resnet101_2",
            "timm:": "any timm model, e.g. timm:convnext_tiny (needs the timm extra)"}


def model_names() -> list[str]:
    return list(MODELS) + ["tv:NAME", "timm:NAME"]


def build_head(spec: ArmSpec, context: HeadContext, seed: int | None) -> nn.Module:
    """The head of a resolved ``spec``, initialised from ``seed`` (the caller's random state if None, which is
    then left where it is): a head's initialisation depends on its seed, not on the backbone built before it,
    so a run on cached features builds the same head without the backbone."""
    with seeded(seed):
        return build(spec, context)


def create_model(name: str, num_classes: int, *, in_channels: int = 1, image_size: tuple[int, int] = (28, 28),
                 head: str | ArmSpec = "fc", spinal_options: SpinalOptions | None = None,
                 pretrained: str | None = None, freeze_backbone: bool = False, reference: ArmSpec | None = None,
                 head_seed: int | None = None) -> nn.Module:
    """Build model ``name`` with the head of arm ``head``. ``pretrained`` is ``None``, ``"imagenet"`` or a path to
    a weights file; ``reference``: the Spinal arm an ``mlp`` or ``mlp2`` arm takes its defaults from.

    The returned model has ``head_path`` (the attribute path of its head), ``head_arm`` (the arm with every
    option written out), ``head_context`` (what builds its other arms, see :mod:`spinalnet.heads.arms`) and
    ``head_info`` (layers, dropout, initialisation). tv: and timm: models expect 3-channel input; grey images
    are repeated to 3 channels by the data path.
    """
    spec = parse_arm(head) if isinstance(head, str) else head
    options = spinal_options or SpinalOptions()
    try:
        model = _build(name, num_classes, in_channels, image_size, spec, options, pretrained, reference, head_seed)
    except (RuntimeError, MemoryError) as err:  # sizes whose weights cannot be allocated are bad input
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        raise UsageError(f"{name} with these sizes does not fit in memory ({str(err).splitlines()[0]}); "
                         "use a smaller --layer-width, --num-layers or --image-size") from None
    if freeze_backbone:
        model.requires_grad_(False)
        model.get_submodule(model.head_path).requires_grad_(True)
    return model


def _build(name: str, num_classes: int, in_channels: int, image_size: tuple[int, int], spec: ArmSpec,
           options: SpinalOptions, pretrained: str | None, reference: ArmSpec | None, head_seed: int | None) -> nn.Module:
    if is_external(name):
        return external_model(name, num_classes, spec, options, pretrained, reference, head_seed)
    if name not in MODELS:
        raise unknown_name("model", name, model_names())
    if pretrained is not None:
        raise UsageError(f"{name} has no pretrained weights (only tv: and timm: models do)")
    info = MODELS[name]
    parts = info.build(in_channels, image_size, options.layer_width) if info.takes_width else \
        info.build(in_channels, image_size)
    spinal_head = (lambda o: parts.spinal_head(num_classes, o)) if parts.spinal_head is not None else None
    context = HeadContext(parts.width, num_classes, options.resolve(**parts.spinal_defaults),
                          lambda: parts.own_head(num_classes), spinal_head)
    resolved = resolve(spec, context, reference)
    model = HeadedNet(parts.features, build_head(resolved, context, head_seed), parts.width, spec.name)
    model.head_arm, model.head_context = resolved, context
    model.head_info = {**describe_head(model.head), "init": INIT_RULE}
    return model


def check_model_name(name: str) -> None:
    """Raise UsageError (with a suggestion) for a name that :func:`create_model` would not know."""
    if is_external(name):
        check_external_name(name)
    elif name not in MODELS:
        raise unknown_name("model", name, model_names())


def external_input(name: str) -> bool:
    """tv: and timm: backbones take 3-channel images of at least 32x32."""
    return is_external(name)


__all__ = ["MODELS", "PREFIXED", "build_head", "check_model_name", "count_params", "create_model", "external_input",
           "model_names"]
