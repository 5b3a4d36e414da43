"""Honest baselines, NumPy/SciPy only: what every neural model must beat.

* :func:`popularity_scores` -- how many users interacted with each item;
* :func:`damped_mean_scores` -- mean rating shrunk towards the global mean;
* :func:`fit_biases` -- the biased baseline :math:`\\hat r_{ui} = \\mu + b_u + b_i`;
* :func:`item_knn` -- item-item (asymmetric) cosine similarity with shrinkage;
* :func:`last_k_interactions` -- a user's ``k`` latest interactions, to score from;
* :func:`time_gap_buckets` -- held-out interactions grouped by the time since the user's
  previous one (same second / within an hour / later);
* :func:`implicit_als`, :func:`implicit_bpr` -- iALS and BPR-MF from the ``implicit``
  library (imported on first use);
* :func:`ease` -- Steck's closed-form linear autoencoder (EASE, WWW 2019).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from helpers.splits import recency_rank


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
             shrink: float = 0.0, alpha: float = 0.5) -> np.ndarray:
    r"""Item-item similarity from a binary user x item matrix :math:`X` (columns
    :math:`x_i`, :math:`c_i = \lVert x_i\rVert^2` users per item): the *asymmetric cosine*
    (Aiolli, 2013) with shrinkage :math:`h` (Dacrema et al., 2019),

    .. math:: S_{ij} = \frac{x_i^\top x_j}{c_i^{\alpha}\, c_j^{1-\alpha} + h},

    which is the cosine :math:`x_i^\top x_j / (\lVert x_i\rVert\,\lVert x_j\rVert + h)` at
    ``alpha = 0.5``; ``alpha`` above 0.5 discounts popular history items :math:`i`, below
    0.5 popular scored items :math:`j`. Zero diagonal; optionally only each scored item's
    ``n_neighbors`` most similar items are kept (per column :math:`j`). A user's scores are
    :math:`X_u S`.
    """
    if shrink < 0:
        raise ValueError(f"shrink must be >= 0, got {shrink}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (0.5 = cosine), got {alpha}")
    if n_neighbors is not None and n_neighbors < 1:
        raise ValueError(f"n_neighbors must be >= 1 or None (all), got {n_neighbors}")
    x = sp.csr_array(train, dtype=np.float64, copy=True)  # never binarise the caller's matrix
    x.data[:] = 1.0
    g = (x.T @ x).toarray()
    c = np.diag(g).copy()
    s = g / (np.outer(c ** alpha, c ** (1.0 - alpha)) + shrink + 1e-12)
    np.fill_diagonal(s, 0.0)
    if n_neighbors is not None and n_neighbors < s.shape[0]:
        keep = np.argpartition(-s, n_neighbors - 1, axis=0)[:n_neighbors]
        mask = np.zeros_like(s, dtype=bool)
        np.put_along_axis(mask, keep, True, axis=0)
        s = np.where(mask, s, 0.0)
    return s


def last_k_interactions(df: pd.DataFrame, k: int, n_users: int, n_items: int,
                        user_col: str = "user", item_col: str = "item",
                        time_col: str = "timestamp") -> sp.csr_array:
    r"""The ``n_users x n_items`` binary matrix of each user's ``k`` latest interactions in
    ``df`` (recency by ``time_col``, ties by the file's row order as in
    :func:`helpers.splits.leave_last_out`).

    The "last-k items" baseline scores a user from this matrix instead of the whole history,
    e.g. with EASE weights :math:`B` fitted on all training data: :math:`s_u = x^{(k)\top}_u B`.
    On MovieLens, where a user's held-out rating often shares a rating session (even the
    second) with the last training ratings, it measures how much of a model's score is
    "items entered together".
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer (items per user), got {k!r}")
    r = recency_rank(df, user_col, time_col)
    keep = r < k
    u = df[user_col].to_numpy()[keep]
    i = df[item_col].to_numpy()[keep]
    x = sp.csr_array((np.ones(len(u), dtype=np.float32), (u, i)), shape=(n_users, n_items))
    x.data[:] = 1.0  # duplicates count once
    return x


#: labels of :func:`time_gap_buckets`, in order
GAP_BUCKETS = ("same second", "within an hour", "later")


def time_gap_buckets(history: pd.DataFrame, heldout: pd.DataFrame, window: float = 3600.0,
                     user_col: str = "user", time_col: str = "timestamp") -> pd.DataFrame:
    r"""How long after the user's previous interaction each held-out interaction came.

    For every row of ``heldout`` (one held-out interaction, e.g. a user's test rating) the
    gap :math:`g = t_\text{held-out} - \max_{h \in \text{history}(u)} t_h` in seconds, and
    its bucket: ``"same second"`` (:math:`g = 0`), ``"within an hour"``
    (:math:`0 < g \le` ``window`` seconds) or ``"later"``. Returns a DataFrame aligned with
    ``heldout`` (same index) with columns ``gap_seconds`` (int) and ``bucket`` (ordered
    categorical, :data:`GAP_BUCKETS`). Timestamps may be datetimes or integer seconds.
    Every held-out user needs a history, and no held-out interaction may precede it (as in
    leave-last-out).
    """
    for name, frame in (("history", history), ("heldout", heldout)):
        missing = [c for c in (user_col, time_col) if c not in frame.columns]
        if missing:
            raise KeyError(f"{name} needs columns {[user_col, time_col]}; missing {missing}")
    if not window > 0:
        raise ValueError(f"window must be > 0 seconds, got {window}")

    def seconds(col: pd.Series) -> np.ndarray:
        if pd.api.types.is_datetime64_any_dtype(col):
            return col.to_numpy().astype("datetime64[s]").astype(np.int64)
        return col.to_numpy().astype(np.int64)

    last = pd.Series(seconds(history[time_col]), index=history.index).groupby(
        history[user_col].to_numpy()).max()
    users = heldout[user_col].to_numpy()
    missing_users = np.setdiff1d(users, last.index.to_numpy())
    if missing_users.size:
        raise ValueError(f"{missing_users.size} held-out users have no history (e.g. user {missing_users[0]})")
    gap = seconds(heldout[time_col]) - last.reindex(users).to_numpy()
    if (gap < 0).any():
        raise ValueError(f"{int((gap < 0).sum())} held-out interactions precede their user's latest "
                         "history interaction; the history must be earlier (leave-last-out)")
    codes = np.where(gap == 0, 0, np.where(gap <= window, 1, 2))
    bucket = pd.Categorical.from_codes(codes, categories=list(GAP_BUCKETS), ordered=True)
    return pd.DataFrame({"gap_seconds": gap, "bucket": bucket}, index=heldout.index)


def _import_implicit() -> None:
    """Import ``implicit`` quietly: it imports ``tqdm.auto``, which warns on stderr inside a
    notebook without ipywidgets (progress bars are off here anyway)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import implicit.cpu.als  # noqa: F401
        import implicit.cpu.bpr  # noqa: F401


def _implicit_input(train: sp.csr_array | sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(train, dtype=np.float32, copy=True)
    x.data[:] = 1.0
    x.sort_indices()
    return x


def _factor_callback(model, callback):
    if callback is None:
        return None

    def on_iteration(iteration: int, *_: object) -> None:
        callback(int(iteration) + 1, np.asarray(model.user_factors, np.float64),
                 np.asarray(model.item_factors, np.float64))

    return on_iteration


def implicit_als(train: sp.csr_array | sp.spmatrix, factors: int = 64, regularization: float = 0.1,
                 alpha: float = 1.0, iterations: int = 15, seed: int = 0,
                 callback: Callable[[int, np.ndarray, np.ndarray], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    r"""iALS (Hu, Koren & Volinsky, 2008) with the ``implicit`` library: user and item
    factors minimising

    .. math:: \sum_{u,i} c_{ui}\,(p_{ui} - x_u^\top y_i)^2
              + \lambda\Big(\sum_u \lVert x_u\rVert^2 + \sum_i \lVert y_i\rVert^2\Big),
              \quad p_{ui} = [r_{ui} > 0],\ c_{ui} = \begin{cases}\alpha & r_{ui} > 0\\
              1 & \text{otherwise}\end{cases}

    over *all* user-item pairs, by alternating least squares (conjugate-gradient steps);
    ``implicit`` scales the observed entries by :math:`\alpha` (its ``alpha``), so the
    confidence of an interaction is :math:`\alpha` times that of a non-interaction.
    ``train`` is the binary users x items matrix. Returns ``(user_factors, item_factors)``
    as float64 arrays; a user's scores are ``user_factors[u] @ item_factors.T``. One thread
    and a fixed ``seed``: the same call gives the same factors. ``callback(iteration,
    user_factors, item_factors)`` is called after every iteration (1-based) with the current
    factors (float64 copies), e.g. to validate every iteration count in one fit.
    """
    _import_implicit()
    import implicit.cpu.als
    from threadpoolctl import threadpool_limits

    if factors < 1 or iterations < 1 or regularization < 0 or alpha < 0:
        raise ValueError(f"need factors >= 1, iterations >= 1, regularization >= 0, alpha >= 0; got "
                         f"{factors}, {iterations}, {regularization}, {alpha}")
    with threadpool_limits(1, "blas"):  # implicit warns on stderr otherwise
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=int(factors), regularization=float(regularization), alpha=float(alpha),
            iterations=int(iterations), num_threads=1, random_state=int(seed))
        model.fit(_implicit_input(train), show_progress=False, callback=_factor_callback(model, callback))
    return np.asarray(model.user_factors, np.float64), np.asarray(model.item_factors, np.float64)


def implicit_bpr(train: sp.csr_array | sp.spmatrix, factors: int = 64, learning_rate: float = 0.01,
                 regularization: float = 0.01, iterations: int = 100, seed: int = 0,
                 callback: Callable[[int, np.ndarray, np.ndarray], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    r"""BPR-MF (Rendle et al., 2009) with the ``implicit`` library: stochastic gradient
    ascent on

    .. math:: \sum_{(u,i,j)} \ln \sigma(x_u^\top y_i + b_i - x_u^\top y_j - b_j)
              - \lambda\,\lVert\Theta\rVert^2

    over triples of a user, an item they interacted with and a sampled one they did not.
    Returns ``(user_factors, item_factors)`` as float64 arrays, the item bias folded in as
    one extra column (the user's column is 1), so a user's scores are
    ``user_factors[u] @ item_factors.T``. One thread and a fixed ``seed``: reproducible.
    ``callback(iteration, user_factors, item_factors)`` is called after every iteration, as
    in :func:`implicit_als`.
    """
    _import_implicit()
    import implicit.cpu.bpr
    from threadpoolctl import threadpool_limits

    if factors < 1 or iterations < 1 or not learning_rate > 0 or regularization < 0:
        raise ValueError(f"need factors >= 1, iterations >= 1, learning_rate > 0, regularization >= 0; "
                         f"got {factors}, {iterations}, {learning_rate}, {regularization}")
    with threadpool_limits(1, "blas"):  # implicit warns on stderr otherwise
        model = implicit.cpu.bpr.BayesianPersonalizedRanking(
            factors=int(factors), learning_rate=float(learning_rate), regularization=float(regularization),
            iterations=int(iterations), num_threads=1, random_state=int(seed))
        model.fit(_implicit_input(train), show_progress=False, callback=_factor_callback(model, callback))
    return np.asarray(model.user_factors, np.float64), np.asarray(model.item_factors, np.float64)


def ease(train: sp.csr_array | sp.spmatrix, l2: float = 500.0, dtype: type = np.float64) -> np.ndarray:
    r"""EASE item-item weights (Steck, 2019), the closed-form solution of

    .. math:: \min_B \lVert X - XB\rVert_F^2 + \lambda\lVert B\rVert_F^2
              \ \text{s.t.}\ \mathrm{diag}(B) = 0:\quad
              P = (X^\top X + \lambda I)^{-1},\ B_{ij} = -P_{ij}/P_{jj},\ B_{jj} = 0.

    A user's scores are :math:`X_u B`. With ``dtype=np.float32`` the inverse is computed in
    float32 through a Cholesky factorisation (LAPACK ``spotrf``/``spotri``; the Gram matrix is
    symmetric positive definite for :math:`\lambda > 0`): about half the time and memory of the
    float64 ``inv``, for large catalogues; the ranking is the same up to float32 rounding.
    """
    if l2 <= 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    if dtype not in (np.float64, np.float32):
        raise ValueError(f"dtype must be np.float64 or np.float32, got {dtype!r}")
    x = sp.csr_array(train, dtype=dtype, copy=True)  # never binarise the caller's matrix
    x.data[:] = 1.0
    g = (x.T @ x).toarray().astype(dtype, copy=False)
    g[np.diag_indices_from(g)] += dtype(l2)
    if dtype == np.float64:
        p = np.linalg.inv(g)
    else:
        from scipy.linalg import lapack

        c, info = lapack.spotrf(g, lower=False, overwrite_a=True)
        if info != 0:
            raise ValueError(f"the Gram matrix is not positive definite (LAPACK info {info}); is l2 > 0?")
        p, info = lapack.spotri(c, lower=False, overwrite_c=True)
        p = np.triu(p) + np.triu(p, 1).T
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b.astype(dtype, copy=False)


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
    x = sp.csr_array(train, dtype=np.float64, copy=True)  # never binarise the caller's matrix
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
