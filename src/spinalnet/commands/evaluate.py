"""``spinalnet eval``: a checkpoint's accuracy on the split of the data it was trained on."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on its dataset",
                       description="Evaluate a checkpoint written by train or compare on the test split "
                       "of the dataset it was trained on.")
    p.add_argument("checkpoint", type=Path, help="a .ckpt file (e.g. RUN/checkpoints/best.ckpt)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which split (default: test)")
    p.add_argument("--data-dir", help="where to look for the dataset (default: as in training)")
    p.add_argument("--batch-size", type=int, help="evaluation batch size (default: as in training)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (with per-class accuracy)")
    p.add_argument("--strict", action="store_true", help="refuse data that differs from the data the checkpoint "
                   "was trained on (default: a warning)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from spinalnet.engine.evaluate import evaluate

    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("batch_size", args.batch_size)) if v is not None}
    result = evaluate(args.checkpoint, args.split, overrides, strict=args.strict)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['dataset']} {result['split']} accuracy {result['accuracy']:.2f}% on {result['samples']:,} "
          f"images ({result['model']}, {result['head']} head)")
    worst = sorted((c for c in result["per_class"] if c["accuracy"] is not None), key=lambda c: c["accuracy"])[:3]
    if worst:
        print("  lowest per class: " + ", ".join(f"{c['class']} {c['accuracy']:.1f}%" for c in worst)
              + " (--json for every class)")
