"""SpinalLinear: the SpinalNet fully connected block, exact for any sizes and fast.

Reference math (what the block computes, per sample ``x`` of width ``in_features``)::

    chunks = tensor_split(x, num_splits)             # contiguous, sizes differ by <= 1
    h[0]   = act(norm(W[0] @ drop(chunks[0]) + b[0]))
    h[i]   = act(norm(W[i] @ drop(cat(chunks[i % num_splits], h[i-1])) + b[i]))   i >= 1
    y      = W_out @ drop(cat(h[0], ..., h[L-1])) + b_out

Why it is fast: the input half of every ``W[i]`` does not depend on the chain, so the
projections of all layers that read the same chunk are one matrix multiply. Only the narrow
``layer_width x layer_width`` chain is sequential. The parameters are stored in that grouped
layout; :meth:`SpinalLinear.per_layer_parameters` gives the per-layer view ``W[i] = [A | B]``
(``A`` reads the chunk, ``B`` reads ``h[i-1]``) used by the paper's scripts.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spinalnet.activations import activation_name, create_activation


def split_sizes(in_features: int, num_splits: int) -> list[int]:
    """Chunk sizes of ``torch.tensor_split(x, num_splits)``: the first ``in % splits`` are one larger."""
    base, extra = divmod(in_features, num_splits)
    return [base + 1 if s < extra else base for s in range(num_splits)]


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout. On CPU a ``rand`` mask is about 3x faster than ``bernoulli_`` (measured by
    benchmarks/layer_speed.py); elsewhere ``F.dropout`` uses its fused kernel."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return x * (torch.rand_like(x) >= p) * (1.0 / (1.0 - p))


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class SpinalLinear(nn.Module):
    """A SpinalNet block: ``num_layers`` narrow hidden layers with gradual input, one output Linear.

    Hidden layer ``i`` (0-based) reads input chunk ``i % num_splits`` concatenated with the
    output of layer ``i - 1``; the output Linear reads all hidden outputs. Per hidden layer:
    Dropout -> Linear -> BatchNorm1d (if ``batch_norm``) -> activation; output: Dropout -> Linear.
    ``num_layers`` must be at least ``num_splits`` so that every input feature is read.

    Args:
        in_features: width of the input (last dimension).
        out_features: width of the output, e.g. the number of classes.
        layer_width: width of every hidden layer.
        num_layers: number of hidden layers (>= 1, no upper limit).
        num_splits: number of contiguous input chunks, used round-robin.
        activation: a name (``"relu"``, ``"leaky_relu"``, ``"gelu"``, ...) or an nn.Module class.
        dropout: dropout probability before every Linear (the paper's VGG heads use 0.5).
        batch_norm: BatchNorm1d after every hidden Linear.
        bias: learnable biases in every Linear.
    """

    __jit_unused_properties__ = ["num_params"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        layer_width: int,
        num_layers: int = 4,
        num_splits: int = 2,
        activation: str | type[nn.Module] = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        in_features = _check_positive_int("in_features", in_features)
        out_features = _check_positive_int("out_features", out_features)
        layer_width = _check_positive_int("layer_width", layer_width)
        num_layers = _check_positive_int("num_layers", num_layers)
        num_splits = _check_positive_int("num_splits", num_splits)
        if in_features < num_splits:
            raise ValueError(
                f"in_features ({in_features}) must be >= num_splits ({num_splits}): "
                "every split needs at least one feature"
            )
        if num_layers < num_splits:
            raise ValueError(
                f"num_layers ({num_layers}) must be >= num_splits ({num_splits}): "
                "otherwise some input features would never be read"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        acts = [create_activation(activation) for _ in range(num_layers)]

        self.in_features = in_features
        self.out_features = out_features
        self.layer_width = layer_width
        self.num_layers = num_layers
        self.num_splits = num_splits
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.activation = activation_name(activation)
        self.split_sizes = split_sizes(in_features, num_splits)
        self.split_offsets = [sum(self.split_sizes[:s]) for s in range(num_splits)]

        # Layers s, s + S, s + 2S, ... read chunk s: their input weights are stacked.
        self.input_weights = nn.ParameterList(
            nn.Parameter(torch.empty(len(range(s, num_layers, num_splits)), layer_width, size))
            for s, size in enumerate(self.split_sizes)
        )
        # chain_weights[i - 1] reads h[i-1] in layer i: one parameter each, so backward needs no stack.
        self.chain_weights = nn.ParameterList(
            nn.Parameter(torch.empty(layer_width, layer_width)) for _ in range(num_layers - 1)
        )
        # Biases are grouped like the input weights: input_biases[s][k] belongs to layer s + k * S.
        self.input_biases = nn.ParameterList(
            nn.Parameter(torch.empty(w.shape[0], layer_width)) for w in self.input_weights
        ) if bias else nn.ParameterList()
        self.has_bias = bool(bias)
        self.post = nn.ModuleList(
            nn.Sequential(nn.BatchNorm1d(layer_width), act) if batch_norm else nn.Sequential(act)
            for act in acts
        )
        self.output = nn.Linear(num_layers * layer_width, out_features, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise each hidden layer as ``nn.Linear`` would (uniform, bound 1/sqrt(fan_in))."""
        with torch.no_grad():
            for i in range(self.num_layers):
                s, k = i % self.num_splits, i // self.num_splits
                fan_in = self.split_sizes[s] + (self.layer_width if i else 0)
                bound = 1.0 / math.sqrt(fan_in)
                self.input_weights[s][k].uniform_(-bound, bound)
                if i:
                    self.chain_weights[i - 1].uniform_(-bound, bound)
                if self.has_bias:
                    self.input_biases[s][k].uniform_(-bound, bound)
        for post in self.post:
            for module in post:
                if isinstance(module, nn.BatchNorm1d):
                    module.reset_parameters()
        self.output.reset_parameters()

    # ------------------------------------------------------------------ forward
    def _input_projections(self, x: Tensor) -> list[Tensor]:
        """Input half of every hidden Linear (bias included), one grouped matmul per chunk."""
        n, w, S = x.shape[0], self.layer_width, self.num_splits
        proj: list[Tensor] = [x] * self.num_layers
        drop = self.training and self.dropout > 0.0
        biases: list[Tensor] = list(self.input_biases) if self.has_bias else []
        for s, weight in enumerate(self.input_weights):
            count, size = weight.shape[0], weight.shape[2]
            chunk = x[:, self.split_offsets[s] : self.split_offsets[s] + size]
            bias: Tensor | None = biases[s] if self.has_bias else None
            if drop:
                # Each layer drops its own copy of the chunk, as separate Dropout modules would.
                copies = _dropout(chunk.unsqueeze(0).expand(count, n, size), self.dropout, True)
                out = torch.bmm(copies, weight.transpose(1, 2))
                if bias is not None:
                    out = out + bias.unsqueeze(1)
                parts = out.unbind(0)
            else:
                flat = weight.reshape(count * w, size).t()
                out = torch.mm(chunk, flat) if bias is None else torch.addmm(bias.reshape(-1), chunk, flat)
                # unbind, not slicing: its backward is one stack, not a zero-filled tensor per layer
                parts = out.view(n, count, w).unbind(1)
            for k, part in enumerate(parts):
                proj[s + k * S] = part
        return proj

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"SpinalLinear expected input of shape (*, {self.in_features}), got {list(x.shape)}"
            )
        shape = list(x.shape)
        shape[-1] = self.out_features
        x = x.reshape(-1, self.in_features)
        proj = self._input_projections(x)
        # chain[i] reads h[i-1] in layer i; chain[0] is a placeholder (layer 0 has no previous layer)
        chain: list[Tensor] = [x] + [weight for weight in self.chain_weights]
        hidden: list[Tensor] = []
        h = x
        for i, post in enumerate(self.post):
            z = proj[i]
            if i:
                prev = _dropout(h, self.dropout, self.training)
                z = torch.addmm(z, prev, chain[i].t())
            h = post(z)
            hidden.append(h)
        feats = torch.cat(hidden, dim=1)
        feats = _dropout(feats, self.dropout, self.training)
        return self.output(feats).reshape(shape)

    # ------------------------------------------------------------------ views
    def per_layer_parameters(self) -> list[tuple[Tensor, Tensor | None]]:
        """``(weight, bias)`` of every hidden Linear in the per-layer layout ``[chunk | previous]``.

        The tensors are differentiable functions of this module's parameters.
        """
        layers = []
        for i in range(self.num_layers):
            a = self.input_weights[i % self.num_splits][i // self.num_splits]
            weight = torch.cat([a, self.chain_weights[i - 1]], dim=1) if i else a
            bias = self.input_biases[i % self.num_splits][i // self.num_splits] if self.has_bias else None
            layers.append((weight, bias))
        return layers

    @torch.no_grad()
    def load_per_layer_parameters(self, layers: Sequence[tuple[Tensor, Tensor | None]]) -> None:
        """Copy hidden-layer weights given in the per-layer layout (see :meth:`per_layer_parameters`)."""
        if len(layers) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} (weight, bias) pairs, got {len(layers)}")
        for i, (weight, bias) in enumerate(layers):
            size = self.split_sizes[i % self.num_splits]
            expected = (self.layer_width, size + (self.layer_width if i else 0))
            if tuple(weight.shape) != expected:
                raise ValueError(f"hidden layer {i}: expected weight of shape {expected}, got {tuple(weight.shape)}")
            self.input_weights[i % self.num_splits][i // self.num_splits].copy_(weight[:, :size])
            if i:
                self.chain_weights[i - 1].copy_(weight[:, size:])
            if self.has_bias:
                if bias is None:
                    raise ValueError(f"hidden layer {i}: this layer has biases, got None")
                self.input_biases[i % self.num_splits][i // self.num_splits].copy_(bias)

    def layer_inputs(self) -> list[tuple[int, int, bool]]:
        """For every hidden layer: ``(start, stop, reads_previous)`` of the input features it reads."""
        return [
            (self.split_offsets[i % self.num_splits],
             self.split_offsets[i % self.num_splits] + self.split_sizes[i % self.num_splits],
             i > 0)
            for i in range(self.num_layers)
        ]

    def describe(self) -> str:
        """A human-readable map of which inputs every layer reads, and the parameter count."""
        w = self.layer_width
        lines = [f"SpinalLinear {self.in_features} -> {self.out_features}: "
                 f"{self.num_layers} hidden layers of width {w}, {self.num_splits} splits "
                 f"{tuple(self.split_sizes)}"]
        for i, (start, stop, prev) in enumerate(self.layer_inputs()):
            src = f"x[{start}:{stop}]" + (f" + h{i - 1}" if prev else "")
            lines.append(f"  h{i:<3} = {self.activation}(Linear({stop - start + (w if prev else 0)} -> {w}))  reads {src}")
        lines.append(f"  out  = Linear({self.num_layers * w} -> {self.out_features})  reads h0..h{self.num_layers - 1}")
        lines.append(f"  parameters: {self.num_params:,}")
        return "\n".join(lines)

    @property
    def num_params(self) -> int:
        return self.count_params(
            self.in_features, self.out_features, layer_width=self.layer_width,
            num_layers=self.num_layers, num_splits=self.num_splits,
            batch_norm=self.batch_norm, bias=self.has_bias,
        )

    @staticmethod
    def count_params(
        in_features: int, out_features: int, *, layer_width: int, num_layers: int = 4,
        num_splits: int = 2, batch_norm: bool = False, bias: bool = True,
    ) -> int:
        """Learnable parameters, by formula (no module is built).

        With chunk sizes ``m_s`` (see :func:`split_sizes`), ``w = layer_width``, ``L = num_layers``,
        ``C = out_features``::

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

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"layer_width={self.layer_width}, num_layers={self.num_layers}, "
            f"num_splits={self.num_splits}, split_sizes={tuple(self.split_sizes)}, "
            f"activation={self.activation}, dropout={self.dropout}, "
            f"batch_norm={self.batch_norm}, bias={self.has_bias}"
        )
