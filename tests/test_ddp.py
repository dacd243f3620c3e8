"""DDP with two gloo CPU processes: disjoint shards that cover the training data, whole-split predictions,
accuracy close to a one-process run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from spinalnet.engine.config import TrainConfig
from spinalnet.engine.predictions import interleave_shards
from spinalnet.engine.train import train

# Run by Lightning's ddp launcher once per rank: each rank writes the training examples it saw in epoch 0.
SCRIPT = textwrap.dedent("""
    import sys, lightning as L, numpy as np
    from spinalnet.engine.config import TrainConfig
    from spinalnet.engine.train import train

    class Seen(L.Callback):
        def __init__(self):
            self.rows = []
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.current_epoch == 0:
                self.rows.append(batch[0].flatten(1).numpy().copy())
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 0:
                np.save(f"{sys.argv[2]}/seen{trainer.global_rank}.npy", np.concatenate(self.rows))

    config = TrainConfig(dataset="npz:" + sys.argv[1], accelerator="cpu", devices="2", strategy="ddp",
                         epochs=2, batch_size=5, lr=0.02, progress=False, output=sys.argv[2] + "/run")
    train(config, run_dir=sys.argv[2] + "/run", extra_callbacks=[Seen()])
""")


@pytest.mark.slow
def test_ddp_shards_are_disjoint_cover_the_data_and_learn_like_one_process(npz_file, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(npz_file), str(tmp_path)], capture_output=True,
                          text=True, timeout=400, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [np.load(tmp_path / f"seen{rank}.npy") for rank in (0, 1)]
    rows = [{r.tobytes() for r in s} for s in seen]
    assert len(rows[0]) == len(seen[0]) == len(seen[1]) == len(rows[1]) == 115  # 230 training images, halved (batch 5 divides 115: nothing dropped)
    assert not rows[0] & rows[1]  # disjoint
    one = TrainConfig(dataset=f"npz:{npz_file}", epochs=2, batch_size=5, lr=0.02, progress=False,
                      output=str(tmp_path / "one"))
    single = train(one, run_dir=tmp_path / "one").to_dict()
    # together the shards are the whole training split the one-process run iterates over
    from spinalnet.data import load_dataset

    train_rows = {r.numpy().tobytes() for r in load_dataset(one.dataset, one.data_options()).train.images.flatten(1)}
    assert rows[0] | rows[1] == train_rows
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    pred = np.load(tmp_path / "run" / "predictions.npz")
    assert len(pred["y_true"]) == 64  # the whole test split, once
    assert round(100.0 * float((pred["y_pred"] == pred["y_true"]).mean()), 4) == result["test_acc"]
    assert single["test_acc"] > 80 and abs(result["test_acc"] - single["test_acc"]) <= 10


def test_sharded_test_predictions_are_put_back_in_dataset_order():
    for n, world in ((7, 2), (10, 3), (8, 2)):
        shards = [list(DistributedSampler(range(n), num_replicas=world, rank=r, shuffle=False)) for r in range(world)]
        gathered = torch.tensor(shards)  # what all_gather returns: (world, per_rank)
        assert interleave_shards(gathered, n).tolist() == list(range(n))
