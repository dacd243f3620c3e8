"""The PyTorch module of each built-in head kind, for a resolved spec (the table :mod:`.kinds` names these by
import path, so that it imports no torch). Every Linear is new, initialised as ``nn.Linear`` does; dropout and
batch norm are where the arm's options put them, and nowhere else."""

from __future__ import annotations

from torch import nn

from spinalnet.heads.kinds import ArmSpec, HeadContext, spinal_options
from spinalnet.layers.activations import create_activation
from spinalnet.layers.spinal_linear import SpinalLinear


def stack(widths: list[int], dropout: float, batch_norm: bool, activation: str) -> nn.Sequential:
    """[Dropout] Linear [BatchNorm1d] activation ... [Dropout] Linear: dropout before every Linear and batch norm
    after every hidden one, as in the Spinal head."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers += [nn.BatchNorm1d(b)] if batch_norm else []
            layers.append(create_activation(activation))
    return nn.Sequential(*layers)


def set_dropout(module: nn.Module, p: float) -> None:
    """Every Dropout of ``module`` with probability ``p`` (``fc:dropout=0`` turns the model's own off)."""
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = float(p)


def build_fc(spec: ArmSpec, ctx: HeadContext) -> nn.Module:
    """A new copy of the model's own head; a ``dropout`` option replaces its probabilities."""
    if ctx.own_head is None:
        raise ValueError("this head context has no head of the model's own to copy (the fc arm)")
    head = ctx.own_head()
    if spec.get("dropout") is not None:
        set_dropout(head, spec.get("dropout"))
    return head


def build_linear(spec: ArmSpec, ctx: HeadContext) -> nn.Module:
    return stack([ctx.in_features, ctx.num_classes], spec.get("dropout"), False, "identity")


def build_mlp(spec: ArmSpec, ctx: HeadContext) -> nn.Module:
    return stack([ctx.in_features, spec.get("hidden"), ctx.num_classes], spec.get("dropout"), spec.get("batch_norm"),
                 spec.get("activation"))


def build_mlp2(spec: ArmSpec, ctx: HeadContext) -> nn.Module:
    """Linear(n, 2w)-act-Linear(2w, 2w)-act-Linear(2w, C), the authors' 2-layer FC baseline."""
    w = spec.get("width")
    return stack([ctx.in_features, 2 * w, 2 * w, ctx.num_classes], spec.get("dropout"), spec.get("batch_norm"),
                 spec.get("activation"))


def build_spinal(spec: ArmSpec, ctx: HeadContext) -> nn.Module:
    """One SpinalLinear, or the model's own Spinal head where it has one (Arch2's branches)."""
    options = spinal_options(spec, ctx.spinal_defaults)
    if ctx.spinal_head is not None:
        return ctx.spinal_head(options)
    return SpinalLinear(ctx.in_features, ctx.num_classes, **options)
