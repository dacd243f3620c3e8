"""Arm specs: which head a run trains, written ``KIND[:OPTION=VALUE,...]`` (no framework import).

An arm is a kind of head plus options, e.g. ``spinal:layer_width=64,num_layers=8``, ``mlp:hidden=256``,
``fc:dropout=0``. Its spec is its name in tables, files and plots. A list of arms is comma-separated; an
item with ``=`` but no ``:`` continues the options of the arm before it, so
``fc,mlp,spinal:layer_width=64,num_layers=8`` is three arms.

Kinds:

- ``fc``: the model's own head (the paper's baseline); ``dropout`` replaces its dropout probabilities.
- ``linear``: one Linear on the features.
- ``mlp``: one hidden layer, ReLU; by default as wide as gives it the Spinal arm's parameter count, with the
  Spinal arm's dropout, batch norm and activation, so that only the structure differs.
- ``mlp2``: the authors' 2-layer FC baseline, Linear(n, 2w)-ReLU-Linear(2w, 2w)-ReLU-Linear(2w, C), with the
  Spinal arm's layer width w by default.
- ``spinal``: a SpinalLinear; options default to the model's paper setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from spinalnet.errors import UsageError, unknown_name
from spinalnet.layers.activation_names import activation_key


def _int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise ValueError
    return value


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError


def _activation(text: str) -> str:
    return activation_key(text)


#: option -> (parser, what it must be)
OPTION_TYPES: dict[str, tuple[Callable[[str], Any], str]] = {
    "dropout": (_probability, "a probability >= 0 and < 1"),
    "hidden": (_int, "a whole number >= 1"),
    "width": (_int, "a whole number >= 1"),
    "layer_width": (_int, "a whole number >= 1"),
    "num_layers": (_int, "a whole number >= 1"),
    "num_splits": (_int, "a whole number >= 1"),
    "batch_norm": (_bool, "true or false"),
    "activation": (_activation, "an activation name such as relu"),
}
KINDS: dict[str, tuple[str, ...]] = {
    "fc": ("dropout",),
    "linear": ("dropout",),
    "mlp": ("hidden", "dropout", "batch_norm", "activation"),
    "mlp2": ("width", "dropout", "batch_norm", "activation"),
    "spinal": ("layer_width", "num_layers", "num_splits", "dropout", "batch_norm", "activation"),
}
#: How a contrast with each kind reads in words ("Spinal vs mlp (same parameters)"): the kind as it is by default,
#: and the kind with options of its own (see :func:`contrast_label`).
KIND_LABELS = {"fc": ("the paper's baseline", "the model's head"), "linear": ("one Linear", "one Linear"),
               "mlp": ("same parameters", "same parameters"), "mlp2": ("the authors' 2-layer FC",) * 2,
               "spinal": ("another Spinal head",) * 2}
MAX_LAYERS = 10_000  # as TrainConfig's --num-layers: a module per layer


def format_value(value: Any) -> str:
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
        out every option, so that it rebuilds the same head anywhere."""
        merged = dict(self.options)
        merged.update({k: v for k, v in values.items() if v is not None and k not in merged})
        ordered = tuple((k, merged[k]) for k in KINDS[self.kind] if k in merged)
        text = self.kind + (":" + ",".join(f"{k}={format_value(v)}" for k, v in ordered) if ordered else "")
        return ArmSpec(self.kind, ordered, text)

    def __str__(self) -> str:
        return self.name


def is_paper_baseline(spec: ArmSpec) -> bool:
    """``fc`` as the model defines it: the head the paper compares with."""
    return spec.kind == "fc" and not spec.options


def is_same_size(spec: ArmSpec) -> bool:
    """An ``mlp`` whose width is matched to the reference's parameters (no ``hidden`` of its own)."""
    return spec.kind == "mlp" and spec.get("hidden") is None


def contrast_label(spec: ArmSpec, reference: ArmSpec | None = None) -> str:
    """What an arm is, in words, for "Spinal vs ARM (LABEL)" (the arm's name shows its options): ``fc`` with
    options is no longer the paper's baseline, an ``mlp`` of a given width is not "same parameters", and a
    matched ``mlp`` has a Spinal head's size, which is the reference's only when that is a Spinal head."""
    if is_same_size(spec) and reference is not None and reference.kind != "spinal":
        return "the Spinal head's size"
    plain, changed = KIND_LABELS[spec.kind]
    if not spec.options:
        return plain
    return "an MLP" if spec.kind == "mlp" and not is_same_size(spec) else changed


def parse_arm(text: str) -> ArmSpec:
    """One spec; an unknown kind or option is a UsageError with a did-you-mean."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"a head must be KIND or KIND:OPTION=VALUE,..., got {text!r}")
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise unknown_name("head", kind, KINDS)
    options: list[tuple[str, Any]] = []
    written: list[str] = []
    for item in (part.strip() for part in rest.split(",")) if rest.strip() else ():
        key, equals, raw = (piece.strip() for piece in item.partition("="))
        key = key.replace("-", "_")
        if not equals or not raw:
            raise UsageError(f"head {text.strip()!r}: options are OPTION=VALUE, got {item!r}")
        if key not in KINDS[kind]:
            raise unknown_name(f"option of {kind!r} heads", key, KINDS[kind])
        if key in dict(options):
            raise UsageError(f"head {text.strip()!r}: {key} is given twice")
        parse, what = OPTION_TYPES[key]
        try:
            value = parse(raw)
        except ValueError:
            raise UsageError(f"head {text.strip()!r}: {key} must be {what}, got {raw!r}") from None
        if key == "num_layers" and value > MAX_LAYERS:
            raise UsageError(f"head {text.strip()!r}: num_layers must be <= {MAX_LAYERS:,}, got {value:,}")
        options.append((key, value))
        written.append(f"{key}={raw}")
    return ArmSpec(kind, tuple(options), kind + (":" + ",".join(written) if written else ""))


def split_arms(text: str | Iterable[str]) -> list[str]:
    """``"fc,mlp,spinal:layer_width=64,num_layers=8"`` -> ``["fc", "mlp", "spinal:layer_width=64,num_layers=8"]``;
    a list (YAML) is taken item by item, each item split the same way."""
    if not isinstance(text, str):
        return [arm for item in text for arm in split_arms(str(item))]
    arms: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:  # "fc,,spinal": an arm left out by mistake, not nothing
            raise UsageError(f"--heads {text!r} has an empty item; separate the arms with single commas")
        if "=" in item and ":" not in item and arms:  # an option of the arm before
            arms[-1] += ("," if ":" in arms[-1] else ":") + item
        else:
            arms.append(item)
    return arms


def parse_arms(texts: Iterable[str]) -> list[ArmSpec]:
    """Every arm of a list, each once."""
    arms = [parse_arm(text) for text in texts]
    if not arms:
        raise UsageError("--heads needs at least one head, e.g. fc,mlp,spinal")
    names = [arm.name for arm in arms]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"--heads names {', '.join(repeated)} more than once")
    return arms
