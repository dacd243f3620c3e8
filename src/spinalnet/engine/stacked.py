"""R heads of one architecture computed as one: their parameters stacked on a leading run axis, every Linear a
batched matrix product (``torch.bmm``), so one step trains every seed and tuning value of an arm.

Why not ``torch.func.vmap`` over ``functional_call``: the same stacking, but its per-operation dispatch cost
more than the products of these small heads (docs/BENCHMARKS.md, section 5), and a batch norm's running
statistics and each run's own dropout masks need explicit code either way.

Inputs come in one of two layouts. ``runs``: ``(R, B, F)``, one batch per run. ``slots``: ``(G, B, F)`` for
runs that share batches (the tuning values of one seed read the same batches; validation and test are shared
by all runs): run ``r`` reads slot ``r // (R // G)``. A Linear that reads a ``slots`` input multiplies each
slot once with the concatenated weights of its runs, one wide product instead of ``R // G`` narrow ones.
Runs draw their dropout masks from their own generators, so a run's masks do not depend on which others it
trains with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spinalnet.layers.spinal_linear import SpinalLinear

ELEMENTWISE: dict[type, Callable[[nn.Module, Tensor], Tensor]] = {
    nn.ReLU: lambda m, x: torch.relu(x), nn.Identity: lambda m, x: x, nn.Tanh: lambda m, x: torch.tanh(x),
    nn.Sigmoid: lambda m, x: torch.sigmoid(x), nn.SiLU: lambda m, x: F.silu(x), nn.Mish: lambda m, x: F.mish(x),
    nn.Hardswish: lambda m, x: F.hardswish(x), nn.SELU: lambda m, x: F.selu(x),
    nn.LeakyReLU: lambda m, x: F.leaky_relu(x, m.negative_slope), nn.GELU: lambda m, x: F.gelu(x, approximate=m.approximate),
    nn.ELU: lambda m, x: F.elu(x, m.alpha),
}
LEAVES = (nn.Linear, nn.BatchNorm1d, nn.Dropout, SpinalLinear, *ELEMENTWISE)


class StackedLinear(torch.autograd.Function):
    """``x @ weight[r].T + bias[r]`` for every run: ``x (R, B, F)``, ``weight (R, O, F)``, ``bias (R, O)`` or None.

    Autograd's own backward of ``baddbmm(bias, x, weight.mT)`` forms the weight's gradient as ``x.mT @ g`` and
    transposes it; this one forms ``g.mT @ x`` directly, the orientation the CPU's batched product computes about
    twice as fast for these shapes (R = 10, B = 256, F = 1280, O = 10: 0.38 against 0.79 ms; docs/BENCHMARKS.md,
    section 5). The input's gradient is computed only when it is needed (never for cached features).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


@dataclass
class Batch:
    """A stacked input: ``x`` is ``(R, B, F)`` (``groups == 0``) or ``(G, B, F)`` shared by ``R // G`` runs each."""

    x: Tensor
    groups: int = 0

    def per_run(self, runs: int) -> Tensor:
        if not self.groups:
            return self.x
        g, b, f = self.x.shape
        return self.x.unsqueeze(1).expand(g, runs // g, b, f).reshape(runs, b, f)


def stackable(head: nn.Module) -> str | None:
    """None when :class:`StackedHeads` computes ``head``; else the module it does not know."""
    for name, module in head.named_modules():
        if isinstance(module, SpinalLinear):
            if type(module.layers[0].act) not in ELEMENTWISE:
                return f"{name or 'the head'}: activation {type(module.layers[0].act).__name__}"
            continue
        if any(isinstance(parent, SpinalLinear) for parent in _ancestors(head, name)):
            continue
        if isinstance(module, nn.Sequential) or type(module) in LEAVES:
            continue
        return f"{name or 'the head'}: {type(module).__name__}"
    return None


def _ancestors(root: nn.Module, name: str) -> list[nn.Module]:
    parts = name.split(".") if name else []
    return [root.get_submodule(".".join(parts[:i])) for i in range(len(parts))]


class StackedHeads:
    """``heads`` (same architecture, any values) as stacked leaf tensors; :meth:`forward` computes all of them."""

    def __init__(self, heads: list[nn.Module], input_dropout: float = 0.0) -> None:
        self.template, self.runs, self.input_dropout = heads[0], len(heads), input_dropout
        states = [h.state_dict() for h in heads]
        params = dict(heads[0].named_parameters())
        self.params = {k: torch.stack([s[k] for s in states]).detach().clone().requires_grad_(True) for k in params}
        self.buffers = {k: torch.stack([s[k] for s in states]).clone() for k in states[0] if k not in params}
        self.decays = {k: params[k].ndim >= 2 for k in params}  # weights decay; biases and norm parameters do not
        self.generators: list[torch.Generator] = [torch.Generator() for _ in heads]
        self.training = True

    # ------------------------------------------------------------------ state
    def state_of(self, r: int) -> dict[str, Tensor]:
        """Run ``r``'s head as a state dict of its own architecture."""
        out = {k: v[r].detach().clone() for k, v in self.params.items()}
        out.update({k: v[r].clone() for k, v in self.buffers.items()})
        return out

    def load_run(self, r: int, state: dict[str, Tensor]) -> None:
        with torch.no_grad():
            for k, v in self.params.items():
                v[r].copy_(state[k])
            for k, v in self.buffers.items():
                v[r].copy_(state[k])

    # ------------------------------------------------------------------ pieces
    def _mask(self, shape: tuple[int, ...], p: float) -> Tensor:
        """Inverted dropout masks, each run's from its own generator."""
        scale = 1.0 / (1.0 - p)
        return torch.stack([torch.rand(shape, generator=g).ge_(p).mul_(scale) for g in self.generators])

    def _dropout(self, x: Batch, p: float) -> Batch:
        if not self.training or p == 0.0:
            return x
        full = x.per_run(self.runs)
        return Batch(full * self._mask(tuple(full.shape[1:]), p))

    def _linear(self, x: Batch, weight: Tensor, bias: Tensor | None) -> Tensor:
        """``(R, B, out)``: ``x @ weight[r].T + bias[r]`` per run; a shared input meets its runs' weights at once."""
        if x.groups:
            g, b, f = x.x.shape
            per = self.runs // g
            out = weight.shape[1]
            wide = weight.reshape(g, per * out, f)  # (G, per * out, F)
            y = StackedLinear.apply(x.x, wide, None).reshape(g, b, per, out).transpose(1, 2).reshape(self.runs, b, out)
            return y if bias is None else y + bias.unsqueeze(1)
        return StackedLinear.apply(x.x, weight, bias)

    def _norm(self, z: Tensor, prefix: str, norm: nn.BatchNorm1d) -> Tensor:
        """BatchNorm1d per run, with its running statistics as ``nn.BatchNorm1d`` keeps them."""
        weight, bias = self.params[prefix + "weight"], self.params[prefix + "bias"]
        mean_buf, var_buf = self.buffers[prefix + "running_mean"], self.buffers[prefix + "running_var"]
        if self.training:
            mean = z.mean(1, keepdim=True)
            var = z.var(1, unbiased=False, keepdim=True)
            with torch.no_grad():
                count = self.buffers[prefix + "num_batches_tracked"]
                count += 1
                momentum = norm.momentum if norm.momentum is not None else 1.0 / float(count[0])
                n = z.shape[1]
                mean_buf.mul_(1 - momentum).add_(mean.squeeze(1).detach(), alpha=momentum)
                var_buf.mul_(1 - momentum).add_(var.squeeze(1).detach() * (n / max(n - 1, 1)), alpha=momentum)
        else:
            mean, var = mean_buf.unsqueeze(1), var_buf.unsqueeze(1)
        return (z - mean) * torch.rsqrt(var + norm.eps) * weight.unsqueeze(1) + bias.unsqueeze(1)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Batch) -> Tensor:
        """Logits ``(R, B, C)`` of every run."""
        x = self._dropout(x, self.input_dropout)
        return self._module(self.template, "", x).per_run(self.runs)

    def _module(self, module: nn.Module, prefix: str, x: Batch) -> Batch:
        if isinstance(module, nn.Sequential):
            for name, child in module.named_children():
                x = self._module(child, f"{prefix}{name}.", x)
            return x
        if isinstance(module, SpinalLinear):
            return Batch(self._spinal(module, prefix, x))
        if isinstance(module, nn.Linear):
            return Batch(self._linear(x, self.params[prefix + "weight"], self.params.get(prefix + "bias")))
        if isinstance(module, nn.Dropout):
            return self._dropout(x, module.p)
        if isinstance(module, nn.BatchNorm1d):
            return Batch(self._norm(x.per_run(self.runs), prefix, module))
        return Batch(ELEMENTWISE[type(module)](module, x.x), x.groups)  # elementwise keeps the layout

    def _spinal(self, block: SpinalLinear, prefix: str, x: Batch) -> Tensor:
        """SpinalLinear's function (see its docstring) on stacked parameters, with its dropout placement: each
        layer its own copy of its chunk, then the chain's input, then the output's."""
        p, L, S, w = block.dropout if self.training else 0.0, block.num_layers, block.num_splits, block.layer_width
        proj: list[Tensor] = [x.x] * L
        for s in range(S):
            members = list(range(s, L, S))
            lo = block.split_offsets[s]
            chunk = Batch(x.x[..., lo: lo + block.split_sizes[s]], x.groups)
            if p > 0.0:
                full = chunk.per_run(self.runs)
                for i in members:
                    dropped = Batch(full * self._mask(tuple(full.shape[1:]), p))
                    proj[i] = self._linear(dropped, self.params[f"{prefix}layers.{i}.input.weight"],
                                           self.params.get(f"{prefix}layers.{i}.input.bias"))
                continue
            weight = torch.cat([self.params[f"{prefix}layers.{i}.input.weight"] for i in members], 1)
            biases = [self.params.get(f"{prefix}layers.{i}.input.bias") for i in members]
            bias = None if biases[0] is None else torch.cat(biases, 1)
            for i, part in zip(members, self._linear(chunk, weight, bias).split(w, dim=2)):
                proj[i] = part
        hidden: list[Tensor] = []
        for i, layer in enumerate(block.layers):
            z = proj[i]
            if i > 0:
                previous = self._dropout(Batch(hidden[-1]), p).x if p > 0.0 else hidden[-1]
                z = z + torch.bmm(previous, self.params[f"{prefix}layers.{i}.chain.weight"].transpose(1, 2))
            if layer.norm is not None:
                z = self._norm(z, f"{prefix}layers.{i}.norm.", layer.norm)
            hidden.append(ELEMENTWISE[type(layer.act)](layer.act, z))
        feats = Batch(torch.cat(hidden, dim=2))
        feats = self._dropout(feats, p) if p > 0.0 else feats
        return self._linear(feats, self.params[prefix + "output.weight"], self.params.get(prefix + "output.bias"))
