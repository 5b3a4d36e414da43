"""Vectorised negative sampling for implicit feedback.

Implicit data only records what users did; a model trained on positives alone learns to
say "yes" to everything. Negative sampling draws, for each positive, items the user has
*not* interacted with. Done item by item in a Python loop it is the bottleneck of a training
epoch; here every draw is one NumPy call: draw all candidates at once, find collisions with
positives by binary search on sorted ``user * n_items + item`` keys, and redraw only those.
"""
from __future__ import annotations

import numpy as np

from helpers.metrics import _check_int, _int_array


class NegativeSampler:
    """Draws items each user has not interacted with.

    Build it once from the positive pairs (``users[i]`` interacted with ``items[i]``); then
    :meth:`sample` as often as needed, e.g. once per epoch. Negatives are drawn uniformly
    from the catalogue (or with probabilities ``p``, e.g. proportional to popularity) and
    rejected when they collide with a positive, so each returned item is a true non-positive.
    """

    DENSE_LIMIT = 64_000_000

    def __init__(self, users: np.ndarray, items: np.ndarray, n_items: int):
        n_items = _check_int("n_items", n_items)
        users = _int_array("users", users)
        items = _int_array("items", items)
        if users.shape != items.shape:
            raise ValueError(f"users and items must be 1-D of equal length, got {users.shape} and {items.shape}")
        if len(items) and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"item indices must lie in [0, {n_items}), got values in [{items.min()}, "
                             f"{items.max()}]; encode ids first (helpers.encoding)")
        if len(users) and users.min() < 0:
            raise ValueError(f"user indices cannot be negative, found {users.min()}; encode ids first "
                             "(helpers.encoding)")
        self.n_items = int(n_items)
        self._keys = np.unique(users * self.n_items + items)
        self._n_pos = np.bincount(self._keys // self.n_items)  # distinct positives per user
        # A dense user x item bit table makes each membership test one memory read; it is
        # used while it stays small (<= 64 MB), binary search on the sorted keys otherwise.
        n_cells = len(self._n_pos) * self.n_items
        self._dense = None
        if 0 < n_cells <= self.DENSE_LIMIT:
            self._dense = np.zeros(n_cells, dtype=bool)
            self._dense[self._keys] = True

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array: was ``(users[i], items[i])`` a positive pair?

        ``users`` and ``items`` have the same shape; users are ``>= 0`` (users never seen
        have no positives) and items lie in ``[0, n_items)``."""
        users = _int_array("users", users, ndim=None)
        items = _int_array("items", items, ndim=None)
        if users.shape != items.shape:
            raise ValueError(f"users and items must have the same shape, got {users.shape} and {items.shape}")
        if users.size and users.min() < 0:
            raise ValueError(f"user indices cannot be negative, found {users.min()}")
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(f"item indices must lie in [0, {self.n_items}), got values in "
                             f"[{items.min()}, {items.max()}]")
        return self._is_positive(users, items)

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        if self._dense is not None:
            inside = users < len(self._n_pos)
            if inside.all():
                return self._dense[keys]
            out = np.zeros(keys.shape, dtype=bool)
            out[inside] = self._dense[keys[inside]]
            return out
        idx = np.searchsorted(self._keys, keys)
        idx = np.minimum(idx, len(self._keys) - 1)
        return self._keys[idx] == keys if len(self._keys) else np.zeros(keys.shape, bool)

    def sample(self, users: np.ndarray, n: int = 1, rng: np.random.Generator | int | None = None,
               p: np.ndarray | None = None, max_rounds: int = 20) -> np.ndarray:
        """Return an int64 array of shape ``(len(users), n)`` of non-positive items.

        ``rng`` is a ``Generator`` or a seed (same seed, same negatives). Negatives for one
        user may repeat (sampling with replacement, as in NCF's training loop). ``n`` is an
        integer ``>= 0``; ``p`` (optional) is a probability vector over the ``n_items`` items.
        A user with no non-positive item (of positive probability, with ``p``) is a ValueError.
        """
        users = _int_array("users", users)
        n = _check_int("n", n, minimum=0)
        max_rounds = _check_int("max_rounds", max_rounds, minimum=0)
        if users.size and users.min() < 0:
            raise ValueError(f"user indices cannot be negative, found {users.min()}")
        rng = np.random.default_rng(rng)
        if p is not None:
            p = _check_probabilities(p, self.n_items)
            cdf = np.cumsum(p)
            cdf /= cdf[-1]
        known = users[users < len(self._n_pos)]
        if (self._n_pos[known] >= self.n_items).any():
            u = int(known[self._n_pos[known] >= self.n_items][0])
            raise ValueError(f"some users interacted with every item (e.g. user {u}): no negatives exist for them")

        def draw(size: int) -> np.ndarray:
            if p is None:
                return rng.integers(0, self.n_items, size=size)
            return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), self.n_items - 1)

        out = draw(len(users) * n).reshape(len(users), n)
        u = np.repeat(users, n).reshape(len(users), n)
        bad = self._is_positive(u, out)
        for _ in range(max_rounds):
            if not bad.any():
                return out
            out[bad] = draw(int(bad.sum()))
            bad[bad] = self._is_positive(u[bad], out[bad])
        # Users with very few non-positives: draw the rest exactly from their complement.
        for user in np.unique(u[bad]):
            rows = bad & (u == user)
            allowed = self.unseen_items(int(user))
            w = None
            if p is not None:
                if p[allowed].sum() <= 0:
                    raise ValueError(f"user {int(user)} has no non-positive item with p > 0: "
                                     "cannot draw a negative for them")
                w = p[allowed] / p[allowed].sum()
            out[rows] = rng.choice(allowed, size=int(rows.sum()), p=w)
        return out

    def unseen_items(self, user: int) -> np.ndarray:
        """Sorted items ``user`` never interacted with (all items for an unseen user)."""
        user = _check_int("user", user, minimum=0)
        lo, hi = np.searchsorted(self._keys, [user * self.n_items, (user + 1) * self.n_items])
        return np.setdiff1d(np.arange(self.n_items), self._keys[lo:hi] - user * self.n_items)

    def n_unseen(self, users: np.ndarray, p: np.ndarray | None = None) -> np.ndarray:
        """How many items each user never interacted with; with ``p``, only items of
        positive probability count (the ones :meth:`sample` can draw)."""
        users = _int_array("users", users)
        if users.size and users.min() < 0:
            raise ValueError(f"user indices cannot be negative, found {users.min()}")
        n_known = len(self._n_pos)
        if p is None:
            n_pos, total = self._n_pos, self.n_items
        else:
            p = _check_probabilities(p, self.n_items)
            drawable = p[self._keys % self.n_items] > 0
            n_pos = np.bincount(self._keys[drawable] // self.n_items, minlength=n_known)
            total = int((p > 0).sum())
        out = np.full(len(users), total, dtype=np.int64)
        inside = users < n_known
        out[inside] -= n_pos[users[inside]]
        return out


def _check_probabilities(p: np.ndarray, n_items: int) -> np.ndarray:
    """``p`` as a float64 probability vector of length ``n_items`` (non-negative, finite,
    summing to 1 within ``np.isclose``), or a ValueError saying what is wrong."""
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (n_items,):
        raise ValueError(f"p must be a probability vector of length n_items={n_items}, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.isclose(p.sum(), 1):
        raise ValueError("p must be a probability vector of length n_items: finite, non-negative, "
                         f"summing to 1 (sum is {p.sum()!r})")
    return p


def sample_negatives(pos_users: np.ndarray, pos_items: np.ndarray, n_items: int,
                     users: np.ndarray | None = None, n: int = 1, seed: int | None = 0,
                     p: np.ndarray | None = None) -> np.ndarray:
    """One-shot form of :class:`NegativeSampler`: ``n`` negatives for each entry of ``users``
    (default: one row per positive pair, i.e. ``users = pos_users``)."""
    sampler = NegativeSampler(pos_users, pos_items, n_items)
    return sampler.sample(pos_users if users is None else users, n=n, rng=seed, p=p)
