"""The sub-commands of ``spinalnet``: each adds its parser and runs from parsed arguments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path



def add_describe(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("describe", help="show which inputs every layer of a SpinalLinear reads",
                       description="Show which input features every hidden layer of a SpinalLinear reads, and "
                       "compare its parameter count with a two-layer fully connected head of the same width.")
    p.add_argument("in_features", type=int, help="input width, e.g. 320 for the MNIST default CNN")
    p.add_argument("out_features", type=int, help="output width, e.g. the number of classes")
    p.add_argument("--layer-width", type=int, default=8, help="hidden width (default: 8)")
    p.add_argument("--num-layers", type=int, default=6, help="hidden layers (default: 6)")
    p.add_argument("--num-splits", type=int, default=2, help="input splits (default: 2)")
    p.set_defaults(func=run_describe)


#: describe prints one line per hidden layer (as many as train builds), and describes heads that could be
#: built in memory.
DESCRIBE_MAX_PARAMS = 1_000_000_000  # 4 GB of float32 weights


def run_describe(args: argparse.Namespace) -> None:
    import torch

    from spinalnet.layers import SpinalLinear
    from spinalnet.errors import UsageError

    from spinalnet.training.config import MAX_LAYERS

    if args.num_layers > MAX_LAYERS:
        raise UsageError(f"--num-layers {args.num_layers:,} is more than describe prints "
                         f"(at most {MAX_LAYERS:,}, one line per layer)")
    sizes = dict(layer_width=args.layer_width, num_layers=args.num_layers, num_splits=args.num_splits)
    if min(args.in_features, args.out_features, *sizes.values()) >= 1 and args.num_splits <= args.num_layers:
        count = SpinalLinear.count_params(args.in_features, args.out_features, **sizes)  # by formula
        if count > DESCRIBE_MAX_PARAMS:
            raise UsageError(f"this head would have {count:,} parameters ({count * 4 / 1e9:,.1f} GB as float32), "
                             f"more than describe's limit of {DESCRIBE_MAX_PARAMS:,}; use smaller sizes")
    with torch.device("meta"):  # the constructor checks the sizes; no weights are allocated
        layer = SpinalLinear(args.in_features, args.out_features, **sizes)
    print(layer.describe())
    hidden = args.layer_width * args.num_layers
    fc = args.in_features * hidden + hidden + hidden * args.out_features + args.out_features
    print(f"  a Linear({args.in_features} -> {hidden}) + Linear({hidden} -> {args.out_features}) head "
          f"of the same total width has {fc:,} parameters ({fc / layer.num_params:.2f}x)")


def add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list dataset and model names", description="List dataset and model names.")
    p.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> None:
    from spinalnet.data import DATASETS, PREFIXED as DATA_PREFIXED
    from spinalnet.models import MODELS
    from spinalnet.models.registry import PREFIXED as MODEL_PREFIXED

    print("datasets:")
    for name, info in DATASETS.items():
        print(f"  {name:<18}{info.description}")
    for prefix, text in DATA_PREFIXED.items():
        print(f"  {prefix + 'PATH':<18}{text}")
    print("models:")
    for name, info in MODELS.items():
        print(f"  {name:<18}{info.description}")
    for prefix, text in MODEL_PREFIXED.items():
        print(f"  {prefix + 'NAME':<18}{text}")


def _add_config_command(sub: argparse._SubParsersAction, name: str, config_cls: type, run, help: str,
                        description: str, skip: tuple[str, ...] = ()) -> None:
    """A command whose options are the fields of ``config_cls`` (also readable from --config YAML)."""
    from spinalnet.training.config import add_config_arguments, config_from_args

    p = sub.add_parser(name, help=help, description=description)
    add_config_arguments(p, config_cls, skip=skip)
    p.set_defaults(func=lambda args: run(config_from_args(args, config_cls)))


def add_train(sub: argparse._SubParsersAction) -> None:
    from spinalnet.training.config import TrainConfig

    _add_config_command(sub, "train", TrainConfig, run_train, help="train one model (one head, one seed)",
                        description="Train one model; validation picks the checkpoint, the test set is used once.")


def run_train(config) -> None:
    from spinalnet.training.train import rank_zero_print, train

    result = train(config)
    kept = "finished earlier, stored result: " if result.get("resumed_finished") else ""
    rank_zero_print(f"{kept}{result['head']} head: test accuracy {result['test_acc']:.2f}% (validation {result['val_acc']:.2f}%), "
          f"{result['params']:,} parameters, {result['train_seconds']:.1f} s; "
          f"best checkpoint {result['best_checkpoint']}")


def add_compare(sub: argparse._SubParsersAction) -> None:
    from spinalnet.training.config import CompareConfig

    _add_config_command(
        sub, "compare", CompareConfig, run_compare, skip=("head",),
        help="ordinary (fc) vs Spinal head: several seeds, statistics, plots",
        description="Train the fc head and the Spinal head for every seed with identical data order, "
        "augmentation and schedule; print a table and write results.json, results.csv, curves.png and "
        "summary.png to --output.")


def run_compare(config) -> None:
    from spinalnet.compare import compare

    compare(config)


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on its dataset",
                       description="Evaluate a checkpoint written by train or compare on the test split "
                       "of the dataset it was trained on.")
    p.add_argument("checkpoint", type=Path, help="a .ckpt file (e.g. RUN/checkpoints/best.ckpt)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which split (default: test)")
    p.add_argument("--data-dir", help="where to look for the dataset (default: as in training)")
    p.add_argument("--batch-size", type=int, help="evaluation batch size (default: as in training)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> None:
    from spinalnet.training.evaluate import evaluate

    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("batch_size", args.batch_size)) if v is not None}
    result = evaluate(args.checkpoint, args.split, overrides)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['dataset']} {result['split']} accuracy {result['accuracy']:.2f}% on {result['samples']:,} "
              f"images ({result['model']}, {result['head']} head)")


def add_regress(sub: argparse._SubParsersAction) -> None:
    from spinalnet.training.config import RegressConfig

    _add_config_command(
        sub, "regress", RegressConfig, run_regress,
        help="the paper's regression study (MLP vs SpinalNet), held-out test MSE",
        description="An ordinary MLP (8-200-100-1) against a SpinalNet (6 layers of width 50, each reading "
        "half the inputs) on the paper's synthetic targets or on your own tabular data; reports held-out "
        "test MSE over seeds, and the paper's metric.")


def run_regress(config) -> None:
    from spinalnet.regression import regress

    regress(config)


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX, TorchScript or torch.export (.pt2)",
                       description="Export a checkpoint for deployment. The program takes float32 images "
                       "(N, C, H, W) in [0, 1] and returns logits; normalisation is included; the batch "
                       "size is dynamic.")
    p.add_argument("checkpoint", type=Path, help="a .ckpt file written by train or compare")
    p.add_argument("--format", required=True, choices=("onnx", "torchscript", "pt2"), help="output format")
    p.add_argument("--output", required=True, type=Path, help="file to write (ONNX: one self-contained file; "
                   "only weights over 2 GB go to OUTPUT.data beside it)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> None:
    from spinalnet.export import export

    result = export(args.checkpoint, args.format, args.output, force=args.force)
    print(f"wrote {result['output']} ({result['format']}): images {tuple(result['input_shape'])} in [0, 1] -> logits")


def add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run one of the paper's experiments (configs/paper)",
                       description="Run one of the paper's experiments through compare (or regress). "
                       "--list shows them with their estimated cost; --epochs and --seeds scale a run down.")
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments and their estimated cost")
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.add_argument("--seeds", type=int, help="override the config's number of seeds")
    p.add_argument("--limit-batches", type=float, help="fraction of training batches per epoch (budget runs)")
    p.add_argument("--output", help="output directory (default: runs/paper/<name>-<time>)")
    p.add_argument("--data-dir", help="where to look for the dataset first (not for regression)")
    p.add_argument("--download", action="store_true", default=None,
                   help="download data (and weights) if missing (not for regression)")
    p.add_argument("--accelerator", help="cpu, gpu, ... (default: auto; not for regression)")
    p.add_argument("--devices", help="number of devices (default: auto; not for regression)")
    p.add_argument("--num-nodes", help="machines for multi-node DDP, under torchrun or SLURM (not for regression)")
    p.add_argument("--jobs", help="runs trained at once, each in its own worker process (default: 1; "
                   "not for regression)")
    p.add_argument("--shard", metavar="K/N", help="train only the K-th of N shares of the runs into the shared "
                   "--output (not for regression)")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue an interrupted run in --output (not for regression)")
    p.add_argument("--force", action="store_true", default=None, help="overwrite a finished run in --output")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> None:
    from spinalnet.errors import UsageError
    from spinalnet.reproduce import experiments, format_list, reproduce

    if args.list:
        print(format_list(experiments()))
        return
    if not args.name:
        raise UsageError("name an experiment, or pass --list to see them")
    overrides = {k: getattr(args, k) for k in ("epochs", "seeds", "limit_batches", "output", "data_dir", "download",
                                              "accelerator", "devices", "num_nodes", "jobs", "shard", "resume",
                                              "force")}
    reproduce(args.name, overrides)


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="render results files into a Markdown table",
                       description="Render the results.json of compare, regress or reproduce runs into one "
                       "Markdown table: paper numbers, measured mean ± std, p-value, budget, hardware, commit "
                       "and a verdict per experiment.")
    p.add_argument("runs", nargs="+", type=Path, help="run directories (or results.json files)")
    p.add_argument("--all", action="store_true", help="add a row for every paper experiment without results")
    p.add_argument("--output", type=Path, help="write the table into FILE: its text up to a line that is "
                   "exactly <!-- report --> is kept, the table replaces what follows")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> None:
    from spinalnet.errors import UsageError
    from spinalnet.report import render
    from spinalnet.rundir import atomic_write_text

    if args.output is not None:
        if args.output.is_dir():
            raise UsageError(f"--output {args.output} is a directory; give a file such as {args.output / 'RESULTS.md'}")
        sources = {(run / "results.json" if run.is_dir() else run).resolve() for run in args.runs}
        if args.output.resolve() in sources:
            raise UsageError(f"--output {args.output} is one of the results files being read; choose another file")
    table = render(args.runs, include_missing=args.all)
    if args.output is None:
        print(table)
        return
    marker = "<!-- report -->"
    lines = args.output.read_text().splitlines() if args.output.is_file() else []
    keep = lines[: max(i for i, line in enumerate(lines) if line.strip() == marker)] if marker in map(str.strip, lines) else lines
    head = "\n".join(keep) + "\n" if keep else ""
    atomic_write_text(args.output, f"{head}{marker}\n{table}\n")
    print(f"wrote {args.output}")


def add_convert_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert-weights", help="turn another implementation's state dict into a tv:/timm: model's",
                       description="Rename the tensors of a state dict written by another implementation to the "
                       "key layout of a tv:NAME or timm:NAME model: by name where the names match, otherwise in "
                       "order, shape for shape. Every tensor must map one to one. The output loads with "
                       "--pretrained OUTPUT.")
    p.add_argument("src", type=Path, help="the state dict to convert (.pth / .pt)")
    p.add_argument("--model", required=True, help="target model, e.g. timm:tf_efficientnet_lite0 or tv:resnet18")
    p.add_argument("--output", required=True, type=Path, help="file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=run_convert_weights)


def run_convert_weights(args: argparse.Namespace) -> None:
    from spinalnet.pretrained import convert_weights

    done = convert_weights(args.src, args.model, args.output, args.force)
    print(f"wrote {done['output']}: {done['tensors']} tensors for {args.model} "
          f"({done['by_name']} matched by name, {done['by_order']} in order and shape)")


COMMANDS = [add_train, add_compare, add_eval, add_export, add_convert_weights, add_regress, add_reproduce,
            add_report, add_list, add_describe]
