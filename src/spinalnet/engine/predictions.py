"""Per-example test predictions (``predictions.npz``): any accuracy claim can be re-checked and pooled later."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spinalnet.files import atomic_write

if TYPE_CHECKING:  # tensor methods only: this module imports no torch (the comparison's summary reads it)
    from torch import Tensor

PREDICTIONS_FILE = "predictions.npz"


def interleave_shards(gathered: Tensor, total: int) -> Tensor:
    """Undo DistributedSampler's unshuffled sharding: ``gathered[r][i]`` is example ``i * world + r``.

    The sampler pads the dataset to a multiple of the world size by repeating its first examples;
    cutting back to ``total`` drops those repeats.
    """
    world, per_rank = gathered.shape[:2]
    return gathered.transpose(0, 1).reshape(world * per_rank, *gathered.shape[2:])[:total]


def predictions_from(logits: Tensor, labels: Tensor) -> dict[str, np.ndarray]:
    return {"y_true": labels.cpu().numpy().astype(np.int64), "y_pred": logits.argmax(1).cpu().numpy().astype(np.int64),
            "logits": logits.detach().float().cpu().numpy().astype(np.float32)}


def accuracy_pct(predictions: dict[str, np.ndarray]) -> float:
    """Test accuracy in %, rounded as ``result.json`` stores it."""
    return round(100.0 * float(np.mean(predictions["y_pred"] == predictions["y_true"])), 4)


def write_predictions(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed ``.npz``, written atomically (a killed run never leaves half a file)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def read_predictions(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a ``predictions.npz``, or None when the run has none (runs made before they existed)."""
    if not Path(path).is_file():
        return None
    with np.load(path) as data:
        return {key: data[key] for key in data.files}
