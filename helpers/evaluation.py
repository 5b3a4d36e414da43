"""Candidate generation and evaluation loops for top-N recommendation.

Two protocols, both with one held-out item per user:

* **sampled**: the held-out item is ranked among ``n_neg`` items the user never interacted
  with, drawn once with a fixed seed (NCF's protocol, 99 negatives);
* **full ranking**: it is ranked among *all* items the user has not interacted with in
  training (Krichene & Rendle, 2020, show that sampled metrics can reorder models).

Models enter through a scoring function, so NumPy baselines and Keras models are evaluated
by the same code on exactly the same candidates.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import scipy.sparse as sp

from helpers import metrics
from helpers.sampling import NegativeSampler


def interaction_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                       values: np.ndarray | None = None) -> sp.csr_array:
    """Sparse ``n_users x n_items`` matrix with a 1 (or ``values``) per interaction
    (duplicates are summed)."""
    users = np.asarray(users)
    items = np.asarray(items)
    vals = np.ones(len(users), dtype=np.float32) if values is None else np.asarray(values, np.float32)
    return sp.csr_array((vals, (users, items)), shape=(n_users, n_items))


def sample_candidates(known_users: np.ndarray, known_items: np.ndarray, n_items: int,
                      test_users: np.ndarray, test_items: np.ndarray, n_neg: int = 99,
                      seed: int = 0, p: np.ndarray | None = None) -> np.ndarray:
    """Candidate lists ``(len(test_users), 1 + n_neg)``: column 0 is the held-out item,
    the rest are ``n_neg`` *distinct* items the user never interacted with.

    ``known_users/known_items`` must list every interaction of the users (train, validation
    and test), so that no negative is a hidden positive. Negatives are uniform, or drawn
    with probability proportional to ``p`` (e.g. item popularity, for harder candidates)
    among the items not yet in the row: a duplicate is redrawn from ``p`` until the row is
    distinct.
    """
    test_users = np.asarray(test_users, dtype=np.int64)
    sampler = NegativeSampler(known_users, known_items, n_items)
    if not sampler.is_positive(test_users, test_items).all():
        raise ValueError("every (test user, test item) pair must be among the known interactions")
    rng = np.random.default_rng(seed)
    neg = sampler.sample(test_users, n_neg, rng=rng, p=p)
    for _ in range(1000):  # redraw duplicates within a row until all rows are distinct
        order = np.argsort(neg, axis=1, kind="stable")
        srt = np.take_along_axis(neg, order, axis=1)
        dup_sorted = np.zeros_like(neg, dtype=bool)
        dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
        if not dup_sorted.any():
            break
        dup = np.zeros_like(dup_sorted)
        np.put_along_axis(dup, order, dup_sorted, axis=1)
        rows = np.nonzero(dup)[0]
        neg[dup] = sampler.sample(test_users[rows], 1, rng=rng, p=p)[:, 0]
    else:  # pragma: no cover
        raise RuntimeError("could not draw distinct negatives; n_neg is too large for some users")
    return np.column_stack([np.asarray(test_items, dtype=np.int64), neg])


def ranking_report(ranks: np.ndarray, ks: Iterable[int] = (10,)) -> dict[str, float]:
    """HR@k and NDCG@k for each ``k``, plus MRR, from the 0-based ranks of held-out items."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = metrics.hit_rate_at_k(ranks, k)
        out[f"NDCG@{k}"] = metrics.ndcg_at_k(ranks, k)
    out["MRR"] = metrics.mrr(ranks)
    return out


def sampled_ranks(score_pairs: Callable[[np.ndarray, np.ndarray], np.ndarray],
                  users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Per-user 0-based rank of each user's column-0 item among its candidates (ties count
    against it); for paired tests between models on the same users.

    ``score_pairs(users, items)`` returns one score per (user, item) pair (1-D arrays of
    equal length); it is called once with all pairs flattened.
    """
    users = np.asarray(users)
    n, c = candidates.shape
    if len(users) != n:
        raise ValueError(f"one candidate row per user: {len(users)} users, {n} rows")
    scores = np.asarray(score_pairs(np.repeat(users, c), candidates.ravel()), dtype=np.float64)
    if scores.shape != (n * c,):
        raise ValueError(f"score_pairs must return {n * c} scores, got shape {scores.shape}")
    return metrics.rank_of_target(scores.reshape(n, c), 0)


def evaluate_sampled(score_pairs: Callable[[np.ndarray, np.ndarray], np.ndarray],
                     users: np.ndarray, candidates: np.ndarray, ks: Iterable[int] = (10,)
                     ) -> dict[str, float]:
    """HR@k, NDCG@k and MRR of each user's column-0 item ranked among its candidates
    (see :func:`sampled_ranks`)."""
    return ranking_report(sampled_ranks(score_pairs, users, candidates), ks)


def full_ranks(scores: np.ndarray, targets: np.ndarray, exclude: sp.csr_array | None) -> np.ndarray:
    """0-based rank of ``targets[u]`` in row ``u`` of ``scores`` (users x all items), after
    removing the items in ``exclude`` (the user's training interactions). Ties count against."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    targets = np.asarray(targets)
    rows = np.arange(len(targets))
    if exclude is not None:
        ex = sp.coo_array(exclude)
        if ex.shape != scores.shape:
            raise ValueError(f"exclude has shape {ex.shape}, scores {scores.shape}")
        if np.asarray(sp.csr_array(exclude)[rows, targets]).ravel().any():
            raise ValueError("a held-out item is also in the excluded (training) items")
        scores[ex.row, ex.col] = -np.inf
    return metrics.rank_of_target(scores, targets)


def evaluate_full(score_users: Callable[[np.ndarray], np.ndarray], users: np.ndarray,
                  targets: np.ndarray, train: sp.csr_array, ks: Iterable[int] = (10,),
                  batch_size: int = 1024) -> dict[str, float]:
    """Rank each held-out item among all items not in the user's training interactions.

    ``score_users(users)`` returns a ``(len(users), n_items)`` score matrix; it is called
    in batches of ``batch_size`` users.
    """
    users = np.asarray(users)
    targets = np.asarray(targets)
    ranks = np.empty(len(users), dtype=np.int64)
    for s in range(0, len(users), batch_size):
        u = users[s:s + batch_size]
        ranks[s:s + batch_size] = full_ranks(score_users(u), targets[s:s + batch_size], train[u])
    return ranking_report(ranks, ks)
