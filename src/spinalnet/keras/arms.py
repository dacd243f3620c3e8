"""The arms of ``spinalnet compare --heads`` as Keras heads: the same specs (``fc``, ``linear``, ``mlp``, ``mlp2``,
``spinal`` with options), resolved by the same rule (the kinds table, :mod:`spinalnet.heads.kinds`), with the
same layers, dropout and batch norm, and one initialisation rule: every Dense as ``torch.nn.Linear`` draws it
(uniform, bound ``1/sqrt(fan_in)``), not Keras' ``glorot_uniform``, so the PyTorch arms' learning rates carry over.

On a backbone whose features a head reads, ``fc`` is the backbone's own classifier: Dropout(the backbone's
dropout, ``fc:dropout=p`` replaces it) then one Dense, as timm's and the authors' transfer heads are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras

from spinalnet.errors import UsageError
from spinalnet.heads.kinds import ArmSpec, HeadContext, formula_count
from spinalnet.heads.kinds import resolve_arm as resolve_spec
from spinalnet.heads.spec import parse_arm
from spinalnet.keras.activations import Activation
from spinalnet.keras.batchnorm import BatchNorm
from spinalnet.keras.layer import SpinalDense, torch_uniform
from spinalnet.layers.split import split_sizes

#: The initialisation of every new head layer, as the PyTorch arms record it (spinalnet.heads.arms.INIT_RULE).
INIT_RULE = "pytorch-default"
#: A backbone's Spinal head unless the comparison says otherwise (as for a tv: or timm: model).
SPINAL_DEFAULTS = {"layer_width": 128, "num_layers": 4}
KINDS = ("fc", "linear", "mlp", "mlp2", "spinal")  # the kinds built here (a registered kind builds in PyTorch only)


@dataclass(frozen=True)
class KerasArm:
    """A resolved arm for ``in_features`` inputs: its spec (every option written out), what results record of its
    head, and its trainable parameter count (by formula, as the PyTorch arm counts it)."""

    spec: ArmSpec
    in_features: int
    num_classes: int
    own_dropout: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    params: int = 0

    def build(self, name: str | None = None) -> keras.layers.Layer:
        """A new head layer (weights drawn from Keras' global seed: ``keras.utils.set_random_seed``)."""
        s, n, c = self.spec, self.in_features, self.num_classes
        if s.kind == "spinal":
            return SpinalDense(c, s.get("layer_width"), s.get("num_layers"), s.get("num_splits"), s.get("activation"),
                               s.get("dropout"), s.get("batch_norm"), name=name or "head")
        return keras.Sequential(_stack(_widths(s, n, c), _dropout(s, self.own_dropout), bool(s.get("batch_norm")),
                                       s.get("activation") or "identity"), name=name or "head")


def resolve_arm(spec: str | ArmSpec, in_features: int, num_classes: int, *, reference: str | ArmSpec | None = None,
                spinal_defaults: dict[str, Any] | None = None, own_dropout: float = 0.0) -> KerasArm:
    """``spec`` (e.g. ``"mlp"``, ``"spinal:layer_width=20"``) for a head on ``in_features`` features; an unknown kind
    or option is one :class:`~spinalnet.errors.UsageError`. ``mlp``/``mlp2`` take their size from ``reference``."""
    spec = parse_arm(spec) if isinstance(spec, str) else spec
    reference = parse_arm(reference) if isinstance(reference, str) else reference
    if spec.kind not in KINDS:
        raise UsageError(f"head kind {spec.kind!r} has no Keras head; Keras builds {', '.join(KINDS)}")
    # the backbone's own classifier (fc) is one Dense on the features, as a linear arm is
    ctx = HeadContext(in_features, num_classes, {**SPINAL_DEFAULTS, **(spinal_defaults or {})},
                      own_head_params=in_features * num_classes + num_classes)
    resolved = resolve_spec(spec, ctx, reference)
    return KerasArm(resolved, in_features, num_classes, own_dropout,
                    describe(resolved, in_features, num_classes, own_dropout), formula_count(resolved, ctx))


def _widths(spec: ArmSpec, n: int, c: int) -> list[int]:
    if spec.kind == "mlp":
        return [n, spec.get("hidden"), c]
    if spec.kind == "mlp2":
        return [n, 2 * spec.get("width"), 2 * spec.get("width"), c]
    return [n, c]  # linear, fc


def _dropout(spec: ArmSpec, own_dropout: float) -> float:
    if spec.kind == "fc":
        return float(spec.get("dropout")) if spec.get("dropout") is not None else float(own_dropout)
    return float(spec.get("dropout") or 0.0)


def _stack(widths: list[int], dropout: float, batch_norm: bool, activation: str) -> list[keras.layers.Layer]:
    """[Dropout] Dense [BatchNorm] activation ... [Dropout] Dense, as the PyTorch arms' stack."""
    layers: list[keras.layers.Layer] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
        layers.append(keras.layers.Dense(b, kernel_initializer=torch_uniform(a), bias_initializer=torch_uniform(a)))
        if i < len(widths) - 2:
            layers += [BatchNorm()] if batch_norm else []
            layers.append(Activation(activation))
    return layers


def describe(spec: ArmSpec, n: int, c: int, own_dropout: float = 0.0) -> dict[str, Any]:
    """What results record of a head, in the words of the PyTorch arms (``Linear(1280->10)``, ``SpinalLinear(...)``)."""
    if spec.kind == "spinal":
        sizes = split_sizes(n, spec.get("num_splits"))
        layers = [f"SpinalLinear({n}->{c}, {spec.get('num_layers')} x {spec.get('layer_width')}, splits "
                  f"{'/'.join(map(str, sizes))}{', batch norm' if spec.get('batch_norm') else ''})"]
        dropout = float(spec.get("dropout"))
    else:
        widths, layers = _widths(spec, n, c), []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(f"Linear({a}->{b})")
            if spec.get("batch_norm") and i < len(widths) - 2:
                layers.append(f"BatchNorm1d({b})")
        dropout = _dropout(spec, own_dropout)
    return {"layers": layers, "dropout": [dropout] if dropout else [0.0], "batch_norm": bool(spec.get("batch_norm")),
            "init": INIT_RULE}
