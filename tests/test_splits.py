import numpy as np
import pandas as pd
import pytest

from helpers.encoding import IdEncoder, encode_ids
from helpers.splits import leave_last_out, random_split, temporal_split_per_user


def toy() -> pd.DataFrame:
    # user 1 rated items 30, 10, 20 in the same second (file order 30, 10, 20), then nothing later
    return pd.DataFrame({
        "user_id": [1, 2, 1, 1, 2, 2, 3],
        "item_id": [30, 5, 10, 20, 6, 7, 9],
        "timestamp": pd.to_datetime([100, 50, 100, 100, 60, 40, 10], unit="s"),
    })


def test_leave_last_out_keeps_file_order_for_ties():
    train, test = leave_last_out(toy())
    # user 1: all three tie at t=100 -> the LAST row in the file (item 20) is held out, not
    # the highest item id (30) nor the lowest (10)
    assert dict(zip(test.user_id, test.item_id)) == {1: 20, 2: 6}
    # user 3 has one interaction: stays in train
    assert 3 in set(train.user_id) and 3 not in set(test.user_id)
    assert len(train) + len(test) == 7 and train.index.intersection(test.index).empty


def test_leave_last_out_n2_and_errors():
    train, test = leave_last_out(toy(), n=2)
    assert sorted(zip(test.user_id, test.item_id)) == [(1, 10), (1, 20), (2, 5), (2, 6)]
    with pytest.raises(ValueError):
        leave_last_out(toy(), n=0)
    with pytest.raises(KeyError, match="timestamp"):
        leave_last_out(toy().drop(columns="timestamp"))


def test_leave_last_out_is_invariant_to_item_ids():
    df = toy()
    relabelled = df.assign(item_id=1000 - df.item_id)
    _, t1 = leave_last_out(df)
    _, t2 = leave_last_out(relabelled)
    assert t1.index.tolist() == t2.index.tolist()


def test_temporal_split_holds_out_latest_fraction():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user_id": np.repeat([1, 2], 10), "item_id": np.arange(20),
                       "timestamp": pd.to_datetime(rng.permutation(20), unit="s")})
    train, test = temporal_split_per_user(df, 0.3)
    assert (test.groupby("user_id").size() == 3).all()
    for u in (1, 2):
        assert train[train.user_id == u].timestamp.max() <= test[test.user_id == u].timestamp.min()


def test_random_split_is_seeded_and_sized():
    df = toy()
    a = random_split(df, 0.3, seed=1)[1].index
    b = random_split(df, 0.3, seed=1)[1].index
    assert a.equals(b) and len(a) == 2
    with pytest.raises(ValueError):
        random_split(df, 1.5)


def test_id_encoder_round_trip_and_unknown():
    df, ue, ie = encode_ids(toy())
    assert df.user.tolist() == [0, 1, 0, 0, 1, 1, 2]
    assert sorted(df.item.unique()) == list(range(len(ie)))
    np.testing.assert_array_equal(ie.inverse(df.item), toy().item_id)
    with pytest.raises(KeyError, match="not seen"):
        IdEncoder.fit([1, 2, 3]).transform([2, 7])


def test_ml100k_ties_are_common(real_data_dir):
    """The reason file order matters: many users' last ratings share one second."""
    from helpers.data import load_movielens

    r = load_movielens("ml-100k", real_data_dir).ratings
    last = r.groupby("user_id")["timestamp"].transform("max")
    n_tied = (r[r.timestamp == last].groupby("user_id").size() > 1).sum()
    assert n_tied > 100
    _, test = leave_last_out(r)
    assert len(test) == 943
