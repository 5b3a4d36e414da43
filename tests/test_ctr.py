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


def _frame(n=6000, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    pos = rng.integers(1, 4, n)
    item = rng.integers(0, 10, n)
    aff = (rng.random(n) < 0.05) * rng.integers(1, 4, n)
    logit = -3.0 - 0.5 * (pos - 1) + 0.2 * (item % 3) + 1.5 * (aff > 0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    fr = pd.DataFrame({"campaign": np.where(item < 5, "men", "women"), "position": pos, "item": item,
                       **{c: rng.choice(["a", "b", "c"], n) for c in ctr.USER_COLUMNS},
                       **{c: (item % 2).astype(str) for c in ctr.ITEM_CATEGORICAL},
                       "item_feature_0": item / 10.0, "affinity": np.log1p(aff)})
    return fr, y


def test_fit_ctr_baselines_and_learned_models():
    from helpers.metrics import auc

    fr, y = _frame()
    pos = ctr.fit_ctr("position", {"m": 0.0}, fr, y)
    by_hand = fr.assign(y=y).groupby(["campaign", "position"])["y"].transform("mean").to_numpy()
    np.testing.assert_allclose(pos.predict(fr), np.clip(by_hand, 1e-7, 1 - 1e-7))
    pop = ctr.fit_ctr("popularity", {"m": 100.0, "position": True}, fr, y)
    assert np.all((pop.predict(fr) > 0) & (pop.predict(fr) < 1))
    lr = ctr.fit_ctr("logreg", {"C": 1.0}, fr, y)
    assert auc(y, lr.predict(fr)) > 0.6                       # slot and affinity carry signal
    gbm = ctr.fit_ctr("lightgbm", {"num_leaves": 4, "learning_rate": 0.1, "min_child_samples": 50,
                                   "n_estimators": 200}, fr.iloc[:4000], y[:4000], fr.iloc[4000:], y[4000:])
    assert 1 <= gbm.info["best_iteration"] <= 200
    p = gbm.predict(fr.iloc[4000:])
    np.testing.assert_allclose(p, gbm.predict(fr.iloc[4000:]))  # deterministic
    assert auc(y[4000:], p) > 0.55


@pytest.mark.parametrize("call", [
    lambda fr, y: ctr.fit_ctr("xgboost", {}, fr, y),
    lambda fr, y: ctr.fit_ctr("logreg", {"C": 1.0}, fr, y[:-1]),
    lambda fr, y: ctr.fit_ctr("logreg", {"C": 1.0}, fr, np.zeros(len(y))),
    lambda fr, y: ctr.fit_ctr("lightgbm", {}, fr, y, valid=fr),
])
def test_fit_ctr_bad_inputs(call):
    fr, y = _frame(600)
    with pytest.raises(ValueError):
        call(fr, y)


def test_open_bandit_impressions(real_data_dir):
    if not (real_data_dir / "open-bandit-dataset-small").is_dir():
        pytest.skip("Open Bandit sample not beside the data")
    d = ctr.load_obd_impressions(real_data_dir)
    r = d.rounds
    assert len(r) == 40_000 and len(d.items) == 80 and d.affinity.shape == (40_000, 80)
    assert set(r["day"]) == set(range(7)) and set(r["position"]) == {1, 2, 3}
    assert (d.items.loc[r["item"], "campaign"].to_numpy() == r["campaign"].to_numpy()).all()
    np.testing.assert_allclose(r.loc[r["policy"] == "random", "propensity"].groupby(r["campaign"]).first(),
                               [1 / 34, 1 / 46])
    split = ctr.day_split(r)
    assert sum(len(v) for v in split.values()) == len(r)
    X = d.pairs(np.arange(5))
    assert list(X.columns) == list(ctr.CATEGORICAL) + list(ctr.NUMERIC)
    men = d.campaign_items("men")
    assert len(men) == 34 and len(d.campaign_items("women")) == 46
    with pytest.raises(ValueError):
        d.pairs(np.array([0]), items=np.array([79]))           # a women's item in a men's round
