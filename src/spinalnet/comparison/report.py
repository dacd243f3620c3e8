"""``spinalnet report``: results files rendered as one Markdown table, with a verdict per experiment (imports no
torch: it reads files).

A comparison's row gives both answers when it has them: the Spinal head against the paper's baseline (the
``fc`` arm) and against an ordinary MLP of the same size (the ``mlp`` arm). p-values are Holm-corrected across
every contrast of the table.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from spinalnet.comparison.records import RECORD
from spinalnet.comparison.results_file import KINDS, RESULTS, read_results
from spinalnet.errors import UsageError
from spinalnet.heads.spec import is_paper_baseline, is_same_size, parse_arm

SIGNIFICANCE = 0.05
#: Experiments costlier than this on 2 CPU cores are marked "needs a GPU" when not run.
CPU_BUDGET_HOURS = 2.0
HEADER = ["experiment", "directory", "paper: fc", "paper: Spinal", "measured: fc", "measured: Spinal",
          "Spinal − fc (95% CI)", "p", "p (Holm)", "measured: same-size MLP", "Spinal − MLP (95% CI)",
          "p (Holm), vs MLP", "seeds x epochs", "hardware, commit", "does the Spinal head help?"]


def load_results(path: Path) -> dict[str, Any] | None:
    """A results file as a dict (None, with a note, for a directory that holds no results, such as a train run);
    a file that is not a results file is a UsageError."""
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
    data = read_results(file)
    data["_path"] = str(file.parent)
    return data


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The table rows of one results file; a file missing a field is named, not a traceback."""
    try:
        return regress_rows(results) if "targets" in results else [compare_row(results)]
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError, IndexError) as err:
        raise UsageError(f"{results['_path']}/results.json: incomplete results file ({type(err).__name__}: {err}); "
                         f"expected {KINDS}") from None


def _fmt(mean: float, std: float, n: int, digits: int = 2) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def _paper(paper: dict[str, Any], key: str) -> str:
    value = paper.get(key)
    return "-" if value is None else str(value)


def answer(stats: dict[str, Any] | None, p_holm: float | None, better: str, worse: str) -> str:
    """Yes or no only when the Holm-corrected p and the 95% interval agree; otherwise say what is missing."""
    if stats is None:
        return "-"
    n = stats["seeds"]
    seeds_only = " (interval over seeds only: no per-example predictions)" if stats.get("ci_level") == "seeds" else ""
    if p_holm is None:
        why = f"{n} seed{'s' if n != 1 else ''}" if n < 2 else "the differences have no spread"
        return f"inconclusive ({why}, no test)"
    ci = stats.get("difference_ci95")
    excludes_zero = ci is not None and (ci[0] > 0 or ci[1] < 0)
    if p_holm < SIGNIFICANCE and excludes_zero:
        text = f"**yes**, {better}" if stats["difference_mean"] > 0 else f"**no**, {worse}"
        return f"{text} (p (Holm) = {p_holm:.2g}){seeds_only}"
    if p_holm < SIGNIFICANCE:
        return f"unclear: p (Holm) = {p_holm:.2g} but the 95% interval includes 0{seeds_only}"
    return f"no significant difference (p (Holm) = {p_holm:.2g}){seeds_only}"


def _where(results: dict[str, Any]) -> str:
    hw = results.get("hardware") or {}
    device = hw.get("gpu") or f"{hw.get('cpu_count', '?')} CPU cores"
    full = (results.get("versions") or {}).get("git_commit") or "?"
    commit = full[:12] + ("-dirty" if full.endswith("-dirty") else "")
    return f"{device}, `{commit}`"


def paper_numbers(exp: dict[str, Any]) -> dict[str, Any]:
    """The paper's numbers from the experiment's current config (results files keep the copy of their day)."""
    from spinalnet.comparison.experiments import experiments

    known = experiments()
    return known[exp["name"]].paper if exp.get("name") in known else exp.get("paper") or {}


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def _difference(stats: dict[str, Any] | None, digits: int) -> str:
    if stats is None:
        return "-"
    ci = stats.get("difference_ci95")
    interval = "" if ci is None else f" ({ci[0]:+.{digits}f} to {ci[1]:+.{digits}f})"
    return f"{stats['difference_mean']:+.{digits}f}{interval}"


def _budget(cfg: dict[str, Any]) -> str:
    return f" ({cfg['limit_batches']:g} of each epoch)" if cfg.get("limit_batches", 1) != 1 else ""


def _measured(arm: dict[str, Any] | None) -> str:
    return "-" if arm is None else _fmt(arm["test_acc_mean"], arm["test_acc_std"], len(arm["test_acc"]))


def _directory(results: dict[str, Any]) -> str:
    path = Path(results["_path"])
    try:
        path = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return f"`{path}`"


def compare_row(results: dict[str, Any]) -> dict[str, Any]:
    exp = results.get("experiment") or {}
    arms, cfg, ref = results["arms"], results["config"], results["reference"]
    spinal = parse_arm(ref).kind == "spinal"  # the contrasts are the reference's: about SpinalNet only if it is one
    specs = [(c, parse_arm(c["arm"])) for c in results["contrasts"]] if spinal else []
    fc = next((c for c, spec in specs if is_paper_baseline(spec)), None)  # the paper's answer: plain fc only
    mlp = next((c for c, spec in specs if is_same_size(spec)), None)       # the first parameter-matched MLP
    n = len(arms[ref]["test_acc"])
    name = exp.get("name") or f"{results['dataset']} / {results['model']}"
    paper = paper_numbers(exp)
    seeds = f"{n} x {cfg['epochs']}" + _budget(cfg) + (" (tuned)" if results.get("tune") else "")
    cells = [name, _directory(results), _paper(paper, "fc"), _paper(paper, "spinal"),
             _measured(arms.get(fc["arm"]) if fc else None), _measured(arms[ref] if spinal else None),
             _difference(fc, 2),
             _p(fc["p_value"] if fc else None), None, _measured(arms.get(mlp["arm"]) if mlp else None),
             _difference(mlp, 2), None, seeds, _where(results)]
    note = (f"no answer: the reference arm {ref} is not a Spinal head" if not spinal else
            "no answer: no plain fc or same-size mlp arm to compare with")
    return {"cells": cells, "tests": [("vs fc", fc), ("vs same-size MLP", mlp)], "better": "Spinal better",
            "worse": "the other head better", "note": note}


def regress_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
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
        rows.append({"cells": [f"{exp.get('name', 'regression')}: {target} (test MSE; the paper's metric, min "
                               f"train-batch MSE, ours: fc {paper_fc:.4f}, Spinal {paper_sp:.4f})",
                               _directory(results), "-", "-",
                               _fmt(fc["test_mse_mean"], fc["test_mse_std"], n, 4),
                               _fmt(sp["test_mse_mean"], sp["test_mse_std"], n, 4),
                               _difference(shown, 4), _p(stats["p_value"]), None, "-", "-", None,
                               f"{n} x {cfg['epochs']}" + _budget(cfg), _where(results)],
                     "tests": [("vs fc", stats), ("vs same-size MLP", None)], "better": "Spinal better (lower MSE)",
                     "worse": "fc better (lower MSE)"})
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


def render(paths: list[Path], include_missing: bool = False) -> str:
    """One row per comparison (per target for regression); p-values are Holm-corrected across every contrast."""
    from spinalnet.stats import holm

    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in paths:
        results = load_results(path)
        if results is None:
            continue
        seen.add((results.get("experiment") or {}).get("name", ""))
        rows.extend(_rows(results))
    if not rows and not include_missing:
        raise UsageError(f"nothing to report: no results.json in {', '.join(map(str, paths))} (compare, regress or "
                         "reproduce output directories hold one)")
    tests = [stats for row in rows for _, stats in row["tests"] if stats is not None]
    adjusted = iter(holm([stats["p_value"] for stats in tests]))
    holm_of = {id(stats): next(adjusted) for stats in tests}
    for row in rows:
        answers = []
        for (label, stats), column in zip(row["tests"], (HEADER.index("p (Holm)"), HEADER.index("p (Holm), vs MLP"))):
            p = holm_of.get(id(stats)) if stats is not None else None
            row["cells"][column] = _p(p)
            if stats is not None:
                answers.append(f"{label}: {answer(stats, p, row['better'], row['worse'])}")
        row["cells"].append("; ".join(answers) or row.get("note", ""))
    table = [row["cells"] for row in rows]
    if include_missing:
        from spinalnet.comparison.experiments import experiments

        for name, exp in experiments().items():
            if name not in seen:
                paper = exp.paper
                table.append([name, "-", _paper(paper, "fc"), _paper(paper, "spinal"), *["-"] * 10,
                              not_run_reason(exp)])
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    return "\n".join(lines)
