"""helpers.graph: friend adjacency, friends' popularity, normalised adjacency, propagation,
the social regulariser and confidence-weighted (social) iALS, each against a brute-force version."""
import numpy as np
import pytest
import scipy.sparse as sp

from helpers import graph


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    n_users, n_items = 7, 9
    x = sp.random_array((n_users, n_items), density=0.4, random_state=rng, format="csr")
    x.data = np.ceil(x.data * 50)                       # play counts 1..50
    pairs = np.array([[0, 1], [1, 2], [0, 3], [4, 5], [1, 0]])   # (1, 0) repeats (0, 1)
    a = graph.friend_adjacency(pairs[:, 0], pairs[:, 1], n_users)
    return x, a, n_users, n_items


def loss(conf, x, y, reg, a=None, beta=0.0):
    """The confidence_ials objective over every cell, by brute force."""
    c = np.ones((x.shape[0], y.shape[0]))
    p = np.zeros_like(c)
    cd = conf.toarray()
    c[cd > 0], p[cd > 0] = cd[cd > 0], 1.0
    total = np.sum(c * (p - x @ y.T) ** 2) + reg * (np.sum(x ** 2) + np.sum(y ** 2))
    if a is not None:
        ad = a.toarray()
        total += beta * sum(np.sum((x[u] - x[v]) ** 2) for u in range(len(x)) for v in range(u + 1, len(x)) if ad[u, v])
    return total


def test_friend_adjacency_is_symmetric_binary_and_deduplicated(small):
    _, a, n_users, _ = small
    d = a.toarray()
    assert d.shape == (n_users, n_users) and (d == d.T).all() and set(np.unique(d)) <= {0.0, 1.0}
    assert d.sum() == 2 * 4 and d[0, 1] == 1 and d[6].sum() == 0 and np.trace(d) == 0


@pytest.mark.parametrize("u,v,n,msg", [([0], [0], 3, "itself"), ([0], [5], 3, r"\[0, 3\)"),
                                       ([0.0], [1.0], 3, "integer"), ([0, 1], [1], 3, "same length")])
def test_friend_adjacency_rejects_bad_pairs(u, v, n, msg):
    with pytest.raises(ValueError, match=msg):
        graph.friend_adjacency(np.array(u), np.array(v), n)


def test_friends_popularity_counts_and_shares(small):
    x, a, n_users, n_items = small
    xb, ad = (x.toarray() > 0), a.toarray()
    counts = np.array([[sum(ad[u, v] * xb[v, i] for v in range(n_users)) for i in range(n_items)]
                       for u in range(n_users)])
    np.testing.assert_allclose(graph.friends_popularity(a, x, normalise=False), counts)
    deg = ad.sum(1)
    share = graph.friends_popularity(a, x)
    np.testing.assert_allclose(share[deg > 0], counts[deg > 0] / deg[deg > 0, None])
    assert (share[deg == 0] == 0).all() and share.max() <= 1.0
    with pytest.raises(ValueError, match="one row per user"):
        graph.friends_popularity(a, x[:3])


def test_normalized_adjacency_matches_dense_formulas(small):
    _, a, _, _ = small
    d = a.toarray()
    deg = d.sum(1)
    inv = np.where(deg > 0, 1 / np.sqrt(np.maximum(deg, 1)), 0.0)
    np.testing.assert_allclose(graph.normalized_adjacency(a).toarray(), inv[:, None] * d * inv[None, :])
    row = graph.normalized_adjacency(a, "row").toarray()
    np.testing.assert_allclose(row.sum(1), (deg > 0).astype(float))
    with pytest.raises(ValueError, match="symmetric"):
        graph.normalized_adjacency(np.triu(d))
    with pytest.raises(ValueError, match="kind"):
        graph.normalized_adjacency(a, "left")
    with pytest.raises(ValueError, match=">= 0"):
        graph.normalized_adjacency(-d)
    with pytest.raises(ValueError, match="square"):
        graph.normalized_adjacency(np.ones((2, 3)))


def test_joint_adjacency_blocks(small):
    x, a, n_users, n_items = small
    j = graph.joint_adjacency(x, a, social_weight=0.5).toarray()
    xb = (x.toarray() > 0).astype(float)
    assert j.shape == (n_users + n_items,) * 2 and (j == j.T).all()
    np.testing.assert_allclose(j[:n_users, :n_users], 0.5 * a.toarray())
    np.testing.assert_allclose(j[:n_users, n_users:], xb)
    assert (j[n_users:, n_users:] == 0).all()
    np.testing.assert_allclose(graph.joint_adjacency(x)[:n_users, :n_users].toarray(), 0.0)
    with pytest.raises(ValueError, match="social_weight"):
        graph.joint_adjacency(x, a, social_weight=-1)
    with pytest.raises(ValueError, match="one row per user of train"):
        graph.joint_adjacency(x[:3], a)


def test_propagate_is_the_layer_average(small):
    x, a, n_users, n_items = small
    a_hat = graph.normalized_adjacency(graph.joint_adjacency(x, a))
    e = np.random.default_rng(1).normal(size=(n_users + n_items, 4))
    ad = a_hat.toarray()
    np.testing.assert_allclose(graph.propagate(a_hat, e, 0), e)
    np.testing.assert_allclose(graph.propagate(a_hat, e, 1), (e + ad @ e) / 2)
    np.testing.assert_allclose(graph.propagate(a_hat, e, 2, [0.2, 0.3, 0.5]), 0.2 * e + 0.3 * ad @ e + 0.5 * ad @ ad @ e)
    with pytest.raises(ValueError, match="layer_weights"):
        graph.propagate(a_hat, e, 1, [1.0])
    with pytest.raises(ValueError, match="one row per embedding"):
        graph.propagate(a_hat, e[:3], 1)
    with pytest.raises(ValueError, match="n_layers"):
        graph.propagate(a_hat, e, -1)


def test_social_penalty_value_and_gradient(small):
    _, a, n_users, _ = small
    p = np.random.default_rng(2).normal(size=(n_users, 3))
    ad = a.toarray()
    brute = 0.5 * sum(np.sum((p[u] - p[v]) ** 2) for u in range(n_users) for v in range(u + 1, n_users) if ad[u, v])
    r, grad = graph.social_penalty(p, a)
    np.testing.assert_allclose(r, brute)
    h = 1e-6
    num = np.zeros_like(p)
    for idx in np.ndindex(p.shape):
        q = p.copy()
        q[idx] += h
        num[idx] = (graph.social_penalty(q, a)[0] - r) / h
    np.testing.assert_allclose(grad, num, atol=1e-4)
    with pytest.raises(ValueError, match="one row per user"):
        graph.social_penalty(p[:2], a)


def test_log_confidence_formula_and_errors(small):
    x, *_ = small
    c = graph.log_confidence(x, alpha=2.0, eps=10.0)
    np.testing.assert_allclose(c.data, 1 + 2.0 * np.log1p(x.data / 10.0))
    assert c.nnz == x.nnz and (c.toarray() > 0).sum() == (x.toarray() > 0).sum()
    with pytest.raises(ValueError, match="eps"):
        graph.log_confidence(x, eps=0.0)
    with pytest.raises(ValueError, match=">= 0"):
        graph.log_confidence(-x)


def test_confidence_ials_descends_and_solves_items_exactly(small):
    x, a, *_ = small
    conf = graph.log_confidence(x, alpha=1.0, eps=5.0)
    losses = [loss(conf, *graph.confidence_ials(conf, dim=3, n_iter=k, reg=0.5, seed=3), 0.5) for k in (1, 2, 4, 8)]
    assert all(b <= a_ + 1e-9 for a_, b in zip(losses, losses[1:])), losses
    xu, yi = graph.confidence_ials(conf, dim=3, n_iter=3, reg=0.5, seed=3)
    # items are solved last: the gradient of the loss in Y vanishes
    c = np.ones((xu.shape[0], yi.shape[0]))
    p = np.zeros_like(c)
    cd = conf.toarray()
    c[cd > 0], p[cd > 0] = cd[cd > 0], 1.0
    grad_y = -2 * (c * (p - xu @ yi.T)).T @ xu + 2 * 0.5 * yi
    np.testing.assert_allclose(grad_y, 0.0, atol=1e-9)
    x2, y2 = graph.confidence_ials(conf, dim=3, n_iter=3, reg=0.5, seed=3)
    np.testing.assert_array_equal(xu, x2)


def test_confidence_ials_social_term_pulls_friends_together(small):
    x, a, *_ = small
    conf = graph.log_confidence(x, alpha=1.0, eps=5.0)
    pen = []
    for beta in (0.0, 1.0, 10.0):
        xu, yi = graph.confidence_ials(conf, dim=3, n_iter=6, reg=0.5, social=a, social_reg=beta, inner_steps=5, seed=3)
        pen.append(graph.social_penalty(xu, a)[0] / max(np.sum(xu ** 2), 1e-12))
    assert pen[0] > pen[1] > pen[2]
    # the full objective (with its social term) still decreases over sweeps
    ls = [loss(conf, *graph.confidence_ials(conf, dim=3, n_iter=k, reg=0.5, social=a, social_reg=1.0,
                                            inner_steps=20, seed=3), 0.5, a, 1.0) for k in (1, 3, 6)]
    assert ls[0] >= ls[1] >= ls[2] - 1e-9, ls


@pytest.mark.parametrize("kw,msg", [({"dim": 0}, "dim"), ({"reg": 0.0}, "reg"), ({"social_reg": 1.0}, "social"),
                                    ({"social_reg": -1.0}, "social_reg"), ({"n_iter": 1.5}, "n_iter")])
def test_confidence_ials_rejects_bad_settings(small, kw, msg):
    x, *_ = small
    with pytest.raises(ValueError, match=msg):
        graph.confidence_ials(graph.log_confidence(x), **kw)


def test_confidence_ials_rejects_raw_counts_below_one():
    with pytest.raises(ValueError, match="log_confidence"):
        graph.confidence_ials(sp.csr_array(np.array([[0.5, 0.0], [0.0, 2.0]])))


def test_confidence_ials_matches_implicit_objective():
    """Same objective as implicit's exact (Cholesky) ALS: from the same item factors, one user
    solve of each gives the same user factors."""
    implicit_als = pytest.importorskip("implicit.cpu.als")
    rng = np.random.default_rng(4)
    x = sp.random_array((6, 8), density=0.5, random_state=rng, format="csr")
    x.data = np.ceil(x.data * 20)
    conf = graph.log_confidence(x, alpha=2.0, eps=3.0)
    y = rng.normal(size=(8, 3))
    ours = graph._solve_side(conf, y, 0.7)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1, "blas"):
        theirs = np.zeros((6, 3), dtype=np.float64)
        implicit_als.least_squares(sp.csr_matrix(conf), theirs, y.copy(), 0.7, num_threads=1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)


def test_helpers_never_modify_their_inputs(small):
    """A play-count matrix passed in keeps its counts (no in-place binarising)."""
    x, a, *_ = small
    x0, a0 = x.copy(), a.copy()
    graph.friends_popularity(a, x)
    graph.joint_adjacency(x, a)
    graph.normalized_adjacency(a)
    c = graph.log_confidence(x)
    c0 = c.copy()
    graph.confidence_ials(c, dim=2, n_iter=1, social=a, social_reg=1.0)
    assert abs(x - x0).sum() == 0 and abs(a - a0).sum() == 0 and abs(c - c0).sum() == 0


@pytest.mark.parametrize("long_row", [False, True])
def test_solve_side_both_gram_paths_match_the_normal_equations(long_row):
    """Short rows use padded batches, a very long row forces the flattened sparse product."""
    rng = np.random.default_rng(5)
    dense = (rng.random((30, 12)) < 0.15) * rng.integers(1, 9, (30, 12)).astype(float)
    if long_row:
        dense = np.zeros((30, 12))
        dense[0] = rng.integers(1, 9, 12)
        dense[1:, 0] = 3.0
    conf = graph.log_confidence(sp.csr_array(dense), alpha=1.5, eps=2.0)
    counts = np.diff(conf.indptr)
    assert (conf.shape[0] * counts.max() <= 4 * conf.nnz) != long_row
    f = rng.normal(size=(12, 4))
    got = graph._solve_side(conf, f, 0.3, chunk=7)
    cd = conf.toarray()
    for u in range(30):
        c = np.where(cd[u] > 0, cd[u], 1.0)
        p = (cd[u] > 0).astype(float)
        want = np.linalg.solve(f.T @ (c[:, None] * f) + 0.3 * np.eye(4), f.T @ (c * p))
        np.testing.assert_allclose(got[u], want, rtol=1e-8, atol=1e-10)
