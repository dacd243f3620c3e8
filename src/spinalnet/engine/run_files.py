"""A run's files, written here only: ``checkpoints/best.ckpt`` and ``last.ckpt``, ``metrics.csv``,
``predictions.npz`` and ``result.json``. The run-by-run engine (Lightning's fit), the heads trained together on
cached features (:mod:`spinalnet.engine.batched`) and a later test pass all go through :class:`RunFiles`, so a run
looks the same on disk whichever way it trained:

- checkpoints in Lightning's own format, written by Lightning (its ``ModelCheckpoint`` in a fit, its
  ``Trainer.save_checkpoint`` for heads trained together), through our atomic checkpoint I/O;
- ``metrics.csv`` by Lightning's ``CSVLogger``, one row per epoch;
- ``predictions.npz`` (:mod:`spinalnet.engine.predictions`), then ``result.json`` (:class:`RunResult`): a run with
  a result is complete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from spinalnet.engine.checkpoints import AtomicCheckpointIO
from spinalnet.engine.predictions import PREDICTIONS_FILE, write_predictions
from spinalnet.engine.run_record import RESULT_FILE, RunResult


class RunFiles:
    """The files of the run in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.best, self.last = self.checkpoints / "best.ckpt", self.checkpoints / "last.ckpt"
        self.metrics = self.path / "metrics.csv"
        self.result = self.path / RESULT_FILE
        self.predictions = self.path / PREDICTIONS_FILE

    # ------------------------------------------------------------------ Lightning's writers
    def csv_logger(self) -> CSVLogger:
        """The writer of ``metrics.csv`` (creating its experiment removes an existing file)."""
        return CSVLogger(str(self.path), name="", version="")

    def model_checkpoints(self) -> tuple[ModelCheckpoint, ModelCheckpoint]:
        """``best.ckpt`` (validation accuracy) and ``last.ckpt`` (every epoch) for a Lightning fit. Lightning's
        save_last refreshes last.ckpt only when a best checkpoint is saved; resuming needs the state after every
        epoch, so "last" is its own checkpoint, replaced each epoch."""
        best = ModelCheckpoint(dirpath=self.checkpoints, filename="best", monitor="val_acc", mode="max",
                               enable_version_counter=False)
        last = ModelCheckpoint(dirpath=self.checkpoints, filename="last", save_top_k=1, monitor=None,
                               enable_version_counter=False)
        return best, last

    def save_checkpoint(self, saver: L.Trainer, module: L.LightningModule, which: str, epoch: int,
                        global_step: int) -> None:
        """``which`` ("best" or "last") of a run trained outside a fit, written by Lightning's own
        ``Trainer.save_checkpoint`` (``saver``: :func:`checkpoint_saver`) as a fit at ``epoch`` would write it."""
        saver.strategy.connect(module)
        saver.fit_loop.epoch_progress.current.completed = epoch
        saver.fit_loop.epoch_loop.automatic_optimization.optim_progress.optimizer.step.total.completed = global_step
        saver.save_checkpoint(self.best if which == "best" else self.last)

    # ------------------------------------------------------------------ the end of a run
    def finish(self, result: RunResult, predictions: dict[str, Any] | None, logits: bool = False) -> None:
        """``predictions.npz`` (when the run was tested), then ``result.json``."""
        if predictions is not None:
            write_predictions(self.predictions, predictions, logits=logits)
        result.write(self.result)


def checkpoint_saver() -> L.Trainer:
    """A Trainer that only saves checkpoints (of modules trained without one), through our atomic I/O."""
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, plugins=[AtomicCheckpointIO()])
