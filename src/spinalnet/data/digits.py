"""``digits``: scikit-learn's 8 x 8 handwritten digits (1,797 real images, 10 classes; UCI's optical recognition
set), which ship with scikit-learn, so a study can use real data offline.

The images (0..16 per pixel) are scaled to 0..255. The split is seeded (``--split-seed``) and stratified, class by
class: 20% test (359 images), then ``--val-fraction`` of the rest for validation (143 at the default 0.1), 1,295 for
training.
"""

from __future__ import annotations

import numpy as np
import torch

from spinalnet.data.arrays import ImageArrays, stratified_split
from spinalnet.errors import UsageError

TEST_FRACTION = 0.2


def load_digits_arrays(split_seed: int) -> tuple[ImageArrays, ImageArrays]:
    """The training pool and the test split (stratified, seeded)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UsageError("the digits dataset ships with scikit-learn: pip install scikit-learn") from None
    data = load_digits()
    images = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    pool = ImageArrays(torch.from_numpy(images), torch.from_numpy(data.target.astype(np.int64)))
    train, test = stratified_split(pool.labels, TEST_FRACTION, split_seed)
    return pool.subset(train), pool.subset(test)
