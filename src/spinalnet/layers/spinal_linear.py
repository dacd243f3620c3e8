"""SpinalLinear: the SpinalNet fully connected block, exact for any sizes and fast.

Reference math (what the block computes, per sample ``x`` of width ``in_features``)::

    chunks = tensor_split(x, num_splits)             # contiguous, sizes differ by <= 1
    h[0]   = act(norm(W[0] @ drop(chunks[0]) + b[0]))
    h[i]   = act(norm(W[i] @ drop(cat(chunks[i % num_splits], h[i-1])) + b[i]))   i >= 1
    y      = W_out @ drop(cat(h[0], ..., h[L-1])) + b_out

Why it is fast: the input half of every ``W[i]`` does not depend on the chain, so the
projections of all layers that read the same chunk are one matrix multiply, and no gradient is
computed for the input slices that only the per-layer form concatenates. Only the narrow
``layer_width x layer_width`` chain is sequential. The parameters are stored per layer
(``W[i] = [input | chain]``: ``layers.{i}.input`` reads the chunk, ``layers.{i}.chain`` reads
``h[i-1]``); each forward concatenates the input weights of the layers sharing a chunk. With
autograd on, a training step is usually one autograd node with a hand-written backward
(:mod:`spinalnet.layers.fused` says when); compiled, traced or exported graphs see the plain operations.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spinalnet.layers.activations import activation_name, create_activation
from spinalnet.layers.arguments import dropout_probability, flag, positive_int
from spinalnet.layers.fused import (FusedPlan, FusedSpinal, PrivateAPI, dropout_mask, dropped_copies, fused_plan,
                                    input_projections, private_api_problem)
from spinalnet.layers.paper_heads import from_paper_state_dict
from spinalnet.layers.sizes import spinal_params
from spinalnet.layers.split import split_sizes


def _dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout with :func:`dropout_mask`, the fused step's sampler, on every device: both paths draw
    the same masks from the same generator state."""
    if not training or p == 0.0:
        return x
    return x * dropout_mask(x, p, 1.0 / (1.0 - p))


#: ``SPINALNET_FUSED=0`` keeps every SpinalLinear on its autograd path (read at every step).
FUSED_ENV = "SPINALNET_FUSED"
#: Devices where the automatic mode (``fused=None``) takes the fused step: those where it was measured to win
#: and is tested (docs/BENCHMARKS.md, section 1). On CUDA (an H200) it measured 1.03x the autograd path and 0.95x
#: at worst (section 7): not a win, so CUDA is not among them; tests/test_layer_cuda.py covers fused=True there.
FUSED_DEVICES = ("cpu",)
_FUSED_CHECK: dict[str, Any] = {}  # {"ok": bool, "why": str}: the first-use check, once per process


def _fused_step_works(required: bool) -> bool:
    """Whether this torch has what the fused step calls and computes it as the autograd path does, checked
    once per process: the private API is there, and a small step (dropout, batch norm) gives the autograd
    path's outputs and gradients. Automatic mode falls back with one warning; ``fused=True`` raises."""
    if not _FUSED_CHECK:
        _FUSED_CHECK.update(ok=True, why="")  # the check's own fused layer must pass while it runs
        why = private_api_problem() or _compare_paths()
        _FUSED_CHECK.update(ok=why is None, why=why or "")
        if why is not None and not required:
            warnings.warn(f"SpinalLinear: the fused training step is off in this process ({why}); every layer "
                          "takes its autograd path, which computes the same function", RuntimeWarning, stacklevel=4)
    if not _FUSED_CHECK["ok"] and required:
        raise RuntimeError(f"SpinalLinear(fused=True): the fused training step cannot run with this torch "
                           f"({_FUSED_CHECK['why']}); use fused=None or False")
    return _FUSED_CHECK["ok"]


def _compare_paths() -> Optional[str]:
    """None when a fused step equals the autograd path on a small double-precision layer; else what differs."""
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
            results = []
            for fused in (True, False):
                torch.manual_seed(0)
                layer = SpinalLinear(7, 3, layer_width=3, num_layers=3, dropout=0.25, batch_norm=True,
                                     fused=fused).double()
                x = torch.randn(5, 7, dtype=torch.double, requires_grad=True)
                y = layer(x)
                y.backward(torch.ones_like(y))
                results.append([y, x.grad, *(p.grad for p in layer.parameters())])
        for a, b in zip(*results):
            if not torch.allclose(a, b, rtol=0, atol=1e-10):
                return "its outputs or gradients differ from the autograd path's"
    except Exception as err:  # a changed op signature, or anything else a new torch may do
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def check_sizes(in_features: int, out_features: int, layer_width: int, num_layers: int,
                num_splits: int) -> tuple[int, int, int, int, int]:
    """Refuse sizes no SpinalLinear can have, else return them as Python ints; shared by the constructor
    and :meth:`SpinalLinear.count_params`."""
    in_features, out_features, layer_width, num_layers, num_splits = (
        positive_int(name, value) for name, value in (
            ("in_features", in_features), ("out_features", out_features), ("layer_width", layer_width),
            ("num_layers", num_layers), ("num_splits", num_splits)))
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
    return in_features, out_features, layer_width, num_layers, num_splits


class SpinalHiddenLayer(nn.Module):
    """Hidden layer ``i`` of a :class:`SpinalLinear`: ``act(norm(input(chunk) + chain(h[i-1])))``.

    ``input`` (with the bias) reads the layer's input chunk and ``chain`` (no bias; ``None`` in layer 0)
    reads the previous hidden output: together they are the paper's one Linear over
    ``cat(chunk, h[i-1])``, split so that the input halves of all layers sharing a chunk are one
    grouped matmul. :meth:`SpinalLinear.forward` usually computes all layers at once from their
    parameters; it calls each layer (and so its hooks, and those of ``input`` and ``chain``) only when
    one of them has hooks.
    """

    def __init__(self, chunk_size: int, width: int, *, chained: bool, batch_norm: bool, bias: bool,
                 activation: str | type[nn.Module]) -> None:
        super().__init__()
        self.input = nn.Linear(chunk_size, width, bias=bias)
        self.chain = nn.Linear(width, width, bias=False) if chained else None
        self.norm = nn.BatchNorm1d(width) if batch_norm else None
        self.act = create_activation(activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """As one ``nn.Linear`` over ``cat(chunk, h[i-1])`` would: uniform, bound ``1/sqrt(fan_in)``."""
        fan_in = self.input.in_features + (self.chain.in_features if self.chain is not None else 0)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            for param in (self.input.weight, self.input.bias, self.chain.weight if self.chain is not None else None):
                if param is not None:
                    param.uniform_(-bound, bound)
        if self.norm is not None:
            self.norm.reset_parameters()

    def forward(self, chunk: Tensor, previous: Optional[Tensor] = None) -> Tensor:
        """``act(norm(input(chunk) + chain(previous)))``, on inputs after dropout (as the Linear of the
        authors' ``Sequential`` sees them); ``previous`` is ``h[i-1]``, None in layer 0."""
        z = self.input(chunk)
        chain = self.chain
        if chain is not None:
            if previous is None:
                raise ValueError("a chained hidden layer needs the previous layer's output")
            z = z + chain(previous)
        norm = self.norm
        if norm is not None:
            z = norm(z)
        return self.act(z)


class SpinalLinear(nn.Module):
    """A SpinalNet block: ``num_layers`` narrow hidden layers with gradual input, one output Linear.

    Hidden layer ``i`` (0-based) reads input chunk ``i % num_splits`` concatenated with the
    output of layer ``i - 1``; the output Linear reads all hidden outputs. Per hidden layer:
    Dropout -> Linear -> BatchNorm1d (if ``batch_norm``) -> activation; output: Dropout -> Linear.
    ``num_layers`` must be at least ``num_splits`` so that every input feature is read.

    State dict: hidden layer ``i`` is ``layers.{i}`` with ``input.weight`` ``(w, chunk size)``,
    ``input.bias`` ``(w,)``, ``chain.weight`` ``(w, w)`` for ``i >= 1`` and ``norm.*`` with batch norm;
    the output Linear is ``output.*``. :meth:`from_paper` loads the authors' own heads.

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
        fused: the training step's path. ``None`` (automatic): the fused one-node step on the CPU, where it is
            measured and tested, the autograd path elsewhere; ``True``: the fused step on every device;
            ``False``: the autograd path. The environment variable ``SPINALNET_FUSED=0`` forces the autograd
            path for every layer. Both paths compute the same function with the same dropout masks.
    """

    __jit_unused_properties__ = ["num_params", "training_path"]

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
        fused: Optional[bool] = None,
    ) -> None:
        super().__init__()
        in_features, out_features, layer_width, num_layers, num_splits = check_sizes(
            in_features, out_features, layer_width, num_layers, num_splits)
        dropout, batch_norm, bias = dropout_probability(dropout), flag("batch_norm", batch_norm), flag("bias", bias)
        fused = None if fused is None else flag("fused", fused)
        create_activation(activation)  # validates before anything is built

        self.in_features = in_features
        self.out_features = out_features
        self.layer_width = layer_width
        self.num_layers = num_layers
        self.num_splits = num_splits
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)
        self.has_bias = bool(bias)
        self.fused = fused
        self.activation = activation_name(activation)
        self._activation = activation  # what the caller passed, to build a like-configured head
        self.split_sizes = split_sizes(in_features, num_splits)
        self.split_offsets = [sum(self.split_sizes[:s]) for s in range(num_splits)]
        self.layers = nn.ModuleList(
            SpinalHiddenLayer(self.split_sizes[i % num_splits], layer_width, chained=i > 0, batch_norm=batch_norm,
                              bias=bias, activation=activation)
            for i in range(num_layers)
        )
        self.output = nn.Linear(num_layers * layer_width, out_features, bias=bias)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (``torch.save(module)``, ``deepcopy``) without the per-process plan cache of the forward."""
        return {k: v for k, v in super().__getstate__().items() if k != "_fused_plan_cache"}

    def reset_parameters(self) -> None:
        """Initialise each hidden layer as ``nn.Linear`` would (uniform, bound 1/sqrt(fan_in))."""
        for layer in self.layers:
            layer.reset_parameters()
        self.output.reset_parameters()

    def options(self) -> dict[str, Any]:
        """The keyword arguments that build a head like this one (any ``out_features``)."""
        return dict(layer_width=self.layer_width, num_layers=self.num_layers, num_splits=self.num_splits,
                    activation=self._activation, dropout=self.dropout, batch_norm=self.batch_norm,
                    bias=self.has_bias, fused=self.fused)

    # ------------------------------------------------------------------ forward
    def _input_parameters(self) -> tuple[list[Tensor], list[Tensor]]:
        """Every layer's ``input.weight`` and ``input.bias`` (no biases: empty), in one pass."""
        weights: list[Tensor] = []
        biases: list[Tensor] = []
        for layer in self.layers:
            linear = layer.input
            weights.append(linear.weight)
            layer_bias = linear.bias
            if layer_bias is not None:
                biases.append(layer_bias)
        return weights, biases

    def _input_projections(self, x: Tensor) -> list[Tensor]:
        """``input(drop(chunk))`` of every hidden layer: one grouped matmul per chunk."""
        weights, biases = self._input_parameters()
        p = self.dropout if self.training else 0.0
        return input_projections(x, weights, biases, self.layer_width, self.split_offsets, self.split_sizes, p,
                                 torch.is_grad_enabled())[0]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"SpinalLinear expected input of shape (*, {self.in_features}), got {list(x.shape)}"
            )
        shape = list(x.shape)
        shape[-1] = self.out_features
        flat = x.dim() == 2
        x = x if flat else x.reshape(-1, self.in_features)
        fused = None if torch.jit.is_scripting() else self._fused_plan(x)
        if fused is not None:
            y = self._fused_forward(fused, x)
            return y if flat else y.reshape(shape)
        if not torch.jit.is_scripting():  # (nested: TorchScript then compiles none of it)
            if self._layers_hooked():
                y = self._forward_layer_by_layer(x)
                return y if flat else y.reshape(shape)
        proj = self._input_projections(x)
        hidden: list[Tensor] = []
        h = x
        for i, layer in enumerate(self.layers):  # the sequential part: chain, norm, activation
            z = proj[i]
            chain = layer.chain
            if chain is not None:
                z = F.linear(_dropout(h, self.dropout, self.training), chain.weight, z)
            norm = layer.norm
            if norm is not None:
                z = norm(z)
            if not torch.jit.is_scripting():
                if chain is None and norm is None and getattr(layer.act, "inplace", False):
                    z = z.clone()  # an in-place activation must not write into a view of the grouped product
            h = layer.act(z)
            hidden.append(h)
        feats = _dropout(torch.cat(hidden, dim=1), self.dropout, self.training)
        y = self.output(feats)
        return y if flat else y.reshape(shape)

    @torch.jit.unused
    def _layers_hooked(self) -> bool:
        """Hooks on a hidden layer or its Linears (pruning, ``weight_norm``, ``spectral_norm``, a feature
        probe) compute or watch what those modules see, so they are called instead of read."""
        return PrivateAPI.has_hooks([m for layer in self.layers for m in (layer, layer.input, layer.chain)])

    @torch.jit.unused
    def _forward_layer_by_layer(self, x: Tensor) -> Tensor:
        """The autograd path with every hidden layer called as a module. Dropout is drawn in the grouped
        path's order (each chunk's copies for all its layers, then the chain's, then the output's), so a
        hook does not change the masks of a seeded run."""
        n, S, L = x.shape[0], self.num_splits, self.num_layers
        drop = self.training and self.dropout > 0.0
        chunks: list[Tensor] = [x] * L
        for s in range(S):
            members = range(s, L, S)
            chunk = x.narrow(1, self.split_offsets[s], self.split_sizes[s])
            if drop:  # as the grouped path draws it: each layer its own copy of the chunk
                copies = dropped_copies(chunk, len(members), self.dropout)[0]
            else:
                copies = chunk.unsqueeze(0).expand(len(members), n, chunk.shape[1])
            for k, i in enumerate(members):
                chunks[i] = copies[k]
        hidden: list[Tensor] = []
        for i, layer in enumerate(self.layers):
            previous = _dropout(hidden[-1], self.dropout, self.training) if i > 0 else None
            hidden.append(layer(chunks[i], previous))
        return self.output(_dropout(torch.cat(hidden, dim=1), self.dropout, self.training))

    @torch.jit.unused
    def _fused_plan(self, x: Tensor) -> Optional[tuple[FusedPlan, list[Tensor]]]:
        if not torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return None  # graphs see the plain operations (and never read the environment switch)
        if not self._fused_on(x.device.type):
            return None
        return fused_plan(self, x)

    @torch.jit.unused
    def _fused_on(self, device_type: str) -> bool:
        """The switch: ``fused`` (automatic: :data:`FUSED_DEVICES`), ``SPINALNET_FUSED=0``, and the first-use check."""
        if self.fused is False or os.environ.get(FUSED_ENV) == "0":
            return False
        if self.fused is None and device_type not in FUSED_DEVICES:
            return False
        return _fused_step_works(required=self.fused is True)

    @property
    @torch.jit.unused
    def training_path(self) -> str:
        """``"fused"`` or ``"autograd"``: the path a training step takes on the device of this layer's
        parameters (the fused step also steps aside for hooks, tracing, autocast, ``torch.func``, ...)."""
        device = self.output.weight.device.type
        return "fused" if device != "meta" and self._fused_on(device) else "autograd"

    @torch.jit.unused
    def _fused_forward(self, fused: tuple[FusedPlan, list[Tensor]], x: Tensor) -> Tensor:
        """The function of :meth:`forward`'s autograd path, as one autograd node (:mod:`spinalnet.layers.fused`)."""
        plan, params = fused
        return FusedSpinal.apply(plan, x, *params)

    # ------------------------------------------------------------------ the authors' heads
    @classmethod
    def from_paper(cls, state_dict: Mapping[str, Tensor], *, activation: str | type[nn.Module] = "relu",
                   dropout: float | None = None, in_features: int | None = None, prefix: str = "") -> SpinalLinear:
        """Build a SpinalLinear equal (in eval mode) to a head saved by the authors' scripts.

        See :func:`spinalnet.layers.paper_heads.from_paper_state_dict` for the accepted namings and rules.
        """
        head = from_paper_state_dict(state_dict, activation=activation, dropout=dropout, in_features=in_features,
                                     prefix=prefix)
        layer = cls(head.in_features, head.out_features, **head.options)
        own = layer.state_dict()
        try:
            layer.load_state_dict({**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")},
                                   **head.state_dict})
        except RuntimeError as err:  # a bias or norm vector of another size, a value that is not a tensor
            details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
            raise ValueError("the head's tensors do not fit the SpinalLinear they describe: "
                             f"{details[0] if details else err}") from None
        return layer

    # ------------------------------------------------------------------ views
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
        lines.append(f"  training step: {self._path_text()}")
        return "\n".join(lines)

    @torch.jit.unused
    def _path_text(self) -> str:
        device = self.output.weight.device.type
        if os.environ.get(FUSED_ENV) == "0":
            return f"autograd ({FUSED_ENV}=0)"
        if device == "meta":  # no device yet: the rule
            return {None: "automatic (fused on the CPU, autograd elsewhere)", True: "fused",
                    False: "autograd"}[self.fused]
        return f"{self.training_path} on {device}"

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
        """Learnable parameters, by formula (no module is built): :func:`spinalnet.layers.sizes.spinal_params`."""
        in_features, out_features, layer_width, num_layers, num_splits = check_sizes(
            in_features, out_features, layer_width, num_layers, num_splits)
        return spinal_params(in_features, out_features, layer_width, num_layers, num_splits, batch_norm, bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"layer_width={self.layer_width}, num_layers={self.num_layers}, "
            f"num_splits={self.num_splits}, split_sizes={tuple(self.split_sizes)}, "
            f"activation={self.activation}, dropout={self.dropout}, "
            f"batch_norm={self.batch_norm}, bias={self.has_bias}"
            + ("" if self.fused is None else f", fused={self.fused}")
        )
