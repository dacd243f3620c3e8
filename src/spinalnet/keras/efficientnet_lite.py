"""EfficientNet-Lite in Keras 3 with timm's ``tf_efficientnet_lite*`` weights, on any backend.

The graph of timm's ``tf_efficientnet_lite0`` .. ``lite4``: a 3x3 stem, a depthwise-separable block, inverted
residual blocks (1x1 expand, kxk depthwise, 1x1 project, a skip where shapes allow), a 1x1 head to 1280 channels,
ReLU6 everywhere, batch norm with TensorFlow's epsilon (1e-3) and TensorFlow's ``SAME`` padding, which is Keras'
``padding="same"`` on every backend.

Why our own graph rather than KerasHub's ``EfficientNetBackbone`` (measured, docs/BENCHMARKS.md, section 8):
KerasHub's timm converter knows the architecture ``efficientnet_lite0`` only (no lite1 to lite4, no ``tf_`` name),
pads symmetrically as timm's non-``tf_`` models do and uses epsilon 1e-5, so the ``tf_`` weights through it give
other features (timm's top-1 class on 22 of 32 sample-photo crops, 25 of 1,000 Fashion-MNIST images); with its
padding replaced by ``same`` and epsilon 1e-3 it matches timm to 8e-5, which is this graph. And ``keras-hub`` brings TensorFlow (2.2 GB) through
``tensorflow-text`` into every environment, JAX's included.

Channel widths are read from the weights (timm's rounding made them); the stage layout (repeats, kernel, stride)
and the depth multipliers are timm's, and the weights must fit them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import numpy as np

from spinalnet.errors import UsageError, did_you_mean
from spinalnet.keras.batchnorm import BatchNorm
from spinalnet.keras.depthwise import DepthwiseConv2D
from spinalnet.keras.preset import Preset, read_config, read_tensors

#: timm's tf_efficientnet_lite* -> (depth multiplier, the input size its weights were trained at)
ARCHITECTURES = {"tf_efficientnet_lite0": (1.0, 224), "tf_efficientnet_lite1": (1.1, 240),
                 "tf_efficientnet_lite2": (1.2, 260), "tf_efficientnet_lite3": (1.4, 280),
                 "tf_efficientnet_lite4": (1.8, 300)}
#: per stage (repeats, kernel, stride) before depth scaling; the first and last stage are not scaled (timm's
#: ``fix_first_last``), and the first stage is a depthwise-separable block
STAGES = ((1, 3, 1), (2, 3, 2), (2, 5, 2), (3, 3, 2), (3, 5, 1), (4, 5, 2), (1, 3, 1))
BN_EPSILON = 1e-3  # TensorFlow's default, which the tf_ weights were trained with


class _Weights:
    """The preset's tensors, handed out by key with the expected shape checked; remembers which were used."""

    def __init__(self, preset: Preset) -> None:
        self.preset, self.used = preset, set()

    def get(self, key: str) -> np.ndarray:
        if key not in self.preset.tensors:
            raise UsageError(f"preset {self.preset.directory}: no tensor {key!r} in {self.preset.architecture}'s "
                             "weights (weights of another architecture?)")
        self.used.add(key)
        return self.preset.tensors[key]

    def has(self, key: str) -> bool:
        return key in self.preset.tensors

    def assign(self, layer: keras.layers.Layer, arrays: list[np.ndarray], keys: list[str]) -> None:
        for variable, array, key in zip(layer.weights, arrays, keys):
            if tuple(variable.shape) != array.shape:
                raise UsageError(f"preset {self.preset.directory}: {key} has shape {array.shape} where "
                                 f"{self.preset.architecture} needs {tuple(variable.shape)}")
            variable.assign(array)


def _stage_repeats(architecture: str) -> list[int]:
    depth = ARCHITECTURES[architecture][0]
    last = len(STAGES) - 1
    return [r if s in (0, last) else int(math.ceil(r * depth)) for s, (r, _, _) in enumerate(STAGES)]


def _count_blocks(weights: _Weights, stage: int) -> int:
    n = 0
    while weights.has(f"blocks.{stage}.{n}.conv_dw.weight"):
        n += 1
    return n


def check_architecture(architecture: str, where: Path) -> None:
    if architecture not in ARCHITECTURES:
        raise UsageError(f"preset {where}: architecture {architecture!r} is not one this builder has; it builds "
                         f"{', '.join(ARCHITECTURES)}{did_you_mean(architecture, ARCHITECTURES)}")


def efficientnet_lite(preset: str | Path | Preset, *, input_shape: tuple[Any, Any, int] = (None, None, 3),
                      include_top: bool = False, pooling: str | None = "avg", name: str | None = None) -> keras.Model:
    """The backbone of a preset directory (see :mod:`spinalnet.keras.preset`) with its weights loaded.

    Inputs are channels-last images normalised as the weights expect (``Preset.preprocessing``: mean and std
    0.5 for the tf_ Lite weights, i.e. pixels in [-1, 1]). ``pooling="avg"`` outputs the 1280 pooled
    features (what a head reads), ``None`` the last feature map; ``include_top`` adds the ImageNet classifier
    (logits). An unknown architecture, a missing or truncated weights file, or weights that do not fit are
    one :class:`~spinalnet.errors.UsageError` each.
    """
    if pooling not in ("avg", None):
        raise ValueError(f"pooling must be 'avg' or None, got {pooling!r}")
    if not isinstance(preset, Preset):
        config = read_config(Path(preset))  # the architecture is checked before any weights are read
        check_architecture(config["architecture"], Path(preset))
        preset = Preset(Path(preset), config, read_tensors(Path(preset)))
    check_architecture(preset.architecture, preset.directory)
    weights = _Weights(preset)
    loads: list[tuple[keras.layers.Layer, str, str]] = []  # (layer, timm prefix, kind)

    def conv(x, prefix: str, stride: int = 1, depthwise: bool = False):
        kernel = weights.get(f"{prefix}.weight")
        # zeros: the preset's weights replace them; a random draw per shape costs seconds of compiling on JAX
        layer = DepthwiseConv2D(kernel.shape[-1], stride, padding="same", use_bias=False,
                                depthwise_initializer="zeros", name=_name(prefix)) if depthwise else \
            keras.layers.Conv2D(kernel.shape[0], kernel.shape[-1], stride, padding="same", use_bias=False,
                                kernel_initializer="zeros", name=_name(prefix))
        loads.append((layer, prefix, "depthwise" if depthwise else "conv"))
        return layer(x)

    def norm(x, prefix: str, act: bool = True):
        layer = BatchNorm(epsilon=BN_EPSILON, name=_name(prefix))
        loads.append((layer, prefix, "norm"))
        x = layer(x)
        return keras.layers.ReLU(max_value=6.0, name=_name(prefix) + "_relu6")(x) if act else x

    inputs = keras.Input(shape=input_shape)
    x = norm(conv(inputs, "conv_stem", stride=2), "bn1")
    repeats = _stage_repeats(preset.architecture)
    for s, ((_, kernel, stride), expected) in enumerate(zip(STAGES, repeats)):
        found = _count_blocks(weights, s)
        if found != expected:
            raise UsageError(f"preset {preset.directory}: stage {s} of the weights has {found} blocks where "
                             f"{preset.architecture} has {expected} (weights of another architecture?)")
        for j in range(expected):
            p = f"blocks.{s}.{j}"
            block_in, step = x, stride if j == 0 else 1
            if weights.get(f"{p}.conv_dw.weight").shape[-1] != kernel:
                raise UsageError(f"preset {preset.directory}: {p}.conv_dw is not {kernel}x{kernel} as in "
                                 f"{preset.architecture}")
            if s == 0:  # depthwise-separable: dw -> bn1 -> relu6 -> pw -> bn2
                x = norm(conv(x, f"{p}.conv_dw", step, depthwise=True), f"{p}.bn1")
                x = norm(conv(x, f"{p}.conv_pw"), f"{p}.bn2", act=False)
            else:  # inverted residual: pw -> bn1 -> relu6 -> dw -> bn2 -> relu6 -> pwl -> bn3
                x = norm(conv(x, f"{p}.conv_pw"), f"{p}.bn1")
                x = norm(conv(x, f"{p}.conv_dw", step, depthwise=True), f"{p}.bn2")
                x = norm(conv(x, f"{p}.conv_pwl"), f"{p}.bn3", act=False)
            if step == 1 and block_in.shape[-1] == x.shape[-1]:
                x = keras.layers.Add(name=_name(p) + "_skip")([x, block_in])
    x = norm(conv(x, "conv_head"), "bn2")
    if pooling == "avg" or include_top:
        x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if include_top:
        dense = keras.layers.Dense(weights.get("classifier.weight").shape[0], name="classifier")
        loads.append((dense, "classifier", "dense"))
        x = dense(x)
    model = keras.Model(inputs, x, name=name or preset.architecture)
    for layer, prefix, kind in loads:
        _load(weights, layer, prefix, kind)
    extra = sorted(k for k in preset.tensors if k not in weights.used and not k.endswith("num_batches_tracked")
                   and not k.startswith("classifier."))
    if extra:
        raise UsageError(f"preset {preset.directory}: {len(extra)} tensors this {preset.architecture} does not use, "
                         f"e.g. {extra[0]!r} (weights of another architecture?)")
    return model


def _name(prefix: str) -> str:
    return prefix.replace(".", "_")


def _load(weights: _Weights, layer: keras.layers.Layer, prefix: str, kind: str) -> None:
    """timm's tensors into a Keras layer: conv kernels (out, in, kh, kw) -> (kh, kw, in, out), depthwise
    (c, 1, kh, kw) -> (kh, kw, c, 1), batch norm (weight, bias, running mean, running var), dense (out, in) -> (in, out)."""
    if kind == "norm":
        keys = [f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
        arrays = [weights.get(k) for k in keys]
    elif kind == "dense":
        keys = [f"{prefix}.weight", f"{prefix}.bias"]
        arrays = [weights.get(keys[0]).T, weights.get(keys[1])]
    else:
        keys = [f"{prefix}.weight"]
        arrays = [weights.get(keys[0]).transpose((2, 3, 0, 1) if kind == "depthwise" else (2, 3, 1, 0))]
    weights.assign(layer, arrays, keys)
