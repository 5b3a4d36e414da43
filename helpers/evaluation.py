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
from helpers.metrics import _check_int, _int_array
from helpers.encoding import interaction_matrix  # noqa: F401  (re-exported: chapters import it from here)
from helpers.sampling import NegativeSampler, _check_probabilities


def sample_candidates(known_users: np.ndarray, known_items: np.ndarray, n_items: int,
                      test_users: np.ndarray, test_items: np.ndarray, n_neg: int = 99,
                      seed: int = 0, p: np.ndarray | None = None) -> np.ndarray:
    """Candidate lists ``(len(test_users), 1 + n_neg)``: column 0 is the held-out item,
    the rest are ``n_neg`` *distinct* items the user never interacted with.

    ``known_users/known_items`` must list every interaction of the users (train, validation
    and test), so that no negative is a hidden positive. Negatives are uniform, or drawn
    with probability proportional to ``p`` (e.g. item popularity, for harder candidates)
    among the items not yet in the row: all ``n_neg`` are drawn at once, then a duplicate
    is redrawn from ``p`` until the row is distinct. Should that not settle within 1000
    rounds (a user with barely ``n_neg`` unseen items, or a rare item still missing), the
    remaining duplicates are replaced by one exact draw without replacement from the
    user's unseen items not yet in the row (weighted by ``p``). The same seed gives the
    same candidates.

    A request that cannot be met -- a user with fewer than ``n_neg`` unseen items (of
    positive probability, with ``p``) -- is a ValueError naming the user and the counts,
    raised before anything is drawn; so is a (test user, test item) pair that is not
    among the known interactions.
    """
    known_users = _int_array("known_users", known_users)
    known_items = _int_array("known_items", known_items)
    test_users = _int_array("test_users", test_users)
    test_items = _int_array("test_items", test_items)
    n_neg = _check_int("n_neg", n_neg)
    if test_users.shape != test_items.shape:
        raise ValueError(f"test_users and test_items must have equal length, got {test_users.shape} "
                         f"and {test_items.shape}")
    sampler = NegativeSampler(known_users, known_items, n_items)
    if p is not None:
        p = _check_probabilities(p, sampler.n_items)
    if test_items.size and (test_items.min() < 0 or test_items.max() >= sampler.n_items):
        raise ValueError(f"test_items must lie in [0, {sampler.n_items}), got values in "
                         f"[{test_items.min()}, {test_items.max()}]")
    is_pos = sampler.is_positive(test_users, test_items)
    if not is_pos.all():
        j = int(np.flatnonzero(~is_pos)[0])
        raise ValueError("every (test user, test item) pair must be among the known interactions; "
                         f"(user {test_users[j]}, item {test_items[j]}) is not")
    available = sampler.n_unseen(test_users, p)
    if (available < n_neg).any():
        j = int(np.flatnonzero(available < n_neg)[0])
        what = "unseen items with p > 0" if p is not None else "unseen items"
        raise ValueError(f"user {test_users[j]} has only {available[j]} {what} but n_neg={n_neg} distinct "
                         f"negatives were requested ({int((available < n_neg).sum())} users are short); "
                         f"lower n_neg to at most {int(available.min())}")
    rng = np.random.default_rng(seed)
    neg = sampler.sample(test_users, n_neg, rng=rng, p=p)
    for _ in range(1000):  # redraw duplicates within a row until all rows are distinct
        dup = _later_duplicates(neg)
        if not dup.any():
            break
        rows = np.nonzero(dup)[0]
        neg[dup] = sampler.sample(test_users[rows], 1, rng=rng, p=p)[:, 0]
    else:  # slow to settle: fill the remaining duplicates exactly, without replacement
        dup = _later_duplicates(neg)
        for r in np.unique(np.nonzero(dup)[0]):
            allowed = np.setdiff1d(sampler.unseen_items(int(test_users[r])), neg[r, ~dup[r]])
            w = None
            if p is not None:
                allowed = allowed[p[allowed] > 0]
                w = p[allowed] / p[allowed].sum()
            neg[r, dup[r]] = rng.choice(allowed, size=int(dup[r].sum()), replace=False, p=w)
    return np.column_stack([test_items, neg])


def _later_duplicates(a: np.ndarray) -> np.ndarray:
    """Boolean mask of entries that repeat an earlier entry of their row."""
    order = np.argsort(a, axis=1, kind="stable")
    srt = np.take_along_axis(a, order, axis=1)
    dup_sorted = np.zeros(a.shape, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.zeros_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    return dup


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
    candidates = np.asarray(candidates)
    if users.ndim != 1:
        raise ValueError(f"users must be 1-D (one per candidate row), got shape {users.shape}")
    if candidates.ndim != 2:
        raise ValueError(f"candidates must be 2-D (users x candidates), got shape {candidates.shape}")
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
    """0-based rank of ``targets[u]`` in row ``u`` of ``scores`` (users x all items), among
    the items not in ``exclude`` (non-zero cells: the user's training interactions).

    Ties count against the target; excluded items never count, whatever their score (a
    target scored ``-inf`` ranks behind the other allowed items, not behind the excluded
    ones). ``targets`` holds one item id in ``[0, n_items)`` per row; a target that is
    excluded, or a NaN score of an item that is not excluded, is a ValueError.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x items), got shape {scores.shape}")
    targets = _int_array("targets", targets)
    if targets.shape != (scores.shape[0],):
        raise ValueError(f"targets must hold one item per row of scores ({scores.shape[0]}), got shape "
                         f"{targets.shape}")
    if targets.size and (targets.min() < 0 or targets.max() >= scores.shape[1]):
        raise ValueError(f"targets must lie in [0, {scores.shape[1]}), got values in [{targets.min()}, "
                         f"{targets.max()}]")
    rows = np.arange(len(targets))
    excluded = np.zeros(scores.shape, dtype=bool)
    if exclude is not None:
        ex_rows, ex_cols = metrics._nonzero_cells(exclude, scores.shape, "exclude")
        excluded[ex_rows, ex_cols] = True
        if excluded[rows, targets].any():
            u = int(np.flatnonzero(excluded[rows, targets])[0])
            raise ValueError(f"a held-out item is also in the excluded (training) items: row {u}, item "
                             f"{targets[u]}")
        scores[excluded] = -np.inf
    metrics._no_nan("scores", scores)
    target = scores[rows, targets]
    beats = scores >= target[:, None]
    beats[excluded] = False
    return beats.sum(axis=1) - 1


def evaluate_full(score_users: Callable[[np.ndarray], np.ndarray], users: np.ndarray,
                  targets: np.ndarray, train: sp.csr_array, ks: Iterable[int] = (10,),
                  batch_size: int = 1024) -> dict[str, float]:
    """Rank each held-out item among all items not in the user's training interactions.

    ``score_users(users)`` returns a ``(len(users), n_items)`` score matrix; it is called
    in batches of ``batch_size`` users (an integer >= 1). ``users`` index rows of ``train``;
    a score matrix of another shape is a ValueError. Ranks as in :func:`full_ranks`.
    """
    users = _int_array("users", users)
    targets = _int_array("targets", targets)
    batch_size = _check_int("batch_size", batch_size)
    if users.shape != targets.shape:
        raise ValueError(f"users and targets must have equal length, got {users.shape} and {targets.shape}")
    train = sp.csr_array(train)
    if users.size and (users.min() < 0 or users.max() >= train.shape[0]):
        raise ValueError(f"users must lie in [0, {train.shape[0]}) (rows of train), got values in "
                         f"[{users.min()}, {users.max()}]")
    ranks = np.empty(len(users), dtype=np.int64)
    for s in range(0, len(users), batch_size):
        u = users[s:s + batch_size]
        scores = np.asarray(score_users(u))
        if scores.shape != (len(u), train.shape[1]):
            raise ValueError(f"score_users must return a ({len(u)}, {train.shape[1]}) matrix (users x all "
                             f"items), got shape {scores.shape}")
        ranks[s:s + batch_size] = full_ranks(scores, targets[s:s + batch_size], train[u])
    return ranking_report(ranks, ks)
