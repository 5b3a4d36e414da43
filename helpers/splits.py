"""Train/test splits: random, per-user temporal, and leave-last-out.

Ties matter. In MovieLens 100K many users rated several films within the same second, so
"the latest interaction" is ambiguous. Every function here breaks equal timestamps by the
row order of the data file (a *stable* sort, as RecBole does) and never by item id: sorting
ties by item id would systematically hold out the highest ids, which in ML-100K are the
obscure late additions to the catalogue. The canonical ``u1``-``u5`` folds are loaded by
:func:`helpers.data.load_ml100k_fold`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def _check(df: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"the DataFrame needs columns {cols}; missing {missing} (have {list(df.columns)})")


def recency_rank(df: pd.DataFrame, user_col: str = "user_id", time_col: str = "timestamp") -> np.ndarray:
    """Per row: 0 for its user's latest interaction, 1 for the one before, ... (ties: the
    later file row counts as later). Aligned with the rows of ``df``."""
    _check(df, [user_col, time_col])
    n = len(df)
    pos = np.arange(n)
    order = np.lexsort((pos, df[time_col].to_numpy(), df[user_col].to_numpy()))
    users_sorted = df[user_col].to_numpy()[order]
    is_last = np.r_[users_sorted[1:] != users_sorted[:-1], True]
    # index of the last row of each row's user block, propagated right to left
    ends = np.minimum.accumulate(np.where(is_last, pos, n)[::-1])[::-1]
    rank_sorted = ends - pos
    rank = np.empty(n, dtype=np.int64)
    rank[order] = rank_sorted
    return rank


def leave_last_out(df: pd.DataFrame, n: int = 1, user_col: str = "user_id",
                   time_col: str = "timestamp") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out each user's ``n`` latest interactions.

    Rows are ordered per user by ``time_col``; equal timestamps keep the file's row order
    (the later row counts as later). Users with ``n`` or fewer interactions keep everything
    in train (nothing would be left to learn from). Returns ``(train, test)`` with the
    original index and row order.
    """
    _check(df, [user_col, time_col])
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rank = recency_rank(df, user_col, time_col)
    counts = df.groupby(user_col, sort=False)[user_col].transform("size").to_numpy()
    test = (rank < n) & (counts > n)
    return df[~test], df[test]


def temporal_split_per_user(df: pd.DataFrame, test_fraction: float = 0.2, user_col: str = "user_id",
                            time_col: str = "timestamp") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out the latest ``test_fraction`` of every user's interactions (at least one,
    if the user has two or more). Ties keep the file's row order."""
    _check(df, [user_col, time_col])
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rank = recency_rank(df, user_col, time_col)
    counts = df.groupby(user_col, sort=False)[user_col].transform("size").to_numpy()
    n_test = np.where(counts >= 2, np.maximum(1, np.floor(counts * test_fraction)), 0)
    test = rank < n_test
    return df[~test], df[test]


def random_split(df: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out a uniformly random ``test_fraction`` of all rows (ignores time: a test
    rating may be older than training ratings of the same user -- the leak chapter 2 measures)."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = np.zeros(len(df), dtype=bool)
    test[rng.choice(len(df), size=int(round(len(df) * test_fraction)), replace=False)] = True
    return df[~test], df[test]
