"""A timm-format preset directory, read without torch: ``config.json`` (timm's, with ``architecture`` and
``pretrained_cfg``) and ``model.safetensors`` (timm's state dict).

``spinalnet convert-weights SRC --model timm:NAME --format timm --output DIR`` writes one (timm's own
``save_for_hf``); timm, KerasHub's timm loader and :func:`spinalnet.keras.efficientnet_lite` read the same layout.
The tensors are read with ``safetensors.numpy``: no framework is needed to read them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinalnet.errors import UsageError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class Preset:
    """A preset's config and its tensors (float32 numpy arrays by timm's key names)."""

    directory: Path
    config: dict[str, Any]
    tensors: dict[str, np.ndarray]

    @property
    def architecture(self) -> str:
        return self.config["architecture"]

    @property
    def preprocessing(self) -> dict[str, Any]:
        """timm's ``pretrained_cfg``: the ``mean``/``std`` (on [0, 1] pixels) and ``input_size`` the weights expect."""
        return dict(self.config.get("pretrained_cfg") or {})


def read_config(directory: Path) -> dict[str, Any]:
    """``config.json`` of a preset directory; anything that is not one is one UsageError naming the path."""
    directory = Path(directory)
    if not directory.is_dir():
        what = "a file" if directory.exists() else "missing"
        raise UsageError(f"preset {directory}: {what}, not a directory with {CONFIG} and {WEIGHTS}; write one with "
                         "spinalnet convert-weights SRC --model timm:NAME --format timm --output DIR")
    path = directory / CONFIG
    if not path.is_file():
        raise UsageError(f"preset {directory}: no {CONFIG}; expected timm's config.json and {WEIGHTS}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise UsageError(f"{path}: not timm's config.json (no 'architecture' name)")
    return config


def read_tensors(directory: Path) -> dict[str, np.ndarray]:
    """``model.safetensors`` as float32 arrays; a missing, truncated or corrupt file is one UsageError."""
    try:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file
    except ImportError:
        raise ImportError("reading a preset needs safetensors: pip install 'spinalnet[keras]'") from None
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise UsageError(f"preset {directory}: no weights file {WEIGHTS}")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise UsageError(f"{path}: not a readable safetensors file (truncated or corrupt? {err})") from None
    return {key: np.asarray(value, dtype=np.float32) for key, value in tensors.items()}


def read_preset(directory: str | Path) -> Preset:
    """The config (checked first, so a wrong directory fails before any weights are read) and the tensors."""
    config = read_config(Path(directory))
    return Preset(Path(directory), config, read_tensors(Path(directory)))
