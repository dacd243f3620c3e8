"""``spinalnet compare``: the arms of a comparison over several seeds, with paired statistics."""

from __future__ import annotations

import argparse

from spinalnet.commands.options import add_config_command


def add(sub: argparse._SubParsersAction) -> None:
    from spinalnet.comparison.config import CompareConfig

    add_config_command(
        sub, "compare", CompareConfig, run, skip=("head",),
        help="ordinary (fc) vs Spinal head: several seeds, statistics, plots",
        description="Train the fc head and the Spinal head for every seed with identical data order, "
        "augmentation and schedule; print a table and write results.json, results.csv, curves.png and "
        "summary.png to --output.")


def run(config) -> None:
    from spinalnet.comparison.compare import compare

    compare(config)
