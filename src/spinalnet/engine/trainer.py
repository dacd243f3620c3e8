"""The Lightning side of a run: its Trainer (callbacks, checkpoints, loggers), a quiet console, and
Lightning's own errors as ours."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import CSVLogger, Logger

from spinalnet.engine.callbacks import EpochHistory, EpochLines, RandomRestartLR, Throughput
from spinalnet.engine.checkpoints import AtomicCheckpointIO
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.machine import parse_devices
from spinalnet.engine.run_files import RunFiles
from spinalnet.errors import TrainingError, UsageError


def rank_zero_print(*args: Any, **kwargs: Any) -> None:
    """``print`` on the first process only: with DDP every rank runs the command."""
    if rank_zero_only.rank == 0:
        print(*args, **kwargs)


def quiet_lightning() -> None:
    """Keep the console to our table and the progress bar."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*GPU available but not used.*",
                    ".*is an iterable.*", ".*LeafSpec.*", ".*`isinstance.*treespec.*",
                    ".*srun.*", ".*smaller than the logging interval.*", ".*exists and is not empty.*",
                    ".*Consider setting `persistent_workers=True`.*", ".*TPU available.*",
                    r".*module\(s\) in eval mode at the start of training.*",  # a frozen backbone, on purpose
                    ".*Detected KeyboardInterrupt, attempting graceful shutdown.*"):  # Lightning 2.2 warns it
        warnings.filterwarnings("ignore", message=pattern)


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


def interruptible(trainer: L.Trainer, stage: str, *args: Any, **kwargs: Any) -> Any:
    """``trainer.fit`` or ``trainer.test`` with Ctrl-C a KeyboardInterrupt on every Lightning version: Lightning 2.2
    returns from the stage after its graceful shutdown, later versions exit(1) (see :func:`lightning_errors`)."""
    out = getattr(trainer, stage)(*args, **kwargs)
    if trainer.interrupted:
        raise KeyboardInterrupt
    return out


def check_logger(name: str) -> None:
    """The package a logger needs, named in one line before anything is written."""
    needs = {"tensorboard": ("tensorboard", "pip install 'spinalnet[tensorboard]'"),
             "mlflow": ("mlflow", "pip install mlflow")}.get(name)
    if needs is not None and importlib.util.find_spec(needs[0]) is None:
        raise UsageError(f"--logger {name} needs the {needs[0]} package, which is not installed: {needs[1]}")


def loggers(config: TrainConfig, files: RunFiles) -> list[Logger]:
    """metrics.csv always (results and --resume read it); TensorBoard event files or MLflow runs besides.

    TensorBoard writes into the run directory itself (``tensorboard --logdir runs/...`` finds every run of a
    comparison); MLflow logs to ``$MLFLOW_TRACKING_URI``, or to ``mlruns/`` in the run directory.
    """
    run_dir = files.path
    chosen: list[Logger] = [files.csv_logger()]
    if config.logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        chosen.append(TensorBoardLogger(str(run_dir), name="", version="", default_hp_metric=False))
    elif config.logger == "mlflow":
        import os

        from lightning.pytorch.loggers import MLFlowLogger

        chosen.append(MLFlowLogger(experiment_name="spinalnet", run_name=run_dir.name,
                                   tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").as_uri()))
    return chosen


class RunCallbacks:
    """The callbacks of a run: its two checkpoints, timing, curves, the schedule's, early stopping (``--patience``)
    and the epoch lines."""

    def __init__(self, config: TrainConfig, files: RunFiles, extra: Sequence[L.Callback] = ()) -> None:
        self.best, self.last = files.model_checkpoints()
        self.throughput, self.history = Throughput(), EpochHistory()
        self.all: list[L.Callback] = [self.best, self.last, self.throughput, self.history, *extra]
        self.stopping = None
        if config.patience is not None:  # the same rule as the batched path's (engine.batched.Patience)
            self.stopping = EarlyStopping(monitor="val_acc", mode="max", patience=config.patience, check_finite=False)
            self.all.append(self.stopping)
        if config.schedule == "random-restart":
            self.all.append(RandomRestartLR(config.lr, config.seed, config.restart_exponent))
        self.progress = sys.stderr.isatty() if config.progress is None else config.progress
        if not self.progress:
            self.all.append(EpochLines(self.throughput))

    @property
    def stopped_early(self) -> bool:
        return self.stopping is not None and self.stopping.stopped_epoch > 0


def make_trainer(config: TrainConfig, callbacks: RunCallbacks, logs: list[Logger], in_memory: bool) -> L.Trainer:
    """The run's Trainer; Lightning's refusal of a machine option the user gave (``--strategy``, ``--precision``,
    ``--devices``: a ValueError or MisconfigurationException) is a usage error."""
    try:
        return _trainer(config, callbacks, logs, in_memory)
    except (ValueError, MisconfigurationException) as err:
        raise UsageError(str(err).strip().splitlines()[0]) from None


def _trainer(config: TrainConfig, callbacks: RunCallbacks, logs: list[Logger], in_memory: bool) -> L.Trainer:
    limit = int(config.limit_batches) if config.limit_batches > 1 else config.limit_batches
    return L.Trainer(
        max_epochs=config.epochs, accelerator=config.accelerator, devices=parse_devices(config.devices),
        strategy=config.strategy, num_nodes=config.num_nodes, precision=config.precision,
        deterministic=config.deterministic, logger=logs, callbacks=callbacks.all,
        enable_progress_bar=callbacks.progress, enable_model_summary=False, num_sanity_val_steps=0,
        limit_train_batches=limit, log_every_n_steps=10,
        use_distributed_sampler=not in_memory,  # in-memory splits shard themselves; validation and test see all
        plugins=[AtomicCheckpointIO()],
    )


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
