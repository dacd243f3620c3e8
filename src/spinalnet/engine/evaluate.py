"""Evaluate a checkpoint on its dataset's test split (or validation split)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import lightning as L
import torch

from spinalnet.data import DataSplits, load_dataset
from spinalnet.errors import UsageError
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.datamodule import SplitsDataModule
from spinalnet.engine.checkpoints import load_classifier, load_run_module
from spinalnet.engine.predictions import accuracy_pct
from spinalnet.engine.run_files import RunFiles
from spinalnet.engine.run_record import RunResult
from spinalnet.engine.trainer import interruptible, quiet_lightning


def evaluate(path: Path, split: str = "test", overrides: dict[str, Any] | None = None, strict: bool = False,
             warn: Callable[[str], None] | None = None, splits: DataSplits | None = None,
             with_predictions: bool = False) -> dict[str, Any]:
    """A checkpoint's accuracy (overall and per class, by name) on a split of the data it was trained on: what
    ``spinalnet eval`` prints, and what ``compare`` checks its runs against (``with_predictions``: the per-example
    ``y_true``, ``y_pred`` and ``logits`` under ``predictions``; ``splits``: the data already loaded).

    Data whose fingerprint differs from the one the checkpoint recorded (changed files, other labels) is one
    warning line (``warn``, default stderr), or refused with ``strict``.
    """
    quiet_lightning()
    batch_size = (overrides or {}).get("batch_size")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    module = load_classifier(path)
    config = TrainConfig.from_dict({**module.hparams["config"], **(overrides or {})})
    splits = splits if splits is not None else load_dataset(config.dataset, config.data_options())
    facts = module.hparams["facts"]
    if splits.num_classes != facts["num_classes"]:
        raise UsageError(f"{path} was trained for {facts['num_classes']} classes, "
                         f"{config.dataset} has {splits.num_classes}")
    trained, found = module.input_spec.shape, (splits.channels, *splits.image_size)
    if tuple(trained) != tuple(found):
        raise UsageError(f"{path} was trained on {config.dataset} images stored as {tuple(trained)} (C, H, W); the "
                         f"data found now is {tuple(found)}")
    recorded = facts.get("data_sha256")
    if recorded is not None and recorded != splits.fingerprint:
        message = (f"the data of {config.dataset} differs from the data {path} was trained on (its images, labels or "
                   "split changed), so this accuracy is not the run's")
        if strict:
            raise UsageError(f"{message}; without --strict eval reports it anyway")
        (warn or (lambda line: print(line, file=sys.stderr)))(f"spinalnet: warning: {message}")
    datamodule = SplitsDataModule(splits, config.batch_size, config.seed, config.num_workers)
    trainer = L.Trainer(accelerator=config.accelerator, devices=1, precision=config.precision, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    if split == "val":
        datamodule.test_dataloader = datamodule.val_dataloader
    (metrics,) = interruptible(trainer, "test", module, datamodule, verbose=False)
    predictions = module.test_predictions
    classes = facts.get("classes") or [str(k) for k in range(facts["num_classes"])]
    result = {"checkpoint": str(path), "dataset": config.dataset, "model": config.model, "head": config.head,
              "split": split, "accuracy": accuracy_pct(predictions), "loss": round(float(metrics["test_loss"]), 6),
              "samples": len(predictions["y_true"]), "per_class": per_class(predictions, classes),
              "data_matches": recorded is None or recorded == splits.fingerprint}
    return {**result, "predictions": predictions} if with_predictions else result


def per_class(predictions: dict[str, Any], classes: list[str]) -> list[dict[str, Any]]:
    """Accuracy of every class, by name, over the examples of that class."""
    out = []
    for k, name in enumerate(classes):
        mine = predictions["y_true"] == k
        count = int(mine.sum())
        accuracy = round(100.0 * float((predictions["y_pred"][mine] == k).mean()), 4) if count else None
        out.append({"class": name, "accuracy": accuracy, "samples": count})
    return out


def test_run(run_dir: Path, splits: DataSplits) -> RunResult:
    """The test pass of a finished run that skipped it (a tuned comparison reads the test split only for the
    value validation chose): its best checkpoint on the test split of ``splits`` (features, when it trained on
    them); writes ``predictions.npz`` and the result with its test accuracy."""
    quiet_lightning()
    files = RunFiles(Path(run_dir))
    result = RunResult.read(files.result)
    module = load_run_module(Path(result.best_checkpoint))
    config = module.config
    datamodule = SplitsDataModule(splits, config.batch_size, config.seed, config.num_workers)
    trainer = L.Trainer(accelerator=config.accelerator, devices=1, precision=config.precision, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    (metrics,) = interruptible(trainer, "test", module, datamodule, verbose=False)
    result = replace(result, test_acc=accuracy_pct(module.test_predictions),
                     test_loss=round(float(metrics["test_loss"]), 6), tested=True)
    files.finish(result, module.test_predictions, config.save_logits)
    return result
