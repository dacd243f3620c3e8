"""``spinalnet report``: results files rendered as one table, with a verdict per experiment (imports no torch: it
reads files).

A comparison's row gives both answers when it has them: the Spinal head against the paper's baseline (the
``fc`` arm) and against an ordinary MLP of the same size (the ``mlp`` arm). Each answer shows the comparison's own
p-value, Holm-corrected within the comparison (what ``compare`` printed), and, labelled as such, the
correction across every test of the table; the verdict says which of the two it rests on, and never contradicts
the interval printed beside it (one statistic gives both: the interval excludes 0 exactly when p < 0.05).
Columns that are empty in every row are left out. As text, each row is a block wrapped to 120 columns;
``--markdown`` (and ``--output``) give one Markdown table.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spinalnet.comparison.records import RECORD
from spinalnet.comparison.results_file import KINDS, RESULTS, ComparisonSummary, read_results
from spinalnet.errors import UsageError
from spinalnet.heads.spec import is_paper_baseline, is_same_size, parse_arm

SIGNIFICANCE = 0.05
#: Experiments costlier than this on 2 CPU cores are marked "needs a GPU" when not run.
CPU_BUDGET_HOURS = 2.0
EMPTY = ("", "-")
COLUMNS = ["experiment", "directory", "paper: fc", "paper: Spinal", "measured: fc", "measured: Spinal",
           "Spinal − fc (95% CI)", "p", "p (Holm)", "p (Holm, table)", "measured: same-size MLP",
           "Spinal − MLP (95% CI)", "p (Holm), vs MLP", "p (Holm, table), vs MLP", "seeds x epochs", "converged",
           "hardware, commit", "does the Spinal head help?"]
#: The columns each answer fills: its own p (Holm within its comparison) and the table-wide one.
ANSWER_COLUMNS = {"vs fc": ("p (Holm)", "p (Holm, table)"), "vs same-size MLP": ("p (Holm), vs MLP",
                                                                                   "p (Holm, table), vs MLP")}


@dataclass
class Test:
    """One answer of a row: its statistics (a contrast, or a regression target's paired MSE), the comparison's
    own Holm-corrected p (what compare printed), and which way is better."""

    label: str
    stats: Any  # an object or mapping with difference_mean, difference_ci95, ci_level, p_value, seeds
    p_holm: float | None
    better: str
    worse: str


@dataclass
class Row:
    cells: dict[str, str]
    tests: list[Test] = field(default_factory=list)
    note: str = ""


def load_results(path: Path) -> ComparisonSummary | dict[str, Any] | None:
    """A results file (None, with a note, for a directory that holds no results, such as a train run); a file
    that is not a results file is a UsageError."""
    file = path / RESULTS if path.is_dir() else path
    if path.is_dir() and not file.is_file() and (path / RECORD).is_file():  # shards, all done?
        from spinalnet.comparison.summary import write_summary

        write_summary(path, log=lambda line: None)
        print(f"spinalnet: note: wrote the summary of {path} (every run of its comparison is finished)",
              file=sys.stderr)
    if path.is_dir() and not file.is_file():
        print(f"spinalnet: note: skipping {path}: no results.json (not a compare, regress or reproduce output "
              "directory)", file=sys.stderr)
        return None
    if not file.is_file():
        raise UsageError(f"{path}: no such results file; expected {KINDS}")
    results = read_results(file)
    if isinstance(results, dict):
        results["_path"] = str(file.parent)
    return results


def _get(stats: Any, key: str) -> Any:
    return stats.get(key) if isinstance(stats, dict) else getattr(stats, key)


def _fmt(mean: float, std: float, n: int, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def answer(test: Test, p_table: float | None, tests_in_table: int) -> str:
    """The verdict of one answer. Yes or no (bold) when it holds after the table-wide correction; "significant
    alone" when only the comparison's own correction holds it; otherwise what is missing. Never against the
    interval shown beside it."""
    stats = test.stats
    n = _get(stats, "seeds")
    seeds_only = " (interval over seeds only: no per-example predictions)" if _get(stats, "ci_level") == "seeds" \
        else ""
    p, own = _get(stats, "p_value"), test.p_holm
    if p is None or own is None:
        why = f"{n} seed{'s' if n != 1 else ''}" if n < 2 else "the differences have no spread"
        return f"inconclusive ({why}, no test)"
    ci = _get(stats, "difference_ci95")
    excludes_zero = ci is not None and (ci[0] > 0 or ci[1] < 0)
    way = test.better if _get(stats, "difference_mean") > 0 else test.worse
    if own < SIGNIFICANCE and not excludes_zero:  # a file whose interval came from another statistic
        return f"unclear: p (Holm) = {own:.2g} but the 95% interval includes 0{seeds_only}"
    if own < SIGNIFICANCE and p_table is not None and p_table < SIGNIFICANCE:
        return f"**{'yes' if way == test.better else 'no'}**, {way} (p (Holm) = {own:.2g}; across the table " \
               f"{p_table:.2g}){seeds_only}"
    if own < SIGNIFICANCE:
        return f"{way}, significant alone (p (Holm) = {own:.2g}); not after correcting for the {tests_in_table} " \
               f"tests of this table (p = {_p(p_table)}){seeds_only}"
    if excludes_zero:
        return f"{way} by its interval (p = {p:.2g}), but not after correcting for its comparison's contrasts " \
               f"(p (Holm) = {own:.2g}){seeds_only}"
    return f"no significant difference (p (Holm) = {own:.2g}){seeds_only}"


def _where(results: Any) -> str:
    hw = _get(results, "hardware") or {}
    device = hw.get("gpu") or f"{hw.get('cpu_count', '?')} CPU cores"
    full = (_get(results, "versions") or {}).get("git_commit") or "?"
    commit = full[:12] + ("-dirty" if full.endswith("-dirty") else "")
    return f"{device}, `{commit}`"


def paper_numbers(exp: dict[str, Any]) -> dict[str, Any]:
    """The paper's numbers from the experiment's current config (results files keep the copy of their day)."""
    from spinalnet.comparison.experiments import experiments

    known = experiments()
    return known[exp["name"]].paper if exp.get("name") in known else exp.get("paper") or {}


def _paper(paper: dict[str, Any], key: str) -> str:
    value = paper.get(key)
    return "-" if value is None else str(value)


def _difference(stats: Any, digits: int) -> str:
    if stats is None:
        return "-"
    ci = _get(stats, "difference_ci95")
    interval = "" if ci is None else f" ({ci[0]:+.{digits}f} to {ci[1]:+.{digits}f})"
    return f"{_get(stats, 'difference_mean'):+.{digits}f}{interval}"


def _budget(cfg: dict[str, Any]) -> str:
    return f" ({cfg['limit_batches']:g} of each epoch)" if cfg.get("limit_batches", 1) != 1 else ""


def _measured(arm: Any) -> str:
    return "-" if arm is None else _fmt(arm.test_acc_mean, arm.test_acc_std, len(arm.test_acc))


def _directory(path: Any) -> str:
    path = Path(path)
    try:
        path = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return f"`{path}`"


def _converged(results: ComparisonSummary) -> str:
    conv = results.convergence
    if not conv:
        return "-"
    return "yes" if conv["converged"] else f"no: {conv['still_improving']} of {conv['runs']} runs still improving"


def compare_row(results: ComparisonSummary) -> Row:
    exp = results.experiment or {}
    arms, cfg, ref = results.arms, results.config, results.reference
    spinal = parse_arm(ref).kind == "spinal"  # the contrasts are the reference's: about SpinalNet only if it is one
    specs = [(c, parse_arm(c.arm)) for c in results.contrasts] if spinal else []
    fc = next((c for c, spec in specs if is_paper_baseline(spec)), None)  # the paper's answer: plain fc only
    mlp = next((c for c, spec in specs if is_same_size(spec)), None)       # the first parameter-matched MLP
    n = len(arms[ref].test_acc)
    paper = paper_numbers(exp)
    seeds = f"{n} x {cfg['epochs']}" + _budget(cfg) + (" (tuned)" if results.tune else "")
    cells = {"experiment": exp.get("name") or f"{results.dataset} / {results.model}",
             "directory": _directory(results.path.parent if results.path else "."),
             "paper: fc": _paper(paper, "fc"), "paper: Spinal": _paper(paper, "spinal"),
             "measured: fc": _measured(arms.get(fc.arm) if fc else None),
             "measured: Spinal": _measured(arms[ref] if spinal else None),
             "Spinal − fc (95% CI)": _difference(fc, 2), "p": _p(fc.p_value if fc else None),
             "measured: same-size MLP": _measured(arms.get(mlp.arm) if mlp else None),
             "Spinal − MLP (95% CI)": _difference(mlp, 2), "seeds x epochs": seeds, "converged": _converged(results),
             "hardware, commit": _where(results)}
    tests = [Test(label, c, c.p_holm, "Spinal better", "the other head better")
             for label, c in (("vs fc", fc), ("vs same-size MLP", mlp)) if c is not None]
    note = (f"no answer: the reference arm {ref} is not a Spinal head" if not spinal else
            "no answer: no plain fc or same-size mlp arm to compare with")
    return Row(cells, tests, note)


def regress_rows(results: dict[str, Any]) -> list[Row]:
    from spinalnet.stats import paired_stats

    exp = results.get("experiment") or {}
    cfg = results["config"]
    rows = []
    for target, res in results["targets"].items():
        fc, sp = res["fc"], res["spinal"]
        shown = res if "difference_mean" in res else \
            paired_stats(fc["test_mse"], sp["test_mse"], higher_is_better=False).as_dict()  # Spinal - fc, in MSE
        stats = {**shown, "difference_mean": -shown["difference_mean"]}  # lower MSE is better: "yes" when > 0
        n = len(sp["test_mse"])
        paper_fc = sum(fc["paper_metric_min_train_batch_mse"]) / n
        paper_sp = sum(sp["paper_metric_min_train_batch_mse"]) / n
        cells = {"experiment": f"{exp.get('name', 'regression')}: {target} (test MSE; the paper's metric, min "
                               f"train-batch MSE, ours: fc {paper_fc:.4f}, Spinal {paper_sp:.4f})",
                 "directory": _directory(results["_path"]),
                 "measured: fc": _fmt(fc["test_mse_mean"], fc["test_mse_std"], n, 4),
                 "measured: Spinal": _fmt(sp["test_mse_mean"], sp["test_mse_std"], n, 4),
                 "Spinal − fc (95% CI)": _difference(shown, 4), "p": _p(stats["p_value"]),
                 "seeds x epochs": f"{n} x {cfg['epochs']}" + _budget(cfg), "hardware, commit": _where(results)}
        rows.append(Row(cells, [Test("vs fc", stats, stats["p_value"], "Spinal better (lower MSE)",
                                     "fc better (lower MSE)")]))
    return rows


def not_run_reason(exp) -> str:
    from spinalnet.data import DataOptions, load_dataset
    from spinalnet.errors import DataNotFoundError

    reasons = []
    dataset = exp.options.get("dataset")
    if dataset and exp.kind == "compare":
        try:
            load_dataset(dataset, DataOptions(image_size=16, samples_per_class=1))
        except DataNotFoundError:
            reasons.append("data not available offline")
        except UsageError:
            pass
    if exp.cpu_hours is not None and exp.cpu_hours > CPU_BUDGET_HOURS:
        reasons.append(f"needs a GPU (about {exp.cpu_hours:,.0f} CPU hours here)")
    return "not run: " + "; ".join(reasons) if reasons else "not run yet"


def rows_of(paths: list[Path], include_missing: bool = False) -> list[Row]:
    """One row per comparison (per target for regression), with every verdict decided; a row per paper experiment
    without results when ``include_missing``."""
    from spinalnet.stats import holm

    rows: list[Row] = []
    seen: set[str] = set()
    for path in paths:
        results = load_results(path)
        if results is None:
            continue
        if isinstance(results, ComparisonSummary):
            seen.add((results.experiment or {}).get("name", ""))
            rows.append(compare_row(results))
        else:
            seen.add((results.get("experiment") or {}).get("name", ""))
            rows.extend(regress_rows(results))
    if not rows and not include_missing:
        raise UsageError(f"nothing to report: no results.json in {', '.join(map(str, paths))} (compare, regress or "
                         "reproduce output directories hold one)")
    tests = [test for row in rows for test in row.tests]
    table = dict(zip(map(id, tests), holm([_get(t.stats, "p_value") for t in tests])))
    for row in rows:
        verdicts = []
        for test in row.tests:
            own, wide = ANSWER_COLUMNS[test.label]
            row.cells[own], row.cells[wide] = _p(test.p_holm), _p(table[id(test)])
            verdicts.append(f"{test.label}: {answer(test, table[id(test)], len(tests))}")
        row.cells["does the Spinal head help?"] = "; ".join(verdicts) or row.note
        if verdicts and row.cells.get("converged", "").startswith("no"):
            row.cells["does the Spinal head help?"] += " (runs not converged: see the converged column)"
    if include_missing:
        from spinalnet.comparison.experiments import experiments

        for name, exp in experiments().items():
            if name not in seen:
                rows.append(Row({"experiment": name, "paper: fc": _paper(exp.paper, "fc"),
                                 "paper: Spinal": _paper(exp.paper, "spinal"),
                                 "does the Spinal head help?": not_run_reason(exp)}))
    return rows


def render(paths: list[Path], include_missing: bool = False, markdown: bool = True, width: int = 120) -> str:
    """The report of ``paths``: a Markdown table, or text blocks that fit ``width`` columns. Columns empty in every
    row are left out."""
    rows = rows_of(paths, include_missing)
    columns = [c for c in COLUMNS if any(row.cells.get(c, "-") not in EMPTY for row in rows)]
    table = [[row.cells.get(c, "-") or "-" for c in columns] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table])
    return "\n\n".join(_block(columns, cells, width) for cells in table)


def _block(columns: list[str], cells: list[str], width: int) -> str:
    """One row as text that fits ``width``: its experiment and directory, then every other column as
    ``name: value``, wrapped, the verdict last on lines of its own."""
    import textwrap

    named = dict(zip(columns, cells))
    title = " ".join(v for v in (named.pop("experiment", ""), named.pop("directory", "")) if v and v != "-")
    verdict = named.pop("does the Spinal head help?", "")
    facts = "; ".join(f"{k}: {v}" for k, v in named.items() if v not in EMPTY)
    lines = [title, *textwrap.wrap(facts, width, initial_indent="  ", subsequent_indent="    ")]
    lines += textwrap.wrap(f"does the Spinal head help? {verdict}", width, initial_indent="  ",
                           subsequent_indent="    ")
    return "\n".join(lines)
