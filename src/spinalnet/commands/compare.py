"""``spinalnet compare``: the arms of a comparison over several seeds, with paired statistics."""

from __future__ import annotations

import argparse

from spinalnet.commands.options import add_config_command


def add(sub: argparse._SubParsersAction) -> None:
    from spinalnet.comparison.config import CompareConfig

    add_config_command(
        sub, "compare", CompareConfig, run, skip=("head",),
        help="heads side by side (fc, mlp, spinal, ...): several seeds, paired statistics, plots",
        description="Train every arm (--heads) for every seed with identical data order, augmentation, schedule "
        "and backbone initialisation; compare each arm with the reference arm, paired by seed; print a table and "
        "write results.json, results.csv, curves.png, summary.png and contrasts.png to --output.")


def run(config) -> None:
    from spinalnet.comparison.compare import compare

    compare(config)
