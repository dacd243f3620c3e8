"""Keras models: the paper's VGG-5 with an fc or a Spinal head, and any arm's head on any backbone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras

from spinalnet.keras.arms import resolve_arm
from spinalnet.keras.batchnorm import BatchNorm
from spinalnet.keras.layer import SpinalDense
from spinalnet.layers.sizes import matched_hidden, spinal_params

HEADS = ("fc", "mlp", "spinal")
VGG5_BLOCKS = ([64, 64], [128, 128], [256, 256, 256], [256, 256, 256])


def vgg5(input_shape=(28, 28, 1), num_classes: int = 10, head: str = "fc") -> keras.Model:
    """The paper's VGG-5 (conv-BN-ReLU blocks 64,64 / 128,128 / 256x3 / 256x3, each then max-pooled), logits out.

    The heads and their parameter counts are those of ``spinalnet.models.create_model("vgg5", head=...)``:
    ``"spinal"``: SpinalDense(width 128, 4 layers, 2 splits, dropout 0.5, BN); ``"fc"``: the same hidden
    width, Dropout(0.5) -> Dense(512) -> BN -> ReLU -> Dropout(0.5) -> Dense(num_classes); ``"mlp"``: the fc
    layout, as wide as gives it the Spinal head's parameter count (the comparison's ``mlp`` arm).
    The head's layers are named ``head_*`` (see :func:`head_params`).
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for block in VGG5_BLOCKS:
        for filters in block:
            x = keras.layers.Conv2D(filters, 3, padding="same")(x)
            x = keras.layers.ReLU()(BatchNorm()(x))
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    if head == "spinal":
        outputs = SpinalDense(num_classes, layer_width=128, num_layers=4, dropout=0.5, batch_norm=True,
                              name="head_spinal")(x)
    else:
        width = 512 if head == "fc" else matched_hidden(
            int(x.shape[-1]), num_classes, spinal_params(int(x.shape[-1]), num_classes, 128, 4, 2, batch_norm=True),
            batch_norm=True)
        x = keras.layers.Dense(width, name="head_dense_1")(keras.layers.Dropout(0.5, name="head_dropout_1")(x))
        x = keras.layers.ReLU(name="head_relu")(BatchNorm(name="head_norm")(x))
        outputs = keras.layers.Dense(num_classes, name="head_dense_2")(keras.layers.Dropout(0.5, name="head_dropout_2")(x))
    return keras.Model(inputs, outputs, name=f"vgg5_{head}")


def head_params(model: keras.Model) -> int:
    """Trainable parameters of the head of a :func:`vgg5` model (its layers are named ``head_*``)."""
    return sum(int(math.prod(w.shape)) for layer in model.layers if layer.name.startswith("head_")
               for w in layer.trainable_weights)


def spinal_vgg5(input_shape=(28, 28, 1), num_classes: int = 10, head: str = "spinal") -> keras.Model:
    """:func:`vgg5` with the Spinal head by default."""
    return vgg5(input_shape, num_classes, head)


def with_spinal_head(base: keras.Model | str, num_classes: int, *, weights: str | Path | None = None,
                     input_shape: tuple[int, ...] | None = None, layer_width: int = 128, num_layers: int = 4,
                     freeze_base: bool = False, **spinal_kwargs: Any) -> keras.Model:
    """Put a SpinalDense head on a headless backbone.

    ``base`` is a model (e.g. ``keras.applications.ResNet50(include_top=False, pooling="avg")``, a KerasHub
    ``Backbone``, :func:`spinalnet.keras.efficientnet_lite`) or the name of a ``keras.applications`` model
    (``"ResNet50"``), built headless with ``input_shape``. ``weights`` loads the backbone's weights: a local file
    (e.g. Keras' ``*_notop.h5`` downloaded once, or a ``.weights.h5``), or ``"imagenet"`` for a named base
    (downloaded by Keras). A backbone that still outputs a feature map is average-pooled first.
    ``freeze_base=True`` trains only the head: the backbone's weights stay, and its batch norm runs in inference
    mode (Keras' ``trainable=False``), so its moving statistics stay too.
    """
    base = backbone(base, weights, input_shape)
    features = pooled(base.output)
    base.trainable = not freeze_base
    head = SpinalDense(num_classes, layer_width=layer_width, num_layers=num_layers, **spinal_kwargs)
    return keras.Model(base.input, head(features), name=f"{base.name}_spinal")


def with_head(base: keras.Model | str, num_classes: int, head: str = "spinal", *, weights: str | Path | None = None,
              input_shape: tuple[int, ...] | None = None, freeze_base: bool = False, reference: str | None = None,
              spinal_defaults: dict[str, Any] | None = None, own_dropout: float = 0.0) -> keras.Model:
    """:func:`with_spinal_head` for any arm of ``spinalnet compare --heads``: ``head`` is a spec such as
    ``"fc"``, ``"mlp"``, ``"mlp2"``, ``"linear"`` or ``"spinal:layer_width=20,num_layers=4"`` (see
    :mod:`spinalnet.keras.arms`; ``mlp`` and ``mlp2`` are sized by the Spinal arm ``reference``)."""
    base = backbone(base, weights, input_shape)
    features = pooled(base.output)
    arm = resolve_arm(head, int(features.shape[-1]), num_classes, reference=reference,
                      spinal_defaults=spinal_defaults, own_dropout=own_dropout)
    base.trainable = not freeze_base
    return keras.Model(base.input, arm.build()(features), name=f"{base.name}_{arm.spec.kind}")


def backbone(base: keras.Model | str, weights: str | Path | None, input_shape: tuple[int, ...] | None) -> keras.Model:
    """A model as given, or a headless ``keras.applications`` model by name; ``weights`` loaded into it."""
    if weights is not None and weights != "imagenet" and not Path(weights).is_file():
        raise FileNotFoundError(f"backbone weights file not found: {weights}")
    if isinstance(base, str):
        build = getattr(keras.applications, base, None)
        if not callable(build):
            raise ValueError(f"keras.applications has no model {base!r}")
        return build(include_top=False, weights=None if weights is None else str(weights), input_shape=input_shape)
    if weights == "imagenet":
        raise ValueError('weights="imagenet" needs the name of a keras.applications model as base')
    if weights is not None:
        base.load_weights(str(weights))
    return base


def pooled(features):
    """A backbone's output as (batch, features): a feature map average-pooled."""
    if len(features.shape) == 4:
        return keras.layers.GlobalAveragePooling2D()(features)
    if len(features.shape) != 2:
        raise ValueError(f"expected the backbone to output (batch, features) or a feature map, got {features.shape}")
    return features
