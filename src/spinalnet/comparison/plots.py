"""The comparison's pictures: validation curves per epoch, and accuracy / parameters per head."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from spinalnet.plots import COLORS, plt, save_figure


def plot_curves(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for head in ("fc", "spinal"):
        for i, run in enumerate(r for r in runs if r["head"] == head):
            curve = run["val_acc_curve"]
            ax.plot(range(1, len(curve) + 1), curve, color=COLORS[head], alpha=0.8, marker="o", markersize=3,
                    label=f"{head} head" if i == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path, dpi=120, bbox_inches="tight")


def plot_summary(summary: dict[str, Any], path: Path, title: str) -> None:
    heads = [h for h in ("fc", "spinal") if h in summary]
    fig, (acc_ax, par_ax) = plt.subplots(1, 2, figsize=(8.8, 3.6), gridspec_kw={"wspace": 0.35})
    means = [summary[h]["test_acc_mean"] for h in heads]
    stds = [summary[h]["test_acc_std"] for h in heads]
    acc_ax.bar(heads, means, yerr=stds, capsize=6, color=[COLORS[h] for h in heads])
    low = min(m - s for m, s in zip(means, stds))
    acc_ax.set_ylim(max(0.0, low - 2 * (max(stds) + 0.5)), min(100.0, max(means) + 2 * (max(stds) + 0.5)))
    acc_ax.set_ylabel("test accuracy (%), mean +- std")
    for x, m in enumerate(means):
        acc_ax.text(x, m, f"{m:.2f}", ha="center", va="bottom")
    width = 0.38
    xs = range(len(heads))
    par_ax.bar([x - width / 2 for x in xs], [summary[h]["params"] for h in heads], width, label="total",
               color=[COLORS[h] for h in heads])
    par_ax.bar([x + width / 2 for x in xs], [summary[h]["head_params"] for h in heads], width, label="head",
               color=[COLORS[h] for h in heads], alpha=0.5, hatch="//")
    par_ax.set_xticks(list(xs), heads)
    par_ax.set_ylabel("parameters")
    par_ax.legend()
    fig.suptitle(title)
    save_figure(fig, path, dpi=120, bbox_inches="tight")
