"""``convert-weights``: another implementation's state dict in the key layout of a ``tv:`` or ``timm:`` model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from spinalnet.errors import UsageError
from spinalnet.files import atomic_write
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
