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


# ------------------------------------------------------------ issue 9: documented behaviour
def test_top_k_breaks_ties_by_the_lower_index_also_at_the_kth_place():
    assert m.top_k([[0, 0, 1, 1]], 1).tolist() == [[2]]
    assert m.top_k([[0, 0, 1, 1]], 3).tolist() == [[2, 3, 0]]
    assert m.top_k(np.ones((2, 6)), 4).tolist() == [[0, 1, 2, 3]] * 2
    # a long row of ties: argpartition alone returns an arbitrary subset here
    row = np.zeros((1, 1000))
    row[0, [10, 500, 999]] = 1.0
    assert m.top_k(row, 5).tolist() == [[10, 500, 999, 0, 1]]


def test_top_k_infinities_and_excluded_items():
    scores = np.array([[np.inf, -np.inf, 0.0, -np.inf, np.inf]])
    assert m.top_k(scores, 5).tolist() == [[0, 4, 2, 1, 3]]
    ex = sp.csr_array(np.array([[0, 0, 1, 0, 0]]))
    # the excluded item 2 stays out even though items 1 and 3 score -inf
    assert m.top_k(scores, 4, exclude=ex).tolist() == [[0, 4, 1, 3]]
    assert m.top_k(scores, 2, exclude=np.array([[1, 0, 0, 0, 0]])).tolist() == [[4, 2]]  # dense works too
    explicit_zero = sp.csr_array((np.array([0.0]), (np.array([0]), np.array([0]))), shape=(1, 5))
    assert m.top_k(scores, 1, exclude=explicit_zero).tolist() == [[0]]  # a stored 0 excludes nothing
    with pytest.raises(ValueError, match="only 4 items left"):
        m.top_k(scores, 5, exclude=ex)


@pytest.mark.parametrize("call, message", [
    (lambda: m.top_k([[1.0, np.nan]], 1), "NaN"),
    (lambda: m.top_k([[1.0, 2.0]], 0), "integer >= 1"),
    (lambda: m.top_k([[1.0, 2.0]], 1.0), "integer >= 1"),
    (lambda: m.top_k([[1.0, 2.0]], True), "integer >= 1"),
    (lambda: m.top_k([[1.0, 2.0]], 3), r"k must be in \[1, 2\]"),
    (lambda: m.top_k([1.0, 2.0], 1), "2-D"),
    (lambda: m.top_k([[1.0, 2.0]], 1, exclude=sp.csr_array((2, 2))), "shape"),
    (lambda: m.rank_of_target([[1.0, 2.0]], 2), r"\[0, 2\)"),
    (lambda: m.rank_of_target([[1.0, 2.0]], -1), r"\[0, 2\)"),
    (lambda: m.rank_of_target([[1.0, 2.0]], 0.5), "whole numbers"),
    (lambda: m.rank_of_target([[1.0, 2.0], [3.0, 4.0]], [0, 1, 0]), "one per row"),
    (lambda: m.rank_of_target(np.zeros((2, 0))), "no candidate"),
    (lambda: m.hit_rate_at_k([0, 1], 0), "integer >= 1"),
    (lambda: m.hit_rate_at_k([0, 1], 2.5), "integer >= 1"),
    (lambda: m.ndcg_at_k([0, 1], -3), "integer >= 1"),
    (lambda: m.ndcg_per_user([0, 1], None), "integer >= 1"),
    (lambda: m.mrr([0, 1], 0), "integer >= 1"),
    (lambda: m.hit_rate_at_k([0.0, np.nan], 10), "NaN"),
    (lambda: m.hit_rate_at_k([0, 1.5], 10), "whole numbers"),
    (lambda: m.hit_rate_at_k([0, -1], 10), "negative"),
    (lambda: m.hit_rate_at_k([], 10), "no users"),
    (lambda: m.auc_from_ranks([0, 5], 5), "impossible"),
    (lambda: m.auc_from_ranks([0], 1), "integer >= 2"),
    (lambda: m.rmse([1.0, np.nan], [1.0, 2.0]), "NaN"),
    (lambda: m.mae([1.0, np.inf], [1.0, 2.0]), "inf"),
    (lambda: m.rmse(np.zeros((2, 3)), np.zeros((3, 2))), "same length"),
    (lambda: m.rmse([], []), "empty"),
    (lambda: m.auc([0, 1, 2], [0.1, 0.2, 0.3]), "binary labels"),
    (lambda: m.auc([0, 1], [0.1, np.nan]), "NaN"),
    (lambda: m.log_loss([0, 1], [0.2, 1.5]), "logits"),
    (lambda: m.log_loss([0, 1], [0.2, np.nan]), "NaN"),
    (lambda: m.log_loss([0, 2], [0.2, 0.5]), r"\[0, 1\]"),
    (lambda: m.log_loss([0, 1], [0.2, 0.5], eps=0), "eps"),
    (lambda: m.grouped_auc([0, 0], [0, 1], [0.5, np.nan]), "NaN"),
    (lambda: m.grouped_auc([0.0, np.nan], [0, 1], [0.5, 0.1]), "group id"),
    (lambda: m.grouped_auc([0, 0], [0, 3], [0.5, 0.1]), "binary labels"),
    (lambda: m.hits_matrix([[0, -1]], [{0}]), "negative"),
    (lambda: m.hits_matrix([[0, 0]], [{0}]), "twice"),
    (lambda: m.hits_matrix([[0, 1.5]], [{0}]), "whole numbers"),
    (lambda: m.hits_matrix([[0, 5]], sp.csr_array((1, 5))), "outside the catalogue"),
    (lambda: m.hits_matrix([[0, 1]], [{0}, {1}]), "one row per user"),
    (lambda: m.precision_at_k(np.zeros((2, 0))), "non-empty"),
    (lambda: m.precision_at_k(np.array([[0.3, 0.9]])), "boolean"),
    (lambda: m.recall_at_k(np.array([[True, False]]), 0), "at least one relevant"),
    (lambda: m.recall_at_k(np.array([[True, True]]), 1), "at least the hits"),
    (lambda: m.ndcg_lists(np.array([[True, False]]), 1.5), "whole numbers"),
    (lambda: m.map_at_k(np.array([[True, False]]), np.nan), "NaN"),
    (lambda: m.map_at_k(np.array([[True], [False]]), [1, 2, 3]), "one per user"),
])
def test_bad_inputs_raise_a_value_error_that_says_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_documented_edge_answers():
    # +-inf are ordinary scores; a target tied at -inf ranks behind the other -inf
    assert m.rank_of_target([[-np.inf, -np.inf, 1.0, np.inf]], 0).tolist() == [3]
    assert m.rank_of_target([[np.inf, np.inf, 1.0]], 0).tolist() == [1]
    assert m.auc([0, 1, 0, 1], [-np.inf, np.inf, 0.0, 0.0]) == pytest.approx(0.875)
    # a diverged model's predictions give a non-finite RMSE that a training loop can test
    assert np.isnan(m.rmse([1.0, 2.0], [1.0, np.nan])) and m.mae([1.0, 2.0], [1.0, np.inf]) == np.inf
    # Keras-style (n, 1) predictions are accepted against (n,) labels
    assert m.rmse(np.array([1.0, 2.0]), np.array([[1.0], [4.0]])) == pytest.approx(np.sqrt(2))
    # whole-number floats are accepted where integers are expected
    assert m.hit_rate_at_k(np.array([0.0, 12.0]), 10) == 0.5
    # a user without relevant items: precision, HR and MRR count 0 for them
    hits = np.array([[0, 1], [0, 0]])
    assert m.precision_at_k(hits) == 0.25 and m.hit_rate_lists(hits) == 0.5 and m.mrr_lists(hits) == 0.25
    assert m.hits_matrix([[3, 1]], [set()]).tolist() == [[False, False]]
    assert m.hits_matrix([[3, 1]], [[1, 7]]).tolist() == [[False, True]]  # a list of ids works as a set


def _grouped_auc_loop(groups, y, s):
    """The pre-vectorisation implementation: one sklearn AUC per group in a Python loop."""
    values = [roc_auc_score(y[groups == g], s[groups == g]) for g in np.unique(groups)
              if 0 < y[groups == g].sum() < (groups == g).sum()]
    return float(np.mean(values)), len(values)


def test_grouped_auc_vectorised_equals_the_per_group_loop():
    rng = np.random.default_rng(4)
    n = 6000
    groups = rng.integers(0, 800, n)
    y = (rng.random(n) < 0.3).astype(float)
    s = np.round(rng.normal(size=n) + y, 1)               # many ties within groups
    gauc, used = m.grouped_auc(groups, y, s)
    ref, ref_used = _grouped_auc_loop(groups, y, s)
    assert used == ref_used and abs(gauc - ref) < 1e-12
    # string ids and a shuffled order give the same answer
    perm = rng.permutation(n)
    names = np.array([f"user{g}" for g in groups])
    assert abs(m.grouped_auc(names[perm], y[perm], s[perm])[0] - gauc) < 1e-12
