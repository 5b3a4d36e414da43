r"""User and item features for content-aware models (chapter 6, the MLP recommender).

MovieLens 100K describes every user by age, gender, occupation and zip code, and every
movie by its release date and 19 genre flags. A network needs numbers on comparable
scales, so :class:`FeatureEncoder` turns them into one row of floats per user and per
item:

* **numeric** columns (age, release year) are standardised, :math:`z = (x - m)/s`, with
  the mean :math:`m` and standard deviation :math:`s` *fitted on the training rows only*
  (the users and items that occur in the training ratings), so that nothing about the test
  period leaks into the scaling; a missing release year becomes :math:`z = 0` (the
  training mean) plus a ``year_missing`` flag;
* **categorical** columns (gender, occupation) become one-hot blocks over the categories
  of the table (a category unseen in training still gets its column, all zeros in
  training);
* the genre flags are already multi-hot and pass through unchanged.

Zip codes are left out: 795 distinct values for 943 users would be an id in disguise.

:func:`pair_features` concatenates a user row and an item row per rating, and
:func:`like_labels` turns 1-5 stars into the binary target "liked" (:math:`r \ge 4`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["FeatureEncoder", "pair_features", "like_labels"]

_USER_COLS = ("age", "gender", "occupation")


@dataclass
class FeatureEncoder:
    """Learns scaling statistics on training users/items, then encodes any rows.

    Use ``enc = FeatureEncoder().fit(users, items, train_user_ids, train_item_ids)``, then
    ``enc.user_matrix(users, ids)`` / ``enc.item_matrix(items, ids)`` return float32
    matrices whose row ``k`` describes ``ids[k]`` (pass the encoder's ``raw_ids`` from
    :func:`helpers.encoding.encode_ids` so that row ``k`` matches embedding index ``k``).
    Column names are in :attr:`user_names` and :attr:`item_names`.
    """

    genre_cols: list[str] = field(default_factory=list)
    age_mean: float = 0.0
    age_std: float = 1.0
    year_mean: float = 0.0
    year_std: float = 1.0
    genders: list[str] = field(default_factory=list)
    occupations: list[str] = field(default_factory=list)
    fitted: bool = False

    # ------------------------------------------------------------------ fitting
    def fit(self, users: pd.DataFrame, items: pd.DataFrame,
            train_user_ids: Sequence[int] | np.ndarray | None = None,
            train_item_ids: Sequence[int] | np.ndarray | None = None) -> "FeatureEncoder":
        """Fit on the rows of ``users``/``items`` (indexed by raw id) listed in
        ``train_user_ids``/``train_item_ids`` (all rows when ``None``)."""
        missing = [c for c in _USER_COLS if c not in users.columns]
        if missing:
            raise KeyError(f"users needs columns {list(_USER_COLS)}; missing {missing}")
        if "release_date" not in items.columns:
            raise KeyError("items needs a 'release_date' column (MovieLens 100K's u.item)")
        u = users if train_user_ids is None else _rows(users, train_user_ids, "user")
        i = items if train_item_ids is None else _rows(items, train_item_ids, "item")
        self.genre_cols = [c for c in items.columns if items[c].dtype == np.uint8]
        if not self.genre_cols:
            raise ValueError("items has no genre flag columns (uint8 0/1 columns, as load_movielens gives)")
        self.age_mean, self.age_std = _moments(u["age"].to_numpy(dtype=np.float64), "age")
        self.year_mean, self.year_std = _moments(_years(i), "release year")
        self.genders = _categories(users["gender"])
        self.occupations = _categories(users["occupation"])
        self.fitted = True
        return self

    # ------------------------------------------------------------------ encoding
    @property
    def user_names(self) -> list[str]:
        self._check()
        return (["age_z"] + [f"gender={g}" for g in self.genders]
                + [f"occupation={o}" for o in self.occupations])

    @property
    def item_names(self) -> list[str]:
        self._check()
        return ["year_z", "year_missing"] + [f"genre={g}" for g in self.genre_cols]

    def user_matrix(self, users: pd.DataFrame, ids: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """``(len(ids), n_user_features)`` float32: standardised age, one-hot gender and
        occupation, row ``k`` for user ``ids[k]`` (all rows of ``users`` when ``None``)."""
        self._check()
        u = users if ids is None else _rows(users, ids, "user")
        age = (u["age"].to_numpy(dtype=np.float64) - self.age_mean) / self.age_std
        gender = _one_hot(u["gender"], self.genders, "gender")
        occupation = _one_hot(u["occupation"], self.occupations, "occupation")
        return np.column_stack([age, gender, occupation]).astype(np.float32)

    def item_matrix(self, items: pd.DataFrame, ids: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """``(len(ids), n_item_features)`` float32: standardised release year (0 if
        missing), a missing-year flag, and the genre flags."""
        self._check()
        i = items if ids is None else _rows(items, ids, "item")
        years = _years(i)
        missing = np.isnan(years)
        z = np.where(missing, 0.0, (np.nan_to_num(years) - self.year_mean) / self.year_std)
        genres = i[self.genre_cols].to_numpy(dtype=np.float64)
        return np.column_stack([z, missing, genres]).astype(np.float32)

    def _check(self) -> None:
        if not self.fitted:
            raise RuntimeError("call FeatureEncoder.fit(users, items, ...) before encoding")


def pair_features(user_matrix: np.ndarray, item_matrix: np.ndarray, users: np.ndarray,
                  items: np.ndarray) -> np.ndarray:
    """One row per rating: ``[user_matrix[users[k]], item_matrix[items[k]]]`` (float32).

    ``users``/``items`` are 0-based row indices into the two matrices."""
    user_matrix = np.asarray(user_matrix)
    item_matrix = np.asarray(item_matrix)
    users = np.asarray(users)
    items = np.asarray(items)
    if user_matrix.ndim != 2 or item_matrix.ndim != 2:
        raise ValueError(f"feature matrices must be 2-D, got shapes {user_matrix.shape} and {item_matrix.shape}")
    if users.shape != items.shape or users.ndim != 1:
        raise ValueError(f"users and items must be 1-D of equal length, got {users.shape} and {items.shape}")
    for name, idx, n in (("users", users, len(user_matrix)), ("items", items, len(item_matrix))):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"{name} indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
    return np.hstack([user_matrix[users], item_matrix[items]]).astype(np.float32)


def like_labels(ratings: np.ndarray | pd.Series, threshold: float = 4.0) -> np.ndarray:
    r"""Binary target "liked": :math:`y = [r \ge \text{threshold}]` (float32)."""
    r = np.asarray(ratings, dtype=np.float64)
    if np.isnan(r).any():
        raise ValueError("ratings contain NaN")
    return (r >= threshold).astype(np.float32)


# ----------------------------------------------------------------------------- internals
def _rows(df: pd.DataFrame, ids: Sequence[int] | np.ndarray, what: str) -> pd.DataFrame:
    ids = np.asarray(ids)
    unknown = ~np.isin(ids, df.index.to_numpy())
    if unknown.any():
        raise KeyError(f"{unknown.sum()} {what} ids are not in the {what} table, e.g. {ids[unknown][:5].tolist()}")
    return df.loc[ids]


def _years(items: pd.DataFrame) -> np.ndarray:
    return items["release_date"].dt.year.to_numpy(dtype=np.float64, na_value=np.nan)


def _moments(x: np.ndarray, name: str) -> tuple[float, float]:
    x = x[~np.isnan(x)]
    if len(x) == 0:
        raise ValueError(f"no {name} values to fit the scaling on")
    std = float(x.std())
    return float(x.mean()), std if std > 0 else 1.0


def _categories(col: pd.Series) -> list[str]:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [str(c) for c in col.cat.categories]
    return sorted(str(c) for c in col.dropna().unique())


def _one_hot(col: pd.Series, categories: list[str], name: str) -> np.ndarray:
    values = col.astype(str).to_numpy()
    index = {c: k for k, c in enumerate(categories)}
    unknown = sorted(set(values) - set(index))
    if unknown:
        raise ValueError(f"{name} has categories not seen in fit: {unknown[:5]}")
    out = np.zeros((len(values), len(categories)))
    out[np.arange(len(values)), [index[v] for v in values]] = 1.0
    return out
