"""Paired statistics: values against scipy and textbook anchors, the interval and the test as one statistic,
Holm, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from spinalnet.stats import describe, holm, paired_power, paired_stats, seeds_for_power, t_interval

FC = [85.1, 84.7, 85.9, 84.2, 85.5]
SPINAL = [86.0, 85.9, 86.1, 85.0, 86.4]


def test_paired_tests_match_scipy_and_differ_from_welch():
    s = paired_stats(FC, SPINAL)
    assert s.difference_mean == pytest.approx(np.mean(np.subtract(SPINAL, FC)))
    assert s.p_value == pytest.approx(sps.ttest_rel(SPINAL, FC).pvalue, rel=1e-12)
    assert s.p_value != pytest.approx(sps.ttest_ind(SPINAL, FC, equal_var=False).pvalue, rel=1e-3)
    # all five differences positive: the exact signed-rank p is 2 / 2^5
    assert s.p_value_wilcoxon == pytest.approx(2 / 32)
    assert (s.prob_improvement, s.better_in, s.seeds) == (1.0, 5, 5)


def test_prob_improvement_counts_ties_half_and_lower_is_better_for_mse():
    s = paired_stats([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 3.0])  # better, tie, worse, worse
    assert s.prob_improvement == pytest.approx(1.5 / 4) and s.better_in == 1
    mse = paired_stats([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 3.0], higher_is_better=False)
    assert mse.prob_improvement == pytest.approx(2.5 / 4) and mse.better_in == 2


@pytest.mark.parametrize("effect,expected", [(1.0, 10), (0.5, 34)])  # standard power tables, paired t, 80 %
def test_seeds_for_power_matches_power_tables(effect, expected):
    diffs = np.array([effect - 1, effect + 1, effect - 1, effect + 1]) * 1.0
    diffs = effect + (diffs - diffs.mean()) / diffs.std(ddof=1)  # mean = effect, sd = 1
    n = seeds_for_power(diffs)
    assert n == expected
    assert paired_power(n, effect) >= 0.8 > paired_power(n - 1, effect)


def test_edge_cases_one_seed_no_spread_all_zero():
    one = paired_stats([80.0], [81.0])
    assert (one.p_value, one.p_value_wilcoxon, one.difference_ci95, one.seeds_for_power) == (None, None, None, None)
    assert one.prob_improvement == 1.0
    flat = paired_stats([80.0, 81.0, 82.0], [81.0, 82.0, 83.0])  # every difference is +1
    assert flat.p_value is None and flat.seeds_for_power is None and flat.p_value_wilcoxon == pytest.approx(0.25)
    assert flat.difference_ci95 is None  # no spread at all: no interval either
    zero = paired_stats([80.0, 81.0], [80.0, 81.0])
    assert zero.p_value is None and zero.p_value_wilcoxon is None and zero.prob_improvement == 0.5
    with pytest.raises(ValueError, match="same seeds"):
        paired_stats([1.0, 2.0], [1.0])


def test_without_examples_it_is_the_paired_t_test_and_its_interval():
    s = paired_stats(FC, SPINAL)
    d = np.subtract(SPINAL, FC)
    half = sps.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    assert s.difference_ci95 == pytest.approx([d.mean() - half, d.mean() + half], rel=1e-12)
    assert s.ci_level == "seeds"


def _accuracy_runs(seeds: int, rng: np.random.Generator, examples: int = 400, gap: float = 0.0):
    """Per seed, (fc, spinal) correct-or-not scores on one shared test set; spinal flips ``gap`` of fc's errors."""
    hard = rng.random(examples) < 0.3  # the same hard examples for every seed
    runs = []
    for _ in range(seeds):
        fc = 100.0 * (rng.random(examples) < np.where(hard, 0.5, 0.95))
        sp = np.where((fc == 0) & (rng.random(examples) < gap), 100.0, fc)
        sp = np.where(rng.random(examples) < 0.05, 100.0 - sp, sp)
        runs.append((fc, sp))
    return runs


@pytest.mark.parametrize("seeds", [2, 3, 5])
def test_no_interval_excludes_zero_while_p_is_above_0_05_or_the_reverse(seeds):
    """The printed interval and the printed p come from one statistic: they never disagree, with and without
    per-example scores, over many random comparisons (and never is the interval narrower than a paired t's)."""
    rng = np.random.default_rng(seeds)
    checked = 0
    for trial in range(300):
        runs = _accuracy_runs(seeds, rng, gap=rng.choice([0.0, 0.1, 0.3]))
        a, b = [r[0].mean() for r in runs], [r[1].mean() for r in runs]
        for scores, shared in ((None, False), (runs, True), (runs, False)):
            s = paired_stats(a, b, example_scores=scores, shared_examples=shared)
            if s.p_value is None:
                continue
            low, high = s.difference_ci95
            excludes = low > 0 or high < 0
            if abs(s.p_value - 0.05) > 1e-9:
                assert excludes == (s.p_value < 0.05), (trial, s)
            d = np.subtract(b, a)
            half_t = sps.t.ppf(0.975, seeds - 1) * d.std(ddof=1) / np.sqrt(seeds)
            assert high - low >= 2 * half_t - 1e-9
            checked += 1
    assert checked > 300


def test_two_seeds_that_disagree_give_a_wide_interval():
    """The case that was wrong: 2 seeds, -16.67 points, p = 0.37 printed an interval of -32.29 to -1.04."""
    s = paired_stats([50.0, 60.0], [41.0, 35.67])
    assert s.p_value == pytest.approx(sps.ttest_rel([41.0, 35.67], [50.0, 60.0]).pvalue)
    assert s.difference_ci95[0] < 0 < s.difference_ci95[1]


def test_test_examples_widen_the_interval_and_shared_examples_count_once():
    rng = np.random.default_rng(0)
    runs = _accuracy_runs(6, rng, examples=3000, gap=0.2)
    a, b = [r[0].mean() for r in runs], [r[1].mean() for r in runs]
    seeds_only, both = paired_stats(a, b), paired_stats(a, b, example_scores=runs, shared_examples=True)
    assert both.difference_ci95[0] < seeds_only.difference_ci95[0] and both.difference_ci95[1] > seeds_only.difference_ci95[1]
    assert both.ci_level == "seeds and test examples"
    per_example = np.mean([sp - fc for fc, sp in runs], axis=0)  # one value per shared test example
    d = np.subtract(b, a)
    se = np.sqrt(d.var(ddof=1) / 6 + per_example.var(ddof=1) / len(per_example))
    interval, p = t_interval(d, [sp - fc for fc, sp in runs], shared=True)
    assert interval[1] - interval[0] == pytest.approx(2 * sps.t.ppf(0.975, 5) * se)
    assert p == pytest.approx(2 * sps.t.sf(abs(d.mean()) / se, 5))


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_describe_in_plain_words():
    s = paired_stats(FC, SPINAL).as_dict()
    text = describe(s, "points")
    low, high = s["difference_ci95"]
    assert text == (f"Spinal +0.80 points (95% CI {low:+.2f} to {high:+.2f}, seeds only), "
                    f"paired p = {s['p_value']:.2g}, better in 5 of 5 seeds")
    assert "paired p = n/a (1 seed)" in describe(paired_stats([1.0], [2.0]).as_dict(), "points")
