"""``spinalnet predict``: class names (and probabilities) of image files, from a checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict the class of image files with a checkpoint",
                       description="Predict the class of each image file with a checkpoint written by train or "
                       "compare. Files are read as the run's own images were (grey or colour, scaled to cover the "
                       "stored size and centre-cropped), then normalised and resized inside the model.")
    p.add_argument("checkpoint", type=Path, help="a .ckpt file (e.g. RUN/checkpoints/best.ckpt)")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument("--top", type=int, default=1, help="print the K most likely classes of each image (default: 1)")
    p.add_argument("--json", action="store_true", help="print JSON: one object per image with its classes and "
                   "probabilities")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from spinalnet.errors import UsageError
    from spinalnet.inference.load import load, predict

    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    model = load(args.checkpoint)  # a bad checkpoint is refused before any image is read
    ranked = predict(model, list(args.images), top=args.top, probabilities=True)
    if args.json:
        print(json.dumps([{"image": str(path), "predictions": [{"class": name, "probability": p} for name, p in row]}
                          for path, row in zip(args.images, ranked)], indent=2))
        return
    for path, row in zip(args.images, ranked):
        print(f"{path}: " + ", ".join(f"{name} {100 * p:.1f}%" for name, p in row))
