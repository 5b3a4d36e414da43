"""Tests of helpers.ctr: normalised entropy, calibration bins, smoothed rates, bootstrap intervals."""
import numpy as np
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from helpers import ctr


def _data(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 150, n)                       # CTRs around 0.7 %
    y = (rng.random(n) < p).astype(float)
    return y, p


def test_normalized_entropy_definition():
    y, p = _data()
    b = y.mean()
    h = -(b * np.log(b) + (1 - b) * np.log(1 - b))
    assert ctr.normalized_entropy(y, p) == pytest.approx(sk_log_loss(y, p) / h, rel=1e-6)
    assert ctr.normalized_entropy(y, np.full_like(p, b)) == pytest.approx(1.0, rel=1e-6)
    assert ctr.normalized_entropy(y, p) < 1.0     # the true probabilities know more than the mean
    assert ctr.normalized_entropy(y, p, base_rate=0.01) != ctr.normalized_entropy(y, p)


def test_reliability_bins_and_ece():
    y, p = _data()
    n, mp, rate = ctr.reliability_bins(y, p, 10)
    assert n.sum() == len(y) and n.max() - n.min() <= 1
    np.testing.assert_allclose(np.sum(n * mp), p.sum())
    np.testing.assert_allclose(np.sum(n * rate), y.sum())
    assert np.all(np.diff(mp) > 0)
    good = ctr.expected_calibration_error(y, p)
    bad = ctr.expected_calibration_error(y, np.clip(3 * p, 0, 1))
    assert good < 0.002 < bad
    n_u, _, _ = ctr.reliability_bins(y, p, 10, strategy="uniform")
    assert n_u.sum() == len(y) and len(n_u) < 10   # equal widths: rare clicks leave bins empty
    assert ctr.expected_calibration_error(np.array([0.0, 1.0]), np.array([0.0, 1.0]), 2) == 0.0


def test_smoothed_rate():
    r = ctr.smoothed_rate(np.array([0, 5, 0]), np.array([0, 100, 10]), 0.01, 100.0)
    np.testing.assert_allclose(r, [0.01, 6 / 200, 1 / 110])
    np.testing.assert_allclose(ctr.smoothed_rate(np.array([2]), np.array([10]), 0.5, 0.0), [0.2])


def test_metric_interval_and_paired_difference():
    y, p = _data(5000)
    iv = ctr.metric_interval(y, p, "AUC", n_resamples=200)
    assert iv.estimate == pytest.approx(roc_auc_score(y, p))
    assert iv.low < iv.estimate < iv.high
    assert ctr.metric_interval(y, p, "AUC", n_resamples=200) == iv          # seeded
    d0 = ctr.paired_metric_difference(y, p, p, "log loss", n_resamples=200)
    assert d0.estimate == 0 and d0.low == 0 and d0.high == 0
    noisy = np.clip(p * np.exp(np.random.default_rng(1).normal(0, 1, p.size)), 0, 1)
    d = ctr.paired_metric_difference(y, p, noisy, "NE", n_resamples=200)
    assert d.low > 0                                                          # noise makes NE worse
    for m in ("log loss", "NE", "ECE"):
        assert np.isfinite(ctr.metric_interval(y, p, m, n_resamples=100).estimate)


@pytest.mark.parametrize("call", [
    lambda: ctr.normalized_entropy(np.array([0.0, 1.0]), np.array([0.5])),
    lambda: ctr.normalized_entropy(np.array([0.0, 2.0]), np.array([0.5, 0.5])),
    lambda: ctr.normalized_entropy(np.array([0.0, 1.0]), np.array([-1.0, 3.0])),
    lambda: ctr.normalized_entropy(np.zeros(3), np.full(3, 0.1)),
    lambda: ctr.reliability_bins(np.array([0.0, 1.0]), np.array([0.1, 0.2]), n_bins=0),
    lambda: ctr.reliability_bins(np.array([0.0, 1.0]), np.array([0.1, 0.2]), strategy="other"),
    lambda: ctr.smoothed_rate(np.array([3]), np.array([2]), 0.1, 1.0),
    lambda: ctr.smoothed_rate(np.array([1]), np.array([2]), 1.5, 1.0),
    lambda: ctr.metric_interval(np.array([0.0, 1.0]), np.array([0.1, 0.2]), "accuracy"),
    lambda: ctr.metric_interval(np.array([0.0, 1.0]), np.array([0.1, 0.2]), n_resamples=5),
])
def test_bad_inputs_raise_value_errors(call):
    with pytest.raises(ValueError):
        call()
