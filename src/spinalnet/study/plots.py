"""The study's pictures: a forest plot per contrast, the critical-difference diagram of the arms and a heatmap of
test accuracy (settings x arms). They take plain data (spinalnet.meta's results, dicts) and write PNGs atomically
(spinalnet.plots.save_figure); matplotlib is imported only when a picture is drawn, so pooling or reading a
study needs none."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:
    from spinalnet.meta import PooledEffect, Ranking, SettingEffect

SETTING_COLOR, POOLED_COLOR, PREDICTION_COLOR = "#333333", "#DD8452", "#4C72B0"
DPI = 120


def _pyplot() -> tuple[Any, Any]:
    from spinalnet.plots import plt, save_figure

    return plt, save_figure


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def _interval_text(value: float, interval: tuple[float, float] | None) -> str:
    return _signed(value) + ("" if interval is None else f" [{_signed(interval[0])}, {_signed(interval[1])}]")


def _pooled_summary(pooled: PooledEffect) -> str:
    r = pooled.record
    parts = [f"K = {pooled.settings}"]
    if pooled.tau2 is not None:
        parts.append(f"tau² = {pooled.tau2:.3g} ({pooled.tau2_method})")
        parts.append(f"I² = {pooled.i2:.0f}%, Q = {pooled.q:.2f} (p = {pooled.q_p:.2g})")
    if pooled.p_value is not None:
        parts.append(f"p = {pooled.p_value:.2g}" + ("" if pooled.p_holm is None else f" (Holm {pooled.p_holm:.2g})"))
    parts.append(f"wins {len(r.wins)}, ties {len(r.ties)}, losses {len(r.losses)}")
    return "; ".join(parts)


def plot_forest(effects: Sequence[SettingEffect], pooled: PooledEffect, path: Path, title: str,
                xlabel: str = "difference in test accuracy (points)") -> None:
    """Each setting's difference with its own 95% interval (square size ~ its random-effects weight; a hollow
    circle where it has no standard error and is not pooled), the pooled HKSJ estimate as a diamond and the
    prediction interval for a new setting as a bar; the numbers are written to the right of each row."""
    from matplotlib.patches import Polygon
    from matplotlib.transforms import blended_transform_factory

    plt, save_figure = _pyplot()
    n = len(effects)
    fig, ax = plt.subplots(figsize=(7.2, 1.6 + 0.3 * (n + 3)))
    text_at = blended_transform_factory(ax.transAxes, ax.transData)
    weights = dict(pooled.weights)
    biggest = max(weights.values(), default=100.0)
    spans: list[float] = [0.0]
    for i, e in enumerate(effects):
        y = n + 1 - i
        interval = e.interval()
        if interval is not None:
            ax.plot(interval, [y, y], color=SETTING_COLOR, linewidth=1.4)
            spans.extend(interval)
        spans.append(e.difference)
        if e.name in pooled.excluded or e.se is None:
            ax.plot([e.difference], [y], "o", markerfacecolor="white", markeredgecolor=SETTING_COLOR, markersize=6)
            weight = "  not pooled"
        else:
            share = weights.get(e.name)
            size = 4 + 7 * math.sqrt(share / biggest) if share is not None else 8
            ax.plot([e.difference], [y], "s", color=SETTING_COLOR, markersize=size)
            weight = "" if share is None else f"  {share:.0f}%"
        ax.text(1.02, y, _interval_text(e.difference, interval) + weight, transform=text_at, va="center", fontsize=8)
    labels = [e.name for e in effects] + ["pooled (HKSJ 95% CI)", "new setting (95% prediction)"]
    if pooled.difference is not None and pooled.ci95 is not None:
        lo, hi = pooled.ci95
        ax.add_patch(Polygon([(lo, 0), (pooled.difference, 0.32), (hi, 0), (pooled.difference, -0.32)],
                             closed=True, color=POOLED_COLOR))
        ax.axvline(pooled.difference, color=POOLED_COLOR, linestyle=":", linewidth=1)
        ax.text(1.02, 0, _interval_text(pooled.difference, pooled.ci95), transform=text_at, va="center", fontsize=8,
                fontweight="bold")
        spans.extend(pooled.ci95)
    else:
        ax.text(0.5, 0, pooled.note or "not pooled", transform=text_at, ha="center", va="center", fontsize=8)
    if pooled.prediction95 is not None:
        ax.plot(pooled.prediction95, [-1, -1], color=PREDICTION_COLOR, linewidth=6, alpha=0.45,
                solid_capstyle="butt")
        ax.text(1.02, -1, f"[{_signed(pooled.prediction95[0])}, {_signed(pooled.prediction95[1])}]",
                transform=text_at, va="center", fontsize=8)
        spans.extend(pooled.prediction95)
    elif pooled.difference is not None:
        ax.text(0.5, -1, "undefined with two settings", transform=text_at, ha="center", va="center", fontsize=8)
    ax.axvline(0, color="#999999", linestyle="--", linewidth=1)
    ax.text(1.02, n + 2, "difference [95% CI]  weight", transform=text_at, va="center", fontsize=8,
            fontstyle="italic")
    lo, hi = min(spans), max(spans)
    pad = 0.06 * (hi - lo) or 0.5
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_yticks([n + 1 - i for i in range(n)] + [0, -1], labels, fontsize=8)
    ax.set_ylim(-1.7, n + 2.5)
    ax.set_xlabel(xlabel)
    ax.set_title(f"{title}\n{_pooled_summary(pooled)}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    save_figure(fig, path, dpi=DPI, bbox_inches="tight")


def plot_cd_diagram(ranking: Ranking, path: Path, title: str) -> None:
    """Demsar's critical-difference diagram: the mean-rank axis (1 = best, on the left), each arm joined to its
    name (the better half on the left, the worse on the right), a bar under each group of arms that the Nemenyi
    test does not separate, and the CD itself as a bar above the axis."""
    plt, save_figure = _pyplot()
    arms, ranks = list(ranking.arms), list(ranking.mean_ranks)
    k = len(arms)
    order = sorted(range(k), key=lambda i: (ranks[i], i))
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2:][::-1]
    cliques = ranking.cliques if ranking.cd is not None else ()
    first_row = -0.55 - 0.2 * len(cliques)
    rows = max(len(left), len(right))
    bottom = first_row - 0.42 * (rows - 1) - 0.4
    top_rank = max(float(k), 1 + (ranking.cd or 0))
    margin = 0.1 * (top_rank - 1) + 0.25
    fig, ax = plt.subplots(figsize=(7.2, 1.3 + 0.5 * (1.4 - bottom)))
    ax.set_xlim(1 - margin, top_rank + margin)
    ax.set_ylim(bottom, 1.4)
    ax.axis("off")
    ax.plot([1, k], [0, 0], color="black", linewidth=1.2)
    for r in range(1, k + 1):
        ax.plot([r, r], [0, 0.1], color="black", linewidth=1)
        ax.text(r, 0.16, str(r), ha="center", va="bottom", fontsize=9)
    if ranking.cd is not None:
        ax.plot([1, 1 + ranking.cd], [0.85, 0.85], color="black", linewidth=1.6)
        for x in (1, 1 + ranking.cd):
            ax.plot([x, x], [0.78, 0.92], color="black", linewidth=1.6)
        ax.text(1 + ranking.cd / 2, 0.97, f"CD = {ranking.cd:.2f}", ha="center", va="bottom", fontsize=9)
    for j, clique in enumerate(cliques):
        members = [ranks[arms.index(a)] for a in clique]
        y = -0.22 - 0.2 * j
        ax.plot([min(members) - 0.03, max(members) + 0.03], [y, y], color="black", linewidth=3.5,
                solid_capstyle="butt")
    for side, members, edge, align in (("left", left, 1 - margin * 0.85, "right"),
                                       ("right", right, top_rank + margin * 0.85, "left")):
        for row, i in enumerate(members):
            y = first_row - 0.42 * row
            ax.plot([ranks[i], ranks[i], edge], [0, y, y], color="#555555", linewidth=0.9)
            ax.text(edge + (-0.03 if side == "left" else 0.03), y, f"{arms[i]} ({ranks[i]:.2f})", ha=align,
                    va="center", fontsize=9)
    if ranking.chi2 is not None:
        detail = (f"N = {ranking.settings} settings; Friedman chi² = {ranking.chi2:.2f} (p = {ranking.chi2_p:.2g}), "
                  f"Iman-Davenport F = {ranking.f_text(exact_note='')}; Nemenyi at alpha = {ranking.alpha:g}")
    else:
        detail = ranking.note or f"N = {ranking.settings}"
    ax.set_title(f"{title}\n{detail}", fontsize=9)
    save_figure(fig, path, dpi=DPI, bbox_inches="tight")


def plot_heatmap(accuracy: Mapping[str, Mapping[str, float]], path: Path, title: str) -> None:
    """Test accuracy, settings x arms, each cell annotated with its value (the best of a row in bold). Settings
    differ by far more than arms do, so the colour is each cell's difference from its row's mean over arms: one
    scale for the whole picture would show only which dataset is easy. A missing arm is a grey cell."""
    import numpy as np

    plt, save_figure = _pyplot()
    settings = list(accuracy)
    arms = list(dict.fromkeys(a for s in settings for a in accuracy[s]))
    values = np.array([[accuracy[s].get(a, np.nan) for a in arms] for s in settings], dtype=float)
    with np.errstate(all="ignore"):
        deviation = values - np.nanmean(values, axis=1, keepdims=True)
    limit = float(np.nanmax(np.abs(deviation))) if np.isfinite(deviation).any() else 0.0
    limit = limit or 1.0
    fig, ax = plt.subplots(figsize=(2.4 + 1.0 * len(arms), 1.2 + 0.36 * len(settings)))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="#DDDDDD")
    image = ax.imshow(np.ma.masked_invalid(deviation), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    for r in range(len(settings)):
        best = np.nanmax(values[r]) if np.isfinite(values[r]).any() else None
        for c in range(len(arms)):
            if not np.isfinite(values[r, c]):
                continue
            strong = abs(deviation[r, c]) / limit > 0.6
            ax.text(c, r, f"{values[r, c]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if strong else "black", fontweight="bold" if values[r, c] == best else "normal")
    ax.set_xticks(range(len(arms)), arms, fontsize=9, rotation=30 if len(arms) > 5 else 0,
                  ha="left" if len(arms) > 5 else "center")
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(settings)), settings, fontsize=8)
    ax.set_xticks(np.arange(len(arms) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(settings) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.03)
    bar.set_label("points vs the setting's mean over arms", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    ax.set_title(f"{title}\ntest accuracy (%), mean over seeds", fontsize=9)
    save_figure(fig, path, dpi=DPI, bbox_inches="tight")
