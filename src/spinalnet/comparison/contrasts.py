"""Statistics across arms (no framework import): each arm's accuracy over seeds (:class:`ArmSummary`), and every
arm against the reference arm, paired by seed (:class:`Contrast`), with Holm-Bonferroni across the contrasts of
one comparison. Both are parts of a comparison's ``results.json``
(:class:`~spinalnet.comparison.results_file.ComparisonSummary`).

A contrast's difference is reference minus arm (for the default reference, spinal minus fc, as the two-head
comparison always printed it). Its statistics are :func:`spinalnet.stats.paired_stats` of the per-seed test
accuracies, with the per-example predictions where every run has them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

import numpy as np

from spinalnet.engine.run_record import RunResult
from spinalnet.heads.spec import contrast_label, parse_arm
from spinalnet.stats import error_reduction_pct, holm, mean_std, paired_stats

Predictions = dict[tuple[str, int], dict[str, np.ndarray] | None]


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of the dataclass ``cls`` (a record of another version may have more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def missing_fields(cls: type, data: Any) -> list[str]:
    """The fields ``cls`` needs (those without a default) that ``data`` lacks; all of them when it is no mapping.
    A file cut short or edited by hand is named by these, so that a bug of ours is never taken for one."""
    from dataclasses import MISSING

    needed = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    return needed if not isinstance(data, dict) else [name for name in needed if name not in data]


@dataclass
class ArmSummary:
    """One arm's runs (one per seed), as lists over seeds, with their mean +- std and the head they trained."""

    spec: str | None
    seeds: list[int]
    test_acc: list[float]
    test_acc_mean: float
    test_acc_std: float
    val_acc: list[float | None] = field(default_factory=list)
    params: int = 0
    head_params: int = 0
    head: dict[str, Any] = field(default_factory=dict)
    train_seconds: list[float] = field(default_factory=list)
    images_per_second: float = 0.0
    epochs: list[int] = field(default_factory=list)
    best_epoch: list[int | None] = field(default_factory=list)
    still_improving: list[bool] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArmSummary":
        return cls(**known_fields(cls, data))


@dataclass
class Contrast:
    """The reference arm against ``arm``, paired by seed (:func:`spinalnet.stats.paired_stats` of reference - arm)."""

    arm: str
    reference: str
    kind: str
    label: str
    difference_mean: float
    difference_ci95: list[float] | None
    ci_level: str
    p_value: float | None
    p_value_wilcoxon: float | None
    prob_improvement: float
    better_in: int
    seeds: int
    seeds_for_power: int | None
    error_reduction_pct: float | None = None
    p_holm: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Contrast":
        return cls(**known_fields(cls, data))


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


def arm_summary(runs: list[RunResult]) -> ArmSummary:
    """One arm's runs (one per seed) as lists over seeds, with their mean +- std and the head they trained."""
    runs = sorted(runs, key=lambda r: r.seed)
    acc = [r.test_acc for r in runs]
    mean, std = mean_std(acc)
    info = runs[0].head_info
    return ArmSummary(
        spec=runs[0].config.get("head"), seeds=[r.seed for r in runs], test_acc=acc,
        test_acc_mean=round(mean, 4), test_acc_std=round(std, 4), val_acc=[r.val_acc for r in runs],
        params=runs[0].params, head_params=runs[0].head_params,
        head={"shape": head_shape(info), **(info or {"layers": None, "dropout": None, "init": None})},
        train_seconds=[r.train_seconds for r in runs],
        images_per_second=round(sum(r.images_per_second for r in runs) / len(runs), 1),
        epochs=[r.epochs for r in runs], best_epoch=[r.best_epoch for r in runs],
        still_improving=[still_improving(r.val_acc_curve, r.stopped_early) for r in runs])


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


def contrast(arm: str, summary: ArmSummary, reference: str, ref: ArmSummary, predictions: Predictions) -> Contrast:
    """``reference`` against ``arm`` over the seeds both have: the paired statistics of reference - arm."""
    seeds = [s for s in summary.seeds if s in ref.seeds]
    base = [summary.test_acc[summary.seeds.index(s)] for s in seeds]
    cand = [ref.test_acc[ref.seeds.index(s)] for s in seeds]
    scores = example_scores(predictions, arm, reference, seeds)
    truth = [predictions[(reference, s)]["y_true"] for s in seeds] if scores is not None else []
    shared = all(np.array_equal(truth[0], t) for t in truth)  # one test split for every seed
    stats = paired_stats(base, cand, example_scores=scores, shared_examples=shared).as_dict()
    reduction = error_reduction_pct(base, cand)
    spec = parse_arm(arm)
    label = contrast_label(spec, parse_arm(reference))
    return Contrast(arm=arm, reference=reference, kind=spec.kind, label=label, **stats,
                    error_reduction_pct=None if reduction is None else round(reduction, 3))


def contrasts(arms: dict[str, ArmSummary], reference: str, predictions: Predictions) -> list[Contrast]:
    """Every arm against ``reference``, in the arms' order, with ``p_holm`` across these contrasts."""
    if reference not in arms:
        return []
    found = [contrast(name, summary, reference, arms[reference], predictions)
             for name, summary in arms.items() if name != reference]
    for item, adjusted in zip(found, holm([c.p_value for c in found])):
        item.p_holm = None if adjusted is None else float(f"{adjusted:.6g}")
    return found


def choose(val_means: dict[str, float | None]) -> str:
    """The tuning point (by its slug) with the best mean validation accuracy; the first such in grid order."""
    scored = [(value, i, point) for i, (point, value) in enumerate(val_means.items()) if value is not None]
    if not scored:
        return next(iter(val_means))
    best = max(value for value, _, _ in scored)
    return next(point for value, _, point in scored if value == best)


# ---------------------------------------------------------------------------------------------- convergence
# Whether a comparison's runs had finished learning when their budget ran out (no framework import).
#
# A run **was still improving** at its last epoch when all of these hold:
#
# 1. ``--patience`` did not stop it (a stopped run went ``patience`` epochs without improving);
# 2. its best validation accuracy came in the last 10% of its epochs (at least its last epoch);
# 3. over the last half of its epochs (at least 3 of them) its validation accuracy rose faster than its own noise:
#    the least-squares slope is positive and more than twice its standard error. With fewer than 3 epochs there is
#    no slope to read, and 2 alone decides.
#
# An arm counts as unconverged when at least half of its runs were still improving; a comparison when any arm is.
# Its verdict then says so, and suggests twice the epochs (with ``--patience`` so that runs stop once they plateau):
# an unconverged comparison measures the heads' speed of learning as much as what they can learn.

#: The share of the last epochs in which a best epoch counts as "at the end".
LAST_SHARE = 0.1
#: A slope counts as rising when it exceeds this many standard errors.
SLOPE_T = 2.0


def still_improving(curve: Sequence[float], stopped_early: bool = False) -> bool:
    """Whether a run with validation curve ``curve`` (one value per epoch) was still learning at its end."""
    if stopped_early or not curve:
        return False
    epochs = len(curve)
    best = curve.index(max(curve)) + 1
    if best <= epochs - max(1, math.ceil(LAST_SHARE * epochs)):
        return False
    tail = list(curve[epochs // 2:]) if epochs >= 6 else list(curve[-3:])
    if len(tail) < 3:
        return True
    slope, se = _slope(tail)
    return slope > 0 and (se == 0 or slope > SLOPE_T * se)


def _slope(values: list[float]) -> tuple[float, float]:
    """Least-squares slope of ``values`` against 0, 1, 2, ... and its standard error."""
    n = len(values)
    mx, my = (n - 1) / 2, sum(values) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    slope = sum((i - mx) * (v - my) for i, v in enumerate(values)) / sxx
    residual = sum((v - my - slope * (i - mx)) ** 2 for i, v in enumerate(values))
    return slope, math.sqrt(residual / (n - 2) / sxx) if n > 2 else 0.0


@dataclass(frozen=True)
class Convergence:
    """A comparison's convergence: runs still improving per arm, and a fairer budget when any arm is."""

    converged: bool
    epochs: int
    runs: int
    still_improving: int
    arms: dict[str, list[int]]  # arm -> [runs still improving, runs]
    suggested_epochs: int | None
    suggested_patience: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        """The verdict's line about convergence (empty when the runs had converged)."""
        if self.converged:
            return ""
        arms = ", ".join(f"{arm} {k} of {n}" for arm, (k, n) in self.arms.items() if k)
        return (f"not converged: {self.still_improving} of {self.runs} runs were still improving at epoch "
                f"{self.epochs} ({arms}), so these differences may be differences in speed of learning; a fairer "
                f"budget: --epochs {self.suggested_epochs} --patience {self.suggested_patience}")


def assess(curves: dict[str, list[list[float]]], stopped: dict[str, list[bool]], epochs: int) -> Convergence:
    """``curves``: per arm, each run's validation curve; ``stopped``: per arm, whether --patience stopped each run."""
    arms = {arm: [sum(still_improving(c, s) for c, s in zip(runs, stopped[arm])), len(runs)]
            for arm, runs in curves.items()}
    unconverged = any(k * 2 >= n and k > 0 for k, n in arms.values())
    total, improving = sum(n for _, n in arms.values()), sum(k for k, _ in arms.values())
    return Convergence(not unconverged, epochs, total, improving, arms,
                       2 * epochs if unconverged else None, max(3, epochs // 5) if unconverged else None)
