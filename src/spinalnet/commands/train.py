"""``spinalnet train``: one model, one head, one seed."""

from __future__ import annotations

import argparse

from spinalnet.commands.options import add_config_command


def add(sub: argparse._SubParsersAction) -> None:
    from spinalnet.engine.config import TrainConfig

    add_config_command(sub, "train", TrainConfig, run, help="train one model (one head, one seed)",
                       description="Train one model; validation picks the checkpoint, the test set is used once.")


def run(config) -> None:
    from spinalnet.engine.train import rank_zero_print, train

    result = train(config)
    kept = "finished earlier, stored result: " if result.resumed else ""
    rank_zero_print(f"{kept}{result.head} head: {result.describe()}, {result.params:,} parameters; best checkpoint "
                    f"{result.best_checkpoint}")
