"""Checkpoints: written atomically (a temporary file in the same directory, fsync, rename: a kill at any
moment leaves the previous checkpoint or the new one, never a truncated file) and read back with one-line
errors naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from spinalnet.engine.module import Classifier
from spinalnet.errors import UsageError
from spinalnet.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))


def read_checkpoint_state(last: Path) -> tuple[dict[str, Any], int]:
    """The config and epoch stored in a checkpoint (mmap: Lightning loads the weights once, when it resumes)."""
    try:
        saved = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        return saved["hyper_parameters"]["config"], int(saved["epoch"])
    except Exception as err:  # truncated or foreign file
        raise UsageError(f"cannot resume from {last}: not a readable spinalnet checkpoint ({type(err).__name__})") from None


def load_classifier(path: Path) -> Classifier:
    """A trained Classifier from a checkpoint; a missing, truncated or foreign file is a UsageError naming it."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a checkpoint file such as {path / 'checkpoints' / 'best.ckpt'}")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    expected = "a .ckpt file written by spinalnet train or compare"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch.load raises many types for a text, truncated or damaged file
        detail = str(err).splitlines()[0] if str(err) else "empty or truncated?"
        raise UsageError(f"{path}: not a readable spinalnet checkpoint ({type(err).__name__}: {detail}); "
                         f"expected {expected}") from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if (not isinstance(hparams, dict) or not {"config", "facts"} <= hparams.keys() or "state_dict" not in checkpoint
            or not isinstance(hparams["config"], dict) or not isinstance(hparams["facts"], dict)):
        raise UsageError(f"{path}: not a spinalnet checkpoint (a {type(checkpoint).__name__} without the stored "
                         f"run config; a plain state dict cannot be evaluated); expected {expected}")
    if hparams["facts"].get("features"):
        raise UsageError(f"{path} holds only a head trained on cached backbone features, not a whole model; "
                         "its result.json has its accuracy (use --feature-cache off for whole-model checkpoints)")
    try:
        module = Classifier(hparams["config"], hparams["facts"])
        module.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]  # torch puts the key on line 2
        raise UsageError(f"{path}: its weights do not fit the model it describes "
                         f"({type(err).__name__}: {' '.join(lines[:2])})") from None
    return module.eval()
