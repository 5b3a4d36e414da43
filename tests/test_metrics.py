import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import mean_absolute_error, mean_squared_error, ndcg_score, roc_auc_score

from helpers import metrics as m


def test_rating_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y, p = rng.uniform(1, 5, 100), rng.uniform(1, 5, 100)
    assert m.rmse(y, p) == pytest.approx(np.sqrt(mean_squared_error(y, p)))
    assert m.mae(y, p) == pytest.approx(mean_absolute_error(y, p))
    with pytest.raises(ValueError, match="same length"):
        m.rmse([1, 2], [1])


def test_auc_and_log_loss_match_sklearn_with_ties():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500), 1)  # many ties
    assert m.auc(y, s) == pytest.approx(roc_auc_score(y, s))
    p = rng.uniform(0.01, 0.99, 500)
    assert m.log_loss(y, p) == pytest.approx(sk_log_loss(y, p))
    with pytest.raises(ValueError, match="positive and one negative"):
        m.auc([1, 1], [0.2, 0.3])


def test_rank_of_target_counts_ties_against():
    scores = np.array([[0.5, 0.9, 0.1], [0.5, 0.5, 0.5], [0.9, 0.1, 0.2]])
    assert m.rank_of_target(scores, 0).tolist() == [1, 2, 0]
    assert m.rank_of_target(scores, np.array([1, 0, 2])).tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="NaN"):
        m.rank_of_target(np.array([[np.nan, 1.0]]))


def test_single_target_metrics_worked_example():
    ranks = np.array([0, 3, 12])
    assert m.hit_rate_at_k(ranks, 10) == pytest.approx(2 / 3)
    assert m.ndcg_at_k(ranks, 10) == pytest.approx((1 + 1 / np.log2(5)) / 3)
    assert m.mrr(ranks) == pytest.approx((1 + 1 / 4 + 1 / 13) / 3)
    assert m.mrr(ranks, k=10) == pytest.approx((1 + 1 / 4) / 3)
    assert m.auc_from_ranks(np.array([0, 99]), 100) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="1-D"):
        m.hit_rate_at_k(np.zeros((2, 2)), 10)


def test_single_target_ndcg_matches_sklearn():
    rng = np.random.default_rng(2)
    scores = rng.random((50, 100))
    ranks = m.rank_of_target(scores, 0)
    rel = np.zeros_like(scores)
    rel[:, 0] = 1
    assert m.ndcg_at_k(ranks, 10) == pytest.approx(ndcg_score(rel, scores, k=10))


def test_top_k_and_list_metrics():
    scores = np.array([[0.1, 0.9, 0.8, 0.3, 0.7], [0.5, 0.4, 0.3, 0.2, 0.1]])
    train = sp.csr_array(np.array([[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]))
    top = m.top_k(scores, 3, exclude=train)
    assert top.tolist() == [[2, 4, 3], [0, 1, 2]]
    relevant = [{4, 0}, {2}]
    hits = m.hits_matrix(top, relevant)
    assert hits.tolist() == [[False, True, False], [False, False, True]]
    np.testing.assert_array_equal(hits, m.hits_matrix(top, sp.csr_array(np.array([[1, 0, 0, 0, 1], [0, 0, 1, 0, 0]]))))
    n_rel = np.array([2, 1])
    assert m.precision_at_k(hits) == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert m.recall_at_k(hits, n_rel) == pytest.approx((1 / 2 + 1) / 2)
    assert m.hit_rate_lists(hits) == 1.0
    assert m.mrr_lists(hits) == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert m.map_at_k(hits, n_rel) == pytest.approx(((1 / 2) / 2 + (1 / 3) / 1) / 2)
    ndcg0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    ndcg1 = (1 / np.log2(4)) / 1
    assert m.ndcg_lists(hits, n_rel) == pytest.approx((ndcg0 + ndcg1) / 2)


def test_list_ndcg_matches_sklearn():
    rng = np.random.default_rng(3)
    n_users, n_items, k = 40, 60, 10
    scores = rng.random((n_users, n_items))
    rel = (rng.random((n_users, n_items)) < 0.1).astype(float)
    rel[:, 0] = 1  # every user has a relevant item
    top = m.top_k(scores, k)
    hits = m.hits_matrix(top, sp.csr_array(rel))
    assert m.ndcg_lists(hits, rel.sum(1)) == pytest.approx(ndcg_score(rel, scores, k=k))


def test_grouped_auc_is_the_mean_of_per_group_sklearn_aucs():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 12, 400)
    y = (rng.random(400) < 0.3).astype(float)
    s = rng.normal(size=400) + y * (groups % 3)           # groups differ in how separable they are
    y[groups == 5] = 1.0                                  # group 5: positives only, skipped
    gauc, n = m.grouped_auc(groups, y, s)
    expected = [roc_auc_score(y[groups == g], s[groups == g]) for g in np.unique(groups) if g != 5]
    assert n == 11
    assert gauc == pytest.approx(np.mean(expected))
    with pytest.raises(ValueError, match="one entry per label"):
        m.grouped_auc(groups[:-1], y, s)
    with pytest.raises(ValueError, match="no group"):
        m.grouped_auc(np.zeros(3), np.ones(3), np.arange(3.0))


def test_ndcg_per_user_averages_to_ndcg_at_k():
    ranks = np.array([0, 1, 3, 9, 10, 50])
    per_user = m.ndcg_per_user(ranks, 10)
    np.testing.assert_allclose(per_user, [1.0, 1 / np.log2(3), 1 / np.log2(5), 1 / np.log2(11), 0.0, 0.0])
    assert per_user.mean() == pytest.approx(m.ndcg_at_k(ranks, 10))
