import numpy as np
import pytest

from helpers.privacy import (DotModel, dp_epsilon, dp_sgd_step, fedavg, fixed_negatives, membership_auc,
                             per_example_grad_norms, train_dp_sgd)


def _data(seed=0, n_users=20, n_items=30, n=200):
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, n_users, n), rng.integers(0, n_items, n)], 1), axis=0)
    return pairs[:, 0], pairs[:, 1], n_users, n_items


def _loss(m, u, i, y):
    s = (m.P[u] * m.Q[i]).sum(1) + m.b[i]  # float64, unlike the float32 logits
    return np.logaddexp(0, s) - y * s


def test_grad_norm_closed_form_matches_finite_differences():
    m = DotModel.init(5, 7, 3, std=0.5, seed=1)
    u, i, y = np.array([0, 3]), np.array([2, 6]), np.array([1.0, 0.0])
    norms = per_example_grad_norms(m, u, i, y)
    eps = 1e-6
    for k in range(2):
        grads = []
        for arr in (m.P, m.Q, m.b):
            for idx in np.ndindex(arr.shape):
                old = arr[idx]
                arr[idx] = old + eps
                up = _loss(m, u[k:k + 1], i[k:k + 1], y[k:k + 1])[0]
                arr[idx] = old - eps
                down = _loss(m, u[k:k + 1], i[k:k + 1], y[k:k + 1])[0]
                arr[idx] = old
                grads.append((up - down) / (2 * eps))
        np.testing.assert_allclose(norms[k], np.linalg.norm(grads), rtol=1e-4)


def test_dp_step_without_clip_or_noise_is_sgd_and_clip_bounds_update():
    m = DotModel.init(5, 7, 3, std=0.5, seed=1)
    u, i, y = np.array([0, 1]), np.array([2, 3]), np.array([1.0, 0.0])
    m2 = m.copy()
    dp_sgd_step(m2, u, i, y, lr=0.1, clip=None, noise_multiplier=0.0, expected_batch=2.0,
                rng=np.random.default_rng(0))
    g = 1 / (1 + np.exp(-m.logits(u, i).astype(float))) - y
    np.testing.assert_allclose(m2.P[0], m.P[0] - 0.1 / 2 * g[0] * m.Q[2], rtol=1e-5)
    m3 = m.copy()
    dp_sgd_step(m3, u, i, y, lr=1.0, clip=1e-3, noise_multiplier=0.0, expected_batch=1.0,
                rng=np.random.default_rng(0))
    delta = np.sqrt(((m3.P - m.P) ** 2).sum() + ((m3.Q - m.Q) ** 2).sum() + ((m3.b - m.b) ** 2).sum())
    assert delta <= 2e-3 + 1e-9
    with pytest.raises(ValueError):
        dp_sgd_step(m, u, i, y, lr=0.1, clip=None, noise_multiplier=1.0, expected_batch=2.0,
                    rng=np.random.default_rng(0))


def test_noise_reaches_every_parameter_and_is_seeded():
    m = DotModel.init(5, 7, 3, seed=1)
    a, b = m.copy(), m.copy()
    for x in (a, b):
        dp_sgd_step(x, np.array([0]), np.array([0]), np.array([1.0]), lr=1.0, clip=1.0, noise_multiplier=1.0,
                    expected_batch=1.0, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a.Q, b.Q)
    assert np.all(a.Q[1:] != m.Q[1:]) and np.all(a.P[1:] != m.P[1:])


def test_training_learns_and_is_reproducible():
    u, i, nu, ni = _data()
    U, I, Y = fixed_negatives(u, i, ni, 2, seed=0)
    assert len(U) == 3 * len(u) and Y.sum() == len(u)
    runs = []
    for _ in range(2):
        m = DotModel.init(nu, ni, 4, seed=0)
        before = _loss(m, U, I, Y).mean()
        steps = train_dp_sgd(m, U, I, Y, epochs=20, sampling_rate=0.2, lr=5.0, seed=0)
        runs.append(m.P.copy())
        assert steps == 100 and _loss(m, U, I, Y).mean() < before
    np.testing.assert_array_equal(*runs)


def test_epsilon_monotone_and_pld_tighter():
    e1 = dp_epsilon(1.0, 0.05, 200, 1e-5)
    assert dp_epsilon(2.0, 0.05, 200, 1e-5) < e1 < dp_epsilon(1.0, 0.05, 400, 1e-5)
    assert dp_epsilon(1.0, 0.05, 200, 1e-5, "pld") <= e1 * 1.01
    with pytest.raises(ValueError):
        dp_epsilon(0.0, 0.05, 200, 1e-5)
    with pytest.raises(ValueError):
        dp_epsilon(1.0, 0.05, 200, 1e-5, "moments")


def test_fedavg_keeps_untouched_users_and_learns():
    u, i, nu, ni = _data(n=400)
    seen = []
    m = fedavg(u, i, nu, ni, dim=4, rounds=30, client_fraction=0.5, local_steps=3, lr=1.0, server_lr=5.0,
               n_neg=2, seed=0, on_round_end=lambda r, mm: seen.append(r))
    assert seen == list(range(1, 31))
    init = DotModel.init(nu, ni, 4, 0.1, 0)
    pos = m.logits(u, i).mean()
    rnd = m.logits(np.random.default_rng(1).integers(0, nu, 500), np.random.default_rng(2).integers(0, ni, 500)).mean()
    assert pos > rnd
    absent = np.setdiff1d(np.arange(nu), u)
    np.testing.assert_array_equal(m.P[absent], init.P[absent])
    with pytest.raises(ValueError):
        fedavg(u, i, nu, ni, client_fraction=0.0)


def test_membership_auc():
    assert membership_auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert membership_auc(np.array([1.0]), np.array([1.0])) == 0.5
    with pytest.raises(ValueError):
        membership_auc(np.array([]), np.array([1.0]))


def test_membership_holdout():
    from helpers.privacy import membership_holdout
    u, i = np.arange(1000), np.arange(1000) % 7
    a, b, c, d = membership_holdout(u, i, 0.1, seed=0)
    assert len(a) + len(c) == 1000 and 50 < len(c) < 150 and not set(a) & set(c)
    np.testing.assert_array_equal(c, membership_holdout(u, i, 0.1, seed=0)[2])
    with pytest.raises(ValueError):
        membership_holdout(u, i, 1.5)
