"""Checkpoints: written atomically (a temporary file in the same directory, fsync, rename: a kill at any
moment leaves the previous checkpoint or the new one, never a truncated file) and read back with one-line
errors naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from spinalnet.engine.config import TrainConfig
from spinalnet.engine.module import Classifier
from spinalnet.models.pretrained import check_backbone
from spinalnet.errors import UsageError
from spinalnet.files import atomic_write


def load_file(path: Path, mmap: bool = False) -> Any:
    """A checkpoint's contents with ``weights_only=True``: tensors and plain data only, so a file from elsewhere
    cannot run code when it is read (every checkpoint spinalnet writes, the engine's and the batched path's, holds
    nothing else). A pickle of other objects raises :class:`ForeignPickle`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        # "Unsupported global": a pickle of objects; a text or ONNX file fails on its first bytes instead
        if "GLOBAL" in str(err) or "Unsupported global" in str(err):
            raise ForeignPickle(f"{path}: refused: it holds Python objects that are not tensors or plain data (not a "
                                "checkpoint spinalnet wrote); reading it could run code") from None
        raise NotACheckpoint(f"{path}: not a checkpoint: torch.load cannot read it (a text, ONNX or damaged file?); "
                             "expected a .ckpt file written by spinalnet train or compare") from None


class NotACheckpoint(UsageError):
    """A file ``torch.load`` cannot read as a checkpoint."""


class ForeignPickle(NotACheckpoint):
    """A file whose pickle holds objects ``weights_only`` loading refuses."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, written atomically and read with :func:`load_file`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_file(Path(path))


def read_checkpoint_state(last: Path) -> tuple[dict[str, Any], int]:
    """The config and epoch stored in a checkpoint (mmap: Lightning loads the weights once, when it resumes)."""
    try:
        saved = load_file(last, mmap=True)
        return saved["hyper_parameters"]["config"], int(saved["epoch"])
    except NotACheckpoint:
        raise
    except Exception as err:  # truncated or foreign file
        raise UsageError(f"cannot resume from {last}: not a readable spinalnet checkpoint (truncated or of another "
                         "program?)") from None


def read_checkpoint(path: Path) -> tuple[TrainConfig, dict[str, Any], dict[str, Any]]:
    """The run config, data facts and state dict of a checkpoint; a missing, truncated or foreign file is a
    UsageError naming it."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("checkpoints/best.ckpt")) or sorted(path.glob("*/*/checkpoints/best.ckpt"))
        example = found[0] if found else path / "checkpoints" / "best.ckpt"
        more = f" ({len(found)} in it: one per run)" if len(found) > 1 else ""
        raise UsageError(f"{path} is a directory; give a checkpoint file such as {example}{more}")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    expected = "a .ckpt file written by spinalnet train or compare"
    try:
        checkpoint = load_file(path)
    except NotACheckpoint:
        raise
    except Exception as err:  # torch.load raises many types for a text, truncated or damaged file
        raise UsageError(f"{path}: not a readable spinalnet checkpoint (empty, truncated or of another program?); "
                         f"expected {expected}") from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if (not isinstance(hparams, dict) or not {"config", "facts"} <= hparams.keys() or "state_dict" not in checkpoint
            or not isinstance(hparams["config"], dict) or not isinstance(hparams["facts"], dict)):
        raise UsageError(f"{path}: not a spinalnet checkpoint (a {type(checkpoint).__name__} without the stored "
                         f"run config; a plain state dict cannot be evaluated); expected {expected}")
    return TrainConfig.from_dict(hparams["config"]), hparams["facts"], checkpoint["state_dict"]


def classifier_from(path: Path, config: TrainConfig, facts: dict[str, Any], state: dict[str, Any]) -> Classifier:
    try:
        module = Classifier(config, facts)
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]  # torch puts the key on line 2
        raise UsageError(f"{path}: its weights do not fit the model it describes ({' '.join(lines[:2])})") from None
    return module.eval()


def load_classifier(path: Path) -> Classifier:
    """A trained Classifier, the whole model, from a checkpoint. A head trained on cached features is put back
    on the backbone it was trained on (rebuilt from the weights file the checkpoint records, which must still
    be the same file)."""
    config, facts, state = read_checkpoint(path)
    if not facts.get("features"):
        return classifier_from(path, config, facts, state)
    record = facts.get("backbone")
    if not record:
        raise UsageError(f"{path} holds a head trained on cached backbone features by a spinalnet that did not "
                         "record its backbone; train it again to evaluate or export it")
    check_backbone(record, path)
    whole = {**facts, "features": None}
    head = {k[len("model.head."):]: v for k, v in state.items() if k.startswith("model.head.")}
    try:
        module = Classifier(config, whole)  # the backbone with its weights, and a head to overwrite
        module.model.get_submodule(module.model.head_path).load_state_dict(head)
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise UsageError(f"{path}: its head does not fit the model it describes ({' '.join(lines[:2])})") from None
    return module.eval()


def load_run_module(path: Path) -> Classifier:
    """A checkpoint as it was trained: a head alone when it was trained on cached features."""
    return classifier_from(path, *read_checkpoint(path))
