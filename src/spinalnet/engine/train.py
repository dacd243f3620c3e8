"""``train()``: one model, one seed, validation picks the checkpoint, the test set is used once.

In four parts: where the run goes and what it continues (:func:`resume_state`), the Lightning trainer
(:mod:`spinalnet.engine.trainer`), the fit itself (:func:`fit`) and the record it leaves (:func:`result_record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import torch

from spinalnet.data import DataSplits, load_dataset
from spinalnet.engine.checkpoints import read_checkpoint_state
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.datamodule import SplitsDataModule
from spinalnet.engine.describe import start_lines
from spinalnet.engine.module import Classifier, data_facts
from spinalnet.engine.predictions import accuracy_pct
from spinalnet.engine.run_files import RunFiles
from spinalnet.engine.run_record import RESULT_FILE, RunResult, check_same_run
from spinalnet.engine.trainer import (RunCallbacks, check_logger, earlier_metrics, interruptible, keep_earlier_metrics,
                                      lightning_errors, loggers, make_trainer, quiet_lightning, rank_zero_print)
from spinalnet.errors import UsageError
from spinalnet.provenance import hardware, versions
from spinalnet.rundir import RunDir, open_run_dir, timestamped


def default_run_dir(config: TrainConfig, root: str = "runs") -> Path:
    return timestamped(root, Path(config.dataset).name, config.model)


def count_params(module: torch.nn.Module) -> int:
    """Parameters of ``module``; a head on cached features counts its frozen backbone too."""
    return getattr(module, "total_params", None) or sum(p.numel() for p in module.parameters())


@dataclass
class ResumeState:
    """Where a run goes and what it continues: a checkpoint, the metrics rows it holds, or a finished result."""

    run: RunDir
    checkpoint: Path | None = None
    metrics: tuple[list[str], list[dict[str, str]]] = field(default_factory=lambda: ([], []))
    finished: RunResult | None = None


def resume_state(config: TrainConfig, run_dir: Path | None) -> ResumeState:
    """Decide the run directory and, with ``--resume``, what to continue; reads only."""
    last_of = lambda path: path / "checkpoints" / "last.ckpt"  # noqa: E731
    run = open_run_dir(run_dir or config.output, "train", lambda: default_run_dir(config), resume=config.resume,
                       force=config.force, can_resume=lambda p: last_of(p).is_file() or (p / RESULT_FILE).is_file())
    if run.resume and run.finished:
        stored = RunResult.read(run.path / RESULT_FILE)
        check_same_run(stored.config, config, run.path / RESULT_FILE)
        if stored.finished(config.epochs):
            return ResumeState(run, finished=stored)
    if not run.resume:
        return ResumeState(run)
    last = last_of(run.path)
    if not last.is_file():
        raise UsageError(f"cannot resume {run.path}: {last} is missing")
    saved, epoch = read_checkpoint_state(last)
    check_same_run(saved, config, last)
    return ResumeState(run, last, earlier_metrics(run.path / "metrics.csv", epoch))


def train(config: TrainConfig, splits: DataSplits | None = None, run_dir: Path | None = None,
          extra_callbacks: Sequence[L.Callback] = (), *, test: bool = True) -> RunResult:
    """Check ``config`` (once: this is where the engine is entered) and :func:`fit` it."""
    config.validate()
    return fit(config, splits, run_dir, extra_callbacks, test=test)


def fit(config: TrainConfig, splits: DataSplits | None = None, run_dir: Path | None = None,
        extra_callbacks: Sequence[L.Callback] = (), *, test: bool = True, announce: bool = True,
        log: Callable[[str], None] = rank_zero_print) -> RunResult:
    """Fit a checked ``config``; write ``run_dir/result.json`` and, when ``test``, ``predictions.npz`` (the test
    split, read once, with the checkpoint validation picked); return the result.

    ``--resume`` continues from ``checkpoints/last.ckpt``; on a finished run it returns the stored result (or
    trains on to a larger ``--epochs``). Nothing is written before options, data and model are known to work.
    ``extra_callbacks`` watch the run (tests hash its batches with one); they must not change it. ``announce``:
    print the run directory and what the run will do (a comparison says it once for all its runs).
    """
    quiet_lightning()
    check_logger(config.logger)
    state = resume_state(config, run_dir)
    if state.finished is not None:
        return replace(state.finished, resumed=True)
    splits = splits if splits is not None else load_dataset(config.dataset, config.data_options())
    facts = data_facts(splits, config)
    L.seed_everything(config.seed, workers=True)  # its "Seed set" line is quiet: quiet_lightning()
    module = Classifier(config, facts)  # builds the model: bad options fail before any file is written
    datamodule = SplitsDataModule(splits, config.batch_size, config.seed, config.num_workers)
    files = RunFiles(state.run.path)
    callbacks = RunCallbacks(config, files, extra_callbacks)
    logs = loggers(config, files)
    last = files.last
    with lightning_errors(last):
        trainer = make_trainer(config, callbacks, logs, splits.in_memory)
        state.run.create()
        if announce:
            for line in [f"run directory: {state.run.path}", *start_lines(config, splits, module.model)]:
                log(line)
        keep_earlier_metrics(logs[0], *state.metrics)
        interruptible(trainer, "fit", module, datamodule, ckpt_path=str(state.checkpoint) if state.checkpoint else None)
        curves = list(callbacks.history.val_acc), list(callbacks.history.lr)  # testing rewinds callback state
        best = callbacks.best.best_model_path or str(last)
        tested = interruptible(trainer, "test", module, datamodule, ckpt_path=best, verbose=False)[0] if test else None
    result = result_record(config, module, facts, trainer.current_epoch, callbacks, curves, best, tested)
    if trainer.is_global_zero:
        files.finish(result, module.test_predictions if tested is not None else None, config.save_logits)
    return result


def result_record(config: TrainConfig, module: Classifier, facts: dict[str, Any], epochs: int,
                  callbacks: RunCallbacks, curves: tuple[list[float], list[float]], best: str,
                  tested: dict[str, Any] | None) -> RunResult:
    """What ``result.json`` holds (:class:`~spinalnet.engine.run_record.RunResult`)."""
    model, throughput = module.model, callbacks.throughput
    score = callbacks.best.best_model_score
    return RunResult(
        head=config.head, seed=config.seed,
        test_acc=accuracy_pct(module.test_predictions) if tested is not None else None,
        test_loss=round(float(tested["test_loss"]), 6) if tested is not None else None,
        tested=tested is not None,
        val_acc=round(float(score), 4) if score is not None else None,
        val_acc_curve=curves[0], lr_curve=curves[1], epochs=epochs,
        params=count_params(model), head_params=count_params(model.get_submodule(model.head_path)),
        head_info=getattr(model, "head_info", None), train_seconds=round(throughput.epoch_seconds, 3),
        images_per_second=round(throughput.images_per_second, 1),
        best_checkpoint=str(Path(best).resolve()), config=config.to_dict(),
        data={k: v for k, v in facts.items() if k != "classes"}, classes=facts["classes"],
        versions=versions(), hardware=hardware(), best_epoch=best_epoch(curves[0]),
        stopped_early=callbacks.stopped_early)


def best_epoch(curve: list[float]) -> int | None:
    """The epoch (1-based) whose validation accuracy the best checkpoint holds: the first best, as a checkpoint
    kept only on strict improvement."""
    return curve.index(max(curve)) + 1 if curve else None
