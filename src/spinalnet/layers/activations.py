"""PyTorch activation modules for the names of :mod:`spinalnet.layers.activation_names`."""

from __future__ import annotations

import copy

from torch import nn

from spinalnet.layers.activation_names import ACTIVATION_KEYS, activation_key

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "mish": nn.Mish,
    "hardswish": nn.Hardswish,
    "identity": nn.Identity,
}
assert set(ACTIVATIONS) == set(ACTIVATION_KEYS)


def create_activation(activation: str | type[nn.Module] | nn.Module) -> nn.Module:
    """A fresh activation module from a name, an nn.Module class (any, also your own) or an instance (copied)."""
    if isinstance(activation, nn.Module):
        return copy.deepcopy(activation)
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    return ACTIVATIONS[activation_key(activation)]()


def activation_name(activation: str | type[nn.Module] | nn.Module) -> str:
    """The canonical name when there is one (what Keras and configs understand), else the class or repr."""
    try:
        return activation_key(activation)
    except ValueError:
        return activation.__name__ if isinstance(activation, type) else repr(activation)
