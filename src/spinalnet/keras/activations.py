"""Keras functions for the activation names of :mod:`spinalnet.layers.activation_names`, with PyTorch's conventions.

Keras' own ``leaky_relu`` slope is 0.2 and its ``gelu`` approximates; these match ``torch.nn``.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import ops

from spinalnet.layers.activation_names import ACTIVATION_KEYS, activation_key

KERAS_ACTIVATIONS: dict[str, Callable] = {
    "relu": ops.relu,
    "leaky_relu": lambda x: ops.leaky_relu(x, negative_slope=0.01),
    "gelu": lambda x: ops.gelu(x, approximate=False),
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "silu": ops.silu,
    "elu": ops.elu,
    "selu": ops.selu,
    "mish": lambda x: ops.multiply(x, ops.tanh(ops.softplus(x))),
    "hardswish": lambda x: ops.multiply(x, ops.divide(ops.relu6(ops.add(x, 3.0)), 6.0)),
    "identity": lambda x: x,
}
assert set(KERAS_ACTIVATIONS) == set(ACTIVATION_KEYS)


@keras.saving.register_keras_serializable(package="spinalnet")
class Activation(keras.layers.Layer):
    """One activation of :data:`KERAS_ACTIVATIONS` as a layer, saved by its name (a lambda would not save)."""

    def __init__(self, activation: str = "relu", **kwargs) -> None:
        super().__init__(**kwargs)
        self.activation = activation_key(activation)

    def call(self, inputs):
        return KERAS_ACTIVATIONS[self.activation](inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.activation}
