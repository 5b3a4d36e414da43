r"""Data preparation for interaction logs: cleaning, mean-centring, sampling weights, ties.

* :func:`clean_interactions` -- drop unusable rows, exact duplicates and superseded
  re-ratings, and report how many of each;
* :class:`MeanCentering` -- subtract per-user (or per-item) mean ratings, fitted on
  training rows only, and add them back;
* :func:`popularity_probabilities` -- item sampling probabilities
  :math:`p_i \propto c_i^{\alpha}` for popularity-weighted negative sampling;
* :func:`recency_weights` -- per-interaction weights :math:`1 + \beta e^{-r/\tau}` that
  favour each user's most recent interactions (time-decay weighting);
* :func:`ties_at_last` -- how many of each user's interactions share the user's latest
  timestamp (the ambiguity that leave-last-out must resolve).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from helpers.splits import recency_rank


def _need(df: pd.DataFrame, cols: list[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"the DataFrame needs columns {cols}; missing {missing} (have {list(df.columns)})")


def clean_interactions(df: pd.DataFrame, user_col: str = "user_id", item_col: str = "item_id",
                       time_col: str = "timestamp", value_col: str | None = "rating"
                       ) -> tuple[pd.DataFrame, dict[str, int]]:
    """Return ``(clean, report)``: the rows a model can learn from, in the original order.

    Three kinds of rows are removed, in this order, and counted in ``report``:

    * ``missing``: a missing user, item, timestamp (or ``value_col``, if given);
    * ``exact_duplicates``: a row identical to an earlier one (a logging double-write);
    * ``superseded``: an older interaction of a (user, item) pair that occurs again later
      (a re-rating: the latest one is kept; equal timestamps keep the later file row).

    ``report`` also has ``rows_in`` and ``rows_out``. The index of the kept rows is
    unchanged, so ``df.loc[clean.index]`` recovers them.
    """
    cols = [user_col, item_col, time_col] + ([value_col] if value_col is not None else [])
    _need(df, cols)
    report = {"rows_in": len(df)}
    ok = df[cols].notna().all(axis=1)
    report["missing"] = int((~ok).sum())
    out = df[ok]
    dup = out.duplicated(keep="first")
    report["exact_duplicates"] = int(dup.sum())
    out = out[~dup]
    # order by time, ties by file position; keep each pair's last row in that order
    order = np.lexsort((np.arange(len(out)), out[time_col].to_numpy()))
    latest = ~out[[user_col, item_col]].iloc[order].duplicated(keep="last").to_numpy()
    keep = np.zeros(len(out), dtype=bool)
    keep[order[latest]] = True
    report["superseded"] = int((~keep).sum())
    out = out[keep]
    report["rows_out"] = len(out)
    return out, report


@dataclass(frozen=True)
class MeanCentering:
    r"""Per-key mean-centring of ratings: :math:`\tilde r = r - \mu - o_k` with

    .. math:: o_k = \frac{\sum_{j \in R_k} r_j + \beta\,\mu}{|R_k| + \beta} - \mu,

    the (optionally damped) mean rating of key :math:`k` (a user or an item) minus the
    global mean :math:`\mu`. With :math:`\beta = 0` this is the plain mean; :math:`\beta > 0`
    shrinks keys with few ratings towards :math:`\mu` (acts like :math:`\beta` extra
    ratings at :math:`\mu`). Keys without training ratings get :math:`o_k = 0`.

    Fit on training rows only; applying the same offsets to test rows is what makes the
    transformation leak-free. Centre users, then items on the residuals, for a two-way
    centring.
    """

    global_mean: float
    offsets: np.ndarray  # offsets[k] = o_k
    counts: np.ndarray  # training ratings per key

    @classmethod
    def fit(cls, keys: np.ndarray, ratings: np.ndarray, n_keys: int, damping: float = 0.0
            ) -> "MeanCentering":
        keys = np.asarray(keys)
        r = np.asarray(ratings, dtype=np.float64)
        if keys.shape != r.shape or keys.ndim != 1:
            raise ValueError(f"keys and ratings must be 1-D of equal length, got {keys.shape} and {r.shape}")
        if r.size == 0:
            raise ValueError("cannot fit on zero ratings")
        if damping < 0:
            raise ValueError(f"damping must be >= 0, got {damping}")
        if keys.min() < 0 or keys.max() >= n_keys:
            raise ValueError(f"keys must be 0-based indices below n_keys={n_keys}; encode ids first "
                             "(helpers.encoding)")
        mu = float(r.mean())
        s = np.bincount(keys, weights=r - mu, minlength=n_keys)
        c = np.bincount(keys, minlength=n_keys)
        with np.errstate(invalid="ignore", divide="ignore"):
            off = np.where(c + damping > 0, s / (c + damping), 0.0)
        return cls(mu, off, c)

    def predict(self, keys: np.ndarray) -> np.ndarray:
        r"""The baseline :math:`\mu + o_k` for each key."""
        return self.global_mean + self.offsets[np.asarray(keys)]

    def transform(self, keys: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Centred ratings ``ratings - predict(keys)``."""
        return np.asarray(ratings, dtype=np.float64) - self.predict(keys)

    def inverse_transform(self, keys: np.ndarray, centred: np.ndarray) -> np.ndarray:
        """Back to the rating scale: ``centred + predict(keys)``."""
        return np.asarray(centred, dtype=np.float64) + self.predict(keys)


def popularity_probabilities(items: np.ndarray, n_items: int, alpha: float = 1.0) -> np.ndarray:
    r"""Sampling probabilities :math:`p_i = c_i^{\alpha} / \sum_j c_j^{\alpha}` from the
    interaction count :math:`c_i` of each item in ``items`` (0-based indices).

    :math:`\alpha = 0` is uniform over the catalogue, :math:`\alpha = 1` proportional to
    popularity, :math:`\alpha = 0.75` word2vec's compromise. For :math:`\alpha > 0` items
    never seen get probability 0. Pass the result as ``p`` to
    :meth:`helpers.sampling.NegativeSampler.sample`.
    """
    items = np.asarray(items)
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"items must be 0-based indices below n_items={n_items}")
    c = np.bincount(items, minlength=n_items).astype(np.float64)
    w = c**alpha  # 0**0 == 1: alpha = 0 is uniform
    total = w.sum()
    if total == 0:
        raise ValueError("no interactions: popularity is undefined")
    return w / total


def recency_weights(df: pd.DataFrame, tau: float, boost: float, user_col: str = "user_id",
                    time_col: str = "timestamp") -> np.ndarray:
    r"""Time-decay weight of every interaction (row of ``df``, in its order):

    .. math:: w = 1 + \beta\, e^{-r/\tau},

    where :math:`r` is the interaction's recency rank within its user (0 for the latest,
    1 for the one before, ...; equal timestamps keep the file's row order, see
    :func:`helpers.splits.recency_rank`), :math:`\beta` = ``boost`` how much more the latest
    interaction counts than an old one, and :math:`\tau` = ``tau`` how many interactions
    back the boost fades by :math:`1/e`. ``boost=0`` gives weight 1 everywhere. The weights
    are meant for a weighted training loss (:func:`helpers.ncf.train_pointwise`) or a
    weighted user history (the rows of an interaction matrix); a user's next interaction
    resembles the recent ones more than the old ones.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0 (a number of interactions), got {tau}")
    if not boost >= 0:
        raise ValueError(f"boost must be >= 0, got {boost}")
    r = recency_rank(df, user_col, time_col)
    return (1.0 + boost * np.exp(-r / tau)).astype(np.float32)


def ties_at_last(df: pd.DataFrame, user_col: str = "user_id", time_col: str = "timestamp") -> pd.Series:
    """Per user (index), how many interactions share the user's latest timestamp.

    A value above 1 means "the user's last interaction" is ambiguous: leave-last-out has to
    break the tie somehow (:mod:`helpers.splits` keeps the file's row order).
    """
    _need(df, [user_col, time_col])
    last = df.groupby(user_col, sort=True)[time_col].transform("max")
    return (df[time_col] == last).groupby(df[user_col], sort=True).sum().rename("n_at_last")


__all__ = ["MeanCentering", "clean_interactions", "popularity_probabilities", "recency_weights", "ties_at_last"]
