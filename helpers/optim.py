r"""Gradient-based optimizers from scratch in NumPy, and a NumPy matrix factorisation to
train with them (chapters 4 and 5).

Every optimizer has the same interface: ``opt.step(params, grads)`` updates each array in
``params`` *in place* from the gradient array at the same position in ``grads``; state
(velocities, accumulators, moments) is created on the first step, one per parameter, as
Keras does. With :math:`g_t` the gradient at step :math:`t = 1, 2, \dots` and :math:`\eta` the
learning rate:

=============  ==============================================================================
``SGD``        :math:`\theta \leftarrow \theta - \eta g_t` (full-batch gradient descent when
               :math:`g_t` is the gradient over all data, mini-batch SGD otherwise)
``Momentum``   :math:`v \leftarrow \mu v - \eta g_t,\ \theta \leftarrow \theta + v`
``Adagrad``    :math:`a \leftarrow a + g_t^2,\ \theta \leftarrow \theta - \eta g_t/\sqrt{a + \epsilon}`, :math:`a_0 = 0.1`
``RMSProp``    :math:`s \leftarrow \rho s + (1-\rho) g_t^2,\ \theta \leftarrow \theta - \eta g_t/\sqrt{s + \epsilon}`
``Adam``       :math:`m \leftarrow \beta_1 m + (1-\beta_1) g_t,\ v \leftarrow \beta_2 v + (1-\beta_2) g_t^2,`
               :math:`\theta \leftarrow \theta - \eta_t\, m/(\sqrt v + \hat\epsilon),\
               \eta_t = \eta\sqrt{1-\beta_2^t}/(1-\beta_1^t)`
=============  ==============================================================================

Defaults and the exact placement of :math:`\epsilon` follow ``keras.optimizers`` so that the
same gradients give the same steps (``tests/test_optim.py`` checks this to 1e-6). Every
optimizer's state is readable through :attr:`Optimizer.state`.

:class:`MatrixFactorization` returns dense gradients for all its parameters
(:meth:`MatrixFactorization.grads`); :meth:`MatrixFactorization.sparse_sgd_step` is the same SGD
step touching only the rows in the batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


# --------------------------------------------------------------------------- optimizers
class Optimizer:
    """Base class: holds the learning rate and the step counter; subclasses implement
    :meth:`_update` for one parameter."""

    def __init__(self, learning_rate: float):
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0  # completed steps
        self._state: list[dict[str, np.ndarray]] | None = None

    def _init_state(self, p: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def _update(self, p: np.ndarray, g: np.ndarray, state: dict[str, np.ndarray], t: int) -> None:
        raise NotImplementedError

    @property
    def state(self) -> list[dict[str, np.ndarray]]:
        """The per-parameter state (velocities, accumulators, moments), one dict per parameter
        array in the order of :meth:`step`; empty before the first step. Live arrays: read,
        do not modify."""
        return [] if self._state is None else self._state

    def step(self, params: Sequence[np.ndarray], grads: Sequence[np.ndarray]) -> None:
        """Apply one update to every parameter array, in place."""
        if len(params) != len(grads):
            raise ValueError(f"{len(params)} parameters but {len(grads)} gradients")
        if self._state is None:
            self._state = [self._init_state(p) for p in params]
        elif len(self._state) != len(params):
            raise ValueError(f"this optimizer was started with {len(self._state)} parameters, "
                             f"now got {len(params)}; use a new optimizer for a new model")
        for p, g, s in zip(params, grads, self._state):
            if p.shape != np.shape(g):
                raise ValueError(f"gradient shape {np.shape(g)} does not match parameter shape {p.shape}")
            if not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"parameters must be float arrays (updated in place), got {p.dtype}")
            self._update(p, np.asarray(g, dtype=p.dtype), s, self.iterations + 1)
        self.iterations += 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate:g})"


class SGD(Optimizer):
    r"""Plain (stochastic) gradient descent, :math:`\theta \leftarrow \theta - \eta\, g_t`.

    The same rule is full-batch gradient descent or mini-batch SGD: only the data behind
    :math:`g_t` differ. ``keras.optimizers.SGD(learning_rate)``.
    """

    def _update(self, p, g, state, t):
        p -= self.learning_rate * g


class Momentum(Optimizer):
    r"""Heavy-ball momentum (Polyak, 1964), in Keras's form:

    .. math:: v \leftarrow \mu v - \eta g_t,\quad \theta \leftarrow \theta + v

    (``nesterov=True``: :math:`\theta \leftarrow \theta + \mu v - \eta g_t`).
    ``keras.optimizers.SGD(learning_rate, momentum=mu, nesterov=...)``.
    """

    def __init__(self, learning_rate: float, momentum: float = 0.9, nesterov: bool = False):
        super().__init__(learning_rate)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _init_state(self, p):
        return {"v": np.zeros_like(p)}

    def _update(self, p, g, state, t):
        v = state["v"]
        v *= self.momentum
        v -= self.learning_rate * g
        if self.nesterov:
            p += self.momentum * v - self.learning_rate * g
        else:
            p += v


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011): each coordinate's step shrinks with the sum of its
    squared gradients,

    .. math:: a \leftarrow a + g_t^2,\quad \theta \leftarrow \theta - \eta\,g_t/\sqrt{a + \epsilon},

    with :math:`a_0` = ``initial_accumulator_value`` = 0.1 and :math:`\epsilon = 10^{-7}` as in
    ``keras.optimizers.Adagrad``. Rare features (items with few ratings) keep large steps; the
    step never grows back.

    The start value matters: while :math:`\sum_t g_t^2 \ll a_0` the update is
    :math:`\approx \eta\, g_t/\sqrt{a_0}`, plain SGD with rate :math:`\eta/\sqrt{a_0}`. With
    Keras's :math:`a_0 = 0.1` that is what Adagrad does on embeddings whose gradients are
    small (chapter 5 measures it). The paper (Duchi et al.) and PyTorch start at :math:`a_0 = 0`.
    """

    def __init__(self, learning_rate: float, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7):
        super().__init__(learning_rate)
        if initial_accumulator_value < 0:
            raise ValueError(f"initial_accumulator_value must be >= 0, got {initial_accumulator_value}")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _init_state(self, p):
        return {"a": np.full_like(p, self.initial_accumulator_value)}

    def _update(self, p, g, state, t):
        a = state["a"]
        a += g * g
        p -= self.learning_rate * g / np.sqrt(a + self.epsilon)


class RMSProp(Optimizer):
    r"""RMSProp (Tieleman & Hinton, 2012): Adagrad with a *leaky* average of squared gradients,

    .. math:: s \leftarrow \rho s + (1 - \rho) g_t^2,\quad
              \theta \leftarrow \theta - \eta\,g_t/\sqrt{s + \epsilon},

    :math:`s_0 = 0`, :math:`\rho = 0.9`, :math:`\epsilon = 10^{-7}` (``keras.optimizers.RMSprop``).
    """

    def __init__(self, learning_rate: float, rho: float = 0.9, epsilon: float = 1e-7):
        super().__init__(learning_rate)
        if not 0 <= rho < 1:
            raise ValueError(f"rho must be in [0, 1), got {rho}")
        self.rho = float(rho)
        self.epsilon = float(epsilon)

    def _init_state(self, p):
        return {"s": np.zeros_like(p)}

    def _update(self, p, g, state, t):
        s = state["s"]
        s *= self.rho
        s += (1.0 - self.rho) * g * g
        p -= self.learning_rate * g / np.sqrt(s + self.epsilon)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015): momentum on the gradient and RMSProp scaling, both
    bias-corrected for their zero start,

    .. math:: m \leftarrow \beta_1 m + (1-\beta_1) g_t,\quad v \leftarrow \beta_2 v + (1-\beta_2) g_t^2,

    .. math:: \theta \leftarrow \theta - \eta_t \frac{m}{\sqrt{v} + \hat\epsilon},\quad
              \eta_t = \eta\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}.

    This is the paper's "more efficient" ordering (end of its section 2), which Keras uses:
    the bias corrections are folded into :math:`\eta_t`, so :math:`\hat\epsilon` is added to
    :math:`\sqrt{v}` rather than to :math:`\sqrt{\hat v}`. Defaults :math:`\beta_1 = 0.9`,
    :math:`\beta_2 = 0.999`, :math:`\hat\epsilon = 10^{-7}` as in ``keras.optimizers.Adam``.
    """

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        super().__init__(learning_rate)
        for name, b in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= b < 1:
                raise ValueError(f"{name} must be in [0, 1), got {b}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _init_state(self, p):
        return {"m": np.zeros_like(p), "v": np.zeros_like(p)}

    def _update(self, p, g, state, t):
        m, v = state["m"], state["v"]
        m += (1.0 - self.beta_1) * (g - m)
        v += (1.0 - self.beta_2) * (g * g - v)
        lr_t = self.learning_rate * np.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        p -= lr_t * m / (np.sqrt(v) + self.epsilon)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD, "momentum": Momentum, "adagrad": Adagrad, "rmsprop": RMSProp, "adam": Adam,
}


def make_optimizer(name: str, learning_rate: float, **kwargs: float) -> Optimizer:
    """Build an optimizer by name (``"sgd"``, ``"momentum"``, ``"adagrad"``, ``"rmsprop"``,
    ``"adam"``; case-insensitive)."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](learning_rate, **kwargs)


# ------------------------------------------------------------- matrix factorisation
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
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        dscore = np.asarray(dscore, dtype=np.float64)
        if not users.shape == items.shape == dscore.shape or users.ndim != 1:
            raise ValueError(f"users, items and dscore must be 1-D of equal length, got "
                             f"{users.shape}, {items.shape}, {dscore.shape}")
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
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        dscore = np.asarray(dscore, dtype=np.float64)
        if not users.shape == items.shape == dscore.shape or users.ndim != 1:
            raise ValueError(f"users, items and dscore must be 1-D of equal length, got "
                             f"{users.shape}, {items.shape}, {dscore.shape}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        c = 2.0 * l2 / len(users)
        pu, qi = self.P[users], self.Q[items]
        bu, bi = self.b_user[users], self.b_item[items]
        np.add.at(self.P, users, -learning_rate * (dscore[:, None] * qi + c * pu))
        np.add.at(self.Q, items, -learning_rate * (dscore[:, None] * pu + c * qi))
        np.add.at(self.b_user, users, -learning_rate * (dscore + c * bu))
        np.add.at(self.b_item, items, -learning_rate * (dscore + c * bi))


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None = None):
    """Yield index arrays covering ``range(n)`` in batches (shuffled when ``rng`` is given)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for s in range(0, n, batch_size):
        yield order[s:s + batch_size]
