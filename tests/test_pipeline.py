"""helpers.pipeline: EASE in float32, MMR, explanations, per-user metrics, features and
Recommender.recommend with what a real caller sends."""
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers import metrics, pipeline
from helpers.baselines import ease, item_knn


def _toy(seed=0, n_users=12, n_items=9):
    rng = np.random.default_rng(seed)
    X = sp.csr_array((rng.random((n_users, n_items)) < 0.4).astype(float))
    return X


def _ratings(X, now):
    u, i = X.nonzero()
    ts = now - pd.to_timedelta(np.arange(len(u)) + 1, unit="D")
    return pd.DataFrame({"user_id": u + 100, "item_id": i + 1000, "rating": 3.0 + (i % 3),
                         "timestamp": ts})


def _recommender(X, **kw):
    n_items = X.shape[1]
    now = pd.Timestamp("2020-01-01")
    items = pd.Index(np.arange(n_items) + 1000)
    genres = np.eye(n_items, 3)[:, :3] + np.eye(n_items, 3, k=-3)[:, :3] + np.eye(n_items, 3, k=-6)[:, :3]
    tables = pipeline.FeatureTables.from_ratings(_ratings(X, now), items, genres, np.arange(n_items) + 1990.0,
                                                 None, now)
    return pipeline.Recommender(items.to_numpy(), np.array([f"film {i}" for i in range(n_items)]),
                                np.arange(X.shape[0]) + 100, X, ease(X, 2.0), np.asarray(X.sum(axis=0)).ravel(),
                                tables=tables, **kw)


def test_check_k_rejects_what_a_caller_may_send():
    assert pipeline.check_k(3) == 3 and pipeline.check_k(np.int64(2)) == 2
    for bad in (0, -1, 2.5, "10", True, None, 3.0):
        with pytest.raises(ValueError, match="positive integer"):
            pipeline.check_k(bad)


def test_top_unseen_excludes_seen_and_breaks_ties_by_index():
    s = np.array([1.0, 5.0, 5.0, 3.0, 0.0])
    assert pipeline.top_unseen(s, np.array([1]), 3).tolist() == [2, 3, 0]
    assert pipeline.top_unseen(s, np.array([0, 1, 2, 3]), 3).tolist() == [4]
    with pytest.raises(ValueError, match="NaN"):
        pipeline.top_unseen(np.array([np.nan, 1.0]), np.array([], dtype=int), 1)


def test_mmr_lambda_one_is_relevance_order_and_brute_force_agrees():
    rng = np.random.default_rng(3)
    r = rng.random(8)
    f = pipeline.unit_rows(rng.random((8, 4)))
    sim = f @ f.T
    assert pipeline.mmr_rerank(r, sim, 5, 1.0).tolist() == np.argsort(-r, kind="stable")[:5].tolist()
    lam = 0.6
    rt = (r - r.min()) / (r.max() - r.min())
    chosen = []
    for _ in range(5):      # the formula, written out
        best = max((i for i in range(8) if i not in chosen),
                   key=lambda i: lam * rt[i] - (1 - lam) * max([sim[i, j] for j in chosen], default=0.0))
        chosen.append(best)
    assert pipeline.mmr_rerank(r, sim, 5, lam).tolist() == chosen


def test_mmr_diversifies_and_validates():
    r = np.array([1.0, 0.99, 0.5])
    sim = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1.0]])     # 0 and 1 identical
    assert pipeline.mmr_rerank(r, sim, 2, 1.0).tolist() == [0, 1]
    assert pipeline.mmr_rerank(r, sim, 2, 0.5).tolist() == [0, 2]
    assert pipeline.mmr_rerank(r, sim, 10, 0.5).size == 3
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        pipeline.mmr_rerank(r, sim, 2, 1.5)
    with pytest.raises(ValueError, match="similarity must be"):
        pipeline.mmr_rerank(r, sim[:2], 2, 0.5)


def test_explain_picks_the_most_similar_rated_item():
    S = np.array([[0, .9, .1, 0], [.9, 0, .5, 0], [.1, .5, 0, 0], [0, 0, 0, 0]])
    because, strength = pipeline.explain(np.array([0, 1]), np.array([2, 3]), S)
    assert because.tolist() == [1, -1] and strength.tolist() == [0.5, 0.0]
    b2, _ = pipeline.explain(np.array([0, 1]), np.array([2]), sp.csr_array(S))
    assert b2.tolist() == [1]
    assert pipeline.explain(np.array([], dtype=int), np.array([2]), S)[0].tolist() == [-1]


def test_recall_ndcg_per_user_match_helpers_metrics():
    rng = np.random.default_rng(5)
    lists = np.array([rng.permutation(30)[:10] for _ in range(6)])
    rel = [set(rng.choice(30, size=rng.integers(1, 8), replace=False).tolist()) for _ in range(6)]
    r, n = pipeline.recall_ndcg_per_user(lists, rel, 10)
    hits = metrics.hits_matrix(lists, rel)
    n_rel = np.array([len(s) for s in rel])
    assert r.mean() == pytest.approx(metrics.recall_at_k(hits, n_rel))
    assert n.mean() == pytest.approx(metrics.ndcg_lists(hits, n_rel))
    r_short, n_short = pipeline.recall_ndcg_per_user([[1]], [{1, 2}], 10)     # a short list
    assert r_short[0] == 0.5 and n_short[0] == pytest.approx(1 / (1 + 1 / np.log2(3)))
    with pytest.raises(ValueError, match="no relevant items"):
        pipeline.recall_ndcg_per_user([[1]], [set()], 5)


def test_feature_tables_use_only_the_past_and_have_named_columns():
    X = _toy()
    now = pd.Timestamp("2020-01-01")
    items = pd.Index(np.arange(X.shape[1]) + 1000)
    rat = _ratings(X, now)
    t = pipeline.FeatureTables.from_ratings(rat, items, np.ones((X.shape[1], 2)), np.full(X.shape[1], np.nan),
                                            None, now)
    F = t.features(100, np.array([0, 1, 2]), np.array([0.3, 0.2, 0.1]))
    assert F.shape == (3, len(pipeline.FEATURE_NAMES)) and np.isfinite(F).all()
    np.testing.assert_allclose(F[:, 2], np.log1p(np.asarray(X.sum(axis=0)).ravel()[:3]))
    with pytest.raises(ValueError, match="earlier than now"):
        pipeline.FeatureTables.from_ratings(rat, items, np.ones((X.shape[1], 2)), np.zeros(X.shape[1]), None,
                                            rat["timestamp"].min())


def test_numpy_integer_ids_are_known_users():
    rec = _recommender(_toy())
    assert rec.recommend(np.int64(100), 2).items == rec.recommend(100, 2).items
    assert not rec.recommend(np.int32(100), 2).cold_start


def test_recommend_known_user_runs_every_stage():
    X = _toy()
    rec = _recommender(X, ranker=lambda F: F[:, 0] + 0.01 * F[:, 7], n_candidates=4, mmr_lambda=0.7,
                       explain_similarity=item_knn(X))
    out = rec.recommend(100, 3)
    seen = set((X[[0]].indices + 1000).tolist())
    assert not out.cold_start and out.reason == "personalised"
    assert len(out.items) == 3 and not seen & set(out.items)
    assert len(out.because) == len(out.titles) == 3
    assert all(b is None or b in seen for b in out.because)
    assert out.table().shape == (3, 2)


def test_recommend_candidates_only_equals_ease_top_k():
    X = _toy(2)
    rec = _recommender(X)
    scores = X[[3]].toarray() @ ease(X, 2.0)
    top = metrics.top_k(scores, 4, exclude=X[[3]])[0]
    assert rec.recommend(103, 4).items == (top + 1000).tolist()


def test_unknown_user_gets_flagged_popularity_fallback():
    X = _toy()
    rec = _recommender(X)
    for uid in (999, "someone", None, 1.5, 100.7, "100", True):
        out = rec.recommend(uid, 3)
        assert out.cold_start and "unknown user" in out.reason
        pop = np.asarray(X.sum(axis=0)).ravel()
        assert out.items == (np.argsort(-pop, kind="stable")[:3] + 1000).tolist()


def test_user_who_rated_everything_gets_empty_list_with_reason():
    X = _toy().tolil()
    X[0, :] = 1.0
    rec = _recommender(sp.csr_array(X))
    out = rec.recommend(100, 5)
    assert out.items == [] and not out.cold_start and "rated all" in out.reason


def test_few_unseen_items_left_gives_a_shorter_list_and_says_so():
    X = _toy().tolil()
    X[0, :] = 1.0
    X[0, 2] = 0.0
    out = _recommender(sp.csr_array(X)).recommend(100, 5)
    assert out.items == [1002] and "only 1" in out.reason


def test_bad_k_is_a_clear_value_error():
    rec = _recommender(_toy())
    for bad in (0, -2, 2.5, "3", True):
        with pytest.raises(ValueError, match="positive integer"):
            rec.recommend(100, bad)
        with pytest.raises(ValueError, match="positive integer"):
            rec.recommend(12345, bad)         # also for an unknown user


def test_recommender_validates_its_stages():
    X = _toy()
    with pytest.raises(ValueError, match="a ranker needs FeatureTables"):
        pipeline.Recommender(np.arange(9), np.array(["f"] * 9), np.arange(12), X, ease(X, 2.0), np.ones(9),
                             ranker=lambda F: F[:, 0])
    with pytest.raises(ValueError, match="weights must be"):
        pipeline.Recommender(np.arange(9), np.array(["f"] * 9), np.arange(12), X, np.eye(3), np.ones(9))
    with pytest.raises(ValueError, match="mmr_lambda"):
        _recommender(X, mmr_lambda=2.0)


def test_tag_match_is_cosine_of_item_tags_and_user_tag_profile():
    now = pd.Timestamp("2020-01-01")
    items = pd.Index([10, 11, 12])
    rat = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 11], "rating": [4.0, 5.0],
                        "timestamp": [now - pd.Timedelta(days=2)] * 2})
    tags = pd.DataFrame({"item_id": [10, 11, 12, 12, 12], "tag": ["Funny", "funny ", "dark", "funny", "late"],
                         "timestamp": [now - pd.Timedelta(days=1)] * 4 + [now + pd.Timedelta(days=1)]})
    t = pipeline.FeatureTables.from_ratings(rat, items, np.ones((3, 1)), np.array([2000.0, 2001.0, 2002.0]), tags, now)
    F = t.features(1, np.array([2, 0]), np.zeros(2))
    col = pipeline.FEATURE_NAMES.index("tag_match")
    # user profile: "funny" only; item 12 (the later "late" tag ignored): {dark, funny} -> cosine 1/sqrt(2)
    np.testing.assert_allclose(F[:, col], [1 / np.sqrt(2), 1.0])
    np.testing.assert_allclose(F[:, pipeline.FEATURE_NAMES.index("log_item_tags")], np.log1p([2, 1]))
    assert t.features(99, np.array([0]), np.zeros(1))[0, col] == 0.0     # a user without a profile
