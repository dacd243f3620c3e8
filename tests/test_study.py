"""spinalnet study: settings of comparisons, pooled. End to end through the command line on generated data: the
files it writes, the pooled figures recomputed independently, resume after a kill between settings, shards equal to
the unsharded study, a from: setting pooled unchanged, a dry run that writes nothing, and bad input."""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import make_images
from spinalnet.commands.cli import main

pytestmark = pytest.mark.slow  # small studies of 8 to 12 runs each
RUN = [sys.executable, "-m", "spinalnet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> list[Path]:
    """Three small npz datasets of different difficulty (so the settings differ)."""
    root = tmp_path_factory.mktemp("study-data")
    paths = []
    for k, noise in enumerate((40, 90, 140)):
        x, y = make_images(120, classes=4, size=28, seed=k)
        rng = np.random.default_rng(k)
        x = np.clip(x.astype(int) + rng.integers(-noise, noise, x.shape), 0, 255).astype(np.uint8)
        np.savez(root / f"d{k}.npz", x=x, y=y.astype(np.int64))
        paths.append(root / f"d{k}.npz")
    return paths


def _study(tmp_path: Path, data: list[Path], settings: int = 2, seeds: int = 2, **extra) -> Path:
    config = {"name": "small", "heads": "fc,spinal", "seeds": seeds, "epochs": 1, "batch_size": 32, "lr": 0.05,
              "model": "default-cnn",
              "settings": [{"name": f"s{k}", "dataset": f"npz:{data[k]}"} for k in range(settings)], **extra}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _tree(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_study_writes_its_files_and_pools_what_its_settings_found(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["study", str(_study(tmp_path, data, settings=3)), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("study.json", "study.csv", "study.md", "figures/heatmap.png", "figures/critical-difference.png",
                 "figures/forest-vs-fc.png", *(f"settings/s{k}/results.json" for k in range(3))):
        assert (out / name).is_file(), name
    record = json.loads((out / "study.json").read_text())
    assert record["format"] == 1 and record["arms"] == ["fc", "spinal"] and record["reference"] == "spinal"
    rows = (out / "study.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2 * 2 and rows[0].startswith("setting,arm,seed,test_acc")
    pooled = record["summary"]["pooled"]["fc"]
    assert f"Spinal vs fc (the paper's baseline), pooled over 3 settings: {pooled['difference']:+.2f} points" in printed
    # the pooled figures, recomputed independently: each setting's paired differences and standard error from its
    # per-example predictions (compare's statistic), pooled with statsmodels' Paule-Mandel tau^2 and HKSJ by hand
    from statsmodels.stats.meta_analysis import combine_effects

    from spinalnet.engine.predictions import read_predictions
    from spinalnet.stats import paired_stats

    effects, variances = [], []
    for k in range(3):
        result = json.loads((out / "settings" / f"s{k}" / "results.json").read_text())
        fc, spinal = result["arms"]["fc"]["test_acc"], result["arms"]["spinal"]["test_acc"]
        pred = {(arm, s): read_predictions(out / "settings" / f"s{k}" / "runs" / f"{arm}-seed{s}" / "predictions.npz")
                for arm in ("fc", "spinal") for s in (0, 1)}
        scores = [tuple(100.0 * (pred[(arm, s)]["y_pred"] == pred[(arm, s)]["y_true"]) for arm in ("fc", "spinal"))
                  for s in (0, 1)]
        stats = paired_stats(fc, spinal, example_scores=scores, shared_examples=True)
        effects.append(stats.difference_mean)
        half = (stats.difference_ci95[1] - stats.difference_ci95[0]) / 2
        variances.append((half / 12.706204736174707) ** 2)  # t(0.975, 1 df): two seeds
    combined = combine_effects(np.array(effects), np.array(variances), method_re="pm")
    tau2 = combined.tau2
    w = 1 / (np.array(variances) + tau2)
    mu = float(np.sum(w * np.array(effects)) / np.sum(w))
    q = max(1.0, float(np.sum(w * (np.array(effects) - mu) ** 2)) / 2)
    half = 4.302652729911275 * math.sqrt(q / np.sum(w))  # t(0.975, K - 1 = 2)
    assert pooled["difference"] == pytest.approx(mu, abs=1e-4) and pooled["tau2"] == pytest.approx(tau2, abs=1e-4)
    assert pooled["ci95"] == pytest.approx([mu - half, mu + half], abs=1e-3)
    # a study directory moved elsewhere (or copied to another machine) still reports every setting it ran
    moved = tmp_path / "elsewhere" / "study"
    moved.parent.mkdir()
    out.rename(moved)
    capsys.readouterr()
    assert main(["report", str(moved)]) == 0
    reported = capsys.readouterr().out
    assert "3 of 3 settings finished" in reported and f"{pooled['difference']:+.2f} points" in reported


def test_a_from_setting_is_pooled_as_it_is(data, tmp_path, capsys):
    finished = tmp_path / "earlier"
    assert main(["compare", "--dataset", f"npz:{data[2]}", "--heads", "fc,spinal", "--seeds", "2", "--epochs", "1",
                 "--batch-size", "32", "--lr", "0.05", "--output", str(finished), "--no-progress"]) == 0
    before = _tree(finished)
    config = _study(tmp_path, data, settings=2)
    study = yaml.safe_load(config.read_text())
    study["settings"].append({"name": "earlier", "from": str(finished)})
    config.write_text(yaml.safe_dump(study))
    out = tmp_path / "out"
    assert main(["study", str(config), "--output", str(out)]) == 0
    assert _tree(finished) == before  # nothing retrained or rewritten
    record = json.loads((out / "study.json").read_text())
    original = json.loads((finished / "results.json").read_text())
    assert record["summary"]["settings"]["earlier"]["contrasts"] == original["contrasts"]
    assert record["summary"]["pooled"]["fc"]["settings"] == 3
    earlier = next(s for s in record["settings"] if s["name"] == "earlier")
    assert earlier["directory"] == "../earlier" and earlier["source"] == str(finished.resolve())
    # moved away from the comparison it pools, the study still finds it where it was read from
    moved = tmp_path / "deeper" / "out"
    moved.parent.mkdir()
    out.rename(moved)
    capsys.readouterr()
    assert main(["report", str(moved)]) == 0
    assert "3 of 3 settings finished" in capsys.readouterr().out


def test_shards_of_a_study_equal_the_study(data, tmp_path):
    whole, shared = tmp_path / "whole", tmp_path / "shared"
    config = _study(tmp_path, data, settings=2)
    assert main(["study", str(config), "--output", str(whole)]) == 0
    for k in ("1/2", "2/2"):
        assert main(["study", str(config), "--output", str(shared), "--shard", k]) == 0
    a = json.loads((whole / "study.json").read_text())["summary"]
    b = json.loads((shared / "study.json").read_text())["summary"]
    assert a["pooled"] == b["pooled"] and a["ranking"] == b["ranking"]


def test_resume_after_a_kill_between_settings_keeps_the_finished_one(data, tmp_path):
    out, config = tmp_path / "out", _study(tmp_path, data, settings=2)
    proc = subprocess.Popen([*RUN, "study", str(config), "--output", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    with proc.stdout:
        next((line for line in proc.stdout if line.startswith("== setting 2/2")), None)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    first = _tree(out / "settings" / "s0")
    assert "results.json" in first and not (out / "study.md").exists()
    assert main(["study", str(config), "--output", str(out)]) == 2  # refused without --resume
    assert main(["study", str(config), "--output", str(out), "--resume"]) == 0
    assert _tree(out / "settings" / "s0") == first  # the finished setting was not trained again
    assert (out / "study.md").is_file()


def test_a_dry_run_writes_nothing_and_estimates(data, tmp_path, capsys):
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    env_cache = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(cache)
    try:
        assert main(["study", str(_study(tmp_path, data)), "--output", str(out), "--dry-run"]) == 0
    finally:
        os.environ.pop("XDG_CACHE_HOME") if env_cache is None else os.environ.update(XDG_CACHE_HOME=env_cache)
    printed = capsys.readouterr().out
    assert not out.exists() and not cache.exists()
    assert "1. s0" in printed and "4 runs (2 arms x 2 seeds); 0 done" in printed and "estimated time here" in printed


def test_the_paper_transfer_study_plans_without_its_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SPINALNET_DATA", str(tmp_path / "nodata"))
    assert main(["study", "paper-transfer", "--output", str(tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    assert "wide_resnet101_2" in printed and "cifar10" in printed and "estimated time here" in printed
    assert "missing here" in printed or "data: here" in printed


@pytest.mark.parametrize("change,message", [
    ({"heds": "fc"}, "unknown study key 'heds' (did you mean 'heads'?)"),
    ({"settings": []}, "settings must be a non-empty list"),
    ({"settings": [{"name": "a", "dataset": "npz:X"}, {"name": "a", "dataset": "npz:X"}]}, "two settings are named 'a'"),
    ({"settings": [{"name": "a", "experiment": "fashion-mnist-vgg"}]}, "unknown experiment 'fashion-mnist-vgg'"),
    ({"settings": [{"name": "a", "dataset": "npz:X", "modle": "vgg5"}]}, "did you mean 'model'?"),
    ({"settings": [{"name": "a", "dataset": "npz:X", "model": "vgg-5"}]}, "setting a: unknown model 'vgg-5'"),
    ({"settings": [{"name": "a", "dataset": "npz:X", "model": "timm:tf_efficientnet_lite0",
                    "pretrained": "efficientnet-lite9"}]},
     "setting a: --pretrained efficientnet-lite9: no such weights file, and not a named set of weights "
     "(did you mean 'efficientnet-lite2'?)"),
    ({"settings": [{"name": "a", "dataset": "npz:X", "heads": "fc"}]}, "heads is the study's, not a setting's"),
    ({"settings": [{"name": "a", "from": "NOWHERE"}]}, "from: NOWHERE is not a directory"),
])
def test_bad_studies_are_one_line_and_write_nothing(data, tmp_path, capsys, change, message):
    config = yaml.safe_load(_study(tmp_path, data).read_text())
    config.update(change)
    text = yaml.safe_dump(config).replace("npz:X", f"npz:{data[0]}")
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["study", str(tmp_path / "bad.yaml"), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spinalnet: error:") and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_from_directory_must_be_a_finished_comparison_of_the_study_s_arms(data, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["compare", "--dataset", f"npz:{data[0]}", "--heads", "fc,mlp", "--reference", "mlp", "--seeds", "1",
                 "--epochs", "1", "--output", str(other), "--no-progress"]) == 0
    (tmp_path / "empty").mkdir()
    for source, message in ((tmp_path / "empty", "is not a finished comparison"), (other, "lacks the study's arm(s) spinal")):
        config = yaml.safe_load(_study(tmp_path, data).read_text())
        config["settings"] = [{"name": "x", "from": str(source)}]
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
        capsys.readouterr()
        assert main(["study", str(tmp_path / "bad.yaml"), "--output", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_resumed_study_may_add_seeds_but_not_change_its_arms_or_settings(data, tmp_path, capsys):
    out = tmp_path / "out"
    config = _study(tmp_path, data, settings=1)
    assert main(["study", str(config), "--output", str(out)]) == 0
    summary = (out / "study.json").read_bytes()
    for change, message in (({"heads": "fc,mlp,spinal"}, "it compares fc, spinal against spinal"),
                            ({"seeds": 1}, "with 1 seeds: it has 2"),
                            ({"settings": [{"name": "s0", "dataset": f"npz:{data[1]}"}]}, "its setting s0 was started")):
        changed = yaml.safe_load(config.read_text())
        changed.update(change)
        (tmp_path / "changed.yaml").write_text(yaml.safe_dump(changed))
        capsys.readouterr()
        assert main(["study", str(tmp_path / "changed.yaml"), "--output", str(out), "--resume"]) == 2
        assert message in capsys.readouterr().err
        assert (out / "study.json").read_bytes() == summary


def test_a_setting_that_stops_is_exit_1_and_a_bug_of_ours_is_never_dressed_as_the_user_s(data, tmp_path, capsys,
                                                                                             monkeypatch):
    """A setting's training error is exit 1 with the way to continue; a deploy-check failure (a bug in spinalnet)
    is exit 1 as it is, never exit 2 with a --resume that would only fail again."""
    from spinalnet.errors import ReproductionError, TrainingError
    from spinalnet.study import execute

    def stops(*args, **kwargs):
        raise TrainingError("loss is NaN at epoch 1")

    monkeypatch.setattr(execute, "compare", stops)
    config = _study(tmp_path, data, settings=1, seeds=1)
    assert main(["study", str(config), "--output", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spinalnet: error: setting s0: loss is NaN at epoch 1")
    assert "to continue it: spinalnet study" in err[0] and "--resume" in err[0]

    def bug(*args, **kwargs):
        raise ReproductionError("[fc seed 0] its saved model ... This is a bug in spinalnet; please report it")

    monkeypatch.setattr(execute, "compare", bug)
    assert main(["study", str(config), "--output", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "This is a bug in spinalnet" in err[0] and "--resume" not in err[0]
