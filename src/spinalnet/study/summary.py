"""A study's summary, from its settings' comparisons (no torch import): every contrast pooled over the settings
(:mod:`spinalnet.meta`), wins, ties and losses, the arms ranked, and the files a reviewer reads: ``study.json``
(through :class:`~spinalnet.study.record.StudyRecord`), ``study.csv`` (one row per run), ``study.md`` and the
figures (a forest plot per contrast, the critical-difference diagram, a heatmap of test accuracy).

:func:`pooled_verdict` works on any comparisons, so ``spinalnet report --pool DIR ...`` pools directories without a
study file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from spinalnet.comparison.results_file import ComparisonSummary
from spinalnet.comparison.summary import reference_word
from spinalnet.files import atomic_write_text
from spinalnet.meta import PooledEffect, Ranking, SettingEffect, pool_contrasts, rank_arms
from spinalnet.study.record import StudyRecord

FIGURES = "figures"
CSV_COLUMNS = ("setting", "arm", "seed", "test_acc", "val_acc", "epochs", "best_epoch", "still_improving", "params",
               "head_params")


def effects_of(entries: dict[str, ComparisonSummary], arm: str) -> list[SettingEffect]:
    """Each setting's contrast of its reference against ``arm``, as meta's input."""
    return [SettingEffect.from_contrast(name, asdict(summary.contrast(arm))) for name, summary in entries.items()
            if summary.contrast(arm) is not None]


def pooled_verdict(entries: dict[str, ComparisonSummary], arms: list[str], reference: str
                   ) -> tuple[dict[str, PooledEffect], Ranking, dict[str, list[SettingEffect]]]:
    """Every contrast (reference against each other arm) pooled over the settings, Holm across the contrasts,
    and the arms ranked by their mean test accuracy in each setting."""
    effects = {arm: effects_of(entries, arm) for arm in arms if arm != reference}
    pooled = pool_contrasts(effects)
    accuracy = {name: {arm: summary.arms[arm].test_acc_mean for arm in arms} for name, summary in entries.items()}
    return pooled, rank_arms(accuracy), effects


def contrast_label(arm: str, reference: str, entries: dict[str, ComparisonSummary]) -> str:
    first = next((s.contrast(arm) for s in entries.values() if s.contrast(arm) is not None), None)
    words = f" ({first.label})" if first is not None else ""
    return f"{reference_word(reference)} vs {arm}{words}"


def pooled_sentence(label: str, pooled: PooledEffect) -> str:
    """``Spinal vs mlp (same parameters), pooled over 6 settings: +0.04 points (95% CI -0.21 to +0.29; a new
    setting: -0.5 to +0.6), I² = 12%, wins 0, ties 6, losses 0``."""
    r = pooled.record
    record = f"wins {len(r.wins)}, ties {len(r.ties)}, losses {len(r.losses)}"
    if pooled.difference is None:
        return f"{label}: {pooled.note}; {record}"
    ci = pooled.ci95
    new = pooled.prediction95
    interval = f"95% CI {ci[0]:+.2f} to {ci[1]:+.2f}" if ci else "no interval"
    prediction = f"; a new setting: {new[0]:+.2f} to {new[1]:+.2f}" if new else "; no prediction interval (2 settings)"
    p = "" if pooled.p_value is None else f", p = {pooled.p_value:.2g}" + \
        ("" if pooled.p_holm is None else f", p (Holm) = {pooled.p_holm:.2g}")
    return (f"{label}, pooled over {pooled.settings} settings: {pooled.difference:+.2f} points ({interval}"
            f"{prediction}){p}, I² = {pooled.i2:.0f}%, tau² = {pooled.tau2:.3g}, Q = {pooled.q:.2f} "
            f"(p = {pooled.q_p:.2g}), {record}")


def ranking_sentence(ranking: Ranking) -> str:
    ranks = ", ".join(f"{arm} {rank:.2f}" for arm, rank in sorted(zip(ranking.arms, ranking.mean_ranks),
                                                                  key=lambda pair: pair[1]))
    if ranking.chi2 is None:
        return f"mean rank (1 = best) over {ranking.settings} setting(s): {ranks}; {ranking.note or 'no test'}"
    groups = "; ".join("{" + ", ".join(clique) + "}" for clique in ranking.cliques)
    return (f"mean rank (1 = best) over {ranking.settings} settings: {ranks}; Friedman chi² = {ranking.chi2:.2f} "
            f"(p = {ranking.chi2_p:.2g}), Iman-Davenport F = "
            f"{ranking.f_text()}; "
            f"Nemenyi CD = {ranking.cd:.2f} at alpha {ranking.alpha:g}: not significantly different within {groups}")


def verdict_lines(entries: dict[str, ComparisonSummary], arms: list[str], reference: str) -> list[str]:
    """The pooled answer in words: one line per contrast, then the ranking, then settings that had not converged."""
    pooled, ranking, _ = pooled_verdict(entries, arms, reference)
    lines = [pooled_sentence(contrast_label(arm, reference, entries), p) for arm, p in pooled.items()]
    lines.append(ranking_sentence(ranking))
    unconverged = [name for name, s in entries.items() if s.convergence and not s.convergence["converged"]]
    if unconverged:
        lines.append(f"not converged (runs still improving at their last epoch): {', '.join(unconverged)}")
    return lines


def _setting_table(entries: dict[str, ComparisonSummary], arms: list[str]) -> list[str]:
    header = "| setting | " + " | ".join(arms) + " | seeds x epochs | converged |"
    lines = [header, "|" + "---|" * (len(arms) + 3)]
    for name, s in entries.items():
        best = max(s.arms[a].test_acc_mean for a in arms)
        cells = []
        for arm in arms:
            a = s.arms[arm]
            text = f"{a.test_acc_mean:.2f} ± {a.test_acc_std:.2f}" if len(a.seeds) > 1 else f"{a.test_acc_mean:.2f}"
            cells.append(f"**{text}**" if a.test_acc_mean == best else text)
        conv = s.convergence
        converged = "-" if not conv else "yes" if conv["converged"] else f"no ({conv['still_improving']} of " \
                                                                         f"{conv['runs']} runs improving)"
        seeds = max(len(s.arms[a].seeds) for a in arms)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seeds} x {s.config.get('epochs', '?')} | {converged} |")
    return lines


def study_markdown(name: str, description: str, entries: dict[str, ComparisonSummary], arms: list[str],
                   reference: str, directories: dict[str, str]) -> str:
    pooled, ranking, _ = pooled_verdict(entries, arms, reference)
    lines = [f"# Study: {name}", ""]
    if description:
        lines += [description, ""]
    lines += ["## The pooled answer", ""]
    lines += [f"- {line}" for line in verdict_lines(entries, arms, reference)]
    lines += ["", "Each contrast is the reference minus the arm in test-accuracy points, paired by seed within a setting "
              "(the statistic compare prints), pooled by a random-effects meta-analysis (Paule-Mandel tau², "
              "Hartung-Knapp-Sidik-Jonkman interval on K - 1 degrees of freedom); \"a new setting\" is the 95% "
              "prediction interval; p (Holm) corrects the pooled p-values across the study's contrasts; a setting is "
              "a win or a loss only where its own Holm-corrected contrast is significant.", "",
              "## Test accuracy per setting (%, mean ± std over seeds; best in bold)", ""]
    lines += _setting_table(entries, arms)
    lines += ["", "## Settings", ""]
    lines += [f"- {n}: `{directories.get(n, '?')}`" for n in entries]
    lines += ["", "## Figures", "", f"![heatmap]({FIGURES}/heatmap.png)",
              f"![critical difference]({FIGURES}/critical-difference.png)"]
    lines += [f"![{arm}]({FIGURES}/forest-vs-{arm.replace(':', '_')}.png)" for arm in pooled]
    return "\n".join(lines) + "\n"


def study_csv(entries: dict[str, ComparisonSummary], arms: list[str]) -> str:
    """One row per run: setting, arm, seed and its numbers (from each setting's per-seed lists)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for name, s in entries.items():
        for arm in arms:
            a = s.arms[arm]
            for i, seed in enumerate(a.seeds):
                pick = lambda values: values[i] if i < len(values) else ""  # noqa: E731
                writer.writerow({"setting": name, "arm": arm, "seed": seed, "test_acc": a.test_acc[i],
                                 "val_acc": pick(a.val_acc), "epochs": pick(a.epochs), "best_epoch": pick(a.best_epoch),
                                 "still_improving": pick(a.still_improving), "params": a.params,
                                 "head_params": a.head_params})
    return buffer.getvalue()


def write_study_summary(out: Path, record: StudyRecord, entries: dict[str, ComparisonSummary],
                        log: Callable[[str], None] = print) -> StudyRecord:
    """study.json (the record with the pooled verdict), study.csv, study.md and the figures."""
    from spinalnet.study.plots import plot_cd_diagram, plot_forest, plot_heatmap

    out = Path(out)
    arms, reference = record.arms, record.reference
    pooled, ranking, effects = pooled_verdict(entries, arms, reference)
    directories = {s["name"]: s["directory"] for s in record.settings}
    figures = out / FIGURES
    for arm, result in pooled.items():
        plot_forest(effects[arm], result, figures / f"forest-vs-{arm.replace(':', '_')}.png",
                    f"{record.name}: {contrast_label(arm, reference, entries)}",
                    xlabel=f"{reference} minus {arm}: test accuracy points")
    plot_cd_diagram(ranking, figures / "critical-difference.png", f"{record.name}: mean rank of the arms")
    plot_heatmap({name: {arm: s.arms[arm].test_acc_mean for arm in arms} for name, s in entries.items()},
                 figures / "heatmap.png", f"{record.name}: test accuracy (%)")
    first = next(iter(entries.values()))
    record.summary = {
        "settings": {name: {"directory": directories.get(name), "arms": {a: asdict(s.arms[a]) for a in arms},
                            "contrasts": [asdict(c) for c in s.contrasts], "convergence": s.convergence,
                            "config": s.config} for name, s in entries.items()},
        "pooled": {arm: p.as_dict() for arm, p in pooled.items()},
        "effects": {arm: [e.as_dict() for e in found] for arm, found in effects.items()},
        "ranking": ranking.as_dict(), "verdict": verdict_lines(entries, arms, reference)}
    record.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record.versions, record.hardware = first.versions, first.hardware
    record.write(out)
    atomic_write_text(out / "study.csv", study_csv(entries, arms))
    atomic_write_text(out / "study.md", study_markdown(record.name, record.config.get("description", ""), entries,
                                                       arms, reference, directories))
    for line in ["", f"study {record.name}: {len(entries)} settings, arms {', '.join(arms)} (reference {reference})",
                 *verdict_lines(entries, arms, reference),
                 f"wrote {out}/study.json, study.csv, study.md and {FIGURES}/"]:
        log(line)
    return record
