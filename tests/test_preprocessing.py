"""helpers.preprocessing: cleaning, mean-centring, popularity weights, ties at the last second."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.preprocessing import MeanCentering, clean_interactions, popularity_probabilities, ties_at_last
from helpers.sampling import NegativeSampler


def messy_log() -> pd.DataFrame:
    ts = pd.to_datetime([10, 20, 20, 30, 40, 50, 50, 60, 70], unit="s")
    return pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 2, 3, np.nan, 3],
        "item_id": [10, 11, 11, 10, 12, 10, 10, 12, 11],
        "rating": [4.0, 3.0, 3.0, 2.0, np.nan, 5.0, 1.0, 3.0, 2.0],
        "timestamp": ts,
    }, index=[100, 101, 102, 103, 104, 105, 106, 107, 108])


def test_clean_interactions_counts_and_keeps_the_latest_rating():
    clean, rep = clean_interactions(messy_log())
    assert rep == {"rows_in": 9, "missing": 2, "exact_duplicates": 1, "superseded": 1, "rows_out": 5}
    # user 2 rated item 10 twice: the later 5.0 survives, in original row order
    assert list(clean.index) == [100, 101, 105, 106, 108]
    assert clean.loc[105, "rating"] == 5.0
    assert not clean.duplicated(["user_id", "item_id"]).any()


def test_clean_interactions_ties_keep_later_file_row_and_value_col_optional():
    df = pd.DataFrame({"user_id": [1, 1], "item_id": [5, 5], "rating": [2.0, 4.0], "timestamp": [7, 7]})
    clean, rep = clean_interactions(df)
    assert clean["rating"].tolist() == [4.0] and rep["superseded"] == 1
    df2 = df.assign(rating=[np.nan, np.nan])
    assert clean_interactions(df2, value_col=None)[1]["missing"] == 0
    with pytest.raises(KeyError, match="missing"):
        clean_interactions(df.drop(columns="timestamp"))


def test_clean_interactions_matches_pandas_reference():
    rng = np.random.default_rng(1)
    n = 2000
    df = pd.DataFrame({"user_id": rng.integers(0, 30, n), "item_id": rng.integers(0, 40, n),
                       "rating": rng.integers(1, 6, n).astype(float), "timestamp": rng.integers(0, 50, n)})
    clean, rep = clean_interactions(df.drop_duplicates())
    ref = (df.drop_duplicates().reset_index().sort_values(["timestamp", "index"])
           .drop_duplicates(["user_id", "item_id"], keep="last").set_index("index").sort_index())
    pd.testing.assert_frame_equal(clean, ref.rename_axis(None), check_dtype=False)
    assert rep["rows_out"] == len(ref)


def test_mean_centering_user_offsets_and_round_trip():
    users = np.array([0, 0, 1, 1, 1])
    r = np.array([5.0, 3.0, 1.0, 2.0, 3.0])
    mc = MeanCentering.fit(users, r, n_keys=3)
    mu = r.mean()
    np.testing.assert_allclose(mc.offsets, [4.0 - mu, 2.0 - mu, 0.0])
    centred = mc.transform(users, r)
    np.testing.assert_allclose(centred, [1, -1, -1, 0, 1])
    np.testing.assert_allclose(mc.inverse_transform(users, centred), r)
    assert mc.predict(np.array([2]))[0] == pytest.approx(mu)  # unseen key: global mean
    # damping shrinks towards the global mean
    damped = MeanCentering.fit(users, r, n_keys=3, damping=2.0)
    np.testing.assert_allclose(damped.offsets[0], (8.0 - 2 * mu) / 4)
    assert abs(damped.offsets[0]) < abs(mc.offsets[0])


def test_mean_centering_bad_input():
    with pytest.raises(ValueError, match="encode ids"):
        MeanCentering.fit(np.array([0, 5]), np.array([1.0, 2.0]), n_keys=3)
    with pytest.raises(ValueError, match="equal length"):
        MeanCentering.fit(np.array([0, 1]), np.array([1.0]), n_keys=3)
    with pytest.raises(ValueError, match="damping"):
        MeanCentering.fit(np.array([0]), np.array([1.0]), n_keys=3, damping=-1)


def test_popularity_probabilities_and_use_with_sampler():
    items = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(popularity_probabilities(items, 4), [0.5, 1 / 6, 1 / 3, 0.0])
    np.testing.assert_allclose(popularity_probabilities(items, 4, alpha=0.0), [0.25] * 4)
    p = popularity_probabilities(items, 4, alpha=0.75)
    np.testing.assert_allclose(p[:3] / p[:3].sum(), np.array([3, 1, 2]) ** 0.75 / (np.array([3, 1, 2]) ** 0.75).sum())
    # with the sampler: user 0 has item 0, so popularity-weighted negatives are items 1 and 2
    sampler = NegativeSampler(np.array([0]), np.array([0]), 4)
    neg = sampler.sample(np.zeros(3000, dtype=int), 1, rng=0, p=popularity_probabilities(items, 4))
    counts = np.bincount(neg.ravel(), minlength=4)
    assert counts[0] == 0 and counts[3] == 0
    assert abs(counts[2] / counts[1:3].sum() - 2 / 3) < 0.03
    with pytest.raises(ValueError, match="alpha"):
        popularity_probabilities(items, 4, alpha=-1)
    with pytest.raises(ValueError, match="below n_items"):
        popularity_probabilities(items, 2)


def test_ties_at_last():
    df = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3], "timestamp": [5, 9, 9, 1, 2, 4]})
    s = ties_at_last(df)
    assert s.to_dict() == {1: 2, 2: 1, 3: 1}


def test_recency_weights_decay_from_each_users_latest():
    from helpers.preprocessing import recency_weights
    df = pd.DataFrame({"user_id": [1, 1, 2, 1, 2],
                       "timestamp": [10, 30, 5, 30, 7]})   # user 1: a tie at 30, the later row is latest
    w = recency_weights(df, tau=1.0, boost=2.0)
    # recency ranks: user 1 -> rows 0, 1, 3 are ranks 2, 1, 0; user 2 -> rows 2, 4 are 1, 0
    expected = 1 + 2 * np.exp(-np.array([2, 1, 1, 0, 0]))
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert w.dtype == np.float32
    np.testing.assert_array_equal(recency_weights(df, tau=3.0, boost=0.0), np.ones(5))
    with pytest.raises(ValueError, match="tau"):
        recency_weights(df, tau=0, boost=1)
    with pytest.raises(ValueError, match="boost"):
        recency_weights(df, tau=1, boost=-1)
    with pytest.raises(KeyError, match="timestamp"):
        recency_weights(df.drop(columns="timestamp"), tau=1, boost=1)
