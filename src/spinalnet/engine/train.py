"""``train()``: one model, one seed, validation picks the checkpoint, the test set is used once."""

from __future__ import annotations

import contextlib
import csv
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from spinalnet.data import DataOptions, DataSplits, load_dataset
from spinalnet.errors import TrainingError, UsageError
from spinalnet.files import read_json, write_json
from spinalnet.rundir import FINISHED, open_run_dir, timestamped
from spinalnet.engine.callbacks import EpochLines, RandomRestartLR, Throughput
from spinalnet.engine.checkpoints import AtomicCheckpointIO, read_checkpoint_state
from spinalnet.engine.config import TrainConfig, result_options
from spinalnet.engine.datamodule import SplitsDataModule
from spinalnet.engine.machine import parse_devices
from spinalnet.engine.module import Classifier, data_facts
from spinalnet.engine.predictions import PREDICTIONS_FILE, accuracy_pct, write_predictions

RESULT_FILE = FINISHED["train"]


def rank_zero_print(*args: Any, **kwargs: Any) -> None:
    """``print`` on the first process only: with DDP every rank runs the command."""
    if rank_zero_only.rank == 0:
        print(*args, **kwargs)


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
    return timestamped(root, Path(config.dataset).name, config.model)


def count_params(module: torch.nn.Module) -> int:
    """Parameters of ``module``; a head on cached features counts its frozen backbone too."""
    return getattr(module, "total_params", None) or sum(p.numel() for p in module.parameters())


def check_same_run(saved: dict[str, Any], config: TrainConfig, source: Path) -> None:
    """Continuing ``source`` is refused when any option that changes the result differs; name the first."""
    defaults = TrainConfig().to_dict()
    current = config.to_dict()
    keys = result_options(TrainConfig)
    if config.schedule in ("cosine", "onecycle"):  # their LR curve is laid out over --epochs
        keys = (*keys, "epochs")
    for key in keys:
        before = saved.get(key, defaults[key])
        if before != current[key]:
            raise UsageError(f"cannot resume from {source}: it was trained with {key}={before!r}, "
                             f"this run has {key}={current[key]!r}; use another --output or --force")


def earlier_metrics(path: Path, last_epoch: int) -> tuple[list[str], list[dict[str, str]]]:
    """metrics.csv rows of the epochs a checkpoint holds (an interrupted epoch is trained again)."""
    if not path.is_file():
        return [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [r for r in reader if r.get("epoch", "").isdigit() and int(r["epoch"]) <= last_epoch]
        return sorted(reader.fieldnames or []), rows


def keep_earlier_metrics(logger: CSVLogger, header: list[str], rows: list[dict[str, str]]) -> None:
    """Lightning's CSV writer deletes an existing metrics.csv; write the earlier epochs back for it to extend."""
    writer = logger.experiment  # creating the writer removes the old file
    if rows and rank_zero_only.rank == 0:
        with open(writer.metrics_file_path, "w", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=header)
            out.writeheader()
            out.writerows(rows)
        writer.metrics_keys = list(header)


@contextlib.contextmanager
def lightning_errors(last: Path) -> Iterator[None]:
    """Lightning's own refusals as one-line usage errors; Ctrl-C as KeyboardInterrupt (Lightning exits 1)."""
    try:
        yield
    except MisconfigurationException as err:
        raise UsageError(str(err).strip().splitlines()[0]) from None
    except TrainingError as err:
        kept = f"the last good checkpoint is kept: {last}" if last.is_file() else "no checkpoint was written"
        raise TrainingError(f"{err}; {kept}") from None
    except SystemExit as err:
        if err.code == 1:  # Lightning's graceful shutdown after KeyboardInterrupt ends in sys.exit(1)
            raise KeyboardInterrupt from None
        raise


def train(config: TrainConfig, splits: DataSplits | None = None, run_dir: Path | None = None,
          extra_callbacks: Sequence[L.Callback] = ()) -> dict[str, Any]:
    """Fit ``config``; write ``run_dir/result.json`` and ``predictions.npz`` (the test split) and return the metrics.

    ``--resume`` continues from ``checkpoints/last.ckpt``; on a finished run it returns the stored
    result (or trains on to a larger ``--epochs``). Nothing is written before options, data and model
    are known to work. ``extra_callbacks`` watch the run (tests hash its batches with one); they must
    not change it.
    """
    quiet_lightning()
    config.validate()
    last_of = lambda path: path / "checkpoints" / "last.ckpt"  # noqa: E731
    run = open_run_dir(run_dir or config.output, "train", lambda: default_run_dir(config), resume=config.resume,
                       force=config.force, can_resume=lambda p: last_of(p).is_file() or (p / RESULT_FILE).is_file())
    last = last_of(run.path)
    resume_from, header, rows = None, [], []
    if run.resume and run.finished:
        stored = read_json(run.path / RESULT_FILE)
        check_same_run(stored["config"], config, run.path / RESULT_FILE)
        if stored["epochs"] >= config.epochs:
            return {**stored, "resumed_finished": True}
    if run.resume:
        if not last.is_file():
            raise UsageError(f"cannot resume {run.path}: {last} is missing")
        saved, epoch = read_checkpoint_state(last)
        check_same_run(saved, config, last)
        resume_from = last
        header, rows = earlier_metrics(run.path / "metrics.csv", epoch)
    splits = splits if splits is not None else load_dataset(config.dataset, data_options(config))
    facts = data_facts(splits)
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = Classifier(config.to_dict(), facts)  # builds the model: bad options fail before any file is written
    datamodule = SplitsDataModule(splits, config.batch_size, config.seed, config.num_workers)

    checkpoint = ModelCheckpoint(dirpath=run.path / "checkpoints", filename="best", monitor="val_acc", mode="max",
                                 enable_version_counter=False)
    # Lightning's save_last refreshes last.ckpt only when a best checkpoint is saved; resuming needs
    # the state after every epoch, so "last" is its own checkpoint, replaced each epoch.
    every_epoch = ModelCheckpoint(dirpath=run.path / "checkpoints", filename="last", save_top_k=1, monitor=None,
                                  enable_version_counter=False)
    throughput, history = Throughput(), EpochHistory()
    callbacks: list[L.Callback] = [checkpoint, every_epoch, throughput, history, *extra_callbacks]
    if config.schedule == "random-restart":
        callbacks.append(RandomRestartLR(config.lr, config.seed, config.restart_exponent))
    progress = sys.stderr.isatty() if config.progress is None else config.progress
    if not progress:
        callbacks.append(EpochLines(throughput))
    limit = int(config.limit_batches) if config.limit_batches > 1 else config.limit_batches
    logger = CSVLogger(str(run.path), name="", version="")
    with lightning_errors(last):
        trainer = L.Trainer(
            max_epochs=config.epochs, accelerator=config.accelerator, devices=parse_devices(config.devices),
            strategy=config.strategy, num_nodes=config.num_nodes, precision=config.precision, deterministic=config.deterministic,
            logger=logger, callbacks=callbacks, enable_progress_bar=progress, enable_model_summary=False,
            num_sanity_val_steps=0, limit_train_batches=limit, log_every_n_steps=10,
            # validation and test always see their whole split
            use_distributed_sampler=not splits.in_memory, plugins=[AtomicCheckpointIO()],
        )
        run.create()
        keep_earlier_metrics(logger, header, rows)
        trainer.fit(module, datamodule, ckpt_path=str(resume_from) if resume_from else None)
        # testing from a checkpoint restores (rewinds) callback state
        curve, lr_curve = list(history.val_acc), list(history.lr)
        train_seconds, images_per_second = throughput.epoch_seconds, throughput.images_per_second
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
        "train_seconds": round(train_seconds, 3), "images_per_second": round(images_per_second, 1),
        "best_checkpoint": str(Path(best_path).resolve()), "config": config.to_dict(),
        "data": {k: v for k, v in facts.items() if k != "classes"},
    }
    if trainer.is_global_zero:
        write_predictions(run.path / PREDICTIONS_FILE, predictions)
        write_json(run.path / RESULT_FILE, result)
    return result
