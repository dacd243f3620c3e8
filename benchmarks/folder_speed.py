"""Image folders at in-memory speed: the same images as PNG files and as an npz, trained side by side.

Writes N images (Fashion-MNIST's training set when Debian's copy is there, else scikit-learn's 8x8 digits scaled to
28 x 28) twice, as ``folder/train/<class>/*.png`` + ``folder/test/...`` and as ``x``/``y`` arrays in an .npz, then
trains the default CNN for one epoch (``--augment perspective-rotate``) on each through ``spinalnet train`` and prints
the images per second of the training loop, the time to load each dataset (the folder is decoded once), and the
ratio npz / folder (target: a folder within 1.5x of its npz, i.e. a ratio of at most 1.5).

    python benchmarks/folder_speed.py               # 20,000 training images
    python benchmarks/folder_speed.py --images 5000 # quicker
    python benchmarks/folder_speed.py --per-sample  # also the per-sample path (2 decoding workers)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from spinalnet.commands.cli import main
from spinalnet.data import DataOptions, load_dataset

FASHION = Path("/usr/share/datasets/fashion-mnist")


def images(count: int) -> tuple[np.ndarray, np.ndarray]:
    if (FASHION / "train-images-idx3-ubyte.gz").is_file():
        from spinalnet.data.idx import read_idx

        x = read_idx(FASHION / "train-images-idx3-ubyte.gz")[:count]
        y = read_idx(FASHION / "train-labels-idx1-ubyte.gz")[:count]
        return x, y.astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.stack([np.asarray(Image.fromarray((im / 16 * 255).astype(np.uint8)).resize((28, 28))) for im in digits.images])
    reps = -(-count // len(x))
    return np.tile(x, (reps, 1, 1))[:count], np.tile(digits.target, reps)[:count].astype(np.int64)


def write_both(root: Path, x: np.ndarray, y: np.ndarray) -> tuple[str, str]:
    test = len(x) // 6
    for split, xs, ys in (("train", x[test:], y[test:]), ("test", x[:test], y[:test])):
        for i, (image, label) in enumerate(zip(xs, ys)):
            folder = root / "folder" / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i}.png")
    np.savez(root / "arrays.npz", x=x[test:], y=y[test:], x_test=x[:test], y_test=y[:test])
    return f"folder:{root / 'folder'}", f"npz:{root / 'arrays.npz'}"


def run(dataset: str, out: Path, workers: int) -> tuple[float, float]:
    started = time.perf_counter()
    load_dataset(dataset, DataOptions())
    loading = time.perf_counter() - started
    assert main(["train", "--dataset", dataset, "--model", "default-cnn", "--epochs", "1", "--augment",
                 "perspective-rotate", "--batch-size", "64", "--num-workers", str(workers), "--output", str(out),
                 "--no-progress"]) == 0
    return json.loads((out / "result.json").read_text())["images_per_second"], loading


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--per-sample", action="store_true", help="also time the per-sample (DataLoader) path")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, npz = write_both(root, *images(args.images))
        rates = {"npz": run(npz, root / "npz-run", 0), "folder (in memory)": run(folder, root / "folder-run", 0)}
        if args.per_sample:
            from spinalnet.data import folders

            folders.IN_MEMORY_BYTES = 0
            rates["folder (per sample, 2 workers)"] = run(folder, root / "sample-run", 2)
        print(f"{args.images:,} images, default CNN, one epoch with perspective-rotate, batch 64")
        for name, (rate, loading) in rates.items():
            print(f"  {name:32s} {rate:8,.0f} img/s in training   data loaded in {loading:5.1f} s")
        for name, (rate, _) in rates.items():
            if name != "npz":
                print(f"  npz / {name}: {rates['npz'][0] / rate:.2f}x (target: at most 1.5x)")
