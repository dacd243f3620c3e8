"""``spinalnet report``: results files rendered as one Markdown table, with a verdict per experiment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spinalnet.errors import UsageError

SIGNIFICANCE = 0.05
#: Experiments costlier than this on 2 CPU cores are marked "needs a GPU" when not run.
CPU_BUDGET_HOURS = 2.0


RESULTS_KINDS = "the results.json of compare, regress or reproduce"


def load_results(path: Path) -> dict[str, Any]:
    """A results file as a dict; anything else (a single run's result.json, a list, bad JSON) is a UsageError."""
    file = path / "results.json" if path.is_dir() else path
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


def _rows(results: dict[str, Any]) -> list[list[str]]:
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


def verdict(p: float | None, spinal_better: bool, n: int) -> str:
    if p is None:
        return f"inconclusive ({n} seed{'s' if n != 1 else ''}, no test)"
    if p < SIGNIFICANCE:
        return f"**yes**, Spinal better (p = {p:.3g})" if spinal_better else f"**no**, fc better (p = {p:.3g})"
    return f"no significant difference (p = {p:.2g})"


def _where(results: dict[str, Any]) -> str:
    hw = results.get("hardware", {})
    device = hw.get("gpu") or f"{hw.get('cpu_count', '?')} CPU cores"
    full = results.get("versions", {}).get("git_commit") or "?"
    commit = full[:12] + ("-dirty" if full.endswith("-dirty") else "")
    return f"{device}, `{commit}`"


def _budget(cfg: dict[str, Any]) -> str:
    return f" ({cfg['limit_batches']:g} of each epoch)" if cfg.get("limit_batches", 1) != 1 else ""


def compare_row(results: dict[str, Any]) -> list[str]:
    exp = results.get("experiment") or {}
    fc, sp = results["fc"], results["spinal"]
    cfg = results["config"]
    n = len(sp["test_acc"])
    name = exp.get("name") or f"{results['dataset']} / {results['model']}"
    return [name, _paper(exp.get("paper", {}), "fc"), _paper(exp.get("paper", {}), "spinal"),
            _fmt(fc["test_acc_mean"], fc["test_acc_std"]), _fmt(sp["test_acc_mean"], sp["test_acc_std"]),
            "-" if results.get("p_value") is None else f"{results['p_value']:.3g}",
            f"{n} x {cfg['epochs']}" + _budget(cfg),
            _where(results), verdict(results.get("p_value"), sp["test_acc_mean"] > fc["test_acc_mean"], n)]


def regress_rows(results: dict[str, Any]) -> list[list[str]]:
    exp = results.get("experiment") or {}
    cfg = results["config"]
    rows = []
    for target, res in results["targets"].items():
        fc, sp = res["fc"], res["spinal"]
        n = len(sp["test_mse"])
        paper_fc = sum(fc["paper_metric_min_train_batch_mse"]) / n
        paper_sp = sum(sp["paper_metric_min_train_batch_mse"]) / n
        rows.append([f"{exp.get('name', 'regression')}: {target} (test MSE)",
                     f"paper's metric, ours: {paper_fc:.4f}", f"paper's metric, ours: {paper_sp:.4f}",
                     _fmt(fc["test_mse_mean"], fc["test_mse_std"], 4), _fmt(sp["test_mse_mean"], sp["test_mse_std"], 4),
                     "-" if res.get("p_value") is None else f"{res['p_value']:.3g}", f"{n} x {cfg['epochs']}" + _budget(cfg),
                     _where(results), verdict(res.get("p_value"), sp["test_mse_mean"] < fc["test_mse_mean"], n)])
    return rows


HEADER = ["experiment", "paper: fc", "paper: Spinal", "measured: fc", "measured: Spinal", "p", "seeds x epochs",
          "hardware, commit", "does the Spinal head help?"]


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
    rows: list[list[str]] = []
    seen: set[str] = set()
    for path in paths:
        results = load_results(path)
        seen.add((results.get("experiment") or {}).get("name", ""))
        rows.extend(_rows(results))
    if include_missing:
        from spinalnet.reproduce import experiments

        for name, exp in experiments().items():
            if name not in seen:
                paper = exp.paper
                rows.append([name, _paper(paper, "fc"), _paper(paper, "spinal"), "-", "-", "-", "-", "-",
                             not_run_reason(exp)])
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
