"""VGG-5 against SpinalVGG-5 on Google Quick Draw with Keras (JAX, TensorFlow or PyTorch backend).

The Keras side of the study this project grew from: the heads of :func:`spinalnet.keras.vgg5` (fc, an MLP with
the Spinal head's parameter count, and Spinal) trained with ``model.fit`` on the same split, batches and seeds,
then the table ``spinalnet compare`` prints (mean +- std over seeds, every head against the Spinal one with the
paired statistics of :mod:`spinalnet.stats` and Holm across them, parameters). The data are the ``CATEGORY.npy``
bitmaps the PyTorch loader reads (``DIR/quickdraw/cat.npy`` or ``DIR/cat.npy``), read by the same code.

    KERAS_BACKEND=jax python examples/keras_quickdraw.py --data-dir DIR --categories cat,dog,sun --seeds 3

Needs ``pip install 'spinalnet[keras]'`` and a backend; no torch. Nothing is downloaded unless ``--download``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from keras_results import compare_summary, format_table
from spinalnet.data.locate import DataOptions
from spinalnet.data.quickdraw import DEFAULT_CATEGORIES, TEST_FRACTION, read_quickdraw
from spinalnet.errors import UsageError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="directory holding quickdraw/CATEGORY.npy")
    parser.add_argument("--download", action="store_true", help="download missing categories")
    parser.add_argument("--categories", default=",".join(DEFAULT_CATEGORIES), help="comma-separated")
    parser.add_argument("--samples-per-class", type=int, default=2000)
    parser.add_argument("--val-fraction", type=float, default=0.1, help="of the training part")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="first training seed")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per head (>= 2 for the paired statistics)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--run-eagerly", action="store_true",
                        help="no compiled train step: slower per batch, but no compile time for tiny runs")
    args = parser.parse_args(argv)
    for name in ("samples_per_class", "seeds", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0.0 < args.val_fraction < 1.0:
        parser.error("--val-fraction must be between 0 and 1")
    return args


def split(images: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int) -> dict[str, tuple]:
    """Seeded train / validation / test split; images as float32 (N, 28, 28, 1) in [0, 1]."""
    x = images.reshape(-1, 28, 28, 1).astype("float32") / 255.0
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = round(len(order) * TEST_FRACTION)
    n_val = round((len(order) - n_test) * val_fraction)
    if n_test < 1 or n_val < 1 or n_test + n_val >= len(order):
        raise UsageError(f"{len(order)} drawings are too few for a test and a validation split")
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    return {name: (x[idx], labels[idx]) for name, idx in parts.items()}


def train_one(head: str, seed: int, data: dict[str, tuple], num_classes: int, args: argparse.Namespace) -> dict[str, Any]:
    import keras

    from spinalnet.keras import head_params, vgg5

    keras.utils.set_random_seed(seed)  # same initial backbone and batch order for both heads of a seed
    model = vgg5((28, 28, 1), num_classes, head=head)
    model.compile(optimizer=keras.optimizers.Adam(args.lr), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=args.run_eagerly)
    start = time.perf_counter()
    history = model.fit(*data["train"], validation_data=data["val"], epochs=args.epochs,
                        batch_size=args.batch_size, verbose=0)
    seconds = time.perf_counter() - start
    _, test_acc = model.evaluate(*data["test"], batch_size=args.batch_size, verbose=0)
    curve = [100.0 * float(v) for v in history.history["val_accuracy"]]
    return {"head": head, "seed": seed, "config": {"head": head}, "head_info": None, "test_acc": 100.0 * float(test_acc),
            "tested": True, "val_acc": curve[-1], "val_acc_curve": curve, "best_checkpoint": None,
            "params": sum(int(np.prod(w.shape)) for w in model.trainable_weights), "head_params": head_params(model),
            "epochs": args.epochs, "train_seconds": seconds,
            "images_per_second": args.epochs * len(data["train"][1]) / seconds}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    options = DataOptions(data_dir=args.data_dir, download=args.download, categories=categories,
                          samples_per_class=args.samples_per_class, split_seed=args.split_seed)
    try:
        images, labels, categories = read_quickdraw(options)
        data = split(images, labels, args.val_fraction, args.split_seed)
    except UsageError as err:
        print(f"keras_quickdraw: error: {err}", file=sys.stderr)
        return 2
    import keras

    from spinalnet.keras.models import HEADS

    runs: dict[str, list[dict[str, Any]]] = {head: [] for head in HEADS}
    for seed in range(args.seed, args.seed + args.seeds):
        for head in HEADS:
            run = train_one(head, seed, data, len(categories), args)
            print(f"[{head} seed {seed}] test accuracy {run['test_acc']:.2f}% (val {run['val_acc']:.2f}%, "
                  f"{run['train_seconds']:.1f} s)", flush=True)
            runs[head].append(run)
    summary = compare_summary(runs, "spinal", epochs=args.epochs, dataset=f"quickdraw ({len(categories)} categories)",
                              model=f"Keras vgg5 on {keras.backend.backend()}", config={"epochs": args.epochs})
    print()
    print(format_table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
