"""``spinalnet describe``: which inputs every hidden layer of a SpinalLinear reads, and its parameter count."""

from __future__ import annotations

import argparse

#: describe prints one line per hidden layer (as many as train builds), and describes heads that could be
#: built in memory.
DESCRIBE_MAX_PARAMS = 1_000_000_000  # 4 GB of float32 weights


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("describe", help="show which inputs every layer of a SpinalLinear reads",
                       description="Show which input features every hidden layer of a SpinalLinear reads, and "
                       "compare its parameter count with a two-layer fully connected head of the same width.")
    p.add_argument("in_features", type=int, help="input width, e.g. 320 for the MNIST default CNN")
    p.add_argument("out_features", type=int, help="output width, e.g. the number of classes")
    p.add_argument("--layer-width", type=int, default=8, help="hidden width (default: 8)")
    p.add_argument("--num-layers", type=int, default=6, help="hidden layers (default: 6)")
    p.add_argument("--num-splits", type=int, default=2, help="input splits (default: 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    import torch

    from spinalnet.engine.config import MAX_LAYERS
    from spinalnet.errors import UsageError
    from spinalnet.layers.spinal_linear import SpinalLinear

    if args.num_layers > MAX_LAYERS:
        raise UsageError(f"--num-layers {args.num_layers:,} is more than describe prints "
                         f"(at most {MAX_LAYERS:,}, one line per layer)")
    sizes = dict(layer_width=args.layer_width, num_layers=args.num_layers, num_splits=args.num_splits)
    try:  # the layer's own checks of the sizes given on the command line: its refusal is the user's error
        count = SpinalLinear.count_params(args.in_features, args.out_features, **sizes)  # by formula
        if count > DESCRIBE_MAX_PARAMS:
            raise UsageError(f"this head would have {count:,} parameters ({count * 4 / 1e9:,.1f} GB as float32), "
                             f"more than describe's limit of {DESCRIBE_MAX_PARAMS:,}; use smaller sizes")
        with torch.device("meta"):  # no weights are allocated
            layer = SpinalLinear(args.in_features, args.out_features, **sizes)
    except UsageError:
        raise
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(layer.describe())
    hidden = args.layer_width * args.num_layers
    fc = args.in_features * hidden + hidden + hidden * args.out_features + args.out_features
    print(f"  a Linear({args.in_features} -> {hidden}) + Linear({hidden} -> {args.out_features}) head "
          f"of the same total width has {fc:,} parameters ({fc / layer.num_params:.2f}x)")
