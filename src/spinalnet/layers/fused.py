"""SpinalLinear's training step as one autograd node, with a hand-written backward.

Why: at the paper's small shapes (the MNIST head 320 / 8 x 6, the VGG head at batch 64) a step is a few
dozen tiny operations, and autograd's bookkeeping around each of them (graph nodes, saved-tensor
wrappers, transposes, one gradient accumulation per intermediate) costs as much as the arithmetic.
Here the forward runs without recording anything and the backward calls the same ATen kernels that
autograd would (``threshold_backward``, ``native_batch_norm_backward``, ...) directly, so a step has
one graph node instead of about fifty. Gradients go straight into each per-layer parameter's shape:
the grouped weight gradient of a chunk is one matrix product whose row blocks are the layers' gradients.

:func:`fused_plan` says when this applies: known activations, plain BatchNorm1d, no autocast, no tracing,
compiling, ``torch.func`` transform or forward-mode AD, a non-empty batch of ordinary tensors (not meta,
not made under inference mode), no forward or backward hooks on the block's inner modules, no
parametrized weights. Otherwise
:class:`spinalnet.layers.spinal_linear.SpinalLinear` runs its autograd path, which computes the same function. The
backward uses the modes and options of its forward (a norm switched to eval in between does not change
it). A second derivative (``create_graph=True``) recomputes the step with autograd from the input, the
parameters and the saved masks.

The input projection (:func:`input_projections`) and the dropout sampler (:func:`dropout_mask`) live here and
serve both paths, so that they do the same arithmetic and draw the same masks. Every private torch name
either path reads is in :class:`PrivateAPI`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as module_globals

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805

Fn = Callable[[Tensor], Tensor]
GradFn = Callable[[Tensor, Tensor], Tensor]
Grad = Optional[Tensor]
ChunkGrads = Tuple[Optional[Sequence[Tensor]], Optional[Sequence[Tensor]], Optional[Tensor]]  # weights, biases, input


@dataclass(frozen=True)
class ActivationMath:
    """An activation module's forward and its ATen backward, which reads its input or its output."""

    forward: Fn
    backward: GradFn
    reads_input: bool


# ---------------------------------------------------------------------------------------------- the private API
class PrivateAPI:
    """Every private ATen op and torch internal that SpinalLinear uses, looked up in this one place.

    A torch release may rename or remove any of them; :func:`private_api` then reports what is missing and
    :class:`~spinalnet.layers.spinal_linear.SpinalLinear` keeps to its autograd path (with one warning in
    its automatic mode) instead of failing a run; its first-use check also catches one that computes
    something else. The module registries (``_modules``, ``_parameters``, the hook dictionaries) are read on
    every training step because no public reader is as cheap: reading through ``nn.Module.__getattr__``
    measured several times slower (docs/BENCHMARKS.md, section 1, "How SpinalLinear computes"); no public
    call says whether a module has hooks.
    """

    #: The hook registries ``nn.Module.__call__`` reads, on every module and global.
    HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                    "_global_backward_pre_hooks")

    def __init__(self) -> None:
        aten = torch.ops.aten
        for name in ("threshold_backward", "tanh_backward", "sigmoid_backward", "silu_backward", "mish_backward",
                     "hardswish_backward", "elu_backward", "leaky_relu_backward", "gelu_backward",
                     "native_batch_norm_backward"):
            setattr(self, name, getattr(aten, name))
        self.native_batch_norm = torch.native_batch_norm
        self.transforms_active = torch._C._are_functorch_transforms_active
        self._forward_ad = torch.autograd.forward_ad
        self.forward_ad_active()  # the level must exist
        if not isinstance(self.versions([torch.zeros(1)])[0], int):
            raise AttributeError("Tensor._version is not a version counter")
        self._check_registries()

    @classmethod
    def _check_registries(cls) -> None:
        """The module registries read below exist and hold what they held (no random numbers drawn)."""
        child, parent = nn.Module(), nn.Module()
        child.weight = nn.Parameter(torch.zeros(1))
        parent.child = child
        if cls.parameters([child], "weight")[0] is not child.weight \
                or cls.children([parent])[0].get("child") is not child:
            raise AttributeError("nn.Module._parameters or _modules no longer hold a module's parameters and children")
        for name in cls.HOOKS:
            getattr(child, name)
        for name in cls.GLOBAL_HOOKS:
            getattr(module_globals, name)

    def forward_ad_active(self) -> bool:
        """Inside forward-mode AD (``jvp``, gradcheck's forward check)."""
        return self._forward_ad._current_level >= 0

    @staticmethod
    def versions(tensors: Iterable[Tensor]) -> tuple[int, ...]:
        """The version counters of ``tensors``: a second derivative checks that none changed in place."""
        return tuple(t._version for t in tensors)

    @staticmethod
    def children(modules: Iterable[nn.Module]) -> list[dict[str, Optional[nn.Module]]]:
        """Each module's registered submodules by name."""
        return [m._modules for m in modules]

    @staticmethod
    def parameters(modules: Iterable[nn.Module], name: str) -> list[Optional[Tensor]]:
        """Each module's registered parameter ``name``; None where it has no such parameter or where it is
        computed (a parametrization, weight norm): such a module must be called, not read."""
        return [m._parameters.get(name) for m in modules]

    @staticmethod
    def has_hooks(modules: Iterable[Optional[nn.Module]]) -> bool:
        """Forward or backward hooks, global or on these modules: the autograd path calls the modules, so they
        run. A torch without these registries counts as hooked, so that any hook it has still runs."""
        g = module_globals
        try:
            if g._global_forward_hooks or g._global_forward_pre_hooks or g._global_backward_hooks \
                    or g._global_backward_pre_hooks:
                return True
            for m in modules:  # a plain loop: this runs on every training step
                if m is not None and (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                                      or m._backward_pre_hooks):
                    return True
        except AttributeError:
            return True
        return False


_API: list = []  # [PrivateAPI] or [reason it is unavailable], filled at the first call


def private_api() -> Optional[PrivateAPI]:
    """The private API, or None when some part of it is missing (:func:`private_api_problem` says which)."""
    if not _API:
        try:
            _API.append(PrivateAPI())
        except (AttributeError, RuntimeError) as err:  # torch.ops raises either for an unknown op
            _API.append(f"{type(err).__name__}: {err}")
    return _API[0] if isinstance(_API[0], PrivateAPI) else None


def private_api_problem() -> Optional[str]:
    private_api()
    return None if isinstance(_API[0], PrivateAPI) else _API[0]


# ---------------------------------------------------------------------------------------------- activations
def _plain_activation(kind: type, api: PrivateAPI) -> Optional[tuple[Fn, GradFn, bool]]:
    """Activations without options: (forward, ATen backward, the backward reads the input (else the output))."""
    table: dict[type, tuple[Fn, GradFn, bool]] = {
        nn.ReLU: (torch.relu, lambda g, h: api.threshold_backward(g, h, 0), False),
        nn.Identity: (lambda z: z, lambda g, h: g, False),
        nn.Tanh: (torch.tanh, api.tanh_backward, False),
        nn.Sigmoid: (torch.sigmoid, api.sigmoid_backward, False),
        nn.SiLU: (F.silu, api.silu_backward, True),
        nn.Mish: (F.mish, api.mish_backward, True),
        nn.Hardswish: (F.hardswish, api.hardswish_backward, True),
        nn.SELU: (F.selu, lambda g, z: api.elu_backward(g, _SELU_ALPHA, _SELU_SCALE, 1, False, z), True),
    }
    return table.get(kind)


_OPTIONED_ACTIVATIONS = (nn.LeakyReLU, nn.GELU, nn.ELU)


def _activation_options(act: nn.Module) -> tuple:
    """The options an activation's function depends on; a plan is rebuilt when they change."""
    return tuple(act.__dict__.get(name) for name in ("negative_slope", "approximate", "alpha"))


def _activation_math(act: nn.Module, api: PrivateAPI) -> Optional[ActivationMath]:
    """The functions autograd would run for an activation module, or None when it is not a known one.

    Exact types only: a subclass may change the function, so it takes the autograd path. Options
    (slope, alpha, approximation) are bound now: a step's backward uses the values of its forward, and
    a changed option builds a new plan. An ``inplace`` flag only saves memory; the fused step computes
    out of place.
    """
    kind = type(act)
    plain = _plain_activation(kind, api)
    if plain is not None:
        return ActivationMath(*plain)
    slope, approximate, alpha = _activation_options(act)
    if kind is nn.LeakyReLU:
        return ActivationMath(lambda z: F.leaky_relu(z, slope),
                              lambda g, z: api.leaky_relu_backward(g, z, slope, False), True)
    if kind is nn.GELU:
        return ActivationMath(lambda z: F.gelu(z, approximate=approximate),
                              lambda g, z: api.gelu_backward(g, z, approximate=approximate), True)
    if kind is nn.ELU:
        return ActivationMath(lambda z: F.elu(z, alpha),
                              lambda g, z: api.elu_backward(g, alpha, 1, 1, False, z), True)
    return None


def _plain_batch_norm(norm: Optional[nn.Module]) -> bool:
    return norm is None or (type(norm) is nn.BatchNorm1d and norm.affine and norm.track_running_stats
                            and norm.running_mean is not None and norm.num_batches_tracked is not None)


# ---------------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class FusedPlan:
    """What one fused step needs besides the tensors: the block's structure and its modules."""

    width: int
    groups: tuple[tuple[int, ...], ...]  # layer indices reading chunk s, for every chunk s
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    has_bias: bool
    dropout: float  # 0.0 unless training with dropout
    act_math: tuple[ActivationMath, ...]
    norms: tuple[Optional[nn.BatchNorm1d], ...]
    any_norm: bool
    reads_input: bool  # some activation's backward reads its input (else only outputs are kept)
    group_widths: tuple[tuple[int, ...], ...]  # (w,) * count per chunk, for split_with_sizes
    hidden_widths: tuple[int, ...]  # (w,) * L
    api: PrivateAPI
    bound_options: tuple[tuple[nn.Module, tuple], ...]  # (activation, its options) where the plan bound options


class _Block(NamedTuple):
    """A SpinalLinear's inner modules, as its registries hold them at this step."""

    output: nn.Module
    layers: list[nn.Module]
    acts: tuple[nn.Module, ...]
    norms: tuple[Optional[nn.Module], ...]
    inputs: list[nn.Module]
    chains: list[nn.Module]  # layers 1..L-1

    @classmethod
    def read(cls, module: nn.Module, api: PrivateAPI) -> _Block:
        (top,) = api.children([module])
        (registry,) = api.children([top["layers"]])
        layers = list(registry.values())
        parts = api.children(layers)
        return cls(top["output"], layers, tuple(m["act"] for m in parts), tuple(m.get("norm") for m in parts),
                   [m["input"] for m in parts], [m["chain"] for m in parts[1:]])

    def all(self) -> tuple[Optional[nn.Module], ...]:
        return (self.output, *self.layers, *self.acts, *self.norms, *self.inputs, *self.chains)


def _build_plan(module: nn.Module, acts: tuple[nn.Module, ...], norms: tuple, api: PrivateAPI) -> Optional[FusedPlan]:
    math = tuple(_activation_math(act, api) for act in acts)
    if any(m is None for m in math) or not all(_plain_batch_norm(n) for n in norms):
        return None
    L, S, w = module.num_layers, module.num_splits, module.layer_width
    groups = tuple(tuple(range(s, L, S)) for s in range(S))
    return FusedPlan(width=w, groups=groups, offsets=tuple(module.split_offsets), sizes=tuple(module.split_sizes),
                     has_bias=module.has_bias, dropout=module.dropout if module.training else 0.0,
                     act_math=math, norms=norms, any_norm=any(n is not None for n in norms),  # type: ignore
                     reads_input=any(m.reads_input for m in math),
                     group_widths=tuple((w,) * len(g) for g in groups), hidden_widths=(w,) * L, api=api,
                     bound_options=tuple((a, _activation_options(a)) for a in acts
                                         if type(a) in _OPTIONED_ACTIVATIONS))


def _step_api(x: Tensor) -> Optional[PrivateAPI]:
    """The private API when a fused step may run on ``x`` in this context, else None."""
    if not torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return None  # graphs see the plain operations (and fuse them themselves)
    api = private_api()
    if api is None or api.transforms_active() or not x.is_floating_point():
        return None
    if x.shape[0] == 0 or x.is_meta or x.is_inference():
        return None  # nothing to gain; autocast has no meta device; inference tensors have no version counter
    if torch.is_autocast_enabled(x.device.type):
        return None
    if api.forward_ad_active():
        return None  # FusedSpinal has no jvp
    return api


def _plan_key(module: nn.Module, block: _Block) -> tuple:
    """What a cached plan was built from: the modes, options and inner modules it depends on."""
    return (module.training, module.dropout, module.has_bias, block.acts, block.norms,
            tuple((n.training, n.track_running_stats, n.affine, n.running_mean is None, n.num_batches_tracked is None)
                  for n in block.norms if n is not None))


def _options_changed(plan: Optional[FusedPlan]) -> bool:
    return plan is not None and any(_activation_options(a) != options for a, options in plan.bound_options)


def _cached_plan(module: nn.Module, block: _Block, api: PrivateAPI) -> Optional[FusedPlan]:
    """The plan cached on the module, built again when its mode, an activation or norm module, or an
    activation's option changed."""
    key = _plan_key(module, block)
    cached = module.__dict__.get("_fused_plan_cache")
    if cached is None or cached[0] != key or _options_changed(cached[1]):
        cached = module.__dict__["_fused_plan_cache"] = (key, _build_plan(module, block.acts, block.norms, api))
    return cached[1]


def _step_parameters(plan: FusedPlan, block: _Block, api: PrivateAPI) -> Optional[list[Tensor]]:
    """The parameters in :func:`_unpack`'s order, read afresh (they may have been replaced); None when one is
    computed by its module (weight norm, a parametrization): the autograd path calls that module."""
    params = api.parameters(block.inputs, "weight")
    if plan.has_bias:
        params += api.parameters(block.inputs, "bias")
    params += api.parameters(block.chains, "weight")
    if plan.any_norm:
        norms = [n for n in block.norms if n is not None]
        params += [p for pair in zip(api.parameters(norms, "weight"), api.parameters(norms, "bias")) for p in pair]
    params += api.parameters([block.output], "weight")
    if plan.has_bias:
        params += api.parameters([block.output], "bias")
    return None if any(p is None for p in params) else params  # type: ignore[return-value]


def fused_plan(module: nn.Module, x: Tensor) -> Optional[tuple[FusedPlan, list[Tensor]]]:
    """The plan and parameters for a fused step of a SpinalLinear on 2-D ``x``, or None for the autograd path.

    The plan is cached on the module; parameters are read afresh on every call.
    """
    api = _step_api(x)
    if api is None:
        return None
    block = _Block.read(module, api)
    plan = _cached_plan(module, block, api)
    if plan is None or (x.shape[0] < 2 and any(n is not None and n.training for n in block.norms)):
        return None  # the autograd path raises BatchNorm's own error for one sample
    if api.has_hooks(block.all()):
        return None  # the autograd path calls those modules, so their hooks run
    params = _step_parameters(plan, block, api)
    return None if params is None else (plan, params)


def _unpack(plan: FusedPlan, params: Sequence) -> tuple[list, list, list, list, list]:
    """``fused_plan``'s flat parameters (or anything in their order) as input weights, input biases, chain
    weights (None first), per-layer norm (weight, bias) and the output's (weight, bias)."""
    L = len(plan.act_math)
    it = iter(params)
    w_in = [next(it) for _ in range(L)]
    b_in = [next(it) for _ in range(L)] if plan.has_bias else [None] * L
    w_chain = [None] + [next(it) for _ in range(L - 1)]
    bn = [(next(it), next(it)) if norm is not None else (None, None) for norm in plan.norms]
    out = [next(it), next(it) if plan.has_bias else None]
    return w_in, b_in, w_chain, bn, out


# ---------------------------------------------------------------------------------------------- shared by both paths
def dropout_mask(x: Tensor, p: float, scale: float) -> Tensor:
    """Inverted dropout's mask for ``x``: ``scale`` where ``rand >= p`` (kept), else 0; ``x * mask`` drops.

    A ``rand`` mask is faster than ``bernoulli_`` on CPU (docs/BENCHMARKS.md, section 1, "Dropout masks");
    ``x * mask`` equals ``x * keep * scale`` exactly (``keep`` is 0 or 1), in one product.
    """
    return torch.rand_like(x).ge_(p).mul_(scale)


def grouped(count: int, width: int, chunk_size: int, grad_enabled: bool) -> bool:
    """Whether the ``count`` layers reading one chunk get one matmul over their concatenated input weights.

    The concatenation copies those weights in every forward: with autograd (training) it pays for groups up
    to 2^19 elements, without autograd only up to 2^14 (docs/BENCHMARKS.md, section 1, "Grouped input
    projections" and "Inference reads its parameters"). (Literals: TorchScript reads no module globals.)
    """
    return count * width * chunk_size <= ((1 << 19) if grad_enabled else (1 << 14))


def dropped_copies(chunk: Tensor, count: int, p: float) -> Tuple[Tensor, Tensor]:
    """``count`` copies of ``chunk`` stacked (count, n, size), each dropped with its own mask, as separate Dropout
    modules would draw them; and the masks."""
    copies = chunk.unsqueeze(0).expand(count, chunk.shape[0], chunk.shape[1])
    mask = dropout_mask(copies, p, 1.0 / (1.0 - p))
    return copies * mask, mask


def _project_chunk(chunk: Tensor, dropped: Optional[Tensor], weights: List[Tensor], biases: List[Tensor],
                   width: int, group: bool) -> List[Tensor]:
    """``input(drop(chunk))`` of the layers reading one chunk (``biases`` empty without biases)."""
    if dropped is not None:  # every layer reads its own dropped copy: one batched product, whatever the size
        stacked = torch.stack(weights).transpose(1, 2)
        if len(biases) > 0:
            return torch.baddbmm(torch.stack(biases).unsqueeze(1), dropped, stacked).unbind(0)
        return torch.bmm(dropped, stacked).unbind(0)
    if group and len(weights) > 1:
        bias = torch.cat(biases) if len(biases) > 0 else None
        # split, not slicing: its backward is one cat, not a zero-filled tensor per layer
        return F.linear(chunk, torch.cat(weights), bias).split_with_sizes([width] * len(weights), dim=1)
    return [F.linear(chunk, weights[k], biases[k] if len(biases) > 0 else None) for k in range(len(weights))]


def input_projections(x: Tensor, weights: List[Tensor], biases: List[Tensor], width: int, offsets: List[int],
                      sizes: List[int], p: float,
                      grad_enabled: bool) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
    """``input(drop(chunk))`` of every hidden layer, one product per chunk (:func:`grouped`), and with dropout
    (``p > 0``) each chunk's dropped copies and masks, which the fused step keeps for its backward.

    The input half of every layer does not depend on the chain, so the layers reading one chunk share one
    product. Both paths compute their projections here, so they do the same arithmetic and draw the same
    masks in the same order. ``weights``, ``biases``: per layer (``biases`` empty without biases); ``width``:
    the layers' width as a Python int (a traced graph then holds no shape arithmetic); ``grad_enabled``:
    whether the products are differentiated (the fused step's are, by its own backward).
    """
    L, S = len(weights), len(sizes)
    proj: List[Tensor] = [x] * L
    copies: List[Tensor] = []
    masks: List[Tensor] = []
    for s in range(S):
        members = list(range(s, L, S))
        # narrow, not x[:, a:b]: older torch.export refuses a dynamic batch under that slice (a guard N != 2**63-1)
        chunk = x.narrow(1, offsets[s], sizes[s])
        dropped: Optional[Tensor] = None
        if p > 0.0:
            dropped, mask = dropped_copies(chunk, len(members), p)
            copies.append(dropped)
            masks.append(mask)
        parts = _project_chunk(chunk, dropped, [weights[i] for i in members],
                               [biases[i] for i in members] if len(biases) > 0 else biases,
                               width, grouped(len(members), width, sizes[s], grad_enabled))
        for k, i in enumerate(members):
            proj[i] = parts[k]
    return proj, copies, masks


# ---------------------------------------------------------------------------------------------- forward
def _batch_norm_forward(api: PrivateAPI, norm: nn.BatchNorm1d, z: Tensor, weight: Tensor,
                        bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``norm(z)`` as nn.BatchNorm1d computes it (running statistics included), keeping what backward needs."""
    factor = 0.0
    if norm.training:
        norm.num_batches_tracked.add_(1)
        factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    return api.native_batch_norm(z, weight, bias, norm.running_mean, norm.running_var, norm.training,
                                 factor, norm.eps)


class _Kept:
    """What the hidden layers' forward keeps for the backward, in layer order."""

    def __init__(self) -> None:
        self.hidden: list[Tensor] = []
        self.masks: list[Tensor] = []  # with dropout: the chain's masks (layers 1..L-1), then the output's
        self.norm_saved: list[Tensor] = []  # per layer with a norm: its input, saved mean and inverse std
        self.running: list[Tensor] = []  # running mean and variance of the norms in eval mode (backward reads them)
        self.act_in: list[Tensor] = []  # per layer, when some activation's backward reads its input


def _drop_keeping_mask(h: Tensor, p: float, kept: _Kept) -> Tensor:
    """``h`` after inverted dropout (``p > 0``); the mask is kept (the backward multiplies by it)."""
    mask = dropout_mask(h, p, 1.0 / (1.0 - p))
    kept.masks.append(mask)
    return h * mask


def _norm_forward(api: PrivateAPI, norm: nn.BatchNorm1d, z: Tensor, params: tuple, kept: _Kept) -> Tensor:
    """One layer's batch norm, keeping its input and statistics (and in eval mode the running ones) for the
    backward."""
    normed, mean, invstd = _batch_norm_forward(api, norm, z, *params)
    kept.norm_saved += (z, mean, invstd)
    if not norm.training:
        kept.running += (norm.running_mean, norm.running_var)
    return normed


def _hidden_forward(plan: FusedPlan, x: Tensor, proj: list[Tensor], w_chain: list, bn: list, kept: _Kept) -> Tensor:
    """The sequential part, layer after layer: chain, norm, activation. Returns the hidden outputs side by side."""
    p, h = plan.dropout, x
    for i, math in enumerate(plan.act_math):
        z = proj[i]
        if i > 0:
            z = F.linear(_drop_keeping_mask(h, p, kept) if p > 0.0 else h, w_chain[i], z)
        norm = plan.norms[i]
        if norm is not None:
            z = _norm_forward(plan.api, norm, z, bn[i], kept)
        if plan.reads_input:
            kept.act_in.append(z)
        h = math.forward(z)
        kept.hidden.append(h)
    return torch.cat(kept.hidden, dim=1)


def _save(ctx, **groups: Sequence[Tensor]) -> None:
    """``save_for_backward`` of named groups of tensors, read back by :class:`_Saved`."""
    ctx.group_sizes = tuple((name, len(tensors)) for name, tensors in groups.items())
    ctx.save_for_backward(*(t for tensors in groups.values() for t in tensors))


class _Saved:
    """What :meth:`FusedSpinal.forward` saved, as tuples by group name."""

    def __init__(self, ctx) -> None:
        tensors, at = ctx.saved_tensors, 0
        for name, size in ctx.group_sizes:
            setattr(self, name, tensors[at: at + size])
            at += size


class FusedSpinal(torch.autograd.Function):
    """``SpinalLinear.forward`` on a 2-D input with its backward written out (see the module docstring).

    Saved for backward, as autograd would save them: the input (without dropout), the hidden outputs, the
    weights the backward multiplies by (not the biases), the norms' running statistics in eval mode, and
    only with dropout, batch norm or an activation whose backward reads its input, what those need. The
    input and all parameters are also referenced (not saved) for a second derivative, which checks
    that they have not changed in place.
    """

    @staticmethod
    def forward(ctx, plan: FusedPlan, x: Tensor, *params: Tensor) -> Tensor:  # type: ignore[override]
        w_in, b_in, w_chain, bn, (w_out, b_out) = _unpack(plan, params)
        proj, dropped, input_masks = input_projections(x, w_in, b_in if plan.has_bias else [], plan.width,
                                                       list(plan.offsets), list(plan.sizes), plan.dropout, True)
        # The backward uses the norms' modes of this forward, whatever they are by then.
        norm_modes = tuple(None if n is None else (n.training, n.eps) for n in plan.norms)
        kept = _Kept()
        feats = _hidden_forward(plan, x, proj, w_chain, bn, kept)
        y = F.linear(_drop_keeping_mask(feats, plan.dropout, kept) if plan.dropout > 0.0 else feats, w_out, b_out)

        ctx.plan, ctx.norm_modes = plan, norm_modes
        ctx.inputs = (x, *params)
        ctx.versions = plan.api.versions(ctx.inputs)
        _save(ctx, x=(x,) if plan.dropout == 0.0 else (), feats=(feats,), w_out=(w_out,),
              w_in=w_in if x.requires_grad else (), w_chain=w_chain[1:],
              bn_weight=[pair[0] for pair in bn if pair[0] is not None], running=kept.running, dropped=dropped,
              input_mask=input_masks if x.requires_grad else (), masks=kept.masks, norm_saved=kept.norm_saved,
              act_in=kept.act_in)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Optional[Tensor], ...]:  # type: ignore[override]
        if torch.is_grad_enabled():  # backward(create_graph=True): gradients to differentiate again
            return _replayed_backward(ctx, grad_y)
        return _fast_backward(ctx, grad_y)


# ---------------------------------------------------------------------------------------------- second derivative
def _replayed_projections(plan: FusedPlan, saved: _Saved, x: Tensor, w_in: list, b_in: list) -> list[Tensor]:
    """Every layer's ``input(drop(chunk))`` again, one product per layer, with the forward's masks: the input is
    dropped again when it needs a gradient, else the saved dropped copy is read."""
    proj: list[Tensor] = [x] * len(plan.act_math)
    for s, members in enumerate(plan.groups):
        chunk = x[:, plan.offsets[s]: plan.offsets[s] + plan.sizes[s]]
        for k, i in enumerate(members):
            if plan.dropout == 0.0:
                dropped = chunk
            elif saved.input_mask:
                dropped = chunk * saved.input_mask[s][k]
            else:
                dropped = saved.dropped[s][k]
            proj[i] = F.linear(dropped, w_in[i], b_in[i])
    return proj


def _replay(ctx, x: Tensor, params: Sequence[Tensor]) -> Tensor:
    """The forward step again, recorded by autograd: the same dropout masks, and batch norm in the mode and
    on the statistics of the forward (the batch's in training, the running ones in eval) without
    updating the running ones."""
    plan: FusedPlan = ctx.plan
    saved = _Saved(ctx)
    w_in, b_in, w_chain, bn, (w_out, b_out) = _unpack(plan, params)
    p = plan.dropout
    proj = _replayed_projections(plan, saved, x, w_in, b_in)
    hidden: list[Tensor] = []
    running = iter(saved.running)
    for i, math in enumerate(plan.act_math):
        z = proj[i]
        if i > 0:
            z = z + F.linear(hidden[-1] * saved.masks[i - 1] if p > 0.0 else hidden[-1], w_chain[i])
        mode = ctx.norm_modes[i]
        if mode is not None:
            training, eps = mode
            stats = (None, None) if training else (next(running), next(running))
            z = F.batch_norm(z, *stats, bn[i][0], bn[i][1], training, 0.0, eps)
        hidden.append(math.forward(z))
    feats = torch.cat(hidden, dim=1)
    return F.linear(feats * saved.masks[-1] if p > 0.0 else feats, w_out, b_out)


def _replayed_backward(ctx, grad_y: Tensor) -> tuple[Optional[Tensor], ...]:
    """Gradients with their own graph, for a second derivative (gradient penalties, Hessian-vector
    products): the step is recomputed with autograd and differentiated with ``create_graph``. Rare, so
    it costs a second forward rather than a hand-written double backward."""
    if ctx.plan.api.versions(ctx.inputs) != ctx.versions:
        raise RuntimeError(
            "one of the variables needed for gradient computation has been modified by an inplace "
            "operation: a second derivative of SpinalLinear recomputes its step from its input and "
            "parameters, which must not change between its forward and backward")
    needed = ctx.needs_input_grad[1:]
    # A tensor passed twice (tied weights) gets its whole gradient once: autograd adds what every position returns.
    unique: dict[int, Tensor] = {}
    for t, need in zip(ctx.inputs, needed):
        if need:
            unique.setdefault(id(t), t)
    y = _replay(ctx, ctx.inputs[0], ctx.inputs[1:])
    grads = dict(zip(unique, torch.autograd.grad(y, list(unique.values()), grad_y, create_graph=True,
                                                  allow_unused=True)))
    return (None, *(grads.pop(id(t), None) if need else None for t, need in zip(ctx.inputs, needed)))


# ---------------------------------------------------------------------------------------------- backward
def _fast_backward(ctx, grad_y: Tensor) -> tuple[Optional[Tensor], ...]:
    """The backward written out with ATen's own backward kernels (no autograd recording), from the output
    back to the input. Gradients of frozen parameters are not computed."""
    plan: FusedPlan = ctx.plan
    saved = _Saved(ctx)
    need_w_in, need_b_in, need_chain, need_bn, need_out = _unpack(plan, ctx.needs_input_grad[2:])
    grad_w_out, grad_b_out, grad_hidden = _output_backward(plan, saved, grad_y, *need_out)
    grad_z, grad_chain, grad_bn = _hidden_backward(plan, saved, ctx.norm_modes, grad_hidden, need_chain, need_bn)
    grad_x, grad_w_in, grad_b_in = _input_backward(plan, saved, grad_z, need_w_in, need_b_in, ctx.needs_input_grad[1])
    # In the order of fused_plan's parameters (see _unpack).
    grads = [*grad_w_in, *(grad_b_in if plan.has_bias else ()), *grad_chain[1:],
             *(g for i, pair in enumerate(grad_bn) if ctx.norm_modes[i] is not None for g in pair),
             grad_w_out, *((grad_b_out,) if plan.has_bias else ())]
    return (None, grad_x, *grads)


def _output_backward(plan: FusedPlan, saved: _Saved, grad_y: Tensor, need_weight: bool,
                     need_bias: bool) -> tuple[Grad, Grad, Sequence[Tensor]]:
    """The output Linear's gradients, and each hidden output's (through the output's dropout)."""
    (feats,), (w_out,), p = saved.feats, saved.w_out, plan.dropout
    grad_w = None
    if need_weight:
        grad_w = grad_y.t().mm(feats if p == 0.0 else feats * saved.masks[-1])  # recomputed: kept is the mask only
    grad_b = grad_y.sum(0) if need_bias else None
    grad_feats = grad_y.mm(w_out)
    if p > 0.0:
        grad_feats = grad_feats * saved.masks[-1]
    return grad_w, grad_b, grad_feats.split_with_sizes(plan.hidden_widths, 1)


def _saved_norms(saved: _Saved, norm_modes: Sequence[Optional[tuple[bool, float]]]) -> list[Optional[tuple]]:
    """Per layer: None, or what its batch norm's backward reads (weight, running mean and variance in eval mode
    (else None), the forward's input, mean and inverse std, and (training, eps))."""
    weights, running, stats = iter(saved.bn_weight), iter(saved.running), iter(saved.norm_saved)
    norms: list[Optional[tuple]] = []
    for mode in norm_modes:
        if mode is None:
            norms.append(None)
            continue
        weight = next(weights)
        running_mean, running_var = (None, None) if mode[0] else (next(running), next(running))
        norms.append((weight, running_mean, running_var, next(stats), next(stats), next(stats), mode))
    return norms


def _norm_backward(api: PrivateAPI, g: Tensor, norm: tuple, need: tuple) -> tuple[Tensor, tuple[Grad, Grad]]:
    """Through one batch norm in the mode of its forward: the input's gradient and (weight, bias) gradients."""
    weight, running_mean, running_var, z, mean, invstd, (training, eps) = norm
    g, grad_weight, grad_bias = api.native_batch_norm_backward(
        g, z, weight, running_mean, running_var, mean, invstd, training, eps, [True, bool(need[0]), bool(need[1])])
    return g, (grad_weight, grad_bias)


def _chain_backward(g: Tensor, previous: Tensor, weight: Tensor, mask: Optional[Tensor],
                    need_weight: bool) -> tuple[Grad, Tensor]:
    """The chain Linear's weight gradient, and what it passes back to the previous hidden output (through that
    output's dropout mask, when there is one)."""
    grad_w = None
    if need_weight:
        grad_w = g.t().mm(previous if mask is None else previous * mask)
    carry = g.mm(weight)
    return grad_w, carry if mask is None else carry * mask


def _hidden_backward(plan: FusedPlan, saved: _Saved, norm_modes: Sequence, grad_hidden: Sequence[Tensor],
                     need_chain: list, need_bn: list) -> tuple[list[Grad], list[Grad], list[tuple[Grad, Grad]]]:
    """Back through the chain, last layer first: each layer's gradient before its activation and norm (that
    is, of its input projection plus chain), and the chain and norm parameters' gradients."""
    L, p = len(plan.act_math), plan.dropout
    hidden = saved.feats[0].split_with_sizes(plan.hidden_widths, 1)
    norms = _saved_norms(saved, norm_modes)
    w_chain = (None, *saved.w_chain)
    grad_z: list[Grad] = [None] * L
    grad_chain: list[Grad] = [None] * L
    grad_bn: list[tuple[Grad, Grad]] = [(None, None)] * L
    carry: Optional[Tensor] = None
    for i in range(L - 1, -1, -1):
        g = grad_hidden[i] if carry is None else grad_hidden[i] + carry
        math = plan.act_math[i]
        g = math.backward(g, saved.act_in[i] if math.reads_input else hidden[i])
        norm = norms[i]
        if norm is not None:
            g, grad_bn[i] = _norm_backward(plan.api, g, norm, need_bn[i])
        grad_z[i] = g
        if i > 0:
            mask = saved.masks[i - 1] if p > 0.0 else None
            grad_chain[i], carry = _chain_backward(g, hidden[i - 1], w_chain[i], mask, need_chain[i])
    return grad_z, grad_chain, grad_bn


def _dropped_chunk_backward(plan: FusedPlan, saved: _Saved, s: int, grad_z: list[Tensor], want_w: bool,
                            want_b: bool, want_x: bool) -> ChunkGrads:
    """One chunk's layers under dropout: each read its own dropped copy, so one batched product each way."""
    members = plan.groups[s]
    gz = torch.stack(grad_z)  # (count, n, w)
    grad_w = torch.bmm(gz.transpose(1, 2), saved.dropped[s]).unbind(0) if want_w else None
    grad_b = gz.sum(1).unbind(0) if want_b else None
    grad_x = None
    if want_x:
        grad_copies = torch.bmm(gz, torch.stack([saved.w_in[i] for i in members]))
        grad_x = (grad_copies * saved.input_mask[s]).sum(0)
    return grad_w, grad_b, grad_x


def _shared_chunk_backward(plan: FusedPlan, saved: _Saved, s: int, grad_z: list[Tensor], want_w: bool,
                           want_b: bool, want_x: bool) -> ChunkGrads:
    """One chunk's layers without dropout: they read the same chunk, so their gradients side by side make one
    product each way, whose row blocks are the layers' weight gradients."""
    members, widths = plan.groups[s], plan.group_widths[s]
    gz = torch.cat(grad_z, dim=1) if len(members) > 1 else grad_z[0]
    grad_w = grad_b = grad_x = None
    if want_w:
        chunk = saved.x[0][:, plan.offsets[s]: plan.offsets[s] + plan.sizes[s]]
        grad_w = gz.t().mm(chunk).split_with_sizes(widths, 0)
    if want_b:
        grad_b = gz.sum(0).split_with_sizes(widths)
    if want_x:
        weight = torch.cat([saved.w_in[i] for i in members]) if len(members) > 1 else saved.w_in[members[0]]
        grad_x = gz.mm(weight)
    return grad_w, grad_b, grad_x


def _input_backward(plan: FusedPlan, saved: _Saved, grad_z: list[Tensor], need_w: list, need_b: list,
                    need_x: bool) -> tuple[Grad, list[Grad], list[Grad]]:
    """Chunk by chunk: the input weights' and biases' gradients of its layers, and the input's gradient."""
    L = len(plan.act_math)
    chunk_backward = _dropped_chunk_backward if plan.dropout > 0.0 else _shared_chunk_backward
    grad_w_in: list[Grad] = [None] * L
    grad_b_in: list[Grad] = [None] * L
    grad_x_parts: list[Tensor] = []
    for s, members in enumerate(plan.groups):
        grad_w, grad_b, grad_x = chunk_backward(plan, saved, s, [grad_z[i] for i in members],
                                                any(need_w[i] for i in members), any(need_b[i] for i in members),
                                                need_x)
        if grad_x is not None:
            grad_x_parts.append(grad_x)
        for k, i in enumerate(members):
            grad_w_in[i] = grad_w[k] if grad_w is not None else None
            grad_b_in[i] = grad_b[k] if grad_b is not None else None
    return (torch.cat(grad_x_parts, dim=1) if need_x else None), grad_w_in, grad_b_in
