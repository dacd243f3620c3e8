"""``spinalnet compare``: the fc head against the Spinal head, same data, order, augmentation and schedule
(except under random-restart, below).

Runs with the same seed are paired (same split, order, augmentation, backbone initialisation); the
statistics in ``results.json`` are those of :mod:`spinalnet.stats` on the per-seed differences.
Under ``--schedule random-restart`` each run restarts its learning rate on its own validation
accuracy, so the two heads' schedules differ by design; compare says so and records each ``lr_curve``.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

import spinalnet
from spinalnet.data import load_dataset
from spinalnet.errors import UsageError
from spinalnet.feature_cache import cache_plan, check_views, feature_splits
from spinalnet.plots import plot_curves, plot_summary
import numpy as np

from spinalnet.stats import describe, error_reduction_pct, mean_std, paired_stats
from spinalnet.training.config import CompareConfig, TrainConfig
from spinalnet.training.run_files import atomic_write_text, read_json, write_json
from spinalnet.training.module import Classifier, data_facts
from spinalnet.training.predictions import PREDICTIONS_FILE, read_predictions
from spinalnet.training.train import RESULT_FILE, data_options, default_run_dir, train

HEADS = ("fc", "spinal")
CSV_COLUMNS = ("head", "seed", "test_acc", "val_acc", "params", "head_params", "epochs", "train_seconds",
               "images_per_second")


def versions() -> dict[str, str]:
    import lightning
    import numpy
    import torchvision

    return {"spinalnet": spinalnet.__version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "lightning": lightning.__version__, "numpy": numpy.__version__,
            "git_commit": git_commit()}


def git_commit() -> str | None:
    """The commit of the checkout this package runs from, ``-dirty`` if the package source differs from it."""
    import subprocess

    package = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=package, capture_output=True, text=True, timeout=10)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", str(package))
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


SCHEDULES_DIFFER = ("random-restart restarts each run's learning rate when its own validation accuracy stalls, "
                    "so the fc and Spinal schedules differ by design (lr_curve in each run's result.json)")


def example_scores(predictions: dict[tuple[str, int], dict | None], seeds: list[int]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Per seed, 100 * (prediction correct) per test example for (fc, spinal); None if any run lacks them
    or the two heads' test examples differ."""
    out = []
    for seed in seeds:
        fc, sp = predictions.get(("fc", seed)), predictions.get(("spinal", seed))
        if fc is None or sp is None or not np.array_equal(fc["y_true"], sp["y_true"]):
            return None
        out.append(tuple(100.0 * (p["y_pred"] == p["y_true"]) for p in (fc, sp)))
    return out


def summarize(runs: list[dict[str, Any]], predictions: dict[tuple[str, int], dict | None] | None = None) -> dict[str, Any]:
    """Per head: lists over seeds and their mean +- std; overall: paired statistics of spinal - fc.

    ``predictions`` maps (head, seed) to that run's ``predictions.npz`` arrays (None where missing).
    """
    summary: dict[str, Any] = {}
    for head in HEADS:
        mine = sorted((r for r in runs if r["head"] == head), key=lambda r: r["seed"])
        if not mine:
            continue
        acc = [r["test_acc"] for r in mine]
        m, s = mean_std(acc)
        summary[head] = {
            "seeds": [r["seed"] for r in mine], "test_acc": acc, "test_acc_mean": round(m, 4),
            "test_acc_std": round(s, 4), "val_acc": [r["val_acc"] for r in mine],
            "params": mine[0]["params"], "head_params": mine[0]["head_params"],
            "train_seconds": [r["train_seconds"] for r in mine],
            "images_per_second": round(sum(r["images_per_second"] for r in mine) / len(mine), 1),
        }
    if all(h in summary for h in HEADS):
        summary.update(paired_summary(summary["fc"], summary["spinal"], predictions or {}))
    return summary


def paired_summary(fc: dict[str, Any], spinal: dict[str, Any],
                   predictions: dict[tuple[str, int], dict | None]) -> dict[str, Any]:
    """The paired statistics of a comparison from its per-head lists (seeds present for both heads)."""
    seeds = [seed for seed in fc["seeds"] if seed in spinal["seeds"]]
    a = [fc["test_acc"][fc["seeds"].index(seed)] for seed in seeds]
    b = [spinal["test_acc"][spinal["seeds"].index(seed)] for seed in seeds]
    red = error_reduction_pct(a, b)
    return {**paired_stats(a, b, example_scores=example_scores(predictions, seeds)).as_dict(),
            "error_reduction_pct": None if red is None else round(red, 3)}


def load_run_predictions(out: Path, heads_seeds: list[tuple[str, int]]) -> dict[tuple[str, int], dict | None]:
    return {(h, s): read_predictions(out / "runs" / f"{h}-seed{s}" / PREDICTIONS_FILE) for h, s in heads_seeds}


def format_table(summary: dict[str, Any], title: str, schedule: str | None = None) -> str:
    lines = [title, f"{'head':<8}{'test acc (%)':>18}{'val acc (%)':>14}{'params':>12}{'head params':>13}"
                    f"{'train s':>10}{'img/s':>10}"]
    for head in HEADS:
        if head not in summary:
            continue
        s = summary[head]
        val = [v for v in s["val_acc"] if v is not None]
        val_text = f"{sum(val) / len(val):.2f}" if val else "-"
        lines.append(f"{head:<8}{s['test_acc_mean']:>11.2f} +- {s['test_acc_std']:<4.2f}{val_text:>13}"
                     f"{s['params']:>12,}{s['head_params']:>13,}{sum(s['train_seconds']) / len(s['train_seconds']):>10.1f}"
                     f"{s['images_per_second']:>10,.0f}")
    if "difference_mean" in summary:
        red = summary["error_reduction_pct"]
        lines.append(describe(summary, "points") + " (paired by seed)")
        wilcoxon = summary["p_value_wilcoxon"]
        power = summary["seeds_for_power"]
        lines.append(f"error reduction, spinal vs fc: {'n/a' if red is None else f'{red:+.2f}%'}; "
                     f"Wilcoxon signed-rank p = {'n/a' if wilcoxon is None else f'{wilcoxon:.2g}'}; "
                     f"seeds for 80% power: {'n/a' if power is None else power}")
        if summary["ci_level"] == "seeds":
            lines.append("the interval resamples seeds only: some runs have no predictions.npz")
    if schedule == "random-restart":
        lines.append("note: " + SCHEDULES_DIFFER)
    return "\n".join(lines)


def write_csv(runs: list[dict[str, Any]], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for run in sorted(runs, key=lambda r: (r["seed"], r["head"])):
        writer.writerow(run)
    atomic_write_text(path, buffer.getvalue())


def _prepare_output(config: CompareConfig) -> Path:
    out = Path(config.output) if config.output else default_run_dir(config)
    if (out / "results.json").exists() and not (config.force or config.resume):
        raise UsageError(f"{out} already holds a finished comparison; pass --force to overwrite it "
                         "or choose another --output")
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK):
        raise UsageError(f"output directory {out} is not writable")
    return out


def compare(config: CompareConfig, log: Callable[[str], None] = print,
            experiment: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train both heads for every seed; write results.json, results.csv, curves.png and summary.png."""
    config.validate()
    splits = load_dataset(config.dataset, data_options(config))  # loaded once, shared by every run
    base = {k: v for k, v in config.to_dict().items() if k in TrainConfig.__dataclass_fields__}
    for head in HEADS:  # impossible model options fail here, before anything is written
        Classifier({**base, "head": head}, data_facts(splits))
    cache_dir, no_cache = cache_plan(config)
    if cache_dir is not None:
        check_views(config, splits)
    out = _prepare_output(config)
    feature_cache: dict[str, Any] = {"used": False, "hit": False, "extract_seconds": None, "images": None,
                                     "key": None}
    if no_cache and config.freeze_backbone:
        log(no_cache)
    if cache_dir is not None:  # every run below trains only its head, on the backbone's cached outputs
        splits, feature_cache = feature_splits(config, splits, cache_dir, log)
    runs: list[dict[str, Any]] = []
    for seed in range(config.seed, config.seed + config.seeds):
        for head in HEADS:
            run_dir = out / "runs" / f"{head}-seed{seed}"
            done = run_dir / RESULT_FILE
            if config.resume and done.is_file() and not config.force:
                log(f"[{head} seed {seed}] finished earlier, kept: {run_dir}")
                runs.append(read_json(done))
                continue
            log(f"[{head} seed {seed}] training {config.model} on {config.dataset} for {config.epochs} epoch(s)")
            run_config = TrainConfig.from_dict({**base, "head": head, "seed": seed, "output": str(run_dir)})
            result = train(run_config, splits, run_dir, force=config.force)
            log(f"[{head} seed {seed}] test accuracy {result['test_acc']:.2f}% "
                f"(val {result['val_acc']:.2f}%, {result['train_seconds']:.1f} s)")
            runs.append(result)
    return write_comparison(out, runs, config, log, experiment, feature_cache)


def write_comparison(out: Path, runs: list[dict[str, Any]], config: CompareConfig, log: Callable[[str], None],
                     experiment: dict[str, Any] | None, feature_cache: dict[str, Any] | None) -> dict[str, Any]:
    """Summarise finished runs into results.json, results.csv, curves.png and summary.png, and print the table."""
    summary = summarize(runs, load_run_predictions(out, [(r["head"], r["seed"]) for r in runs]))
    seeds = len(summary.get("spinal", {}).get("seeds", []))
    title = f"{config.dataset} / {config.model}: {seeds} seed(s) x {config.epochs} epoch(s)"
    results = {
        "dataset": config.dataset, "model": config.model, **summary,
        "feature_cache": feature_cache,
        "schedules_differ": SCHEDULES_DIFFER if config.schedule == "random-restart" else None,
        "config": config.to_dict(), "versions": versions(), "hardware": hardware(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
        "experiment": experiment,
    }
    write_json(out / "results.json", results)
    write_csv(runs, out / "results.csv")
    plot_curves(runs, out / "curves.png", title)
    plot_summary(summary, out / "summary.png", title)
    log("")
    log(format_table(summary, title, config.schedule))
    log(f"wrote {out}/results.json, results.csv, curves.png, summary.png")
    return results


def resummarize(out: Path, experiment: dict[str, Any] | None = None,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Rewrite a comparison's summary from the seeds it has finished for both heads (any seeds, in any order),
    e.g. after an interrupted run, or when runs of one comparison were trained by several processes.

    The options are the runs' own; ``experiment`` defaults to the one in an earlier results.json.
    """
    out = Path(out)
    finished = {(r["head"], r["seed"]): r for r in (read_json(f) for f in sorted(out.glob(f"runs/*/{RESULT_FILE}")))}
    seeds = sorted(s for h, s in finished if h == "spinal" and ("fc", s) in finished)
    if not seeds:
        raise UsageError(f"{out}: no seed has finished runs of both heads under runs/")
    earlier = out / "results.json"
    before = read_json(earlier) if earlier.is_file() else {}
    experiment = experiment if experiment is not None else before.get("experiment")
    run_config = finished[("spinal", seeds[0])]["config"]
    options = {k: v for k, v in run_config.items() if k in CompareConfig.__dataclass_fields__ and k != "head"}
    config = CompareConfig.from_dict({**options, "seed": seeds[0], "seeds": len(seeds), "output": str(out)})
    runs = [finished[(h, s)] for s in seeds for h in HEADS]
    return write_comparison(out, runs, config, log, experiment, before.get("feature_cache"))
