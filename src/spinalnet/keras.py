"""Keras 3 SpinalDense: the same split rule and math as :class:`spinalnet.SpinalLinear`, backend-agnostic.

Written against ``keras.ops`` only, so it runs on the TensorFlow, JAX and PyTorch backends. Needs the
``keras`` extra (``pip install 'spinalnet[keras]'``). If ``KERAS_BACKEND`` is unset and neither
TensorFlow nor JAX is installed, the PyTorch backend is selected (this package always has torch).

Initialisation matches ``torch.nn.Linear`` (uniform, bound ``1/sqrt(fan_in)`` for kernels and biases)
and BatchNormalization matches ``torch.nn.BatchNorm1d`` (epsilon 1e-5, momentum 0.9), so learning
rates from the paper's PyTorch scripts carry over unchanged.
"""

from __future__ import annotations

import importlib.util
import math
import os
from typing import Any

if "KERAS_BACKEND" not in os.environ and not any(
    importlib.util.find_spec(m) for m in ("tensorflow", "jax")
):
    os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from spinalnet.layers import SpinalLinear, split_sizes  # noqa: E402

#: Activations with PyTorch's defaults (Keras' leaky_relu slope is 0.2 and its gelu approximates).
ACTIVATIONS = {
    "relu": ops.relu,
    "leaky_relu": lambda x: ops.leaky_relu(x, negative_slope=0.01),
    "gelu": lambda x: ops.gelu(x, approximate=False),
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "silu": ops.silu,
    "elu": ops.elu,
    "selu": ops.selu,
    "identity": lambda x: x,
}


def torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="spinalnet")
class SpinalDense(keras.layers.Layer):
    """SpinalNet block for Keras: ``num_layers`` narrow layers with gradual input, one output Dense.

    Hidden layer ``i`` reads input chunk ``i % num_splits`` (contiguous chunks whose sizes differ by at
    most one, first chunks larger) concatenated with the output of layer ``i - 1``; the output reads
    all hidden outputs. Per hidden layer: Dropout -> Dense -> BatchNormalization (if batch_norm) ->
    activation; output: Dropout -> Dense. Kernels are stored per layer as ``(inputs, layer_width)``.
    """

    def __init__(self, units: int, layer_width: int, num_layers: int = 4, num_splits: int = 2,
                 activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False,
                 use_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name, value in (("units", units), ("layer_width", layer_width), ("num_layers", num_layers),
                            ("num_splits", num_splits)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if num_layers < num_splits:
            raise ValueError(f"num_layers ({num_layers}) must be >= num_splits ({num_splits}): "
                             "otherwise some input features would never be read")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.units, self.layer_width, self.num_layers, self.num_splits = units, layer_width, num_layers, num_splits
        self.activation, self.dropout, self.batch_norm, self.use_bias = activation, float(dropout), batch_norm, use_bias
        self.drops = [keras.layers.Dropout(self.dropout) for _ in range(num_layers + 1)]
        self.norms = [keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9) for _ in range(num_layers)] \
            if batch_norm else []

    def build(self, input_shape) -> None:
        in_features = int(input_shape[-1])
        if in_features < self.num_splits:
            raise ValueError(f"in_features ({in_features}) must be >= num_splits ({self.num_splits})")
        self.in_features = in_features
        self.split_sizes = split_sizes(in_features, self.num_splits)
        self.split_offsets = [sum(self.split_sizes[:s]) for s in range(self.num_splits)]
        w = self.layer_width
        self.kernels, self.biases = [], []
        for i in range(self.num_layers):
            fan_in = self.split_sizes[i % self.num_splits] + (w if i else 0)
            self.kernels.append(self.add_weight(shape=(fan_in, w), initializer=torch_uniform(fan_in), name=f"kernel_{i}"))
            if self.use_bias:
                self.biases.append(self.add_weight(shape=(w,), initializer=torch_uniform(fan_in), name=f"bias_{i}"))
        for norm in self.norms:
            norm.build((None, w))
        fan_in = self.num_layers * w
        self.out_kernel = self.add_weight(shape=(fan_in, self.units), initializer=torch_uniform(fan_in), name="out_kernel")
        self.out_bias = self.add_weight(shape=(self.units,), initializer=torch_uniform(fan_in), name="out_bias") \
            if self.use_bias else None

    def call(self, inputs, training=None):
        act = ACTIVATIONS[self.activation]
        outs, h = [], None
        for i in range(self.num_layers):
            s = i % self.num_splits
            chunk = inputs[..., self.split_offsets[s] : self.split_offsets[s] + self.split_sizes[s]]
            x = chunk if h is None else ops.concatenate([chunk, h], axis=-1)
            z = ops.matmul(self.drops[i](x, training=training), self.kernels[i])
            if self.use_bias:
                z = z + self.biases[i]
            if self.batch_norm:
                z = self.norms[i](z, training=training)
            h = act(z)
            outs.append(h)
        y = ops.matmul(self.drops[-1](ops.concatenate(outs, axis=-1), training=training), self.out_kernel)
        return y + self.out_bias if self.use_bias else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units, "layer_width": self.layer_width,
                "num_layers": self.num_layers, "num_splits": self.num_splits, "activation": self.activation,
                "dropout": self.dropout, "batch_norm": self.batch_norm, "use_bias": self.use_bias}


# ---------------------------------------------------------------------- weight transfer
def from_torch(layer: SpinalLinear) -> SpinalDense:
    """A built SpinalDense computing the same function as ``layer`` (eval-mode BN statistics included)."""
    if layer.activation not in ACTIVATIONS:
        raise ValueError(f"activation {layer.activation!r} has no Keras counterpart here; use one of {sorted(ACTIVATIONS)}")
    dense = SpinalDense(layer.out_features, layer.layer_width, layer.num_layers, layer.num_splits,
                        layer.activation, layer.dropout, layer.batch_norm, layer.has_bias)
    dense.build((None, layer.in_features))
    state = {k: v.detach().cpu().numpy() for k, v in layer.state_dict().items()}
    for i in range(layer.num_layers):
        kernel = state[f"layers.{i}.input.weight"]
        if i:
            kernel = np.concatenate([kernel, state[f"layers.{i}.chain.weight"]], axis=1)
        dense.kernels[i].assign(kernel.T)
        if dense.use_bias:
            dense.biases[i].assign(state[f"layers.{i}.input.bias"])
        if dense.batch_norm:
            dense.norms[i].set_weights([state[f"layers.{i}.norm.{n}"] for n in ("weight", "bias", "running_mean", "running_var")])
    dense.out_kernel.assign(state["output.weight"].T)
    if dense.out_bias is not None:
        dense.out_bias.assign(state["output.bias"])
    return dense


def to_torch(dense: SpinalDense) -> SpinalLinear:
    """A SpinalLinear computing the same function as a built ``dense``."""
    import torch

    if not dense.built:
        raise ValueError("build or call the SpinalDense before converting it")
    layer = SpinalLinear(dense.in_features, dense.units, layer_width=dense.layer_width, num_layers=dense.num_layers,
                         num_splits=dense.num_splits, activation=dense.activation, dropout=dense.dropout,
                         batch_norm=dense.batch_norm, bias=dense.use_bias)
    t = lambda v: torch.from_numpy(np.array(ops.convert_to_numpy(v), dtype=np.float32))  # noqa: E731
    state = layer.state_dict()  # num_batches_tracked has no Keras counterpart and stays
    for i, kernel in enumerate(dense.kernels):
        weight, size = t(kernel).T, layer.split_sizes[i % layer.num_splits]
        state[f"layers.{i}.input.weight"] = weight[:, :size]
        if i:
            state[f"layers.{i}.chain.weight"] = weight[:, size:]
        if dense.use_bias:
            state[f"layers.{i}.input.bias"] = t(dense.biases[i])
        if dense.batch_norm:
            for name, value in zip(("weight", "bias", "running_mean", "running_var"), dense.norms[i].get_weights()):
                state[f"layers.{i}.norm.{name}"] = torch.from_numpy(np.asarray(value, dtype=np.float32))
    state["output.weight"] = t(dense.out_kernel).T
    if dense.use_bias:
        state["output.bias"] = t(dense.out_bias)
    layer.load_state_dict(state)
    return layer


# ---------------------------------------------------------------------- models
def spinal_vgg5(input_shape=(28, 28, 1), num_classes: int = 10, head: str = "spinal") -> keras.Model:
    """The paper's VGG-5 (64,64 / 128,128 / 256x3 / 256x3 with BN) returning logits.

    ``head="spinal"``: SpinalDense(width 128, 4 layers, dropout 0.5, BN); ``head="fc"``: Dropout,
    Dense(512), BN, ReLU, Dropout, Dense(num_classes).
    """
    if head not in ("fc", "spinal"):
        raise ValueError(f"head must be 'fc' or 'spinal', got {head!r}")
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for block in ([64, 64], [128, 128], [256, 256, 256], [256, 256, 256]):
        for filters in block:
            x = keras.layers.Conv2D(filters, 3, padding="same")(x)
            x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    if head == "spinal":
        outputs = SpinalDense(num_classes, layer_width=128, num_layers=4, dropout=0.5, batch_norm=True)(x)
    else:
        x = keras.layers.Dropout(0.5)(x)
        x = keras.layers.ReLU()(keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9)(keras.layers.Dense(512)(x)))
        outputs = keras.layers.Dense(num_classes)(keras.layers.Dropout(0.5)(x))
    return keras.Model(inputs, outputs, name=f"vgg5_{head}")


def with_spinal_head(base: keras.Model, num_classes: int, *, layer_width: int = 128, num_layers: int = 4,
                     freeze_base: bool = False, **spinal_kwargs: Any) -> keras.Model:
    """Put a SpinalDense head on a headless backbone, e.g.
    ``keras.applications.ResNet50(include_top=False, pooling="avg", weights="imagenet")``.

    A backbone that still outputs a feature map (no ``pooling``) is average-pooled first.
    ``freeze_base=True`` trains only the head.
    """
    features = base.output
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D()(features)
    elif len(features.shape) != 2:
        raise ValueError(f"expected the backbone to output (batch, features) or a feature map, got {features.shape}")
    base.trainable = not freeze_base
    head = SpinalDense(num_classes, layer_width=layer_width, num_layers=num_layers, **spinal_kwargs)
    return keras.Model(base.input, head(features), name=f"{base.name}_spinal")
