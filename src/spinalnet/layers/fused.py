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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as _module_hooks

_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805

Fn = Callable[[Tensor], Tensor]
GradFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ActivationMath:
    """An activation module's forward and its ATen backward, which reads its input or its output."""

    forward: Fn
    backward: GradFn
    reads_input: bool


# ---------------------------------------------------------------------------------------------- the private API
class PrivateAPI:
    """Every private ATen op and torch internal the fused step uses, looked up in this one place.

    A torch release may rename or remove any of them; :func:`private_api` then reports what is missing and
    :class:`~spinalnet.layers.spinal_linear.SpinalLinear` keeps to its autograd path (with one warning in
    its automatic mode) instead of failing a run.
    """

    def __init__(self) -> None:
        aten = torch.ops.aten
        for name in ("threshold_backward", "tanh_backward", "sigmoid_backward", "silu_backward", "mish_backward",
                     "hardswish_backward", "elu_backward", "leaky_relu_backward", "gelu_backward",
                     "native_batch_norm_backward"):
            setattr(self, name, getattr(aten, name))
        self.native_batch_norm = torch.native_batch_norm
        self.transforms_active = torch._C._are_functorch_transforms_active
        self.forward_ad = torch.autograd.forward_ad
        self.forward_ad._current_level  # noqa: B018  (must exist)
        if not isinstance(torch.zeros(1)._version, int):
            raise AttributeError("Tensor._version is not a version counter")


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


#: Global module hooks (private dicts of torch.nn.modules.module). Missing ones count as hooks: the autograd
#: path then calls every module, so that any hook runs.
_GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks")


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
    grouped: tuple[bool, ...]  # per chunk: its layers' input weights concatenated for one matmul (grouped())
    group_widths: tuple[tuple[int, ...], ...]  # (w,) * count per chunk, for split_with_sizes
    hidden_widths: tuple[int, ...]  # (w,) * L
    api: PrivateAPI
    bound_options: tuple[tuple[nn.Module, tuple], ...]  # (activation, its options) where the plan bound options


def grouped(count: int, width: int, chunk_size: int, grad_enabled: bool) -> bool:
    """Whether the ``count`` layers reading one chunk get one matmul over their concatenated input weights:
    the one rule of both paths (the fused step and SpinalLinear's autograd path), so that they do the same
    arithmetic.

    The concatenation copies those weights in every forward. With autograd (training), one matmul instead
    of one per layer paid 1.02x to 1.15x for the benchmark's heads up to 2 x 128 x 2048 and 8 x 64 x 1024
    weights and lost (0.99x) for 2 x 512 x 1024 (1 thread, benchmarks/layer_speed.py shapes, side by side):
    up to 2^19 elements. Without autograd only up to 2^14: measured against a cached concatenation (eval
    forward, 2 threads, the benchmark's heads at batch 1, 64 and 512), 0.94x to 1.18x its time, where 2^19
    took up to 1.58x. (Literals: TorchScript reads no module globals.)
    """
    return count * width * chunk_size <= ((1 << 19) if grad_enabled else (1 << 14))


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
                     grouped=tuple(grouped(len(g), w, m, True) for g, m in zip(groups, module.split_sizes)),
                     group_widths=tuple((w,) * len(g) for g in groups), hidden_widths=(w,) * L, api=api,
                     bound_options=tuple((a, _activation_options(a)) for a in acts
                                         if type(a) in _OPTIONED_ACTIVATIONS))


def has_hooks(modules: Sequence[Optional[nn.Module]]) -> bool:
    """Forward or backward hooks, global or on these modules: the autograd path calls the modules, so they run."""
    if any(getattr(_module_hooks, name, True) for name in _GLOBAL_HOOKS):
        return True
    for m in modules:  # a plain loop: this runs on every training step
        if m is not None and (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks):
            return True
    return False


def fused_plan(module: nn.Module, x: Tensor) -> Optional[tuple[FusedPlan, list[Tensor]]]:
    """The plan and parameters for a fused step of a SpinalLinear on 2-D ``x``, or None for the autograd path.

    The plan is cached on the module and rebuilt when its mode, an activation or norm module, or an
    activation's option changes; parameters are read afresh on every call (they may be replaced).
    """
    if not torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return None  # graphs see the plain operations (and fuse them themselves)
    api = private_api()
    if api is None or api.transforms_active() or not x.is_floating_point():
        return None
    if x.shape[0] == 0 or x.is_meta or x.is_inference():
        return None  # nothing to gain; autocast has no meta device; inference tensors have no version counter
    if torch.is_autocast_enabled(x.device.type):
        return None
    if api.forward_ad._current_level >= 0:
        return None  # inside forward-mode AD (jvp, gradcheck's forward check): FusedSpinal has no jvp
    mods = [layer._modules for layer in module.layers._modules.values()]
    acts = tuple(m["act"] for m in mods)
    norms = tuple(m.get("norm") for m in mods)
    key = (module.training, module.dropout, module.has_bias, acts, norms,
           tuple((n.training, n.track_running_stats, n.affine, n.running_mean is None, n.num_batches_tracked is None)
                 for n in norms if n is not None))
    cached = module.__dict__.get("_fused_plan_cache")
    if cached is None or cached[0] != key or (cached[1] is not None and any(
            _activation_options(a) != options for a, options in cached[1].bound_options)):
        cached = module.__dict__["_fused_plan_cache"] = (key, _build_plan(module, acts, norms, api))
    plan = cached[1]
    if plan is None or (x.shape[0] < 2 and any(n is not None and n.training for n in norms)):
        return None  # the autograd path raises BatchNorm's own error for one sample
    inputs, chains = [m["input"] for m in mods], [m["chain"] for m in mods[1:]]
    if has_hooks((module._modules["output"], *module.layers._modules.values(), *acts, *norms, *inputs, *chains)):
        return None  # the autograd path calls those modules, so their hooks run
    params = [linear._parameters.get("weight") for linear in inputs]
    if plan.has_bias:
        params += [linear._parameters.get("bias") for linear in inputs]
    params += [linear._parameters.get("weight") for linear in chains]
    if plan.any_norm:
        params += [n._parameters.get(name) for n in norms if n is not None for name in ("weight", "bias")]
    output = module._modules["output"]._parameters
    params += [output.get("weight"), output.get("bias")] if plan.has_bias else [output.get("weight")]
    if any(p is None for p in params):
        return None  # a parametrized weight (weight norm, ...) is computed by its module: the autograd path
    return plan, params


def _unpack(plan: FusedPlan, params: Sequence[Tensor]) -> tuple[list, list, list, list, list]:
    L = len(plan.act_math)
    it = iter(params)
    w_in = [next(it) for _ in range(L)]
    b_in = [next(it) for _ in range(L)] if plan.has_bias else [None] * L
    w_chain = [None] + [next(it) for _ in range(L - 1)]
    bn = [(next(it), next(it)) if norm is not None else (None, None) for norm in plan.norms]
    out = [next(it), next(it) if plan.has_bias else None]
    return w_in, b_in, w_chain, bn, out


def dropout_mask(x: Tensor, p: float, scale: float) -> Tensor:
    """Inverted dropout's mask for ``x``: ``scale`` where ``rand >= p`` (kept), else 0; ``x * mask`` drops.

    On CPU a ``rand`` mask is about 3x faster than ``bernoulli_`` (measured by benchmarks/layer_speed.py);
    ``x * mask`` equals ``x * keep * scale`` exactly (``keep`` is 0 or 1), in one product.
    """
    return torch.rand_like(x).ge_(p).mul_(scale)


def _batch_norm_forward(api: PrivateAPI, norm: nn.BatchNorm1d, z: Tensor, weight: Tensor,
                        bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``norm(z)`` as nn.BatchNorm1d computes it (running statistics included), keeping what backward needs."""
    factor = 0.0
    if norm.training:
        norm.num_batches_tracked.add_(1)
        factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
    return api.native_batch_norm(z, weight, bias, norm.running_mean, norm.running_var, norm.training,
                                   factor, norm.eps)


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
        n, w, p = x.shape[0], plan.width, plan.dropout
        scale = 1.0 / (1.0 - p)
        L = len(plan.act_math)
        proj: list[Tensor] = [x] * L
        dropped: list[Tensor] = []  # per chunk with dropout: every member's dropped copy (count, n, size), and
        input_mask: list[Tensor] = []  # its mask when the input needs a gradient
        for s, members in enumerate(plan.groups):
            chunk = x[:, plan.offsets[s]: plan.offsets[s] + plan.sizes[s]]
            if p > 0.0:  # every member reads its own dropped copy: one batched product, whatever the size
                copies = chunk.unsqueeze(0).expand(len(members), n, plan.sizes[s])
                mask = dropout_mask(copies, p, scale)
                copies = copies * mask
                dropped.append(copies)
                if x.requires_grad:
                    input_mask.append(mask)
                weights = torch.stack([w_in[i] for i in members]).transpose(1, 2)
                if plan.has_bias:
                    parts = torch.baddbmm(torch.stack([b_in[i] for i in members]).unsqueeze(1), copies, weights)
                else:
                    parts = torch.bmm(copies, weights)
                parts = parts.unbind(0)
            elif plan.grouped[s] and len(members) > 1:
                weight = torch.cat([w_in[i] for i in members])
                out = F.linear(chunk, weight, torch.cat([b_in[i] for i in members]) if plan.has_bias else None)
                parts = out.split_with_sizes(plan.group_widths[s], 1)
            else:
                parts = [F.linear(chunk, w_in[i], b_in[i]) for i in members]
            for k, i in enumerate(members):
                proj[i] = parts[k]

        hidden: list[Tensor] = []
        masks: list[Tensor] = []  # with dropout: the chain's masks (layers 1..L-1), then the output's
        norm_saved: list[Tensor] = []  # per layer with a norm: its input, saved mean and inverse std
        norm_modes: list[Optional[tuple[bool, float]]] = []  # per layer: (training, eps) of its norm at this step
        running: list[Tensor] = []  # running mean and variance of the norms in eval mode (the backward reads them)
        act_in: list[Optional[Tensor]] = []  # per layer, when some activation's backward reads its input
        h = x
        for i in range(L):
            z = proj[i]
            if i > 0:
                if p > 0.0:
                    mask = dropout_mask(h, p, scale)
                    h = h * mask
                    masks.append(mask)
                z = F.linear(h, w_chain[i], z)
            norm = plan.norms[i]
            norm_modes.append(None if norm is None else (norm.training, norm.eps))
            if norm is not None:
                normed, mean, invstd = _batch_norm_forward(plan.api, norm, z, *bn[i])
                norm_saved += (z, mean, invstd)
                if not norm.training:
                    running += (norm.running_mean, norm.running_var)
                z = normed
            if plan.reads_input:
                act_in.append(z)
            h = plan.act_math[i].forward(z)
            hidden.append(h)
        feats = torch.cat(hidden, dim=1)
        if p > 0.0:
            mask = dropout_mask(feats, p, scale)
            feats_in = feats * mask
            masks.append(mask)
        else:
            feats_in = feats
        y = F.linear(feats_in, w_out, b_out)

        ctx.plan, ctx.norm_modes = plan, tuple(norm_modes)
        ctx.inputs = (x, *params)
        ctx.versions = tuple(t._version for t in ctx.inputs)
        _save(ctx, x=(x,) if p == 0.0 else (), feats=(feats,), w_out=(w_out,),
              w_in=w_in if x.requires_grad else (), w_chain=w_chain[1:],
              bn_weight=[pair[0] for pair in bn if pair[0] is not None], running=running, dropped=dropped,
              input_mask=input_mask, masks=masks, norm_saved=norm_saved, act_in=act_in)
        return y

    @staticmethod
    def backward(ctx, grad_y: Tensor) -> tuple[Optional[Tensor], ...]:  # type: ignore[override]
        if torch.is_grad_enabled():  # backward(create_graph=True): gradients to differentiate again
            return _replayed_backward(ctx, grad_y)
        return _fast_backward(ctx, grad_y)


def _replay(ctx, x: Tensor, params: Sequence[Tensor]) -> Tensor:
    """The forward step again, recorded by autograd: the same dropout masks, and batch norm in the mode and
    on the statistics of the forward (the batch's in training, the running ones in eval) without
    updating the running ones."""
    plan: FusedPlan = ctx.plan
    saved = _Saved(ctx)
    w_in, b_in, w_chain, bn, (w_out, b_out) = _unpack(plan, params)
    p, L = plan.dropout, len(plan.act_math)
    proj: list[Tensor] = [x] * L
    for s, members in enumerate(plan.groups):
        chunk = x[:, plan.offsets[s]: plan.offsets[s] + plan.sizes[s]]
        for k, i in enumerate(members):
            if p == 0.0:
                dropped = chunk
            elif saved.input_mask:  # the input needs a gradient: drop it again with the same mask
                dropped = chunk * saved.input_mask[s][k]
            else:
                dropped = saved.dropped[s][k]
            proj[i] = F.linear(dropped, w_in[i], b_in[i])
    hidden: list[Tensor] = []
    running = iter(saved.running)
    for i in range(L):
        z = proj[i]
        if i > 0:
            z = z + F.linear(hidden[-1] * saved.masks[i - 1] if p > 0.0 else hidden[-1], w_chain[i])
        mode = ctx.norm_modes[i]
        if mode is not None:
            training, eps = mode
            stats = (None, None) if training else (next(running), next(running))
            z = F.batch_norm(z, *stats, bn[i][0], bn[i][1], training, 0.0, eps)
        hidden.append(plan.act_math[i].forward(z))
    feats = torch.cat(hidden, dim=1)
    return F.linear(feats * saved.masks[-1] if p > 0.0 else feats, w_out, b_out)


def _replayed_backward(ctx, grad_y: Tensor) -> tuple[Optional[Tensor], ...]:
    """Gradients with their own graph, for a second derivative (gradient penalties, Hessian-vector
    products): the step is recomputed with autograd and differentiated with ``create_graph``. Rare, so
    it costs a second forward rather than a hand-written double backward."""
    for t, version in zip(ctx.inputs, ctx.versions):
        if t._version != version:
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


def _fast_backward(ctx, grad_y: Tensor) -> tuple[Optional[Tensor], ...]:
    """The backward written out with ATen's own backward kernels (no autograd recording). Gradients of
    frozen parameters are not computed."""
    plan: FusedPlan = ctx.plan
    saved = _Saved(ctx)
    L, p = len(plan.act_math), plan.dropout
    need_w_in, need_b_in, need_chain, need_bn, (need_w_out, need_b_out) = _unpack(plan, ctx.needs_input_grad[2:])
    grad_x_needed = ctx.needs_input_grad[1]
    (feats,), (w_out,), w_in, w_chain = saved.feats, saved.w_out, saved.w_in, (None, *saved.w_chain)
    masks, running, bn_weight = saved.masks, iter(saved.running), iter(saved.bn_weight)

    feats_in = feats if p == 0.0 else feats * masks[-1]  # recomputed: kept is the mask only
    grad_w_out = grad_y.t().mm(feats_in) if need_w_out else None
    grad_b_out = grad_y.sum(0) if need_b_out else None
    grad_feats = grad_y.mm(w_out)
    if p > 0.0:
        grad_feats = grad_feats * masks[-1]
    grad_hidden = grad_feats.split_with_sizes(plan.hidden_widths, 1)
    hidden = feats.split_with_sizes(plan.hidden_widths, 1)

    norm_saved = [saved.norm_saved[k: k + 3] for k in range(0, len(saved.norm_saved), 3)]
    norm_args = [None if mode is None else (next(bn_weight), *((next(running), next(running)) if not mode[0]
                                                                else (None, None)))
                 for mode in ctx.norm_modes]
    grad_z: list[Optional[Tensor]] = [None] * L
    grad_chain: list[Optional[Tensor]] = [None] * L
    grad_bn: list[tuple[Optional[Tensor], Optional[Tensor]]] = [(None, None)] * L
    carry: Optional[Tensor] = None
    for i in range(L - 1, -1, -1):
        g = grad_hidden[i] if carry is None else grad_hidden[i] + carry
        math = plan.act_math[i]
        g = math.backward(g, saved.act_in[i] if math.reads_input else hidden[i])
        mode = ctx.norm_modes[i]
        if mode is not None:
            weight, running_mean, running_var = norm_args[i]
            z, mean, invstd = norm_saved.pop()
            g, gw, gb = plan.api.native_batch_norm_backward(
                g, z, weight, running_mean, running_var, mean, invstd, mode[0], mode[1],
                [True, bool(need_bn[i][0]), bool(need_bn[i][1])])
            grad_bn[i] = (gw, gb)
        grad_z[i] = g
        if i > 0:
            h = hidden[i - 1] if p == 0.0 else hidden[i - 1] * masks[i - 1]
            grad_chain[i] = g.t().mm(h) if need_chain[i] else None
            carry = g.mm(w_chain[i]) if p == 0.0 else g.mm(w_chain[i]) * masks[i - 1]

    grad_w_in: list[Optional[Tensor]] = [None] * L
    grad_b_in: list[Optional[Tensor]] = [None] * L
    grad_x_parts: list[Tensor] = []
    for s, members in enumerate(plan.groups):
        want_w, want_b = any(need_w_in[i] for i in members), any(need_b_in[i] for i in members)
        grad_w = grad_b = None
        if p > 0.0:
            gz = torch.stack([grad_z[i] for i in members])  # (count, n, w)
            grad_w = torch.bmm(gz.transpose(1, 2), saved.dropped[s]).unbind(0) if want_w else None
            grad_b = gz.sum(1).unbind(0) if want_b else None
            if grad_x_needed:
                grad_copies = torch.bmm(gz, torch.stack([w_in[i] for i in members]))
                grad_x_parts.append((grad_copies * saved.input_mask[s]).sum(0))
        else:
            gz = torch.cat([grad_z[i] for i in members], dim=1) if len(members) > 1 else grad_z[members[0]]
            chunk = saved.x[0][:, plan.offsets[s]: plan.offsets[s] + plan.sizes[s]]
            grad_w = gz.t().mm(chunk).split_with_sizes(plan.group_widths[s], 0) if want_w else None
            grad_b = gz.sum(0).split_with_sizes(plan.group_widths[s]) if want_b else None
            if grad_x_needed:
                weight = torch.cat([w_in[i] for i in members]) if len(members) > 1 else w_in[members[0]]
                grad_x_parts.append(gz.mm(weight))
        for k, i in enumerate(members):
            grad_w_in[i] = grad_w[k] if grad_w is not None else None
            grad_b_in[i] = grad_b[k] if grad_b is not None else None
    grad_x = torch.cat(grad_x_parts, dim=1) if grad_x_needed else None

    # In the order of fused_plan's parameters (see _unpack).
    grads = [*grad_w_in, *(grad_b_in if plan.has_bias else ()), *grad_chain[1:],
             *(g for i, pair in enumerate(grad_bn) if ctx.norm_modes[i] is not None for g in pair),
             grad_w_out, *((grad_b_out,) if plan.has_bias else ())]
    return (None, grad_x, *grads)
