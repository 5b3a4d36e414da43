"""helpers.splits: the global-timeline split and the share of training rows later than a test moment."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.splits import global_time_split, later_training_share, leave_last_out, time_cutoff


def log() -> pd.DataFrame:
    # user 1 early, user 2 spans the cutoff (ties at t=60 in file order: items 22, 21),
    # user 3 only late (cold start after the cutoff)
    return pd.DataFrame({
        "user_id": [1, 2, 1, 2, 2, 2, 3, 2, 1],
        "item_id": [10, 20, 11, 23, 22, 21, 30, 24, 12],
        "timestamp": pd.to_datetime([10, 20, 30, 40, 60, 60, 70, 80, 90], unit="s"),
    }, index=[100, 101, 102, 103, 104, 105, 106, 107, 108])


def test_time_cutoff_is_the_row_at_the_quantile():
    df = log()
    assert time_cutoff(df, 0.5) == pd.Timestamp(60, unit="s")       # row 4 of 9 in time order
    assert time_cutoff(df, 0.01) == pd.Timestamp(10, unit="s")
    shuffled = df.sample(frac=1.0, random_state=0)
    assert time_cutoff(shuffled, 0.5) == time_cutoff(df, 0.5)       # file order is irrelevant
    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="cutoff_quantile"):
            time_cutoff(df, bad)
    with pytest.raises(ValueError, match="empty"):
        time_cutoff(df.iloc[:0], 0.5)


def test_global_time_split_all_future_rows_of_known_users():
    train, test = global_time_split(log(), 0.5)                     # T = 60 s
    assert list(train.index) == [100, 101, 102, 103]
    # user 3 appears only after T: cold start, not tested; users 1 and 2 keep all later rows
    assert list(test.index) == [104, 105, 107, 108]
    assert train["timestamp"].max() < test["timestamp"].min()


def test_global_time_split_next_only_keeps_first_row_after_cutoff_with_file_order_ties():
    train, test = global_time_split(log(), 0.5, next_only=True)
    assert list(train.index) == [100, 101, 102, 103]
    # user 2: items 22 and 21 tie at 60 s -> the earlier file row (22) is the next item
    assert dict(zip(test.user_id, test.item_id)) == {1: 12, 2: 22}
    assert test.groupby("user_id").size().eq(1).all()


def test_global_time_split_keys_and_empty_future():
    with pytest.raises(KeyError, match="timestamp"):
        global_time_split(log().drop(columns="timestamp"))
    df = log().assign(timestamp=pd.Timestamp(0, unit="s"))            # all rows in one second
    train, test = global_time_split(df, 0.5, next_only=True)         # T equals every timestamp
    assert len(train) == 0 and len(test) == 0


def test_later_training_share_by_hand():
    df = log()
    # hold out user 1's second row (30 s): of the 8 other rows, 6 are later (40, 60, 60, 70, 80, 90)
    share = later_training_share(df.drop(index=102), df.loc[[102]])
    assert list(share.index) == [1] and share.loc[1] == pytest.approx(6 / 8)
    # equal timestamps do not count as later: held out 60 s (row 104), later are 70, 80, 90
    assert later_training_share(df.drop(index=104), df.loc[[104]]).loc[2] == pytest.approx(3 / 8)
    # several test rows of one user: the earliest one is the user's test moment
    share2 = later_training_share(df.drop(index=[102, 108]), df.loc[[108, 102]])
    assert share2.loc[1] == pytest.approx(5 / 7)                     # 40, 60, 60, 70, 80
    with pytest.raises(ValueError, match="non-empty"):
        later_training_share(df.iloc[:0], df)
    with pytest.raises(KeyError, match="user_id"):
        later_training_share(df, df.drop(columns="user_id"))


def test_global_split_has_no_later_training_rows_and_leave_last_out_has():
    df = log()
    train, test = global_time_split(df, 0.5)
    assert (later_training_share(train, test) == 0).all()
    # leave-last-out tests user 1 at 90 s and user 2 at 80 s; hold out user 2's two latest
    # instead, so that user 2's test moment (60 s) precedes other users' training rows
    train2, test2 = leave_last_out(df, n=2)
    share = later_training_share(train2, test2)
    assert share.loc[2] > 0


def test_ml100k_leave_last_out_trains_on_later_rows(real_data_dir):
    """Ji et al.'s point on real data: per-user splits train on other users' future."""
    from helpers.data import load_movielens

    r = load_movielens("ml-100k", real_data_dir).ratings
    train, test = leave_last_out(r)
    share = later_training_share(train, test)
    assert len(share) == 943 and 0.3 < share.mean() < 0.5
    g_train, g_test = global_time_split(r, 0.8, next_only=True)
    assert (later_training_share(g_train, g_test) == 0).all()
    assert 50 < g_test["user_id"].nunique() < 300
