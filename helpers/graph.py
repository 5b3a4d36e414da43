r"""Social and graph pieces for recommenders, NumPy/SciPy only (chapter 14, reused later).

* :func:`friend_adjacency` -- the symmetric 0/1 user x user matrix :math:`A` of a friend list;
* :func:`friends_popularity` -- how many of a user's friends play each item, :math:`A X`;
* :func:`normalized_adjacency` -- :math:`D^{-1/2} A D^{-1/2}` (or :math:`D^{-1} A`);
* :func:`joint_adjacency` -- one graph over users and items: friend edges and
  user-item edges, :math:`\begin{pmatrix} wA & X\\ X^\top & 0\end{pmatrix}`;
* :func:`propagate` -- LightGCN-style propagation :math:`E^{(k+1)} = \hat A E^{(k)}`,
  layers averaged;
* :func:`social_penalty` -- the social regulariser
  :math:`\tfrac12\sum_{(u,v)\in\mathcal E}\lVert p_u - p_v\rVert^2 = \mathrm{tr}(P^\top L P)`;
* :func:`log_confidence` -- play counts to iALS confidences :math:`1 + \alpha\log(1 + r/\epsilon)`;
* :func:`confidence_ials` -- iALS with per-cell confidences (Hu, Koren and Volinsky, 2008)
  and an optional social regulariser on the user vectors.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

__all__ = ["friend_adjacency", "friends_popularity", "normalized_adjacency", "joint_adjacency",
           "propagate", "social_penalty", "log_confidence", "confidence_ials"]


def _square_adjacency(adj: sp.spmatrix | sp.sparray | np.ndarray, name: str = "adj") -> sp.csr_array:
    a = sp.csr_array(adj, dtype=np.float64, copy=True)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square (nodes x nodes) matrix, got shape {a.shape}")
    if a.nnz and (~np.isfinite(a.data)).any():
        raise ValueError(f"{name} holds NaN or infinite weights: expected finite edge weights")
    if a.nnz and (a.data < 0).any():
        raise ValueError(f"{name} holds negative weights: expected edge weights >= 0")
    if abs(a - a.T).sum() > 1e-9 * max(1.0, abs(a).sum()):
        raise ValueError(f"{name} must be symmetric (an undirected graph): A != A^T")
    return a


def friend_adjacency(user_ids: np.ndarray, friend_ids: np.ndarray, n_users: int) -> sp.csr_array:
    r"""Symmetric 0/1 adjacency :math:`A` (``n_users`` x ``n_users``, CSR) of undirected
    friendships: :math:`A_{uv} = A_{vu} = 1` for every pair ``(user_ids[k], friend_ids[k])``.

    Pairs may be listed once or in both directions and repeat; self-friendships are a
    ValueError (a user is not their own friend), as are ids outside ``[0, n_users)``.
    """
    u = np.asarray(user_ids)
    v = np.asarray(friend_ids)
    if u.shape != v.shape or u.ndim != 1:
        raise ValueError(f"user_ids and friend_ids must be 1-D of the same length, got {u.shape} and {v.shape}")
    if u.size and not (np.issubdtype(u.dtype, np.integer) and np.issubdtype(v.dtype, np.integer)):
        raise ValueError("user_ids and friend_ids must be integer indices (encode the raw ids first)")
    if u.size and (min(u.min(), v.min()) < 0 or max(u.max(), v.max()) >= n_users):
        raise ValueError(f"user indices must lie in [0, {n_users}), got [{min(u.min(), v.min())}, "
                         f"{max(u.max(), v.max())}]")
    if (u == v).any():
        k = int(np.flatnonzero(u == v)[0])
        raise ValueError(f"pair {k} links user {int(u[k])} to itself: expected distinct users")
    a = sp.coo_array((np.ones(2 * u.size), (np.r_[u, v], np.r_[v, u])), shape=(n_users, n_users)).tocsr()
    a.sum_duplicates()
    a.data[:] = 1.0
    return a


def friends_popularity(social: sp.spmatrix | sp.sparray, train: sp.spmatrix | sp.sparray,
                       normalise: bool = True) -> np.ndarray:
    r"""Friends' popularity scores: for user :math:`u` and item :math:`i`,

    .. math:: s_{ui} = \sum_{v} A_{uv}\,[x_{vi} > 0] \quad(\text{how many friends play } i),
              \qquad \text{or } s_{ui} / d_u \ \text{with}\ d_u = \sum_v A_{uv}
              \ (\text{the share, } \texttt{normalise=True}).

    ``social`` is the user x user adjacency (:func:`friend_adjacency`), ``train`` the user x
    item matrix (any non-zero counts as a play). A user without friends gets a row of zeros.
    Returns a dense float64 ``(n_users, n_items)`` array.
    """
    a = _square_adjacency(social, "social")
    x = sp.csr_array(train, dtype=np.float64, copy=True)
    if x.ndim != 2 or x.shape[0] != a.shape[0]:
        raise ValueError(f"train must have one row per user of social ({a.shape[0]}), got shape {x.shape}")
    x.eliminate_zeros()
    x.data[:] = 1.0
    s = (a @ x).toarray()
    if normalise:
        deg = np.asarray(a.sum(axis=1)).ravel()
        s /= np.maximum(deg, 1.0)[:, None]
    return s


def normalized_adjacency(adj: sp.spmatrix | sp.sparray | np.ndarray, kind: str = "symmetric") -> sp.csr_array:
    r"""Degree-normalised adjacency of an undirected graph with degrees :math:`d_v = \sum_w A_{vw}`:

    .. math:: \hat A = D^{-1/2} A D^{-1/2}\ (\texttt{"symmetric"}, \text{GCN/LightGCN}),\qquad
              \hat A = D^{-1} A\ (\texttt{"row"}, \text{the mean over neighbours}).

    Isolated nodes (degree 0) keep an all-zero row and column. Returns CSR float64.
    """
    a = _square_adjacency(adj)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    nz = deg > 0
    if kind == "symmetric":
        inv[nz] = deg[nz] ** -0.5
        out = sp.diags_array(inv) @ a @ sp.diags_array(inv)
    elif kind == "row":
        inv[nz] = 1.0 / deg[nz]
        out = sp.diags_array(inv) @ a
    else:
        raise ValueError(f"kind must be 'symmetric' or 'row', got {kind!r}")
    return sp.csr_array(out)


def joint_adjacency(train: sp.spmatrix | sp.sparray, social: sp.spmatrix | sp.sparray | None = None,
                    social_weight: float = 1.0) -> sp.csr_array:
    r"""One undirected graph over ``n_users`` user nodes followed by ``n_items`` item nodes:

    .. math:: A = \begin{pmatrix} w\,S & X \\ X^\top & 0 \end{pmatrix},

    with :math:`X` the 0/1 user x item matrix (any non-zero of ``train`` is an edge),
    :math:`S` the user x user friend adjacency (``social``; omitted = no friend edges) and
    :math:`w` = ``social_weight`` >= 0. Node ``n_users + i`` is item ``i``.
    """
    x = sp.csr_array(train, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"train must be a 2-D users x items matrix, got shape {x.shape}")
    x.eliminate_zeros()
    x.data[:] = 1.0
    n_users, n_items = x.shape
    if not np.isfinite(social_weight) or social_weight < 0:
        raise ValueError(f"social_weight must be a finite number >= 0, got {social_weight!r}")
    if social is None:
        s = sp.csr_array((n_users, n_users))
    else:
        s = _square_adjacency(social, "social")
        if s.shape[0] != n_users:
            raise ValueError(f"social must be {n_users} x {n_users} (one row per user of train), got {s.shape}")
    return sp.csr_array(sp.block_array([[social_weight * s, x], [x.T, None]], format="csr"))


def propagate(adj_norm: sp.spmatrix | sp.sparray, embeddings: np.ndarray, n_layers: int = 1,
              layer_weights: np.ndarray | None = None) -> np.ndarray:
    r"""LightGCN-style propagation (He et al., 2020): no weights, no non-linearity,

    .. math:: E^{(k+1)} = \hat A\, E^{(k)},\qquad E = \sum_{k=0}^{K} a_k E^{(k)},

    with :math:`E^{(0)}` = ``embeddings`` (one row per node), :math:`K` = ``n_layers`` and
    :math:`a_k` = ``layer_weights`` (default :math:`1/(K+1)` each, LightGCN's choice). One
    hop (:math:`K = 1`) mixes each node's vector with its neighbours' mean. Returns float64
    ``(n_nodes, dim)``.
    """
    a = sp.csr_array(adj_norm, dtype=np.float64)
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or a.shape != (e.shape[0], e.shape[0]):
        raise ValueError(f"need a square adj_norm with one row per embedding row; got adj_norm {a.shape}, "
                         f"embeddings {e.shape}")
    if isinstance(n_layers, bool) or int(n_layers) != n_layers or n_layers < 0:
        raise ValueError(f"n_layers must be an integer >= 0, got {n_layers!r}")
    w = (np.full(n_layers + 1, 1.0 / (n_layers + 1)) if layer_weights is None
         else np.asarray(layer_weights, dtype=np.float64))
    if w.shape != (n_layers + 1,) or not np.isfinite(w).all():
        raise ValueError(f"layer_weights must hold n_layers + 1 = {n_layers + 1} finite numbers, got {w!r}")
    out = w[0] * e
    layer = e
    for k in range(1, n_layers + 1):
        layer = a @ layer
        out = out + w[k] * layer
    return out


def social_penalty(user_factors: np.ndarray, social: sp.spmatrix | sp.sparray) -> tuple[float, np.ndarray]:
    r"""The social regulariser (Ma et al., 2011) and its gradient:

    .. math:: R(P) = \tfrac12\sum_{\{u,v\}\in\mathcal E} A_{uv}\lVert p_u - p_v\rVert^2
              = \tfrac12\,\mathrm{tr}(P^\top L P),\qquad \nabla_P R = L P,\qquad L = D - A,

    i.e. each friendship (counted once) costs half the squared distance of the two user
    vectors; ``social`` is the symmetric (weighted) adjacency :math:`A`. Returns
    ``(R, gradient)``.
    """
    a = _square_adjacency(social, "social")
    p = np.asarray(user_factors, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != a.shape[0]:
        raise ValueError(f"user_factors must have one row per user of social ({a.shape[0]}), got {p.shape}")
    deg = np.asarray(a.sum(axis=1)).ravel()
    lp = deg[:, None] * p - a @ p
    return float(0.5 * np.sum(p * lp)), lp


def log_confidence(counts: sp.spmatrix | sp.sparray, alpha: float = 1.0, eps: float = 1.0) -> sp.csr_array:
    r"""Confidence of each observed cell from its count :math:`r_{ui}` (Hu et al., 2008, eq. 6):

    .. math:: c_{ui} = 1 + \alpha \log\big(1 + r_{ui}/\epsilon\big),

    stored only where :math:`r_{ui} > 0` (an unobserved cell has confidence 1 implicitly).
    Play counts are heavy-tailed (one play to hundreds of thousands): the log keeps one
    obsessive artist from dominating a user's loss. Returns CSR float64 with the sparsity of
    ``counts``.
    """
    c = sp.csr_array(counts, dtype=np.float64, copy=True)
    if c.nnz and ((~np.isfinite(c.data)) | (c.data < 0)).any():
        raise ValueError("counts must be finite and >= 0 (play counts)")
    if not (np.isfinite(alpha) and alpha >= 0 and np.isfinite(eps) and eps > 0):
        raise ValueError(f"need alpha >= 0 and eps > 0, got alpha={alpha!r}, eps={eps!r}")
    c.eliminate_zeros()
    c.data = 1.0 + alpha * np.log1p(c.data / eps)
    return c


def _gram_weighted(conf: sp.csr_array, f: np.ndarray, chunk: int) -> Iterator[tuple[slice, np.ndarray]]:
    """Per row u of ``conf``: sum_i (c_ui - 1) f_i f_i^T, in chunks of rows.

    Rows with few non-zeros (users: at most a few dozen artists) are padded to the longest row
    and multiplied as a batch of small dense matrices; rows with many non-zeros (artists with
    hundreds of listeners) use one sparse product with every f_i f_i^T flattened."""
    n, d = conf.shape[0], f.shape[1]
    counts = np.diff(conf.indptr)
    longest = int(counts.max()) if n else 0
    padded = n * longest <= 4 * max(conf.nnz, 1)
    if not padded:
        outer = (f[:, :, None] * f[:, None, :]).reshape(len(f), d * d)
        cm1 = conf.copy()
        cm1.data = cm1.data - 1.0
    for s in range(0, n, chunk):
        rows = slice(s, min(n, s + chunk))
        if padded:
            lo, hi = conf.indptr[rows.start], conf.indptr[rows.stop]
            pos = np.arange(lo, hi) - np.repeat(conf.indptr[rows.start:rows.stop], counts[rows])
            r = np.repeat(np.arange(rows.stop - rows.start), counts[rows])
            g = np.zeros((rows.stop - rows.start, longest, d))
            g[r, pos] = f[conf.indices[lo:hi]] * np.sqrt(conf.data[lo:hi] - 1.0)[:, None]
            yield rows, np.matmul(g.transpose(0, 2, 1), g)
        else:
            yield rows, (cm1[rows] @ outer).reshape(-1, d, d)


def _solve_side(conf: sp.csr_array, f: np.ndarray, reg: float, extra_diag: np.ndarray | None = None,
                extra_rhs: np.ndarray | None = None, chunk: int = 2048,
                grams: list[np.ndarray] | None = None) -> np.ndarray:
    """Rows x_u = (F^T F + sum_i (c_ui - 1) f_i f_i^T + (reg + extra_u) I)^-1 (sum_i c_ui f_i + extra_rhs_u).
    ``grams`` caches the weighted Gram blocks across calls with the same ``conf`` and ``f``."""
    n, d = conf.shape[0], f.shape[1]
    ftf = f.T @ f
    out = np.empty((n, d))
    idx = np.arange(d)
    blocks = grams if grams else list(_gram_weighted(conf, f, chunk))
    if grams is not None and not grams:
        grams.extend(blocks)
    for rows, gram in blocks:
        a = gram + ftf
        a[:, idx, idx] += reg + (0.0 if extra_diag is None else extra_diag[rows, None])
        b = conf[rows] @ f
        if extra_rhs is not None:
            b = b + extra_rhs[rows]
        out[rows] = np.linalg.solve(a, b[..., None])[..., 0]
    return out


def confidence_ials(conf: sp.spmatrix | sp.sparray, dim: int = 64, n_iter: int = 10, reg: float = 1.0,
                    social: sp.spmatrix | sp.sparray | None = None, social_reg: float = 0.0,
                    inner_steps: int = 2, seed: int = 0, init_scale: float = 0.01
                    ) -> tuple[np.ndarray, np.ndarray]:
    r"""iALS with per-cell confidences (Hu, Koren and Volinsky, 2008) and an optional social
    regulariser on the user vectors (Ma et al., 2011):

    .. math:: L = \sum_{u,i} c_{ui}\,(p_{ui} - \mathbf x_u^\top\mathbf y_i)^2
              + \lambda\Big(\sum_u\lVert\mathbf x_u\rVert^2 + \sum_i\lVert\mathbf y_i\rVert^2\Big)
              + \beta\sum_{\{u,v\}\in\mathcal E}\lVert\mathbf x_u - \mathbf x_v\rVert^2,

    over *all* cells: :math:`p_{ui} = 1` and :math:`c_{ui}` = the stored value of ``conf``
    (e.g. :func:`log_confidence`) where ``conf`` is non-zero, :math:`p_{ui} = 0` and
    :math:`c_{ui} = 1` elsewhere; :math:`\lambda` = ``reg``, :math:`\beta` = ``social_reg``,
    :math:`\mathcal E` the friend pairs of the symmetric 0/1 ``social``. This is the objective
    of ``implicit``'s ``AlternatingLeastSquares`` fitted on ``conf`` with ``alpha=1``, plus
    the social term. With the items fixed, setting the gradient to zero gives, per user,

    .. math:: \Big(Y^\top Y + \sum_{i\in\mathcal I_u}(c_{ui} - 1)\mathbf y_i\mathbf y_i^\top
              + (\lambda + \beta d_u) I\Big)\mathbf x_u
              = \sum_{i\in\mathcal I_u} c_{ui}\mathbf y_i + \beta\sum_{v} A_{uv}\mathbf x_v ,

    a linear system that couples friends; it is solved by ``inner_steps`` Jacobi sweeps
    (friends' vectors from the previous sweep; exact when :math:`\beta = 0`). Items are
    solved exactly given the users. ``Y`` starts as :math:`\mathcal N(0,
    \mathrm{init\_scale}^2)` (seeded), ``X`` at zero. Returns ``(X, Y)`` float64; scores are
    :math:`X Y^\top`.
    """
    c = sp.csr_array(conf, dtype=np.float64, copy=True)
    if c.ndim != 2 or min(c.shape) == 0:
        raise ValueError(f"conf must be a non-empty users x items matrix, got shape {c.shape}")
    c.eliminate_zeros()
    if c.nnz and ((~np.isfinite(c.data)) | (c.data < 1.0)).any():
        raise ValueError("conf must hold confidences >= 1 on observed cells (1 = an unobserved cell's weight); "
                         "build it with log_confidence()")
    for name, v in (("dim", dim), ("n_iter", n_iter), ("inner_steps", inner_steps)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not (np.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be > 0 (it keeps every solve well posed), got {reg!r}")
    if not (np.isfinite(social_reg) and social_reg >= 0):
        raise ValueError(f"social_reg must be >= 0, got {social_reg!r}")
    if not (np.isfinite(init_scale) and init_scale > 0):
        raise ValueError(f"init_scale must be > 0, got {init_scale!r}")
    n_users, n_items = c.shape
    if social_reg > 0:
        if social is None:
            raise ValueError("social_reg > 0 needs the friend adjacency `social`")
        a = _square_adjacency(social, "social")
        if a.shape[0] != n_users:
            raise ValueError(f"social must be {n_users} x {n_users}, got {a.shape}")
        deg = np.asarray(a.sum(axis=1)).ravel()
    ct = sp.csr_array(c.T)
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, init_scale, (n_items, int(dim)))
    x = np.zeros((n_users, int(dim)))
    for _ in range(int(n_iter)):
        if social_reg > 0:
            cache: list[np.ndarray] = []        # the Gram blocks depend on Y only: build once per sweep
            for _ in range(int(inner_steps)):
                x = _solve_side(c, y, reg, social_reg * deg, social_reg * (a @ x), grams=cache)
        else:
            x = _solve_side(c, y, reg)
        y = _solve_side(ct, x, reg)
    return x, y
