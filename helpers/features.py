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

Chapter 6 and its search script (``benchmarks/mlp_search.py``) share the rest:

* :func:`like_data` -- the chapter's per-user temporal split (train / validation / test)
  with the encoded features and labels of every part (:class:`LikeData`);
* :func:`id_design` -- features plus one-hot user and item columns, the design of logistic
  regression "with ids";
* :func:`build_embedding_mlp`, :func:`train_classifier` -- the embedding MLP and its
  training with early stopping on the validation log loss (Keras is imported on first use,
  so the NumPy parts of this module load without TensorFlow);
* :func:`top_n_unrated`, :func:`top_n_table` -- a user's top-N among the items they have
  not rated (optionally with a minimum support), and the table chapters 6 and 7 print.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["FeatureEncoder", "pair_features", "like_labels", "LikeData", "like_data", "id_design",
           "build_embedding_mlp", "train_classifier", "top_n_unrated", "top_n_table"]

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


# ----------------------------------------------------------------------------- chapter 6 data
@dataclass(frozen=True)
class LikeData:
    """Chapter 6's data: a per-user temporal split with features and "liked" labels.

    ``train``, ``val`` and ``test`` are the rating rows (columns of the loader plus the
    contiguous indices ``user`` and ``item``); ``X[part]`` holds one feature row per rating
    (:func:`pair_features` of the user matrix ``U`` and item matrix ``I``) and ``y[part]``
    its label :math:`[r \\ge 4]`, for ``part`` in ``("train", "val", "test")``. Row ``k`` of
    ``U``/``I`` describes the user/item with index ``k``.
    """

    ratings: pd.DataFrame
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    raw_user_ids: np.ndarray
    raw_item_ids: np.ndarray
    encoder: FeatureEncoder
    U: np.ndarray
    I: np.ndarray
    X: dict[str, np.ndarray]
    y: dict[str, np.ndarray]

    @property
    def n_users(self) -> int:
        return len(self.raw_user_ids)

    @property
    def n_items(self) -> int:
        return len(self.raw_item_ids)

    @property
    def n_features(self) -> int:
        return int(self.U.shape[1] + self.I.shape[1])

    def part(self, name: str) -> pd.DataFrame:
        """The rating rows of ``"train"``, ``"val"`` or ``"test"``."""
        frames = {"train": self.train, "val": self.val, "test": self.test}
        if name not in frames:
            raise ValueError(f"part must be one of {sorted(frames)}, got {name!r}")
        return frames[name]

    def inputs(self, name: str) -> dict[str, np.ndarray]:
        """The inputs of :func:`build_embedding_mlp` for one part: user and item indices
        (int32) and the feature rows."""
        d = self.part(name)
        return {"user": d["user"].to_numpy(np.int32), "item": d["item"].to_numpy(np.int32),
                "features": self.X[name]}

    def design(self, name: str) -> sp.csr_array:
        """Features plus one-hot user and item columns for one part (:func:`id_design`)."""
        d = self.part(name)
        return id_design(self.X[name], d["user"].to_numpy(), d["item"].to_numpy(),
                         self.n_users, self.n_items)


def like_data(users: pd.DataFrame, items: pd.DataFrame, ratings: pd.DataFrame,
              test_fraction: float = 0.2, val_fraction: float = 0.1) -> LikeData:
    r"""Chapter 6's protocol on MovieLens 100K tables (``helpers.data.load_movielens``).

    Per user and by time (:func:`helpers.splits.temporal_split_per_user`): each user's latest
    ``test_fraction`` of ratings is the test set, the latest ``val_fraction`` of the rest
    the validation set, the remainder training. Ids are encoded to contiguous indices
    (:func:`helpers.encoding.encode_ids`); the :class:`FeatureEncoder` is fitted on the
    users and items that occur in training only; labels are :math:`y = [r \ge 4]`.
    """
    from helpers.encoding import encode_ids
    from helpers.splits import temporal_split_per_user

    for name, f in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0 < f < 1:
            raise ValueError(f"{name} must be in (0, 1), got {f}")
    encoded, user_ids, item_ids = encode_ids(ratings)
    rest, test = temporal_split_per_user(encoded, test_fraction=test_fraction)
    train, val = temporal_split_per_user(rest, test_fraction=val_fraction)
    enc = FeatureEncoder().fit(users, items, train["user_id"].unique(), train["item_id"].unique())
    U = enc.user_matrix(users, user_ids.raw_ids)
    I = enc.item_matrix(items, item_ids.raw_ids)
    parts = {"train": train, "val": val, "test": test}
    X = {k: pair_features(U, I, d["user"].to_numpy(), d["item"].to_numpy()) for k, d in parts.items()}
    y = {k: like_labels(d["rating"]) for k, d in parts.items()}
    return LikeData(encoded, train, val, test, np.asarray(user_ids.raw_ids), np.asarray(item_ids.raw_ids),
                    enc, U, I, X, y)


def id_design(features: np.ndarray, users: np.ndarray, items: np.ndarray, n_users: int,
              n_items: int) -> sp.csr_array:
    r"""The design matrix of logistic regression "with ids": per rating,
    :math:`[\,x_{ui};\ e_u;\ e_i\,]` with :math:`e_u \in \{0,1\}^{n_\text{users}}` and
    :math:`e_i \in \{0,1\}^{n_\text{items}}` one-hot (sparse CSR, float64). A weight per
    one-hot column is a learned bias per user and per item.
    """
    features = np.asarray(features)
    users = np.asarray(users)
    items = np.asarray(items)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (ratings x features), got shape {features.shape}")
    if users.shape != (len(features),) or items.shape != (len(features),):
        raise ValueError(f"users and items need one index per feature row ({len(features)}), got "
                         f"shapes {users.shape} and {items.shape}")
    for name, idx, n in (("users", users, n_users), ("items", items, n_items)):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{name} indices must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
    rows = np.arange(len(features))
    ones = np.ones(len(features))
    onehot = lambda idx, n: sp.csr_array((ones, (rows, idx)), shape=(len(features), n))  # noqa: E731
    return sp.hstack([sp.csr_array(features.astype(np.float64)), onehot(users, n_users),
                      onehot(items, n_items)], format="csr")


# ----------------------------------------------------------------------------- chapter 6 models
def build_embedding_mlp(n_users: int, n_items: int, n_features: int, dim: int = 32,
                        hidden: Sequence[int] = (64, 32), dropout: float = 0.0) -> "keras.Model":
    r"""The embedding MLP of chapter 6, a classifier of "liked":

    .. math:: z_0 = [\,P^\top e_u;\ Q^\top e_i;\ f_u;\ g_i\,],\quad
              z_l = \mathrm{ReLU}(W_l z_{l-1} + b_l),\quad \hat p_{ui} = \sigma(w^\top z_L + c).

    Inputs ``user``, ``item`` (int32 indices) and ``features`` (float rows of
    :func:`pair_features`); ``dropout`` zeroes each hidden unit with that probability during
    training (after each hidden layer). Compile with binary cross-entropy
    (:func:`train_classifier` does).
    """
    import keras

    hidden = tuple(int(h) for h in hidden)
    if min(int(n_users), int(n_items), int(n_features), int(dim)) < 1:
        raise ValueError(f"n_users, n_items, n_features and dim must be >= 1, got {n_users}, {n_items}, "
                         f"{n_features}, {dim}")
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must list positive layer widths, e.g. (64, 32); got {hidden}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    user = keras.Input((), dtype="int32", name="user")
    item = keras.Input((), dtype="int32", name="item")
    feats = keras.Input((int(n_features),), name="features")
    p = keras.layers.Embedding(int(n_users), int(dim), name="user_embedding")(user)
    q = keras.layers.Embedding(int(n_items), int(dim), name="item_embedding")(item)
    z = keras.layers.Concatenate(name="concat")([p, q, feats])
    for k, width in enumerate(hidden):
        z = keras.layers.Dense(width, activation="relu", name=f"dense_{k}")(z)
        if dropout:
            z = keras.layers.Dropout(dropout, name=f"dropout_{k}")(z)
    out = keras.layers.Dense(1, activation="sigmoid", name="p_like")(z)
    return keras.Model([user, item, feats], out, name="embedding_mlp")


def train_classifier(model: "keras.Model", x: Any, y: np.ndarray, x_val: Any, y_val: np.ndarray, *,
                     epochs: int, patience: int | None = None, batch_size: int = 1024,
                     learning_rate: float = 1e-3) -> dict[str, Any]:
    r"""Compile ``model`` with Adam and binary cross-entropy
    :math:`-\frac1N\sum y\log\hat p + (1-y)\log(1-\hat p)` and fit it, measuring the
    validation loss after every epoch.

    With ``patience``, training stops once the validation loss has not improved for that
    many epochs and the weights of the best epoch are restored (``keras.callbacks.
    EarlyStopping``). Returns Keras' history (``loss``, ``val_loss`` per epoch) plus
    ``seconds`` (wall time) and ``best_epoch`` (1-based, the epoch of the lowest validation
    loss). Seed before building the model (``helpers.seed_everything``) for a reproducible run.
    """
    import keras

    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="binary_crossentropy")
    stop = ([keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                           restore_best_weights=True)] if patience else [])
    t0 = time.perf_counter()
    hist = dict(model.fit(x, y, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch_size,
                          verbose=0, callbacks=stop).history)
    hist["seconds"] = time.perf_counter() - t0
    hist["best_epoch"] = int(np.argmin(hist["val_loss"])) + 1
    return hist


# ----------------------------------------------------------------------------- top-N lists
def top_n_unrated(scores: np.ndarray, rated: np.ndarray, n: int = 10,
                  support: np.ndarray | None = None, min_support: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    r"""One user's top-``n``: the items with the highest ``scores`` among those the user has
    not rated and, with ``support``, that have at least ``min_support`` training ratings:

    .. math:: \mathrm{top}_n(u) = \operatorname{arg\,top}_n\ \{\, s_i : i \notin R_u,\ n_i \ge m \,\}.

    ``scores`` has one value per item (index = item), ``rated`` lists the user's rated item
    indices, ``support[i]`` is item ``i``'s number of training ratings. Ties go to the lower
    item index. Returns ``(items, their scores)``, best first; fewer than ``n`` when fewer
    items qualify.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array (one score per item), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rated = np.asarray(rated, dtype=np.int64).ravel()
    if rated.size and (rated.min() < 0 or rated.max() >= scores.size):
        raise ValueError(f"rated item indices must lie in [0, {scores.size}), got [{rated.min()}, {rated.max()}]")
    eligible = np.ones(scores.size, dtype=bool)
    eligible[rated] = False
    if support is not None:
        support = np.asarray(support)
        if support.shape != scores.shape:
            raise ValueError(f"support needs one count per item ({scores.size}), got shape {support.shape}")
        eligible &= support >= min_support
    cand = np.flatnonzero(eligible)
    order = np.argsort(-scores[cand], kind="stable")[:int(n)]
    return cand[order], scores[cand[order]]


def top_n_table(items: np.ndarray, scores: np.ndarray, titles: np.ndarray, support: np.ndarray,
                held_out: Mapping[int, float], score_name: str = "score",
                held_out_name: str = "rating in the held-out period") -> pd.DataFrame:
    """The printed top-N table: title, score, number of training ratings of the item and
    the rating the user later gave it in held-out data ("–" if they did not rate it).

    ``titles[i]`` and ``support[i]`` describe item index ``i``; ``held_out`` maps item index
    to the held-out rating."""
    items = np.asarray(items, dtype=np.int64)
    scores = np.asarray(scores)
    if items.shape != scores.shape or items.ndim != 1:
        raise ValueError(f"items and scores must be 1-D of equal length, got {items.shape} and {scores.shape}")
    if items.size and (items.min() < 0 or items.max() >= min(len(titles), len(support))):
        raise ValueError(f"item indices must lie in [0, {min(len(titles), len(support))}), got "
                         f"[{items.min()}, {items.max()}]")
    return pd.DataFrame({"title": np.asarray(titles)[items], score_name: scores,
                         "training ratings": np.asarray(support)[items],
                         held_out_name: [f"{held_out[i]:.0f}" if i in held_out else "–" for i in items.tolist()]},
                        index=pd.RangeIndex(1, len(items) + 1, name="rank"))


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
