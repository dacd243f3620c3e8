"""The fc-vs-Spinal summary and table of a comparison, from per-run results (no framework import).

``spinalnet compare`` (PyTorch) and ``examples/keras_quickdraw.py`` (any Keras backend) print this table.
A run result is a dict with ``head``, ``seed``, ``test_acc``, ``val_acc`` (%), ``params``, ``head_params``,
``train_seconds`` and ``images_per_second``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spinalnet.stats import describe, error_reduction_pct, mean_std, paired_stats
from spinalnet.tables import align

HEADS = ("fc", "spinal")
SCHEDULES_DIFFER = ("random-restart restarts each run's learning rate when its own validation accuracy stalls, "
                    "so the fc and Spinal schedules differ by design (lr_curve in each run's result.json)")


def example_scores(predictions: dict[tuple[str, int], dict | None],
                   seeds: list[int]) -> list[tuple[np.ndarray, np.ndarray]] | None:
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


def format_table(summary: dict[str, Any], title: str, schedule: str | None = None) -> str:
    rows = [["head", "test acc (%)", "+- std", "val acc (%)", "params", "head params", "train s", "img/s"]]
    for head in HEADS:
        if head not in summary:
            continue
        s = summary[head]
        val = [v for v in s["val_acc"] if v is not None]
        rows.append([head, f"{s['test_acc_mean']:.2f}", f"{s['test_acc_std']:.2f}",
                     f"{sum(val) / len(val):.2f}" if val else "-", f"{s['params']:,}", f"{s['head_params']:,}",
                     f"{sum(s['train_seconds']) / len(s['train_seconds']):.1f}", f"{s['images_per_second']:,.0f}"])
    lines = [title, *align(rows)]
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
