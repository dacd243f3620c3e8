"""The comparison's pictures: validation curves per epoch, accuracy and parameters per arm, and a forest plot
of the paired contrasts with their intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from spinalnet.plots import COLORS, plt, save_figure

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD"]


def arm_colors(names: list[str]) -> dict[str, str]:
    """fc and spinal keep their colours of the two-head plots; other arms take the palette in order."""
    rest = iter(c for c in PALETTE if c not in COLORS.values())
    return {name: COLORS.get(name) or next(rest, "#333333") for name in names}


def plot_curves(runs: dict[str, list[Any]], path: Path, title: str) -> None:
    """Every run's validation accuracy per epoch (``runs``: per arm, its :class:`RunResult` s)."""
    colors = arm_colors(list(runs))
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for arm, found in runs.items():
        for i, run in enumerate(found):
            curve = run.val_acc_curve
            ax.plot(range(1, len(curve) + 1), curve, color=colors[arm], alpha=0.8, marker="o", markersize=3,
                    label=arm if i == 0 else None)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=120, bbox_inches="tight")


def plot_summary(summary: Any, path: Path, title: str) -> None:
    """Test accuracy (mean +- std) and parameters (total and head) per arm; the value labels sit above the
    error bars, not on them. Parameters on a log axis, each bar labelled: a head of 12,810 parameters beside a
    backbone of 3.4 million stays visible."""
    arms = list(summary.arms)
    colors = arm_colors(arms)
    stats = [summary.arms[a] for a in arms]
    means, stds = [s.test_acc_mean for s in stats], [s.test_acc_std for s in stats]
    fig, (acc_ax, par_ax) = plt.subplots(1, 2, figsize=(4.4 + 1.6 * len(arms), 3.8), gridspec_kw={"wspace": 0.35})
    xs = range(len(arms))
    acc_ax.bar(xs, means, yerr=stds, capsize=6, color=[colors[a] for a in arms])
    margin = max(stds) + 0.5
    acc_ax.set_ylim(max(0.0, min(m - s for m, s in zip(means, stds)) - 2 * margin), min(100.0, max(means) + 2 * margin))
    for x, (m, s) in enumerate(zip(means, stds)):
        acc_ax.text(x, m + s + 0.1 * margin, f"{m:.2f}", ha="center", va="bottom", fontsize=8)
    acc_ax.set_xticks(list(xs), arms, rotation=20 if len(arms) > 3 else 0, ha="right" if len(arms) > 3 else "center")
    acc_ax.set_ylabel("test accuracy (%), mean +- std")
    width = 0.38
    for offset, key, style in ((-width / 2, "params", {"label": "total"}),
                               (width / 2, "head_params", {"label": "head", "alpha": 0.5, "hatch": "//"})):
        values = [getattr(s, key) for s in stats]
        par_ax.bar([x + offset for x in xs], values, width, color=[colors[a] for a in arms], **style)
        for x, v in zip(xs, values):
            par_ax.text(x + offset, v * 1.15, _short(v), ha="center", va="bottom", fontsize=7, rotation=90)
    par_ax.set_yscale("log")
    top = max(s.params for s in stats)
    par_ax.set_ylim(min(s.head_params for s in stats) / 3, top * 12)
    par_ax.set_xticks(list(xs), arms, rotation=20 if len(arms) > 3 else 0, ha="right" if len(arms) > 3 else "center")
    par_ax.set_ylabel("parameters (log scale)")
    par_ax.legend(fontsize=8)
    fig.suptitle(title)
    save_figure(fig, path, dpi=120, bbox_inches="tight")


def _short(value: int) -> str:
    """12810 -> '12.8k', 3383818 -> '3.38M'."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return str(value)


def plot_contrasts(summary: Any, path: Path, title: str) -> None:
    """A forest plot: every contrast's mean paired difference (reference minus arm) with its 95% interval."""
    found = summary.contrasts
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.55 * max(len(found), 1)))
    for y, c in enumerate(reversed(found)):
        if c.difference_ci95 is not None:
            ax.plot(c.difference_ci95, [y, y], color="#333333", linewidth=2)
        ax.plot([c.difference_mean], [y], "o", color="#DD8452", markersize=7)
        ax.annotate(f"{c.difference_mean:+.2f}" + ("" if c.p_holm is None else f", p (Holm) {c.p_holm:.2g}"),
                    (c.difference_mean, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.axvline(0, color="#999999", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(found)), [f"vs {c.arm} ({c.label})" for c in reversed(found)], fontsize=8)
    ax.set_ylim(-0.7, len(found) - 0.3)
    ax.set_xlabel(f"{summary.reference} minus arm: test accuracy points (95% CI)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path, dpi=120, bbox_inches="tight")
