"""Property-based tests for candidate sampling and full ranking (helpers.evaluation,
helpers.sampling): every feasible request is met with distinct unseen items, every
infeasible one is a ValueError, and full ranks match a short reference."""
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from helpers import evaluation as ev
from helpers.sampling import NegativeSampler

FAST = settings(max_examples=40, deadline=None)


@st.composite
def logs(draw):
    """A small interaction log where some users have seen most of the catalogue."""
    n_users, n_items = draw(st.integers(1, 5)), draw(st.integers(2, 30))
    seen = draw(hnp.arrays(bool, (n_users, n_items), elements=st.booleans()))
    for u in range(n_users):                               # a test item each, and >= 1 unseen item
        t, v = draw(st.lists(st.integers(0, n_items - 1), min_size=2, max_size=2, unique=True))
        seen[u, t], seen[u, v] = True, False
    users, items = np.nonzero(seen)
    test_u = np.arange(n_users)
    test_i = np.array([items[users == u][0] for u in test_u])
    return users, items, n_items, test_u, test_i, seen


@FAST
@given(logs(), st.data())
def test_feasible_requests_are_met_and_infeasible_ones_raise(log, data):
    users, items, n_items, test_u, test_i, seen = log
    unseen = (~seen).sum(axis=1)
    weighted = data.draw(st.booleans())
    p = None
    if weighted:
        w = data.draw(hnp.arrays(np.float64, n_items, elements=st.sampled_from([0.0, 1e-9, 1.0, 5.0])))
        w[0] = 1.0
        p = w / w.sum()
        unseen = ((~seen) & (p > 0)).sum(axis=1)
    n_neg = data.draw(st.integers(1, n_items))
    seed = data.draw(st.integers(0, 3))
    if n_neg > unseen.min():
        with pytest.raises(ValueError, match="distinct negatives were requested"):
            ev.sample_candidates(users, items, n_items, test_u, test_i, n_neg=n_neg, seed=seed, p=p)
        return
    cand = ev.sample_candidates(users, items, n_items, test_u, test_i, n_neg=n_neg, seed=seed, p=p)
    assert cand.shape == (len(test_u), 1 + n_neg)
    np.testing.assert_array_equal(cand[:, 0], test_i)
    for u, row in zip(test_u, cand[:, 1:]):
        assert len(set(row.tolist())) == n_neg
        assert not seen[u, row].any()
        if p is not None:
            assert (p[row] > 0).all()
    np.testing.assert_array_equal(
        cand, ev.sample_candidates(users, items, n_items, test_u, test_i, n_neg=n_neg, seed=seed, p=p))


@FAST
@given(logs(), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_sampled_negatives_are_never_positives(log, n, seed):
    users, items, n_items, test_u, _, seen = log
    neg = NegativeSampler(users, items, n_items).sample(test_u, n, rng=seed)
    assert neg.shape == (len(test_u), n)
    assert not seen[test_u[:, None], neg].any()


@FAST
@given(st.data())
def test_full_ranks_count_allowed_items_scoring_at_least_the_target(data):
    n_users, n_items = data.draw(st.integers(1, 5)), data.draw(st.integers(2, 10))
    scores = data.draw(hnp.arrays(np.float64, (n_users, n_items),
                                  elements=st.sampled_from([-np.inf, -1.0, 0.0, 1.0, np.inf])))
    targets = data.draw(hnp.arrays(np.int64, n_users, elements=st.integers(0, n_items - 1)))
    ex = data.draw(hnp.arrays(bool, (n_users, n_items), elements=st.booleans()))
    ex[np.arange(n_users), targets] = False
    got = ev.full_ranks(scores, targets, sp.csr_array(ex))
    expected = [sum(1 for j in range(n_items) if j != t and not e[j] and row[j] >= row[t])
                for row, t, e in zip(scores.tolist(), targets.tolist(), ex)]
    assert got.tolist() == expected
