"""Pretrained weights in one place: loading ``--pretrained``, the weights digest, and the backbone's own
preprocessing (normalisation and input size). Weights named without a machine path (``efficientnet-lite0``) are
converted into a file by :mod:`spinalnet.models.convert`.

A backbone trained on ImageNet expects its inputs normalised as in its training, at its own size:
timm records that in the model's ``pretrained_cfg``, torchvision in the weights' ``transforms()``.
Feeding it the dataset's own statistics (what a model trained from scratch gets) shifts every input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from spinalnet.errors import UsageError, require_file
from spinalnet.files import sha256_file
from spinalnet.models.names import is_external, parse_external

ORIGINAL_WEIGHTS = "imagenet"  # --pretrained imagenet: the library's own download


@dataclass(frozen=True)
class Preprocessing:
    """What a pretrained backbone expects: per-channel mean/std (in [0, 1] units) and a square input size."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "input_size": self.input_size}


def backbone_preprocessing(model: str, pretrained: str | None) -> Preprocessing | None:
    """The normalisation and input size of ``model``'s pretrained weights; None for a model trained from scratch."""
    if pretrained is None or not is_external(model):
        return None
    parsed = parse_external(model)
    if parsed.library == "timm":
        from timm.data import resolve_data_config
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(parsed.name)
        data = resolve_data_config(pretrained_cfg=cfg.to_dict() if cfg is not None else {})
        return Preprocessing(tuple(data["mean"]), tuple(data["std"]), int(data["input_size"][-1]))
    import torchvision

    transform = torchvision.models.get_model_weights(parsed.name).DEFAULT.transforms()
    return Preprocessing(tuple(transform.mean), tuple(transform.std), int(transform.crop_size[0]))


# ---------------------------------------------------------------------------------------------- reading files
def read_state_dict(path: Path) -> dict[str, Tensor]:
    """A state dict from ``path`` (plain, or wrapped in ``{"state_dict": ...}``), or one clear UsageError."""
    path = Path(path)
    require_file(path, "pretrained weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise UsageError(f"{path}: not a readable PyTorch weights file (truncated, or of another program?)") from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise UsageError(f"{path}: not a state dict (expected a mapping of parameter names to tensors)")
    return dict(state)


def _first(names: list[str], limit: int = 3) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_fits(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], source: str, target: str,
               ignore: tuple[str, ...] = ()) -> None:
    """Raise one UsageError naming the first missing, unexpected and wrongly shaped keys, if any."""
    keep = [k for k in expected if not k.startswith(ignore)]
    missing = [k for k in keep if k not in state]
    unexpected = [k for k in state if k not in expected and not k.startswith(ignore)]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}" for k in keep
              if k in state and state[k].shape != expected[k].shape]
    problems = [f"{what}: {_first(names)}" for what, names in
                (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes (file vs model)", shapes))
                if names]
    if problems:
        hint = "; convert it first with spinalnet convert-weights" if missing and unexpected else ""
        raise UsageError(f"{source} does not fit {target}: {'; '.join(problems)}{hint}")


def backbone_record(model: str, pretrained: str | None) -> dict[str, Any]:
    """The backbone a head on cached features was trained on: enough to rebuild the whole model and to know
    that the weights file is the same one."""
    local = pretrained not in (None, ORIGINAL_WEIGHTS)
    return {"model": model, "weights": pretrained, "weights_sha256": sha256_file(Path(pretrained)) if local else None}


def check_backbone(record: dict[str, Any], source: Path) -> None:
    """Refuse, in one line naming the weights file, a backbone whose weights are missing or another file."""
    weights, expected = record.get("weights"), record.get("weights_sha256")
    if expected is None:
        return  # downloaded weights (imagenet): the library's own, not a file of ours to check
    path = Path(weights)
    if not path.is_file():
        raise UsageError(f"{source} is a head trained on features of {record['model']} with the weights {path}, "
                         "which are missing; put them back there to rebuild the whole model")
    if sha256_file(path) != expected:
        raise UsageError(f"{source} is a head trained on features of {record['model']} with the weights {path}, "
                         "but that file has changed since (another SHA-256); restore the file the head was trained on")


def weights_digest(model: nn.Module, skip_prefix: str | None = None) -> str:
    """SHA-256 of a model's tensors (names, shapes, dtypes, values), optionally without one submodule."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if skip_prefix and (name == skip_prefix or name.startswith(skip_prefix + ".")):
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- loading
def load_torchvision_file(model: nn.Module, path: Path, name: str) -> None:
    """torchvision: the file's state dict through ``load_state_dict`` (checked key by key first)."""
    state = read_state_dict(path)
    check_fits(state, model.state_dict(), str(path), name)
    model.load_state_dict(state)


def timm_with_file(name: str, path: Path, num_classes: int) -> nn.Module:
    """timm: the model with the file as its pretrained source, loaded by timm's own ``load_pretrained``
    (what ``create_model(pretrained_cfg_overlay=dict(file=PATH))`` does), checked key by key first.

    timm drops the classifier itself when the number of classes differs from the weights'; the check
    ignores the classifier's keys in that case.
    """
    import timm
    from timm.models import load_pretrained

    state = read_state_dict(path)
    model = timm.create_model(name, pretrained=False, num_classes=num_classes)
    cfg = {**model.pretrained_cfg, "file": str(path)}
    classifier = cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    ignore = tuple(f"{c}." for c in classifier) if num_classes != cfg.get("num_classes", 1000) else ()
    check_fits(state, model.state_dict(), str(path), f"timm:{name}", ignore)
    load_pretrained(model, pretrained_cfg=cfg, num_classes=num_classes)
    return model
