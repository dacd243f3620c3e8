"""Google Quick Draw in the numpy bitmap format: one CATEGORY.npy per class, N x 784 uint8."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spinalnet.data.download import download, fetch, other_ways
from spinalnet.data.locate import DataOptions, not_found, search
from spinalnet.errors import UsageError

if TYPE_CHECKING:
    from spinalnet.data.arrays import ImageArrays

URL = "https://storage.googleapis.com/quickdraw_dataset/full/numpy_bitmap/{category}.npy"
#: 24 everyday categories, the size of the TensorFlow reimplementation's subset.
DEFAULT_CATEGORIES = (
    "airplane", "apple", "banana", "bicycle", "bird", "book", "car", "cat", "chair", "clock", "cup", "dog",
    "door", "eye", "fish", "flower", "guitar", "house", "key", "moon", "pizza", "star", "sun", "tree",
)
TEST_FRACTION = 0.15


def _load_category(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UsageError(f"{path}: not a readable .npy file ({err})") from None
    if arr.ndim != 2 or arr.shape[1] != 784 or arr.dtype != np.uint8:
        raise UsageError(f"{path}: expected an N x 784 uint8 array (28x28 bitmaps), got {arr.shape} {arr.dtype}")
    return arr


def read_quickdraw(options: DataOptions) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images ``(N, 1, 28, 28)`` uint8, int64 labels and the categories: ``samples_per_class`` seeded
    drawings per category, in category order. numpy only, so the Keras example shares it."""
    categories = list(options.categories or DEFAULT_CATEGORIES)
    if len(set(categories)) != len(categories) or len(categories) < 2:
        raise UsageError(f"Quick Draw needs at least two distinct categories, got {categories}")
    bad = [c for c in categories if not c.strip() or "/" in c or "\\" in c or c.startswith(".")]
    if bad:
        raise UsageError(f"Quick Draw category names are file names without folders, got {bad}")
    images, labels = [], []
    for label, category in enumerate(categories):
        file = f"{category}.npy"
        path = search("quickdraw", options, lambda d: d / file if (d / file).is_file() else None)
        if path is None and options.download:
            path, url = options.download_root("quickdraw") / file, URL.format(category=category.replace(" ", "%20"))
            download("quickdraw", path.parent, url, f"DIR/quickdraw/{file}", lambda: fetch(url, path))
        if path is None:
            raise not_found("quickdraw", options, options.candidate_dirs("quickdraw"),
                            f"Missing {file}; ways to get it: {other_ways('quickdraw', f'DIR/quickdraw/{file}')}.")
        arr = _load_category(path)
        rng = np.random.default_rng(options.split_seed + label)
        take = np.sort(rng.permutation(len(arr))[: options.samples_per_class])
        images.append(np.asarray(arr[take]).reshape(-1, 1, 28, 28))
        labels.append(np.full(len(take), label, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels), categories


def load_quickdraw(options: DataOptions) -> tuple[ImageArrays, ImageArrays, list[str]]:
    """:func:`read_quickdraw`, 15% of it the test set."""
    import torch

    from spinalnet.data.arrays import ImageArrays, split_fraction

    images, labels, categories = read_quickdraw(options)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    train_idx, test_idx = split_fraction(len(y), TEST_FRACTION, options.split_seed, "test")
    return ImageArrays(x[train_idx], y[train_idx]), ImageArrays(x[test_idx], y[test_idx]), categories
