import numpy as np
import pytest

from helpers.sampling import NegativeSampler, sample_negatives


def test_negatives_never_hit_positives_and_are_seeded():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 2000)
    items = rng.integers(0, 30, 2000)  # dense: many collisions to resolve
    s = NegativeSampler(users, items, 30)
    neg = s.sample(users, 4, rng=7)
    assert neg.shape == (2000, 4)
    pos = set(zip(users.tolist(), items.tolist()))
    assert not any((u, i) in pos for u, row in zip(users.tolist(), neg.tolist()) for i in row)
    np.testing.assert_array_equal(neg, s.sample(users, 4, rng=7))
    assert not np.array_equal(neg, s.sample(users, 4, rng=8))


def test_popularity_weighted_sampling_follows_p():
    s = NegativeSampler(np.array([0]), np.array([0]), 4)
    p = np.array([0.0, 0.7, 0.2, 0.1])
    neg = s.sample(np.ones(200_000, dtype=int), 1, rng=0, p=p)[:, 0]
    np.testing.assert_allclose(np.bincount(neg, minlength=4) / len(neg), p, atol=0.01)
    with pytest.raises(ValueError, match="probability"):
        s.sample(np.array([1]), 1, p=np.array([1.0, 1.0, 0, 0]))


def test_uniform_over_non_positives():
    # user 0 has items 0 and 1; negatives must be uniform over 2..4
    neg = sample_negatives(np.array([0, 0]), np.array([0, 1]), 5, users=np.zeros(30_000, int), seed=1)
    freq = np.bincount(neg[:, 0], minlength=5) / neg.size
    np.testing.assert_allclose(freq, [0, 0, 1 / 3, 1 / 3, 1 / 3], atol=0.015)


def test_errors():
    with pytest.raises(ValueError, match="encode ids"):
        NegativeSampler(np.array([0]), np.array([5]), 3)
    s = NegativeSampler(np.array([0, 0]), np.array([0, 1]), 2)
    with pytest.raises(ValueError, match="every item"):
        s.sample(np.array([0]), 1)


def test_is_positive():
    s = NegativeSampler(np.array([0, 1]), np.array([2, 3]), 4)
    assert s.is_positive(np.array([0, 0, 1]), np.array([2, 3, 3])).tolist() == [True, False, True]


def test_dense_table_and_binary_search_agree(monkeypatch):
    rng = np.random.default_rng(5)
    users, items = rng.integers(0, 40, 500), rng.integers(0, 60, 500)
    qu, qi = rng.integers(0, 45, 5000), rng.integers(0, 60, 5000)  # includes unseen users
    dense = NegativeSampler(users, items, 60)
    monkeypatch.setattr(NegativeSampler, "DENSE_LIMIT", 0)
    sparse = NegativeSampler(users, items, 60)
    assert dense._dense is not None and sparse._dense is None
    np.testing.assert_array_equal(dense.is_positive(qu, qi), sparse.is_positive(qu, qi))
    np.testing.assert_array_equal(dense.sample(users, 3, rng=1), sparse.sample(users, 3, rng=1))


def test_unseen_items_and_counts():
    s = NegativeSampler(np.array([0, 0, 1]), np.array([1, 3, 0]), 5)
    assert s.unseen_items(0).tolist() == [0, 2, 4]
    assert s.unseen_items(7).tolist() == [0, 1, 2, 3, 4]          # an unseen user
    assert s.n_unseen(np.array([0, 1, 7])).tolist() == [3, 4, 5]
    p = np.array([0.0, 0.5, 0.0, 0.25, 0.25])
    assert s.n_unseen(np.array([0, 1, 7]), p).tolist() == [1, 3, 3]  # only items with p > 0


@pytest.mark.parametrize("call, message", [
    (lambda: NegativeSampler(np.array([0, -1]), np.array([0, 1]), 3), "negative"),
    (lambda: NegativeSampler(np.array([0, 1]), np.array([0, 1.5]), 3), "whole numbers"),
    (lambda: NegativeSampler(np.array([0, 1]), np.array([0]), 3), "equal length"),
    (lambda: NegativeSampler(np.array([0]), np.array([0]), 0), "n_items"),
    (lambda: NegativeSampler(np.array([0]), np.array([0]), 3).is_positive(np.array([0]), np.array([3])),
     r"\[0, 3\)"),
    (lambda: NegativeSampler(np.array([0]), np.array([0]), 3).is_positive(np.array([-1]), np.array([0])),
     "negative"),
    (lambda: NegativeSampler(np.array([0]), np.array([0]), 3).sample(np.array([0]), -1), "n must be"),
    (lambda: NegativeSampler(np.array([0]), np.array([0]), 3).sample(np.array([0]), 1.0), "n must be"),
    (lambda: NegativeSampler(np.array([0]), np.array([0]), 3).sample(np.array([-2]), 1), "negative"),
    (lambda: NegativeSampler(np.array([0]), np.array([0]), 3).sample(np.array([0]), 1,
                                                                     p=np.array([0.5, 0.5, np.nan])), "finite"),
    (lambda: NegativeSampler(np.array([0]), np.array([0]), 3).sample(np.array([0]), 1,
                                                                     p=np.array([1.0, 0.0, 0.0])), "p > 0"),
])
def test_bad_inputs_raise_a_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_out_of_range_items_no_longer_alias_another_users_keys():
    # with 3 items, (user 0, item 3) has the key of (user 1, item 0): it used to read as a positive
    s = NegativeSampler(np.array([1]), np.array([0]), 3)
    assert s.is_positive(np.array([1]), np.array([0])).tolist() == [True]
    with pytest.raises(ValueError, match="item indices"):
        s.is_positive(np.array([0]), np.array([3]))
