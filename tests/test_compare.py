"""compare / train / eval end to end on generated data, in seconds; CLI exit codes and files."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spinalnet.commands.cli import main
from spinalnet.comparison.compare import compare
from spinalnet.comparison.config import CompareConfig
from spinalnet.engine.predictions import read_predictions

FAST = ["--epochs", "2", "--batch-size", "32", "--no-progress", "--lr", "0.05"]


@pytest.mark.slow
def test_compare_end_to_end_writes_every_file(npz_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--model", "default-cnn", "--seeds", "2",
                 "--output", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["format"] == 3 and list(results["arms"]) == ["fc", "mlp", "spinal"]
    assert results["reference"] == "spinal" and [c["arm"] for c in results["contrasts"]] == ["fc", "mlp"]
    for contrast in results["contrasts"]:
        assert f"Spinal vs {contrast['arm']} ({contrast['label']}): {contrast['difference_mean']:+.2f} points" in printed
        assert f"better in {contrast['better_in']} of 2 seeds" in printed
    assert "schedules differ" not in printed and results["schedules_differ"] is None
    for head in ("fc", "mlp", "spinal"):
        r = results["arms"][head]
        assert len(r["test_acc"]) == 2 and len(r["train_seconds"]) == 2 and len(r["val_acc"]) == 2
        assert r["params"] > r["head_params"] and r["head"]["init"] == "pytorch-default" and r["head"]["layers"]
    assert results["arms"]["spinal"]["head_params"] < results["arms"]["fc"]["head_params"]
    assert results["arms"]["mlp"]["head"]["shape"] in printed  # the matched MLP's width is in the table
    fc_err = 100 - sum(results["arms"]["fc"]["test_acc"]) / 2
    sp_err = 100 - sum(results["arms"]["spinal"]["test_acc"]) / 2
    fc_contrast = results["contrasts"][0]
    if fc_err > 0:
        assert fc_contrast["error_reduction_pct"] == pytest.approx(100 * (fc_err - sp_err) / fc_err, abs=1e-2)
    else:  # no baseline error to reduce
        assert fc_contrast["error_reduction_pct"] is None
    assert results["config"]["seeds"] == 2 and results["versions"]["torch"] and results["hardware"]["cpu_count"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 6 and {r["arm"] for r in rows} == {"fc", "mlp", "spinal"}
    for png in ("curves.png", "summary.png", "contrasts.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the tiny task is learnable: every arm beats chance (25%) clearly
    assert min(v for arm in results["arms"].values() for v in arm["test_acc"]) > 50


@pytest.mark.slow
def test_two_arms_keep_the_two_head_wording(npz_file, tmp_path, capsys):
    out = tmp_path / "two"
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--heads", "fc,spinal", "--seeds", "2",
                 "--output", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    c = json.loads((out / "results.json").read_text())["contrasts"][0]
    assert f"Spinal {c['difference_mean']:+.2f} points" in printed and "(paired by seed)" in printed
    assert "error reduction, spinal vs fc: " in printed and "Spinal vs fc" not in printed


@pytest.mark.slow
def test_paired_statistics_are_recomputable_from_results_and_predictions(npz_file, tmp_path):
    """Every statistic in results.json follows from its per-seed lists (and the runs' predictions.npz),
    computed here from those files with scipy: the interval from the per-example differences."""
    from scipy import stats as sps

    from spinalnet.stats import seeds_for_power

    out = tmp_path / "cmp"
    compare(CompareConfig(dataset=f"npz:{npz_file}", heads=["fc", "spinal"], seeds=3, epochs=1, batch_size=32,
                          lr=0.05, progress=False, output=str(out)), log=lambda s: None)
    results = json.loads((out / "results.json").read_text())
    (contrast,) = results["contrasts"]
    fc, sp = np.array(results["arms"]["fc"]["test_acc"]), np.array(results["arms"]["spinal"]["test_acc"])
    d = sp - fc
    assert contrast["difference_mean"] == pytest.approx(d.mean(), abs=1e-6)
    if np.any(d != 0):
        assert contrast["p_value_wilcoxon"] == pytest.approx(sps.wilcoxon(d, method="exact").pvalue, abs=1e-6)
    assert contrast["prob_improvement"] == pytest.approx(np.mean((d > 0) + 0.5 * (d == 0)), abs=1e-6)
    assert contrast["seeds_for_power"] == seeds_for_power(d)
    per_example = []
    for seed in range(3):
        pred = {h: read_predictions(out / "runs" / f"{h}-seed{seed}" / "predictions.npz") for h in ("fc", "spinal")}
        assert np.array_equal(pred["fc"]["y_true"], pred["spinal"]["y_true"])  # the same test examples
        correct = {h: 100.0 * (p["y_pred"] == p["y_true"]) for h, p in pred.items()}
        assert correct["fc"].mean() == pytest.approx(fc[seed], abs=1e-4)
        per_example.append(correct["spinal"] - correct["fc"])
    # the interval: t over seeds with the standard error of the seeds plus that of the shared test examples
    se = np.sqrt(d.var(ddof=1) / 3 + np.mean(per_example, axis=0).var(ddof=1) / len(per_example[0]))
    assert contrast["ci_level"] == "seeds and test examples"
    if se > 0:
        half = sps.t.ppf(0.975, 2) * se
        assert contrast["difference_ci95"] == pytest.approx([d.mean() - half, d.mean() + half], abs=1e-6)
        assert contrast["p_value"] == pytest.approx(2 * sps.t.sf(abs(d.mean()) / se, 2), abs=1e-6)


def test_heads_see_identical_data_and_p_value_is_null_with_one_seed(npz_file, tmp_path):
    config = CompareConfig(dataset=f"npz:{npz_file}", seeds=1, epochs=1, batch_size=32, progress=False,
                           output=str(tmp_path / "one"))
    results = compare(config, log=lambda s: None)
    assert all(c.p_value is None and c.difference_ci95 is None for c in results.contrasts)
    runs = [json.loads((tmp_path / "one" / "runs" / f"{h}-seed0" / "result.json").read_text())
            for h in ("fc", "mlp", "spinal")]
    assert {r["config"]["seed"] for r in runs} == {0}
    others = [{k: v for k, v in r["config"].items() if k not in ("head", "output")} for r in runs]
    assert others[0] == others[1] == others[2]


def test_finished_comparison_is_not_overwritten(npz_file, tmp_path, capsys):
    out = tmp_path / "keep"
    args = ["compare", "--dataset", f"npz:{npz_file}", "--seeds", "1", "--output", str(out), "--epochs", "1",
            "--no-progress"]
    assert main(args) == 0
    before = (out / "results.json").read_bytes()
    assert main(args) == 2
    assert "already holds a finished compare run; pass --resume to continue it, --force" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before
    # --resume on a results.json of valid JSON but another shape gave a TypeError or KeyError traceback
    for damage in ("[]", "{}", '{"config": 3}'):
        (out / "results.json").write_text(damage)
        tree = sorted(p.as_posix() for p in out.rglob("*"))
        assert main([*args, "--resume"]) == 2
        err = capsys.readouterr().err
        assert err == (f"spinalnet: error: {out / 'results.json'}: not a comparison summary written by spinalnet; "
                       "restore it or move it away, then run again\n")
        assert sorted(p.as_posix() for p in out.rglob("*")) == tree


def test_train_then_eval_checkpoint(npz_file, tmp_path, capsys):
    out = tmp_path / "train"
    assert main(["train", "--dataset", f"npz:{npz_file}", "--head", "spinal", "--output", str(out), *FAST,
                 "--save-logits"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert (out / "checkpoints" / "best.ckpt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert (out / "metrics.csv").is_file() and len(result["val_acc_curve"]) == 2
    with np.load(out / "predictions.npz") as pred:  # a run alone keeps its labels; its classes in one byte each
        assert pred["logits"].dtype == np.float32 and pred["logits"].shape == (64, 4)
        assert pred["y_pred"].dtype == np.uint8 and pred["y_true"].dtype == np.uint8
        assert (pred["y_pred"] == pred["logits"].argmax(1)).all()
        assert round(100.0 * float((pred["y_pred"] == pred["y_true"]).mean()), 4) == result["test_acc"]
    assert not list(out.glob(".predictions.npz.*"))  # written atomically: no temporary file left
    capsys.readouterr()
    assert main(["eval", str(out / "checkpoints" / "best.ckpt"), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(result["test_acc"], abs=1e-3)
    assert evaluated["samples"] == 64 and evaluated["head"] == "spinal"


def test_yaml_config_and_command_line_precedence(npz_file, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"dataset: npz:{npz_file}\nmodel: default-cnn\nepochs: 1\nbatch-size: 16\nhead: fc\n"
                   "optimizer: adam\nlr: 0.001\nprogress: false\n")
    out = tmp_path / "yaml"
    assert main(["train", "--config", str(cfg), "--head", "spinal", "--output", str(out)]) == 0
    config = json.loads((out / "result.json").read_text())["config"]
    assert (config["head"], config["batch_size"], config["optimizer"], config["epochs"]) == ("spinal", 16, "adam", 1)


def _one_cycle_lr(lr: float, step: int, total: int) -> float:
    """OneCycleLR with torch's defaults: from lr/25 up to lr over the first 30 % of the steps, then down to
    lr/25/1e4, each half of a cosine."""
    start, low, peak = lr / 25, lr / 25 / 1e4, 0.3 * total - 1
    if step <= peak:
        return lr + (start - lr) / 2 * (1 + math.cos(math.pi * step / peak))
    return low + (lr - low) / 2 * (1 + math.cos(math.pi * (step - peak) / (total - 1 - peak)))


def _random_restart_lrs(lr: float, seed: int, val_acc: list[float], exponent: float = 3.0) -> list[float]:
    """The paper's rule: the LR stays until an epoch's validation accuracy is no better than the best so far,
    then the next epoch starts at lr * U^exponent, U drawn from the run's seeded generator."""
    import torch

    generator, best, lrs = torch.Generator().manual_seed(seed), -1.0, [lr]
    for acc in val_acc[:-1]:
        improved, best = acc > best, max(best, acc)
        lrs.append(lrs[-1] if improved else lr * float(torch.rand((), generator=generator)) ** exponent)
    return lrs


#: each schedule's LR at the start of epoch e of E (3 optimiser steps an epoch: --limit-batches 3)
SCHEDULE_LRS = {
    "step": lambda lr, e, epochs: lr * 0.5**e,  # --step-size 1 --gamma 0.5
    "cosine": lambda lr, e, epochs: lr * (1 + math.cos(math.pi * e / epochs)) / 2,
    "onecycle": lambda lr, e, epochs: _one_cycle_lr(lr, 3 * e, 3 * epochs),
}


@pytest.mark.parametrize("schedule", ["step", "cosine", "onecycle", "random-restart"])
def test_each_schedule_s_lr_curve_follows_its_formula(npz_file, tmp_path, schedule):
    """The LR each epoch started with (lr_curve in result.json), from the command line's options."""
    out = tmp_path / schedule
    assert main(["train", "--dataset", f"npz:{npz_file}", "--schedule", schedule, "--step-size", "1", "--gamma", "0.5",
                 "--epochs", "3", "--limit-batches", "3", "--batch-size", "32", "--lr", "0.05", "--no-progress",
                 "--output", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    if schedule == "random-restart":
        expected = _random_restart_lrs(0.05, 0, result["val_acc_curve"])
    else:
        expected = [SCHEDULE_LRS[schedule](0.05, e, 3) for e in range(3)]
    assert result["lr_curve"] == pytest.approx(expected, rel=1e-6)


def test_resume_continues_from_last_checkpoint(npz_file, tmp_path):
    out = tmp_path / "resume"
    base = ["train", "--dataset", f"npz:{npz_file}", "--output", str(out), "--no-progress", "--batch-size", "32"]
    assert main([*base, "--epochs", "1"]) == 0
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["epochs"] == 2 and len(result["val_acc_curve"]) == 2


@pytest.mark.parametrize("args,message,own_process", [
    (["compare", "--dataset", "fasion-mnist"], "unknown dataset 'fasion-mnist' (did you mean 'fashion-mnist'?)", False),
    (["compare", "--model", "vgg-5", "--dataset", "npz:{npz}"], "unknown model 'vgg-5' (did you mean 'vgg5'?)", False),
    (["train", "--epochs", "0"], "--epochs must be >= 1, got 0", False),
    (["compare", "--seeds", "0"], "--seeds must be >= 1, got 0", False),
    (["train", "--batch-size", "-4"], "--batch-size must be >= 1, got -4", False),
    # a Python of its own: the download directory it also looks in is read from SPINALNET_DATA at import
    pytest.param(["train", "--dataset", "mnist", "--data-dir", "{tmp}/nothing"], "dataset 'mnist' not found; looked in",
                 True, marks=pytest.mark.slow),
    (["train", "--config", "{tmp}/missing.yaml"], "config file", False),
    (["eval", "{tmp}/none.ckpt"], "checkpoint", False),
])
def test_cli_errors_are_one_line_with_exit_code_2(args, message, own_process, npz_file, tmp_path, monkeypatch, capsys):
    """In this process unless the case needs a new one: the command line is main(); `python -m spinalnet` ending
    with main's code is checked here for one case, and by tests/test_bad_input.py."""
    args = [a.format(npz=npz_file, tmp=tmp_path) for a in args]
    args += ["--output", str(tmp_path / "o")] if args[0] != "eval" else []
    monkeypatch.chdir(tmp_path)
    if own_process:
        env = {**os.environ, "SPINALNET_DATA": str(tmp_path / "cache")}
        done = subprocess.run([sys.executable, "-m", "spinalnet", *args], capture_output=True, text=True, env=env)
        code, err = done.returncode, done.stderr
    else:
        code, err = main(args), capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("spinalnet: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_unknown_yaml_key_suggests(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epoch: 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown option 'epoch' (did you mean 'epochs'?)" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(npz_file, tmp_path):
    out = tmp_path / "ddp"
    done = subprocess.run([sys.executable, "-m", "spinalnet", "train", "--dataset", f"npz:{npz_file}",
                           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--output", str(out),
                           "--epochs", "1", "--batch-size", "16", "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["epochs"] == 1
    assert done.stdout.count("epoch 1/1: train loss") == 1 and done.stdout.count("head: test accuracy") == 1


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
def test_compare_on_real_fashion_mnist(tmp_path):
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        # CI installs the Debian package: its absence is a failure there (but in its bare-machine pass, which
        # hides the system datasets on purpose: make test-bare)
        if os.environ.get("CI") == "true" and os.environ.get("SPINALNET_BARE_MACHINE") != "1":
            pytest.fail(f"{FASHION} is missing: the Debian package dataset-fashion-mnist was not installed")
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    config = CompareConfig(dataset="fashion-mnist", model="default-cnn", seeds=1, epochs=1, limit_batches=0.25,
                           progress=False, output=str(tmp_path / "fm"))
    results = compare(config, log=lambda s: None)
    assert min(results.arms[a].test_acc[0] for a in ("fc", "mlp", "spinal")) > 60
    assert results.arms["spinal"].head_params == 8538 and results.arms["mlp"].head_params == 8616


@pytest.mark.slow
def test_resume_with_fewer_seeds_epochs_or_arms_is_refused_and_the_summary_kept(npz_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    base = ["compare", "--dataset", f"npz:{npz_file}", "--model", "default-cnn", "--output", str(out),
            "--batch-size", "32", "--no-progress", "--lr", "0.05", "--heads", "fc,spinal"]
    assert main([*base, "--seeds", "2", "--epochs", "2"]) == 0
    summary = (out / "results.json").read_bytes()
    capsys.readouterr()
    for fewer, message in ((["--seeds", "1", "--epochs", "2"], "with --seeds 1: it has 2 seeds"),
                           (["--seeds", "2", "--epochs", "1"], "with --epochs 1: it has 2 epochs"),
                           (["--seeds", "2", "--epochs", "2", "--heads", "spinal"], "without its arm(s) fc")):
        assert main([*base, *fewer, "--resume"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("spinalnet: error: cannot resume") and message in err, err
        assert (out / "results.json").read_bytes() == summary
    assert main([*base, "--seeds", "2", "--epochs", "2", "--resume"]) == 0  # the same grid: reported again
    assert (out / "results.json").read_bytes() == summary


def test_a_comparison_without_a_spinal_reference_says_so_everywhere(npz_file, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", f"npz:{npz_file}", "--model", "default-cnn", "--output", str(out),
                 "--heads", "mlp,linear", "--seeds", "2", "--epochs", "1", "--batch-size", "32", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    linear = json.loads((out / "results.json").read_text())["arms"]["linear"]
    assert f"model: default-cnn, head linear: {linear['params']:,} parameters" in printed  # the plan's model
    assert "linear vs mlp (the Spinal head's size):" in printed  # the mlp is sized as a Spinal head, not as linear
    table = tmp_path / "table.md"
    assert main(["report", str(out), "--output", str(table)]) == 0
    lines = table.read_text().splitlines()
    header = [c.strip() for c in lines[lines.index("<!-- report -->") + 1].strip("|").split("|")]
    row = next(line for line in lines if "`" in line and str(out.name) in line)
    cells = dict(zip(header, (c.strip() for c in row.strip("|").split("|"))))
    assert "measured: Spinal" not in cells  # empty in every row: left out
    assert cells["does the Spinal head help?"] == "no answer: the reference arm linear is not a Spinal head"


@pytest.mark.slow
def test_compacting_a_comparison_of_the_earlier_layout_keeps_every_statistic(tmp_path):
    """docs/results was compacted with compact_comparison: each run's labels, classes and logits in int64 and
    float32 (the earlier layout) become the classes in one byte and the labels once, and the summary made from them
    (means, paired differences, intervals, p-values) is the same."""
    from spinalnet.comparison.summary import write_summary
    from spinalnet.engine.predictions import LABELS_FILE, compact_comparison

    from conftest import make_images

    x, y = make_images(320, classes=4, size=28)
    rng = np.random.default_rng(0)
    noisy = rng.random(len(y)) < 0.3  # some labels random, so that the seeds differ and the tests have a spread
    y[noisy] = rng.integers(0, 4, int(noisy.sum()))
    np.savez(tmp_path / "noisy.npz", x=x, y=y.astype(np.int64))
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", f"npz:{tmp_path / 'noisy.npz'}", "--heads", "fc,spinal", "--seeds", "3",
                 "--output", str(out), *FAST, "--lr", "0.002"]) == 0  # a low rate: runs not yet at the same place
    runs = sorted(out.glob("runs/*/predictions.npz"))
    for path in runs:  # the earlier layout: labels and logits in every run, int64 classes
        arrays = read_predictions(path)
        logits = rng.normal(size=(len(arrays["y_pred"]), 4)).astype(np.float32)
        logits[np.arange(len(logits)), arrays["y_pred"]] += 10.0
        np.savez_compressed(path, y_true=arrays["y_true"], y_pred=arrays["y_pred"], logits=logits)
    (out / LABELS_FILE).unlink()
    legacy = {path: read_predictions(path) for path in runs}
    before = json.loads(json.dumps(write_summary(out, log=lambda *_: None).to_dict()))
    size_before, size_after = compact_comparison(out)
    assert size_after < size_before / 3
    for path in runs:
        with np.load(path) as stored:
            assert sorted(stored.files) == ["y_pred"] and stored["y_pred"].dtype == np.uint8
        compacted = read_predictions(path)
        assert np.array_equal(compacted["y_true"], legacy[path]["y_true"])
        assert np.array_equal(compacted["y_pred"], legacy[path]["y_pred"])
    after = json.loads(json.dumps(write_summary(out, log=lambda *_: None).to_dict()))
    assert after["arms"] == before["arms"] and after["contrasts"] == before["contrasts"]
    assert after["contrasts"][0]["p_value"] is not None
