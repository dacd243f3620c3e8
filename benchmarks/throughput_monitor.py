"""Our Throughput callback against Lightning's ThroughputMonitor, side by side in one process.

Both measure the same training (default CNN, batch 64, synthetic 28x28 data in memory, 60 batches
per epoch, 2 epochs), after one warm-up fit, alternating which goes first; the printed ratio is the epoch time with
ThroughputMonitor over the epoch time with ours (> 1: Lightning's monitor costs more).

    python benchmarks/throughput_monitor.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import ThroughputMonitor
from lightning.pytorch.loggers import CSVLogger

from spinalnet.data import DataOptions, load_dataset
from spinalnet.engine.callbacks import Throughput
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.datamodule import SplitsDataModule
from spinalnet.engine.module import Classifier, data_facts
from spinalnet.engine.train import quiet_lightning


def seconds_per_epoch(callback: L.Callback, splits, batches: int) -> float:
    config = TrainConfig( epochs=2, batch_size=64, progress=False)
    L.seed_everything(0, verbose=False)
    module = Classifier(config, data_facts(splits, config))
    data = SplitsDataModule(splits, config.batch_size, config.seed, 0)
    with tempfile.TemporaryDirectory() as out:
        trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=CSVLogger(out), callbacks=[callback],
                            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                            num_sanity_val_steps=0, limit_train_batches=batches, limit_val_batches=1,
                            log_every_n_steps=10)
        start = time.perf_counter()
        trainer.fit(module, data)
        return (time.perf_counter() - start) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    quiet_lightning()
    rng = np.random.default_rng(0)
    x = (rng.random((64 * args.batches + 640, 28, 28)) * 255).astype(np.uint8)
    y = rng.integers(0, 10, len(x))
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(f"{tmp}/d.npz", x=x, y=y)
        splits = load_dataset(f"npz:{tmp}/d.npz", DataOptions())
    ours, theirs = [], []
    seconds_per_epoch(Throughput(), splits, args.batches)  # warm-up: first-fit costs out of the timings
    for repeat in range(args.repeats):  # alternating which goes first (ABBA), against drifting machine load
        for which in (("ours", "theirs") if repeat % 2 == 0 else ("theirs", "ours")):
            if which == "ours":
                ours.append(seconds_per_epoch(Throughput(), splits, args.batches))
            else:
                monitor = ThroughputMonitor(batch_size_fn=lambda batch: len(batch[1]))
                theirs.append(seconds_per_epoch(monitor, splits, args.batches))
    print(f"ours: {statistics.median(ours):.3f} s/epoch, ThroughputMonitor: {statistics.median(theirs):.3f} s/epoch, "
          f"ratio theirs/ours {statistics.median(theirs) / statistics.median(ours):.3f} (medians of {args.repeats})")


if __name__ == "__main__":
    main()
