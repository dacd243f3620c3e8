"""Bring your own arrays: an .npz with x (N x H x W or N x C x H x W) and y (N integer labels).

Optional x_test / y_test hold a test set; otherwise 20% of x is set aside (seeded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spinalnet.data.arrays import ImageArrays, as_image_arrays, split_fraction
from spinalnet.errors import UsageError
from spinalnet.data.npz_file import read_npz


def load_npz(path: Path, split_seed: int) -> tuple[ImageArrays, ImageArrays]:
    arrays = read_npz(path)
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise UsageError(f"{path}: missing array(s) {missing}; found {sorted(arrays)} (need x and y)")
    data = as_image_arrays(arrays["x"], arrays["y"], f"{path}")
    if "x_test" in arrays or "y_test" in arrays:
        if not ("x_test" in arrays and "y_test" in arrays):
            raise UsageError(f"{path}: x_test and y_test must be given together")
        test = as_image_arrays(arrays["x_test"], arrays["y_test"], f"{path} (test)")
        if test.images.shape[1:] != data.images.shape[1:]:
            raise UsageError(f"{path}: x_test images are {tuple(test.images.shape[1:])}, x images are {tuple(data.images.shape[1:])}")
        return data, test
    train_idx, test_idx = split_fraction(len(data), 0.2, split_seed, "test")
    return data.subset(train_idx), data.subset(test_idx)
