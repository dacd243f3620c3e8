"""The kinds of head an arm can be, each declared once in one table (no framework import).

A :class:`HeadKind` holds everything the package asks of a kind: its options, how a contrast with it reads in
words, how its defaults are written out (resolve), its parameter count by formula, and where its PyTorch module
is built. The builder is named by import path (``"module:function"``) and imported on first use, so this table,
the arm parser (:mod:`.spec`) and ``spinalnet report`` stay free of torch; :mod:`.arms` is the PyTorch side that
builds (and counts on the meta device what has no formula).

The built-in kinds:

- ``fc``: the model's own head (the paper's baseline); ``dropout`` replaces its dropout probabilities.
- ``linear``: one Linear on the features.
- ``mlp``: one hidden layer, ReLU; by default as wide as gives it the Spinal arm's parameter count, with the
  Spinal arm's dropout, batch norm and activation, so that only the structure differs.
- ``mlp2``: the authors' 2-layer FC baseline, Linear(n, 2w)-ReLU-Linear(2w, 2w)-ReLU-Linear(2w, C), with the
  Spinal arm's layer width w by default.
- ``spinal``: a SpinalLinear; options default to the model's paper setting.

Adding a kind is one :func:`register_kind` call; ``tests/test_head_kinds.py`` registers a toy kind and trains
it through ``spinalnet compare``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Mapping

from spinalnet.layers.sizes import matched_hidden, mlp_params, spinal_params

#: As ``--num-layers``: a module per layer, so a million of them filled 24 GB before training started.
MAX_LAYERS = 10_000


def format_value(value: Any) -> str:
    """An option's value as an arm's text writes it (``true``, ``0.5``, ``64``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class ArmSpec:
    """A head kind and its options (in the order given); ``text`` is the spec as written, its name."""

    kind: str
    options: tuple[tuple[str, Any], ...] = ()
    text: str = ""

    @property
    def name(self) -> str:
        return self.text or self.kind

    @property
    def slug(self) -> str:
        """The name as a path component (``spinal_layer_width=64,num_layers=8``): kinds hold no ``_`` or ``=``,
        so no two arms share one."""
        return self.name.replace(":", "_")

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    def with_options(self, **values: Any) -> "ArmSpec":
        """This kind with ``values`` added to the options it has (None values left out); its text spells
        out every option in the kind's order, so that it rebuilds the same head anywhere."""
        merged = dict(self.options)
        merged.update({k: v for k, v in values.items() if v is not None and k not in merged})
        ordered = tuple((k, merged[k]) for k in head_kind(self.kind).options if k in merged)
        text = self.kind + (":" + ",".join(f"{k}={format_value(v)}" for k, v in ordered) if ordered else "")
        return ArmSpec(self.kind, ordered, text)

    def __str__(self) -> str:
        return self.name


@dataclass
class HeadContext:
    """What every head of one model is built from.

    ``spinal_defaults``: the model's paper setting of its Spinal head, overridden by the run's options
    (``--layer-width``, ...). ``own_head``: a new copy of the model's own classifier head (the ``fc`` arm; None
    where no model gives one, e.g. when only formulas are asked for). ``spinal_head``: a model whose Spinal head
    is not one SpinalLinear (Arch2's branches) builds it here.
    """

    in_features: int
    num_classes: int
    spinal_defaults: dict[str, Any]
    own_head: Callable[[], Any] | None = None
    spinal_head: Callable[[dict[str, Any]], Any] | None = None
    own_head_params: int | None = None  # known without building a copy (a torchvision VGG's is 120M)
    own_input_dropout: float = 0.0  # dropout the model applies before calling its own head (timm's drop_rate)


#: Counts a resolved arm's head (the caller's way: by formula, or by building it on the meta device).
Count = Callable[[ArmSpec], int]
Resolve = Callable[[ArmSpec, HeadContext, "ArmSpec | None", Count], ArmSpec]
Builder = Callable[[ArmSpec, HeadContext], Any]
#: option -> (parser of its text, what the value must be, for the error)
OptionTypes = Mapping[str, tuple[Callable[[str], Any], str]]


def as_written(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None, count: Count) -> ArmSpec:
    """A kind with no defaults to write out."""
    return spec


def no_formula(spec: ArmSpec, ctx: HeadContext) -> int | None:
    """No formula: the head is counted by building it on the meta device (:func:`spinalnet.heads.arms.count_params`)."""
    return None


@dataclass(frozen=True)
class HeadKind:
    """One kind of head, declared once.

    ``options``: the options its spec takes, in the order its text writes them; ``option_types``: parsers of
    options that :data:`spinalnet.heads.spec.OPTION_TYPES` does not know. ``labels``: how "Spinal vs ARM
    (LABEL)" reads for the kind as it is, and with options of its own. ``resolve``: the spec with every default
    written out (``reference``: the comparison's reference arm; ``count``: how to count another arm's head).
    ``count_params``: parameters by formula, None where only the built head can tell. ``build``: the PyTorch
    module of a resolved spec, or ``"module:function"`` naming it (imported on first use: this table imports
    no torch).
    """

    name: str
    options: tuple[str, ...]
    labels: tuple[str, str]
    build: Builder | str
    resolve: Resolve = as_written
    count_params: Callable[[ArmSpec, HeadContext], int | None] = no_formula
    option_types: OptionTypes = field(default_factory=dict)

    def builder(self) -> Builder:
        """The build function (imported now if given as an import path)."""
        return _imported(self.build) if isinstance(self.build, str) else self.build


@cache
def _imported(path: str) -> Builder:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_REGISTRY: dict[str, HeadKind] = {}
_RESERVED = set(":,=_ ")  # a kind's name is the start of an arm's text and of its path component (ArmSpec.slug)


def register_kind(kind: HeadKind) -> HeadKind:
    """Add ``kind`` to the table: from now on ``--heads`` takes it, and every arm function handles it."""
    if not kind.name or _RESERVED & set(kind.name) or kind.name != kind.name.strip():
        raise ValueError(f"a head kind's name may not be empty or hold any of {''.join(sorted(_RESERVED))!r}: "
                         f"{kind.name!r}")
    if kind.name in _REGISTRY:
        raise ValueError(f"head kind {kind.name!r} is registered already")
    _REGISTRY[kind.name] = kind
    return kind


def unregister_kind(name: str) -> None:
    """Remove a kind that :func:`register_kind` added (a test's, a plug-in's)."""
    del _REGISTRY[name]


def head_kind(name: str) -> HeadKind:
    """The table's entry for ``name`` (KeyError if none: :func:`spinalnet.heads.spec.parse_arm` checks names)."""
    return _REGISTRY[name]


def kind_names() -> tuple[str, ...]:
    """Every kind, in the order they were registered."""
    return tuple(_REGISTRY)


def resolve_arm(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None = None,
                count: Count | None = None) -> ArmSpec:
    """``spec`` with every option it leaves to a default written out; ``count`` defaults to the formulas
    (:func:`spinalnet.heads.arms.resolve` passes one that also builds on the meta device)."""
    return head_kind(spec.kind).resolve(spec, ctx, reference, count or (lambda arm: formula_count(arm, ctx)))


def formula_count(spec: ArmSpec, ctx: HeadContext) -> int:
    """Parameters of a resolved ``spec``'s head by its kind's formula (ValueError where it has none here)."""
    count = head_kind(spec.kind).count_params(spec, ctx)
    if count is None:
        raise ValueError(f"the {spec.kind!r} head of this model has no parameter formula; build it to count it")
    return count


# ------------------------------------------------------------------------------------------- the five kinds
SPINAL_LAYER_DEFAULTS = {"num_splits": 2, "dropout": 0.0, "batch_norm": False, "activation": "relu"}


def spinal_options(spec: ArmSpec, spinal_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A Spinal arm's options: the spec's, else the model's paper setting, else the layer's defaults."""
    defaults = {**SPINAL_LAYER_DEFAULTS, **spinal_defaults}
    return {key: spec.get(key, defaults.get(key)) for key in SPINAL.options}


def _resolve_spinal(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None, count: Count) -> ArmSpec:
    return spec.with_options(**spinal_options(spec, ctx.spinal_defaults))


def _count_spinal(spec: ArmSpec, ctx: HeadContext) -> int | None:
    if ctx.spinal_head is not None:  # Arch2's branches: only the built head can tell
        return None
    o = spinal_options(spec, ctx.spinal_defaults)
    return spinal_params(ctx.in_features, ctx.num_classes, o["layer_width"], o["num_layers"], o["num_splits"],
                         o["batch_norm"])


def spinal_reference(ctx: HeadContext, reference: ArmSpec | None) -> ArmSpec:
    """The Spinal arm that ``mlp`` and ``mlp2`` follow, resolved: the comparison's reference when it is a Spinal
    arm, else the model's default Spinal head."""
    spinal = reference if reference is not None and reference.kind == "spinal" else ArmSpec("spinal")
    return spinal.with_options(**spinal_options(spinal, ctx.spinal_defaults))


def _resolve_mlp(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None, count: Count) -> ArmSpec:
    """The Spinal arm's dropout, batch norm and activation, and the width that gives its parameter count."""
    ref = spinal_reference(ctx, reference)
    inherited = {key: ref.get(key) for key in ("dropout", "batch_norm", "activation")}
    batch_norm = spec.get("batch_norm", inherited["batch_norm"])
    hidden = spec.get("hidden") or matched_hidden(ctx.in_features, ctx.num_classes, count(ref), batch_norm)
    return spec.with_options(hidden=hidden, **inherited)


def _resolve_mlp2(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None, count: Count) -> ArmSpec:
    """The authors' 2-layer FC: the Spinal arm's layer width, no dropout or batch norm, ReLU."""
    ref = spinal_reference(ctx, reference)
    return spec.with_options(width=ref.get("layer_width"), dropout=0.0, batch_norm=False, activation="relu")


def _resolve_linear(spec: ArmSpec, ctx: HeadContext, reference: ArmSpec | None, count: Count) -> ArmSpec:
    return spec.with_options(dropout=0.0)


def _count_mlp(spec: ArmSpec, ctx: HeadContext) -> int:
    return mlp_params(ctx.in_features, [spec.get("hidden")], ctx.num_classes, spec.get("batch_norm"))


def _count_mlp2(spec: ArmSpec, ctx: HeadContext) -> int:
    return mlp_params(ctx.in_features, [2 * spec.get("width")] * 2, ctx.num_classes, spec.get("batch_norm"))


def _count_linear(spec: ArmSpec, ctx: HeadContext) -> int:
    return ctx.in_features * ctx.num_classes + ctx.num_classes


def _count_fc(spec: ArmSpec, ctx: HeadContext) -> int | None:
    return ctx.own_head_params  # None: a copy of the model's own head is counted on the meta device


_BUILDERS = "spinalnet.heads.builders"
FC = register_kind(HeadKind(
    "fc", ("dropout",), ("the paper's baseline", "the model's head"), f"{_BUILDERS}:build_fc",
    count_params=_count_fc))
LINEAR = register_kind(HeadKind(
    "linear", ("dropout",), ("one Linear", "one Linear"), f"{_BUILDERS}:build_linear",
    _resolve_linear, _count_linear))
MLP = register_kind(HeadKind(
    "mlp", ("hidden", "dropout", "batch_norm", "activation"), ("same parameters", "same parameters"),
    f"{_BUILDERS}:build_mlp", _resolve_mlp, _count_mlp))
MLP2 = register_kind(HeadKind(
    "mlp2", ("width", "dropout", "batch_norm", "activation"), ("the authors' 2-layer FC",) * 2,
    f"{_BUILDERS}:build_mlp2", _resolve_mlp2, _count_mlp2))
SPINAL = register_kind(HeadKind(
    "spinal", ("layer_width", "num_layers", "num_splits", "dropout", "batch_norm", "activation"),
    ("another Spinal head",) * 2, f"{_BUILDERS}:build_spinal", _resolve_spinal, _count_spinal))
