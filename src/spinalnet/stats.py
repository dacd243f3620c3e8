"""Paired statistics for a comparison of two heads (or two regressors) trained with the same seeds.

Two runs with the same seed share the data split, order, augmentation and backbone initialisation, so a
comparison is paired by seed: every statistic here works on the per-seed differences
``d = candidate - baseline`` (test-accuracy points, or test MSE for regression). A comparison of several
arms has one such contrast per arm; :func:`holm` corrects their p-values together.

The interval and the test are one statistic (:func:`t_interval`), so they always agree: the interval
excludes 0 exactly when ``p < 0.05``. Its standard error adds the seed-to-seed spread of ``d`` (what a paired
t-test reads) and, where per-example predictions exist, the variance of the mean over test examples; with
``n - 1`` degrees of freedom it is never narrower than the paired t interval. (A percentile bootstrap over
2 to 5 seeds, used before, has 3 to 126 distinct resamples and printed intervals that excluded 0 at p = 0.37.)

Behaviour at the edges (also in docs/RESULTS.md):

- one seed: no test, no interval, no power estimate (all ``None``): one pair says nothing about
  seed-to-seed spread. ``prob_improvement`` is still 0, 0.5 or 1.
- no spread at all (every difference equal and no per-example variance): the test, the interval and the
  power estimate are undefined (``None``); the Wilcoxon test is ``None`` when every difference is 0 and
  exact otherwise.
- per-example scores (from ``predictions.npz``) missing for any seed: the standard error has the
  seed-to-seed part only (``ci_level == "seeds"``): the paired t-test and its interval.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

POWER = 0.8
ALPHA = 0.05
#: Above this many seeds the power search stops and reports None ("not reachable in practice").
MAX_SEEDS_FOR_POWER = 100_000


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def error_reduction_pct(baseline_acc: Sequence[float], candidate_acc: Sequence[float]) -> float | None:
    """Relative reduction of the mean test error (100 - accuracy), candidate vs baseline, in %."""
    base_err = 100.0 - statistics.fmean(baseline_acc)
    if base_err <= 0:
        return None
    return 100.0 * (base_err - (100.0 - statistics.fmean(candidate_acc))) / base_err


@dataclass
class PairedStats:
    """What ``results.json`` stores for one comparison; every field but the interval is a function of the
    per-seed lists alone, and the interval also of the per-example scores."""

    difference_mean: float
    difference_ci95: list[float] | None
    ci_level: str                 # "seeds and test examples" or "seeds" (no per-example scores)
    p_value: float | None         # two-sided test of the interval's statistic (a paired t-test over seeds)
    p_value_wilcoxon: float | None  # exact signed-rank test, two-sided
    prob_improvement: float       # share of seeds where the candidate is better, ties count half
    better_in: int                # seeds where the candidate is strictly better
    seeds: int
    seeds_for_power: int | None

    def as_dict(self, digits: int = 6) -> dict:
        out = asdict(self)
        for key in ("difference_mean", "prob_improvement"):
            out[key] = round(out[key], digits)
        for key in ("p_value", "p_value_wilcoxon"):  # significant digits: a tiny p must not print as 0
            if out[key] is not None:
                out[key] = float(f"{out[key]:.{digits}g}")
        if out["difference_ci95"] is not None:
            out["difference_ci95"] = [round(v, digits) for v in out["difference_ci95"]]
        return out


def wilcoxon_p_value(diffs: np.ndarray) -> float | None:
    """Exact two-sided signed-rank test; zero differences are dropped (Wilcoxon's convention)."""
    if len(diffs) < 2 or not np.any(diffs != 0):
        return None
    from scipy import stats

    with warnings.catch_warnings():  # ties among |d|: scipy warns that the exact distribution assumes none
        warnings.simplefilter("ignore")
        return float(stats.wilcoxon(diffs, zero_method="wilcox", method="exact").pvalue)


def paired_power(n: int | np.ndarray, effect: float, alpha: float = ALPHA) -> np.ndarray:
    """Power of the two-sided paired t-test with ``n`` pairs when mean(d) / sd(d) = ``effect``."""
    from scipy import stats

    n = np.asarray(n, dtype=float)
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = effect * np.sqrt(n)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
    # scipy's noncentral t can return nan far in the tail; the normal approximation is exact enough there
    normal = stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc)
    return np.where(np.isnan(exact), normal, exact)


def seeds_for_power(diffs: np.ndarray, power: float = POWER, alpha: float = ALPHA) -> int | None:
    """Smallest number of seeds whose paired t-test reaches ``power`` for the observed mean and spread."""
    if len(diffs) < 2:
        return None
    sd = float(np.std(diffs, ddof=1))
    if sd == 0 or float(np.mean(diffs)) == 0:
        return None
    effect = abs(float(np.mean(diffs))) / sd
    if paired_power(MAX_SEEDS_FOR_POWER, effect, alpha) < power:
        return None
    lo, hi = 2, MAX_SEEDS_FOR_POWER  # power grows with n: bisect for the first n that reaches it
    while lo < hi:
        mid = (lo + hi) // 2
        if paired_power(mid, effect, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _example_variance(example_diffs: list[np.ndarray] | None, shared: bool) -> float:
    """The variance of the mean difference over test examples: a new test set of the same size would move it
    by this much. When every seed is tested on the same examples (``shared``: a comparison's fixed test split),
    the per-example differences are first averaged over seeds (one value per example) and resampled together;
    test sets of their own (the regression study draws data per seed) are resampled each on its own."""
    if not example_diffs:
        return 0.0
    if shared:
        per_example = np.mean(np.stack(example_diffs), axis=0)
        return float(np.var(per_example, ddof=1) / len(per_example)) if len(per_example) > 1 else 0.0
    n = len(example_diffs)
    return float(sum(np.var(d, ddof=1) / len(d) for d in example_diffs if len(d) > 1) / n**2)


def t_interval(diffs: np.ndarray, example_diffs: list[np.ndarray] | None = None, shared: bool = False,
               level: float = 0.95) -> tuple[list[float] | None, float | None]:
    """The interval of the mean paired difference and the two-sided p of its test, from one statistic.

    ``t = mean(d) / se`` with ``n - 1`` degrees of freedom (n seeds), where ``se^2 = var(d) / n`` (the
    seed-to-seed spread, what a paired t-test reads) plus, given per-example differences, the variance of the
    mean over test examples (:func:`_example_variance`): the interval covers the spread over seeds at least
    as a paired t interval does, and it excludes 0 exactly when ``p < 1 - level``. None for one seed, or when
    there is no spread at all.
    """
    n = len(diffs)
    if n < 2:
        return None, None
    se = math.sqrt(float(np.var(diffs, ddof=1)) / n + _example_variance(example_diffs, shared))
    if se == 0:
        return None, None
    from scipy import stats

    mean = float(np.mean(diffs))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return [mean - half, mean + half], p


def paired_stats(baseline: Sequence[float], candidate: Sequence[float], higher_is_better: bool = True,
                 example_scores: list[tuple[np.ndarray, np.ndarray]] | None = None,
                 shared_examples: bool = False) -> PairedStats:
    """Paired statistics of ``candidate - baseline`` over seeds (lists in the same seed order).

    ``example_scores``: per seed, the per-example scores of (baseline, candidate) on the same test
    examples, whose means are the per-seed values (100 * correct for accuracy, squared error for MSE);
    None when any run lacks them. ``shared_examples``: every seed was tested on the same examples, in the
    same order.
    """
    if len(baseline) != len(candidate) or not baseline:
        raise ValueError(f"paired statistics need the same seeds for both: {len(baseline)} vs {len(candidate)} values")
    diffs = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    better = diffs > 0 if higher_is_better else diffs < 0
    ties = diffs == 0
    example_diffs = None if example_scores is None else [np.asarray(c, float) - np.asarray(b, float)
                                                         for b, c in example_scores]
    interval, p = t_interval(diffs, example_diffs, shared_examples)
    return PairedStats(
        difference_mean=float(diffs.mean()),
        difference_ci95=interval,
        ci_level="seeds and test examples" if example_diffs is not None else "seeds",
        p_value=p, p_value_wilcoxon=wilcoxon_p_value(diffs),
        prob_improvement=float((better.sum() + 0.5 * ties.sum()) / len(diffs)),
        better_in=int(better.sum()), seeds=len(diffs), seeds_for_power=seeds_for_power(diffs))


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); None entries are not tests."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(tested)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def describe(stats: dict, unit: str, candidate: str = "Spinal", better_word: str = "better",
             digits: int = 2) -> str:
    """The comparison in plain words, e.g. 'Spinal +1.20 points (95% CI +0.40 to +2.00), paired p = 0.01,
    better in 5 of 5 seeds'."""
    text = f"{candidate} {stats['difference_mean']:+.{digits}f} {unit}"
    ci = stats.get("difference_ci95")
    if ci is not None:
        scope = "" if stats.get("ci_level") != "seeds" else ", seeds only"
        text += f" (95% CI {ci[0]:+.{digits}f} to {ci[1]:+.{digits}f}{scope})"
    p = stats.get("p_value")
    text += ", paired p = " + (f"{p:.2g}" if p is not None else "n/a" + (" (1 seed)" if stats["seeds"] < 2 else
                                                                         " (no spread)"))
    return text + f", {better_word} in {stats['better_in']} of {stats['seeds']} seed{'s' if stats['seeds'] != 1 else ''}"
