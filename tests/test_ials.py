"""helpers.baselines.ials: the closed-form sweeps of implicit ALS (chapter 9)."""
import numpy as np
import pytest
import scipy.sparse as sp

from helpers.baselines import ials


def _data(n_users: int = 40, n_items: int = 30, density: float = 0.2, seed: int = 0) -> sp.csr_array:
    x = sp.random(n_users, n_items, density=density, random_state=seed, format="csr")
    x.data[:] = 1.0
    return sp.csr_array(x)


def _weights(x: sp.csr_array, alpha0: float, reg: float, nu: float) -> tuple[np.ndarray, np.ndarray]:
    n_u, n_i = x.shape
    xd = x.toarray()
    return (reg * (xd.sum(1) + alpha0 * n_i) ** nu, reg * (xd.sum(0) + alpha0 * n_u) ** nu)


def _loss(x, p, q, alpha0, reg, nu):
    xd = x.toarray()
    s = p @ q.T
    ru, ri = _weights(x, alpha0, reg, nu)
    return (np.sum(xd * (1 - s) ** 2) + alpha0 * np.sum(s ** 2)
            + np.sum(ru * (p ** 2).sum(1)) + np.sum(ri * (q ** 2).sum(1)))


def _grad_q(x, p, q, alpha0, reg, nu):
    """dL/dQ = -2 (X o (1 - S))^T P + 2 alpha0 S^T P + 2 diag(lambda nu_i) Q."""
    xd = x.toarray()
    s = p @ q.T
    _, ri = _weights(x, alpha0, reg, nu)
    return -2 * (xd * (1 - s)).T @ p + 2 * alpha0 * s.T @ p + 2 * ri[:, None] * q


@pytest.mark.parametrize("nu", [0.0, 1.0])
def test_last_item_step_zeroes_the_gradient(nu):
    x = _data()
    alpha0, reg = 0.5, (2.0 if nu == 0 else 0.05)
    p, q = ials(x, dim=5, n_iter=3, alpha0=alpha0, reg=reg, reg_exponent=nu, seed=1)
    g = _grad_q(x, p, q, alpha0, reg, nu)
    scale = np.abs(2 * x.toarray().T @ p).max()
    np.testing.assert_allclose(g / scale, 0.0, atol=1e-10)


def test_loss_never_increases_over_sweeps():
    x = _data(seed=3)
    losses = [_loss(x, *ials(x, dim=4, n_iter=k, alpha0=0.3, reg=1.0, seed=7), 0.3, 1.0, 0.0)
              for k in range(1, 7)]
    assert all(b <= a + 1e-9 for a, b in zip(losses, losses[1:])), losses


def test_equals_a_per_user_loop():
    """The vectorised solve equals the closed form written one user (item) at a time."""
    x = _data(seed=5)
    alpha0, reg, nu, d = 0.7, 0.02, 1.0, 3
    p_h, q_h = ials(x, dim=d, n_iter=2, alpha0=alpha0, reg=reg, reg_exponent=nu, seed=2)
    ru, ri = _weights(x, alpha0, reg, nu)
    q = np.random.default_rng(2).normal(0.0, 0.1, (x.shape[1], d))
    xt = sp.csr_array(x.T)

    def step(rows, f, r):
        out = np.empty((rows.shape[0], d))
        for u in range(rows.shape[0]):
            fi = f[rows.indices[rows.indptr[u]:rows.indptr[u + 1]]]
            out[u] = np.linalg.solve(fi.T @ fi + alpha0 * f.T @ f + r[u] * np.eye(d), fi.sum(0))
        return out

    for _ in range(2):
        p = step(x, q, ru)
        q = step(xt, p, ri)
    np.testing.assert_allclose(p_h, p, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(q_h, q, rtol=1e-10, atol=1e-12)


def test_seeded_binary_and_input_types():
    x = _data(seed=9)
    a = ials(x, dim=4, n_iter=2, seed=0)
    b = ials(x.toarray(), dim=4, n_iter=2, seed=0)           # dense input
    x5 = x.copy()
    x5.data[:] = 5.0                                        # values are treated as 1
    c = ials(sp.coo_matrix(x5), dim=4, n_iter=2, seed=0)    # legacy sparse matrix
    for other in (b, c):
        np.testing.assert_array_equal(a[0], other[0])
        np.testing.assert_array_equal(a[1], other[1])
    d = ials(x, dim=4, n_iter=2, seed=1)
    assert not np.allclose(a[1], d[1])
    assert a[0].shape == (40, 4) and a[1].shape == (30, 4) and a[0].dtype == np.float64


def test_user_without_interactions_gets_zero_vector():
    x = _data().toarray()
    x[0] = 0
    p, _ = ials(x, dim=3, n_iter=2)
    np.testing.assert_array_equal(p[0], 0.0)


def test_finds_planted_blocks():
    """Two groups of users who each use one half of the catalogue: every user's top items
    come from their own half."""
    rng = np.random.default_rng(0)
    x = np.zeros((60, 20))
    x[:30, :10] = rng.random((30, 10)) < 0.5
    x[30:, 10:] = rng.random((30, 10)) < 0.5
    p, q = ials(x, dim=4, n_iter=8, alpha0=0.1, reg=0.5)
    s = np.where(x > 0, -np.inf, p @ q.T)
    top = np.argmax(s, axis=1)
    assert (top[:30] < 10).mean() > 0.9 and (top[30:] >= 10).mean() > 0.9


@pytest.mark.parametrize("kw, match", [
    (dict(dim=0), "dim"), (dict(dim=2.5), "dim"), (dict(n_iter=0), "n_iter"),
    (dict(reg=0.0), "reg"), (dict(alpha0=-1.0), "alpha0"), (dict(reg_exponent=np.nan), "reg_exponent"),
    (dict(init_scale=0.0), "init_scale"),
])
def test_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        ials(_data(), **kw)


def test_bad_matrices():
    x = _data().toarray()
    x[0, 0] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        ials(x)
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-negative"):
        ials(x)
    with pytest.raises(ValueError, match="non-empty"):
        ials(np.zeros((0, 5)))
