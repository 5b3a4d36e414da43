"""The book's leave-last-out protocol, built once: one split and one candidate set.

Chapters 1, 2, 4, 8, 9 and Part III evaluate top-N recommenders on MovieLens 100K with the
same protocol. If every chapter built it by hand, the same baseline would report different
sampled scores on different pages: the 99 sampled negatives depend on the order in which
users reach the sampler, and over ten candidate draws the popularity ranking's HR@10 moves
between about 0.397 and 0.413. :func:`leave_last_out_protocol` returns the one canonical
version, cached per process, so a number means the same thing everywhere:

* **test** = each user's latest interaction, **validation** = the second-latest, both by
  timestamp with ties broken by the data file's row order (:func:`helpers.splits.leave_last_out`);
  **train** = the rest, **trainval** = train + validation (for the final refit);
* **candidates**: for every user (sorted by index), column 0 is the held-out item and columns
  1..``n_neg`` are ``n_neg`` distinct items the user never rated *anywhere* (train,
  validation or test), drawn uniformly with seed 0 for test and seed 1 for validation
  (:func:`helpers.evaluation.sample_candidates`).

Leave-last-out is per-user, not a global timeline: many training rows of *other* users are
later than a user's test moment (chapter 2 measures how many). Timestamps in MovieLens record
when a rating was entered, often a page of ratings within one second (chapter 8).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.data import load_movielens
from helpers.encoding import IdEncoder, encode_ids
from helpers.encoding import interaction_matrix
from helpers.evaluation import sample_candidates
from helpers.splits import leave_last_out

#: seeds of the canonical candidate draws
TEST_SEED = 0
VAL_SEED = 1


@dataclass(frozen=True)
class LeaveLastOut:
    """The canonical leave-last-out split with its sampled candidates.

    DataFrames keep the columns of :func:`helpers.data.load_movielens` plus the contiguous
    indices ``user`` and ``item`` (:func:`helpers.encoding.encode_ids`). ``val`` and ``test``
    are sorted by ``user`` and have one row per user; the ``*_users``/``*_items`` arrays,
    the candidate matrices and the interaction matrices are aligned with them. All arrays are
    read-only (the object is cached and shared); copy before modifying.
    """

    dataset: str
    df: pd.DataFrame
    user_enc: IdEncoder
    item_enc: IdEncoder
    n_users: int
    n_items: int
    trainval: pd.DataFrame
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    val_users: np.ndarray
    val_items: np.ndarray
    test_users: np.ndarray
    test_items: np.ndarray
    val_candidates: np.ndarray
    test_candidates: np.ndarray
    X_train: sp.csr_array
    X_trainval: sp.csr_array
    n_neg: int

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(users, items)`` int64 arrays of ``part`` (``"train"``, ``"trainval"``,
        ``"val"``, ``"test"`` or ``"all"``), in the DataFrame's row order."""
        frames = {"train": self.train, "trainval": self.trainval, "val": self.val,
                  "test": self.test, "all": self.df}
        if part not in frames:
            raise ValueError(f"part must be one of {sorted(frames)}, got {part!r}")
        f = frames[part]
        return f["user"].to_numpy(np.int64), f["item"].to_numpy(np.int64)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=4)
def _build(dataset: str, n_neg: int, data_dir: str | None) -> LeaveLastOut:
    ratings = load_movielens(dataset, data_dir).ratings
    df, user_enc, item_enc = encode_ids(ratings)
    n_users, n_items = len(user_enc), len(item_enc)
    trainval, test = leave_last_out(df)
    train, val = leave_last_out(trainval)
    test = test.sort_values("user", kind="stable")
    val = val.sort_values("user", kind="stable")
    if len(test) != n_users or len(val) != n_users:
        raise ValueError(f"{dataset}: every user needs at least 3 interactions for a train/"
                         f"validation/test split ({len(test)} test, {len(val)} validation rows "
                         f"for {n_users} users)")
    all_u, all_i = df["user"].to_numpy(), df["item"].to_numpy()
    val_u, val_i = val["user"].to_numpy(np.int64), val["item"].to_numpy(np.int64)
    te_u, te_i = test["user"].to_numpy(np.int64), test["item"].to_numpy(np.int64)
    val_c = sample_candidates(all_u, all_i, n_items, val_u, val_i, n_neg=n_neg, seed=VAL_SEED)
    te_c = sample_candidates(all_u, all_i, n_items, te_u, te_i, n_neg=n_neg, seed=TEST_SEED)
    X_train = interaction_matrix(train["user"], train["item"], n_users, n_items)
    X_tv = interaction_matrix(trainval["user"], trainval["item"], n_users, n_items)
    return LeaveLastOut(
        dataset=dataset, df=df, user_enc=user_enc, item_enc=item_enc, n_users=n_users,
        n_items=n_items, trainval=trainval, train=train, val=val, test=test,
        val_users=_readonly(val_u), val_items=_readonly(val_i),
        test_users=_readonly(te_u), test_items=_readonly(te_i),
        val_candidates=_readonly(val_c), test_candidates=_readonly(te_c),
        X_train=X_train, X_trainval=X_tv, n_neg=n_neg)


def leave_last_out_protocol(dataset: str = "ml-100k", n_neg: int = 99,
                            data_dir: str | os.PathLike | None = None) -> LeaveLastOut:
    """The book's canonical leave-last-out split and candidates for ``dataset``.

    Cached: every call in a process with the same arguments returns the same object, and a
    fresh process rebuilds exactly the same split and candidates (seeded). See the module
    docstring for the definition.

    >>> p = leave_last_out_protocol()            # doctest: +SKIP
    >>> p.test_candidates.shape                   # doctest: +SKIP
    (943, 100)
    """
    if isinstance(n_neg, bool) or not isinstance(n_neg, (int, np.integer)) or n_neg < 1:
        raise ValueError(f"n_neg must be a positive integer, got {n_neg!r}")
    return _build(dataset, int(n_neg), None if data_dir is None else str(data_dir))
