"""The pooled verdict (spinalnet.meta): published worked examples (metafor's BCG vaccine output, Kacker 2004,
Demsar 2006), statsmodels' combine_effects and autorank where installed, and the edges (one, two, identical
settings; settings without a standard error)."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from spinalnet.meta import (DERSIMONIAN_LAIRD, PAULE_MANDEL, REML, SettingEffect, cliques, nemenyi_q, pool,
                            pool_contrasts, prediction_interval, rank_arms, record)
from spinalnet.stats import holm, paired_stats

# dat.bcg (Colditz et al. 1994, JAMA 271:698), as metafor's README prints it: 13 trials, TB cases/non-cases among
# vaccinated (tpos, tneg) and controls (cpos, cneg).
TPOS = [4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27]
TNEG = [119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886]
CPOS = [11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29]
CNEG = [128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825]


def bcg() -> tuple[np.ndarray, np.ndarray]:
    """Log risk ratios and their sampling variances, as metafor's escalc(measure="RR") computes them."""
    a, b, c, d = (np.array(x, dtype=float) for x in (TPOS, TNEG, CPOS, CNEG))
    return np.log(a / (a + b)) - np.log(c / (c + d)), 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)


def effects(y, v, p_holm=None) -> list[SettingEffect]:
    return [SettingEffect(f"s{i}", float(e), math.sqrt(float(var)), 9, p_holm) for i, (e, var) in enumerate(zip(y, v))]


# Kacker (2004, Metrologia 41:132), Table 1 first row, as statsmodels' test suite (stats/tests/results/
# results_meta.py) and metafor use it: 9 laboratories' values and variances.
KACKER_Y = [61.00, 61.40, 62.21, 62.30, 62.34, 62.60, 62.70, 62.84, 65.90]
KACKER_V = [0.2025, 1.2100, 0.0900, 0.2025, 0.3844, 0.5625, 0.0676, 0.0225, 1.8225]


def test_bcg_effect_sizes_are_the_ones_metafor_prints():
    # metafor README.md (github.com/wviechtb/metafor), the escalc() output: yi and vi to 4 decimals
    y, v = bcg()
    assert np.round(y, 4).tolist() == [-0.8893, -1.5854, -1.3481, -1.4416, -0.2175, -0.7861, -1.6209, 0.0120,
                                       -0.4694, -1.3713, -0.3394, 0.4459, -0.0173]
    assert np.round(v, 4).tolist() == [0.3256, 0.1946, 0.4154, 0.0200, 0.0512, 0.0069, 0.2230, 0.0040, 0.0564,
                                       0.0730, 0.0124, 0.5325, 0.0714]


def test_bcg_reml_with_knapp_hartung_matches_metafor():
    # metafor README.md: rma(yi, vi, data=dat, test="knha") -> tau^2 0.3132, I^2 from Q, Q(df = 12) = 152.2330,
    # estimate -0.7145, se 0.1808, tval -3.9522, df 12, p 0.0019, CI -1.1084 to -0.3206
    r = pool(effects(*bcg()), method=REML, modified_hksj=False)
    assert r.tau2 == pytest.approx(0.3132, abs=5e-5)
    assert (r.q, r.q_df) == (pytest.approx(152.2330, abs=5e-5), 12)
    assert r.difference == pytest.approx(-0.7145, abs=5e-5)
    assert r.se == pytest.approx(0.1808, abs=5e-5)
    assert r.difference / r.se == pytest.approx(-3.9522, abs=5e-4)
    assert r.p_value == pytest.approx(0.0019, abs=5e-5)
    assert r.ci95 == pytest.approx((-1.1084, -0.3206), abs=5e-5)
    assert r.hksj_scale > 1  # so the floor of the modified HKSJ changes nothing here
    assert pool(effects(*bcg()), method=REML).ci95 == pytest.approx(r.ci95, abs=1e-12)


def test_bcg_dersimonian_laird_matches_metafor_and_stata():
    # metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r, checked there against Stata's metan:
    # rma(yi, vi, method="DL") -> estimate -0.7141, tau^2 0.3088, I^2 92.1173; the fixed-effect Q 152.2330
    r = pool(effects(*bcg()), method=DERSIMONIAN_LAIRD)
    assert r.difference == pytest.approx(-0.7141, abs=5e-5)
    assert r.tau2 == pytest.approx(0.3088, abs=5e-5)
    assert r.i2 == pytest.approx(92.1173, abs=5e-5)
    assert r.q == pytest.approx(152.2330, abs=5e-5)
    assert r.q_p == pytest.approx(sps.chi2.sf(152.2330, 12), rel=1e-4)


def test_prediction_interval_formula_matches_metafor():
    # metafor README.md: predict(res, transf=exp, digits=2) for the REML + knha fit -> pi 0.14 to 1.76; metafor
    # uses t on K - 1 = 12 df there. The pooled result takes K - 2 (Riley et al. 2011): checked by hand below.
    r = pool(effects(*bcg()), method=REML)
    lo, hi = prediction_interval(r.difference, r.se, r.tau2, 12)
    assert (round(math.exp(lo), 2), round(math.exp(hi), 2)) == (0.14, 1.76)
    half = sps.t.ppf(0.975, 11) * math.sqrt(r.tau2 + r.se**2)
    assert r.prediction95 == pytest.approx((r.difference - half, r.difference + half), rel=1e-12)
    assert r.prediction95[0] < r.ci95[0] and r.ci95[1] < r.prediction95[1]


def test_kacker_example_matches_metafor_and_the_paper():
    kacker = effects(KACKER_Y, KACKER_V)
    # Kacker (2004) Table 1: tau = 0.8399 (Paule-Mandel), 0.5359 (DerSimonian-Laird; metafor gets 0.5367,
    # statsmodels' tests accept 1e-3 for it)
    pm, dl = pool(kacker, method=PAULE_MANDEL), pool(kacker, method=DERSIMONIAN_LAIRD, modified_hksj=False)
    assert math.sqrt(pm.tau2) == pytest.approx(0.8399, abs=6e-5)
    assert math.sqrt(dl.tau2) == pytest.approx(0.5359, abs=1e-3)
    # metafor's own output for them, as statsmodels' tests store it (results_meta.exk1_metafor, exk1_dl_hksj)
    assert pm.tau2 == pytest.approx(0.705395309224248, rel=1e-8)
    assert pm.difference == pytest.approx(62.4076199113286, rel=1e-10)
    assert pm.q == pytest.approx(24.801897741835, rel=1e-10)
    assert pm.q_p == pytest.approx(0.00167935146372742, rel=1e-8)
    assert pm.i2 == pytest.approx(67.744403741711, rel=1e-10)  # Higgins' I^2 from Q: metafor's DL value
    assert dl.tau2 == pytest.approx(0.288049246973751, rel=1e-10)
    assert dl.difference == pytest.approx(62.3901386044504, rel=1e-10)
    assert dl.se == pytest.approx(0.29477605699879, rel=1e-10)
    assert dl.ci95 == pytest.approx((61.710383798052, 63.0698934108488), rel=1e-12)


def test_hksj_matches_statsmodels_combine_effects():
    meta = pytest.importorskip("statsmodels.stats.meta_analysis")
    rng = np.random.default_rng(7)
    cases = [bcg(), (np.array(KACKER_Y), np.array(KACKER_V)),
             (rng.normal(0.3, 0.5, 6), rng.uniform(0.01, 0.09, 6)),  # six settings, accuracy-point scale
             (np.array([0.10, 0.12, 0.11, 0.09]), np.array([0.04, 0.05, 0.03, 0.04]))]  # Q < K - 1: tau^2 = 0
    for y, v in cases:
        theirs = meta.combine_effects(y, v, method_re="pm", use_t=True, atol=1e-7, maxiter=500)
        mine = pool(effects(y, v), modified_hksj=False)  # statsmodels' "random effect wls" is unfloored HKSJ
        assert mine.tau2 == pytest.approx(theirs.tau2, rel=1e-8, abs=1e-12)
        assert mine.difference == pytest.approx(theirs.mean_effect_re, rel=1e-9)
        assert mine.se == pytest.approx(math.sqrt(theirs.var_hksj_re), rel=1e-8)
        assert mine.ci95 == pytest.approx(tuple(theirs.conf_int(use_t=True)[3]), rel=1e-8)
        assert mine.q == pytest.approx(theirs.q, rel=1e-10)
        dl = meta.combine_effects(y, v, method_re="dl", use_t=True)
        # statsmodels leaves DerSimonian-Laird's moment estimate negative when Q < K - 1; it is truncated at 0
        assert pool(effects(y, v), method=DERSIMONIAN_LAIRD).tau2 == pytest.approx(max(0.0, dl.tau2), rel=1e-9)
    # the last case: unfloored HKSJ is narrower than the fixed-effect t interval; the default floors it there
    y, v = cases[-1]
    plain, floored = pool(effects(y, v), modified_hksj=False), pool(effects(y, v))
    assert plain.tau2 == 0 and plain.hksj_scale < 1
    fixed_half = sps.t.ppf(0.975, 3) / math.sqrt(np.sum(1 / v))
    assert floored.ci95 == pytest.approx((floored.difference - fixed_half, floored.difference + fixed_half))
    assert plain.ci95[1] - plain.ci95[0] < floored.ci95[1] - floored.ci95[0]


def test_from_contrast_recovers_the_standard_error_compare_used():
    baseline, candidate = [85.1, 84.7, 85.9, 84.2, 85.5], [86.0, 85.9, 86.1, 85.0, 86.4]
    contrast = {**paired_stats(baseline, candidate).as_dict(), "p_holm": 0.04}
    e = SettingEffect.from_contrast("fashion", contrast)
    d = np.subtract(candidate, baseline)
    assert e.se == pytest.approx(d.std(ddof=1) / math.sqrt(5), rel=1e-5)  # paired t: sd / sqrt(n)
    assert (e.df, e.p_holm, e.difference) == (4, 0.04, pytest.approx(d.mean()))
    assert e.interval() == pytest.approx(tuple(contrast["difference_ci95"]), abs=2e-6)
    one_seed = SettingEffect.from_contrast("one", paired_stats([80.0], [81.0]).as_dict())
    assert (one_seed.se, one_seed.df, one_seed.p_holm, one_seed.interval()) == (None, None, None, None)


def test_one_two_and_identical_settings():
    assert pool([]).difference is None and "nothing to pool" in pool([]).note
    one = pool([SettingEffect("a", 0.5, 0.2)])
    assert one.settings == 1 and (one.difference, one.ci95, one.prediction95, one.tau2, one.i2) == (None,) * 5
    assert "one setting" in one.note
    two = pool([SettingEffect("a", 0.5, 0.2), SettingEffect("b", 0.1, 0.3)])
    assert two.ci95 is not None and two.p_value is not None and two.prediction95 is None
    assert "no prediction interval" in two.note
    same = pool([SettingEffect(n, 0.3, se) for n, se in (("a", 0.1), ("b", 0.2), ("c", 0.15))])
    assert (same.tau2, same.q, same.i2, same.q_p, same.hksj_scale) == (0.0, pytest.approx(0.0), 0.0, 1.0,
                                                                        pytest.approx(0.0))
    w = 1 / np.array([0.1, 0.2, 0.15]) ** 2
    assert same.se == pytest.approx(1 / math.sqrt(w.sum()))  # the floor: the fixed-effect standard error
    assert pool([SettingEffect(n, 0.3, se) for n, se in (("a", 0.1), ("b", 0.2), ("c", 0.15))],
                modified_hksj=False).ci95 is None
    with pytest.raises(ValueError, match="unknown tau"):
        pool(two_settings := [SettingEffect("a", 0.5, 0.2)] * 2, method="hedges")
    assert len(two_settings) == 2


def test_settings_without_standard_error_are_listed_not_pooled():
    found = [SettingEffect("a", 0.5, 0.2, 9, 0.01), SettingEffect("b", 0.1, 0.3, 9, 0.6),
             SettingEffect("flat", 1.0, 0.0, 9, None), SettingEffect("seed", -2.0, None, None, None),
             SettingEffect("c", -0.2, 0.25, 9, 0.5)]
    r = pool(found)
    assert r.settings == 3 and r.excluded == ("flat", "seed")
    assert [name for name, _ in r.weights] == ["a", "b", "c"]
    assert sum(w for _, w in r.weights) == pytest.approx(100.0)
    assert r.difference == pytest.approx(pool([found[0], found[1], found[4]]).difference)
    assert r.record.ties == ("b", "flat", "seed", "c") and r.record.wins == ("a",)


def test_wins_ties_losses_follow_each_settings_holm_p():
    found = [SettingEffect("win", 0.8, 0.2, 9, 0.01), SettingEffect("loss", -0.9, 0.2, 9, 0.03),
             SettingEffect("big but not significant", 2.0, 1.5, 9, 0.2), SettingEffect("untested", 1.0, None),
             SettingEffect("tie", 0.0, 0.1, 9, 1.0), SettingEffect("borderline", -0.5, 0.2, 9, 0.05)]
    r = record(found)
    assert r.wins == ("win",) and r.losses == ("loss",)
    assert r.ties == ("big but not significant", "untested", "tie", "borderline") and r.untested == ("untested",)
    assert r.as_dict()["wins"] == 1 and r.as_dict()["ties"] == 4
    assert record(found, alpha=0.1).losses == ("loss", "borderline")


def test_holm_across_the_studys_contrasts():
    rng = np.random.default_rng(1)
    study = {label: [SettingEffect(f"s{i}", float(rng.normal(shift, 0.3)), 0.15) for i in range(6)]
             for label, shift in (("spinal vs fc", 0.8), ("spinal vs mlp", 0.05), ("spinal vs linear", 0.4))}
    pooled = pool_contrasts(study)
    assert list(pooled) == list(study)
    raw = [pooled[label].p_value for label in study]
    assert [pooled[label].p_holm for label in study] == pytest.approx(holm(raw))
    assert all(p.p_holm >= p.p_value for p in pooled.values())
    assert pooled["spinal vs fc"].difference == pytest.approx(pool(study["spinal vs fc"]).difference)


# Demsar (2006, JMLR 7:1), Table 6: AUC of C4.5, C4.5+m, C4.5+cf and C4.5+m+cf on 14 data sets. The table prints
# AUCs rounded to 3 decimals; its ranks come from the unrounded values, and on the 13th data set (printed 0.975
# and 0.975) C4.5+cf ranks 2 and C4.5+m+cf 3: 0.9751 below keeps that order, so the ranks are the paper's.
DEMSAR_ARMS = ("C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf")
DEMSAR_AUC = [[0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
              [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
              [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
              [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
              [0.972, 0.981, 0.9751, 0.975], [0.957, 0.978, 0.946, 0.970]]


def demsar() -> dict[str, dict[str, float]]:
    return {f"data set {i + 1}": dict(zip(DEMSAR_ARMS, row)) for i, row in enumerate(DEMSAR_AUC)}


def test_friedman_and_nemenyi_reproduce_demsars_example():
    # Demsar (2006), section 3.2.2: average ranks 3.143, 2.000, 2.893, 1.964; chi^2_F = 9.28; F_F = 3.69 on
    # (3, 39) df; Nemenyi CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25 at p = 0.05, and 1.12 at p = 0.10 (q = 2.291)
    r = rank_arms(demsar())
    assert r.mean_ranks == pytest.approx((3.143, 2.000, 2.893, 1.964), abs=5e-4)
    assert r.chi2 == pytest.approx(9.28, abs=5e-3)
    assert r.f == pytest.approx(3.69, abs=5e-3) and r.f_df == (3, 39)
    assert r.f_p == pytest.approx(sps.f.sf(r.f, 3, 39)) and r.f_p < 0.05  # the paper rejects the null
    assert r.q_alpha == pytest.approx(2.569, abs=5e-4) and r.cd == pytest.approx(1.25, abs=5e-3)
    # "the difference between the best and the worst (1.179) is below the CD": one group at 0.05
    assert r.cliques == (("C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"),)
    loose = rank_arms(demsar(), alpha=0.10)
    assert loose.cd == pytest.approx(1.12, abs=5e-3)
    # at 0.10 C4.5 is worse than C4.5+m and C4.5+m+cf, and C4.5+cf belongs to both groups (the paper's Fig. 1)
    assert loose.cliques == (("C4.5+m+cf", "C4.5+m", "C4.5+cf"), ("C4.5+cf", "C4.5"))


@pytest.mark.parametrize("k,alpha,q", [(2, 0.05, 1.960), (3, 0.05, 2.343), (4, 0.05, 2.569), (5, 0.05, 2.728),
                                       (10, 0.05, 3.164), (2, 0.10, 1.645), (4, 0.10, 2.291), (10, 0.10, 2.920)])
def test_nemenyi_q_matches_demsars_table(k, alpha, q):
    # Demsar (2006) Table 5(a), critical values of the two-tailed Nemenyi test, to 3 decimals
    assert nemenyi_q(k, alpha) == pytest.approx(q, abs=1e-3)


def test_friedman_equals_scipy_without_ties_and_is_demsars_with_them():
    rng = np.random.default_rng(5)
    values = rng.normal(90, 1, (8, 5))
    r = rank_arms({str(i): dict(zip("abcde", row)) for i, row in enumerate(values)})
    scipy = sps.friedmanchisquare(*values.T)
    assert (r.chi2, r.chi2_p) == (pytest.approx(scipy.statistic), pytest.approx(scipy.pvalue))
    tied = rank_arms(demsar())  # scipy's tie-corrected statistic is larger when arms tie
    assert tied.chi2 < sps.friedmanchisquare(*np.array(DEMSAR_AUC).T).statistic


def test_ranks_and_critical_difference_match_autorank():
    pd = pytest.importorskip("pandas")
    autorank = pytest.importorskip("autorank")
    from autorank._util import get_sorted_rank_groups

    rng = np.random.default_rng(3)
    values = 85 + rng.normal(0, 1, (12, 5)) + np.array([0.0, 0.3, 0.6, 1.5, 2.0])
    theirs = autorank.autorank(pd.DataFrame(values, columns=list("abcde")), alpha=0.05, verbose=False,
                               order="descending", force_mode="nonparametric")
    mine = rank_arms({str(i): dict(zip("abcde", row)) for i, row in enumerate(values)})
    assert [mine.rank_of(a) for a in "abcde"] == pytest.approx(theirs.rankdf.meanrank.reindex(list("abcde")).tolist())
    assert mine.cd == pytest.approx(theirs.cd, rel=1e-4)  # autorank's q is statsmodels' interpolated qsturng
    assert mine.chi2_p == pytest.approx(theirs.pvalue)  # no ties: scipy's Friedman test
    _, names, groups = get_sorted_rank_groups(theirs, False)
    assert {frozenset(c) for c in mine.cliques} == {frozenset(names[i:j + 1]) for i, j in groups}


def test_ranking_edges():
    alike = rank_arms({s: {"a": 1.0, "b": 2.0, "c": 3.0} for s in "xyz"})  # every setting ranks the arms alike
    assert alike.mean_ranks == (3.0, 2.0, 1.0) and alike.chi2 == pytest.approx(6.0)
    assert alike.f == math.inf and alike.as_dict()["f"] is None
    assert alike.f_p == pytest.approx(1 / 36)  # exact: 3! orders, the other two settings agree with the first
    assert rank_arms({s: {"a": 1.0, "b": 2.0} for s in "xy"}).f_p == pytest.approx(0.5)  # a coin's chance
    equal = rank_arms({s: {"a": 1.0, "b": 1.0, "c": 1.0} for s in "xyz"})
    assert equal.chi2 == 0.0 and equal.f == 0.0 and equal.f_p == 1.0 and equal.cliques == (("a", "b", "c"),)
    single = rank_arms({"x": {"a": 1.0, "b": 2.0}})
    assert single.mean_ranks == (2.0, 1.0) and single.chi2 is None and single.cd is None and single.note
    with pytest.raises(ValueError, match="has arms"):
        rank_arms({"x": {"a": 1.0, "b": 2.0}, "y": {"a": 1.0, "c": 2.0}})
    with pytest.raises(ValueError, match="two arms"):
        rank_arms({"x": {"a": 1.0}})
    assert cliques(["a", "b", "c", "d"], [1.0, 1.5, 3.0, 3.2], cd=1.0) == (("a", "b"), ("c", "d"))
    assert cliques(["a", "b"], [1.0, 2.0], cd=0.5) == ()


def test_results_are_strict_json():
    study = pool_contrasts({"spinal vs mlp": effects(*bcg(), p_holm=0.01), "spinal vs fc": effects([0.2], [0.01])})
    ranking = rank_arms({s: {"a": 1.0, "b": 2.0} for s in "xy"})
    data = {"pooled": {k: p.as_dict() for k, p in study.items()}, "ranking": ranking.as_dict(),
            "effects": [e.as_dict() for e in effects([0.5], [0.04])]}
    back = json.loads(json.dumps(data, allow_nan=False))
    assert back["pooled"]["spinal vs mlp"]["record"]["wins"] == 2  # two trials have a positive log risk ratio
    assert back["pooled"]["spinal vs mlp"]["record"]["losses"] == 11
    assert back["pooled"]["spinal vs fc"]["difference"] is None and back["ranking"]["f"] is None


def test_meta_imports_no_framework_and_nothing_above_stats():
    """spinalnet.meta sits beside spinalnet.stats: it may import stats and nothing of comparison, study or a
    framework; the plotting module loads matplotlib only when it draws."""
    source = Path(__file__).parents[1] / "src" / "spinalnet" / "meta.py"
    imported = {n.module if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    assert {m for m in imported if m and m.startswith("spinalnet")} == {"spinalnet.stats"}
    code = ("import sys, spinalnet.meta, spinalnet.study.plots\n"
            "loaded = {'torch', 'matplotlib', 'pandas', 'statsmodels', 'spinalnet.comparison'} & set(sys.modules)\n"
            "assert not loaded, loaded\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
