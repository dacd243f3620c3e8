"""Keras functions for the activation names of :mod:`spinalnet.layers.activation_names`, with PyTorch's conventions.

Keras' own ``leaky_relu`` slope is 0.2 and its ``gelu`` approximates; these match ``torch.nn``.
"""

from __future__ import annotations

from typing import Callable

from keras import ops

from spinalnet.layers.activation_names import ACTIVATION_KEYS

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
