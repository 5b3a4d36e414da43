import numpy as np
import pytest
import scipy.sparse as sp

from helpers import baselines as b
from helpers import evaluation as ev


def _random_log(n_users, n_items, n, seed):
    """A random interaction log, and each user's first interaction as the held-out item."""
    rng = np.random.default_rng(seed)
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    test_u = np.arange(n_users)
    return users, items, test_u, np.array([items[users == u][0] for u in test_u])


def _assert_distinct_and_unseen(cand, users, items, test_u):
    known = set(zip(users.tolist(), items.tolist()))
    for u, row in zip(test_u, cand):
        assert len(set(row.tolist())) == cand.shape[1]
        assert not any((u, i) in known for i in row[1:].tolist())
    return known


def test_sample_candidates_are_distinct_unseen_and_seeded():
    users, items, test_u, test_i = _random_log(30, 200, 600, seed=0)
    cand = ev.sample_candidates(users, items, 200, test_u, test_i, n_neg=99, seed=3)
    assert cand.shape == (30, 100)
    np.testing.assert_array_equal(cand[:, 0], test_i)
    known = _assert_distinct_and_unseen(cand, users, items, test_u)
    np.testing.assert_array_equal(cand, ev.sample_candidates(users, items, 200, test_u, test_i, 99, seed=3))
    with pytest.raises(ValueError, match="known interactions"):
        ev.sample_candidates(users, items, 200, np.array([0]), np.array([199 if (0, 199) not in known else 198]), 5)


def test_sample_candidates_popularity_weighted_are_distinct_and_skewed():
    users, items, test_u, test_i = _random_log(40, 300, 800, seed=1)
    p = np.arange(1, 301, dtype=float) ** 2
    p /= p.sum()                                                 # high ids much more likely
    cand = ev.sample_candidates(users, items, 300, test_u, test_i, n_neg=50, seed=0, p=p)
    assert cand.shape == (40, 51)
    _assert_distinct_and_unseen(cand, users, items, test_u)
    uniform = ev.sample_candidates(users, items, 300, test_u, test_i, n_neg=50, seed=0)
    assert cand[:, 1:].mean() > uniform[:, 1:].mean() + 40       # uniform mean ~150, weighted ~200+
    with pytest.raises(ValueError, match="probability"):
        ev.sample_candidates(users, items, 300, test_u, test_i, n_neg=5, p=np.ones(300))


def test_evaluate_sampled_oracle_and_constant():
    cand = np.array([[5, 1, 2], [6, 3, 4]])
    oracle = ev.evaluate_sampled(lambda u, i: (i >= 5).astype(float), np.array([0, 1]), cand, ks=(1,))
    assert oracle["HR@1"] == 1.0 and oracle["NDCG@1"] == 1.0
    const = ev.evaluate_sampled(lambda u, i: np.zeros(len(i)), np.array([0, 1]), cand, ks=(1, 3))
    assert const["HR@1"] == 0.0 and const["HR@3"] == 1.0  # ties count against the model


def test_full_ranks_exclude_training_items():
    scores = np.array([[0.9, 0.8, 0.1, 0.5]])
    train = sp.csr_array(np.array([[1, 0, 0, 0]]))
    assert ev.full_ranks(scores, np.array([3]), train).tolist() == [1]
    with pytest.raises(ValueError, match="held-out item is also"):
        ev.full_ranks(scores, np.array([0]), train)
    res = ev.evaluate_full(lambda u: np.tile(scores[0], (len(u), 1)), np.array([0]), np.array([3]), train, ks=(1, 2))
    assert res["HR@1"] == 0.0 and res["HR@2"] == 1.0


def test_popularity_and_damped_mean():
    x = sp.csr_array(np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1]]))
    np.testing.assert_array_equal(b.popularity_scores(x), [3, 1, 1])
    items = np.array([0, 0, 1])
    ratings = np.array([4.0, 2.0, 5.0])
    s = b.damped_mean_scores(items, ratings, 3, damping=2.0)
    mu = ratings.mean()
    np.testing.assert_allclose(s, [(6 + 2 * mu) / 4, (5 + 2 * mu) / 3, mu])
    np.testing.assert_allclose(b.damped_mean_scores(items, ratings, 2, damping=0.0), [3.0, 5.0])


def test_fit_biases_recovers_additive_structure():
    rng = np.random.default_rng(0)
    nu, ni = 50, 40
    bu, bi = rng.normal(0, 0.5, nu), rng.normal(0, 0.5, ni)
    u, i = np.meshgrid(np.arange(nu), np.arange(ni), indexing="ij")
    u, i = u.ravel(), i.ravel()
    r = 3.5 + bu[u] + bi[i]
    mu, fu, fi = b.fit_biases(u, i, r, nu, ni, reg_user=0.0, reg_item=0.0, n_iter=30)
    np.testing.assert_allclose(mu + fu[u] + fi[i], r, atol=1e-6)


def test_item_knn_is_cosine():
    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=float)
    s = b.item_knn(sp.csr_array(x))
    norms = np.linalg.norm(x, axis=0)
    expected = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(s, expected, atol=1e-9)
    s1 = b.item_knn(sp.csr_array(x), n_neighbors=1)
    assert ((s1 > 0).sum(axis=0) == 1).all()


def test_ease_solves_its_objective():
    rng = np.random.default_rng(1)
    x = (rng.random((60, 15)) < 0.3).astype(float)
    lam = 5.0
    bm = b.ease(sp.csr_array(x), lam)
    assert np.allclose(np.diag(bm), 0)
    # KKT: gradient of the objective is zero off the diagonal
    grad = -2 * x.T @ (x - x @ bm) + 2 * lam * bm
    np.fill_diagonal(grad, 0)
    np.testing.assert_allclose(grad, 0, atol=1e-8)
    with pytest.raises(ValueError):
        b.ease(sp.csr_array(x), 0)


def test_sampled_ranks_per_user_and_shape_errors():
    cand = np.array([[5, 1, 2], [6, 3, 4]])
    ranks = ev.sampled_ranks(lambda u, i: i.astype(float), np.array([0, 1]), cand)
    assert ranks.tolist() == [0, 0]
    ranks = ev.sampled_ranks(lambda u, i: -i.astype(float), np.array([0, 1]), cand)
    assert ranks.tolist() == [2, 2]
    with pytest.raises(ValueError, match="one candidate row per user"):
        ev.sampled_ranks(lambda u, i: i, np.array([0]), cand)
    with pytest.raises(ValueError, match="must return 6 scores"):
        ev.sampled_ranks(lambda u, i: np.zeros(2), np.array([0, 1]), cand)
