"""Paired statistics: values against scipy and textbook anchors, the two-level bootstrap, Holm, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from spinalnet.stats import (_example_level_means, bootstrap_ci, describe, holm, paired_power, paired_stats,
                             seeds_for_power)

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
    assert flat.difference_ci95 == [1.0, 1.0]
    zero = paired_stats([80.0, 81.0], [80.0, 81.0])
    assert zero.p_value is None and zero.p_value_wilcoxon is None and zero.prob_improvement == 0.5
    with pytest.raises(ValueError, match="same seeds"):
        paired_stats([1.0, 2.0], [1.0])


def test_example_level_resampling_has_the_bootstrap_mean_and_spread():
    rng = np.random.default_rng(1)
    accuracy_like = rng.choice([-100.0, 0.0, 100.0], p=[0.05, 0.85, 0.10], size=2000)  # counts path
    continuous = rng.normal(0.3, 2.0, size=200)  # index path
    for d in (accuracy_like, continuous):
        means = _example_level_means([d], np.random.default_rng(2), (20000,))[0]
        assert means.mean() == pytest.approx(d.mean(), abs=3 * d.std() / np.sqrt(len(d) * 20000))
        assert means.std() == pytest.approx(d.std() / np.sqrt(len(d)), rel=0.03)


def test_two_level_interval_is_wider_than_seeds_only_and_deterministic():
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(6):
        fc = 100.0 * (rng.random(3000) < 0.85)
        sp = np.where(rng.random(3000) < 0.9, fc, 100.0 - fc)  # the heads disagree on 10 % of examples
        runs.append((fc, sp))
    a, b = [r[0].mean() for r in runs], [r[1].mean() for r in runs]
    diffs = np.subtract(b, a)
    seeds_only = bootstrap_ci(diffs)
    both = bootstrap_ci(diffs, [sp - fc for fc, sp in runs])
    assert both[0] < seeds_only[0] and both[1] > seeds_only[1]
    assert both[0] < diffs.mean() < both[1]
    assert bootstrap_ci(diffs, [sp - fc for fc, sp in runs]) == both
    assert paired_stats(a, b, example_scores=runs).ci_level == "seeds and test examples"


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
