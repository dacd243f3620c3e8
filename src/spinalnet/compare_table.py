"""The fc-vs-Spinal summary and table of a comparison, from per-run results (no framework import).

``spinalnet compare`` (PyTorch) and ``examples/keras_quickdraw.py`` (any Keras backend) print this table.
A run result is a dict with ``head``, ``seed``, ``test_acc``, ``val_acc`` (%), ``params``, ``head_params``,
``train_seconds`` and ``images_per_second``.
"""

from __future__ import annotations

from typing import Any

from spinalnet.tables import align
from spinalnet.stats import error_reduction_pct, mean_std, welch_p_value

HEADS = ("fc", "spinal")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per head: lists over seeds and their mean +- std; overall: error reduction and p-value."""
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
        red = error_reduction_pct(summary["fc"]["test_acc"], summary["spinal"]["test_acc"])
        p = welch_p_value(summary["fc"]["test_acc"], summary["spinal"]["test_acc"])
        summary["error_reduction_pct"] = None if red is None else round(red, 3)
        summary["p_value"] = None if p is None else round(p, 6)
    return summary


def format_table(summary: dict[str, Any], title: str) -> str:
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
    if "error_reduction_pct" in summary:
        red, p = summary["error_reduction_pct"], summary["p_value"]
        n = len(summary["fc"]["test_acc"])
        red_text = "n/a" if red is None else f"{red:+.2f}%"
        p_text = "n/a (needs >= 2 seeds)" if p is None else f"{p:.4f}"
        lines.append(f"error reduction, spinal vs fc: {red_text}   Welch t-test p = {p_text}   ({n} seed(s) per head)")
    return "\n".join(lines)
