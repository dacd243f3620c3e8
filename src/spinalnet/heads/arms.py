"""An arm's head for a given feature width: every option made explicit, its parameter count by formula, and
the module, built by one initialisation rule.

The rule: every newly created Linear is initialised as ``nn.Linear`` does (uniform, bound ``1/sqrt(fan_in)``,
what the authors' scripts get from a fresh ``nn.Linear(num_ftrs, C)``), whatever the backbone library would
have done; a pretrained head that is kept keeps its weights. Dropout and batch norm are where the arm's
options put them, and nowhere else.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from spinalnet.heads.spec import ArmSpec
from spinalnet.layers.activations import create_activation
from spinalnet.layers.sizes import matched_hidden, mlp_params, spinal_params
from spinalnet.layers.spinal_linear import SpinalLinear

#: The initialisation every newly created head layer gets (recorded with each arm).
INIT_RULE = "pytorch-default"
SPINAL_OPTIONS = ("layer_width", "num_layers", "num_splits", "dropout", "batch_norm", "activation")


@dataclass
class HeadContext:
    """What every head of one model is built from.

    ``spinal_defaults``: the model's paper setting of its Spinal head, overridden by the run's options
    (``--layer-width``, ...). ``own_head``: a new copy of the model's own classifier head (the ``fc`` arm).
    ``spinal_head``: a model whose Spinal head is not one SpinalLinear (Arch2's branches) builds it here.
    """

    in_features: int
    num_classes: int
    spinal_defaults: dict[str, Any]
    own_head: Callable[[], nn.Module]
    spinal_head: Callable[[dict[str, Any]], nn.Module] | None = None
    own_head_params: int | None = None  # known without building a copy (a torchvision VGG's is 120M)
    own_input_dropout: float = 0.0  # dropout the model applies before calling its own head (timm's drop_rate)


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


def _spinal_options(spec: ArmSpec, ctx: HeadContext) -> dict[str, Any]:
    defaults = {"num_splits": 2, "dropout": 0.0, "batch_norm": False, "activation": "relu", **ctx.spinal_defaults}
    return {key: spec.get(key, defaults.get(key)) for key in SPINAL_OPTIONS}


def resolve(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None = None) -> ArmSpec:
    """``spec`` with every option it leaves to a default written out, so that its text builds the same head
    anywhere. ``mlp`` and ``mlp2`` take their defaults from ``reference``, the comparison's Spinal arm (the
    model's default Spinal head if None)."""
    if spec.kind == "spinal":
        return spec.with_options(**_spinal_options(spec, ctx))
    if spec.kind in ("mlp", "mlp2"):
        ref = resolve(reference if reference is not None and reference.kind == "spinal" else ArmSpec("spinal"), ctx)
        inherited = {"dropout": ref.get("dropout"), "batch_norm": ref.get("batch_norm"),
                     "activation": ref.get("activation")}
        if spec.kind == "mlp":
            batch_norm = spec.get("batch_norm", inherited["batch_norm"])
            hidden = spec.get("hidden") or matched_hidden(ctx.in_features, ctx.num_classes, count_params(ref, ctx),
                                                          batch_norm)
            return spec.with_options(hidden=hidden, **inherited)
        return spec.with_options(width=ref.get("layer_width"), dropout=0.0, batch_norm=False, activation="relu")
    if spec.kind == "linear":
        return spec.with_options(dropout=0.0)
    return spec  # fc: the model's own head; a dropout option replaces its probabilities


def count_params(spec: ArmSpec, ctx: HeadContext) -> int:
    """Learnable parameters of the head of a resolved ``spec``, without allocating it."""
    n, c = ctx.in_features, ctx.num_classes
    if spec.kind == "spinal" and ctx.spinal_head is None:
        o = _spinal_options(spec, ctx)
        return spinal_params(n, c, o["layer_width"], o["num_layers"], o["num_splits"], o["batch_norm"])
    if spec.kind == "mlp":
        return mlp_params(n, [spec.get("hidden")], c, spec.get("batch_norm"))
    if spec.kind == "mlp2":
        return mlp_params(n, [2 * spec.get("width")] * 2, c, spec.get("batch_norm"))
    if spec.kind == "linear":
        return n * c + c
    if spec.kind == "fc" and ctx.own_head_params is not None:
        return ctx.own_head_params
    with torch.device("meta"):  # the model's own head (or its own Spinal head): counted on the meta device
        return sum(p.numel() for p in build(spec, ctx).parameters())


def _stack(widths: list[int], dropout: float, batch_norm: bool, activation: str) -> nn.Sequential:
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


def build(spec: ArmSpec, ctx: HeadContext) -> nn.Module:
    """The head of a resolved ``spec`` (see :func:`resolve`), newly initialised by the module's rule."""
    n, c = ctx.in_features, ctx.num_classes
    if spec.kind == "spinal":
        options = _spinal_options(spec, ctx)
        return ctx.spinal_head(options) if ctx.spinal_head is not None else SpinalLinear(n, c, **options)
    if spec.kind == "mlp":
        return _stack([n, spec.get("hidden"), c], spec.get("dropout"), spec.get("batch_norm"), spec.get("activation"))
    if spec.kind == "mlp2":
        w = spec.get("width")
        return _stack([n, 2 * w, 2 * w, c], spec.get("dropout"), spec.get("batch_norm"), spec.get("activation"))
    if spec.kind == "linear":
        return _stack([n, c], spec.get("dropout"), False, "identity")
    head = ctx.own_head()
    if spec.get("dropout") is not None:
        set_dropout(head, spec.get("dropout"))
    return head


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
