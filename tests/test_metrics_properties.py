"""Property-based tests: helpers.metrics against short, obviously correct reference
implementations (pure Python loops over the definitions), on inputs full of ties and
infinite scores."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import roc_auc_score

from helpers import metrics as m

FAST = settings(max_examples=60, deadline=None)
# few distinct values, so that ties and infinities are common
SCORE = st.sampled_from([-np.inf, -1.0, 0.0, 0.25, 0.5, 2.0, np.inf])


@st.composite
def score_matrices(draw, min_cols=1, max_rows=6, max_cols=9):
    shape = draw(st.tuples(st.integers(1, max_rows), st.integers(min_cols, max_cols)))
    return draw(hnp.arrays(np.float64, shape, elements=SCORE))


# ---------------------------------------------------------------- reference implementations
def ref_rank(row, t):
    return sum(1 for j, s in enumerate(row) if j != t and s >= row[t])


def ref_top_k(row, k, banned=()):
    allowed = [j for j in range(len(row)) if j not in banned]
    return sorted(allowed, key=lambda j: (-row[j], j))[:k]


def ref_auc(y, s):
    pos = [b for a, b in zip(y, s) if a == 1]
    neg = [b for a, b in zip(y, s) if a == 0]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def ref_list_metrics(lst, rel, k):
    hits = [i in rel for i in lst]
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
    ap = sum(sum(hits[:i + 1]) / (i + 1) for i, h in enumerate(hits) if h) / min(len(rel), k)
    first = next((i for i, h in enumerate(hits) if h), None)
    return {"P": sum(hits) / k, "R": sum(hits) / len(rel), "HR": float(any(hits)),
            "NDCG": dcg / idcg, "MAP": ap, "MRR": 0.0 if first is None else 1 / (first + 1)}


# ---------------------------------------------------------------- properties
@FAST
@given(score_matrices(), st.data())
def test_rank_of_target_counts_every_score_at_least_the_targets(scores, data):
    cols = data.draw(hnp.arrays(np.int64, scores.shape[0], elements=st.integers(0, scores.shape[1] - 1)))
    got = m.rank_of_target(scores, cols)
    assert got.tolist() == [ref_rank(row, t) for row, t in zip(scores.tolist(), cols.tolist())]
    assert m.rank_of_target(scores, 0).tolist() == [ref_rank(row, 0) for row in scores.tolist()]


@FAST
@given(score_matrices(), st.data())
def test_top_k_is_a_stable_sort_of_the_allowed_items(scores, data):
    n, n_items = scores.shape
    ex = data.draw(hnp.arrays(bool, scores.shape, elements=st.booleans()))
    ex[:, 0] = False                                       # at least one item stays
    left = int((~ex).sum(axis=1).min())
    k = data.draw(st.integers(1, left))
    got = m.top_k(scores, k, exclude=sp.csr_array(ex))
    expected = [ref_top_k(row, k, set(np.flatnonzero(e).tolist())) for row, e in zip(scores.tolist(), ex)]
    assert got.tolist() == expected
    k_all = data.draw(st.integers(1, n_items))
    assert m.top_k(scores, k_all).tolist() == [ref_top_k(row, k_all) for row in scores.tolist()]


@FAST
@given(hnp.arrays(np.int64, st.integers(1, 30), elements=st.integers(0, 40)), st.integers(1, 45))
def test_single_target_metrics_follow_their_formulas(ranks, k):
    r = ranks.tolist()
    assert m.hit_rate_at_k(ranks, k) == pytest.approx(sum(x < k for x in r) / len(r), abs=1e-12)
    per_user = [1 / math.log2(x + 2) if x < k else 0.0 for x in r]
    np.testing.assert_allclose(m.ndcg_per_user(ranks, k), per_user, rtol=1e-12)
    assert m.ndcg_at_k(ranks, k) == pytest.approx(sum(per_user) / len(r), abs=1e-12)
    assert m.mrr(ranks) == pytest.approx(sum(1 / (x + 1) for x in r) / len(r), abs=1e-12)
    assert m.mrr(ranks, k) == pytest.approx(sum(1 / (x + 1) for x in r if x < k) / len(r), abs=1e-12)
    assert m.auc_from_ranks(ranks, 41) == pytest.approx(sum(1 - x / 40 for x in r) / len(r), abs=1e-12)


@FAST
@given(st.data())
def test_auc_is_the_pairwise_definition(data):
    n = data.draw(st.integers(2, 40))
    y = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    y[0], y[1] = 0, 1
    s = data.draw(hnp.arrays(np.float64, n, elements=SCORE))
    assert m.auc(y, s) == pytest.approx(ref_auc(y.tolist(), s.tolist()), abs=1e-12)


@FAST
@given(st.data())
def test_grouped_auc_is_the_mean_of_per_group_aucs(data):
    n = data.draw(st.integers(2, 60))
    groups = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-3, 6)))
    y = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    s = data.draw(hnp.arrays(np.float64, n, elements=SCORE))
    groups[:2], y[:2] = 7, [0, 1]                          # one usable group at least
    per_group = [ref_auc(y[groups == g].tolist(), s[groups == g].tolist())
                 for g in np.unique(groups) if 0 < y[groups == g].sum() < (groups == g).sum()]
    gauc, used = m.grouped_auc(groups, y, s)
    assert used == len(per_group)
    assert gauc == pytest.approx(np.mean(per_group), abs=1e-12)
    finite = np.where(np.isinf(s), np.sign(s) * 1e6, s)  # sklearn rejects inf; same order
    per_group_sk = [roc_auc_score(y[groups == g], finite[groups == g])
                    for g in np.unique(groups) if 0 < y[groups == g].sum() < (groups == g).sum()]
    assert abs(m.grouped_auc(groups, y, finite)[0] - np.mean(per_group_sk)) < 1e-12


@FAST
@given(st.data())
def test_list_metrics_follow_their_definitions(data):
    n_users, n_items = data.draw(st.integers(1, 6)), data.draw(st.integers(2, 12))
    k = data.draw(st.integers(1, n_items))
    scores = data.draw(hnp.arrays(np.float64, (n_users, n_items), elements=SCORE))
    rel = [data.draw(st.sets(st.integers(0, n_items - 1), min_size=1)) for _ in range(n_users)]
    top = m.top_k(scores, k)
    hits = m.hits_matrix(top, rel)
    dense = np.zeros((n_users, n_items))
    for u, r in enumerate(rel):
        dense[u, list(r)] = 1
    np.testing.assert_array_equal(hits, m.hits_matrix(top, sp.csr_array(dense)))
    n_rel = np.array([len(r) for r in rel])
    ref = [ref_list_metrics(lst, r, k) for lst, r in zip(top.tolist(), rel)]
    mean = {key: np.mean([x[key] for x in ref]) for key in ref[0]}
    got = {"P": m.precision_at_k(hits), "R": m.recall_at_k(hits, n_rel), "HR": m.hit_rate_lists(hits),
           "NDCG": m.ndcg_lists(hits, n_rel), "MAP": m.map_at_k(hits, n_rel), "MRR": m.mrr_lists(hits)}
    for key in mean:
        assert got[key] == pytest.approx(mean[key], abs=1e-12), key


@FAST
@given(score_matrices(), st.data())
def test_ranks_are_the_pessimistic_view_of_top_k_lists(scores, data):
    """One relevant item per user: a rank below k puts it in the top-k list; without ties
    around it the two views agree exactly (ties count against in ranks, not in lists)."""
    n, n_items = scores.shape
    t = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, n_items - 1)))
    k = data.draw(st.integers(1, n_items))
    in_list = m.hits_matrix(m.top_k(scores, k), [{x} for x in t.tolist()]).any(axis=1)
    ranked = m.rank_of_target(scores, t) < k
    assert (in_list >= ranked).all()
    target = scores[np.arange(n), t]
    tied = (scores == target[:, None]).sum(axis=1) > 1
    np.testing.assert_array_equal(in_list[~tied], ranked[~tied])
