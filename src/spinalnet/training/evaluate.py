"""Evaluate a checkpoint on its dataset's test split (or validation split)."""

from __future__ import annotations

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
    """A trained Classifier from a checkpoint; a missing, truncated or foreign file is a UsageError naming it."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give a checkpoint file such as {path / 'checkpoints' / 'best.ckpt'}")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    expected = "a .ckpt file written by spinalnet train or compare"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch.load raises many types for a text, truncated or damaged file
        detail = str(err).splitlines()[0] if str(err) else "empty or truncated?"
        raise UsageError(f"{path}: not a readable spinalnet checkpoint ({type(err).__name__}: {detail}); "
                         f"expected {expected}") from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if (not isinstance(hparams, dict) or not {"config", "facts"} <= hparams.keys() or "state_dict" not in checkpoint
            or not isinstance(hparams["config"], dict) or not isinstance(hparams["facts"], dict)):
        raise UsageError(f"{path}: not a spinalnet checkpoint (a {type(checkpoint).__name__} without the stored "
                         f"run config; a plain state dict cannot be evaluated); expected {expected}")
    if hparams["facts"].get("features"):
        raise UsageError(f"{path} holds only a head trained on cached backbone features, not a whole model; "
                         "its result.json has its accuracy (use --feature-cache off for whole-model checkpoints)")
    try:
        module = Classifier(hparams["config"], hparams["facts"])
        module.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]  # torch puts the key on line 2
        raise UsageError(f"{path}: its weights do not fit the model it describes "
                         f"({type(err).__name__}: {' '.join(lines[:2])})") from None
    return module.eval()


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
