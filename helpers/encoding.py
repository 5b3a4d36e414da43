"""Contiguous 0-based id encoding, with the mapping kept for decoding."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


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
