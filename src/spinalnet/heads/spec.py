"""Arm specs: which head a run trains, written ``KIND[:OPTION=VALUE,...]`` (no framework import).

An arm is a kind of head plus options, e.g. ``spinal:layer_width=64,num_layers=8``, ``mlp:hidden=256``,
``fc:dropout=0``. Its spec is its name in tables, files and plots. A list of arms is comma-separated; an
item with ``=`` but no ``:`` continues the options of the arm before it, so
``fc,mlp,spinal:layer_width=64,num_layers=8`` is three arms.

The kinds and their options are the table of :mod:`spinalnet.heads.kinds`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from spinalnet.errors import UsageError, unknown_name
from spinalnet.heads.kinds import MAX_LAYERS, ArmSpec, format_value, head_kind, kind_names
from spinalnet.layers.activation_names import activation_key

__all__ = ["MAX_LAYERS", "OPTION_TYPES", "ArmSpec", "contrast_label", "format_value", "is_paper_baseline",
           "is_same_size", "parse_arm", "parse_arms", "split_arms"]


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
    plain, changed = head_kind(spec.kind).labels
    if not spec.options:
        return plain
    return "an MLP" if spec.kind == "mlp" and not is_same_size(spec) else changed


def parse_arm(text: str) -> ArmSpec:
    """One spec; an unknown kind or option is a UsageError with a did-you-mean."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"a head must be KIND or KIND:OPTION=VALUE,..., got {text!r}")
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip()
    if kind not in kind_names():
        raise unknown_name("head", kind, kind_names())
    options: list[tuple[str, Any]] = []
    written: list[str] = []
    for item in (part.strip() for part in rest.split(",")) if rest.strip() else ():
        key, equals, raw = (piece.strip() for piece in item.partition("="))
        key = key.replace("-", "_")
        if not equals or not raw:
            raise UsageError(f"head {text.strip()!r}: options are OPTION=VALUE, got {item!r}")
        if key in dict(options):
            raise UsageError(f"head {text.strip()!r}: {key} is given twice")
        options.append((key, _option_value(text.strip(), kind, key, raw)))
        written.append(f"{key}={raw}")
    return ArmSpec(kind, tuple(options), kind + (":" + ",".join(written) if written else ""))


def _option_value(text: str, kind: str, key: str, raw: str) -> Any:
    """``raw`` parsed by the option's type (the kind's own, else the common one), or a UsageError naming it."""
    entry = head_kind(kind)
    if key not in entry.options:
        raise unknown_name(f"option of {kind!r} heads", key, entry.options)
    parse, what = entry.option_types.get(key) or OPTION_TYPES[key]
    try:
        value = parse(raw)
    except ValueError:
        raise UsageError(f"head {text!r}: {key} must be {what}, got {raw!r}") from None
    if key == "num_layers" and value > MAX_LAYERS:
        raise UsageError(f"head {text!r}: num_layers must be <= {MAX_LAYERS:,}, got {value:,}")
    return value


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
