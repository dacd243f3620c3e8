"""``tv:NAME`` and ``timm:NAME``: the one place where external model names are parsed and checked."""

from __future__ import annotations

from typing import NamedTuple

from spinalnet.errors import UsageError, unknown_name

LIBRARIES = {"tv:": "torchvision", "timm:": "timm"}


class ExternalName(NamedTuple):
    library: str  # "torchvision" or "timm"
    name: str     # the library's own model name


def is_external(model: str) -> bool:
    return model.startswith(tuple(LIBRARIES))


def parse_external(model: str) -> ExternalName:
    """``"timm:convnext_tiny"`` -> ``ExternalName("timm", "convnext_tiny")``; ValueError for a zoo name."""
    for prefix, library in LIBRARIES.items():
        if model.startswith(prefix):
            return ExternalName(library, model[len(prefix):])
    raise ValueError(f"{model!r} is not a tv:NAME or timm:NAME model")


def import_timm():
    try:
        import timm
    except ImportError:
        raise UsageError("timm models need timm: pip install 'spinalnet[timm]'") from None
    return timm


def check_external_name(model: str) -> ExternalName:
    """The parsed name, or a UsageError with the closest name the library knows."""
    parsed = parse_external(model)
    if parsed.library == "timm":
        timm = import_timm()
        if not timm.is_model(parsed.name):
            raise unknown_name("timm model", parsed.name, timm.list_models(),
                               "python -c 'import timm; print(timm.list_models())' lists them")
    else:
        import torchvision

        if parsed.name not in torchvision.models.list_models():
            raise unknown_name("torchvision model", parsed.name, torchvision.models.list_models(),
                               "python -c 'import torchvision; print(torchvision.models.list_models())' lists them")
    return parsed
