"""Summary statistics for a comparison: mean +- std, relative error reduction, Welch's t-test."""

from __future__ import annotations

import math
import statistics


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def error_reduction_pct(baseline_acc: list[float], candidate_acc: list[float]) -> float | None:
    """Relative reduction of the mean test error (100 - accuracy), candidate vs baseline, in %."""
    base_err = 100.0 - statistics.fmean(baseline_acc)
    if base_err <= 0:
        return None
    return 100.0 * (base_err - (100.0 - statistics.fmean(candidate_acc))) / base_err


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test p-value; None with fewer than two values per side or no variance."""
    if len(a) < 2 or len(b) < 2:
        return None
    import warnings

    from scipy import stats

    with warnings.catch_warnings():  # identical samples: scipy warns and returns nan
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return None if math.isnan(p) else p
