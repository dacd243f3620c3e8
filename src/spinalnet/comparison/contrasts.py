"""Statistics across arms (no framework import): each arm's accuracy over seeds, and every arm against the
reference arm, paired by seed, with Holm-Bonferroni across the contrasts of one comparison.

A contrast's difference is reference minus arm (for the default reference, spinal minus fc, as the two-head
comparison always printed it). Its statistics are :func:`spinalnet.stats.paired_stats` of the per-seed test
accuracies, with the per-example predictions where every run has them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from spinalnet.heads.spec import contrast_label, parse_arm
from spinalnet.stats import error_reduction_pct, holm, mean_std, paired_stats

Predictions = dict[tuple[str, int], dict[str, np.ndarray] | None]


def head_shape(info: dict[str, Any] | None) -> str:
    """A head's layers in a few characters: ``320-50-10`` for Linears, ``spinal 320: 6 x 8 -> 10``."""
    if not info or not info.get("layers"):
        return "-"
    parts, widths = [], []
    for layer in info["layers"]:
        if layer.startswith("Linear("):
            a, b = layer[len("Linear("):-1].split("->")
            widths = widths or [a]
            widths.append(b)
        elif layer.startswith("SpinalLinear("):
            sizes, rest = layer[len("SpinalLinear("):].split(", ", 1)
            a, b = sizes.split("->")
            parts.append(f"spinal {a}: {rest.split(',')[0]} -> {b}")
    if widths:
        parts.append("-".join(widths))
    return " + ".join(parts)


def arm_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One arm's runs (one per seed) as lists over seeds, with their mean +- std and the head they trained."""
    runs = sorted(runs, key=lambda r: r["seed"])
    acc = [r["test_acc"] for r in runs]
    mean, std = mean_std(acc)
    info = runs[0].get("head_info")
    return {
        "spec": runs[0]["config"].get("head"), "seeds": [r["seed"] for r in runs], "test_acc": acc,
        "test_acc_mean": round(mean, 4), "test_acc_std": round(std, 4), "val_acc": [r["val_acc"] for r in runs],
        "params": runs[0]["params"], "head_params": runs[0]["head_params"],
        "head": {"shape": head_shape(info), **(info or {"layers": None, "dropout": None, "init": None})},
        "train_seconds": [r["train_seconds"] for r in runs],
        "images_per_second": round(sum(r["images_per_second"] for r in runs) / len(runs), 1),
    }


def example_scores(predictions: Predictions, arm: str, reference: str,
                   seeds: list[int]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Per seed, 100 * (prediction correct) per test example for (arm, reference); None if any run lacks them
    or the two arms' test examples differ."""
    out = []
    for seed in seeds:
        a, r = predictions.get((arm, seed)), predictions.get((reference, seed))
        if a is None or r is None or not np.array_equal(a["y_true"], r["y_true"]):
            return None
        out.append(tuple(100.0 * (p["y_pred"] == p["y_true"]) for p in (a, r)))
    return out


def contrast(arm: str, summary: dict[str, Any], reference: str, ref: dict[str, Any],
             predictions: Predictions) -> dict[str, Any]:
    """``reference`` against ``arm`` over the seeds both have: the paired statistics of reference - arm."""
    seeds = [s for s in summary["seeds"] if s in ref["seeds"]]
    base = [summary["test_acc"][summary["seeds"].index(s)] for s in seeds]
    cand = [ref["test_acc"][ref["seeds"].index(s)] for s in seeds]
    scores = example_scores(predictions, arm, reference, seeds)
    truth = [predictions[(reference, s)]["y_true"] for s in seeds] if scores is not None else []
    shared = all(np.array_equal(truth[0], t) for t in truth)  # one test split for every seed
    stats = paired_stats(base, cand, example_scores=scores, shared_examples=shared).as_dict()
    reduction = error_reduction_pct(base, cand)
    spec = parse_arm(arm)
    label = contrast_label(spec, parse_arm(reference))
    return {"arm": arm, "reference": reference, "kind": spec.kind, "label": label, **stats,
            "error_reduction_pct": None if reduction is None else round(reduction, 3)}


def contrasts(arms: dict[str, dict[str, Any]], reference: str, predictions: Predictions) -> list[dict[str, Any]]:
    """Every arm against ``reference``, in the arms' order, with ``p_holm`` across these contrasts."""
    if reference not in arms:
        return []
    found = [contrast(name, summary, reference, arms[reference], predictions)
             for name, summary in arms.items() if name != reference]
    for item, adjusted in zip(found, holm([c["p_value"] for c in found])):
        item["p_holm"] = None if adjusted is None else float(f"{adjusted:.6g}")
    return found


def choose(val_means: dict[str, float | None]) -> str:
    """The tuning point (by its slug) with the best mean validation accuracy; the first such in grid order."""
    scored = [(value, i, point) for i, (point, value) in enumerate(val_means.items()) if value is not None]
    if not scored:
        return next(iter(val_means))
    best = max(value for value, _, _ in scored)
    return next(point for value, _, point in scored if value == best)
