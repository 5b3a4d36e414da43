r"""Is a difference real? Confidence intervals and significance tests for evaluation.

Offline, a metric is a mean over users (or over training seeds); online, a click rate is a
share of impressions. Either way the number is an estimate with sampling noise, and these
functions put an interval around it or test a difference:

* :func:`t_interval`, :func:`bootstrap_interval` -- a mean with its confidence interval;
* :func:`paired_t_test`, :func:`paired_bootstrap_test` -- two models scored on the *same*
  users (pair the per-user metrics; far more sensitive than comparing two means);
* :func:`welch_t_test` -- two independent groups (e.g. revenue per visitor in two arms);
* :func:`proportion_interval`, :func:`two_proportion_z_test` (and its vectorised
  :func:`two_proportion_p_values`), :func:`sample_size_two_proportions` -- click-through
  and conversion rates in A/B tests;
* ``ips_estimate``, ``snips_estimate``, ``dr_estimate`` -- off-policy evaluation: the
  value (e.g. CTR) a *new* policy would have had, estimated from the log of the *old* one;
  they live in :mod:`helpers.ope` and are re-exported here.

Two-sample results are reported as **b minus a** ("how much b improves on a"). Every
function returns plain floats inside small frozen dataclasses and is cross-checked against
``scipy.stats`` in ``tests/test_stats.py``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    confidence: float

    @property
    def half_width(self) -> float:
        """Half the interval's width (the "±" of a symmetric interval)."""
        return (self.high - self.low) / 2

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class TestResult:
    """A difference (``b - a``), its confidence interval, the test statistic and the
    two-sided p-value."""

    estimate: float
    low: float
    high: float
    statistic: float
    p_value: float
    confidence: float
    method: str

    def __str__(self) -> str:
        return (f"{self.method}: diff {self.estimate:+.4f} [{self.low:+.4f}, {self.high:+.4f}], "
                f"stat {self.statistic:.3f}, p = {self.p_value:.3g}")


def _sample(x: np.ndarray, name: str = "x", min_n: int = 2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if x.size < min_n:
        raise ValueError(f"{name} needs at least {min_n} values, got {x.size}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _confidence(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence}")
    return float(confidence)


def _paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = _sample(a, "a")
    b = _sample(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have equal length (one value per user), got {a.size} and {b.size}")
    return b - a


# ------------------------------------------------------------------------------ one mean
def t_interval(x: np.ndarray, confidence: float = 0.95) -> Interval:
    r"""Student-t confidence interval for a mean:

    .. math:: \bar x \pm t_{(1+c)/2,\;n-1}\,\frac{s}{\sqrt n},\qquad
              s^2 = \frac{1}{n-1}\sum_i (x_i - \bar x)^2

    Appropriate for a handful of roughly normal values (e.g. one metric over 5 seeds):
    with :math:`n = 5` the multiplier is :math:`t_{0.975,4} \approx 2.78`, not 1.96.
    """
    x = _sample(x)
    c = _confidence(confidence)
    m = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(x.size))
    h = float(stats.t.ppf((1 + c) / 2, x.size - 1)) * se
    return Interval(m, m - h, m + h, c)


def bootstrap_interval(x: np.ndarray, statistic: Callable[..., np.ndarray] = np.mean,
                       n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
                       ) -> Interval:
    r"""Percentile bootstrap interval: resample ``x`` with replacement ``n_resamples`` times,
    compute ``statistic`` on each resample, and take the :math:`(1-c)/2` and
    :math:`(1+c)/2` quantiles. Makes no normality assumption (useful for per-user NDCG,
    which is mostly zeros). ``statistic`` must accept ``axis=-1`` (``np.mean``,
    ``np.median`` ...). Seeded: same seed, same interval.
    """
    x = _sample(x)
    c = _confidence(confidence)
    reps = _bootstrap_stats(x, statistic, n_resamples, seed)
    lo, hi = np.quantile(reps, [(1 - c) / 2, (1 + c) / 2])
    return Interval(float(statistic(x, axis=-1)), float(lo), float(hi), c)


def _bootstrap_stats(x: np.ndarray, statistic: Callable[..., np.ndarray], n_resamples: int,
                     seed: int, chunk: int = 1000) -> np.ndarray:
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100 for stable quantiles, got {n_resamples}")
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples)
    for s in range(0, n_resamples, chunk):  # bounded memory: chunk x n indices at a time
        b = min(chunk, n_resamples - s)
        out[s:s + b] = statistic(x[rng.integers(0, x.size, size=(b, x.size))], axis=-1)
    return out


# ----------------------------------------------------------------------- two means
def paired_t_test(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> TestResult:
    r"""Paired t-test of :math:`d_u = b_u - a_u` (e.g. per-user NDCG of two models on the
    same users):

    .. math:: t = \frac{\bar d}{s_d / \sqrt n}, \quad \text{df} = n - 1,

    two-sided p-value, and the t-interval of :math:`\bar d`. Pairing removes the
    between-user variation (some users are easy for every model), which is usually most
    of the variance. Equals ``scipy.stats.ttest_rel(b, a)``.
    """
    d = _paired(a, b)
    c = _confidence(confidence)
    sd = d.std(ddof=1)
    if sd == 0:
        raise ValueError("all paired differences are equal; the t statistic is undefined")
    t = float(d.mean() / (sd / np.sqrt(d.size)))
    p = float(2 * stats.t.sf(abs(t), d.size - 1))
    ci = t_interval(d, c)
    return TestResult(ci.estimate, ci.low, ci.high, t, p, c, "paired t-test")


def paired_bootstrap_test(a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000,
                          confidence: float = 0.95, seed: int = 0) -> TestResult:
    r"""Bootstrap test of the mean paired difference :math:`\bar d`, :math:`d_u = b_u - a_u`.

    Interval: percentile bootstrap of :math:`\bar d` (users resampled with replacement, both
    models' values of a user kept together). p-value: resample the *centred* differences
    :math:`d_u - \bar d` (a world where the true mean difference is 0) and report
    :math:`(1 + \#\{|\bar d^*| \ge |\bar d|\}) / (1 + B)`. The statistic is :math:`\bar d`.
    """
    d = _paired(a, b)
    c = _confidence(confidence)
    reps = _bootstrap_stats(d, np.mean, n_resamples, seed)
    lo, hi = np.quantile(reps, [(1 - c) / 2, (1 + c) / 2])
    obs = float(d.mean())
    null = reps - obs  # same resamples, centred: mean of (d - mean d) resampled
    p = float((1 + np.sum(np.abs(null) >= abs(obs))) / (1 + n_resamples))
    return TestResult(obs, float(lo), float(hi), obs, p, c, "paired bootstrap")


def welch_t_test(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> TestResult:
    r"""Welch's t-test for two independent samples (unequal variances), difference
    :math:`\bar b - \bar a`:

    .. math:: t = \frac{\bar b - \bar a}{\sqrt{s_a^2/n_a + s_b^2/n_b}},\quad
              \text{df} = \frac{(s_a^2/n_a + s_b^2/n_b)^2}
              {\frac{(s_a^2/n_a)^2}{n_a-1} + \frac{(s_b^2/n_b)^2}{n_b-1}}.

    Equals ``scipy.stats.ttest_ind(b, a, equal_var=False)``.
    """
    a = _sample(a, "a")
    b = _sample(b, "b")
    c = _confidence(confidence)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = np.sqrt(va + vb)
    if se == 0:
        raise ValueError("both samples are constant; the t statistic is undefined")
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    diff = float(b.mean() - a.mean())
    t = float(diff / se)
    p = float(2 * stats.t.sf(abs(t), df))
    h = float(stats.t.ppf((1 + c) / 2, df) * se)
    return TestResult(diff, diff - h, diff + h, t, p, c, "Welch t-test")


# ------------------------------------------------------------------------ proportions
def _counts(successes: int, n: int, name: str) -> tuple[int, int]:
    if int(n) != n or int(successes) != successes:
        raise ValueError(f"{name}: counts must be whole numbers, got {successes} of {n}")
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"{name}: need n >= 1 and 0 <= successes <= n, got {successes} of {n}")
    return int(successes), int(n)


def proportion_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    r"""Wilson score interval for a proportion :math:`\hat p = x/n` (e.g. a click-through
    rate):

    .. math:: \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}}
              {1 + z^2/n}, \qquad z = \Phi^{-1}\big(\tfrac{1+c}{2}\big).

    Unlike the textbook :math:`\hat p \pm z\sqrt{\hat p(1-\hat p)/n}` it stays inside
    [0, 1] and behaves for rare events such as clicks (CTR of 0.5 %).
    """
    x, n = _counts(successes, n, "proportion")
    c = _confidence(confidence)
    z = float(stats.norm.ppf((1 + c) / 2))
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if x == 0 else max(0.0, float(centre - h))  # exact ends, no round-off
    high = 1.0 if x == n else min(1.0, float(centre + h))
    return Interval(p, low, high, c)


def two_proportion_z_test(successes_a: int, n_a: int, successes_b: int, n_b: int,
                          confidence: float = 0.95) -> TestResult:
    r"""Two-proportion z-test of :math:`p_b - p_a` (e.g. the CTR of arm B minus arm A).

    Test statistic with the pooled rate :math:`\hat p = (x_a + x_b)/(n_a + n_b)` (the rate
    under the null hypothesis :math:`p_a = p_b`):

    .. math:: z = \frac{\hat p_b - \hat p_a}{\sqrt{\hat p(1-\hat p)(1/n_a + 1/n_b)}},

    two-sided p-value :math:`2\,(1 - \Phi(|z|))`; :math:`z^2` is Pearson's :math:`\chi^2`
    of the 2x2 table without continuity correction. The interval uses the unpooled
    (Wald) standard error :math:`\sqrt{\hat p_a(1-\hat p_a)/n_a + \hat p_b(1-\hat p_b)/n_b}`.
    Assumes independent trials: clicks of one user on many impressions are not, and then
    the p-value is too small.
    """
    xa, na = _counts(successes_a, n_a, "arm a")
    xb, nb = _counts(successes_b, n_b, "arm b")
    c = _confidence(confidence)
    pa, pb = xa / na, xb / nb
    pool = (xa + xb) / (na + nb)
    if pool in (0.0, 1.0):
        raise ValueError("no variation: both arms have all successes or all failures")
    z = (pb - pa) / np.sqrt(pool * (1 - pool) * (1 / na + 1 / nb))
    p = float(2 * stats.norm.sf(abs(z)))
    se = np.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    h = float(stats.norm.ppf((1 + c) / 2) * se)
    return TestResult(pb - pa, pb - pa - h, pb - pa + h, float(z), p, c, "two-proportion z-test")


def two_proportion_p_values(successes_a: np.ndarray, n_a: np.ndarray, successes_b: np.ndarray,
                            n_b: np.ndarray) -> np.ndarray:
    r"""Two-sided p-values of the pooled two-proportion z-test of :func:`two_proportion_z_test`
    for many experiments at once (simulations of power, false alarms or peeking):

    .. math:: z = \frac{x_b/n_b - x_a/n_a}{\sqrt{\hat p(1-\hat p)(1/n_a + 1/n_b)}},\quad
              \hat p = \frac{x_a + x_b}{n_a + n_b},\quad p = 2\,(1 - \Phi(|z|)).

    Arguments broadcast against each other. Where the pooled rate is 0 or 1 (no variation)
    the data hold no evidence and the p-value is 1 (the scalar function raises instead).
    """
    xa, na, xb, nb = (np.asarray(v, dtype=np.float64) for v in (successes_a, n_a, successes_b, n_b))
    for name, x, n in (("arm a", xa, na), ("arm b", xb, nb)):
        if not (np.isfinite(x).all() and np.isfinite(n).all()) or (x != np.round(x)).any() or (n != np.round(n)).any():
            raise ValueError(f"{name}: counts must be whole numbers")
        if (n < 1).any() or (x < 0).any() or (x > n).any():
            raise ValueError(f"{name}: need n >= 1 and 0 <= successes <= n")
    pool = (xa + xb) / (na + nb)
    var = pool * (1 - pool) * (1 / na + 1 / nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, (xb / nb - xa / na) / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)
    return 2 * stats.norm.sf(np.abs(z))


def sample_size_two_proportions(p_a: float, p_b: float, alpha: float = 0.05,
                                power: float = 0.8) -> int:
    r"""Visitors needed *per arm* for a two-sided two-proportion z-test at level ``alpha``
    to detect :math:`p_a \to p_b` with probability ``power``:

    .. math:: n = \left\lceil\frac{\big(z_{1-\alpha/2}\sqrt{2\bar p(1-\bar p)}
              + z_{\text{power}}\sqrt{p_a(1-p_a) + p_b(1-p_b)}\big)^2}{(p_b - p_a)^2}\right\rceil,
              \quad \bar p = \frac{p_a + p_b}{2}.

    Halving the detectable difference quadruples the traffic.
    """
    for name, v in (("p_a", p_a), ("p_b", p_b)):
        if not 0 < v < 1:
            raise ValueError(f"{name} must be a rate in (0, 1), got {v}")
    if p_a == p_b:
        raise ValueError("p_a equals p_b: no sample size detects a zero difference")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    pbar = (p_a + p_b) / 2
    za = stats.norm.ppf(1 - alpha / 2)
    zb = stats.norm.ppf(power)
    num = za * np.sqrt(2 * pbar * (1 - pbar)) + zb * np.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return int(np.ceil(num ** 2 / (p_b - p_a) ** 2))


# ------------------------------------------------------------------ off-policy evaluation
#: Re-exported from :mod:`helpers.ope`, where the off-policy estimators now live (chapter 13);
#: ``helpers.stats.ips_estimate`` etc. keep working for chapter 9.
_OPE_NAMES = ("ips_estimate", "snips_estimate", "dr_estimate")


def __getattr__(name: str):  # PEP 562: imported on first use, so helpers.ope can import this module
    if name in _OPE_NAMES:
        from helpers import ope

        return getattr(ope, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_OPE_NAMES))
