r"""Gradient-based optimizers from scratch in NumPy (chapters 4 and 5).

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

The model these chapters train with them, a NumPy matrix factorisation with analytic
gradients, lives in :mod:`helpers.factorization` (:class:`helpers.factorization.MatrixFactorization`);
``helpers.optim.MatrixFactorization`` still resolves to it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None = None):
    """Yield index arrays covering ``range(n)`` in batches (shuffled when ``rng`` is given)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for s in range(0, n, batch_size):
        yield order[s:s + batch_size]


def __getattr__(name: str):
    """``helpers.optim.MatrixFactorization`` (its home before :mod:`helpers.factorization`)."""
    if name == "MatrixFactorization":
        from helpers.factorization import MatrixFactorization
        return MatrixFactorization
    raise AttributeError(f"module 'helpers.optim' has no attribute {name!r}")
