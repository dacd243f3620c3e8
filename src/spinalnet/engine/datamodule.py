"""Serve :class:`DataSplits` to Lightning: whole in-memory batches, or a DataLoader for per-sample data."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader

from spinalnet.data import ArrayLoader, DataSplits
from spinalnet.data.arrays import EpochSampler


class SplitsDataModule(L.LightningDataModule):
    def __init__(self, splits: DataSplits, batch_size: int, seed: int, num_workers: int = 2) -> None:
        super().__init__()
        self.splits, self.batch_size, self.seed, self.num_workers = splits, batch_size, seed, num_workers
        self.train_loader: ArrayLoader | None = None

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, split, train: bool):
        if self.splits.in_memory:
            rank, world = self._rank_world() if train else (0, 1)
            return ArrayLoader(split, self.batch_size, shuffle=train, seed=self.seed, drop_last=train and len(split) > self.batch_size,
                               rank=rank, world_size=world)
        # workers only decode files; the order (EpochSampler) and each image's augmentation (drawn by its index in
        # the module) do not depend on them. A generator of its own: a DataLoader without one draws its workers'
        # base seed from the global generator when an iterator starts, which shifts the dropout masks of the epoch
        # (and shifts them differently in a resumed run)
        sampler = None
        if train:  # Lightning starts the first epoch's iterator before it sets the epoch: set it to the epoch about
            sampler = EpochSampler(len(split), self.seed)  # to run (the one Lightning sets next: a resumed run's)
            sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0)
        return DataLoader(split, batch_size=self.batch_size, num_workers=self.num_workers, sampler=sampler,
                          generator=torch.Generator().manual_seed(self.seed),
                          persistent_workers=self.num_workers > 0, drop_last=train and len(split) > self.batch_size)

    def train_dataloader(self):
        loader = self._loader(self.splits.train, True)
        if isinstance(loader, ArrayLoader):
            self.train_loader = loader
        return loader

    def val_dataloader(self):
        return self._loader(self.splits.val, False)

    def test_dataloader(self):
        return self._loader(self.splits.test, False)

    def set_epoch(self, epoch: int) -> None:
        if self.train_loader is not None:
            self.train_loader.set_epoch(epoch)
