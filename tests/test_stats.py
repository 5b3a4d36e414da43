"""helpers.stats, cross-checked against scipy.stats."""
import numpy as np
import pytest
from scipy import stats

from helpers import stats as hs


def test_t_interval_matches_scipy():
    x = np.array([0.151, 0.148, 0.157, 0.149, 0.160])
    ci = hs.t_interval(x, 0.95)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    np.testing.assert_allclose([ci.low, ci.high], [lo, hi], rtol=1e-12)
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.half_width == pytest.approx((hi - lo) / 2)
    # 5 values: the multiplier is t_{0.975,4} = 2.776, wider than the normal 1.96
    assert ci.half_width / stats.sem(x) == pytest.approx(2.7764, abs=1e-4)
    assert "[" in str(ci)


def test_t_interval_coverage_by_simulation():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        ci = hs.t_interval(rng.normal(1.0, 2.0, size=5), 0.9)
        hits += ci.low <= 1.0 <= ci.high
    assert abs(hits / 2000 - 0.9) < 0.02


def test_bootstrap_interval_close_to_scipy_percentile():
    rng = np.random.default_rng(1)
    x = rng.exponential(size=300)
    ci = hs.bootstrap_interval(x, n_resamples=5000, seed=3)
    ref = stats.bootstrap((x,), np.mean, n_resamples=5000, method="percentile",
                          random_state=np.random.default_rng(4)).confidence_interval
    assert ci.low == pytest.approx(ref.low, abs=0.02)
    assert ci.high == pytest.approx(ref.high, abs=0.02)
    assert ci.low < x.mean() < ci.high
    # seeded: same seed, same interval; a median works too
    assert hs.bootstrap_interval(x, n_resamples=5000, seed=3) == ci
    med = hs.bootstrap_interval(x, statistic=np.median, n_resamples=1000)
    assert med.estimate == pytest.approx(np.median(x))


def test_paired_t_test_matches_scipy_ttest_rel():
    rng = np.random.default_rng(2)
    a = rng.random(500)
    b = a + rng.normal(0.02, 0.1, size=500)
    res = hs.paired_t_test(a, b)
    ref = stats.ttest_rel(b, a)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    np.testing.assert_allclose([res.low, res.high], [ci.low, ci.high], rtol=1e-10)
    assert res.estimate == pytest.approx(np.mean(b - a))


def test_pairing_is_more_sensitive_than_an_unpaired_test():
    rng = np.random.default_rng(3)
    user_effect = rng.random(400)  # some users are easy for every model
    a = user_effect + rng.normal(0, 0.05, 400)
    b = user_effect + 0.02 + rng.normal(0, 0.05, 400)
    assert hs.paired_t_test(a, b).p_value < 1e-3
    assert hs.welch_t_test(a, b).p_value > 0.05


def test_paired_bootstrap_agrees_with_paired_t_on_a_large_sample():
    rng = np.random.default_rng(4)
    a = rng.random(800)
    b = a + rng.normal(0.01, 0.1, 800)
    t = hs.paired_t_test(a, b)
    bs = hs.paired_bootstrap_test(a, b, n_resamples=4000, seed=0)
    assert bs.estimate == pytest.approx(t.estimate)
    assert bs.low == pytest.approx(t.low, abs=0.002)
    assert bs.high == pytest.approx(t.high, abs=0.002)
    assert bs.p_value == pytest.approx(t.p_value, abs=0.01)
    # no difference at all: a large p-value
    same = hs.paired_bootstrap_test(a, a + rng.normal(0, 0.1, 800), n_resamples=2000)
    assert same.p_value > 0.01


def test_welch_matches_scipy():
    rng = np.random.default_rng(5)
    a = rng.lognormal(size=120)
    b = rng.lognormal(0.3, 1.5, size=90)
    res = hs.welch_t_test(a, b, 0.9)
    ref = stats.ttest_ind(b, a, equal_var=False)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    ci = ref.confidence_interval(0.9)
    np.testing.assert_allclose([res.low, res.high], [ci.low, ci.high], rtol=1e-10)


def test_wilson_interval_matches_scipy_binomtest():
    for x, n in [(46, 10_000), (0, 50), (50, 50), (7, 20)]:
        ci = hs.proportion_interval(x, n, 0.95)
        ref = stats.binomtest(x, n).proportion_ci(0.95, method="wilson")
        np.testing.assert_allclose([ci.low, ci.high], [ref.low, ref.high], rtol=1e-9, atol=1e-12)
        assert 0 <= ci.low <= x / n <= ci.high <= 1


def test_two_proportion_z_squared_is_pearson_chi2():
    xa, na, xb, nb = 46, 10_000, 69, 10_000
    res = hs.two_proportion_z_test(xa, na, xb, nb)
    table = np.array([[xa, na - xa], [xb, nb - xb]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert res.statistic ** 2 == pytest.approx(chi2, rel=1e-10)
    assert res.p_value == pytest.approx(p, rel=1e-8)
    assert res.statistic > 0 and res.estimate == pytest.approx(0.0023)
    assert res.low < res.estimate < res.high
    # direction: b worse than a gives a negative z
    assert hs.two_proportion_z_test(xb, nb, xa, na).statistic == pytest.approx(-res.statistic)


def test_two_proportion_false_positive_rate_is_alpha():
    rng = np.random.default_rng(6)
    n = 20_000
    xa = rng.binomial(n, 0.05, size=2000)
    xb = rng.binomial(n, 0.05, size=2000)
    p = np.array([hs.two_proportion_z_test(a, n, b, n).p_value for a, b in zip(xa, xb)])
    assert abs(np.mean(p < 0.05) - 0.05) < 0.015


def test_sample_size_reaches_the_power_by_simulation():
    pa, pb = 0.05, 0.06
    n = hs.sample_size_two_proportions(pa, pb, alpha=0.05, power=0.8)
    assert 8_000 < n < 8_300  # the usual textbook answer, about 8,150 per arm
    rng = np.random.default_rng(7)
    xa = rng.binomial(n, pa, size=2000)
    xb = rng.binomial(n, pb, size=2000)
    p = np.array([hs.two_proportion_z_test(a, n, b, n).p_value for a, b in zip(xa, xb)])
    assert abs(np.mean(p < 0.05) - 0.8) < 0.03
    # halving the difference needs about four times the traffic
    n_half = hs.sample_size_two_proportions(pa, 0.055)
    assert 3.7 < n_half / n < 4.1


@pytest.mark.parametrize("call, match", [
    (lambda: hs.t_interval([1.0]), "at least 2"),
    (lambda: hs.t_interval([[1.0, 2.0]]), "1-D"),
    (lambda: hs.t_interval([1.0, np.nan]), "NaN"),
    (lambda: hs.t_interval([1.0, 2.0], confidence=95), "confidence"),
    (lambda: hs.paired_t_test([1.0, 2.0, 3.0], [1.0, 2.0]), "equal length"),
    (lambda: hs.paired_t_test([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]), "undefined"),
    (lambda: hs.bootstrap_interval([1.0, 2.0], n_resamples=10), "n_resamples"),
    (lambda: hs.proportion_interval(11, 10), "successes <= n"),
    (lambda: hs.proportion_interval(1.5, 10), "whole numbers"),
    (lambda: hs.two_proportion_z_test(0, 10, 0, 10), "no variation"),
    (lambda: hs.sample_size_two_proportions(0.1, 0.1), "zero difference"),
    (lambda: hs.sample_size_two_proportions(0.0, 0.1), "p_a"),
])
def test_bad_input_is_explained(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------ off-policy evaluation
def _bandit(n: int, seed: int):
    """Five actions with click rates ctr; a uniform logging policy; a target policy pi_e."""
    rng = np.random.default_rng(seed)
    ctr = np.array([0.01, 0.02, 0.05, 0.03, 0.10])
    pi0 = np.full(5, 0.2)
    pie = np.array([0.05, 0.05, 0.3, 0.1, 0.5])
    a = rng.integers(0, 5, n)
    r = (rng.random(n) < ctr[a]).astype(float)
    return a, r, ctr, pi0, pie


def test_ips_snips_dr_are_close_to_the_true_value():
    truth = None
    est = {"ips": [], "snips": [], "dr": []}
    cover = 0
    for seed in range(300):
        a, r, ctr, pi0, pie = _bandit(4000, seed)
        truth = float(pie @ ctr)
        ips = hs.ips_estimate(r, pie[a], pi0[a])
        cover += ips.low <= truth <= ips.high
        est["ips"].append(ips.estimate)
        est["snips"].append(hs.snips_estimate(r, pie[a], pi0[a]).estimate)
        q = np.full(5, r.mean())                       # a crude reward model: one rate for all
        est["dr"].append(hs.dr_estimate(r, pie[a], pi0[a], q[a], np.full(len(a), pie @ q)).estimate)
    for name, v in est.items():                        # unbiased (SNIPS: nearly), within 3 SE
        v = np.asarray(v)
        assert abs(v.mean() - truth) < 3 * v.std(ddof=1) / np.sqrt(v.size), name
    assert 0.9 < cover / 300 < 0.98                    # the 95% interval covers about 95%


def test_ope_special_cases():
    a, r, ctr, pi0, pie = _bandit(2000, 1)
    # target = logging: IPS and SNIPS are the plain mean reward
    assert hs.ips_estimate(r, pi0[a], pi0[a]).estimate == pytest.approx(r.mean())
    assert hs.snips_estimate(r, pi0[a], pi0[a]).estimate == pytest.approx(r.mean())
    # DR with a zero reward model is IPS; with the true model and true rewards it is exact
    ips = hs.ips_estimate(r, pie[a], pi0[a])
    zero = np.zeros(len(a))
    dr0 = hs.dr_estimate(r, pie[a], pi0[a], zero, zero)
    assert dr0.estimate == pytest.approx(ips.estimate) and dr0.low == pytest.approx(ips.low)
    exact = hs.dr_estimate(ctr[a], pie[a], pi0[a], ctr[a], np.full(len(a), pie @ ctr))
    assert exact.estimate == pytest.approx(pie @ ctr) and exact.half_width == pytest.approx(0, abs=1e-15)
    # SNIPS is a weighted mean of rewards: inside their range
    s = hs.snips_estimate(r, pie[a], pi0[a])
    assert 0 <= s.estimate <= 1 and s.low < s.estimate < s.high


def test_ope_bad_inputs():
    r, pe, p0 = np.array([0.0, 1.0, 0.0]), np.array([0.2, 0.5, 0.1]), np.array([0.25, 0.25, 0.25])
    with pytest.raises(ValueError, match="one value per logged round"):
        hs.ips_estimate(r, pe[:2], p0)
    with pytest.raises(ValueError, match=r"logging_prob must be probabilities in \(0, 1\]"):
        hs.snips_estimate(r, pe, np.array([0.25, 0.0, 0.25]))
    with pytest.raises(ValueError, match=r"target_prob must be probabilities"):
        hs.ips_estimate(r, np.array([0.2, 1.5, 0.1]), p0)
    with pytest.raises(ValueError, match="all importance weights are 0"):
        hs.snips_estimate(r, np.zeros(3), p0)
    with pytest.raises(ValueError, match="one value per round"):
        hs.dr_estimate(r, pe, p0, np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        hs.ips_estimate(np.array([0.0, np.nan, 1.0]), pe, p0)


def test_two_proportion_p_values_match_the_scalar_test():
    rng = np.random.default_rng(4)
    na, nb = rng.integers(50, 5000, 200), rng.integers(50, 5000, 200)
    xa, xb = rng.binomial(na, 0.05), rng.binomial(nb, 0.06)
    p = hs.two_proportion_p_values(xa, na, xb, nb)
    ref = [hs.two_proportion_z_test(a, m, b, n).p_value for a, m, b, n in zip(xa, na, xb, nb)]
    np.testing.assert_allclose(p, ref, rtol=1e-12)
    # broadcasting: one control arm against many treatment arms; no variation gives p = 1
    assert hs.two_proportion_p_values(10, 100, np.array([10, 20]), 100).shape == (2,)
    np.testing.assert_array_equal(hs.two_proportion_p_values([0, 5], 10, [0, 5], 10), [1.0, 1.0])


def test_two_proportion_p_values_bad_counts():
    with pytest.raises(ValueError, match="arm a"):
        hs.two_proportion_p_values(11, 10, 1, 10)
    with pytest.raises(ValueError, match="whole numbers"):
        hs.two_proportion_p_values(1, 10, 1.5, 10)
