"""Activation names, normalised in one place for the PyTorch and the Keras layer (imports no framework).

An activation may be given as a name (``"relu"``, ``"ReLU"``, ``"leaky-relu"``), a class (``nn.ReLU``)
or an instance (``nn.LeakyReLU(0.01)``); :func:`activation_key` turns each into one canonical name.
A name means the function with PyTorch's defaults (LeakyReLU slope 0.01, exact GELU, ELU alpha 1).
"""

from __future__ import annotations

from typing import Any

#: The canonical names every framework implements.
ACTIVATION_KEYS = ("relu", "leaky_relu", "gelu", "tanh", "sigmoid", "silu", "elu", "selu", "mish", "hardswish",
                   "identity")
ALIASES = {"swish": "silu", "linear": "identity"}
#: Arguments an instance must leave at PyTorch's default to mean the function its name stands for.
DEFAULT_ARGUMENTS: dict[str, dict[str, Any]] = {
    "relu": {"max_value": None, "negative_slope": 0.0, "threshold": 0.0},  # Keras' ReLU layer has these
    "leaky_relu": {"negative_slope": 0.01},
    "gelu": {"approximate": "none"},
    "elu": {"alpha": 1.0},
}


def _fold(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_LOOKUP = {_fold(k): k for k in ACTIVATION_KEYS} | {_fold(a): k for a, k in ALIASES.items()}


def activation_key(activation: Any) -> str:
    """The canonical name (one of :data:`ACTIVATION_KEYS`) of a name, class or instance.

    Raises ValueError for an unknown activation, or an instance whose arguments differ from PyTorch's
    defaults (e.g. ``nn.LeakyReLU(0.2)``): the name alone could not carry that slope to another framework.
    """
    if isinstance(activation, str):
        name = activation
    elif isinstance(activation, type):
        name = activation.__name__
    elif callable(activation):
        name = type(activation).__name__
    else:
        raise ValueError(f"activation must be a name, a class or an instance, got {activation!r}")
    key = _LOOKUP.get(_fold(name))
    if key is None:
        raise ValueError(f"unknown activation {activation!r}; expected one of {list(ACTIVATION_KEYS)} "
                         "(any case, '-' or '_'), or the matching class or instance")
    if not isinstance(activation, (str, type)):
        for arg, default in DEFAULT_ARGUMENTS.get(key, {}).items():
            value = getattr(activation, arg, default)
            if value != default:
                raise ValueError(f"{activation!r}: {arg}={value!r} differs from the default {default!r} that "
                                 f"{key!r} stands for")
    return key
