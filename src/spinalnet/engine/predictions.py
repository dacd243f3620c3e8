"""Per-example test predictions (``predictions.npz``), written and read here only: any accuracy claim can be
re-checked and pooled later.

Stored compactly: a run's predicted classes in the smallest unsigned integer type that holds them; the test labels
once per comparison (``labels.npz`` in the comparison directory; a run trained alone keeps its own); the logits only
when asked for (``--save-logits``). Files of the earlier layout (int64 ``y_true``, ``y_pred`` and float32
``logits`` in every run) are read as they are, and :func:`compact_comparison` rewrites them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spinalnet.files import atomic_write

if TYPE_CHECKING:  # tensor methods only: this module imports no torch (the comparison's summary reads it)
    from torch import Tensor

PREDICTIONS_FILE = "predictions.npz"
LABELS_FILE = "labels.npz"


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


def smallest_unsigned(values: np.ndarray) -> np.ndarray:
    """Class indices in uint8, uint16 or uint32, whichever holds the largest."""
    top = int(values.max()) if len(values) else 0
    dtype = next(t for t in (np.uint8, np.uint16, np.uint32, np.uint64) if top <= np.iinfo(t).max)
    return values.astype(dtype)


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Compressed ``.npz``, written atomically (a killed run never leaves half a file)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def comparison_labels(run_dir: Path) -> Path:
    """Where the test labels of the comparison a run belongs to are kept (``DIR/runs/<run>`` -> ``DIR/labels.npz``)."""
    return Path(run_dir).parent.parent / LABELS_FILE


def write_labels(out: Path, y_true: np.ndarray) -> None:
    """A comparison's test labels, once (every run of it is tested on the same split)."""
    save_npz(Path(out) / LABELS_FILE, {"y_true": smallest_unsigned(np.asarray(y_true))})


def write_predictions(path: Path, predictions: dict[str, np.ndarray], logits: bool = False) -> None:
    """A run's predictions: its classes, its labels unless its comparison keeps the same ones, its logits when
    ``logits``."""
    path = Path(path)
    arrays = {"y_pred": smallest_unsigned(np.asarray(predictions["y_pred"]))}
    shared = _labels(comparison_labels(path.parent))
    if shared is None or not np.array_equal(shared, predictions["y_true"]):
        arrays["y_true"] = smallest_unsigned(np.asarray(predictions["y_true"]))
    if logits and predictions.get("logits") is not None:
        arrays["logits"] = np.asarray(predictions["logits"], dtype=np.float32)
    save_npz(path, arrays)


def _labels(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    with np.load(path) as data:
        return data["y_true"].astype(np.int64)


def read_predictions(path: Path) -> dict[str, np.ndarray] | None:
    """``y_true`` and ``y_pred`` (int64), and ``logits`` where stored, of a run's ``predictions.npz``; None when the
    run has none (runs made before they existed)."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["y_pred"] = arrays["y_pred"].astype(np.int64)
    if "y_true" in arrays:
        arrays["y_true"] = arrays["y_true"].astype(np.int64)
    else:
        arrays["y_true"] = _labels(comparison_labels(path.parent))
        if arrays["y_true"] is None:
            raise FileNotFoundError(f"{path} keeps its labels in {comparison_labels(path.parent)}, which is missing")
    return arrays


def compact_comparison(out: Path, keep_logits: bool = False) -> tuple[int, int]:
    """Rewrite a comparison directory's ``predictions.npz`` files in the compact layout (its labels once in
    ``labels.npz``); returns the bytes before and after."""
    out = Path(out)
    files = sorted(out.glob(f"runs/*/{PREDICTIONS_FILE}"))
    before = sum(f.stat().st_size for f in files) + ((out / LABELS_FILE).stat().st_size
                                                     if (out / LABELS_FILE).is_file() else 0)
    loaded = {f: read_predictions(f) for f in files}
    truths = [p["y_true"] for p in loaded.values()]
    if truths and all(np.array_equal(truths[0], t) for t in truths):
        write_labels(out, truths[0])
    for f, arrays in loaded.items():
        write_predictions(f, arrays, logits=keep_logits)
    after = sum(f.stat().st_size for f in files) + ((out / LABELS_FILE).stat().st_size
                                                    if (out / LABELS_FILE).is_file() else 0)
    return before, after
