"""``spinalnet reproduce``: one of the paper's experiments (``configs/paper``) through compare or regress."""

from __future__ import annotations

import argparse
from typing import Any


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="run one of the paper's experiments (configs/paper)",
                       description="Run one of the paper's experiments through compare (or regress). "
                       "--list shows them with their estimated cost; --epochs and --seeds scale a run down.")
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments and their estimated cost")
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.add_argument("--seeds", type=int, help="override the config's number of seeds")
    p.add_argument("--limit-batches", type=float, help="fraction of training batches per epoch (budget runs)")
    p.add_argument("--heads", help="the arms to compare instead of the config's, KIND[:OPTION=VALUE,...] each (with "
                   "--resume: the config's and more, e.g. to add linear,mlp2 to a finished run; not for regression)")
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
    p.add_argument("--logger", choices=("csv", "tensorboard", "mlflow"), help="curves besides metrics.csv: "
                   "tensorboard event files or mlflow runs (default: csv only; not for regression)")
    p.add_argument("--resume", action="store_true", default=None,
                   help="continue an interrupted run in --output (not for regression)")
    p.add_argument("--force", action="store_true", default=None, help="overwrite a finished run in --output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from spinalnet.errors import UsageError
    from spinalnet.comparison.experiments import experiments, format_list

    if args.list:
        print(format_list(experiments()))
        return
    if not args.name:
        raise UsageError("name an experiment, or pass --list to see them")
    overrides = {k: getattr(args, k) for k in ("epochs", "seeds", "limit_batches", "output", "data_dir", "download",
                                              "accelerator", "devices", "num_nodes", "jobs", "shard", "resume",
                                              "force", "logger", "heads")}
    reproduce(args.name, overrides)


#: reproduce options that only experiments run through compare take.
COMPARE_ONLY = ("data_dir", "download", "accelerator", "devices", "num_nodes", "jobs", "shard", "resume", "logger",
                "heads")


def reproduce(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Run experiment ``name``; ``overrides`` (epochs, seeds, output, data_dir, ...) win over the config."""
    from spinalnet.comparison.experiments import get_experiment
    from spinalnet.rundir import timestamped

    exp = get_experiment(name)
    options = {**exp.options, **{k: v for k, v in overrides.items() if v is not None}}
    if not options.get("resume") and not options.get("shard"):  # shards must name the directory they share
        options.setdefault("output", str(timestamped("runs/paper", name)))
    if exp.kind == "regress":
        from spinalnet.errors import UsageError
        from spinalnet.regression.config import RegressConfig
        from spinalnet.regression.study import regress

        unused = [k for k in COMPARE_ONLY if overrides.get(k) is not None]
        if unused:
            raise UsageError(f"{name} runs spinalnet regress (synthetic data, CPU), which takes no "
                             f"{', '.join('--' + k.replace('_', '-') for k in unused)}; it takes --epochs, --seeds, "
                             "--limit-batches, --output and --force")
        return regress(RegressConfig.from_dict(options), experiment=exp.meta)
    from spinalnet.comparison.compare import compare
    from spinalnet.comparison.config import CompareConfig

    return compare(CompareConfig.from_dict(options), experiment=exp.meta)
