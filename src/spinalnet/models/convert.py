"""``convert-weights``: another implementation's state dict in the key layout of a ``tv:`` or ``timm:`` model, as a
``.pth`` file or (``timm:`` models) as timm's preset directory, which ``spinalnet.keras`` reads without torch."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from spinalnet.errors import UsageError
from spinalnet.files import _umask, atomic_write
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
