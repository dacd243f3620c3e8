"""The ``spinalnet`` command. Each sub-command lives in its own module and registers here."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import spinalnet


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


def _add_describe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "describe",
        help="show which inputs every layer of a SpinalLinear reads, and its parameter count",
        description="Show which input features every hidden layer of a SpinalLinear reads, "
        "and compare its parameter count with a two-layer fully connected head of the same width.",
    )
    p.add_argument("in_features", type=int, help="input width, e.g. 320 for the MNIST default CNN")
    p.add_argument("out_features", type=int, help="output width, e.g. the number of classes")
    p.add_argument("--layer-width", type=int, default=8, help="hidden width (default: 8)")
    p.add_argument("--num-layers", type=int, default=6, help="hidden layers (default: 6)")
    p.add_argument("--num-splits", type=int, default=2, help="input splits (default: 2)")
    p.set_defaults(func=_describe)


def _describe(args: argparse.Namespace) -> None:
    layer = spinalnet.SpinalLinear(args.in_features, args.out_features, layer_width=args.layer_width,
                                   num_layers=args.num_layers, num_splits=args.num_splits)
    print(layer.describe())
    hidden = args.layer_width * args.num_layers
    fc = args.in_features * hidden + hidden + hidden * args.out_features + args.out_features
    print(f"  a Linear({args.in_features} -> {hidden}) + Linear({hidden} -> {args.out_features}) head "
          f"of the same total width has {fc:,} parameters ({fc / layer.num_params:.2f}x)")


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_describe]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spinalnet",
        description="SpinalNet: layers, model zoo and honest comparisons of ordinary vs Spinal heads.",
    )
    parser.add_argument("--version", action="version", version=f"spinalnet {spinalnet.__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        args.func(args)
    except (UsageError, ValueError) as err:
        print(f"spinalnet: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
