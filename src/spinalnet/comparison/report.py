"""``spinalnet report``: results files rendered as one Markdown table, with a verdict per experiment."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from spinalnet.errors import UsageError
from spinalnet.comparison.shards import RECORD

SIGNIFICANCE = 0.05
#: Experiments costlier than this on 2 CPU cores are marked "needs a GPU" when not run.
CPU_BUDGET_HOURS = 2.0


RESULTS_KINDS = "the results.json of compare, regress or reproduce"


def load_results(path: Path) -> dict[str, Any]:
    """A results file as a dict; anything else (a single run's result.json, a list, bad JSON) is a UsageError."""
    file = path / "results.json" if path.is_dir() else path
    if path.is_dir() and not file.is_file() and (path / RECORD).is_file():  # shards, all done?
        from spinalnet.comparison.compare import finish_comparison

        finish_comparison(path, log=lambda line: None)
        print(f"spinalnet: note: wrote the summary of {path} (every run of its comparison is finished)",
              file=sys.stderr)
    if not file.is_file():
        raise UsageError(f"{path}: no results.json (is this a compare, regress or reproduce output directory?)")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{file}: not a readable results file ({err}); expected {RESULTS_KINDS}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{file}: holds a JSON {type(data).__name__}, not a results file; expected {RESULTS_KINDS}")
    if "targets" not in data and not {"fc", "spinal"} <= data.keys():
        single = " (it is a single run's result.json: pass the compare output directory)" if "test_acc" in data else ""
        raise UsageError(f"{file}: not a results file{single}; expected {RESULTS_KINDS}, "
                         "with 'fc' and 'spinal' (compare) or 'targets' (regress)")
    data["_path"] = str(file.parent)
    return data


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The table rows of one results file; a file missing a field is named, not a traceback."""
    try:
        return regress_rows(results) if "targets" in results else [compare_row(results)]
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as err:
        raise UsageError(f"{results['_path']}/results.json: incomplete results file ({type(err).__name__}: {err}); "
                         f"expected {RESULTS_KINDS}") from None


def _fmt(mean: float, std: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _paper(paper: dict[str, Any], key: str) -> str:
    value = paper.get(key)
    return "-" if value is None else str(value)


def verdict(stats: dict[str, Any], p_holm: float | None, spinal_better: bool) -> str:
    """Yes or no only when the Holm-corrected p and the 95% interval agree; otherwise say what is missing."""
    n = stats["seeds"]
    seeds_only = " (interval over seeds only: no per-example predictions)" if stats.get("ci_level") == "seeds" else ""
    if p_holm is None:
        why = f"{n} seed{'s' if n != 1 else ''}" if n < 2 else "the differences have no spread"
        return f"inconclusive ({why}, no test)"
    ci = stats.get("difference_ci95")
    excludes_zero = ci is not None and (ci[0] > 0 or ci[1] < 0)
    if p_holm < SIGNIFICANCE and excludes_zero:
        answer = "**yes**, Spinal better" if spinal_better else "**no**, fc better"
        return f"{answer} (p (Holm) = {p_holm:.2g}){seeds_only}"
    if p_holm < SIGNIFICANCE:
        return f"unclear: p (Holm) = {p_holm:.2g} but the 95% interval includes 0{seeds_only}"
    return f"no significant difference (p (Holm) = {p_holm:.2g}){seeds_only}"


def _where(results: dict[str, Any]) -> str:
    hw = results.get("hardware", {})
    device = hw.get("gpu") or f"{hw.get('cpu_count', '?')} CPU cores"
    full = results.get("versions", {}).get("git_commit") or "?"
    commit = full[:12] + ("-dirty" if full.endswith("-dirty") else "")
    return f"{device}, `{commit}`"


def paper_numbers(exp: dict[str, Any]) -> dict[str, Any]:
    """The paper's numbers from the experiment's current config (results files keep the copy of their day)."""
    from spinalnet.comparison.experiments import experiments

    known = experiments()
    return known[exp["name"]].paper if exp.get("name") in known else exp.get("paper") or {}


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def _difference(stats: dict[str, Any], digits: int) -> str:
    ci = stats.get("difference_ci95")
    interval = "" if ci is None else f" ({ci[0]:+.{digits}f} to {ci[1]:+.{digits}f})"
    return f"{stats['difference_mean']:+.{digits}f}{interval}"


def _budget(cfg: dict[str, Any]) -> str:
    return f" ({cfg['limit_batches']:g} of each epoch)" if cfg.get("limit_batches", 1) != 1 else ""


def compare_row(results: dict[str, Any]) -> dict[str, Any]:
    from spinalnet.comparison.compare import load_run_predictions
    from spinalnet.comparison.summary import paired_summary

    exp = results.get("experiment") or {}
    fc, sp = results["fc"], results["spinal"]
    cfg = results["config"]
    stats = results
    if "difference_mean" not in results:  # a results file from before the paired statistics
        runs = [(h, s) for h in ("fc", "spinal") for s in results[h]["seeds"]]
        stats = paired_summary(fc, sp, load_run_predictions(Path(results["_path"]), runs))
    n = len(sp["test_acc"])
    name = exp.get("name") or f"{results['dataset']} / {results['model']}"
    paper = paper_numbers(exp)
    budget = f"{n} x {cfg['epochs']}" + _budget(cfg)
    return {"cells": [name, _paper(paper, "fc"), _paper(paper, "spinal"),
                      _fmt(fc["test_acc_mean"], fc["test_acc_std"]), _fmt(sp["test_acc_mean"], sp["test_acc_std"]),
                      _difference(stats, 2), _p(stats["p_value"]), None, budget, _where(results)],
            "stats": stats, "spinal_better": stats["difference_mean"] > 0}


def regress_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    from spinalnet.stats import paired_stats

    exp = results.get("experiment") or {}
    cfg = results["config"]
    rows = []
    for target, res in results["targets"].items():
        fc, sp = res["fc"], res["spinal"]
        stats = res if "difference_mean" in res else \
            paired_stats(fc["test_mse"], sp["test_mse"], higher_is_better=False).as_dict()
        n = len(sp["test_mse"])
        paper_fc = sum(fc["paper_metric_min_train_batch_mse"]) / n
        paper_sp = sum(sp["paper_metric_min_train_batch_mse"]) / n
        rows.append({"cells": [f"{exp.get('name', 'regression')}: {target} (test MSE)",
                               f"paper's metric, ours: {paper_fc:.4f}", f"paper's metric, ours: {paper_sp:.4f}",
                               _fmt(fc["test_mse_mean"], fc["test_mse_std"], 4), _fmt(sp["test_mse_mean"], sp["test_mse_std"], 4),
                               _difference(stats, 4), _p(stats["p_value"]), None, f"{n} x {cfg['epochs']}" + _budget(cfg),
                               _where(results)],
                     "stats": stats, "spinal_better": stats["difference_mean"] < 0})
    return rows


HEADER = ["experiment", "paper: fc", "paper: Spinal", "measured: fc", "measured: Spinal",
          "Spinal − fc (95% CI)", "p", "p (Holm)", "seeds x epochs", "hardware, commit", "does the Spinal head help?"]
HOLM_COLUMN = HEADER.index("p (Holm)")


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


def render(paths: list[Path], include_missing: bool = False) -> str:
    """One row per comparison (per target for regression); p-values are Holm-corrected across all rows."""
    from spinalnet.stats import holm

    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in paths:
        results = load_results(path)
        seen.add((results.get("experiment") or {}).get("name", ""))
        rows.extend(_rows(results))
    for row, p_holm in zip(rows, holm([row["stats"]["p_value"] for row in rows])):
        row["cells"][HOLM_COLUMN] = _p(p_holm)
        row["cells"].append(verdict(row["stats"], p_holm, row["spinal_better"]))
    table = [row["cells"] for row in rows]
    if include_missing:
        from spinalnet.comparison.experiments import experiments

        for name, exp in experiments().items():
            if name not in seen:
                paper = exp.paper
                table.append([name, _paper(paper, "fc"), _paper(paper, "spinal"), *["-"] * 7, not_run_reason(exp)])
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join(lines)
