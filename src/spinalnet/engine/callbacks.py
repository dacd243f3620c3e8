"""Training-loop extras: throughput, curves per epoch, one line per epoch, and the paper's random learning-rate
restarts."""

from __future__ import annotations

import time

import lightning as L
import torch


class Throughput(L.Callback):
    """Images per second of the training loop alone (data, forward, backward, step), and the seconds
    of whole epochs (training and validation). Both are kept in checkpoints, so a resumed run reports
    the whole run, not only its resumed part.

    Lightning's ThroughputMonitor costs no more (benchmarks/throughput_monitor.py: epoch time ratio
    theirs/ours 0.94, medians of 4, on a 2-core CPU shared with other jobs, i.e. equal within noise),
    but it logs windowed per-step rates and keeps no totals across a resume; the whole run's images
    per second and seconds, stored in every checkpoint, are what results need, so this one stays.
    """

    def __init__(self) -> None:
        self.seconds = 0.0        # training loop only
        self.images = 0
        self.epoch_seconds = 0.0  # whole epochs: training and validation
        self._start = 0.0
        self._epoch_images = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start, self._epoch_images = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._epoch_images += len(batch[1]) * trainer.world_size
        elapsed = time.perf_counter() - self._start
        if batch_idx % 25 == 0 and elapsed > 0 and trainer.progress_bar_callback is not None:
            pl_module.log("img_per_s", self._epoch_images / elapsed, on_step=True, on_epoch=False,
                          prog_bar=True, logger=False)

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and self._epoch_images:
            self.seconds += time.perf_counter() - self._start
            self.images += self._epoch_images
            self._epoch_images = 0

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.epoch_seconds += time.perf_counter() - self._start

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def state_dict(self) -> dict:
        return {"seconds": self.seconds, "images": self.images, "epoch_seconds": self.epoch_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.seconds, self.images = state["seconds"], state["images"]
        self.epoch_seconds = state.get("epoch_seconds", 0.0)


class EpochLines(L.Callback):
    """Without a progress bar (stderr not a terminal, or --no-progress): one line per epoch, rank zero only."""

    def __init__(self, throughput: Throughput, print_line=print) -> None:
        self.throughput, self.print_line = throughput, print_line
        self._first_epoch, self._seconds_before = 0, 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._first_epoch, self._seconds_before = trainer.current_epoch, self.throughput.epoch_seconds

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or not trainer.is_global_zero:
            return
        metrics, epoch = trainer.callback_metrics, trainer.current_epoch
        done_now = epoch + 1 - self._first_epoch
        per_epoch = (self.throughput.epoch_seconds - self._seconds_before) / max(done_now, 1)
        eta = per_epoch * (trainer.max_epochs - epoch - 1)
        train_loss = pl_module.epoch_train_loss()  # this epoch's (rank zero's); train_loss is logged after validation
        loss = "-" if train_loss is None else f"{train_loss:.4f}"
        val = f"{float(metrics['val_acc']):.2f}%" if "val_acc" in metrics else "-"
        self.print_line(f"epoch {epoch + 1}/{trainer.max_epochs}: train loss {loss}, val acc {val}, "
                        f"{self.throughput.epoch_seconds:.1f} s elapsed, ETA {eta:.0f} s")


class RandomRestart:
    """The paper's trick, driven by validation accuracy: when it stalls, LR = base LR * U(0,1)^exponent
    (3 in most of the authors' scripts, 5 in their ResNet scripts). One run's state; the batched path keeps one
    per run."""

    def __init__(self, base_lr: float, seed: int, exponent: float = 3.0) -> None:
        self.base_lr, self.best, self.exponent = base_lr, -1.0, exponent
        self.generator = torch.Generator().manual_seed(seed)

    def after_validation(self, acc: float) -> float | None:
        """The new learning rate when ``acc`` did not improve on the best so far, else None."""
        if acc > self.best:
            self.best = acc
            return None
        return self.base_lr * float(torch.rand((), generator=self.generator)) ** self.exponent

    def state_dict(self) -> dict:
        return {"best": self.best, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]
        self.generator.set_state(state["generator"])


class RandomRestartLR(L.Callback):
    """:class:`RandomRestart` on a Lightning run's optimisers, after every validation."""

    def __init__(self, base_lr: float, seed: int, exponent: float = 3.0) -> None:
        self.restart = RandomRestart(base_lr, seed, exponent)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        lr = self.restart.after_validation(float(trainer.callback_metrics.get("val_acc", -1.0)))
        if lr is None:
            return
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = lr

    def state_dict(self) -> dict:
        return self.restart.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.restart.load_state_dict(state)


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
