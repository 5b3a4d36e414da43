"""Tests for helpers.imbalance (down-sampling and re-calibration, class weights, focal loss) and
helpers.bandits (replay and simulated bandits)."""
import numpy as np
import pytest

from helpers import bandits
from helpers import imbalance as im


def test_recalibrate_formula_and_logit_shift():
    p = np.array([0.01, 0.2, 0.5, 0.9])
    w = 0.1
    q = im.recalibrate(p, w)
    np.testing.assert_allclose(q, p / (p + (1 - p) / w))
    logit = lambda x: np.log(x / (1 - x))  # noqa: E731
    np.testing.assert_allclose(logit(q), logit(p) + np.log(w))
    np.testing.assert_allclose(im.recalibrate(p, 1.0), p)


def test_downsampling_then_recalibration_recovers_the_rate():
    rng = np.random.default_rng(0)
    y = (rng.random(400_000) < 0.01).astype(float)
    w = 0.05
    idx = im.downsample_negatives(y, w, seed=1)
    assert y[idx].sum() == y.sum()                        # every positive kept
    p_sample = y[idx].mean()                              # what a constant model learns on the sample
    assert abs(im.recalibrate(np.array([p_sample]), w)[0] - y.mean()) < 0.0015


def test_class_weights_balance():
    y = np.array([1, 0, 0, 0, 0, 1, 0, 0], dtype=float)
    c = im.class_weights(y)
    assert np.isclose(c[y == 1].sum(), c[y == 0].sum()) and np.isclose(c.sum(), y.size)


def test_focal_loss_reduces_to_log_loss_and_matches_keras():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.3).astype(float)
    p = rng.random(200)
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert np.isclose(im.focal_loss(y, p, gamma=0.0, alpha=None), bce)
    keras = pytest.importorskip("keras")
    for gamma, alpha in [(2.0, 0.25), (1.0, None), (0.5, 0.7)]:
        ours = im.keras_focal_loss(gamma, alpha)(keras.ops.convert_to_tensor(y[:, None], "float32"),
                                                  keras.ops.convert_to_tensor(p[:, None], "float32"))
        np.testing.assert_allclose(float(ours), im.focal_loss(y, p, gamma, alpha), rtol=1e-5)


@pytest.mark.parametrize("gamma,alpha", [(0.0, None), (2.0, 0.25), (1.0, 0.6)])
def test_focal_gradient_matches_finite_differences(gamma, alpha):
    rng = np.random.default_rng(1)
    y = (rng.random(50) < 0.5).astype(float)
    s = rng.normal(0, 2, 50)
    h = 1e-6
    f = lambda z: im.focal_loss(y, 1 / (1 + np.exp(-z)), gamma, alpha, reduce=False)  # noqa: E731
    num = (f(s + h) - f(s - h)) / (2 * h)
    np.testing.assert_allclose(im.focal_loss_grad(y, s, gamma, alpha), num, rtol=1e-4, atol=1e-7)
    if gamma == 0 and alpha is None:
        np.testing.assert_allclose(im.focal_loss_grad(y, s, 0.0, None), 1 / (1 + np.exp(-s)) - y, atol=1e-12)


def test_replay_finds_the_best_arm_and_is_fair_for_uniform():
    rng = np.random.default_rng(123)          # not the bandit's seed: same stream would replay the log
    n, k = 60_000, 5
    rates = np.array([0.05, 0.05, 0.05, 0.05, 0.4])
    arms = rng.integers(k, size=n)
    rewards = (rng.random(n) < rates[arms]).astype(float)
    uni = bandits.replay_bandit("uniform", arms, rewards, k, seed=0)
    assert abs(uni.matched / n - 1 / k) < 0.01 and abs(uni.ctr - rates.mean()) < 0.02
    ts = bandits.replay_bandit("thompson", arms, rewards, k, seed=0)
    eg = bandits.replay_bandit("epsilon_greedy", arms, rewards, k, epsilon=0.1, seed=0)
    assert ts.ctr > 0.3 and eg.ctr > 0.3
    assert ts.successes.sum() == ts.clicks and ts.successes.sum() + ts.failures.sum() == ts.matched
    again = bandits.replay_bandit("thompson", arms, rewards, k, seed=0)
    assert again.clicks == ts.clicks                      # seeded


def test_errors():
    with pytest.raises(ValueError, match="sampling rate"):
        im.recalibrate(np.array([0.5]), 0.0)
    with pytest.raises(ValueError, match="0 and 1"):
        im.class_weights(np.array([0.0, 2.0]))
    with pytest.raises(ValueError, match="both classes"):
        im.class_weights(np.zeros(3))
    with pytest.raises(ValueError, match="policy"):
        bandits.replay_bandit("greedy", np.array([0, 1]), np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="arms"):
        bandits.replay_bandit("uniform", np.array([0, 5]), np.array([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="gamma"):
        im.focal_loss(np.array([1.0]), np.array([0.5]), gamma=-1)


def test_simulated_bandits_beat_uniform_on_clear_arms():
    mu = np.array([0.02, 0.02, 0.02, 0.2])
    n = 5_000
    uni = bandits.simulate_bandit("uniform", mu, n, seed=0)
    ts = bandits.simulate_bandit("thompson", mu, n, seed=0)
    eg = bandits.simulate_bandit("epsilon_greedy", mu, n, epsilon=0.1, seed=0)
    assert uni.shape == (n,) and np.all(np.diff(uni) >= 0)
    assert ts[-1] > 1.5 * uni[-1] and eg[-1] > 1.5 * uni[-1]
    assert ts[-1] <= n * mu.max() * 1.2
    np.testing.assert_array_equal(ts, bandits.simulate_bandit("thompson", mu, n, seed=0))
    with pytest.raises(ValueError, match="true_rates"):
        bandits.simulate_bandit("thompson", np.array([0.5]), 10)
    with pytest.raises(ValueError, match="epsilon"):
        bandits.simulate_bandit("epsilon_greedy", mu, 10, epsilon=2.0)


def test_bandits_keep_their_old_names_in_imbalance():
    assert im.replay_bandit is bandits.replay_bandit and im.simulate_bandit is bandits.simulate_bandit
    with pytest.raises(AttributeError, match="no attribute"):
        im.not_a_thing  # noqa: B018
