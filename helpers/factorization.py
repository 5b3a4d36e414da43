r"""Matrix factorisation for explicit ratings in NumPy: the model with analytic gradients
(chapters 4, 5 and 7) and the classical fitters the neural models are compared with.

The model is biased matrix factorisation (Koren et al., 2009),

.. math:: \hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i ,

held by :class:`MatrixFactorization`. Trained by mini-batch SGD (:func:`sgd_mf`) it minimises

.. math:: J_B = \frac{1}{|B|}\sum_{(u,i,r)\in B}\big(r - \hat r_{ui}\big)^2
          + \frac{\lambda}{|B|}\sum_{(u,i,r)\in B}\big(\lVert p_u\rVert^2 + \lVert q_i\rVert^2
          + b_u^2 + b_i^2\big),

where every *occurrence* of a user or item in the batch is regularised (the weighted
:math:`\lambda` of ALS-WR, Zhou et al. 2008). :func:`als_mf` (alternating ridge regressions,
a per-user/per-item penalty, so a different objective) and :func:`svd_mf` (truncated SVD of
the baseline-filled rating matrix) are the non-neural references. The Keras versions of the
same model are in :mod:`helpers.mf`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from helpers.optim import SGD, minibatches

__all__ = ["MatrixFactorization", "sgd_mf", "als_mf", "svd_mf"]


# ----------------------------------------------------------------------------- the model
def _batch(users: np.ndarray, items: np.ndarray, dscore: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of (user, item, d loss / d score) as aligned 1-D arrays, or a ValueError."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    dscore = np.asarray(dscore, dtype=np.float64)
    if not users.shape == items.shape == dscore.shape or users.ndim != 1:
        raise ValueError(f"users, items and dscore must be 1-D of equal length, got "
                         f"{users.shape}, {items.shape}, {dscore.shape}")
    return users, items, dscore


@dataclass
class MatrixFactorization:
    r"""Biased matrix factorisation in NumPy (Koren et al., 2009):

    .. math:: \hat x_{ui} = \mu + b_u + b_i + p_u^\top q_i .

    ``mu`` is a constant offset (the global mean rating for explicit feedback, 0 for
    implicit); ``P`` (users x dim), ``Q`` (items x dim), ``b_user`` and ``b_item`` are the
    parameters, in that order in :attr:`params`.
    """

    P: np.ndarray
    Q: np.ndarray
    b_user: np.ndarray
    b_item: np.ndarray
    mu: float = 0.0

    @classmethod
    def init(cls, n_users: int, n_items: int, dim: int, rng: np.random.Generator,
             scale: float = 0.1, mu: float = 0.0) -> "MatrixFactorization":
        """Factors drawn from :math:`N(0, \\text{scale}^2)`, biases zero."""
        if min(n_users, n_items, dim) < 1:
            raise ValueError(f"n_users, n_items and dim must be >= 1, got {n_users}, {n_items}, {dim}")
        return cls(rng.normal(0.0, scale, (n_users, dim)), rng.normal(0.0, scale, (n_items, dim)),
                   np.zeros(n_users), np.zeros(n_items), float(mu))

    @property
    def params(self) -> list[np.ndarray]:
        return [self.P, self.Q, self.b_user, self.b_item]

    def copy(self) -> "MatrixFactorization":
        return MatrixFactorization(self.P.copy(), self.Q.copy(), self.b_user.copy(),
                                   self.b_item.copy(), self.mu)

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """:math:`\\hat x_{ui}` for each pair ``(users[k], items[k])``."""
        users = np.asarray(users)
        items = np.asarray(items)
        return (self.mu + self.b_user[users] + self.b_item[items]
                + np.einsum("ij,ij->i", self.P[users], self.Q[items]))

    def grads(self, users: np.ndarray, items: np.ndarray, dscore: np.ndarray, l2: float = 0.0
              ) -> list[np.ndarray]:
        r"""Gradients (dense, shaped like :attr:`params`) of the batch objective

        .. math:: J = \sum_k \delta_k\, \hat x_{u_k i_k} + \frac{\lambda}{n}\sum_k
                  \big(\lVert p_{u_k}\rVert^2 + \lVert q_{i_k}\rVert^2 + b_{u_k}^2 + b_{i_k}^2\big),

        where :math:`\delta_k` = ``dscore[k]`` is :math:`\partial(\text{data loss})/\partial
        \hat x_{u_k i_k}` (e.g. ``2 (x - r) / n`` for the mean squared error) and :math:`n` =
        ``len(users)``: each occurrence in the batch is regularised, so frequent users and
        items are shrunk more, as in classical SGD for MF.

        With :math:`D` the sparse users x items matrix holding :math:`\delta_k` at
        :math:`(u_k, i_k)` (duplicates summed), the data part is :math:`\nabla_P = D Q`,
        :math:`\nabla_Q = D^\top P`: two sparse-dense products, no Python loop.
        """
        users, items, dscore = _batch(users, items, dscore)
        n_u, n_i = len(self.b_user), len(self.b_item)
        d = sp.csr_array((dscore, (users, items)), shape=(n_u, n_i))
        g_p = d @ self.Q
        g_q = d.T @ self.P
        g_bu = np.bincount(users, weights=dscore, minlength=n_u)
        g_bi = np.bincount(items, weights=dscore, minlength=n_i)
        if l2:
            c = 2.0 * l2 / len(users)
            cu = np.bincount(users, minlength=n_u) * c
            ci = np.bincount(items, minlength=n_i) * c
            g_p += cu[:, None] * self.P
            g_q += ci[:, None] * self.Q
            g_bu += cu * self.b_user
            g_bi += ci * self.b_item
        return [g_p, g_q, g_bu, g_bi]

    def sparse_sgd_step(self, users: np.ndarray, items: np.ndarray, dscore: np.ndarray,
                        learning_rate: float, l2: float = 0.0) -> None:
        r"""One plain SGD step, :math:`\theta \leftarrow \theta - \eta\,\nabla J`, with :math:`J` as in
        :meth:`grads`, that touches only the rows of the users and items in the batch.

        Per occurrence :math:`k` (with :math:`c = 2\lambda/n`):
        :math:`p_{u_k} \mathrel{-}= \eta(\delta_k q_{i_k} + c\,p_{u_k})`,
        :math:`q_{i_k} \mathrel{-}= \eta(\delta_k p_{u_k} + c\,q_{i_k})`, and likewise for the
        biases, all computed from the parameters *before* the step and summed over repeated
        rows (``np.add.at``). Identical to ``SGD(learning_rate).step(params, grads(...))``,
        whose cost grows with the size of the whole model; this one's grows with the batch.
        (Only SGD has this property: momentum and Adam also move rows whose gradient is zero,
        through their state, unless implemented "lazily".)
        """
        users, items, dscore = _batch(users, items, dscore)
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        c = 2.0 * l2 / len(users)
        pu, qi = self.P[users], self.Q[items]
        bu, bi = self.b_user[users], self.b_item[items]
        np.add.at(self.P, users, -learning_rate * (dscore[:, None] * qi + c * pu))
        np.add.at(self.Q, items, -learning_rate * (dscore[:, None] * pu + c * qi))
        np.add.at(self.b_user, users, -learning_rate * (dscore + c * bu))
        np.add.at(self.b_item, items, -learning_rate * (dscore + c * bi))


# ----------------------------------------------------------------------------- checks
def _triples(users: np.ndarray, items: np.ndarray, ratings: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if users.ndim != 1 or users.shape != items.shape or len(users) == 0:
        raise ValueError(f"users and items must be non-empty 1-D arrays of equal length, got "
                         f"shapes {users.shape} and {items.shape}")
    if ratings is not None:
        ratings = np.asarray(ratings, dtype=np.float64)
        if ratings.shape != users.shape:
            raise ValueError(f"ratings must have one value per (user, item) pair: got shape "
                             f"{ratings.shape} for {len(users)} pairs")
        if not np.isfinite(ratings).all():
            raise ValueError("ratings contain NaN or inf")
    return users, items, ratings


def _check_ids(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> None:
    if int(n_users) < 1 or int(n_items) < 1:
        raise ValueError(f"n_users and n_items must be >= 1, got {n_users} and {n_items}")
    if users.min() < 0 or users.max() >= n_users:
        raise ValueError(f"user indices must lie in [0, {n_users}), got [{users.min()}, {users.max()}];"
                         " encode raw ids first (helpers.encoding.encode_ids)")
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"item indices must lie in [0, {n_items}), got [{items.min()}, {items.max()}];"
                         " encode raw ids first (helpers.encoding.encode_ids)")


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, np.float64) - np.asarray(p, np.float64)) ** 2)))


# ----------------------------------------------------------------------------- NumPy
def sgd_mf(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
           *, dim: int = 32, l2: float = 0.05, learning_rate: float = 20.0, epochs: int = 10,
           batch_size: int = 1024, init_std: float = 0.1, seed: int = 0,
           val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
           ) -> tuple[MatrixFactorization, dict[str, list[float]]]:
    r"""Biased MF by plain mini-batch SGD in NumPy: for each shuffled batch :math:`B`,
    :math:`\theta \leftarrow \theta - \eta\,\nabla_\theta J_B` (objective in the module
    docstring), starting from :math:`\mu` = mean training rating, zero biases and
    :math:`N(0, \text{init\_std}^2)` factors.

    The learning rate looks large because :math:`J_B` averages over the batch: a user seen
    once in a batch of 1,024 receives 1/1,024 of a per-rating gradient, so
    :math:`\eta = 20` here is a per-rating step of about 0.02. Returns the model and
    ``{"train RMSE": [...], "val RMSE": [...]}`` per epoch (``val RMSE`` only with ``val``;
    training RMSE is measured during the epoch, on the fly).
    """
    users, items, ratings = _triples(users, items, ratings)
    _check_ids(users, items, n_users, n_items)
    if epochs < 1 or batch_size < 1 or dim < 1:
        raise ValueError(f"epochs, batch_size and dim must be >= 1, got {epochs}, {batch_size}, {dim}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    rng = np.random.default_rng(seed)
    mf = MatrixFactorization.init(n_users, n_items, dim, rng, scale=init_std, mu=float(ratings.mean()))
    opt = SGD(learning_rate)
    hist: dict[str, list[float]] = {"train RMSE": []}
    if val is not None:
        vu, vi, vr = _triples(*val)
        hist["val RMSE"] = []
    for _ in range(epochs):
        sq = 0.0
        for b in minibatches(len(ratings), batch_size, rng):
            s = mf.score(users[b], items[b])
            err = s - ratings[b]
            sq += float(err @ err)
            opt.step(mf.params, mf.grads(users[b], items[b], 2.0 * err / len(b), l2))
        if not np.isfinite(sq):
            raise FloatingPointError("the SGD run diverged: lower learning_rate")
        hist["train RMSE"].append(float(np.sqrt(sq / len(ratings))))
        if val is not None:
            hist["val RMSE"].append(_rmse(vr, np.clip(mf.score(vu, vi), 1, 5)))
    return mf, hist


def als_mf(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
           *, dim: int = 10, l2: float = 10.0, n_iter: int = 15, init_std: float = 0.1,
           seed: int = 0) -> MatrixFactorization:
    r"""Classical biased MF by alternating least squares, :math:`\mu` fixed at the mean:

    .. math:: \min \sum_{(u,i)} (r_{ui} - \mu - b_u - b_i - p_u^\top q_i)^2
              + \lambda\Big(\sum_u \lVert p_u\rVert^2 + b_u^2 + \sum_i \lVert q_i\rVert^2 + b_i^2\Big).

    With the items fixed, each user's :math:`(p_u, b_u)` is a ridge regression on the design
    :math:`[q_i, 1]_{i \in I_u}` with target :math:`r_{ui} - \mu - b_i`, solved in closed form,
    all users at once (a batched ``solve``); then the same for the items, and so on for
    ``n_iter`` rounds: each step is exact, the whole is iterative. Note the penalty is per
    user/item here (``l2`` of order 10), not per rating as in :func:`sgd_mf`, so this is a
    different objective from :math:`J_B`: it shrinks users and items with few ratings more.
    """
    users, items, ratings = _triples(users, items, ratings)
    _check_ids(users, items, n_users, n_items)
    if l2 <= 0 or dim < 1 or n_iter < 1:
        raise ValueError(f"need l2 > 0, dim >= 1 and n_iter >= 1; got {l2}, {dim}, {n_iter}")
    rng = np.random.default_rng(seed)
    mf = MatrixFactorization.init(n_users, n_items, dim, rng, scale=init_std, mu=float(ratings.mean()))
    eye = np.eye(dim + 1)
    # each entity's ratings as one contiguous slice (CSR order): its Gram matrix is then one
    # BLAS product X_u^T X_u, which is far faster than summing outer products at d = 128
    by_user, by_item = np.argsort(users, kind="stable"), np.argsort(items, kind="stable")
    user_ptr = np.r_[0, np.cumsum(np.bincount(users, minlength=n_users))]
    item_ptr = np.r_[0, np.cumsum(np.bincount(items, minlength=n_items))]

    def solve(order: np.ndarray, ptr: np.ndarray, cols: np.ndarray, other: np.ndarray,
              other_bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        design = np.hstack([other, np.ones((len(other), 1))])[cols[order]]   # rows of x_j = [q_j, 1]
        target = (ratings - mf.mu - other_bias[cols])[order]
        n = len(ptr) - 1
        gram = np.broadcast_to(l2 * eye, (n, dim + 1, dim + 1)).copy()        # sum x x^T + l2 I
        rhs = np.zeros((n, dim + 1))
        for k in np.flatnonzero(np.diff(ptr)):
            x = design[ptr[k]:ptr[k + 1]]
            gram[k] += x.T @ x
            rhs[k] = target[ptr[k]:ptr[k + 1]] @ x
        sol = np.linalg.solve(gram, rhs[..., None])[..., 0]
        return sol[:, :dim], sol[:, dim]

    # one BLAS thread: thousands of tiny products and solves drown in thread start-up
    # otherwise (d = 128 on a busy 2-core machine: 100 times slower)
    with threadpool_limits(1, "blas"):
        for _ in range(n_iter):
            mf.P, mf.b_user = solve(by_user, user_ptr, items, mf.Q, mf.b_item)
            mf.Q, mf.b_item = solve(by_item, item_ptr, users, mf.P, mf.b_user)
    return mf


def svd_mf(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
           *, dim: int = 10, reg_user: float = 15.0, reg_item: float = 10.0) -> MatrixFactorization:
    r"""The textbook "SVD" recommender (Sarwar et al., 2000): fill every missing entry of the
    rating matrix with the biased baseline :math:`\mu + b_u + b_i`
    (:func:`helpers.baselines.fit_biases`), and keep the best rank-``dim`` approximation of
    the residual matrix :math:`Z = U \Sigma V^\top`:
    :math:`p_u = U_{u,:k}\Sigma_k^{1/2}`, :math:`q_i = V_{i,:k}\Sigma_k^{1/2}`.

    Filled entries have zero residual, so :math:`Z` is sparse and ``scipy.sparse.linalg.svds``
    factorises it directly. Exact, but it treats the guessed entries as observed, which is why
    learned MF beats it.
    """
    from scipy.sparse.linalg import svds

    from helpers.baselines import fit_biases

    users, items, ratings = _triples(users, items, ratings)
    _check_ids(users, items, n_users, n_items)
    if not 1 <= dim < min(n_users, n_items):
        raise ValueError(f"dim must be in [1, {min(n_users, n_items) - 1}], got {dim}")
    mu, bu, bi = fit_biases(users, items, ratings, n_users, n_items, reg_user=reg_user, reg_item=reg_item)
    resid = sp.csr_array((ratings - mu - bu[users] - bi[items], (users, items)), shape=(n_users, n_items))
    u, s, vt = svds(resid, k=dim, random_state=0)
    root = np.sqrt(s)
    return MatrixFactorization(u * root, vt.T * root, bu, bi, mu)
