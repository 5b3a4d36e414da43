r"""Metrics for rating prediction, classification and ranking (NumPy only).

Two ranking protocols appear in the book, and both are covered:

* **one held-out item per user** (leave-last-out, ranked among sampled candidates or among
  all items): a user's result is the 0-based ``rank`` of the held-out item, and
  :func:`hit_rate_at_k`, :func:`ndcg_at_k`, :func:`mrr`, :func:`auc_from_ranks` take the
  vector of ranks (one per user);
* **several relevant items per user** (full ranking of a test period): a user's result is
  a top-``K`` list; :func:`hits_matrix` marks which positions are relevant, and
  :func:`precision_at_k`, :func:`recall_at_k`, :func:`hit_rate_lists`, :func:`ndcg_lists`,
  :func:`map_at_k`, :func:`mrr_lists` take that boolean matrix.

Ties in scores are counted against the model: a held-out item tied with a negative ranks
below it (a model that scores everything equally gets the worst rank, not a lucky one).
:func:`top_k` must still order tied items somehow; it puts the lower item index first.
All metrics return the mean over users as a Python ``float`` (:func:`ndcg_per_user` gives
the per-user values behind :func:`ndcg_at_k`; :func:`grouped_auc` averages AUC per user).

Inputs are checked rather than trusted: a NaN score, a ``k`` that is not a positive
integer, arrays whose shapes disagree, an item id outside the catalogue or a user without
a relevant item where the formula divides by their number raise a ``ValueError`` that says
what was wrong and what was expected. Scores of ``+inf`` and ``-inf`` are valid and rank
first and last.
"""
from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral

import numpy as np
import scipy.sparse as sp


# ----------------------------------------------------------------------------- checks
def _check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as a Python int, or a ValueError unless it is an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _int_array(name: str, values: object, ndim: int | None = 1) -> np.ndarray:
    """``values`` as an int64 array (integer dtype, or floats that are whole numbers)."""
    a = np.asarray(values)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        if a.size or a.dtype == bool:
            raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            bad = a[~np.isfinite(a) | (a != np.round(a))][0]
            raise ValueError(f"{name} must hold whole numbers, found {bad!r}")
    return a.astype(np.int64, copy=False)


def _no_nan(name: str, a: np.ndarray, why: str = "the model diverged or an input was missing") -> None:
    if np.isnan(a).any():
        raise ValueError(f"{name} contain NaN at {np.argwhere(np.isnan(a))[0].tolist()}: {why}; "
                         "expected numbers")


def _same_shape(names: tuple[str, str], a: np.ndarray, b: np.ndarray) -> None:
    """Equal shapes, or shapes that differ only by length-1 axes ((n, 1) Keras output vs (n,))."""
    if a.shape != b.shape and np.squeeze(a).shape != np.squeeze(b).shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same length and shape (one value "
                         "each), "
                         f"got {a.shape} and {b.shape}")


def _pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("y_true", "y_pred"),
          finite: bool = True, check_b: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as flat float64 arrays of equal length; NaN (and, with ``finite``, inf)
    is a ValueError, in ``b`` only if ``check_b``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    _same_shape(names, a, b)
    a, b = a.ravel(), b.ravel()
    if a.size == 0:
        raise ValueError(f"empty input: {names[0]} and {names[1]} need at least one value")
    for name, x in zip(names, (a, b) if check_b else (a,)):
        _no_nan(name, x)
        if finite and np.isinf(x).any():
            raise ValueError(f"{name} contain inf at position {int(np.flatnonzero(np.isinf(x))[0])}: "
                             "expected finite numbers")
    return a, b


def _binary_labels(y: np.ndarray) -> np.ndarray:
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"y_true must hold binary labels 0 and 1, found {y[~np.isin(y, (0.0, 1.0))][0]!r}")
    return y == 1.0


# ----------------------------------------------------------------------------- ratings
def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    r"""Root mean squared error, :math:`\sqrt{\frac1n \sum_i (y_i - \hat y_i)^2}`.

    Arrays of the same shape (or differing only by length-1 axes, e.g. a Keras ``(n, 1)``
    output). ``y_true`` must be finite (NaN or inf there is a ValueError). Predictions are
    not checked: a diverged model's NaN or inf predictions give an RMSE of ``nan`` or
    ``inf``, which a training loop tests with ``np.isfinite`` to stop the run (chapter 5)."""
    y_true, y_pred = _pair(y_true, y_pred, check_b=False)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    r"""Mean absolute error, :math:`\frac1n \sum_i |y_i - \hat y_i|` (inputs as for :func:`rmse`:
    ``nan``/``inf`` predictions give ``nan``/``inf``)."""
    y_true, y_pred = _pair(y_true, y_pred, check_b=False)
    return float(np.mean(np.abs(y_true - y_pred)))


# ----------------------------------------------------------------------- classification
def auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    r"""Area under the ROC curve: the probability that a random positive scores above a
    random negative, ties counting one half (Mann-Whitney U):

    .. math:: \mathrm{AUC} = \frac{1}{|P||N|}\sum_{p\in P}\sum_{n\in N}
              \big([s_p > s_n] + \tfrac12 [s_p = s_n]\big)

    Computed from average ranks in :math:`O(n \log n)`; equals ``sklearn.metrics.roc_auc_score``.
    ``y_true`` holds labels 0 and 1 and needs both; scores may be ``±inf`` but not NaN.
    """
    y_true, y_score = _pair(y_true, y_score, ("y_true", "y_score"), finite=False)
    pos = _binary_labels(y_true)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs at least one positive and one negative label, got {n_pos} positives "
                         f"and {n_neg} negatives")
    from scipy.stats import rankdata

    ranks = rankdata(y_score)  # average ranks handle ties as 1/2
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def grouped_auc(groups: np.ndarray, y_true: np.ndarray, y_score: np.ndarray) -> tuple[float, int]:
    r"""Mean per-group AUC ("GAUC"), e.g. one AUC per user, averaged with equal weight:

    .. math:: \mathrm{GAUC} = \frac{1}{|G'|}\sum_{g \in G'} \mathrm{AUC}_g,

    where :math:`G'` are the groups that have both a positive and a negative label (the
    others have no AUC and are skipped). A global :func:`auc` also rewards telling *users*
    apart (active users score higher overall); per-user AUC only asks whether each user's
    own positives are ranked above their own negatives, which is what a recommender does.
    Returns ``(gauc, number of groups used)``.

    Each :math:`\mathrm{AUC}_g` is the Mann-Whitney form of :func:`auc` (ties count one
    half), computed for all groups at once: one sort by (group, score), average ranks of
    tied runs within a group, and per-group sums with ``np.bincount``. Inputs as for
    :func:`auc`; ``groups`` holds one id per label (any sortable ids, not NaN).
    """
    groups = np.asarray(groups)
    y_true, y_score = _pair(y_true, y_score, ("y_true", "y_score"), finite=False)
    if groups.size != y_true.size or groups.ndim > 1 and np.squeeze(groups).ndim > 1:
        raise ValueError(f"groups must have one entry per label, got {groups.shape} and {y_true.shape}")
    groups = groups.ravel()
    if groups.dtype.kind in "fc" and np.isnan(groups).any():
        raise ValueError("groups contain NaN: every label needs a group id")
    pos = _binary_labels(y_true)
    codes = np.unique(groups, return_inverse=True)[1].ravel()
    order = np.lexsort((y_score, codes))
    g, s, p = codes[order], y_score[order], pos[order]
    n = len(g)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = g[1:] != g[:-1]
    new_run = new_group.copy()  # a run = equal (group, score): tied items share their mean rank
    new_run[1:] |= s[1:] != s[:-1]
    group_start = np.flatnonzero(new_group)
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], n)                   # exclusive
    run_group = g[run_start]
    # 1-based rank within the group, averaged over the tied run [start, end)
    run_rank = (run_start + run_end + 1) / 2.0 - group_start[run_group]
    rank = np.repeat(run_rank, run_end - run_start)
    n_groups = len(group_start)
    n_all = np.bincount(g, minlength=n_groups).astype(np.float64)
    n_pos = np.bincount(g, weights=p, minlength=n_groups)
    rank_pos = np.bincount(g, weights=np.where(p, rank, 0.0), minlength=n_groups)
    n_neg = n_all - n_pos
    used = (n_pos > 0) & (n_neg > 0)
    if not used.any():
        raise ValueError("no group has both a positive and a negative label")
    values = (rank_pos[used] - n_pos[used] * (n_pos[used] + 1) / 2) / (n_pos[used] * n_neg[used])
    return float(np.mean(values)), int(used.sum())


def log_loss(y_true: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    r"""Binary cross-entropy of probabilities,
    :math:`-\frac1n\sum_i y_i\log p_i + (1-y_i)\log(1-p_i)` (``p`` clipped to ``[eps, 1-eps]``).

    ``y_true`` in ``[0, 1]`` (labels 0/1, or soft labels), ``p`` in ``[0, 1]``; anything else
    (a logit passed by mistake, NaN) raises a ValueError instead of being clipped."""
    y_true, p = _pair(y_true, p, ("y_true", "p"))
    if not 0 < eps < 0.5:
        raise ValueError(f"eps must lie in (0, 0.5), got {eps!r}")
    for name, x in (("y_true", y_true), ("p", p)):
        if ((x < 0) | (x > 1)).any():
            raise ValueError(f"{name} must lie in [0, 1], found {x[(x < 0) | (x > 1)][0]!r}"
                             + (" (pass probabilities, not logits)" if name == "p" else ""))
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)))


# --------------------------------------------------------- one held-out item per user
def rank_of_target(scores: np.ndarray, target_col: int | np.ndarray = 0) -> np.ndarray:
    """0-based rank of each row's target among that row's scores (0 = best).

    ``scores`` has shape ``(n_users, n_candidates)``; ``target_col`` is the column of the
    held-out item (one integer for all rows, or one per row, in ``[0, n_candidates)``).
    Ties count against the target: rank = number of candidates scoring ``>=`` the target,
    minus the target itself. ``+inf`` and ``-inf`` are ordinary scores (a target at ``-inf``
    ranks below every finite score and ties with the other ``-inf``); NaN scores are an error.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x candidates), got shape {scores.shape}")
    if scores.shape[1] == 0:
        raise ValueError("scores have no candidate columns: expected at least the target")
    _no_nan("scores", scores)
    cols = _int_array("target_col", target_col, ndim=None)
    if cols.ndim > 1 or cols.ndim == 1 and cols.shape != (scores.shape[0],):
        raise ValueError(f"target_col must be one integer or one per row ({scores.shape[0]}), got shape {cols.shape}")
    if cols.size and (cols.min() < 0 or cols.max() >= scores.shape[1]):
        raise ValueError(f"target_col must lie in [0, {scores.shape[1]}), got values in "
                         f"[{cols.min()}, {cols.max()}]")
    cols = np.broadcast_to(cols, (scores.shape[0],))
    target = scores[np.arange(scores.shape[0]), cols]
    return (scores >= target[:, None]).sum(axis=1) - 1


def _ranks(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1:
        raise ValueError(f"ranks must be 1-D (one per user), got shape {ranks.shape}")
    if ranks.size == 0:
        raise ValueError("no users to evaluate: ranks is empty")
    if np.issubdtype(ranks.dtype, np.floating) and np.isnan(ranks).any():
        raise ValueError("ranks contain NaN: expected one 0-based integer rank per user")
    ranks = _int_array("ranks", ranks)
    if (ranks < 0).any():
        raise ValueError(f"ranks are 0-based and cannot be negative, found {int(ranks.min())}")
    return ranks


def hit_rate_at_k(ranks: np.ndarray, k: int = 10) -> float:
    r"""Share of users whose held-out item ranks in the top ``k``.

    ``ranks[u]`` is the 0-based position of user ``u``'s held-out item among its candidates
    (0 = best). :math:`\mathrm{HR@}k = \frac{1}{|U|}\sum_u [\mathrm{rank}_u < k]`.
    ``k`` is an integer >= 1; non-negative integer ranks, one per user.
    """
    k = _check_int("k", k)
    return float(np.mean(_ranks(ranks) < k))


def ndcg_at_k(ranks: np.ndarray, k: int = 10) -> float:
    r"""NDCG@k with one relevant item per user (log2 discount).

    With a single relevant item the ideal DCG is 1, so
    :math:`\mathrm{NDCG@}k = \frac{1}{|U|}\sum_u \frac{[\mathrm{rank}_u < k]}{\log_2(\mathrm{rank}_u + 2)}`.
    """
    return float(np.mean(ndcg_per_user(ranks, k)))


def ndcg_per_user(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    r"""Each user's NDCG@k, :math:`[\mathrm{rank}_u < k] / \log_2(\mathrm{rank}_u + 2)`: the
    values :func:`ndcg_at_k` averages, for paired tests and confidence intervals."""
    k = _check_int("k", k)
    r = _ranks(ranks)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def mrr(ranks: np.ndarray, k: int | None = None) -> float:
    r"""Mean reciprocal rank, :math:`\frac{1}{|U|}\sum_u \frac{1}{\mathrm{rank}_u + 1}`
    (optionally 0 beyond ``k``, an integer >= 1)."""
    if k is not None:
        k = _check_int("k", k)
    r = _ranks(ranks)
    rr = 1.0 / (r + 1.0)
    if k is not None:
        rr = np.where(r < k, rr, 0.0)
    return float(np.mean(rr))


def auc_from_ranks(ranks: np.ndarray, n_candidates: int) -> float:
    r"""Per-user AUC of one positive among ``n_candidates - 1`` negatives, averaged:
    :math:`1 - \mathrm{rank}_u / (n_\text{candidates} - 1)` (ties already counted against).
    Every rank must be below ``n_candidates``."""
    n_candidates = _check_int("n_candidates", n_candidates, minimum=2)
    r = _ranks(ranks)
    if r.max() >= n_candidates:
        raise ValueError(f"a rank of {int(r.max())} is impossible among {n_candidates} candidates "
                         f"(ranks are 0-based, at most {n_candidates - 1})")
    return float(np.mean(1.0 - r / (n_candidates - 1)))


# ------------------------------------------------------ several relevant items per user
def _nonzero_cells(matrix: object, shape: tuple[int, int], name: str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the non-zero cells of a sparse or dense matrix of ``shape``
    (explicitly stored zeros do not count)."""
    m = sp.coo_array(matrix, copy=True)
    if m.shape != shape:
        raise ValueError(f"{name} has shape {m.shape}, scores {shape}: expected the same shape")
    m.sum_duplicates()
    keep = m.data != 0
    return m.row[keep], m.col[keep]


def top_k(scores: np.ndarray, k: int, exclude: sp.spmatrix | sp.sparray | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first (``(n_users, k)``).

    ``exclude`` (same shape as ``scores``, sparse or dense) marks with its non-zero cells the
    items that must not be recommended, typically the user's training interactions; they
    are never returned, even below items scored ``-inf``, and a row with fewer than ``k``
    items left is a ValueError. Ties are broken by the lower column index, also at the
    ``k``-th place (the order of a stable sort on the negated scores). ``+inf``/``-inf``
    scores rank first/last; NaN scores and ``k`` outside ``[1, n_items]`` are errors.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x items), got shape {scores.shape}")
    _no_nan("scores", scores)
    k = _check_int("k", k)
    if k > scores.shape[1]:
        raise ValueError(f"k must be in [1, {scores.shape[1]}] (the number of items), got {k}")
    n, m = scores.shape
    if exclude is not None:
        rows, cols = _nonzero_cells(exclude, scores.shape, "exclude")
        scores[rows, cols] = np.nan                       # below everything, -inf included
        left = m - np.bincount(rows, minlength=n)
        if (left < k).any():
            u = int(np.flatnonzero(left < k)[0])
            raise ValueError(f"row {u} has only {int(left[u])} items left after exclude, fewer than k={k}")
    if n == 0:
        return np.zeros((0, k), dtype=np.int64)
    # the k-th highest score of each row, then every higher item and the lowest-indexed ties
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]   # NaN (excluded) sorts last
    above = scores > kth[:, None]
    tied = scores == kth[:, None]
    need = k - above.sum(axis=1)
    chosen = above | (tied & (np.cumsum(tied, axis=1) <= need[:, None]))
    idx = np.nonzero(chosen)[1].reshape(n, k)              # ascending item index per row
    order = np.argsort(-np.take_along_axis(scores, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1)


def hits_matrix(recommended: np.ndarray, relevant: Sequence[set[int]] | sp.spmatrix | sp.sparray) -> np.ndarray:
    """Boolean ``(n_users, k)``: is the item at each list position relevant for that user?

    ``recommended`` holds non-negative item ids, distinct within a row (a list that repeats
    an item would count its hit twice). ``relevant`` is a list of item sets, or a sparse
    user x item matrix whose non-zeros are the relevant items (rows aligned with
    ``recommended``; ids must then be below its number of columns). A user without relevant
    items gets a row of ``False``.
    """
    recommended = _int_array("recommended", recommended, ndim=2)
    if recommended.size and recommended.min() < 0:
        raise ValueError(f"recommended holds item ids, which cannot be negative, found {int(recommended.min())}")
    srt = np.sort(recommended, axis=1)
    dup = srt[:, 1:] == srt[:, :-1]
    if dup.any():
        u, j = np.argwhere(dup)[0]
        raise ValueError(f"row {u} of recommended lists item {int(srt[u, j])} twice: expected distinct items per list")
    if sp.issparse(relevant):
        rel = sp.csr_array(relevant)
        if rel.shape[0] != recommended.shape[0]:
            raise ValueError(f"relevant and recommended must have one row per user, got {rel.shape[0]} "
                             f"and {recommended.shape[0]} rows")
        if recommended.size and recommended.max() >= rel.shape[1]:
            raise ValueError(f"recommended item {int(recommended.max())} is outside the catalogue of "
                             f"relevant ({rel.shape[1]} items)")
        rows = np.repeat(np.arange(recommended.shape[0]), recommended.shape[1])
        return (np.asarray(rel[rows, recommended.ravel()]).reshape(recommended.shape) != 0)
    if isinstance(relevant, (str, bytes)) or not hasattr(relevant, "__len__"):
        raise ValueError("relevant must be a list of item sets or a sparse user x item matrix")
    if len(relevant) != recommended.shape[0]:
        raise ValueError(f"relevant and recommended must have one row per user, got {len(relevant)} "
                         f"and {recommended.shape[0]} rows")
    sets = [r if isinstance(r, (set, frozenset)) else set(np.asarray(r).ravel().tolist()) for r in relevant]
    return np.array([[i in rel for i in row] for row, rel in zip(recommended.tolist(), sets)],
                    dtype=bool).reshape(recommended.shape)


def _hits(hits: np.ndarray) -> np.ndarray:
    hits = np.asarray(hits)
    if hits.ndim != 2 or hits.shape[0] == 0 or hits.shape[1] == 0:
        raise ValueError(f"hits must be a non-empty 2-D boolean matrix (users x k), got shape {hits.shape}")
    if hits.dtype != bool:
        if not (np.issubdtype(hits.dtype, np.number) and np.isin(hits, (0, 1)).all()):
            raise ValueError("hits must be boolean (or 0/1): one flag per list position "
                             "(use hits_matrix to build it from top-k lists)")
        hits = hits.astype(bool)
    return hits


def _n_rel(n_relevant: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Each user's number of relevant items, checked against the hits they imply."""
    n_users = h.shape[0]
    raw = np.asarray(n_relevant)
    if raw.ndim > 1 or raw.ndim == 1 and raw.shape != (n_users,):
        raise ValueError(f"n_relevant must be one number or one per user ({n_users}), got shape {raw.shape}")
    if np.issubdtype(raw.dtype, np.floating) and np.isnan(raw).any():
        raise ValueError("n_relevant contains NaN: expected each user's count of relevant items")
    n_rel = np.broadcast_to(_int_array("n_relevant", raw, ndim=None), (n_users,))
    if (n_rel <= 0).any():
        u = int(np.flatnonzero(n_rel <= 0)[0])
        raise ValueError(f"every evaluated user needs at least one relevant item; user row {u} has "
                         f"{int(n_rel[u])} (drop such users before evaluating)")
    n_hits = h.sum(axis=1)
    if (n_rel < n_hits).any():
        u = int(np.flatnonzero(n_rel < n_hits)[0])
        raise ValueError(f"user row {u} has {int(n_hits[u])} hits but n_relevant = {int(n_rel[u])}: "
                         "n_relevant must count all relevant items, at least the hits")
    return n_rel.astype(np.float64)


def precision_at_k(hits: np.ndarray) -> float:
    r"""Precision@k: :math:`\frac{1}{|U|}\sum_u \frac{|\mathrm{top}_k(u) \cap R_u|}{k}`."""
    h = _hits(hits)
    return float(np.mean(h.sum(axis=1) / h.shape[1]))


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    r"""Recall@k: :math:`\frac{1}{|U|}\sum_u \frac{|\mathrm{top}_k(u) \cap R_u|}{|R_u|}`
    (``n_relevant`` = :math:`|R_u|`, an integer >= 1 and >= the user's hits)."""
    h = _hits(hits)
    return float(np.mean(h.sum(axis=1) / _n_rel(n_relevant, h)))


def hit_rate_lists(hits: np.ndarray) -> float:
    r"""HR@k: share of users with at least one relevant item in their top-k list."""
    return float(np.mean(_hits(hits).any(axis=1)))


def ndcg_lists(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    r"""NDCG@k with binary relevance and log2 discount:

    .. math:: \mathrm{DCG@}k = \sum_{i=1}^{k} \frac{\mathrm{rel}_i}{\log_2(i+1)},\quad
              \mathrm{NDCG@}k = \frac{\mathrm{DCG@}k}{\mathrm{IDCG@}k},

    where IDCG@k places :math:`\min(|R_u|, k)` relevant items first.
    """
    h = _hits(hits)
    k = h.shape[1]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (h * disc).sum(axis=1)
    ideal_n = np.minimum(_n_rel(n_relevant, h), k).astype(int)
    idcg = np.cumsum(disc)[ideal_n - 1]
    return float(np.mean(dcg / idcg))


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    r"""MAP@k: mean over users of
    :math:`\mathrm{AP@}k = \frac{1}{\min(|R_u|, k)}\sum_{i=1}^{k} P@i \cdot \mathrm{rel}_i`."""
    h = _hits(hits)
    k = h.shape[1]
    prec_at_i = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    ap = (prec_at_i * h).sum(axis=1) / np.minimum(_n_rel(n_relevant, h), k)
    return float(np.mean(ap))


def mrr_lists(hits: np.ndarray) -> float:
    r"""MRR@k: mean of :math:`1/\text{(position of the first relevant item)}`, 0 if none."""
    h = _hits(hits)
    first = np.argmax(h, axis=1)
    return float(np.mean(np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)))
