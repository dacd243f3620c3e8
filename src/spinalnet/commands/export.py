"""``spinalnet export``: a checkpoint as ONNX, TorchScript or a torch.export program."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX, TorchScript or torch.export (.pt2)",
                       description="Export a checkpoint for deployment. The program takes float32 images "
                       "(N, C, H, W) in [0, 1] and returns logits; normalisation is included; the batch "
                       "size is dynamic.")
    p.add_argument("checkpoint", type=Path, help="a .ckpt file written by train or compare")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "pt2"), help="output format")
    p.add_argument("--output", required=True, type=Path, help="file to write (ONNX: one self-contained file; "
                   "only weights over 2 GB go to OUTPUT.data beside it)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from spinalnet.inference.export import export

    result = export(args.checkpoint, args.format, args.output, force=args.force)
    print(f"wrote {result['output']} ({result['format']}): images {tuple(result['input_shape'])} in [0, 1] -> logits")
