import numpy as np
import pytest
import scipy.sparse as sp

from helpers import baselines as b
from helpers import evaluation as ev
from helpers.sampling import NegativeSampler


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


# ------------------------------------------------------------ issue 9: candidates and ranks
def _small_log():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 8, 120), rng.integers(0, 40, 120)
    test_u = np.arange(8)
    return users, items, test_u, np.array([items[users == u][0] for u in test_u])


def test_sample_candidates_draw_sequence_is_pinned():
    """Rows drawn before issue 9 (the book's canonical candidates depend on the draw order):
    the first draw has duplicates, so the redraw loop is part of what is pinned."""
    users, items, test_u, test_i = _small_log()
    first = NegativeSampler(users, items, 40).sample(test_u, 12, rng=np.random.default_rng(0))
    assert any(len(set(r)) < 12 for r in first.tolist())
    cand = ev.sample_candidates(users, items, 40, test_u, test_i, n_neg=12, seed=0)
    assert cand[[0, 3, 7]].tolist() == [[3, 34, 25, 20, 10, 29, 35, 15, 33, 7, 32, 39, 36],
                                        [16, 3, 11, 19, 35, 21, 1, 2, 4, 26, 17, 20, 25],
                                        [26, 39, 23, 20, 13, 7, 15, 24, 1, 3, 9, 11, 29]]
    p = np.arange(1, 41, dtype=float) ** 2
    cand = ev.sample_candidates(users, items, 40, test_u, test_i, n_neg=12, seed=1, p=p / p.sum())
    assert cand[[0, 3, 7]].tolist() == [[3, 31, 39, 20, 29, 26, 25, 18, 36, 32, 11, 22, 33],
                                        [16, 13, 30, 26, 15, 34, 20, 36, 25, 39, 31, 12, 28],
                                        [26, 18, 15, 23, 39, 27, 31, 9, 22, 29, 6, 25, 32]]


def test_sample_candidates_meets_every_feasible_request():
    # one user with exactly 400 unseen items asking for 400 (failed on some seeds before)
    known_u, known_i = np.zeros(600, int), np.arange(600)
    for seed in range(3):
        cand = ev.sample_candidates(known_u, known_i, 1000, [0], [0], n_neg=400, seed=seed)
        assert sorted(cand[0, 1:].tolist()) == list(range(600, 1000))
    # popularity-weighted with a rare item that must be drawn (failed before)
    p = np.ones(1000)
    p[999] = 1e-9
    cand = ev.sample_candidates(known_u, known_i, 1000, [0], [0], n_neg=400, seed=0, p=p / p.sum())
    assert sorted(cand[0, 1:].tolist()) == list(range(600, 1000))
    np.testing.assert_array_equal(cand, ev.sample_candidates(known_u, known_i, 1000, [0], [0], n_neg=400,
                                                             seed=0, p=p / p.sum()))


def test_sample_candidates_rejects_impossible_requests_up_front():
    known_u, known_i = np.zeros(600, int), np.arange(600)
    with pytest.raises(ValueError, match=r"user 0 has only 400 unseen items but n_neg=401"):
        ev.sample_candidates(known_u, known_i, 1000, [0], [0], n_neg=401)
    p = np.ones(1000)
    p[999] = 0.0
    with pytest.raises(ValueError, match=r"only 399 unseen items with p > 0"):
        ev.sample_candidates(known_u, known_i, 1000, [0], [0], n_neg=400, p=p / p.sum())
    for bad_n in (0, -1, 2.0):
        with pytest.raises(ValueError, match="n_neg must be an integer >= 1"):
            ev.sample_candidates(known_u, known_i, 1000, [0], [0], n_neg=bad_n)
    with pytest.raises(ValueError, match="equal length"):
        ev.sample_candidates(known_u, known_i, 1000, [0, 0], [0], n_neg=5)
    with pytest.raises(ValueError, match=r"test_items must lie in \[0, 1000\)"):
        ev.sample_candidates(known_u, known_i, 1000, [0], [1000], n_neg=5)
    with pytest.raises(ValueError, match="user 0, item 700"):
        ev.sample_candidates(known_u, known_i, 1000, [0], [700], n_neg=5)


def test_full_ranks_ignore_excluded_items_whatever_the_scores():
    scores = np.array([[-np.inf, 0.3, -np.inf, 0.5, np.nan]])
    train = sp.csr_array(np.array([[1, 0, 0, 0, 1]]))     # the NaN is excluded, so harmless
    # target 2 at -inf: behind items 1 and 3, not behind the excluded item 0 (also -inf)
    assert ev.full_ranks(scores, [2], train).tolist() == [2]
    assert ev.full_ranks(scores, [3], train).tolist() == [0]
    with pytest.raises(ValueError, match="NaN"):
        ev.full_ranks(scores, [3], None)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 5\)"):
        ev.full_ranks(scores, [5], train)
    with pytest.raises(ValueError, match="one item per row"):
        ev.full_ranks(scores, [1, 3], train)
    with pytest.raises(ValueError, match="row 0, item 4"):
        ev.full_ranks(scores, [4], train)


def test_evaluation_input_checks():
    with pytest.raises(ValueError, match=r"items must lie in \[0, 3\)"):
        ev.interaction_matrix([0, 1], [0, 3], 2, 3)
    with pytest.raises(ValueError, match=r"users must lie in \[0, 2\)"):
        ev.interaction_matrix([0, -1], [0, 1], 2, 3)
    with pytest.raises(ValueError, match="one entry per interaction"):
        ev.interaction_matrix([0, 1], [0, 1], 2, 3, values=[1.0])
    x = ev.interaction_matrix(np.array([0.0, 1.0]), [2, 2], 2, 3)  # whole-number floats are ids
    assert x.toarray().tolist() == [[0, 0, 1], [0, 0, 1]]
    train = sp.csr_array(np.array([[1, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"must return a \(1, 4\) matrix"):
        ev.evaluate_full(lambda u: np.zeros((len(u), 3)), [0], [3], train)
    with pytest.raises(ValueError, match="batch_size"):
        ev.evaluate_full(lambda u: np.zeros((len(u), 4)), [0], [3], train, batch_size=0)
    with pytest.raises(ValueError, match=r"users must lie in \[0, 1\)"):
        ev.evaluate_full(lambda u: np.zeros((len(u), 4)), [1], [3], train)
    with pytest.raises(ValueError, match="integer >= 1"):
        ev.ranking_report(np.array([0, 3]), ks=(0,))
    with pytest.raises(ValueError, match="NaN"):
        ev.sampled_ranks(lambda u, i: np.full(len(i), np.nan), np.array([0]), np.array([[1, 2]]))
    with pytest.raises(ValueError, match="2-D"):
        ev.sampled_ranks(lambda u, i: i, np.array([0]), np.array([1, 2]))


# ------------------------------------------------- baselines of chapter 8 (issue 10)
def test_item_knn_asymmetric_cosine_and_shrinkage():
    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1], [1, 0, 0]], dtype=float)
    c = x.sum(axis=0)
    for alpha, shrink in [(0.5, 0.0), (0.8, 0.0), (0.2, 3.0)]:
        expected = (x.T @ x) / (np.outer(c ** alpha, c ** (1 - alpha)) + shrink)
        np.fill_diagonal(expected, 0)
        np.testing.assert_allclose(b.item_knn(sp.csr_array(x), shrink=shrink, alpha=alpha), expected, atol=1e-9)
    for bad in (dict(alpha=1.5), dict(shrink=-1.0), dict(n_neighbors=0)):
        with pytest.raises(ValueError):
            b.item_knn(sp.csr_array(x), **bad)


def test_last_k_interactions_keeps_the_latest_with_file_order_ties():
    import pandas as pd

    df = pd.DataFrame({"user": [0, 0, 0, 0, 1, 1], "item": [5, 1, 2, 3, 4, 0],
                       "timestamp": [10, 30, 20, 30, 5, 6]})
    x = b.last_k_interactions(df, 2, n_users=2, n_items=6)
    assert x.shape == (2, 6) and x.toarray().sum() == 4
    # user 0: items 1 and 3 share the latest second; item 3 is the later row, item 1 next
    assert set(np.nonzero(x.toarray()[0])[0]) == {1, 3} and set(np.nonzero(x.toarray()[1])[0]) == {0, 4}
    assert set(np.nonzero(b.last_k_interactions(df, 1, 2, 6).toarray()[0])[0]) == {3}
    with pytest.raises(ValueError, match="k must be"):
        b.last_k_interactions(df, 0, 2, 6)


def test_time_gap_buckets():
    import pandas as pd

    hist = pd.DataFrame({"user": [0, 0, 1, 2], "timestamp": pd.to_datetime([100, 50, 10, 0], unit="s")})
    held = pd.DataFrame({"user": [2, 0, 1], "timestamp": pd.to_datetime([5000, 100, 70], unit="s")},
                        index=[7, 8, 9])
    g = b.time_gap_buckets(hist, held)
    assert list(g.index) == [7, 8, 9] and g["gap_seconds"].tolist() == [5000, 0, 60]
    assert g["bucket"].tolist() == ["later", "same second", "within an hour"]
    assert list(g["bucket"].cat.categories) == list(b.GAP_BUCKETS)
    assert b.time_gap_buckets(hist, held, window=10_000)["bucket"].tolist()[0] == "within an hour"
    ints = b.time_gap_buckets(hist.assign(timestamp=[100, 50, 10, 0]), held.assign(timestamp=[5000, 100, 70]))
    assert ints["gap_seconds"].tolist() == [5000, 0, 60]
    with pytest.raises(ValueError, match="no history"):
        b.time_gap_buckets(hist, held.assign(user=[3, 0, 1]))
    with pytest.raises(ValueError, match="precede"):
        b.time_gap_buckets(hist, held.assign(timestamp=pd.to_datetime([5000, 99, 70], unit="s")))
    with pytest.raises(KeyError, match="timestamp"):
        b.time_gap_buckets(hist.drop(columns="timestamp"), held)


def _planted_blocks(n_users=60, n_items=40, seed=0):
    """Two user groups, each using only its own half of the catalogue."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n_users, n_items), dtype=np.float32)
    for u in range(n_users):
        half = np.arange(n_items // 2) + (n_items // 2 if u % 2 else 0)
        x[u, rng.choice(half, 8, replace=False)] = 1
    return sp.csr_array(x)


@pytest.mark.parametrize("fit", [
    lambda x, s: b.implicit_als(x, factors=4, regularization=0.1, alpha=5.0, iterations=10, seed=s),
    lambda x, s: b.implicit_bpr(x, factors=4, learning_rate=0.05, regularization=0.01, iterations=200, seed=s),
])
def test_implicit_factor_models_learn_blocks_and_are_seeded(fit, capfd):
    import warnings

    x = _planted_blocks()
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # e.g. implicit's OpenBLAS threadpool warning
        u, v = fit(x, 0)
    assert capfd.readouterr().err == ""    # nothing on stderr (a chapter would fail)
    assert u.dtype == np.float64 and u.shape[0] == 60 and v.shape[0] == 40 and u.shape[1] == v.shape[1]
    scores = u @ v.T
    own = np.array([[(i >= 20) == (user % 2 == 1) for i in range(40)] for user in range(60)])
    assert scores[own].mean() > scores[~own].mean() + 0.1   # the model found the two groups
    u2, v2 = fit(x, 0)
    np.testing.assert_array_equal(u, u2)
    np.testing.assert_array_equal(v, v2)


def test_implicit_factor_models_reject_bad_settings():
    x = _planted_blocks()
    with pytest.raises(ValueError, match="factors"):
        b.implicit_als(x, factors=0)
    with pytest.raises(ValueError, match="learning_rate"):
        b.implicit_bpr(x, learning_rate=0.0)


@pytest.mark.parametrize("fit", [b.implicit_als, b.implicit_bpr])
def test_implicit_callback_sees_every_iteration_as_a_shorter_fit_would(fit):
    x = _planted_blocks()
    seen = {}
    u, v = fit(x, factors=3, iterations=4, seed=1, callback=lambda it, uf, vf: seen.__setitem__(it, (uf, vf)))
    assert sorted(seen) == [1, 2, 3, 4]
    np.testing.assert_allclose(seen[4][0], u)
    u2, v2 = fit(x, factors=3, iterations=2, seed=1)
    np.testing.assert_allclose(seen[2][0], u2, rtol=1e-6)
    np.testing.assert_allclose(seen[2][1], v2, rtol=1e-6)


def test_item_knn_leaves_the_callers_matrix_alone():
    """A float64 csr_array of play counts passed in must come back unchanged (it used to be
    binarised in place through the shared data array)."""
    import numpy as np
    import scipy.sparse as sp

    from helpers import baselines

    counts = sp.csr_array(np.array([[3.0, 0.0, 7.0], [1.0, 2.0, 0.0], [0.0, 5.0, 4.0]]))
    before = counts.toarray().copy()
    baselines.item_knn(counts, n_neighbors=2)
    baselines.ease(counts, l2=1.0)
    baselines.ials(counts, dim=2, n_iter=1)
    np.testing.assert_array_equal(counts.toarray(), before)
    counts32 = sp.csr_matrix(before.astype(np.float32))
    baselines._implicit_input(counts32)
    np.testing.assert_array_equal(counts32.toarray(), before)


def test_float32_ease_matches_float64_ease():
    """dtype=np.float32 (Cholesky in float32, chapter 15's large catalogue) = the float64 inverse."""
    rng = np.random.default_rng(1)
    X = sp.csr_array((rng.random((40, 25)) < 0.2).astype(np.float64))
    np.testing.assert_allclose(b.ease(X, 3.0, dtype=np.float32), b.ease(X, 3.0), atol=2e-5)
    assert b.ease(X, 3.0, dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="l2 must be > 0"):
        b.ease(X, 0.0, dtype=np.float32)
    with pytest.raises(ValueError, match="dtype"):
        b.ease(X, 3.0, dtype=np.int64)
