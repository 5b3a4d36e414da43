"""Contiguous 0-based id encoding, with the mapping kept for decoding, and the sparse
user x item interaction matrix built from encoded ids."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.metrics import _check_int, _int_array


@dataclass(frozen=True)
class IdEncoder:
    """Maps raw ids to ``0 .. n-1`` (in sorted order of the raw ids) and back.

    Embedding layers need contiguous indices: ``Embedding(n, d)`` looks up row ``i`` for
    index ``i``, so raw ids with gaps would waste rows or index out of range.
    """

    raw_ids: np.ndarray  # raw_ids[i] is the raw id encoded as i

    @classmethod
    def fit(cls, values: pd.Series | np.ndarray) -> "IdEncoder":
        return cls(np.unique(np.asarray(values)))

    def __len__(self) -> int:
        return len(self.raw_ids)

    def transform(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Raw ids to indices (int32); an id not seen in :meth:`fit` raises ``KeyError``."""
        values = np.asarray(values)
        idx = np.searchsorted(self.raw_ids, values)
        idx_c = np.minimum(idx, len(self.raw_ids) - 1)
        bad = self.raw_ids[idx_c] != values
        if bad.any():
            unknown = np.unique(values[bad])[:5].tolist()
            raise KeyError(f"{bad.sum()} ids were not seen when the encoder was fitted, e.g. {unknown}")
        return idx.astype(np.int32)

    def inverse(self, indices: np.ndarray) -> np.ndarray:
        """Indices back to raw ids."""
        return self.raw_ids[np.asarray(indices)]


def encode_ids(ratings: pd.DataFrame, user_col: str = "user_id", item_col: str = "item_id"
               ) -> tuple[pd.DataFrame, IdEncoder, IdEncoder]:
    """Return a copy of ``ratings`` with ``user`` and ``item`` index columns added.

    Fit the encoders on *all* interactions (train and test) so that both sides share one
    index space; a model still only learns from the training rows.
    """
    users = IdEncoder.fit(ratings[user_col])
    items = IdEncoder.fit(ratings[item_col])
    out = ratings.copy()
    out["user"] = users.transform(out[user_col])
    out["item"] = items.transform(out[item_col])
    return out, users, items


def interaction_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                       values: np.ndarray | None = None) -> sp.csr_array:
    """Sparse ``n_users x n_items`` matrix with a 1 (or ``values``) per interaction
    (duplicates are summed). Ids must lie in ``[0, n_users)`` and ``[0, n_items)``."""
    n_users = _check_int("n_users", n_users, minimum=0)
    n_items = _check_int("n_items", n_items, minimum=0)
    users = _int_array("users", users)
    items = _int_array("items", items)
    if users.shape != items.shape:
        raise ValueError(f"users and items must have equal length, got {users.shape} and {items.shape}")
    for name, ids, n in (("users", users, n_users), ("items", items, n_items)):
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"{name} must lie in [0, {n}), got values in [{ids.min()}, {ids.max()}]; "
                             "encode ids first (helpers.encoding)")
    if values is None:
        vals = np.ones(len(users), dtype=np.float32)
    else:
        vals = np.asarray(values, np.float32)
        if vals.shape != users.shape:
            raise ValueError(f"values must have one entry per interaction ({len(users)}), got shape {vals.shape}")
        if not np.isfinite(vals).all():
            raise ValueError("values contain NaN or inf: expected finite numbers")
    return sp.csr_array((vals, (users, items)), shape=(n_users, n_items))
