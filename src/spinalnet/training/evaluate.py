"""Evaluate a checkpoint on its dataset's test split (or validation split)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch

from spinalnet.data import load_dataset
from spinalnet.errors import UsageError
from spinalnet.training.config import TrainConfig
from spinalnet.training.datamodule import SplitsDataModule
from spinalnet.training.module import Classifier
from spinalnet.training.train import data_options, quiet_lightning


def load_classifier(path: Path) -> Classifier:
    """A trained Classifier from a checkpoint; a missing, truncated or foreign file is a UsageError."""
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    try:
        return Classifier.load_from_checkpoint(str(path), map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, KeyError, TypeError, zipfile.BadZipFile, OSError) as err:
        raise UsageError(f"{path}: not a readable spinalnet checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'truncated?'})") from None


def evaluate(path: Path, split: str = "test", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    quiet_lightning()
    module = load_classifier(path)
    config = TrainConfig.from_dict({**module.hparams["config"], **(overrides or {})})
    splits = load_dataset(config.dataset, data_options(config))
    if splits.num_classes != module.hparams["facts"]["num_classes"]:
        raise UsageError(f"{path} was trained for {module.hparams['facts']['num_classes']} classes, "
                         f"{config.dataset} has {splits.num_classes}")
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
