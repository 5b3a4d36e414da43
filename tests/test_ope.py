"""Tests of helpers.ope: the estimators on a synthetic log whose true value is known."""
import numpy as np
import pytest

from helpers import ope
from helpers import stats as hs


def _policy(log, eps=0.3):
    """An epsilon-greedy policy that ranks items by a noisy view of the true CTR."""
    rng = np.random.default_rng(1)
    scores = log.q_true[:, :, 0] + rng.normal(0, 0.01, log.q_true.shape[:2])
    return ope.greedy_slate_dist(scores, n_slots=log.q_true.shape[2], epsilon=eps)


def test_stats_reexports_the_same_functions():
    assert hs.ips_estimate is ope.ips_estimate
    assert hs.snips_estimate is ope.snips_estimate
    assert hs.dr_estimate is ope.dr_estimate
    from helpers.stats import dr_estimate  # noqa: F401  (from-import works too)
    with pytest.raises(AttributeError):
        hs.no_such_function  # noqa: B018


def test_ips_is_the_obp_formula_in_numpy():
    log = ope.synthetic_slot_log(5000, seed=3)
    dist = _policy(log)
    pe, _, _ = ope.target_and_model_terms(dist, log.items, log.slots)
    by_hand = np.mean(log.rewards * dist[np.arange(5000), log.items, log.slots] / log.logging_prob)
    assert ope.ips_estimate(log.rewards, pe, log.logging_prob).estimate == pytest.approx(by_hand)
    w = pe / log.logging_prob
    assert ope.snips_estimate(log.rewards, pe, log.logging_prob).estimate == pytest.approx(
        np.sum(w * log.rewards) / np.sum(w))


def test_estimators_are_unbiased_on_the_synthetic_log():
    est = {k: [] for k in ope.ESTIMATORS}
    truths, covered = [], 0
    for seed in range(30):
        log = ope.synthetic_slot_log(20_000, seed=seed)
        dist = _policy(log)
        truth = log.true_value(dist)
        q_hat = np.clip(log.q_true * 1.3, 0, 1)               # a biased reward model
        pe, ql, qt = ope.target_and_model_terms(dist, log.items, log.slots, q_hat)
        est["IPS"].append(ope.ips_estimate(log.rewards, pe, log.logging_prob).estimate - truth)
        est["SNIPS"].append(ope.snips_estimate(log.rewards, pe, log.logging_prob).estimate - truth)
        dr = ope.dr_estimate(log.rewards, pe, log.logging_prob, ql, qt)
        est["DR"].append(dr.estimate - truth)
        covered += dr.low <= truth <= dr.high
        truths.append(truth)
    scale = np.mean(truths)
    for name, errs in est.items():
        errs = np.asarray(errs)
        # mean error within 3 standard errors of 0, and small relative to the value
        assert abs(errs.mean()) < 3 * errs.std(ddof=1) / np.sqrt(errs.size) + 0.01 * scale, name
    assert covered >= 24                                     # ~95 % nominal coverage, 30 trials


def test_a_good_reward_model_narrows_the_dr_interval():
    log = ope.synthetic_slot_log(5000, base_ctr=0.3, seed=2)
    dist = _policy(log)
    pe, ql, qt = ope.target_and_model_terms(dist, log.items, log.slots, log.q_true)
    ips = ope.ips_estimate(log.rewards, pe, log.logging_prob)
    dr = ope.dr_estimate(log.rewards, pe, log.logging_prob, ql, qt)
    assert dr.half_width < 0.8 * ips.half_width


def test_dr_with_the_true_model_has_no_click_noise_in_its_model_term():
    log = ope.synthetic_slot_log(5000, seed=0)
    dist = _policy(log, eps=1.0)                              # uniform = the logging policy
    pe, ql, qt = ope.target_and_model_terms(dist, log.items, log.slots, log.q_true)
    assert np.allclose(pe, log.logging_prob)
    assert ope.ips_estimate(log.rewards, pe, log.logging_prob).estimate == pytest.approx(log.rewards.mean())
    assert qt.mean() == pytest.approx(log.true_value(dist))


def test_bootstrap_matches_point_estimates_and_is_seeded():
    log = ope.synthetic_slot_log(4000, seed=5)
    dist = _policy(log)
    pe, ql, qt = ope.target_and_model_terms(dist, log.items, log.slots, log.q_true)
    for name in ope.ESTIMATORS:
        b = ope.ope_bootstrap(name, log.rewards, pe, log.logging_prob, ql, qt, n_resamples=300, seed=1)
        normal = {"IPS": ope.ips_estimate(log.rewards, pe, log.logging_prob),
                  "SNIPS": ope.snips_estimate(log.rewards, pe, log.logging_prob),
                  "DR": ope.dr_estimate(log.rewards, pe, log.logging_prob, ql, qt)}[name]
        assert b.estimate == pytest.approx(normal.estimate)
        assert b.low < b.estimate < b.high
        assert b.half_width == pytest.approx(normal.half_width, rel=0.35)
        assert ope.ope_bootstrap(name, log.rewards, pe, log.logging_prob, ql, qt, n_resamples=300, seed=1) == b
    _, reps = ope.ope_bootstrap("IPS", log.rewards, pe, log.logging_prob, n_resamples=200, return_replicates=True)
    assert reps.shape == (200,)


def test_bts_action_dist_is_a_distribution_and_favours_high_priors():
    alpha = np.array([50.0, 5, 5, 5, 1])
    beta = np.array([950.0, 995, 995, 995, 999])
    d = ope.bts_action_dist(alpha, beta, n_slots=3, n_sim=20_000, seed=0)
    assert d.shape == (5, 3)
    np.testing.assert_allclose(d.sum(axis=0), 1.0)
    assert d[0, 0] > 0.95 and d[4, 0] < 0.01
    np.testing.assert_allclose(d, ope.bts_action_dist(alpha, beta, 3, 20_000, seed=0))


def test_greedy_slate_dist():
    s = np.array([[0.1, 0.5, 0.3, 0.2], [0.4, 0.1, 0.1, 0.9]])
    d = ope.greedy_slate_dist(s, n_slots=3)
    assert d[0, 1, 0] == 1 and d[0, 2, 1] == 1 and d[0, 3, 2] == 1
    assert d[1, 3, 0] == 1 and d[1, 0, 1] == 1 and d[1, 1, 2] == 1   # tie: lower index first
    e = ope.greedy_slate_dist(s, n_slots=2, epsilon=0.2)
    np.testing.assert_allclose(e.sum(axis=1), 1.0)
    assert e[0, 1, 0] == pytest.approx(0.8 + 0.05) and e[0, 0, 0] == pytest.approx(0.05)


@pytest.mark.parametrize("call", [
    lambda: ope.ips_estimate(np.ones(3), np.ones(2), np.ones(3)),
    lambda: ope.ips_estimate(np.ones(3), np.ones(3), np.array([0.5, 0.0, 0.5])),
    lambda: ope.ope_bootstrap("XYZ", np.ones(3), np.ones(3), np.ones(3)),
    lambda: ope.ope_bootstrap("DR", np.ones(3), np.ones(3), np.ones(3)),
    lambda: ope.ope_bootstrap("IPS", np.ones(3), np.ones(3), np.ones(3), n_resamples=10),
    lambda: ope.bts_action_dist(np.ones(3), np.ones(2)),
    lambda: ope.bts_action_dist(np.ones(3), np.ones(3), n_slots=4),
    lambda: ope.greedy_slate_dist(np.ones(3)),
    lambda: ope.greedy_slate_dist(np.ones((2, 3)), epsilon=1.5),
    lambda: ope.target_and_model_terms(np.ones((3, 2)), np.array([0, 3]), np.array([0, 1])),
    lambda: ope.target_and_model_terms(np.full((3, 2), 0.5), np.array([0, 1]), np.array([0, 1]), np.ones((2, 3, 3))),
    lambda: ope.synthetic_slot_log(100, n_items=2, n_slots=3),
])
def test_bad_inputs_raise_value_errors(call):
    with pytest.raises(ValueError):
        call()
