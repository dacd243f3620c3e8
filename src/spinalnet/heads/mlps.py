"""Multilayer perceptrons for tabular data and regression: ordinary, and with Spinal hidden layers."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from spinalnet.layers.activations import create_activation
from spinalnet.layers.spinal_linear import SpinalLinear


def mlp(in_features: int, out_features: int, hidden_sizes: Sequence[int] = (200, 100),
        activation: str | type[nn.Module] = "leaky_relu", dropout: float = 0.0) -> nn.Sequential:
    """Linear -> activation (-> dropout) per hidden size, then a Linear output (the paper's FFN: 8-200-100-1)."""
    layers: list[nn.Module] = []
    width = in_features
    for size in hidden_sizes:
        layers += [nn.Linear(width, size), create_activation(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def spinal_mlp(in_features: int, out_features: int, hidden_sizes: Sequence[int] = (), *, layer_width: int = 50,
               num_layers: int = 6, num_splits: int = 2, activation: str | type[nn.Module] = "leaky_relu",
               dropout: float = 0.0, batch_norm: bool = False) -> nn.Sequential:
    """A stack of :class:`SpinalLinear` blocks: ``in -> hidden_sizes[0] -> ... -> out``.

    Each block is one Spinal hidden layer (its own ``num_layers`` narrow layers of ``layer_width``);
    an activation follows every block but the last. With no ``hidden_sizes`` this is a single block,
    which is the paper's regression SpinalNet: ``spinal_mlp(8, 1)`` has 6 layers of width 50, each
    reading half of the 8 inputs. Every block splits its input ``num_splits`` ways, so ``num_splits``
    may not exceed ``in_features`` or any hidden size (a ValueError says so; nothing is clamped).
    """
    sizes = [in_features, *hidden_sizes, out_features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(SpinalLinear(a, b, layer_width=layer_width, num_layers=num_layers,
                                   num_splits=num_splits, activation=activation, dropout=dropout,
                                   batch_norm=batch_norm))
        if i < len(sizes) - 2:
            layers.append(create_activation(activation))
    return nn.Sequential(*layers)
