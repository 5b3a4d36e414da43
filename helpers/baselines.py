"""Honest baselines, NumPy/SciPy only: what every neural model must beat.

* :func:`popularity_scores` -- how many users interacted with each item;
* :func:`damped_mean_scores` -- mean rating shrunk towards the global mean;
* :func:`fit_biases` -- the biased baseline :math:`\\hat r_{ui} = \\mu + b_u + b_i`;
* :func:`item_knn` -- item-item cosine similarity;
* :func:`ease` -- Steck's closed-form linear autoencoder (EASE, WWW 2019).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def popularity_scores(train: sp.csr_array | sp.spmatrix) -> np.ndarray:
    """Number of distinct users who interacted with each item (length ``n_items``)."""
    x = sp.csr_array(train)
    return np.asarray((x != 0).sum(axis=0), dtype=np.float64).ravel()


def damped_mean_scores(items: np.ndarray, ratings: np.ndarray, n_items: int,
                       damping: float = 10.0) -> np.ndarray:
    r"""Mean rating per item shrunk towards the global mean :math:`\mu`:

    .. math:: s_i = \frac{\sum_{u \in U_i} r_{ui} + \beta\,\mu}{|U_i| + \beta}

    With :math:`\beta = 0` a film rated 5 by a single user tops the chart; :math:`\beta`
    acts like :math:`\beta` extra ratings at the global mean.
    """
    if damping < 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    items = np.asarray(items)
    ratings = np.asarray(ratings, dtype=np.float64)
    mu = ratings.mean()
    s = np.bincount(items, weights=ratings, minlength=n_items)
    c = np.bincount(items, minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (s + damping * mu) / (c + damping)
    return np.where(c + damping > 0, out, mu)


def fit_biases(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int,
               n_items: int, reg_user: float = 15.0, reg_item: float = 10.0, n_iter: int = 10
               ) -> tuple[float, np.ndarray, np.ndarray]:
    r"""Biased baseline :math:`\hat r_{ui} = \mu + b_u + b_i` by alternating ridge updates

    .. math:: b_i = \frac{\sum_{u \in U_i}(r_{ui} - \mu - b_u)}{\lambda_i + |U_i|},\quad
              b_u = \frac{\sum_{i \in I_u}(r_{ui} - \mu - b_i)}{\lambda_u + |I_u|}

    (Koren, 2010). Returns ``(mu, b_user, b_item)``; unseen users/items get bias 0.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    r = np.asarray(ratings, dtype=np.float64)
    mu = float(r.mean())
    bu = np.zeros(n_users)
    bi = np.zeros(n_items)
    cu = np.bincount(users, minlength=n_users)
    ci = np.bincount(items, minlength=n_items)
    for _ in range(n_iter):
        bi = np.bincount(items, weights=r - mu - bu[users], minlength=n_items) / (reg_item + ci)
        bu = np.bincount(users, weights=r - mu - bi[items], minlength=n_users) / (reg_user + cu)
    return mu, bu, bi


def item_knn(train: sp.csr_array | sp.spmatrix, n_neighbors: int | None = None,
             shrink: float = 0.0) -> np.ndarray:
    r"""Item-item cosine similarity from a binary user x item matrix :math:`X`:

    .. math:: S_{ij} = \frac{x_i^\top x_j}{\lVert x_i\rVert\,\lVert x_j\rVert + h}

    with zero diagonal; optionally only each item's ``n_neighbors`` most similar items are
    kept (per column). A user's scores are :math:`X_u S`.
    """
    x = sp.csr_array(train, dtype=np.float64)
    x.data[:] = 1.0
    g = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(g))
    s = g / (np.outer(norms, norms) + shrink + 1e-12)
    np.fill_diagonal(s, 0.0)
    if n_neighbors is not None and n_neighbors < s.shape[0]:
        keep = np.argpartition(-s, n_neighbors - 1, axis=0)[:n_neighbors]
        mask = np.zeros_like(s, dtype=bool)
        np.put_along_axis(mask, keep, True, axis=0)
        s = np.where(mask, s, 0.0)
    return s


def ease(train: sp.csr_array | sp.spmatrix, l2: float = 500.0) -> np.ndarray:
    r"""EASE item-item weights (Steck, 2019), the closed-form solution of

    .. math:: \min_B \lVert X - XB\rVert_F^2 + \lambda\lVert B\rVert_F^2
              \ \text{s.t.}\ \mathrm{diag}(B) = 0:\quad
              P = (X^\top X + \lambda I)^{-1},\ B_{ij} = -P_{ij}/P_{jj},\ B_{jj} = 0.

    A user's scores are :math:`X_u B`.
    """
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    x = sp.csr_array(train, dtype=np.float64)
    x.data[:] = 1.0
    g = (x.T @ x).toarray()
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def ials(train: sp.csr_array | sp.spmatrix | np.ndarray, dim: int = 32, n_iter: int = 6,
         alpha0: float = 1.0, reg: float = 5.0, reg_exponent: float = 0.0, seed: int = 0,
         init_scale: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    r"""Implicit alternating least squares (iALS; Hu et al., 2008, in the form of Rendle et
    al., 2022). User vectors :math:`\mathbf p_u` (rows of ``P``) and item vectors
    :math:`\mathbf q_i` (rows of ``Q``) minimise

    .. math:: L = \sum_{(u,i)\in S}(1 - \mathbf p_u^\top\mathbf q_i)^2
              + \alpha_0\sum_u\sum_i(\mathbf p_u^\top\mathbf q_i)^2
              + \lambda\Big(\sum_u \nu_u\lVert\mathbf p_u\rVert^2
              + \sum_i \nu_i\lVert\mathbf q_i\rVert^2\Big),

    with :math:`S` the nonzero cells of ``train`` (values are treated as 1),
    :math:`\nu_u = (|\mathcal I_u| + \alpha_0 |I|)^{\nu}` and
    :math:`\nu_i = (|\mathcal U_i| + \alpha_0 |U|)^{\nu}` (``reg_exponent`` :math:`\nu`:
    0 = plain L2, 1 = Rendle et al.'s frequency-scaled regularisation). With ``Q`` fixed
    the gradient vanishes at the closed form

    .. math:: \mathbf p_u = \Big(\sum_{i\in\mathcal I_u}\mathbf q_i\mathbf q_i^\top
              + \alpha_0 Q^\top Q + \lambda\nu_u I\Big)^{-1}\sum_{i\in\mathcal I_u}\mathbf q_i,

    and symmetrically for :math:`\mathbf q_i`. ``Q`` starts as
    :math:`\mathcal N(0, \mathrm{init\_scale}^2)` (seeded); each of the ``n_iter`` sweeps
    solves all of ``P``, then all of ``Q``, so the loss never increases. Scores are
    :math:`P Q^\top`. Vectorised: one sparse product builds every user's
    :math:`\sum_i \mathbf q_i\mathbf q_i^\top` at once (memory :math:`O(n\,d^2)`), then a
    batched solve. Returns ``(P, Q)``, float64 arrays ``(n_users, dim)`` and ``(n_items, dim)``.
    """
    for name, v in (("dim", dim), ("n_iter", n_iter)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    for name, v in (("alpha0", alpha0), ("reg_exponent", reg_exponent), ("init_scale", init_scale)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if not np.isfinite(reg) or reg <= 0:
        raise ValueError(f"reg must be a finite number > 0 (it keeps every solve well posed), got {reg!r}")
    if init_scale == 0:
        raise ValueError("init_scale must be > 0: an all-zero Q gives all-zero vectors for ever")
    x = sp.csr_array(train, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) == 0:
        raise ValueError(f"train must be a non-empty 2-D users x items matrix, got shape {x.shape}")
    x.sum_duplicates()
    if x.data.size and (~np.isfinite(x.data) | (x.data < 0)).any():
        raise ValueError("train must hold finite non-negative interaction values (nonzero = interacted)")
    x.eliminate_zeros()
    x.data[:] = 1.0
    xt = sp.csr_array(x.T)
    n_users, n_items = x.shape
    d = int(dim)
    reg_u = reg * (np.diff(x.indptr) + alpha0 * n_items) ** reg_exponent
    reg_i = reg * (np.diff(xt.indptr) + alpha0 * n_users) ** reg_exponent
    diag = np.arange(d)

    def solve(rows: sp.csr_array, f: np.ndarray, r: np.ndarray) -> np.ndarray:
        # A_u = sum_{i in I_u} f_i f_i^T + alpha0 F^T F + r_u I ;  b_u = sum_{i in I_u} f_i
        a = (rows @ (f[:, :, None] * f[:, None, :]).reshape(len(f), d * d)).reshape(-1, d, d)
        a += alpha0 * (f.T @ f)
        a[:, diag, diag] += r[:, None]
        return np.linalg.solve(a, (rows @ f)[..., None])[..., 0]

    q = np.random.default_rng(seed).normal(0.0, init_scale, (n_items, d))
    p = np.zeros((n_users, d))
    for _ in range(int(n_iter)):
        p = solve(x, q, reg_u)
        q = solve(xt, p, reg_i)
    return p, q
