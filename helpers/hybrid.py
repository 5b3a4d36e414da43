r"""Features and ids together (chapter 12): factorisation machines, Wide & Deep, DeepFM,
DCN-v2, two-tower retrieval with the in-batch softmax and its log-q correction, and the
cold-start splits and paired AUC intervals the chapter reports them with.

**Inputs.** Every model here scores a (user, item) pair from the user's index ``u``, the
item's index ``i`` and fixed side-feature rows :math:`x^{(u)}` and :math:`x^{(i)}`
(:class:`SideFeatures`: chapter 6's :class:`helpers.features.FeatureEncoder` columns plus
zip region, age group and release-year group one-hots). The Keras models hold the two
feature tables as frozen lookups, so their inputs are just ``[user, item]`` index arrays,
like chapter 8's models, and the same scorers and evaluation loops apply. With
``use_ids=False`` a model never sees an id: it scores a user or an item it has never met
from the features alone (cold start).

**Factorisation machine** (Rendle, 2010). With :math:`x \in \mathbb R^n` the whole input
(one-hot ids and side features), a bias, a weight per column and a factor vector
:math:`v_c \in \mathbb R^k` per column,

.. math:: s(x) = w_0 + \sum_c w_c x_c + \sum_{c < c'} \langle v_c, v_{c'} \rangle x_c x_{c'},

and the pairwise sum, :math:`O(k n^2)` as written, equals

.. math:: \tfrac12 \sum_{f=1}^k \Big[\Big(\sum_c v_{cf} x_c\Big)^2 - \sum_c v_{cf}^2 x_c^2\Big],

which costs :math:`O(k\,n)` -- :math:`O(k\,m)` over the :math:`m` non-zero columns
(:func:`fm_pairwise_naive`, :func:`fm_pairwise`).

**Deep models** (:func:`build_ctr_model`) share one embedding layer: column :math:`c`
contributes :math:`x_c v_c`, ids contribute :math:`p_u` and :math:`q_i`, and the columns of
one *field* (gender, occupation, genre, ...) are summed into a field embedding
:math:`e_f = \sum_{c \in f} x_c v_c`. Wide & Deep adds a linear part with user x item
cross-product columns to an MLP on :math:`[e_1; \dots; e_F]`; DeepFM adds the FM to the
same MLP; DCN-v2 passes :math:`x_0 = [e_1; \dots; e_F]` through cross layers
:math:`x_{l+1} = x_0 \odot (W x_l + b) + x_l` (``keras_rs.layers.FeatureCross``) before
the MLP. All output a logit; :func:`train_ctr` minimises binary cross-entropy.

**Two towers** (:func:`build_two_tower`, :func:`train_two_tower`): a user tower and an
item tower map ids and features to vectors :math:`a_u, b_i`, scored by
:math:`a_u^\top b_i / \tau`. Each batch of :math:`B` positive pairs uses the other
:math:`B - 1` items of the batch as negatives (in-batch softmax); since items enter a batch
in proportion to their frequency :math:`q_j`, the logits are corrected by
:math:`-\log q_j` (Yi et al., RecSys 2019), and an item that is a row's own positive is
masked where it reappears as a "negative" (:func:`in_batch_softmax_loss`,
:func:`in_batch_softmax_numpy`).

NumPy parts import without TensorFlow; Keras is imported on first use.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.stats import Interval

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from helpers.training import EpochHistory, TrainConfig

__all__ = [
    "AGE_GROUPS", "YEAR_GROUPS", "zip_region", "extra_user_columns", "extra_item_columns",
    "field_of", "SideFeatures", "side_features",
    "fm_pairwise_naive", "fm_pairwise", "fm_score",
    "cold_start_split", "ColdSplit", "cold_start_data", "weighted_auc", "auc_difference_interval",
    "field_codes", "cell_matrix", "cell_rate_scores", "USER_SEGMENTS", "ITEM_GROUPS", "user_segment_members",
    "item_group_members",
    "sampling_log_q", "in_batch_softmax_numpy",
    "CTR_KINDS", "build_ctr_model", "ctr_validation", "train_ctr", "predict_logits",
    "in_batch_softmax_loss", "TwoTower", "build_two_tower", "train_two_tower",
    "retrieval_validation", "shelf_exclusion", "timed",
]

#: age groups of the MovieLens 1M release (lower bounds, inclusive)
AGE_GROUPS: tuple[tuple[str, int], ...] = (("<18", 0), ("18-24", 18), ("25-34", 25), ("35-44", 35),
                                           ("45-49", 45), ("50-55", 50), ("56+", 56))
#: release-year groups: decades before 1990, single years from 1993 (most films are from the 1990s)
YEAR_GROUPS: tuple[tuple[str, int], ...] = (("<1970", 0), ("1970s", 1970), ("1980s", 1980),
                                            ("1990-92", 1990), ("1993", 1993), ("1994", 1994),
                                            ("1995", 1995), ("1996", 1996), ("1997", 1997),
                                            ("1998", 1998))
_ZIP_REGIONS = tuple(str(d) for d in range(10)) + ("other",)


# ----------------------------------------------------------------------------- side features
def zip_region(zip_codes: Sequence[str] | pd.Series) -> np.ndarray:
    """The first digit of a US zip code (``"0"``..``"9"``, ten broad regions of the
    country), or ``"other"`` for a code that does not start with a digit (Canadian postal
    codes in MovieLens). The full five digits would be an id in disguise."""
    z = pd.Series(zip_codes, dtype="object").fillna("").astype(str).str.strip()
    first = z.str[:1]
    return np.where(first.str.isdigit(), first, "other").astype(str)


def _groups(values: np.ndarray, groups: tuple[tuple[str, int], ...], what: str) -> np.ndarray:
    bounds = np.array([b for _, b in groups])
    idx = np.searchsorted(bounds, values, side="right") - 1
    if (idx < 0).any():
        raise ValueError(f"{what} below the first group's bound {bounds[0]}: {values[idx < 0][:5]}")
    return idx


def extra_user_columns(users: pd.DataFrame, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One-hot zip region (:func:`zip_region`) and age group (:data:`AGE_GROUPS`) of the
    users ``ids`` (raw ids, rows of ``users``): ``(matrix float32, column names)``. Fixed
    bins, nothing fitted: no statistic of held-out users can leak in."""
    for col in ("age", "zip_code"):
        if col not in users.columns:
            raise KeyError(f"users needs an {col!r} column (MovieLens 100K's u.user)")
    ids = np.asarray(ids)
    missing = ~np.isin(ids, users.index.to_numpy())
    if missing.any():
        raise KeyError(f"{missing.sum()} user ids are not in the users table, e.g. {ids[missing][:5].tolist()}")
    u = users.loc[ids]
    region = zip_region(u["zip_code"])
    age = _groups(u["age"].to_numpy(np.int64), AGE_GROUPS, "age")
    m = np.zeros((len(ids), len(_ZIP_REGIONS) + len(AGE_GROUPS)), dtype=np.float32)
    m[np.arange(len(ids)), [_ZIP_REGIONS.index(r) for r in region]] = 1.0
    m[np.arange(len(ids)), len(_ZIP_REGIONS) + age] = 1.0
    names = [f"zip={r}" for r in _ZIP_REGIONS] + [f"age_group={g}" for g, _ in AGE_GROUPS]
    return m, names


def extra_item_columns(items: pd.DataFrame, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One-hot release-year group (:data:`YEAR_GROUPS`) of the items ``ids`` (raw ids); a
    missing date gives an all-zero row (chapter 6's ``year_missing`` flags it)."""
    if "release_date" not in items.columns:
        raise KeyError("items needs a 'release_date' column (MovieLens 100K's u.item)")
    ids = np.asarray(ids)
    missing = ~np.isin(ids, items.index.to_numpy())
    if missing.any():
        raise KeyError(f"{missing.sum()} item ids are not in the items table, e.g. {ids[missing][:5].tolist()}")
    years = items.loc[ids, "release_date"].dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
    m = np.zeros((len(ids), len(YEAR_GROUPS)), dtype=np.float32)
    known = ~np.isnan(years)
    m[np.flatnonzero(known), _groups(years[known].astype(np.int64), YEAR_GROUPS, "release year")] = 1.0
    return m, [f"year_group={g}" for g, _ in YEAR_GROUPS]


def field_of(name: str) -> str:
    """The field a feature column belongs to: the part of its name before ``=``
    (``"genre=Drama"`` -> ``"genre"``); ``age_z`` -> ``"age"``; ``year_z`` and
    ``year_missing`` -> ``"year"``."""
    if not name:
        raise ValueError("a column name must not be empty")
    if "=" in name:
        return name.split("=", 1)[0]
    return {"age_z": "age", "year_z": "year", "year_missing": "year"}.get(name, name)


@dataclass(frozen=True)
class SideFeatures:
    """Side-feature tables: row ``k`` of ``U`` describes the user with index ``k``, row ``k``
    of ``I`` the item with index ``k`` (float32); column names in ``user_names`` /
    ``item_names``. :attr:`fields` groups the columns of ``[U, I]`` into named fields."""

    U: np.ndarray
    I: np.ndarray
    user_names: list[str]
    item_names: list[str]

    def __post_init__(self) -> None:
        if self.U.ndim != 2 or self.I.ndim != 2:
            raise ValueError(f"U and I must be 2-D, got shapes {self.U.shape} and {self.I.shape}")
        if self.U.shape[1] != len(self.user_names) or self.I.shape[1] != len(self.item_names):
            raise ValueError(f"one name per column: U has {self.U.shape[1]} columns and {len(self.user_names)} "
                             f"names, I has {self.I.shape[1]} columns and {len(self.item_names)} names")
        if not (np.isfinite(self.U).all() and np.isfinite(self.I).all()):
            raise ValueError("side features must be finite")

    @property
    def n_columns(self) -> int:
        return int(self.U.shape[1] + self.I.shape[1])

    @property
    def names(self) -> list[str]:
        return list(self.user_names) + list(self.item_names)

    @property
    def fields(self) -> list[str]:
        """Field names in order of first appearance (user fields, then item fields)."""
        return list(dict.fromkeys(field_of(n) for n in self.names))

    def field_matrix(self) -> np.ndarray:
        """``(n_columns, n_fields)`` 0/1 matrix: column ``c`` belongs to field ``f``."""
        fields = self.fields
        a = np.zeros((self.n_columns, len(fields)), dtype=np.float32)
        a[np.arange(self.n_columns), [fields.index(field_of(n)) for n in self.names]] = 1.0
        return a

    def pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``[U[users], I[items]]`` row by row (float32), the design of a features-only model."""
        users, items = _index_pair(users, items, len(self.U), len(self.I))
        return np.hstack([self.U[users], self.I[items]])

    def design(self, users: np.ndarray, items: np.ndarray, use_ids: bool = True) -> sp.csr_array:
        r"""Sparse design of logistic regression: :math:`[\,x^{(u)}; x^{(i)}; e_u; e_i\,]`
        (one-hot ids when ``use_ids``), float64 CSR."""
        users, items = _index_pair(users, items, len(self.U), len(self.I))
        blocks = [sp.csr_array(self.pairs(users, items).astype(np.float64))]
        if use_ids:
            n, rows, ones = len(users), np.arange(len(users)), np.ones(len(users))
            blocks += [sp.csr_array((ones, (rows, users)), shape=(n, len(self.U))),
                       sp.csr_array((ones, (rows, items)), shape=(n, len(self.I)))]
        return sp.hstack(blocks, format="csr")


def side_features(users: pd.DataFrame, items: pd.DataFrame, user_ids: Sequence[int] | np.ndarray,
                  item_ids: Sequence[int] | np.ndarray, train_user_ids: Sequence[int] | np.ndarray,
                  train_item_ids: Sequence[int] | np.ndarray, extras: bool = True) -> SideFeatures:
    """Side features for the users ``user_ids`` and items ``item_ids`` (raw ids, in index
    order, e.g. an encoder's ``raw_ids``): chapter 6's columns
    (:class:`helpers.features.FeatureEncoder`, scaling fitted on ``train_user_ids`` /
    ``train_item_ids`` only), plus, with ``extras``, :func:`extra_user_columns` and
    :func:`extra_item_columns`."""
    from helpers.features import FeatureEncoder

    enc = FeatureEncoder().fit(users, items, train_user_ids, train_item_ids)
    U, I = enc.user_matrix(users, user_ids), enc.item_matrix(items, item_ids)
    un, iname = list(enc.user_names), list(enc.item_names)
    if extras:
        eu, eun = extra_user_columns(users, user_ids)
        ei, ein = extra_item_columns(items, item_ids)
        U, I, un, iname = np.hstack([U, eu]), np.hstack([I, ei]), un + eun, iname + ein
    return SideFeatures(U.astype(np.float32), I.astype(np.float32), un, iname)


def _index_pair(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    users = np.asarray(users)
    items = np.asarray(items)
    if users.ndim != 1 or users.shape != items.shape:
        raise ValueError(f"users and items must be 1-D of equal length, got {users.shape} and {items.shape}")
    for name, idx, n in (("users", users, n_users), ("items", items, n_items)):
        if idx.dtype.kind not in "iu":
            raise ValueError(f"{name} must be integer indices, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{name} must lie in [0, {n}), got [{idx.min()}, {idx.max()}]")
    return users.astype(np.int64), items.astype(np.int64)


# ----------------------------------------------------------------------------- FM, NumPy
def _fm_inputs(X: np.ndarray | sp.sparray | sp.spmatrix, V: np.ndarray) -> tuple[Any, np.ndarray]:
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2:
        raise ValueError(f"V must be 2-D (columns x factors), got shape {V.shape}")
    if sp.issparse(X):
        X = sp.csr_array(X, dtype=np.float64)
    else:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows x columns), got shape {X.shape}")
    if X.shape[1] != V.shape[0]:
        raise ValueError(f"X has {X.shape[1]} columns but V has {V.shape[0]} rows (one factor vector per column)")
    return X, V


def fm_pairwise_naive(X: np.ndarray | sp.sparray | sp.spmatrix, V: np.ndarray) -> np.ndarray:
    r"""The FM's pairwise term as defined, one row at a time over the non-zero columns:

    .. math:: \sum_{c < c'} \langle v_c, v_{c'} \rangle\, x_c x_{c'}

    :math:`O(k\,m^2)` per row with :math:`m` non-zeros; the reference that
    :func:`fm_pairwise` is tested against."""
    X, V = _fm_inputs(X, V)
    Xd = X.toarray() if sp.issparse(X) else X
    out = np.zeros(Xd.shape[0])
    for r in range(Xd.shape[0]):
        nz = np.flatnonzero(Xd[r])
        total = 0.0
        for a in range(len(nz)):
            for b in range(a + 1, len(nz)):
                c, d = nz[a], nz[b]
                total += float(V[c] @ V[d]) * Xd[r, c] * Xd[r, d]
        out[r] = total
    return out


def fm_pairwise(X: np.ndarray | sp.sparray | sp.spmatrix, V: np.ndarray) -> np.ndarray:
    r"""The FM's pairwise term in :math:`O(k\,m)` per row (Rendle, 2010, lemma 3.1):

    .. math:: \tfrac12 \sum_{f=1}^k \Big[\Big(\sum_c v_{cf} x_c\Big)^2 - \sum_c v_{cf}^2 x_c^2\Big]

    ``X`` dense or sparse ``(rows, n)``, ``V`` ``(n, k)``; returns one value per row."""
    X, V = _fm_inputs(X, V)
    s = np.asarray(X @ V)
    X2 = X.multiply(X) if sp.issparse(X) else X * X
    q = np.asarray(X2 @ (V * V))
    return 0.5 * (s * s - q).sum(axis=1)


def fm_score(X: np.ndarray | sp.sparray | sp.spmatrix, w0: float, w: np.ndarray, V: np.ndarray) -> np.ndarray:
    r"""FM logit :math:`s(x) = w_0 + w^\top x + \text{pairwise}(x)` per row (:func:`fm_pairwise`)."""
    X, V = _fm_inputs(X, V)
    w = np.asarray(w, dtype=np.float64).ravel()
    if w.shape != (X.shape[1],):
        raise ValueError(f"w needs one weight per column ({X.shape[1]}), got shape {w.shape}")
    return float(w0) + np.asarray(X @ w).ravel() + fm_pairwise(X, V)


# ----------------------------------------------------------------------------- splits, AUC
def cold_start_split(ids: Sequence[int] | np.ndarray, test_fraction: float = 0.2, val_fraction: float = 0.1,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Partition distinct ``ids`` (users or items) at random into ``(train, val, test)``:
    ``round(test_fraction * n)`` test ids and ``round(val_fraction * n)`` validation ids
    whose interactions a model never trains on, and the rest. Each part is sorted; the
    same seed gives the same partition."""
    ids = np.unique(np.asarray(ids))
    if not (0 < test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise ValueError(f"need 0 < test_fraction, 0 <= val_fraction and test_fraction + val_fraction < 1, "
                         f"got {test_fraction} and {val_fraction}")
    n_test, n_val = int(round(test_fraction * len(ids))), int(round(val_fraction * len(ids)))
    if n_test < 1 or len(ids) - n_test - n_val < 1:
        raise ValueError(f"{len(ids)} ids are too few for these fractions ({n_test} test, {n_val} validation)")
    perm = np.random.default_rng(seed).permutation(ids)
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    return np.sort(train), np.sort(val), np.sort(test)


def _auc_runs(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Order by score and label each row with its run of tied scores (0 = lowest)."""
    order = np.argsort(s, kind="stable")
    srt = s[order]
    new = np.ones(len(s), dtype=bool)
    new[1:] = srt[1:] != srt[:-1]
    run = np.empty(len(s), dtype=np.int64)
    run[order] = np.cumsum(new) - 1
    return run, y.astype(bool), int(new.sum())


def _weighted_auc_runs(run: np.ndarray, pos: np.ndarray, n_runs: int, w: np.ndarray) -> float:
    wp = np.bincount(run, weights=np.where(pos, w, 0.0), minlength=n_runs)
    wn = np.bincount(run, weights=np.where(pos, 0.0, w), minlength=n_runs)
    below = np.cumsum(wn) - wn
    tot_p, tot_n = wp.sum(), wn.sum()
    if tot_p <= 0 or tot_n <= 0:
        return float("nan")
    return float((wp * (below + 0.5 * wn)).sum() / (tot_p * tot_n))


def _check_auc_inputs(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    if y.ndim != 1 or s.shape[-1:] != y.shape:
        raise ValueError(f"y must be 1-D and scores must have y's length as last axis, got {y.shape} and {s.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold 0/1 labels")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def weighted_auc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> float:
    r"""AUC with a weight per row, ties counting one half:

    .. math:: \mathrm{AUC}_w = \frac{\sum_{p \in P}\sum_{n \in N} w_p w_n
              \big([s_p > s_n] + \tfrac12[s_p = s_n]\big)}{\sum_P w_p \sum_N w_n}

    With all weights 1 it is :func:`helpers.metrics.auc`; integer weights equal repeating
    rows, which is how :func:`auc_difference_interval` resamples users."""
    y, s = _check_auc_inputs(y, scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D here, got shape {s.shape}")
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != y.shape or (w < 0).any() or not np.isfinite(w).all():
        raise ValueError(f"weights must be finite, non-negative and one per row ({len(y)}), got shape {w.shape}")
    run, pos, n_runs = _auc_runs(y, s)
    out = _weighted_auc_runs(run, pos, n_runs, w)
    if np.isnan(out):
        raise ValueError("AUC needs positive weight on both labels")
    return out


def auc_difference_interval(y: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, groups: np.ndarray,
                            n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    r"""AUC of ``b`` minus AUC of ``a`` on the same rows, with a paired cluster-bootstrap
    interval: the ``groups`` (e.g. users) are resampled with replacement, all rows of a
    drawn group come along (as weights, :func:`weighted_auc`), and both models are scored
    on the same resample. Resampling groups, not rows, respects that one user's ratings
    are not independent.

    ``scores_a`` / ``scores_b`` are 1-D (one model) or 2-D ``(seeds, rows)``: then each
    side's AUC is the mean over its seeds, :math:`\overline{\mathrm{AUC}}_b -
    \overline{\mathrm{AUC}}_a`, and the interval covers the sampling of users, not of
    seeds. Percentile interval; resamples missing a label are skipped."""
    y, sa = _check_auc_inputs(y, scores_a)
    _, sb = _check_auc_inputs(y, scores_b)
    groups = np.asarray(groups)
    if groups.shape != y.shape:
        raise ValueError(f"groups must hold one id per row ({len(y)}), got shape {groups.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples}")
    sa, sb = np.atleast_2d(sa), np.atleast_2d(sb)
    runs = [[_auc_runs(y, row) for row in m] for m in (sa, sb)]
    codes = np.unique(groups, return_inverse=True)[1].ravel()
    n_groups = int(codes.max()) + 1

    def diff(w: np.ndarray) -> float:
        a, b = ([_weighted_auc_runs(r, p, n, w) for r, p, n in side] for side in runs)
        return float(np.mean(b) - np.mean(a))

    estimate = diff(np.ones(len(y)))
    if np.isnan(estimate):
        raise ValueError("AUC needs both labels among the rows")
    rng = np.random.default_rng(seed)
    reps = np.array([diff(np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes].astype(float))
                     for _ in range(int(n_resamples))])
    reps = reps[~np.isnan(reps)]
    lo, hi = np.quantile(reps, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(estimate, float(lo), float(hi), float(confidence))


# ----------------------------------------------------------------------------- group baselines
def field_codes(table: np.ndarray, names: Sequence[str], fields: str | Sequence[str]) -> np.ndarray:
    """Integer code of each row's value of one-hot ``fields`` (e.g. ``"gender"``, or
    ``("gender", "age_group")`` for their combination), from a side-feature table such as
    :attr:`SideFeatures.U` and its column ``names``. A row with no active column of a field
    (a missing value) gets that field's extra code ``n_values``."""
    fields = (fields,) if isinstance(fields, str) else tuple(fields)
    table = np.asarray(table)
    if table.ndim != 2 or table.shape[1] != len(names):
        raise ValueError(f"table must be 2-D with one column per name ({len(names)}), got shape {table.shape}")
    code = np.zeros(len(table), dtype=np.int64)
    for f in fields:
        cols = [k for k, n in enumerate(names) if "=" in n and field_of(n) == f]
        if not cols:
            raise ValueError(f"no one-hot columns of field {f!r}; fields with '=' columns: "
                             f"{sorted({field_of(n) for n in names if '=' in n})}")
        block = table[:, cols]
        if (block.sum(axis=1) > 1).any():
            raise ValueError(f"field {f!r} is multi-hot; field_codes needs a one-hot field")
        value = np.where(block.sum(axis=1) > 0, block.argmax(axis=1), len(cols))
        code = code * (len(cols) + 1) + value
    return code


def cell_matrix(keys: np.ndarray, members: sp.sparray | np.ndarray, n_keys: int) -> sp.csr_array:
    r"""Rows' *cells*: row :math:`r` belongs to cell :math:`(k_r, g)` for every column
    :math:`g` that is non-zero in ``members[r]``; cell :math:`(k, g)` is column
    :math:`k \cdot G + g` of the returned 0/1 ``(rows, n_keys * G)`` matrix. Examples: keys
    = items and a one-hot demographic segment of the user (a film's cell within a segment);
    keys = users and the multi-hot genres of the item (a user's cells per genre)."""
    keys = np.asarray(keys, dtype=np.int64)
    m = sp.csr_array(members, dtype=np.float64)
    if keys.ndim != 1 or m.shape[0] != len(keys):
        raise ValueError(f"keys must be 1-D with one key per row of members ({m.shape[0]}), got {keys.shape}")
    if len(keys) and (keys.min() < 0 or keys.max() >= n_keys):
        raise ValueError(f"keys must lie in [0, {n_keys}), got range [{keys.min()}, {keys.max()}]")
    m.eliminate_zeros()
    g = m.shape[1]
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    cols = keys[rows] * g + m.indices
    return sp.csr_array((np.ones(len(rows)), (rows, cols)), shape=(m.shape[0], n_keys * g))


def cell_rate_scores(train_cells: sp.csr_array, y: np.ndarray, query_cells: sp.csr_array,
                     cell_prior: np.ndarray | float, damping: float, fallback: np.ndarray | float,
                     statistic: str = "rate") -> np.ndarray:
    r"""A non-personal baseline: each query row's score is the mean, over its cells
    (:func:`cell_matrix`), of the cell's training like rate shrunk towards a prior,

    .. math:: r_c = \frac{\sum_{r \in c} y_r + \beta\, \pi_c}{n_c + \beta},
              \qquad s(q) = \frac{1}{|C_q|} \sum_{c \in C_q} r_c,

    (``statistic="rate"``), or of the cell's share of training rows, :math:`n_c / N`
    (``statistic="count"``, popularity within the cell). A query with no cell scores
    ``fallback``. Film within demographic segment, user within genre, genre alone: all are
    this formula with different cells."""
    if statistic not in ("rate", "count"):
        raise ValueError(f"statistic must be 'rate' or 'count', got {statistic!r}")
    if damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    a, q = sp.csr_array(train_cells, dtype=np.float64), sp.csr_array(query_cells, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if a.shape[0] != len(y) or a.shape[1] != q.shape[1]:
        raise ValueError(f"train_cells needs one row per label ({len(y)}) and as many cells as query_cells "
                         f"({q.shape[1]}), got shapes {a.shape} and {q.shape}")
    n = a.T @ np.ones(len(y))
    if statistic == "count":
        r = n / max(len(y), 1)
    else:
        prior = np.broadcast_to(np.asarray(cell_prior, dtype=np.float64), n.shape)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (a.T @ y + damping * prior) / (n + damping)
        r = np.where(n + damping > 0, r, prior)
    k = q @ np.ones(q.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (q @ r) / k
    return np.where(k > 0, s, np.broadcast_to(np.asarray(fallback, dtype=np.float64), s.shape))


#: demographic segments of :func:`user_segment_members`
USER_SEGMENTS: tuple[str, ...] = ("gender", "age_group", "occupation", "zip", "gender x age_group", "mean of the four")
#: item groups of :func:`item_group_members`
ITEM_GROUPS: tuple[str, ...] = ("genre", "year_group", "genre + year_group")


def _one_hot(codes: np.ndarray, n: int) -> sp.csr_array:
    return sp.csr_array((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), n))


def user_segment_members(features: SideFeatures, segment: str) -> sp.csr_array:
    """Per user (row of ``features.U``), the 0/1 row of the demographic cells they belong
    to: one of :data:`USER_SEGMENTS` -- a single field, the gender x age-group combination,
    or (``"mean of the four"``) gender, age group, occupation and zip region side by side,
    so that :func:`cell_rate_scores` averages the four."""
    if segment not in USER_SEGMENTS:
        raise ValueError(f"segment must be one of {USER_SEGMENTS}, got {segment!r}")
    names, U = features.user_names, features.U
    fields = {"mean of the four": ("gender", "age_group", "occupation", "zip"),
              "gender x age_group": (("gender", "age_group"),)}.get(segment, (segment,))
    blocks = []
    for f in fields:
        codes = field_codes(U, names, f)
        n = 1
        for g in ((f,) if isinstance(f, str) else f):
            n *= sum(1 for c in names if "=" in c and field_of(c) == g) + 1
        blocks.append(_one_hot(codes, n))
    return sp.hstack(blocks, format="csr")


def item_group_members(features: SideFeatures, group: str) -> sp.csr_array:
    """Per item (row of ``features.I``), the 0/1 row of its genres, its release-year group,
    or both (one of :data:`ITEM_GROUPS`)."""
    if group not in ITEM_GROUPS:
        raise ValueError(f"group must be one of {ITEM_GROUPS}, got {group!r}")
    wanted = group.split(" + ")
    cols = [k for k, n in enumerate(features.item_names) if "=" in n and field_of(n) in wanted]
    return sp.csr_array(features.I[:, cols].astype(np.float64))


@dataclass(frozen=True)
class ColdSplit:
    """A cold-start split of rated pairs: the ``side`` (``"user"`` or ``"item"``) ids of
    ``val`` and ``test`` never occur in ``train``. DataFrames carry the contiguous indices
    ``user`` and ``item`` and the ``rating``; ``features`` were fitted on ``train`` only;
    ``*_ids`` are the raw ids of each part's cold side."""

    side: str
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    features: SideFeatures
    n_users: int
    n_items: int
    train_ids: np.ndarray
    val_ids: np.ndarray
    test_ids: np.ndarray

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(users, items, liked)`` of ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``
        (int32, int32, float32 with liked :math:`= [r \\ge 4]`)."""
        frames = {"train": self.train, "val": self.val, "test": self.test}
        if part == "trainval":
            d = pd.concat([self.train, self.val])
        elif part in frames:
            d = frames[part]
        else:
            raise ValueError(f"part must be 'train', 'val', 'test' or 'trainval', got {part!r}")
        return (d["user"].to_numpy(np.int32), d["item"].to_numpy(np.int32),
                (d["rating"].to_numpy(np.float64) >= 4).astype(np.float32))


def cold_start_data(ratings: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, user_raw_ids: np.ndarray,
                    item_raw_ids: np.ndarray, side: str, test_fraction: float = 0.2, val_fraction: float = 0.1,
                    seed: int = 0) -> ColdSplit:
    """Hold out whole users (``side="user"``) or items (``side="item"``):
    :func:`cold_start_split` of the distinct raw ids of that side; every rating of a test
    (validation) id goes to ``test`` (``val``), the rest to ``train``. ``ratings`` are
    encoded (:func:`helpers.encoding.encode_ids`: ``user_id``, ``item_id``, ``user``,
    ``item``, ``rating``); ``user_raw_ids``/``item_raw_ids`` give the raw id of each index.
    Side features are fitted on the training ratings' users and items only."""
    if side not in ("user", "item"):
        raise ValueError(f"side must be 'user' or 'item', got {side!r}")
    need = [c for c in ("user_id", "item_id", "user", "item", "rating") if c not in ratings.columns]
    if need:
        raise KeyError(f"ratings needs the columns of encode_ids; missing {need}")
    col = f"{side}_id"
    tr_ids, va_ids, te_ids = cold_start_split(ratings[col].unique(), test_fraction, val_fraction, seed)
    where = ratings[col].to_numpy()
    train = ratings[np.isin(where, tr_ids)]
    val = ratings[np.isin(where, va_ids)]
    test = ratings[np.isin(where, te_ids)]
    feats = side_features(users, items, user_raw_ids, item_raw_ids, train["user_id"].unique(),
                          train["item_id"].unique())
    return ColdSplit(side, train, val, test, feats, len(user_raw_ids), len(item_raw_ids), tr_ids, va_ids, te_ids)


# ----------------------------------------------------------------------------- in-batch softmax, NumPy
def sampling_log_q(items: np.ndarray, n_items: int) -> np.ndarray:
    r"""Log sampling probability of every item as an in-batch negative,
    :math:`\log q_j = \log(c_j / N)` with :math:`c_j` its number of training
    interactions among :math:`N` (float32; an item never seen gets :math:`\log(0.5/N)`,
    it can only appear as a negative if it is added to the batch some other way)."""
    items = np.asarray(items)
    if items.ndim != 1 or items.size == 0 or items.dtype.kind not in "iu":
        raise ValueError(f"items must be a non-empty 1-D integer array, got shape {items.shape}, dtype {items.dtype}")
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"items must lie in [0, {n_items}), got [{items.min()}, {items.max()}]")
    c = np.bincount(items, minlength=n_items).astype(np.float64)
    return np.log(np.maximum(c, 0.5) / len(items)).astype(np.float32)


def in_batch_softmax_numpy(a: np.ndarray, b: np.ndarray, items: np.ndarray, log_q: np.ndarray | None = None,
                           temperature: float = 1.0, mask_hits: bool = True) -> float:
    r"""The in-batch softmax loss, written out (reference for :func:`in_batch_softmax_loss`).

    Row :math:`r` of the batch is the positive pair :math:`(u_r, i_r)`; every item of the
    batch is a candidate:

    .. math:: \ell_{rj} = \frac{a_r^\top b_j}{\tau} - \log q_{i_j},\qquad
              \mathcal L = -\frac1B \sum_r \Big[\ell_{rr} - \log \sum_j e^{\ell_{rj}}\Big]

    (without ``log_q``: no correction). With ``mask_hits`` a column :math:`j \ne r` holding
    the same item as row :math:`r` (:math:`i_j = i_r`, an "accidental hit") is removed
    from row :math:`r`'s sum. ``a``, ``b``: ``(B, d)`` tower outputs; ``items``: the
    ``B`` item indices; ``log_q``: per-item log probabilities (:func:`sampling_log_q`)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    items = np.asarray(items)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must be 2-D of equal shape (batch x dim), got {a.shape} and {b.shape}")
    if items.shape != (a.shape[0],):
        raise ValueError(f"items needs one index per row ({a.shape[0]}), got shape {items.shape}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = a @ b.T / temperature
    if log_q is not None:
        logits = logits - np.asarray(log_q, dtype=np.float64)[items][None, :]
    if mask_hits:
        hit = (items[:, None] == items[None, :]) & ~np.eye(len(items), dtype=bool)
        logits = np.where(hit, -np.inf, logits)
    m = logits.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse - np.diag(logits)))


# ============================================================================= Keras
CTR_KINDS = ("linear", "fm", "wide_deep", "deepfm", "dcn")


def _keras_layers() -> dict[str, Any]:
    """Custom layers, defined on first use so that this module imports without Keras."""
    global _LAYERS
    if _LAYERS is not None:
        return _LAYERS
    import keras
    from keras import ops

    class FieldEmbedding(keras.layers.Layer):
        r"""A factor vector :math:`v_c` per feature column. For a batch of feature rows
        ``x`` ``(B, n)`` it returns the field embeddings :math:`e_f = \sum_{c \in f} x_c v_c`
        ``(B, F, k)`` (one matrix product with the columns grouped by field), their sum
        :math:`\sum_c x_c v_c` and :math:`\sum_c x_c^2 v_c^2` ``(B, k)`` -- the two sums of the
        FM identity, without materialising one vector per column."""

        def __init__(self, field_matrix: np.ndarray, dim: int, init_std: float = 0.01, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.field_matrix = np.asarray(field_matrix, dtype=np.float32)
            self.dim, self.init_std = int(dim), float(init_std)

        def build(self, input_shape: Any) -> None:
            n, _ = self.field_matrix.shape
            self.V = self.add_weight(name="V", shape=(n, self.dim),
                                     initializer=keras.initializers.RandomNormal(stddev=self.init_std))

        def call(self, x: Any) -> Any:
            n, n_fields = self.field_matrix.shape
            a = ops.convert_to_tensor(self.field_matrix)
            blocks = ops.reshape(ops.expand_dims(self.V, 1) * ops.expand_dims(a, -1), (n, n_fields * self.dim))
            fields = ops.reshape(ops.matmul(x, blocks), (-1, n_fields, self.dim))
            return fields, ops.matmul(x, self.V), ops.matmul(x * x, self.V * self.V)

    class FMInteraction(keras.layers.Layer):
        r"""FM pairwise term from the two sums: ``0.5 * sum_f (s_f^2 - q_f)``."""

        def call(self, s: Any, q: Any) -> Any:
            return 0.5 * ops.sum(s * s - q, axis=-1)

    _LAYERS = {"FieldEmbedding": FieldEmbedding, "FMInteraction": FMInteraction}
    return _LAYERS


_LAYERS: dict[str, Any] | None = None


def _frozen_table(matrix: np.ndarray, name: str) -> "keras.layers.Embedding":
    import keras

    m = np.asarray(matrix, dtype=np.float32)
    layer = keras.layers.Embedding(m.shape[0], m.shape[1], trainable=False, name=name,
                                   embeddings_initializer=keras.initializers.Constant(m))
    return layer


def _mlp(z: Any, hidden: Sequence[int], dropout: float, prefix: str) -> Any:
    import keras

    for k, width in enumerate(hidden):
        z = keras.layers.Dense(int(width), activation="relu", name=f"{prefix}_dense_{k}")(z)
        if dropout:
            z = keras.layers.Dropout(dropout, name=f"{prefix}_dropout_{k}")(z)
    return z


def _check_model_args(n_users: int, n_items: int, features: SideFeatures, dim: int,
                      hidden: Sequence[int], dropout: float) -> tuple[int, ...]:
    if features.U.shape[0] != n_users or features.I.shape[0] != n_items:
        raise ValueError(f"feature tables must have one row per user ({n_users}) and item ({n_items}), got "
                         f"{features.U.shape[0]} and {features.I.shape[0]}")
    if int(dim) < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    hidden = tuple(int(h) for h in hidden)
    if hidden and min(hidden) < 1:
        raise ValueError(f"hidden must list positive layer widths, e.g. (64, 32); got {hidden}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return hidden


def build_ctr_model(kind: str, n_users: int, n_items: int, features: SideFeatures, *, dim: int = 16,
                    hidden: Sequence[int] = (64, 32), dropout: float = 0.0, cross_layers: int = 2,
                    ids: Sequence[str] = ("user", "item"), init_std: float = 0.01) -> "keras.Model":
    r"""A (user, item) -> logit model on ids and side features; inputs ``[user, item]``
    (int32 indices), output the logit :math:`s_{ui}` (shape ``(batch,)``).

    With :math:`x = [x^{(u)}; x^{(i)}]` the pair's feature row, :math:`v_c` the factor of
    column :math:`c` (``dim`` wide), :math:`p_u, q_i` id embeddings and :math:`b_u, b_i`
    id biases (for the sides listed in ``ids``: ``("user", "item")``, one of them, or
    ``()`` for a features-only model), slot embeddings :math:`\{x_c v_c\} \cup \{p_u,
    q_i\}`, field embeddings :math:`e_f = \sum_{c\in f} x_c v_c` (ids are fields of their
    own) and :math:`z = [e_1; \dots; e_F]`:

    * ``"linear"``: :math:`w_0 + w^\top x + b_u + b_i` (logistic regression);
    * ``"fm"``: linear + the FM pairwise term over all slots;
    * ``"wide_deep"``: linear + :math:`\sum_{a,g} W_{ag}\, x^{(u)}_a x^{(i)}_g` (every
      user column crossed with every item column, the wide part's cross products) +
      :math:`h^\top \mathrm{MLP}(z)`;
    * ``"deepfm"``: FM + :math:`h^\top \mathrm{MLP}(z)`, sharing the embeddings;
    * ``"dcn"``: :math:`x_0 = z`, ``cross_layers`` DCN-v2 cross layers
      (``keras_rs.layers.FeatureCross``), then :math:`h^\top \mathrm{MLP}(x_L)`.

    ``hidden`` are the MLP widths (ReLU, ``dropout`` after each). Embeddings start at
    :math:`N(0, \text{init\_std}^2)`.
    """
    import keras

    if kind not in CTR_KINDS:
        raise ValueError(f"kind must be one of {CTR_KINDS}, got {kind!r}")
    ids = tuple(ids)
    if not set(ids) <= {"user", "item"} or len(set(ids)) != len(ids):
        raise ValueError(f"ids lists the sides with id embeddings: 'user', 'item', both or neither; got {ids}")
    hidden = _check_model_args(n_users, n_items, features, dim, hidden, dropout)
    if kind in ("wide_deep", "deepfm", "dcn") and not hidden:
        raise ValueError(f"{kind} needs at least one hidden layer")
    if kind == "dcn" and int(cross_layers) < 1:
        raise ValueError(f"cross_layers must be >= 1, got {cross_layers}")
    L = _keras_layers()
    user = keras.Input((), dtype="int32", name="user")
    item = keras.Input((), dtype="int32", name="item")
    xu = _frozen_table(features.U, "user_features")(user)
    xi = _frozen_table(features.I, "item_features")(item)
    x = keras.layers.Concatenate(name="features")([xu, xi])
    init = keras.initializers.RandomNormal(stddev=init_std)

    parts = []
    linear = keras.layers.Dense(1, name="linear")(x)                     # w0 + w^T x
    parts.append(keras.layers.Reshape(())(linear))
    id_sides = [(name, idx, n) for name, idx, n in (("user", user, n_users), ("item", item, n_items)) if name in ids]
    for name, idx, n in id_sides:                                        # b_u, b_i
        bias = keras.layers.Embedding(n, 1, embeddings_initializer="zeros", name=f"{name}_bias")(idx)
        parts.append(keras.layers.Reshape(())(bias))
    if kind != "linear":
        fields, s_sum, q_sum = L["FieldEmbedding"](features.field_matrix(), dim, init_std,
                                                   name="field_embedding")(x)          # e_f, sum x v, sum x^2 v^2
        z_parts = [keras.layers.Flatten(name="flat_fields")(fields)]
        for name, idx, n in id_sides:                                    # p_u, q_i: fields of their own
            e = keras.layers.Embedding(n, dim, embeddings_initializer=init, name=f"{name}_embedding")(idx)
            z_parts.append(e)
            s_sum = keras.layers.Add()([s_sum, e])
            q_sum = keras.layers.Add()([q_sum, keras.layers.Multiply()([e, e])])
        if kind in ("fm", "deepfm"):
            parts.append(L["FMInteraction"](name="fm_pairwise")(s_sum, q_sum))
        if kind in ("wide_deep", "deepfm", "dcn"):
            z = keras.layers.Concatenate(name="deep_input")(z_parts) if len(z_parts) > 1 else z_parts[0]
            if kind == "dcn":
                import keras_rs

                x0 = z
                for layer in range(int(cross_layers)):
                    z = keras_rs.layers.FeatureCross(name=f"cross_{layer}")(x0, z)
            z = _mlp(z, hidden, dropout, "deep")
            parts.append(keras.layers.Reshape(())(keras.layers.Dense(1, name="deep_output")(z)))
        if kind == "wide_deep":
            n_u, n_i = features.U.shape[1], features.I.shape[1]
            cross = keras.layers.Lambda(
                lambda t: keras.ops.reshape(keras.ops.expand_dims(t[0], 2) * keras.ops.expand_dims(t[1], 1),
                                            (-1, n_u * n_i)), name="cross_products")([xu, xi])
            parts.append(keras.layers.Reshape(())(keras.layers.Dense(1, use_bias=False, name="wide_cross")(cross)))
    logit = keras.layers.Add(name="logit")(parts) if len(parts) > 1 else parts[0]
    suffix = "" if len(ids) == 2 else "_features_only" if not ids else f"_{ids[0]}_id"
    return keras.Model([user, item], logit, name=f"{kind}{suffix}")


def predict_logits(model: "keras.Model", users: np.ndarray, items: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """The model's logits for aligned index arrays (float64), compiled once per model
    (:func:`helpers.training.predict_batched`)."""
    from helpers.training import predict_batched

    return predict_batched(model, users, items, batch_size)


def _bce_logits(y: np.ndarray, s: np.ndarray) -> float:
    return float(np.mean(np.maximum(s, 0) - y * s + np.log1p(np.exp(-np.abs(s)))))


def ctr_validation(users: np.ndarray, items: np.ndarray, y: np.ndarray, patience: int | None = 2,
                   monitor: str = "log loss") -> Any:
    """Validation of a (user, item) -> logit classifier on held-out rated pairs: reports
    ``log loss`` (binary cross-entropy of the logits, monitored, minimised) and ``AUC``
    (:class:`helpers.training.Validation`)."""
    from helpers.metrics import auc
    from helpers.training import Validation

    users, items = np.asarray(users), np.asarray(items)
    y = np.asarray(y, dtype=np.float64)
    if not (users.shape == items.shape == y.shape) or users.ndim != 1:
        raise ValueError(f"users, items and y must be 1-D of equal length, got {users.shape}, {items.shape}, {y.shape}")
    if monitor not in ("log loss", "AUC"):
        raise ValueError(f"monitor must be 'log loss' or 'AUC', got {monitor!r}")

    def evaluate(model: "keras.Model") -> dict[str, float]:
        s = predict_logits(model, users, items)
        return {"log loss": _bce_logits(y, s), "AUC": auc(y, s)}

    return Validation(evaluate, monitor=monitor, mode="min" if monitor == "log loss" else "max", patience=patience)


def train_ctr(model: "keras.Model", users: np.ndarray, items: np.ndarray, y: np.ndarray,
              config: "TrainConfig | None" = None, validation: Any = None) -> "EpochHistory":
    r"""Fit a logit model on rated pairs with binary cross-entropy from logits,

    .. math:: \mathcal L = \frac1B\sum_{(u,i)} \big[\log(1 + e^{s_{ui}}) - y_{ui} s_{ui}\big],

    shuffled every epoch (``config.seed``), compiled epochs
    (:func:`helpers.training.compiled_epoch`), the optimiser and schedule of ``config``
    (:class:`helpers.training.TrainConfig`) and the book's early-stopping rule
    (:func:`helpers.training.run_epochs`; e.g. ``validation=ctr_validation(...)``).
    Returns the :class:`helpers.training.EpochHistory` (wall and CPU seconds per epoch)."""
    import tensorflow as tf

    from helpers.training import TrainConfig, compiled_epoch, run_epochs

    config = TrainConfig() if config is None else config
    users = np.asarray(users)
    items = np.asarray(items)
    y = np.asarray(y, dtype=np.float32)
    if not (users.shape == items.shape == y.shape) or users.ndim != 1 or len(users) == 0:
        raise ValueError(f"users, items and y must be non-empty 1-D arrays of equal length, got "
                         f"{users.shape}, {items.shape}, {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold 0/1 labels")
    rng = np.random.default_rng(config.seed)
    opt = config.optimizer(-(-len(users) // config.batch_size))
    variables = model.trainable_variables
    opt.build(variables)

    @tf.function(jit_compile=config.jit_compile, autograph=False)
    def train_step(u: tf.Tensor, i: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model([u, i], training=True)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=logits))
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], variables))
        return loss

    train_epoch = compiled_epoch(train_step, config.batch_size)
    u_all, i_all = users.astype(np.int32), items.astype(np.int32)

    def one_epoch(epoch: int) -> float:
        order = rng.permutation(len(u_all))
        return float(train_epoch(tf.constant(u_all[order]), tf.constant(i_all[order]), tf.constant(y[order])))

    return run_epochs(model, one_epoch, config.epochs, validation)


# ----------------------------------------------------------------------------- two towers
def in_batch_softmax_loss(a: Any, b: Any, items: Any, log_q: Any = None, temperature: float = 1.0,
                          mask_hits: bool = True) -> Any:
    r"""The in-batch softmax loss of :func:`in_batch_softmax_numpy`, in Keras ops (a scalar
    tensor). The log-q correction is ``keras_rs.layers.SamplingProbabilityCorrection``
    (``logits - log q``); accidental hits are masked here with a large negative logit,
    because ``keras_rs.layers.RemoveAccidentalHits`` of keras-rs 0.4.0 adds a float32
    denormal (about 1e-40) instead, which leaves the logits unchanged (keras-rs pull
    request #206). ``log_q``: the batch items' log sampling probabilities, shape ``(B,)``."""
    import keras
    import keras_rs
    from keras import ops

    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = ops.matmul(a, ops.transpose(b)) / temperature
    if log_q is not None:
        q = ops.broadcast_to(ops.expand_dims(ops.exp(log_q), 0), ops.shape(logits))
        logits = keras_rs.layers.SamplingProbabilityCorrection(epsilon=1e-30)(logits, q)
    n = ops.shape(logits)[0]
    eye = ops.eye(n, dtype="bool")
    if mask_hits:
        hit = ops.logical_and(ops.equal(ops.expand_dims(items, 1), ops.expand_dims(items, 0)), ops.logical_not(eye))
        logits = ops.where(hit, ops.full_like(logits, -1e9), logits)
    labels = ops.arange(n)
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))


@dataclass
class TwoTower:
    """A user tower and an item tower (index -> vector models) and ``model``, the
    ``[user, item] -> a_u^T b_i`` scorer that holds both (for weights, early stopping and
    :func:`helpers.ncf.pair_scorer`)."""

    user_tower: "keras.Model"
    item_tower: "keras.Model"
    model: "keras.Model"

    def user_vectors(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_tower.predict(np.asarray(users, dtype=np.int32), verbose=0, batch_size=8192),
                          dtype=np.float64)

    def item_vectors(self, items: np.ndarray | None = None, n_items: int | None = None) -> np.ndarray:
        if items is None:
            if n_items is None:
                raise ValueError("pass items or n_items")
            items = np.arange(n_items)
        return np.asarray(self.item_tower.predict(np.asarray(items, dtype=np.int32), verbose=0, batch_size=8192),
                          dtype=np.float64)

    def scores(self, users: np.ndarray, n_items: int) -> np.ndarray:
        """``(len(users), n_items)`` dot-product scores of every item (full ranking)."""
        return self.user_vectors(users) @ self.item_vectors(n_items=n_items).T


def _tower(name: str, idx: Any, n: int, table: np.ndarray | None, dim: int, use_id: bool,
           hidden: tuple[int, ...], out_dim: int, normalize: bool, init_std: float) -> "keras.Model":
    import keras

    parts = []
    if use_id:
        parts.append(keras.layers.Embedding(n, dim, name=f"{name}_embedding",
                                            embeddings_initializer=keras.initializers.RandomNormal(stddev=init_std))(idx))
    if table is not None:
        parts.append(_frozen_table(table, f"{name}_features")(idx))
    z = keras.layers.Concatenate(name=f"{name}_input")(parts) if len(parts) > 1 else parts[0]
    z = _mlp(z, hidden, 0.0, name)
    z = keras.layers.Dense(out_dim, name=f"{name}_out")(z)
    if normalize:
        z = keras.layers.UnitNormalization(name=f"{name}_unit")(z)
    return keras.Model(idx, z, name=f"{name}_tower")


def build_two_tower(n_users: int, n_items: int, features: SideFeatures, *, dim: int = 32, out_dim: int = 32,
                    hidden: Sequence[int] = (64,), user_ids: bool = True, item_ids: bool = True,
                    user_features: bool = True, item_features: bool = True, normalize: bool = True,
                    init_std: float = 0.05) -> TwoTower:
    r"""Two towers: :math:`a_u = g\big(\mathrm{MLP}([p_u; x^{(u)}])\big)`,
    :math:`b_i = g\big(\mathrm{MLP}([q_i; x^{(i)}])\big)`, each an embedding of the id
    (``dim`` wide, when ``*_ids``) next to the side features (when ``*_features``), ReLU
    layers ``hidden`` and a linear output of ``out_dim``; :math:`g` scales to unit length
    when ``normalize`` (the score is then a cosine). A user tower without ids scores users
    it has never seen (cold start)."""
    import keras

    hidden = _check_model_args(n_users, n_items, features, dim, hidden, 0.0)
    if int(out_dim) < 1:
        raise ValueError(f"out_dim must be >= 1, got {out_dim}")
    if not (user_ids or user_features) or not (item_ids or item_features):
        raise ValueError("each tower needs its id, its features or both")
    user = keras.Input((), dtype="int32", name="user")
    item = keras.Input((), dtype="int32", name="item")
    ut = _tower("user", user, n_users, features.U if user_features else None, dim, user_ids, hidden, out_dim,
                normalize, init_std)
    it = _tower("item", item, n_items, features.I if item_features else None, dim, item_ids, hidden, out_dim,
                normalize, init_std)
    score = keras.layers.Dot(axes=1, name="score")([ut(user), it(item)])
    model = keras.Model([user, item], keras.layers.Reshape((), name="logit")(score), name="two_tower")
    return TwoTower(ut, it, model)


def train_two_tower(towers: TwoTower, users: np.ndarray, items: np.ndarray, n_items: int,
                    config: "TrainConfig | None" = None, *, temperature: float = 0.1, log_q: bool = True,
                    mask_hits: bool = True, validation: Any = None) -> "EpochHistory":
    r"""Train two towers on positive pairs with the in-batch softmax
    (:func:`in_batch_softmax_loss`): every epoch the pairs are shuffled and cut into batches
    of ``config.batch_size``; with ``log_q`` each candidate's logit is corrected by
    :math:`-\log q_j` (:func:`sampling_log_q` of the training items). The last, short
    batch of an epoch is dropped (a softmax over a handful of items is a different loss).
    Optimiser, schedule and early stopping as in :func:`train_ctr`."""
    import tensorflow as tf

    from helpers.training import TrainConfig, compiled_epoch, run_epochs

    config = TrainConfig() if config is None else config
    users = np.asarray(users)
    items = np.asarray(items)
    if users.shape != items.shape or users.ndim != 1 or len(users) < config.batch_size:
        raise ValueError(f"users and items must be 1-D of equal length, at least one batch ({config.batch_size}); "
                         f"got {users.shape} and {items.shape}")
    lq = tf.constant(sampling_log_q(items.astype(np.int64), n_items))
    rng = np.random.default_rng(config.seed)
    steps = len(users) // config.batch_size
    opt = config.optimizer(steps)
    variables = towers.model.trainable_variables
    opt.build(variables)

    @tf.function(jit_compile=config.jit_compile, autograph=False)
    def train_step(u: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            a = towers.user_tower(u, training=True)
            b = towers.item_tower(i, training=True)
            loss = in_batch_softmax_loss(a, b, i, tf.gather(lq, i) if log_q else None, temperature, mask_hits)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], variables))
        return loss

    train_epoch = compiled_epoch(train_step, config.batch_size)
    u_all, i_all = users.astype(np.int32), items.astype(np.int32)
    n_used = steps * config.batch_size

    def one_epoch(epoch: int) -> float:
        order = rng.permutation(len(u_all))[:n_used]
        return float(train_epoch(tf.constant(u_all[order]), tf.constant(i_all[order])))

    return run_epochs(towers.model, one_epoch, config.epochs, validation)


def retrieval_validation(towers: TwoTower, users: np.ndarray, targets: np.ndarray, exclude: sp.csr_array,
                         candidates: np.ndarray | None = None, monitor: str = "full NDCG@10",
                         patience: int | None = 2) -> Any:
    """Validation of two towers by ranking each user's held-out item: full ranking among the
    items not in ``exclude`` (``full HR@10``, ``full NDCG@10``), and with ``candidates``
    also the sampled metrics (``HR@10``, ``NDCG@10``). Pass validation items, never test
    items."""
    from helpers.evaluation import full_ranks
    from helpers.metrics import hit_rate_at_k, ndcg_at_k, rank_of_target
    from helpers.training import Validation

    users = np.asarray(users, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.int64)
    exclude = sp.csr_array(exclude)
    if users.shape != targets.shape or users.ndim != 1:
        raise ValueError(f"users and targets must be 1-D of equal length, got {users.shape} and {targets.shape}")
    if candidates is not None and np.asarray(candidates).shape[0] != len(users):
        raise ValueError(f"one candidate row per user: {len(users)} users, {np.asarray(candidates).shape[0]} rows")

    def evaluate(model: "keras.Model") -> dict[str, float]:
        s = towers.scores(users, exclude.shape[1])
        r = full_ranks(s, targets, exclude[users])
        out = {"full HR@10": hit_rate_at_k(r), "full NDCG@10": ndcg_at_k(r)}
        if candidates is not None:
            c = np.asarray(candidates)
            rs = rank_of_target(np.take_along_axis(s, c, axis=1), 0)
            out.update({"HR@10": hit_rate_at_k(rs), "NDCG@10": ndcg_at_k(rs)})
        return out

    return Validation(evaluate, monitor=monitor, mode="max", patience=patience)


def shelf_exclusion(seen: sp.sparray | sp.spmatrix, shelf: np.ndarray) -> sp.csr_array:
    """The 0/1 exclusion matrix that makes a full ranking a ranking *on a shelf*: every
    user's ``seen`` items plus, for every user, every item that is not in ``shelf``. With it,
    :func:`helpers.evaluation.full_ranks` (or :func:`retrieval_validation`) ranks the held-out
    item among the shelf's unseen items only, e.g. new films among new films."""
    X = sp.csr_array(seen)
    shelf = np.unique(np.asarray(shelf, dtype=np.int64))
    if shelf.ndim != 1 or len(shelf) == 0 or shelf.min() < 0 or shelf.max() >= X.shape[1]:
        raise ValueError(f"shelf must be a non-empty set of item indices in [0, {X.shape[1]})")
    off = np.setdiff1d(np.arange(X.shape[1]), shelf)
    rows = np.repeat(np.arange(X.shape[0]), len(off))
    W = sp.csr_array((np.ones(len(rows)), (rows, np.tile(off, X.shape[0]))), shape=X.shape)
    E = (X + W).tocsr()
    E.data[:] = 1.0
    return E


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``(fn(), wall seconds, process CPU seconds)`` -- CPU time is less sensitive to other
    programs sharing the machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0
