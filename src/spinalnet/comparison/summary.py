"""A comparison's summary, from its record and its runs' files: ``results.json``, ``results.csv``, the plots and
the printed table (no torch import).

:func:`write_summary` is the only writer of ``results.json``: the last shard, ``compare --resume`` and
``report`` all call it, and it reads everything it needs from the directory (``comparison.json``, every run's
``result.json`` and ``predictions.npz``, ``feature_cache.json``). :func:`summarize` and :func:`format_table` take
run results, so ``examples/keras_quickdraw.py`` prints the same table for Keras runs.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spinalnet.comparison.contrasts import Predictions, arm_summary, choose, contrasts
from spinalnet.comparison.contrasts import assess
from spinalnet.comparison.feature_record import FeatureCacheRecord
from spinalnet.comparison.grid import GridRun, point_slug, run_path
from spinalnet.comparison.records import ComparisonRecord
from spinalnet.comparison.results_file import ComparisonSummary
from spinalnet.engine.predictions import PREDICTIONS_FILE, read_predictions
from spinalnet.engine.run_record import RESULT_FILE, RunResult
from spinalnet.errors import UsageError
from spinalnet.files import atomic_write_text
from spinalnet.stats import describe
from spinalnet.tables import align

SCHEDULES_DIFFER = ("random-restart restarts each run's learning rate when its own validation accuracy stalls, "
                    "so the arms' schedules differ by design (lr_curve in each run's result.json)")
CSV_COLUMNS = ("arm", "tune", "seed", "chosen", "test_acc", "val_acc", "params", "head_params", "epochs",
               "best_epoch", "still_improving", "train_seconds", "images_per_second")


def summarize(runs: dict[str, list[RunResult]], reference: str, predictions: Predictions | None = None,
              epochs: int | None = None) -> ComparisonSummary:
    """Each arm over its seeds, every arm against ``reference``, and whether the runs had converged, from
    finished runs given per arm, in the arms' order (``epochs``: the budget, default the longest run's)."""
    arms = {name: arm_summary(found) for name, found in runs.items() if found}
    budget = epochs or max((r.epochs for found in runs.values() for r in found), default=0)
    convergence = assess({name: [r.val_acc_curve for r in found] for name, found in runs.items() if found},
                         {name: [r.stopped_early for r in found] for name, found in runs.items() if found}, budget)
    return ComparisonSummary(reference, arms, contrasts(arms, reference, predictions or {}),
                             convergence=convergence.as_dict())


def stored_runs(out: Path, record: ComparisonRecord) -> tuple[list[GridRun], dict[GridRun, RunResult]]:
    """The comparison's grid and the result of every run of it that has one."""
    everything = record.grid()
    found = {}
    for run in everything:
        path = run_path(out, run) / RESULT_FILE
        if path.is_file():
            found[run] = RunResult.read(path)
    return everything, found


def tuning_choice(everything: list[GridRun], results: dict[GridRun, RunResult],
                  tune: dict[str, list[Any]]) -> tuple[dict[str, Any] | None, set[GridRun]]:
    """Per arm, the tuning point with the best mean validation accuracy over seeds (read on validation only),
    and the runs that stand for each arm: those of its chosen point (every run without ``--tune``)."""
    if not tune:
        return None, set(everything)
    by_arm: dict[str, dict[str, list[float]]] = {}
    points = {}
    for run in everything:
        slug = point_slug(run.point)
        points[slug] = run.point
        val = results[run].val_acc
        by_arm.setdefault(run.arm, {}).setdefault(slug, []).extend([] if val is None else [val])
    record, chosen = {"grid": tune, "arms": {}}, set()
    for arm, values in by_arm.items():
        means = {slug: round(sum(v) / len(v), 4) if v else None for slug, v in values.items()}
        best = choose(means)
        record["arms"][arm] = {"val_acc_mean": means, "chosen": dict(points[best])}
        chosen |= {run for run in everything if run.arm == arm and point_slug(run.point) == best}
    return record, chosen


def write_summary(out: Path, log=print, deploy_check: dict[str, Any] | None = None) -> ComparisonSummary:
    """Summarise a comparison whose runs are all finished: results.json, results.csv, curves.png, summary.png
    and contrasts.png; print the table. A run still missing, or a tuned arm's chosen runs not yet tested, is
    one UsageError saying what to run. ``deploy_check``: what the comparison's deploy check verified."""
    out = Path(out)
    record = ComparisonRecord.read(out)
    if record is None:
        raise UsageError(f"{out}: no comparison.json, so no comparison to summarise")
    everything, results = stored_runs(out, record)
    finished = {run: r for run, r in results.items() if r.finished(record.epochs)}
    if len(finished) < len(everything):
        raise UsageError(f"{out}: {len(finished)} of the {len(everything)} runs of this comparison are finished and it "
                         "has no results.json yet; run the remaining shards (or compare --resume) first")
    tune, chosen = tuning_choice(everything, finished, record.tune)
    untested = [run for run in chosen if not finished[run].tested]
    if untested:
        raise UsageError(f"{out}: the chosen runs of {len(untested)} (arm, seed) pairs have not been tested yet; "
                         "run compare --resume on this directory to test them")
    predictions = {(run.arm, run.seed): read_predictions(run_path(out, run) / PREDICTIONS_FILE) for run in chosen}
    per_arm = {name: [finished[run] for run in everything if run.arm == name and run in chosen]
               for name in record.arms}
    summary = summarize(per_arm, record.reference, predictions, record.epochs)
    first = finished[everything[0]]
    cache = FeatureCacheRecord.read(out)
    options = record.options
    summary.dataset, summary.model, summary.tune, summary.config = \
        options["dataset"], options["model"], tune, options
    summary.feature_cache = cache.as_dict() if cache is not None else None
    summary.schedules_differ = SCHEDULES_DIFFER if options.get("schedule") == "random-restart" else None
    summary.versions, summary.hardware, summary.command = first.versions, first.hardware, record.command
    summary.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary.experiment, summary.deploy_check = record.experiment, deploy_check
    from spinalnet.comparison.plots import plot_contrasts, plot_curves, plot_summary  # matplotlib: only to write

    title = table_title(summary)
    summary.write(out)
    write_csv(everything, finished, chosen, out / "results.csv")
    plot_curves(per_arm, out / "curves.png", title)
    plot_summary(summary, out / "summary.png", title)
    plot_contrasts(summary, out / "contrasts.png", title)
    log("")
    log(format_table(summary, options.get("schedule")))
    log(f"wrote {out}/results.json, results.csv, curves.png, summary.png, contrasts.png")
    return summary


def write_csv(everything: list[GridRun], results: dict[GridRun, RunResult], chosen: set[GridRun],
              path: Path) -> None:
    """One row per run of the grid (tuning values that were not chosen included)."""
    from spinalnet.comparison.contrasts import still_improving

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for run in everything:
        r = results[run]
        writer.writerow({**r.to_dict(), "arm": run.arm, "tune": point_slug(run.point), "seed": run.seed,
                         "chosen": run in chosen, "still_improving": still_improving(r.val_acc_curve, r.stopped_early)})
    atomic_write_text(path, buffer.getvalue())


def table_title(summary: ComparisonSummary) -> str:
    seeds = max((len(a.seeds) for a in summary.arms.values()), default=0)
    epochs = (summary.config or {}).get("epochs", "?")
    return f"{summary.dataset or '?'} / {summary.model or '?'}: {seeds} seed(s) x {epochs} epoch(s)"


def _two_heads(summary: ComparisonSummary) -> bool:
    return list(summary.arms) == ["fc", "spinal"] and summary.reference == "spinal"


def format_table(summary: ComparisonSummary, schedule: str | None = None) -> str:
    """A row per arm and a line per contrast, in words; with exactly the arms fc and spinal, the two-head table.
    Runs still improving at their last epoch are counted per arm, and the verdict says when they had not
    converged."""
    two = _two_heads(summary)
    rows = [["head" if two else "arm", *([] if two else ["head", "dropout"]), "test acc (%)", "+- std", "val acc (%)",
             "still improving", "params", "head params", "train s", "img/s"]]
    for name, s in summary.arms.items():
        val = [v for v in s.val_acc if v is not None]
        head = s.head or {}
        dropout = "/".join(f"{p:g}" for p in head.get("dropout") or []) or "-"
        std = f"{s.test_acc_std:.2f}" if len(s.seeds) > 1 else "-"
        improving = f"{sum(s.still_improving)} of {len(s.seeds)}" if s.still_improving else "-"
        rows.append([name, *([] if two else [head.get("shape", "-"), dropout]), f"{s.test_acc_mean:.2f}", std,
                     f"{sum(val) / len(val):.2f}" if val else "-", improving, f"{s.params:,}", f"{s.head_params:,}",
                     f"{sum(s.train_seconds) / len(s.train_seconds):.1f}" if s.train_seconds else "-",
                     f"{s.images_per_second:,.0f}"])
    lines = [table_title(summary), *align(rows)]
    lines += _two_head_lines(summary.contrasts[0]) if two and summary.contrasts else \
        [contrast_line(c) for c in summary.contrasts]
    if not two and summary.contrasts:
        k = len(summary.contrasts)
        lines.append(f"p (Holm): Holm-Bonferroni across the {k} contrast{'s' if k != 1 else ''}; difference = "
                     f"{summary.reference} minus the arm, paired by seed; seeds for 80% power: what a paired t-test "
                     "would need for the difference and spread seen")
    if any(c.ci_level == "seeds" for c in summary.contrasts):
        lines.append("the interval covers the spread over seeds only: some runs have no predictions.npz")
    convergence = convergence_line(summary)
    if convergence:
        lines.append(convergence)
    if summary.tune:
        for arm, choice in summary.tune["arms"].items():
            lines.append(f"tuned on validation: {arm} keeps {point_slug(tuple(choice['chosen'].items()))} "
                         f"(mean val acc {max(v for v in choice['val_acc_mean'].values() if v is not None):.2f})")
    if schedule == "random-restart":
        lines.append("note: " + SCHEDULES_DIFFER)
    return "\n".join(lines)


def convergence_line(summary: ComparisonSummary) -> str:
    """``not converged: ...`` when the runs were still learning at their last epoch, else nothing."""
    from spinalnet.comparison.contrasts import Convergence

    if not summary.convergence:
        return ""
    return Convergence(**summary.convergence).sentence()


def _two_head_lines(c) -> list[str]:
    red, wilcoxon, power = c.error_reduction_pct, c.p_value_wilcoxon, c.seeds_for_power
    return [describe(vars(c), "points") + " (paired by seed)",
            f"error reduction, spinal vs fc: {'n/a' if red is None else f'{red:+.2f}%'}; "
            f"Wilcoxon signed-rank p = {'n/a' if wilcoxon is None else f'{wilcoxon:.2g}'}; "
            f"seeds for 80% power: {'n/a' if power is None else power}"]


def reference_word(name: str) -> str:
    return "Spinal" if name == "spinal" else name


def contrast_line(c) -> str:
    """``Spinal vs mlp (same parameters): +0.01 points (95% CI -0.20 to +0.22), paired p = 0.92, p (Holm) = 0.92,
    better in 2 of 3 seeds; seeds for 80% power: 41``."""
    text = describe(vars(c), "points", candidate=f"{reference_word(c.reference)} vs {c.arm} ({c.label}):")
    head, _, tail = text.rpartition(", better in")
    power = "n/a" if c.seeds_for_power is None else f"{c.seeds_for_power:,}"
    return (f"{head}, p (Holm) = {'n/a' if c.p_holm is None else f'{c.p_holm:.2g}'}, better in{tail}; "
            f"seeds for 80% power: {power}")
