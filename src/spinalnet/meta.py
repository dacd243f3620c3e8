"""The pooled verdict of a study (no framework import): one contrast's paired differences over several settings
(backbones, datasets) pooled by a random-effects meta-analysis, its wins, ties and losses, and the arms ranked
across settings (Friedman test, Nemenyi critical difference, Demsar 2006).

Input per setting and contrast is a :class:`SettingEffect`: the mean paired difference over seeds (reference
minus arm, test-accuracy points, as ``spinalnet.stats`` and compare print it), its standard error (the ``se`` of
:func:`spinalnet.stats.t_interval`, recovered from a stored interval by :meth:`SettingEffect.from_contrast`) and
the setting's own Holm-corrected p.

The formulas are written here rather than taken from statsmodels (``statsmodels.stats.meta_analysis``): it would
add statsmodels and pandas (about 150 MB installed) and a 1 to 3 s import to a core whose dependencies are
numpy, scipy, pyyaml and pydantic, and it has no REML estimator and no prediction interval. Each is a few lines;
tests/test_meta.py checks them against statsmodels' ``combine_effects``, against metafor's published output for
the BCG vaccine trials and Kacker's (2004) example, and the ranks against Demsar's own example and autorank.

Edge cases: a setting without a standard error (one seed, or the same difference on every seed) is listed in
``excluded`` and not pooled (it still counts in wins/ties/losses, as a tie unless its own test says otherwise);
one pooled setting gives no pooled figures (``None``, with a ``note``); two give no prediction interval (its t
has K - 2 = 0 degrees of freedom); identical effects give tau^2 = 0, Q = 0, I^2 = 0 and the fixed-effect width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from spinalnet.stats import holm

LEVEL = 0.95
ALPHA = 0.05
PAULE_MANDEL, DERSIMONIAN_LAIRD, REML = "paule-mandel", "dersimonian-laird", "reml"
TAU2_METHODS = (PAULE_MANDEL, DERSIMONIAN_LAIRD, REML)


def _rounded(value: Any, digits: int = 6) -> Any:
    """Floats to ``digits`` decimals (non-finite to None, for strict JSON), tuples to lists, recursively."""
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else None
    if isinstance(value, (tuple, list)):
        return [_rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value


def _p(value: float | None, digits: int = 6) -> float | None:
    """A p-value to significant digits: a tiny p must not print as 0."""
    return None if value is None else float(f"{value:.{digits}g}")


@dataclass(frozen=True)
class SettingEffect:
    """One setting's contrast, what pooling reads: ``difference`` (mean over seeds of reference minus arm, in
    accuracy points), ``se`` (its standard error; None without one), ``df`` (the setting's t degrees of freedom,
    seeds - 1, to redraw its own interval) and ``p_holm`` (its Holm-corrected p within its comparison)."""

    name: str
    difference: float
    se: float | None
    df: int | None = None
    p_holm: float | None = None

    @classmethod
    def from_contrast(cls, name: str, contrast: Mapping[str, Any]) -> SettingEffect:
        """From one entry of a comparison's ``contrasts`` (results.json): se = half-width of ``difference_ci95`` /
        t(0.975, seeds - 1), the statistic that interval was made of (:func:`spinalnet.stats.t_interval`)."""
        from scipy import stats

        seeds, ci = int(contrast["seeds"]), contrast.get("difference_ci95")
        df = seeds - 1 if seeds > 1 else None
        se = None
        if ci is not None and df is not None:
            se = (float(ci[1]) - float(ci[0])) / 2 / float(stats.t.ppf(0.5 + LEVEL / 2, df))
        return cls(name, float(contrast["difference_mean"]), se if se else None, df, contrast.get("p_holm"))

    def interval(self) -> tuple[float, float] | None:
        """The setting's own 95% t interval (the one compare printed), or None without se or df."""
        if self.se is None or self.df is None:
            return None
        from scipy import stats

        half = float(stats.t.ppf(0.5 + LEVEL / 2, self.df)) * self.se
        return self.difference - half, self.difference + half

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "difference": _rounded(self.difference), "se": _rounded(self.se), "df": self.df,
                "p_holm": _p(self.p_holm)}


@dataclass(frozen=True)
class Record:
    """Wins, ties and losses of the reference over settings. A setting is a win or a loss only where its own
    Holm-corrected contrast is significant (p_holm < alpha); ``untested`` settings (no p) count as ties."""

    wins: tuple[str, ...]
    ties: tuple[str, ...]
    losses: tuple[str, ...]
    untested: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"wins": len(self.wins), "ties": len(self.ties), "losses": len(self.losses),
                "win_settings": list(self.wins), "tie_settings": list(self.ties),
                "loss_settings": list(self.losses), "untested_settings": list(self.untested)}


def record(effects: Sequence[SettingEffect], alpha: float = ALPHA) -> Record:
    """Wins / ties / losses over settings (a positive difference is a win of the reference)."""
    wins, ties, losses, untested = [], [], [], []
    for e in effects:
        if e.p_holm is None:
            untested.append(e.name)
        significant = e.p_holm is not None and e.p_holm < alpha and e.difference != 0
        (wins if significant and e.difference > 0 else losses if significant else ties).append(e.name)
    return Record(tuple(wins), tuple(ties), tuple(losses), tuple(untested))


@dataclass(frozen=True)
class PooledEffect:
    """One contrast pooled over settings. ``difference``, ``se``, ``ci95`` and ``p_value`` are the random-effects
    estimate with its Hartung-Knapp-Sidik-Jonkman (HKSJ) interval and test (t on K - 1 df); ``prediction95`` is
    where a new setting's true difference would fall (t on K - 2 df); ``tau2`` the between-setting variance
    (``tau2_method``); ``i2`` (%), ``q``, ``q_df``, ``q_p``: Higgins' I^2 and Cochran's Q test of homogeneity;
    ``hksj_scale``: the HKSJ variance factor before the floor at 1; ``p_holm``: Holm across the study's contrasts
    (:func:`pool_contrasts`); ``weights``: each pooled setting's share (%) of the random-effects weight."""

    contrast: str
    settings: int
    excluded: tuple[str, ...]
    difference: float | None
    se: float | None
    ci95: tuple[float, float] | None
    p_value: float | None
    prediction95: tuple[float, float] | None
    tau2: float | None
    tau2_method: str
    i2: float | None
    q: float | None
    q_df: int | None
    q_p: float | None
    hksj_scale: float | None
    weights: tuple[tuple[str, float], ...]
    record: Record
    note: str | None = None
    p_holm: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {key: _rounded(getattr(self, key)) for key in (
            "contrast", "settings", "excluded", "difference", "se", "ci95", "prediction95", "tau2", "tau2_method",
            "i2", "q", "q_df", "hksj_scale")}
        out.update(p_value=_p(self.p_value), p_holm=_p(self.p_holm), q_p=_p(self.q_p),
                   weights={name: round(w, 3) for name, w in self.weights}, record=self.record.as_dict(),
                   note=self.note)
        return out


def _generalized_q(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    return float(np.sum(w * (y - mu) ** 2))


def tau2_dersimonian_laird(y: np.ndarray, v: np.ndarray) -> float:
    """The method-of-moments estimate from Cochran's Q with fixed-effect weights (DerSimonian & Laird 1986)."""
    w = 1.0 / v
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    return max(0.0, (_generalized_q(y, v, 0.0) - (len(y) - 1)) / c)


def tau2_paule_mandel(y: np.ndarray, v: np.ndarray) -> float:
    """The tau^2 at which the generalized Q with weights 1 / (v + tau^2) equals its expectation K - 1 (Paule &
    Mandel 1982); Q decreases in tau^2, so the root is unique and bracketed. 0 when Q(0) <= K - 1."""
    from scipy import optimize

    k = len(y)
    excess = lambda t: _generalized_q(y, v, t) - (k - 1)  # noqa: E731
    if excess(0.0) <= 0:
        return 0.0
    hi = max(float(np.var(y, ddof=1)), float(np.max(v)), 1e-12)
    while excess(hi) > 0:
        hi *= 4
    return float(optimize.brentq(excess, 0.0, hi, xtol=1e-14 * hi, rtol=1e-12, maxiter=500))


def tau2_reml(y: np.ndarray, v: np.ndarray, tol: float = 1e-10, max_iter: int = 200) -> float:
    """Restricted maximum likelihood by Fisher scoring from the DerSimonian-Laird value, truncated at 0 (the
    algorithm metafor uses); offered to compare with metafor's default, not the default here."""
    tau2 = tau2_dersimonian_laird(y, v)
    for _ in range(max_iter):
        w = 1.0 / (v + tau2)
        sw = float(np.sum(w))
        mu = float(np.sum(w * y) / sw)
        trace_p = sw - float(np.sum(w**2)) / sw
        trace_pp = float(np.sum(w**2) - 2 * np.sum(w**3) / sw + (np.sum(w**2) / sw) ** 2)
        step = (float(np.sum(w**2 * (y - mu) ** 2)) - trace_p) / trace_pp
        new = max(0.0, tau2 + step)
        if abs(new - tau2) <= tol * max(1.0, tau2):
            return new
        tau2 = new
    return tau2


_ESTIMATORS = {PAULE_MANDEL: tau2_paule_mandel, DERSIMONIAN_LAIRD: tau2_dersimonian_laird, REML: tau2_reml}


def prediction_interval(mu: float, se: float, tau2: float, df: int, level: float = LEVEL) -> tuple[float, float]:
    """mu +- t(df) * sqrt(tau^2 + se^2): where the true effect of a new setting lies (Higgins, Thompson &
    Spiegelhalter 2009; Riley, Higgins & Deeks 2011 take df = K - 2)."""
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, df)) * math.sqrt(tau2 + se**2)
    return mu - half, mu + half


def pool(effects: Sequence[SettingEffect], contrast: str = "", method: str = PAULE_MANDEL,
         modified_hksj: bool = True, alpha: float = ALPHA) -> PooledEffect:
    """Random-effects meta-analysis of one contrast over settings.

    - tau^2 by Paule-Mandel (default): a method-of-moments estimator that assumes nothing about the shape of the
      settings' true effects and, with few settings, is less biased than DerSimonian-Laird (which
      underestimates large heterogeneity) and about as good as REML (Veroniki et al. 2016 recommend it; Langan et
      al. 2019 prefer either over DL). It is also the estimator statsmodels' ``combine_effects`` defaults to.
    - The interval and the test are HKSJ: the random-effects mean with variance
      ``q / sum(w)``, ``q = sum(w (y - mu)^2) / (K - 1)``, and t on K - 1 df. The usual z interval assumes
      tau^2 known; with 5 to 20 settings it is too narrow (coverage well below 95% in IntHout et al. 2014), while
      HKSJ keeps its coverage. ``modified_hksj`` (default) floors q at 1 (Roever, Knapp & Friede 2015): when the
      settings agree more closely than their own standard errors allow (q < 1), the plain HKSJ interval would be
      narrower than even the fixed-effect one, a certainty a handful of settings cannot give.
    - The prediction interval uses the same se and t on K - 2 df, so it always contains the confidence interval.
    - I^2 = (Q - (K - 1)) / Q from Cochran's Q with fixed-effect weights (Higgins & Thompson 2002), whatever the
      tau^2 estimator.
    """
    if method not in _ESTIMATORS:
        raise ValueError(f"unknown tau^2 method {method!r}: one of {', '.join(TAU2_METHODS)}")
    usable = [e for e in effects if e.se is not None and math.isfinite(e.se) and e.se > 0]
    excluded = tuple(e.name for e in effects if e not in usable)
    k = len(usable)
    empty = dict(contrast=contrast, settings=k, excluded=excluded, difference=None, se=None, ci95=None,
                 p_value=None, prediction95=None, tau2=None, tau2_method=method, i2=None, q=None, q_df=None,
                 q_p=None, hksj_scale=None, weights=(), record=record(effects, alpha))
    if k == 0:
        return PooledEffect(**empty, note="no setting has a standard error: nothing to pool")
    if k == 1:
        return PooledEffect(**empty, note=f"one setting ({usable[0].name}): nothing to pool, its own contrast is "
                                          "the answer")
    from scipy import stats

    y = np.array([e.difference for e in usable], dtype=float)
    v = np.array([e.se for e in usable], dtype=float) ** 2
    q = _generalized_q(y, v, 0.0)
    tau2 = _ESTIMATORS[method](y, v)
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    scale = float(np.sum(w * (y - mu) ** 2)) / (k - 1)
    se = math.sqrt((max(1.0, scale) if modified_hksj else scale) / float(np.sum(w)))
    ci = p = None
    if se > 0:
        half = float(stats.t.ppf(0.5 + LEVEL / 2, k - 1)) * se
        ci, p = (mu - half, mu + half), float(2 * stats.t.sf(abs(mu) / se, k - 1))
    prediction = prediction_interval(mu, se, tau2, k - 2) if k >= 3 and se > 0 else None
    note = None if k >= 3 else "two settings: no prediction interval (its t has 0 degrees of freedom)"
    if se == 0:
        note = "every setting has the same difference and the HKSJ scale is unfloored: no interval"
    return PooledEffect(**{**empty, "difference": mu, "se": se, "ci95": ci, "p_value": p, "prediction95": prediction,
                           "tau2": tau2, "i2": 100.0 * max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0, "q": q,
                           "q_df": k - 1, "q_p": float(stats.chi2.sf(q, k - 1)), "hksj_scale": scale,
                           "weights": tuple((e.name, float(100 * wi / np.sum(w))) for e, wi in zip(usable, w))},
                        note=note)


def pool_contrasts(contrasts: Mapping[str, Sequence[SettingEffect]], method: str = PAULE_MANDEL,
                   modified_hksj: bool = True, alpha: float = ALPHA) -> dict[str, PooledEffect]:
    """Every contrast of a study pooled (label -> its settings' effects), with ``p_holm`` across the contrasts'
    pooled p-values (:func:`spinalnet.stats.holm`): a study asks one question per arm at once."""
    pooled = {label: pool(effects, label, method, modified_hksj, alpha) for label, effects in contrasts.items()}
    adjusted = holm([p.p_value for p in pooled.values()])
    return {label: replace(p, p_holm=a) for (label, p), a in zip(pooled.items(), adjusted)}


@dataclass(frozen=True)
class Ranking:
    """The arms ranked within each setting (1 = best accuracy, ties averaged) and compared across settings
    (Demsar 2006): ``mean_ranks`` per arm; the Friedman test on them (``chi2``, ``chi2_p``, k - 1 df) and Iman and
    Davenport's F (``f``, ``f_df``, ``f_p``; infinite when every setting ranks the arms alike, written as None in
    JSON, and then ``f_p`` is the exact permutation p of that agreement, (1 / k!) ** (N - 1)); the Nemenyi critical difference ``cd`` = ``q_alpha`` sqrt(k (k + 1) / (6 N)); ``cliques``: maximal
    groups of arms (best first) whose mean ranks differ by less than ``cd`` (not significantly different)."""

    arms: tuple[str, ...]
    settings: int
    mean_ranks: tuple[float, ...]
    alpha: float
    chi2: float | None = None
    chi2_p: float | None = None
    f: float | None = None
    f_df: tuple[int, int] | None = None
    f_p: float | None = None
    q_alpha: float | None = None
    cd: float | None = None
    cliques: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    note: str | None = None

    def rank_of(self, arm: str) -> float:
        return self.mean_ranks[self.arms.index(arm)]

    def f_text(self, exact_note: str = "every setting ranks the arms alike: ") -> str:
        """Iman-Davenport's F and its p in words; an infinite F (every setting ranks the arms alike) with its exact
        permutation p."""
        if self.f is None or not math.isfinite(self.f):
            return f"inf ({exact_note}exact p = {self.f_p:.2g})"
        return f"{self.f:.2f} (p = {self.f_p:.2g})"

    def as_dict(self) -> dict[str, Any]:
        return {"arms": list(self.arms), "settings": self.settings,
                "mean_ranks": {a: round(r, 6) for a, r in zip(self.arms, self.mean_ranks)}, "alpha": self.alpha,
                "chi2": _rounded(self.chi2), "chi2_p": _p(self.chi2_p), "f": _rounded(self.f),
                "f_df": None if self.f_df is None else list(self.f_df), "f_p": _p(self.f_p),
                "q_alpha": _rounded(self.q_alpha), "cd": _rounded(self.cd),
                "cliques": [list(c) for c in self.cliques], "note": self.note}


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """Nemenyi's q_alpha for k arms: the studentized range quantile on infinite df over sqrt(2) (Demsar 2006,
    Table 5a: 2.569 for k = 4 at alpha = 0.05)."""
    from scipy import stats

    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)


def cliques(arms: Sequence[str], mean_ranks: Sequence[float], cd: float) -> tuple[tuple[str, ...], ...]:
    """Maximal runs of arms, in order of mean rank, whose first and last differ by less than ``cd``: the bars of a
    critical-difference diagram. Single arms are not listed."""
    order = sorted(range(len(arms)), key=lambda i: (mean_ranks[i], i))
    found: list[tuple[int, int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and mean_ranks[order[end + 1]] - mean_ranks[order[start]] < cd:
            end += 1
        if end > start and not (found and found[-1][1] >= end):
            found.append((start, end))
    return tuple(tuple(arms[order[i]] for i in range(a, b + 1)) for a, b in found)


def rank_arms(accuracy: Mapping[str, Mapping[str, float]], alpha: float = ALPHA) -> Ranking:
    """Mean ranks, Friedman and Iman-Davenport tests and the Nemenyi CD from ``accuracy[setting][arm]`` (every
    setting must have the same arms; higher is better).

    The Friedman statistic is Demsar's, on mean ranks without the tie correction (scipy's ``friedmanchisquare``
    divides by 1 - sum(t^3 - t) / (N k (k^2 - 1)) and is larger when arms tie); it is the one the CD diagram and
    Iman-Davenport's F are defined on, and equal to scipy's when no setting has ties."""
    from scipy import stats

    settings = list(accuracy)
    if not settings:
        raise ValueError("ranking arms needs at least one setting")
    arms = tuple(accuracy[settings[0]])
    for name in settings:
        if set(accuracy[name]) != set(arms):
            raise ValueError(f"setting {name!r} has arms {sorted(accuracy[name])}, the first has {sorted(arms)}")
    if len(arms) < 2:
        raise ValueError("ranking arms needs at least two arms")
    values = np.array([[float(accuracy[s][a]) for a in arms] for s in settings])
    ranks = np.vstack([stats.rankdata(-row, method="average") for row in values])
    mean = ranks.mean(axis=0)
    n, k = len(settings), len(arms)
    base = Ranking(arms, n, tuple(float(r) for r in mean), alpha)
    if n < 2:
        return replace(base, note="one setting: no test across settings")
    chi2 = float(12 * n / (k * (k + 1)) * (np.sum(mean**2) - k * (k + 1) ** 2 / 4))
    chi2 = max(chi2, 0.0)  # rounding can leave -1e-15 when every rank is equal
    df1, df2 = k - 1, (k - 1) * (n - 1)
    denominator = n * (k - 1) - chi2
    f = (n - 1) * chi2 / denominator if denominator > 1e-12 else math.inf
    # F's denominator vanishes only when every setting ranks the arms in the same strict order, where the F
    # distribution says nothing; under the null every one of the k! orders is equally likely in each setting, so
    # the chance that N settings all agree with the first is exactly (1 / k!) ** (N - 1).
    f_p = float(stats.f.sf(f, df1, df2)) if math.isfinite(f) else float(math.factorial(k)) ** -(n - 1)
    q = nemenyi_q(k, alpha)
    cd = q * math.sqrt(k * (k + 1) / (6 * n))
    return replace(base, chi2=chi2, chi2_p=float(stats.chi2.sf(chi2, df1)), f=f, f_df=(df1, df2), f_p=f_p,
                   q_alpha=q, cd=cd, cliques=cliques(arms, list(base.mean_ranks), cd))
