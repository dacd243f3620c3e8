"""Model names -> builders. Every model takes ``head="fc" | "spinal"`` and differs only there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from spinalnet.errors import UsageError, unknown_name
from spinalnet.models import cifar, mnist, resnet, vgg
from spinalnet.models.base import SpinalOptions
from spinalnet.models.external import timm_model, torchvision_model

HEADS = ("fc", "spinal")


@dataclass(frozen=True)
class ModelInfo:
    build: Callable[..., nn.Module]
    description: str


MODELS: dict[str, ModelInfo] = {
    "default-cnn": ModelInfo(mnist.default_cnn, "the PyTorch MNIST example CNN (320 features at 28x28)"),
    "arch2": ModelInfo(mnist.arch2, "the paper's Arch2: Spinal branches over conv2, conv1 and raw pixels"),
    "vgg5": ModelInfo(vgg.vgg5, "VGG-5 with batch norm (256 features at 28x28)"),
    "fast-cnn": ModelInfo(vgg.fast_cnn, "a small VGG-style CNN for quick CPU runs (not from the paper)"),
    "cifar-cnn": ModelInfo(cifar.cifar_cnn, "CIFAR CNN with dropout (4096 features at 32x32)"),
    "vgg19bn": ModelInfo(vgg.vgg19bn, "VGG-19-bn convolutions (512 features at 32x32)"),
    "resnet18-cifar": ModelInfo(resnet.resnet18_cifar, "ResNet-18 with a CIFAR stem"),
    "resnet34-cifar": ModelInfo(resnet.resnet34_cifar, "ResNet-34 with a CIFAR stem"),
}
PREFIXED = {"tv:": "any torchvision classification model, e.g. tv:resnet18, tv:wide_resnet101_2",
            "timm:": "any timm model, e.g. timm:convnext_tiny (needs the timm extra)"}


def model_names() -> list[str]:
    return list(MODELS) + ["tv:NAME", "timm:NAME"]


def create_model(name: str, num_classes: int, *, in_channels: int = 1, image_size: tuple[int, int] = (28, 28),
                 head: str = "fc", spinal_options: SpinalOptions | None = None, pretrained: str | None = None,
                 freeze_backbone: bool = False) -> nn.Module:
    """Build model ``name``. ``pretrained`` is ``None``, ``"imagenet"`` or a path to a weights file.

    The returned model has ``head_path``: the attribute path of its head (for counting its parameters).
    tv: and timm: models expect 3-channel input; grey images are repeated to 3 channels by the data path.
    """
    if head not in HEADS:
        raise UsageError(f"head must be one of {HEADS}, got {head!r}")
    options = spinal_options or SpinalOptions()
    try:
        model = _build(name, num_classes, in_channels, image_size, head, options, pretrained)
    except (RuntimeError, MemoryError) as err:  # sizes whose weights cannot be allocated are bad input
        if not isinstance(err, MemoryError) and "allocate" not in str(err):
            raise
        raise UsageError(f"{name} with these sizes does not fit in memory ({str(err).splitlines()[0]}); "
                         "use a smaller --layer-width, --num-layers or --image-size") from None
    if freeze_backbone:
        model.requires_grad_(False)
        model.get_submodule(model.head_path).requires_grad_(True)
    return model


def _build(name: str, num_classes: int, in_channels: int, image_size: tuple[int, int], head: str,
           options: SpinalOptions, pretrained: str | None) -> nn.Module:
    if name.startswith("tv:"):
        model = torchvision_model(name[3:], num_classes, head, options, pretrained)
    elif name.startswith("timm:"):
        model = timm_model(name[5:], num_classes, head, options, pretrained)
    elif name in MODELS:
        if pretrained is not None:
            raise UsageError(f"{name} has no pretrained weights (only tv: and timm: models do)")
        model = MODELS[name].build(num_classes, in_channels, image_size, head, options)
    else:
        raise unknown_name("model", name, model_names())
    return model


def check_model_name(name: str) -> None:
    """Raise UsageError (with a suggestion) for a name that :func:`create_model` would not know."""
    if name.startswith("tv:"):
        import torchvision

        if name[3:] not in torchvision.models.list_models():
            raise unknown_name("torchvision model", name[3:], torchvision.models.list_models())
    elif name.startswith("timm:"):
        try:
            import timm
        except ImportError:
            raise UsageError("timm models need timm: pip install 'spinalnet[timm]'") from None
        if not timm.is_model(name[5:]):
            raise unknown_name("timm model", name[5:], timm.list_models())
    elif name not in MODELS:
        raise unknown_name("model", name, model_names())


def external_input(name: str) -> bool:
    """tv: and timm: backbones take 3-channel images of at least 32x32."""
    return name.startswith(("tv:", "timm:"))
