"""Numbers that do not depend on how an image folder is read: held in memory or decoded per sample, by 0 or 2
data-loading workers, trained straight through or killed and resumed, a run's curves, weights and test accuracy
are bitwise the same (augmentation is drawn per sample index; see spinalnet.data.augment)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_images
from spinalnet.commands.cli import main

pytestmark = pytest.mark.slow  # each test trains three or four small runs, one in a subprocess
RUN = [sys.executable, "-m", "spinalnet"]


@pytest.fixture
def grey_folder(tmp_path: Path) -> Path:
    """Grey 28 x 28 PNGs of four classes, train/ and test/."""
    root = tmp_path / "shapes"
    for split, n, seed in (("train", 160, 0), ("test", 40, 1)):
        images, labels = make_images(n, classes=4, seed=seed)
        rng = np.random.default_rng(seed)
        images = np.clip(images.astype(int) + rng.integers(-80, 80, images.shape), 0, 255).astype(np.uint8)
        for i, (image, label) in enumerate(zip(images, labels)):
            (root / split / f"class{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / split / f"class{label}" / f"{i}.png")
    return root


def _args(folder: Path, out: Path, workers: int = 2) -> list[str]:
    return ["train", "--dataset", f"folder:{folder}", "--model", "default-cnn", "--epochs", "3", "--batch-size", "16",
            "--lr", "0.02", "--augment", "perspective-rotate", "--num-workers", str(workers), "--output", str(out),
            "--no-progress"]


def _outcome(out: Path) -> tuple:
    result = json.loads((out / "result.json").read_text())
    weights = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    return result["test_acc"], result["test_loss"], result["val_acc_curve"], weights


def _same(a: tuple, b: tuple) -> None:
    assert a[:3] == b[:3]
    assert a[3].keys() == b[3].keys() and all(torch.equal(a[3][k], b[3][k]) for k in a[3])  # bitwise


def test_in_memory_per_sample_and_any_number_of_workers_give_the_same_run(grey_folder, tmp_path, monkeypatch):
    from spinalnet.data import folders

    assert main(_args(grey_folder, tmp_path / "memory")) == 0
    monkeypatch.setattr(folders, "IN_MEMORY_BYTES", 0)  # decoded per sample by DataLoader workers
    assert main(_args(grey_folder, tmp_path / "two", workers=2)) == 0
    assert main(_args(grey_folder, tmp_path / "none", workers=0)) == 0
    memory = _outcome(tmp_path / "memory")
    _same(memory, _outcome(tmp_path / "two"))
    _same(memory, _outcome(tmp_path / "none"))


def test_sigkill_then_resume_is_bitwise_on_a_folder_read_by_two_workers(grey_folder, tmp_path, monkeypatch):
    from spinalnet.data import folders

    monkeypatch.setattr(folders, "IN_MEMORY_BYTES", 0)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(_args(grey_folder, whole)) == 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SPINALNET_IN_MEMORY_BYTES": "0"}
    proc = subprocess.Popen([*RUN, *_args(grey_folder, killed)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    with proc.stdout:  # killed at epoch 2's line: epoch 1's checkpoint is on disk, epoch 2's about to be written
        next((line for line in proc.stdout if line.startswith("epoch 2/3")), None)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (killed / "checkpoints" / "last.ckpt").exists() and not (killed / "result.json").exists()
    assert main([*_args(grey_folder, killed), "--resume"]) == 0
    _same(_outcome(whole), _outcome(killed))


def test_a_damaged_file_read_by_a_worker_is_one_line_naming_it(grey_folder, tmp_path, capsys, monkeypatch):
    from spinalnet.data import folders

    monkeypatch.setattr(folders, "IN_MEMORY_BYTES", 0)
    damaged = sorted((grey_folder / "train" / "class1").iterdir())[3]
    damaged.write_bytes(damaged.read_bytes()[:40])  # its header survives: the probe passes, decoding fails
    assert main(_args(grey_folder, tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"spinalnet: error: {damaged}: not a readable image"), err
