"""Every arm's run with the same seed trains on exactly the same batches: same examples, same order, same
augmentation (hashed after augmentation, as the model receives them), same labels."""

from __future__ import annotations

import hashlib

import lightning as L
import pytest
import torch

from spinalnet.engine.config import TrainConfig
from spinalnet.engine.train import train


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


class BatchHashes(L.Callback):
    """The hash of every training batch: the model's input (after augmentation) and the labels."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, str]] = []
        self._labels = ""

    def on_fit_start(self, trainer, pl_module) -> None:
        def hook(module, args):
            if module.training:
                self.batches.append((_digest(args[0]), self._labels))
        self._handle = pl_module.model.register_forward_pre_hook(hook)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._labels = _digest(batch[1])

    def on_fit_end(self, trainer, pl_module) -> None:
        self._handle.remove()


def _hashes(npz_file, tmp_path, head: str, seed: int) -> list[tuple[str, str]]:
    where = tmp_path / f"{head.replace(':', '_')}{seed}"
    config = TrainConfig(dataset=f"npz:{npz_file}", head=head, seed=seed, epochs=2, batch_size=32,
                         augment="perspective-rotate", progress=False, output=str(where))
    hashes = BatchHashes()
    train(config, run_dir=where, extra_callbacks=[hashes])
    return hashes.batches


ARMS = ("fc", "linear", "mlp", "mlp2", "spinal", "fc:dropout=0", "spinal:layer_width=4,dropout=0.3")


@pytest.mark.slow
def test_every_arm_with_the_same_seed_sees_identical_augmented_batches(npz_file, tmp_path):
    fc = _hashes(npz_file, tmp_path, "fc", 0)
    assert len(fc) == 2 * 7  # every training batch of both epochs: (320 - 64 test - 32 validation) / 32
    for arm in ARMS[1:]:
        assert _hashes(npz_file, tmp_path, arm, 0) == fc, arm  # batch by batch
    assert len(set(fc)) == len(fc)  # batches differ between steps and epochs: the hash sees them
    other = _hashes(npz_file, tmp_path, "fc", 1)
    assert all(a != b for a, b in zip(fc, other))  # another seed: other order and augmentation
