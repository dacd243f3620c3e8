"""``train()``: one model, one seed, validation picks the checkpoint, the test set is used once."""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from spinalnet.data import DataOptions, DataSplits, load_dataset
from spinalnet.errors import UsageError
from spinalnet.training.callbacks import RandomRestartLR, Throughput
from spinalnet.training.checkpoint_io import AtomicCheckpointIO
from spinalnet.training.config import TrainConfig
from spinalnet.training.datamodule import SplitsDataModule
from spinalnet.training.module import Classifier, data_facts
from spinalnet.training.predictions import PREDICTIONS_FILE, accuracy_pct, write_predictions
from spinalnet.training.run_files import write_json

RESULT_FILE = "result.json"


class EpochHistory(L.Callback):
    """Validation accuracy and learning rate per epoch; kept in checkpoints so a resumed run has whole curves.

    The learning rate is the one each training epoch starts with, so schedules (and random restarts,
    which follow each run's own validation accuracy) can be compared between runs.
    """

    def __init__(self) -> None:
        self.val_acc: list[float] = []
        self.lr: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.lr.append(float(trainer.optimizers[0].param_groups[0]["lr"]))

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and "val_acc" in trainer.callback_metrics:
            self.val_acc.append(round(float(trainer.callback_metrics["val_acc"]), 4))

    def state_dict(self) -> dict:
        return {"val_acc": self.val_acc, "lr": self.lr}

    def load_state_dict(self, state: dict) -> None:
        self.val_acc, self.lr = list(state["val_acc"]), list(state.get("lr", []))


def quiet_lightning() -> None:
    """Keep the console to our table and the progress bar."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*GPU available but not used.*",
                    ".*is an iterable.*", ".*LeafSpec.*", ".*`isinstance.*treespec.*",
                    ".*srun.*", ".*smaller than the logging interval.*", ".*exists and is not empty.*", ".*Consider setting `persistent_workers=True`.*", ".*TPU available.*",
                    r".*module\(s\) in eval mode at the start of training.*"):  # a frozen backbone, on purpose
        warnings.filterwarnings("ignore", message=pattern)


def data_options(config: TrainConfig) -> DataOptions:
    return DataOptions(data_dir=Path(config.data_dir).expanduser() if config.data_dir else None,
                       download=config.download, val_fraction=config.val_fraction, split_seed=config.split_seed,
                       image_size=config.image_size, categories=list(config.categories),
                       samples_per_class=config.samples_per_class)


def default_run_dir(config: TrainConfig, root: str = "runs") -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{Path(config.dataset).name}-{config.model}")
    return Path(root) / f"{slug}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def count_params(module: torch.nn.Module) -> int:
    """Parameters of ``module``; a head on cached features counts its frozen backbone too."""
    return getattr(module, "total_params", None) or sum(p.numel() for p in module.parameters())


# What must agree between a checkpoint and the run that resumes from it.
RESUME_KEYS = ("dataset", "model", "head", "layer_width", "num_layers", "num_splits", "spinal_dropout", "seed",
               "batch_size", "optimizer", "schedule", "split_seed", "val_fraction")


def check_resumable(last: Path, config: TrainConfig) -> None:
    """A checkpoint from another model or setting cannot be resumed: say which option differs."""
    try:
        # mmap: only the pickled config is read here; Lightning loads the weights once, when it resumes
        saved = torch.load(last, map_location="cpu", weights_only=False, mmap=True)["hyper_parameters"]["config"]
    except Exception as err:  # truncated or foreign file
        raise UsageError(f"cannot resume from {last}: not a readable spinalnet checkpoint ({type(err).__name__})") from None
    current = config.to_dict()
    for key in RESUME_KEYS:
        if saved.get(key) != current.get(key):
            raise UsageError(f"cannot resume from {last}: it was trained with {key}={saved.get(key)!r}, "
                             f"this run has {key}={current.get(key)!r}; use another --output or --force")


def prepare_run_dir(run_dir: Path, config: TrainConfig, force: bool = False) -> Path | None:
    """Refuse to overwrite a finished run; return the checkpoint to resume from, if any."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if (run_dir / RESULT_FILE).exists() and not (force or config.resume):
        raise UsageError(f"{run_dir} already holds a finished run; pass --resume to continue it, "
                         "--force to start over, or choose another --output")
    if config.resume and last.is_file() and not force:
        check_resumable(last, config)
        return last
    return None


def train(config: TrainConfig, splits: DataSplits | None = None, run_dir: Path | None = None,
          force: bool = False, extra_callbacks: list[L.Callback] = ()) -> dict[str, Any]:
    """Fit ``config``; write ``run_dir/result.json`` and ``predictions.npz`` (the test split) and return the metrics.

    ``extra_callbacks`` watch the run (tests hash its batches with one); they must not change it.
    """
    quiet_lightning()
    config.validate()
    splits = splits if splits is not None else load_dataset(config.dataset, data_options(config))
    run_dir = Path(run_dir or config.output or default_run_dir(config))
    resume_from = prepare_run_dir(run_dir, config, force)
    facts = data_facts(splits)
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = Classifier(config.to_dict(), facts)  # builds the model: bad options fail before any file is written
    datamodule = SplitsDataModule(splits, config.batch_size, config.seed, config.num_workers)

    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor="val_acc", mode="max",
                                 enable_version_counter=False)
    # Lightning's save_last refreshes last.ckpt only when a best checkpoint is saved; resuming needs
    # the state after every epoch, so "last" is its own checkpoint, replaced each epoch.
    every_epoch = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", save_top_k=1, monitor=None,
                                  enable_version_counter=False)
    throughput, history = Throughput(), EpochHistory()
    callbacks: list[L.Callback] = [checkpoint, every_epoch, throughput, history, *extra_callbacks]
    if config.schedule == "random-restart":
        callbacks.append(RandomRestartLR(config.lr, config.seed, config.restart_exponent))
    limit = int(config.limit_batches) if config.limit_batches > 1 else config.limit_batches
    trainer = L.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator,
        devices=int(config.devices) if str(config.devices).isdigit() else config.devices,
        strategy=config.strategy, precision=config.precision, deterministic=config.deterministic,
        logger=CSVLogger(str(run_dir), name="", version=""), callbacks=callbacks,
        enable_progress_bar=sys.stderr.isatty() if config.progress is None else config.progress, enable_model_summary=False, num_sanity_val_steps=0,
        limit_train_batches=limit, log_every_n_steps=10,  # validation and test always see their whole split
        use_distributed_sampler=not splits.in_memory, plugins=[AtomicCheckpointIO()],
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    started = time.perf_counter()
    trainer.fit(module, datamodule, ckpt_path=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - started
    curve, lr_curve = list(history.val_acc), list(history.lr)  # testing from a checkpoint rewinds callback state
    best_path = checkpoint.best_model_path or str(last)
    (test,) = trainer.test(module, datamodule, ckpt_path=best_path, verbose=False)
    model = module.model
    predictions = module.test_predictions  # the test pass above; test_acc is computed from it exactly
    result = {
        "head": config.head, "seed": config.seed,
        "test_acc": accuracy_pct(predictions), "test_loss": round(float(test["test_loss"]), 6),
        "val_acc": round(float(checkpoint.best_model_score), 4) if checkpoint.best_model_score is not None else None,
        "val_acc_curve": curve, "lr_curve": lr_curve, "epochs": trainer.current_epoch,
        "params": count_params(model), "head_params": count_params(model.get_submodule(model.head_path)),
        "train_seconds": round(train_seconds, 3), "images_per_second": round(throughput.images_per_second, 1),
        "best_checkpoint": str(Path(best_path).resolve()), "config": config.to_dict(),
        "data": {k: v for k, v in facts.items() if k != "classes"},
    }
    if trainer.is_global_zero:
        write_predictions(run_dir / PREDICTIONS_FILE, predictions)
        write_json(run_dir / RESULT_FILE, result)
    return result
