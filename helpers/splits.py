"""Train/test splits: random, per-user temporal, leave-last-out, and one global timeline.

Ties matter. In MovieLens 100K many users rated several films within the same second, so
"the latest interaction" is ambiguous. Every function here breaks equal timestamps by the
row order of the data file (a *stable* sort, as RecBole does) and never by item id: sorting
ties by item id would systematically hold out the highest ids, which in ML-100K are the
obscure late additions to the catalogue. The canonical ``u1``-``u5`` folds are loaded by
:func:`helpers.data.load_ml100k_fold`; :func:`rating_split` adds a validation part to one.
"""
from __future__ import annotations

from dataclasses import dataclass

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


# ------------------------------------------------------------------- a global timeline
def time_cutoff(df: pd.DataFrame, cutoff_quantile: float, time_col: str = "timestamp") -> pd.Timestamp:
    r"""The moment :math:`T` that splits ``df`` on one global timeline: the timestamp of the
    row at position :math:`\lfloor q\,n \rfloor` when all ``n`` rows are ordered by time
    (ties in file order), so that about a share ``q`` of the rows is earlier than :math:`T`.
    """
    _check(df, [time_col])
    if not 0 < cutoff_quantile < 1:
        raise ValueError(f"cutoff_quantile must be in (0, 1), e.g. 0.8; got {cutoff_quantile}")
    if len(df) == 0:
        raise ValueError("cannot place a cutoff in an empty DataFrame")
    t = df[time_col].to_numpy()
    order = np.argsort(t, kind="stable")
    return pd.Timestamp(t[order[int(cutoff_quantile * len(df))]])


def global_time_split(df: pd.DataFrame, cutoff_quantile: float = 0.8, user_col: str = "user_id",
                      time_col: str = "timestamp", next_only: bool = False
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split every user on one global timeline (Ji et al., TOIS 2023): nothing in training is
    later than anything in test.

    With :math:`T` = :func:`time_cutoff` ``(df, cutoff_quantile)``, **train** is every row
    with timestamp :math:`< T`, of every user. **test** holds rows at or after :math:`T` of
    users who have at least one training row (a user first seen after :math:`T` is a
    cold-start user, whom a collaborative model cannot score). With ``next_only=True`` test
    keeps only each such user's *first* row at or after :math:`T` (ties in file order), the
    global-timeline analogue of leave-last-out's one held-out item; the user's later rows are
    then in neither part. Rows at or after :math:`T` that are not in test are dropped.
    Returns ``(train, test)`` with the original index and row order.

    Unlike :func:`leave_last_out`, which is per user, no training row of *any* user is later
    than a test moment; the price is that only users active on both sides of :math:`T` are
    tested (see :func:`later_training_share`).
    """
    _check(df, [user_col, time_col])
    cutoff = time_cutoff(df, cutoff_quantile, time_col)
    before = (df[time_col] < cutoff).to_numpy()
    known = df[user_col].isin(pd.unique(df.loc[before, user_col])).to_numpy()
    future = ~before & known
    if next_only and future.any():
        sub = df[future]
        order = np.lexsort((np.arange(len(sub)), sub[time_col].to_numpy(), sub[user_col].to_numpy()))
        u_sorted = sub[user_col].to_numpy()[order]
        first = order[np.r_[True, u_sorted[1:] != u_sorted[:-1]]]
        keep = np.flatnonzero(future)[first]
        future = np.zeros(len(df), dtype=bool)
        future[keep] = True
    return df[before], df[future]


def later_training_share(train: pd.DataFrame, test: pd.DataFrame, user_col: str = "user_id",
                         time_col: str = "timestamp") -> pd.Series:
    r"""Per test user, the share of *all* training rows (any user's) that are later than the
    moment the user is tested:

    .. math:: s_u = \frac{|\{(v, j, t) \in \text{train} : t > t_u\}|}{|\text{train}|},
              \qquad t_u = \min\{t : (u, j, t) \in \text{test}\}.

    :math:`s_u = 0` for every user means that no model trained on ``train`` has seen what
    happened after any test moment (a global-timeline split). Under
    :func:`leave_last_out` :math:`s_u` is large for users who left early: the model learns
    from interactions that did not exist yet when they made their last one (Ji et al.,
    TOIS 2023). Equal timestamps do not count as later. Returns a Series indexed by user,
    sorted by user.
    """
    _check(train, [time_col])
    _check(test, [user_col, time_col])
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"train and test must be non-empty, got {len(train)} and {len(test)} rows")
    t_train = np.sort(train[time_col].to_numpy())
    moment = test.groupby(user_col, sort=True)[time_col].min()
    later = len(t_train) - np.searchsorted(t_train, moment.to_numpy(), side="right")
    return pd.Series(later / len(t_train), index=moment.index, name="later_training_share")


# ----------------------------------------------------------------------------- the u-folds (chapter 7)
Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class RatingSplit:
    """One MovieLens 100K fold as rating triples ``(users, items, ratings)`` with 0-based
    indices (index = id - 1): ``train`` and ``val`` partition ``u{fold}.base``, ``test`` is
    ``u{fold}.test``. ``n_users``/``n_items`` are the full catalogue (943 and 1,682)."""

    fold: int
    train: Triple
    val: Triple
    test: Triple
    n_users: int
    n_items: int


def rating_split(fold: int = 1, val_fraction: float = 0.05, seed: int = 0,
                 data_dir: str | None = None) -> RatingSplit:
    """Chapter 7's protocol: fold ``u{fold}`` of MovieLens 100K, with a random
    ``val_fraction`` of ``u{fold}.base`` held out for every choice (each rating is in
    validation with probability ``val_fraction``, drawn with ``seed``; this mirrors how
    ``u{fold}.test`` was drawn). ``u{fold}.test`` is only for reporting. The chapter, its
    search scripts and ``benchmarks/nmf_folds.py`` all call this, so they see one split.
    """
    from helpers.data import load_ml100k_fold

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    base, test = load_ml100k_fold(fold, data_dir=data_dir)

    def arrays(df) -> Triple:
        return (df["user_id"].to_numpy(np.int64) - 1, df["item_id"].to_numpy(np.int64) - 1,
                df["rating"].to_numpy(np.float64))

    u, i, r = arrays(base)
    is_val = np.random.default_rng(seed).random(len(r)) < val_fraction
    return RatingSplit(int(str(fold).removeprefix("u")), (u[~is_val], i[~is_val], r[~is_val]),
                       (u[is_val], i[is_val], r[is_val]), arrays(test), 943, 1682)
