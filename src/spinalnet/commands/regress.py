"""``spinalnet regress``: the paper's regression study (MLP vs SpinalNet), held-out test MSE."""

from __future__ import annotations

import argparse

from spinalnet.commands.options import add_config_command


def add(sub: argparse._SubParsersAction) -> None:
    from spinalnet.regression.config import RegressConfig

    add_config_command(
        sub, "regress", RegressConfig, run,
        help="the paper's regression study (MLP vs SpinalNet), held-out test MSE",
        description="An ordinary MLP (8-200-100-1) against a SpinalNet (6 layers of width 50, each reading "
        "half the inputs) on the paper's synthetic targets or on your own tabular data; reports held-out "
        "test MSE over seeds, and the paper's metric.")


def run(config) -> None:
    from spinalnet.regression.study import regress

    regress(config)
