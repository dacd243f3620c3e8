"""Heads trained together on cached features (spinalnet.engine.batched) against the same runs trained one by one
through the engine: the same numbers per run, the same files, the same tuning choice; and a group continues
from its last saved epoch."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from spinalnet.commands.cli import main
from spinalnet.comparison.compare import compare
from spinalnet.engine.predictions import read_predictions
from spinalnet.comparison.config import CompareConfig
from spinalnet.engine.config import TrainConfig
from spinalnet.engine.optimisers import make_optimizer, make_schedule
from spinalnet.engine.stacked_optim import run_optimizer

LITE0 = "timm:tf_efficientnet_lite0"
FAST = dict(epochs=3, batch_size=32, lr=0.05, progress=False, seeds=2)




def _config(npz_file: Path, lite0: Path, tmp_path: Path, name: str, **extra) -> CompareConfig:
    options = {**FAST, "feature_cache": str(tmp_path / "cache"), **extra}
    return CompareConfig(dataset=f"npz:{npz_file}", model=LITE0, pretrained=str(lite0), freeze_backbone=True,
                         image_size=32, layer_width=16, output=str(tmp_path / name), **options)


def _runs(out: Path) -> dict[str, dict]:
    return {d.name: json.loads((d / "result.json").read_text()) for d in sorted((out / "runs").iterdir())}


@pytest.mark.slow
def test_runs_trained_together_equal_runs_trained_one_by_one(npz_file, lite0, tmp_path):
    """Same initialisation, batches, optimiser and schedule: without dropout, the same curves and accuracies
    (the products are batched, so equal to float rounding: here to the last digit on 26 validation images)."""
    heads = ["fc", "linear", "mlp", "mlp2", "spinal", "spinal:batch_norm=true"]
    tune = {"lr": [0.01, 0.05]}
    together = compare(_config(npz_file, lite0, tmp_path, "together", heads=heads, tune=tune, schedule="step",
                               step_size=2, momentum=0.5), log=lambda s: None).to_dict()
    alone = compare(_config(npz_file, lite0, tmp_path, "alone", heads=heads, tune=tune, schedule="step", step_size=2,
                            momentum=0.5, batch_heads=False), log=lambda s: None).to_dict()
    a, b = _runs(tmp_path / "together"), _runs(tmp_path / "alone")
    assert a.keys() == b.keys() and len(a) == 6 * 2 * 2
    for name in a:
        assert a[name]["lr_curve"] == b[name]["lr_curve"], name  # each run's own schedule
        assert np.allclose(a[name]["val_acc_curve"], b[name]["val_acc_curve"], atol=100 / 26 + 1e-6), name
        assert a[name]["tested"] == b[name]["tested"]
        if a[name]["tested"]:
            assert abs(a[name]["test_acc"] - b[name]["test_acc"]) <= 100 / 64 + 1e-6, name
        assert a[name]["params"] == b[name]["params"] and a[name]["head_params"] == b[name]["head_params"], name
        assert a[name]["head_info"]["layers"] == b[name]["head_info"]["layers"]
    assert together["tune"] == alone["tune"]  # the same choice on validation
    exact = sum(a[n]["val_acc_curve"] == b[n]["val_acc_curve"] for n in a)
    assert exact >= len(a) - 2, f"only {exact} of {len(a)} runs have the very same validation curve"


@pytest.mark.slow
def test_runs_trained_together_leave_the_engine_s_files(npz_file, lite0, tmp_path):
    compare(_config(npz_file, lite0, tmp_path, "files", heads=["fc", "spinal:dropout=0.2"]), log=lambda s: None)
    run = tmp_path / "files" / "runs" / "spinal_dropout=0.2-seed1"
    result = json.loads((run / "result.json").read_text())
    assert result["format"] == 3 and result["tested"] and result["epochs"] == 3 and len(result["val_acc_curve"]) == 3
    assert result["trained"].startswith("together with")
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] and all(r["val_acc"] and r["train_loss"] for r in rows)
    for which in ("best", "last"):  # Lightning's own checkpoint layout, written by Lightning
        saved = torch.load(run / "checkpoints" / f"{which}.ckpt", map_location="cpu", weights_only=True)
        assert {"epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "callbacks",
                "hyper_parameters"} <= saved.keys()
        assert ("batched" in saved) == (which == "last") and saved["hyper_parameters"]["config"]["seed"] == 1
    pred = read_predictions(run / "predictions.npz")  # its labels are kept once, in the comparison's labels.npz
    assert round(100.0 * float((pred["y_pred"] == pred["y_true"]).mean()), 4) == result["test_acc"]
    best = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)
    assert set(best["hyper_parameters"]) == {"config", "facts"} and best["hyper_parameters"]["facts"]["features"]
    assert all(k.startswith("model.head.") for k in best["state_dict"])
    from spinalnet.engine.checkpoints import load_run_module

    module = load_run_module(run / "checkpoints" / "best.ckpt")  # the engine reads what the batched path wrote
    assert module.model.head.dropout == 0.2


@pytest.mark.slow
def test_dropout_runs_are_deterministic_whoever_they_train_with(npz_file, lite0, tmp_path):
    """Each run draws its masks from its own generator: alone or beside other seeds, the same numbers."""
    both = compare(_config(npz_file, lite0, tmp_path, "both", heads=["spinal:dropout=0.3"]), log=lambda s: None).to_dict()
    one = compare(_config(npz_file, lite0, tmp_path, "one", heads=["spinal:dropout=0.3"], seeds=1),
                  log=lambda s: None).to_dict()
    first = lambda out: _runs(out)["spinal_dropout=0.3-seed0"]  # noqa: E731
    assert first(tmp_path / "both")["val_acc_curve"] == first(tmp_path / "one")["val_acc_curve"]
    assert both["arms"]["spinal:dropout=0.3"]["test_acc"][0] == one["arms"]["spinal:dropout=0.3"]["test_acc"][0]


@pytest.mark.slow
def test_a_group_continues_from_its_last_saved_epoch(npz_file, lite0, tmp_path):
    heads = ["fc", "spinal:batch_norm=true"]
    whole = compare(_config(npz_file, lite0, tmp_path, "whole", heads=heads, optimizer="adam", lr=0.01),
                    log=lambda s: None).to_dict()
    part = _config(npz_file, lite0, tmp_path, "part", heads=heads, optimizer="adam", lr=0.01, epochs=2)
    compare(part, log=lambda s: None)
    for run in (tmp_path / "part" / "runs").iterdir():  # as if stopped after epoch 2 of 3
        (run / "result.json").unlink()
    (tmp_path / "part" / "results.json").unlink()
    resumed = compare(_config(npz_file, lite0, tmp_path, "part", heads=heads, optimizer="adam", lr=0.01, resume=True),
                      log=lambda s: None).to_dict()
    a, b = _runs(tmp_path / "whole"), _runs(tmp_path / "part")
    for name in a:
        assert a[name]["val_acc_curve"] == b[name]["val_acc_curve"] and a[name]["lr_curve"] == b[name]["lr_curve"]
        assert a[name]["test_acc"] == b[name]["test_acc"], name
    assert resumed["arms"]["fc"]["test_acc"] == whole["arms"]["fc"]["test_acc"]


@pytest.mark.slow
def test_jobs_and_shards_keep_working_on_cached_features(npz_file, lite0, tmp_path, capsys):
    common = ["compare", "--dataset", f"npz:{npz_file}", "--model", LITE0, "--pretrained", str(lite0),
              "--freeze-backbone", "--image-size", "32", "--layer-width", "16", "--epochs", "1", "--seeds", "2",
              "--batch-size", "32", "--feature-cache", str(tmp_path / "cache"), "--no-progress"]
    for k in ("1/2", "2/2"):
        assert main([*common, "--shard", k, "--output", str(tmp_path / "s")]) == 0
    assert main([*common, "--output", str(tmp_path / "w")]) == 0
    assert _runs(tmp_path / "s").keys() == _runs(tmp_path / "w").keys()
    assert {k: v["test_acc"] for k, v in _runs(tmp_path / "s").items()} == \
           {k: v["test_acc"] for k, v in _runs(tmp_path / "w").items()}
    capsys.readouterr()
    assert main([*common, "--jobs", "2", "--output", str(tmp_path / "j")]) == 0
    assert "--jobs 2: the runs on cached features train together in this process" in capsys.readouterr().out


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_run_s_schedule_is_pytorch_s_and_steps_without_its_order_warning(optimizer):
    """The stand-in optimizer that carries a run's schedule steps once, changing nothing: PyTorch's "scheduler
    stepped before the optimizer" warning stays quiet, and the learning rates and momenta are the scheduler's."""
    config = TrainConfig(optimizer=optimizer, schedule="onecycle", lr=0.1, epochs=2)
    stand_in, schedule = run_optimizer(config, 10)
    reference = make_optimizer(config, [torch.zeros(1, requires_grad=True)])
    reference_schedule = make_schedule(config, reference, 10)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(10):
            expected = {**reference.param_groups[0], "params": stand_in.param_groups[0]["params"]}
            assert stand_in.param_groups[0] == expected
            reference.step()
            reference_schedule.step()
            schedule.step()
    assert not stand_in.state and not stand_in.param_groups[0]["params"][0].any()  # its step changed nothing
