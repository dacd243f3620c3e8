"""Training-loop extras: throughput measurement and the paper's random learning-rate restarts."""

from __future__ import annotations

import time

import lightning as L
import torch


class Throughput(L.Callback):
    """Images per second of the training loop alone (data, forward, backward, step), per epoch."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.images = 0
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

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


class RandomRestartLR(L.Callback):
    """The paper's trick, driven by validation accuracy: when it stalls, LR = base LR * U(0,1)^exponent
    (3 in most of the authors' scripts, 5 in their ResNet scripts)."""

    def __init__(self, base_lr: float, seed: int, exponent: float = 3.0) -> None:
        self.base_lr, self.best, self.exponent = base_lr, -1.0, exponent
        self.generator = torch.Generator().manual_seed(seed)

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        acc = float(trainer.callback_metrics.get("val_acc", -1.0))
        if acc > self.best:
            self.best = acc
            return
        lr = self.base_lr * float(torch.rand((), generator=self.generator)) ** self.exponent
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = lr

    def state_dict(self) -> dict:
        return {"best": self.best, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]
        self.generator.set_state(state["generator"])
