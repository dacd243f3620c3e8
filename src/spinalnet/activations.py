"""Resolve an activation given by name or by nn.Module class."""

from __future__ import annotations

from torch import nn

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


def create_activation(activation: str | type[nn.Module]) -> nn.Module:
    """Return a fresh activation module; a name or an nn.Module subclass is accepted."""
    if isinstance(activation, str):
        key = activation.lower().replace("-", "_")
        if key not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; expected one of {sorted(ACTIVATIONS)} "
                "or an nn.Module class"
            )
        return ACTIVATIONS[key]()
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    raise ValueError(
        f"activation must be a name from {sorted(ACTIVATIONS)} or an nn.Module class, "
        f"got {activation!r}"
    )


def activation_name(activation: str | type[nn.Module]) -> str:
    """A short printable name, for extra_repr and configs."""
    return activation if isinstance(activation, str) else activation.__name__
