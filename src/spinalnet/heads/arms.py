"""The PyTorch side of the head kinds (:mod:`spinalnet.heads.kinds`): an arm's head for a given feature width,
every option made explicit, its parameter count, and the module, built by one initialisation rule.

The rule: every newly created Linear is initialised as ``nn.Linear`` does (uniform, bound ``1/sqrt(fan_in)``,
what the authors' scripts get from a fresh ``nn.Linear(num_ftrs, C)``), whatever the backbone library would
have done; a pretrained head that is kept keeps its weights. Dropout and batch norm are where the arm's
options put them, and nowhere else.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

from spinalnet.heads.builders import set_dropout
from spinalnet.heads.kinds import ArmSpec, HeadContext, head_kind, resolve_arm
from spinalnet.layers.spinal_linear import SpinalLinear

#: The initialisation every newly created head layer gets (recorded with each arm).
INIT_RULE = "pytorch-default"
__all__ = ["INIT_RULE", "HeadContext", "build", "count_params", "describe_head", "input_dropout", "reinitialise",
           "resolve", "seeded", "set_dropout"]


def input_dropout(spec: ArmSpec, ctx: HeadContext) -> float:
    """Dropout on the head's input that the model applies outside the head module: timm's ``drop_rate`` for the
    ``fc`` arm (``fc:dropout=p`` sets it), nothing for the arms that replace the head."""
    if spec.kind != "fc":
        return 0.0
    return float(spec.get("dropout")) if spec.get("dropout") is not None and ctx.own_input_dropout else \
        ctx.own_input_dropout


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Draw from ``seed`` inside, and leave the caller's random state as it was (``None``: the caller's state)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def reinitialise(module: nn.Module, keep: frozenset[int] = frozenset()) -> nn.Module:
    """Every leaf module with ``reset_parameters`` (Linear, BatchNorm, LayerNorm, ...) initialised anew by its own
    rule (for a Linear: PyTorch's default), except those whose ``id`` is in ``keep`` (loaded from weights)."""
    for sub in module.modules():
        if id(sub) not in keep and not any(True for _ in sub.children()) and hasattr(sub, "reset_parameters"):
            sub.reset_parameters()
    return module


def resolve(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None = None) -> ArmSpec:
    """``spec`` with every option it leaves to a default written out, so that its text builds the same head
    anywhere. ``mlp`` and ``mlp2`` take their defaults from ``reference``, the comparison's Spinal arm (the
    model's default Spinal head if None); each kind's rule is its entry's ``resolve``."""
    return resolve_arm(spec, ctx, reference, lambda arm: count_params(arm, ctx))


def count_params(spec: ArmSpec, ctx: HeadContext) -> int:
    """Learnable parameters of the head of a resolved ``spec``: by its kind's formula, else (the model's own head,
    Arch2's Spinal branches, a kind without one) counted on the meta device, without allocating it."""
    count = head_kind(spec.kind).count_params(spec, ctx)
    if count is not None:
        return count
    with torch.device("meta"):
        return sum(p.numel() for p in build(spec, ctx).parameters())


def build(spec: ArmSpec, ctx: HeadContext) -> nn.Module:
    """The head of a resolved ``spec`` (see :func:`resolve`), newly initialised by the module's rule."""
    return head_kind(spec.kind).builder()(spec, ctx)


def describe_head(head: nn.Module, extra_dropout: float = 0.0) -> dict[str, Any]:
    """What results record of a head: its layers in order (shapes), its dropout probabilities and batch norm.

    ``extra_dropout``: dropout the model applies just before the head (timm's ``drop_rate`` in ``forward_head``).
    """
    layers, dropouts, inside = [], ([extra_dropout] if extra_dropout else []), []
    for name, module in head.named_modules():
        if any(name.startswith(prefix) for prefix in inside):
            continue  # a SpinalLinear's own Linears and norms: described with it
        if isinstance(module, SpinalLinear):
            inside.append(f"{name}." if name else "")
            layers.append(f"SpinalLinear({module.in_features}->{module.out_features}, {module.num_layers} x "
                          f"{module.layer_width}, splits {'/'.join(map(str, module.split_sizes))}"
                          f"{', batch norm' if module.batch_norm else ''})")
            dropouts.append(module.dropout)
        elif isinstance(module, nn.Linear):
            layers.append(f"Linear({module.in_features}->{module.out_features})")
        elif isinstance(module, nn.BatchNorm1d):
            layers.append(f"BatchNorm1d({module.num_features})")
        elif isinstance(module, nn.Dropout):
            dropouts.append(module.p)
    return {"layers": layers, "dropout": sorted({float(p) for p in dropouts if p}) or [0.0],
            "batch_norm": any(isinstance(m, nn.BatchNorm1d) for m in head.modules()) or
            any(isinstance(m, SpinalLinear) and m.batch_norm for m in head.modules())}
