"""helpers.beyond: coverage, Gini, novelty, intra-list diversity, popularity bias."""
import itertools

import numpy as np
import pytest

from helpers import beyond

# 3 users, lists of 2, a catalogue of 5 items
REC = np.array([[0, 1], [0, 2], [1, 0]])
COUNTS = np.array([8, 4, 2, 1, 0])  # training users per item, out of N_USERS
N_USERS = 8


def test_coverage_counts_distinct_items():
    assert beyond.catalogue_coverage(REC, 5) == pytest.approx(3 / 5)
    same_list = np.tile([3, 4], (10, 1))
    assert beyond.catalogue_coverage(same_list, 100) == pytest.approx(0.02)


def test_gini_extremes_and_pairwise_formula():
    # every item recommended equally often: 0
    assert beyond.gini_index(np.array([[0, 1], [2, 3]]), 4) == pytest.approx(0.0)
    # one item takes every slot of a catalogue of n: (n - 1) / n
    assert beyond.gini_index(np.zeros((5, 1), dtype=int), 4) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    rec = rng.integers(0, 30, size=(40, 5)) ** 2 % 30  # skewed
    c = np.bincount(rec.ravel(), minlength=30).astype(float)
    pairwise = np.abs(c[:, None] - c[None, :]).sum() / (2 * 30 ** 2 * c.mean())
    assert beyond.gini_index(rec, 30) == pytest.approx(pairwise)


def test_novelty_is_mean_self_information():
    # items 0, 1, 0, 2, 1, 0 with p = 1, 1/2, 1, 1/4, 1/2, 1 -> bits 0, 1, 0, 2, 1, 0
    assert beyond.novelty(REC, COUNTS, N_USERS) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="infinite"):
        beyond.novelty(np.array([[3, 4]]), COUNTS, N_USERS)
    with pytest.raises(ValueError, match="distinct users"):
        beyond.novelty(REC, COUNTS, 4)


def test_intra_list_diversity_against_a_loop():
    feats = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0]], dtype=float)
    assert beyond.intra_list_diversity(np.array([[0, 2]]), feats) == pytest.approx(1.0)
    assert beyond.intra_list_diversity(np.array([[0, 0]]), feats) == pytest.approx(0.0)
    rng = np.random.default_rng(1)
    rec = np.array([rng.choice(5, size=4, replace=False) for _ in range(6)])
    expected = []
    for row in rec:
        d = [1 - feats[i] @ feats[j] / np.linalg.norm(feats[i]) / np.linalg.norm(feats[j])
             for i, j in itertools.combinations(row, 2)]
        expected.append(np.mean(d))
    assert beyond.intra_list_diversity(rec, feats) == pytest.approx(np.mean(expected))
    with pytest.raises(ValueError, match="all-zero"):
        beyond.intra_list_diversity(np.array([[0, 1]]), np.array([[1.0], [0.0]]))
    with pytest.raises(ValueError, match="at least 2"):
        beyond.intra_list_diversity(np.array([[0], [1]]), feats)


def test_popularity_bias_measures():
    assert beyond.mean_popularity(REC, COUNTS) == pytest.approx((8 + 4 + 8 + 2 + 4 + 8) / 6)
    tail = beyond.long_tail_mask(COUNTS, head_fraction=0.2)  # head = the 1 most popular item
    np.testing.assert_array_equal(tail, [False, True, True, True, True])
    assert beyond.long_tail_share(REC, tail) == pytest.approx(3 / 6)
    # ties in count are broken by the lower index
    np.testing.assert_array_equal(beyond.long_tail_mask(np.array([5, 5, 5, 1]), 0.5),
                                  [False, False, True, True])


def test_report_and_a_popularity_recommender():
    rng = np.random.default_rng(2)
    n_items, n_users = 50, 40
    counts = np.sort(rng.integers(1, n_users, size=n_items))[::-1]
    feats = rng.integers(0, 2, size=(n_items, 6)) | np.eye(n_items, 6, dtype=int)
    feats[feats.sum(1) == 0, 0] = 1
    pop = np.tile(np.arange(10), (n_users, 1))  # everyone gets the 10 most popular
    rnd = np.array([rng.choice(n_items, 10, replace=False) for _ in range(n_users)])
    r_pop = beyond.beyond_accuracy_report(pop, counts, n_users, feats)
    r_rnd = beyond.beyond_accuracy_report(rnd, counts, n_users, feats)
    assert r_pop["coverage"] == pytest.approx(10 / n_items)
    assert r_pop["long_tail_share"] == 0.0
    assert r_rnd["coverage"] > r_pop["coverage"]
    assert r_rnd["novelty_bits"] > r_pop["novelty_bits"]
    assert r_rnd["gini"] < r_pop["gini"]
    assert r_rnd["mean_popularity"] < r_pop["mean_popularity"]
    assert set(r_pop) == {"coverage", "gini", "novelty_bits", "ild", "mean_popularity", "long_tail_share"}


@pytest.mark.parametrize("call, match", [
    (lambda: beyond.catalogue_coverage(np.array([0, 1]), 5), "2-D"),
    (lambda: beyond.catalogue_coverage(np.array([[0.0, 1.0]]), 5), "integer"),
    (lambda: beyond.catalogue_coverage(np.array([[0, 7]]), 5), r"\[0, 5\)"),
    (lambda: beyond.mean_popularity(np.array([[0, 9]]), COUNTS), "only 5 items"),
    (lambda: beyond.long_tail_mask(COUNTS, 1.5), "head_fraction"),
    (lambda: beyond.long_tail_share(REC, np.array([0, 1, 1, 1, 1])), "boolean"),
])
def test_bad_input_is_explained(call, match):
    with pytest.raises(ValueError, match=match):
        call()
