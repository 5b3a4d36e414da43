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
All metrics return the mean over users as a Python ``float`` (:func:`ndcg_per_user` gives
the per-user values behind :func:`ndcg_at_k`; :func:`grouped_auc` averages AUC per user).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


# ----------------------------------------------------------------------------- ratings
def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    r"""Root mean squared error, :math:`\sqrt{\frac1n \sum_i (y_i - \hat y_i)^2}`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    r"""Mean absolute error, :math:`\frac1n \sum_i |y_i - \hat y_i|`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("empty input")
    return a, b


# ----------------------------------------------------------------------- classification
def auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    r"""Area under the ROC curve: the probability that a random positive scores above a
    random negative, ties counting one half (Mann-Whitney U):

    .. math:: \mathrm{AUC} = \frac{1}{|P||N|}\sum_{p\in P}\sum_{n\in N}
              \big([s_p > s_n] + \tfrac12 [s_p = s_n]\big)

    Computed from average ranks in :math:`O(n \log n)`; equals ``sklearn.metrics.roc_auc_score``.
    """
    y_true, y_score = _pair(y_true, y_score)
    pos = y_true > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative label")
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
    """
    groups = np.asarray(groups)
    y_true, y_score = _pair(y_true, y_score)
    if groups.shape != y_true.shape:
        raise ValueError(f"groups must have one entry per label, got {groups.shape} and {y_true.shape}")
    order = np.argsort(groups, kind="stable")
    _, starts = np.unique(groups[order], return_index=True)
    values = []
    for idx in np.split(order, starts[1:]):
        y = y_true[idx] > 0.5
        if 0 < y.sum() < len(y):
            values.append(auc(y, y_score[idx]))
    if not values:
        raise ValueError("no group has both a positive and a negative label")
    return float(np.mean(values)), len(values)


def log_loss(y_true: np.ndarray, p: np.ndarray, eps: float = 1e-7) -> float:
    r"""Binary cross-entropy of probabilities,
    :math:`-\frac1n\sum_i y_i\log p_i + (1-y_i)\log(1-p_i)` (``p`` clipped to ``[eps, 1-eps]``)."""
    y_true, p = _pair(y_true, p)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)))


# --------------------------------------------------------- one held-out item per user
def rank_of_target(scores: np.ndarray, target_col: int | np.ndarray = 0) -> np.ndarray:
    """0-based rank of each row's target among that row's scores (0 = best).

    ``scores`` has shape ``(n_users, n_candidates)``; ``target_col`` is the column of the
    held-out item (the same for all rows, or one per row). Ties count against the target:
    rank = number of candidates scoring ``>=`` the target, minus the target itself. NaN
    scores are an error.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x candidates), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN: the model diverged or an input was missing")
    cols = np.broadcast_to(np.asarray(target_col), (scores.shape[0],))
    target = scores[np.arange(scores.shape[0]), cols]
    return (scores >= target[:, None]).sum(axis=1) - 1


def _ranks(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1:
        raise ValueError(f"ranks must be 1-D (one per user), got shape {ranks.shape}")
    if ranks.size == 0:
        raise ValueError("no users to evaluate")
    if (ranks < 0).any():
        raise ValueError("ranks are 0-based and cannot be negative")
    return ranks


def hit_rate_at_k(ranks: np.ndarray, k: int = 10) -> float:
    r"""Share of users whose held-out item ranks in the top ``k``.

    ``ranks[u]`` is the 0-based position of user ``u``'s held-out item among its candidates
    (0 = best). :math:`\mathrm{HR@}k = \frac{1}{|U|}\sum_u [\mathrm{rank}_u < k]`.
    """
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
    r = _ranks(ranks)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def mrr(ranks: np.ndarray, k: int | None = None) -> float:
    r"""Mean reciprocal rank, :math:`\frac{1}{|U|}\sum_u \frac{1}{\mathrm{rank}_u + 1}`
    (optionally 0 beyond ``k``)."""
    r = _ranks(ranks)
    rr = 1.0 / (r + 1.0)
    if k is not None:
        rr = np.where(r < k, rr, 0.0)
    return float(np.mean(rr))


def auc_from_ranks(ranks: np.ndarray, n_candidates: int) -> float:
    r"""Per-user AUC of one positive among ``n_candidates - 1`` negatives, averaged:
    :math:`1 - \mathrm{rank}_u / (n_\text{candidates} - 1)` (ties already counted against)."""
    r = _ranks(ranks)
    if n_candidates < 2:
        raise ValueError("need at least one negative candidate")
    return float(np.mean(1.0 - r / (n_candidates - 1)))


# ------------------------------------------------------ several relevant items per user
def top_k(scores: np.ndarray, k: int, exclude: sp.spmatrix | sp.sparray | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first (``(n_users, k)``).

    ``exclude`` (same shape as ``scores``, sparse) marks items that must not be recommended,
    typically the user's training interactions; they are set to ``-inf`` first.
    Ties are broken by the lower column index (``np.argsort`` stable order).
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {scores.shape}")
    if not 0 < k <= scores.shape[1]:
        raise ValueError(f"k must be in [1, {scores.shape[1]}], got {k}")
    if exclude is not None:
        ex = sp.coo_array(exclude)
        if ex.shape != scores.shape:
            raise ValueError(f"exclude has shape {ex.shape}, scores {scores.shape}")
        scores[ex.row, ex.col] = -np.inf
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1)


def hits_matrix(recommended: np.ndarray, relevant: Sequence[set[int]] | sp.spmatrix | sp.sparray) -> np.ndarray:
    """Boolean ``(n_users, k)``: is the item at each list position relevant for that user?

    ``relevant`` is a list of item sets, or a sparse user x item matrix whose non-zeros are
    the relevant items (rows aligned with ``recommended``).
    """
    recommended = np.asarray(recommended)
    if sp.issparse(relevant):
        rel = sp.csr_array(relevant)
        if rel.shape[0] != recommended.shape[0]:
            raise ValueError("relevant and recommended must have one row per user")
        return np.take_along_axis(rel.toarray() != 0, recommended, axis=1)
    if len(relevant) != recommended.shape[0]:
        raise ValueError("relevant and recommended must have one row per user")
    return np.array([[i in rel for i in row] for row, rel in zip(recommended.tolist(), relevant)],
                    dtype=bool).reshape(recommended.shape)


def _hits(hits: np.ndarray) -> np.ndarray:
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2 or hits.shape[0] == 0:
        raise ValueError(f"hits must be a non-empty 2-D boolean matrix (users x k), got {hits.shape}")
    return hits


def _n_rel(n_relevant: np.ndarray, n_users: int) -> np.ndarray:
    n_rel = np.broadcast_to(np.asarray(n_relevant, dtype=np.float64), (n_users,))
    if (n_rel <= 0).any():
        raise ValueError("every evaluated user needs at least one relevant item")
    return n_rel


def precision_at_k(hits: np.ndarray) -> float:
    r"""Precision@k: :math:`\frac{1}{|U|}\sum_u \frac{|\mathrm{top}_k(u) \cap R_u|}{k}`."""
    h = _hits(hits)
    return float(np.mean(h.sum(axis=1) / h.shape[1]))


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    r"""Recall@k: :math:`\frac{1}{|U|}\sum_u \frac{|\mathrm{top}_k(u) \cap R_u|}{|R_u|}`."""
    h = _hits(hits)
    return float(np.mean(h.sum(axis=1) / _n_rel(n_relevant, h.shape[0])))


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
    ideal_n = np.minimum(_n_rel(n_relevant, h.shape[0]), k).astype(int)
    idcg = np.cumsum(disc)[ideal_n - 1]
    return float(np.mean(dcg / idcg))


def map_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> float:
    r"""MAP@k: mean over users of
    :math:`\mathrm{AP@}k = \frac{1}{\min(|R_u|, k)}\sum_{i=1}^{k} P@i \cdot \mathrm{rel}_i`."""
    h = _hits(hits)
    k = h.shape[1]
    prec_at_i = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    ap = (prec_at_i * h).sum(axis=1) / np.minimum(_n_rel(n_relevant, h.shape[0]), k)
    return float(np.mean(ap))


def mrr_lists(hits: np.ndarray) -> float:
    r"""MRR@k: mean of :math:`1/\text{(position of the first relevant item)}`, 0 if none."""
    h = _hits(hits)
    first = np.argmax(h, axis=1)
    return float(np.mean(np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)))
