"""Learning-rate schedules as each run follows them (``lr_curve`` in result.json), and random restarts."""

from __future__ import annotations

import json
import math

import lightning as L
import pytest
import torch

from spinalnet.comparison.compare import compare
from spinalnet.comparison.config import CompareConfig
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.train import train


class FinalLR(L.Callback):
    """The learning rate after the last scheduler step (lr_curve holds each epoch's starting LR)."""

    def on_train_end(self, trainer, pl_module) -> None:
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]


def _train(npz_file, tmp_path, name: str, **options):
    config = TrainConfig(dataset=f"npz:{npz_file}", epochs=4, batch_size=32, lr=0.05, progress=False,
                         output=str(tmp_path / name), **options)
    final = FinalLR()
    result = train(config, run_dir=tmp_path / name, extra_callbacks=[final]).to_dict()
    assert json.loads((tmp_path / name / "result.json").read_text())["lr_curve"] == result["lr_curve"]
    return result["lr_curve"], final.lr


def test_step_lr_multiplies_by_gamma_every_step_size(npz_file, tmp_path):
    curve, _ = _train(npz_file, tmp_path, "step", schedule="step", step_size=2, gamma=0.3)
    assert curve == pytest.approx([0.05, 0.05, 0.015, 0.015])


def test_cosine_follows_the_half_cosine_and_ends_near_zero(npz_file, tmp_path):
    curve, final = _train(npz_file, tmp_path, "cosine", schedule="cosine")
    assert curve == pytest.approx([0.05 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert final < 1e-6


def test_constant_lr_without_a_schedule(npz_file, tmp_path):
    curve, final = _train(npz_file, tmp_path, "none")
    assert curve == [0.05] * 4 and final == 0.05


def test_random_restart_draws_a_new_lr_after_an_epoch_without_improvement(npz_file, tmp_path):
    """With a vanishing LR the validation accuracy cannot improve after the first epoch, so the epoch after
    the second starts from a fresh LR = lr * U^exponent drawn from the run's seeded generator."""
    config = TrainConfig(dataset=f"npz:{npz_file}", epochs=3, batch_size=32, lr=1e-12, progress=False,
                         schedule="random-restart", restart_exponent=5.0, seed=3, output=str(tmp_path / "rr"))
    result = train(config, run_dir=tmp_path / "rr").to_dict()
    assert result["val_acc_curve"][0] == result["val_acc_curve"][1]  # no improvement after epoch 1
    generator = torch.Generator().manual_seed(3)
    u = float(torch.rand((), generator=generator))
    assert result["lr_curve"] == pytest.approx([1e-12, 1e-12, 1e-12 * u**5], rel=1e-9, abs=0)
    assert result["lr_curve"][2] < result["lr_curve"][1]


def test_compare_says_random_restart_schedules_differ_by_design(npz_file, tmp_path):
    lines: list[str] = []
    config = CompareConfig(dataset=f"npz:{npz_file}", seeds=1, epochs=1, batch_size=32, progress=False,
                           schedule="random-restart", output=str(tmp_path / "cmp"))
    results = compare(config, log=lines.append).to_dict()
    assert "differ by design" in results["schedules_differ"]
    assert any(line.startswith("note: random-restart") and "differ by design" in line for line in "\n".join(lines).splitlines())
    plain = compare(CompareConfig(dataset=f"npz:{npz_file}", seeds=1, epochs=1, batch_size=32, progress=False,
                                  output=str(tmp_path / "plain")), log=lambda s: None).to_dict()
    assert plain["schedules_differ"] is None
