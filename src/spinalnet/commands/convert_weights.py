"""``spinalnet convert-weights``: another implementation's state dict in a ``tv:``/``timm:`` model's layout."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-weights", help="turn another implementation's state dict into a tv:/timm: model's",
                       description="Rename the tensors of a state dict written by another implementation to the "
                       "key layout of a tv:NAME or timm:NAME model: by name where the names match, otherwise in "
                       "order, shape for shape. Every tensor must map one to one. The output loads with "
                       "--pretrained OUTPUT; with --format timm it is timm's preset directory (config.json and "
                       "model.safetensors), which spinalnet.keras reads on any Keras backend without torch.")
    p.add_argument("src", type=Path, help="the state dict to convert (.pth / .pt)")
    p.add_argument("--model", required=True, help="target model, e.g. timm:tf_efficientnet_lite0 or tv:resnet18")
    p.add_argument("--output", required=True, type=Path, help="file (or, with --format timm, directory) to write")
    p.add_argument("--format", choices=("pth", "timm"), default="pth",
                   help="pth: a state dict file; timm: timm's preset directory (timm:NAME models)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from spinalnet.models.convert import convert_weights, write_timm_preset

    if args.format == "timm":
        done = write_timm_preset(args.src, args.model, args.output, args.force)
        print(f"wrote {done['output']}: timm's config.json and model.safetensors ({done['tensors']} tensors) for "
              f"{args.model}")
        return
    done = convert_weights(args.src, args.model, args.output, args.force)
    print(f"wrote {done['output']}: {done['tensors']} tensors for {args.model} "
          f"({done['by_name']} matched by name, {done['by_order']} in order and shape)")
