"""Parameter counts of heads by formula (no framework import): the Spinal block and the ordinary heads it is
compared with, and the hidden width that gives an MLP the Spinal head's parameter count.

Shared by :class:`~spinalnet.layers.spinal_linear.SpinalLinear`, the comparison's arms and the Keras models.
"""

from __future__ import annotations

from spinalnet.layers.split import split_sizes


def spinal_params(in_features: int, out_features: int, layer_width: int, num_layers: int, num_splits: int,
                  batch_norm: bool = False, bias: bool = True) -> int:
    """Learnable parameters of a SpinalLinear (sizes already checked).

    With chunk sizes ``m_s``, ``w = layer_width``, ``L = num_layers``, ``C = out_features``::

        sum_i m_{i % S} * w  +  (L - 1) * w * w      hidden weights
      + L * w                                       hidden biases   (if bias)
      + 2 * L * w                                   BatchNorm scale and shift (if batch_norm)
      + L * w * C  +  C                             output weight and bias

    For equal chunks ``m`` this is the paper's ``m*w + (L-1)*(m+w)*w + L*w*C`` plus biases.
    """
    sizes = split_sizes(in_features, num_splits)
    w, L = layer_width, num_layers
    total = sum(sizes[i % num_splits] * w for i in range(L)) + (L - 1) * w * w + L * w * out_features
    if bias:
        total += L * w + out_features
    if batch_norm:
        total += 2 * L * w
    return total


def mlp_params(in_features: int, hidden: list[int] | tuple[int, ...], out_features: int,
               batch_norm: bool = False) -> int:
    """Linear layers ``in -> hidden[0] -> ... -> out`` with biases, and BatchNorm after each hidden Linear."""
    widths = [in_features, *hidden, out_features]
    total = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    return total + (2 * sum(hidden) if batch_norm else 0)


def matched_hidden(in_features: int, out_features: int, target: int, batch_norm: bool = False) -> int:
    """The hidden width of a one-hidden-layer MLP whose parameter count is closest to ``target`` (at least 1).

    The count grows by ``in + 1 + out (+ 2)`` per hidden unit, so the nearest width is within half of that
    step: within 1% of ``target`` whenever one step is at most 2% of it (320 inputs, 10 classes and the
    MNIST Spinal head's 8,538 parameters: 26 units, 8,616, +0.9%).
    """
    step = in_features + 1 + out_features + (2 if batch_norm else 0)
    return max(1, round((target - out_features) / step))
