"""Evaluate a checkpoint on its dataset's test split (or validation split)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch

from spinalnet.data import load_dataset
from spinalnet.errors import UsageError
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.datamodule import SplitsDataModule
from spinalnet.engine.checkpoints import load_classifier
from spinalnet.engine.train import data_options, quiet_lightning


def evaluate(path: Path, split: str = "test", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    quiet_lightning()
    batch_size = (overrides or {}).get("batch_size")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    module = load_classifier(path)
    config = TrainConfig.from_dict({**module.hparams["config"], **(overrides or {})})
    splits = load_dataset(config.dataset, data_options(config))
    facts = module.hparams["facts"]
    if splits.num_classes != facts["num_classes"]:
        raise UsageError(f"{path} was trained for {facts['num_classes']} classes, "
                         f"{config.dataset} has {splits.num_classes}")
    trained, found = (facts["channels"], *facts["image_size"]), (splits.channels, *splits.image_size)
    if tuple(trained) != tuple(found):
        raise UsageError(f"{path} was trained on {config.dataset} images of shape {tuple(trained)} (C, H, W); the "
                         f"data found now has {tuple(found)}")
    datamodule = SplitsDataModule(splits, config.batch_size, config.seed, config.num_workers)
    trainer = L.Trainer(accelerator=config.accelerator, devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    if split == "val":
        datamodule.test_dataloader = datamodule.val_dataloader
    (metrics,) = trainer.test(module, datamodule, verbose=False)
    return {"checkpoint": str(path), "dataset": config.dataset, "model": config.model, "head": config.head,
            "split": split, "accuracy": round(float(metrics["test_acc"]), 4),
            "loss": round(float(metrics["test_loss"]), 6),
            "samples": len(splits.test if split == "test" else splits.val)}
