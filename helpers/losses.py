r"""Loss functions for recommendation, from scratch in NumPy (chapter 4).

Every loss takes the model's raw outputs and the targets and returns the mean over all
elements (``reduction="mean"``, Keras's default ``"sum_over_batch_size"``) or the
element-wise values (``reduction="none"``). Each of the nine losses has a ``*_grad``
companion: the derivative of the *element-wise* loss with respect to the model output (the
prediction, the probability, the logits or the pair of scores), which is what a hand-written
training loop multiplies into the chain rule (divide by the batch size for the mean).

Three families, by the task they fit:

* **rating regression** (explicit feedback): :func:`mse`, :func:`mae`, :func:`huber`,
  :func:`smooth_l1`;
* **classification of interactions** (implicit feedback, clicks):
  :func:`binary_cross_entropy` (from probabilities), :func:`binary_cross_entropy_with_logits`
  (from scores, the numerically stable form), :func:`softmax_cross_entropy`, :func:`hinge`;
* **ranking** (one observed item against one unobserved item of the same user):
  :func:`bpr`, :func:`margin_ranking`.

The numerically delicate pieces (:func:`~helpers.activations.sigmoid`, :func:`~helpers.activations.log_sigmoid`, :func:`~helpers.activations.softplus`,
:func:`logsumexp`) never exponentiate a large positive number, so they are exact at
``|x| = 1000``. ``tests/test_losses.py`` checks every loss against ``keras.losses`` (or a
TensorFlow op where Keras has none) and every gradient against ``tf.GradientTape``.
"""
from __future__ import annotations

import numpy as np

# one stable implementation, in the module of its concern (re-exported: chapter 4 calls L.sigmoid)
from helpers.activations import log_sigmoid, sigmoid, softplus  # noqa: F401

_REDUCTIONS = ("mean", "sum", "none")

#: Keras's fuzz factor ``keras.config.epsilon()``: probabilities are clipped to [eps, 1 - eps].
EPSILON = 1e-7


# --------------------------------------------------------------------------- utilities
def _pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("y_true", "y_pred")
          ) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("empty input: a loss needs at least one element")
    return a, b


def _reduce(values: np.ndarray, reduction: str) -> np.ndarray | float:
    if reduction == "mean":
        return float(np.mean(values))
    if reduction == "sum":
        return float(np.sum(values))
    if reduction == "none":
        return values
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def logsumexp(z: np.ndarray, axis: int = -1) -> np.ndarray:
    r""":math:`\log \sum_k e^{z_k} = m + \log \sum_k e^{z_k - m}` with :math:`m = \max_k z_k`."""
    z = np.asarray(z, dtype=np.float64)
    m = np.max(z, axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(z - m), axis=axis))


# ------------------------------------------------------------------- rating regression
def mse(y_true: np.ndarray, y_pred: np.ndarray, reduction: str = "mean") -> np.ndarray | float:
    r"""Mean squared error, :math:`\ell(y, \hat y) = (\hat y - y)^2`.

    The loss of rating prediction (Netflix Prize, RMSE = :math:`\sqrt{\text{MSE}}`). Its
    minimiser is the conditional *mean* rating; large errors dominate it.
    """
    y, p = _pair(y_true, y_pred)
    return _reduce((p - y) ** 2, reduction)


def mse_grad(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    r""":math:`\partial \ell / \partial \hat y = 2(\hat y - y)` (element-wise)."""
    y, p = _pair(y_true, y_pred)
    return 2.0 * (p - y)


def mae(y_true: np.ndarray, y_pred: np.ndarray, reduction: str = "mean") -> np.ndarray | float:
    r"""Mean absolute error, :math:`\ell(y, \hat y) = |\hat y - y|`.

    Its minimiser is the conditional *median*; every error pulls with the same force
    (gradient :math:`\pm 1`), so outliers matter less than under MSE.
    """
    y, p = _pair(y_true, y_pred)
    return _reduce(np.abs(p - y), reduction)


def mae_grad(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    r""":math:`\partial \ell / \partial \hat y = \operatorname{sign}(\hat y - y)` (0 at 0)."""
    y, p = _pair(y_true, y_pred)
    return np.sign(p - y)


def huber(y_true: np.ndarray, y_pred: np.ndarray, delta: float = 1.0, reduction: str = "mean"
          ) -> np.ndarray | float:
    r"""Huber loss with threshold :math:`\delta > 0`, error :math:`e = \hat y - y`:

    .. math:: \ell_\delta(e) = \begin{cases} \tfrac12 e^2 & |e| \le \delta \\
              \delta\,(|e| - \tfrac12 \delta) & |e| > \delta \end{cases}

    Quadratic near zero, linear beyond :math:`\delta`: the gradient is capped at
    :math:`\pm\delta`, so large errors are penalised *less* than by MSE. Same as
    ``keras.losses.Huber(delta)``.
    """
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    y, p = _pair(y_true, y_pred)
    a = np.abs(p - y)
    return _reduce(np.where(a <= delta, 0.5 * a**2, delta * (a - 0.5 * delta)), reduction)


def huber_grad(y_true: np.ndarray, y_pred: np.ndarray, delta: float = 1.0) -> np.ndarray:
    r""":math:`\partial \ell_\delta / \partial \hat y = \operatorname{clip}(e, -\delta, \delta)`."""
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    y, p = _pair(y_true, y_pred)
    return np.clip(p - y, -delta, delta)


def smooth_l1(y_true: np.ndarray, y_pred: np.ndarray, beta: float = 1.0, reduction: str = "mean"
              ) -> np.ndarray | float:
    r"""Smooth L1 loss (Fast R-CNN; ``torch.nn.SmoothL1Loss``) with threshold :math:`\beta > 0`:

    .. math:: \ell_\beta(e) = \begin{cases} \tfrac{1}{2\beta} e^2 & |e| < \beta \\
              |e| - \tfrac12 \beta & |e| \ge \beta \end{cases}
              \;=\; \ell^{\text{Huber}}_{\delta=\beta}(e) / \beta .

    Huber divided by its threshold: the linear part has slope 1 (like MAE) instead of
    :math:`\delta`. With :math:`\beta = 1` the two are identical. Keras has no Smooth L1; the
    tests compare it with ``keras.losses.Huber(delta=beta) / beta``.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    return _reduce(np.asarray(huber(y_true, y_pred, delta=beta, reduction="none")) / beta, reduction)


def smooth_l1_grad(y_true: np.ndarray, y_pred: np.ndarray, beta: float = 1.0) -> np.ndarray:
    r""":math:`\partial \ell_\beta / \partial \hat y = \operatorname{clip}(e/\beta, -1, 1)`
    (:math:`e/\beta` inside the quadratic zone, :math:`\operatorname{sign}(e)` beyond it)."""
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    y, p = _pair(y_true, y_pred)
    return np.clip((p - y) / beta, -1.0, 1.0)


# ------------------------------------------------------------ binary classification
def binary_cross_entropy(y_true: np.ndarray, p: np.ndarray, eps: float = EPSILON,
                         reduction: str = "mean") -> np.ndarray | float:
    r"""Binary cross-entropy of *probabilities* :math:`p \in [0, 1]`, labels :math:`y \in \{0, 1\}`:

    .. math:: \ell(y, p) = -\,[\,y \log p + (1 - y)\log(1 - p)\,]

    with :math:`p` first clipped to :math:`[\epsilon, 1 - \epsilon]` as Keras does; without the
    clip a confident mistake gives :math:`\log 0 = -\infty`. The clip also caps the loss at
    :math:`-\log\epsilon \approx 16.12` here (float64) and zeroes the gradient beyond it
    (:func:`binary_cross_entropy_grad`). Keras computes in float32, where :math:`1 - 10^{-7}`
    rounds to :math:`1 - 2^{-23}`, so its cap is :math:`23 \ln 2 \approx 15.94`. Prefer
    :func:`binary_cross_entropy_with_logits`.
    """
    y, p = _pair(y_true, p, ("y_true", "p"))
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p must hold probabilities in [0, 1]; for raw scores use "
                         "binary_cross_entropy_with_logits")
    p = np.clip(p, eps, 1.0 - eps)
    return _reduce(-(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)), reduction)


def binary_cross_entropy_grad(y_true: np.ndarray, p: np.ndarray, eps: float = EPSILON) -> np.ndarray:
    r""":math:`\partial \ell / \partial p = -y/p + (1 - y)/(1 - p) = (p - y)/(p(1-p))` for
    :math:`p` inside :math:`[\epsilon, 1 - \epsilon]`, and **0** outside it, where the clip is
    flat (as in Keras's gradient). Chained with :math:`\partial p/\partial z = p(1-p)` it gives
    :math:`p - y`, except where the clip bites: a confident mistake gets no gradient at all."""
    y, p = _pair(y_true, p, ("y_true", "p"))
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p must hold probabilities in [0, 1]; for raw scores use "
                         "binary_cross_entropy_with_logits_grad")
    inside = (p >= eps) & (p <= 1.0 - eps)
    pc = np.clip(p, eps, 1.0 - eps)
    return np.where(inside, -y / pc + (1.0 - y) / (1.0 - pc), 0.0)


def binary_cross_entropy_with_logits(y_true: np.ndarray, logits: np.ndarray,
                                     reduction: str = "mean") -> np.ndarray | float:
    r"""Binary cross-entropy of a *score* (logit) :math:`z`, with :math:`p = \sigma(z)`:

    .. math:: \ell(y, z) = -\,[\,y \log\sigma(z) + (1-y)\log\sigma(-z)\,]
              = \max(z, 0) - y z + \log(1 + e^{-|z|}),

    exact for any :math:`z` (no :math:`\log 0`, no overflow). Same as
    ``keras.losses.BinaryCrossentropy(from_logits=True)`` and
    ``tf.nn.sigmoid_cross_entropy_with_logits``.
    """
    y, z = _pair(y_true, logits, ("y_true", "logits"))
    return _reduce(np.maximum(z, 0.0) - y * z + np.log1p(np.exp(-np.abs(z))), reduction)


def binary_cross_entropy_with_logits_grad(y_true: np.ndarray, logits: np.ndarray) -> np.ndarray:
    r""":math:`\partial \ell / \partial z = \sigma(z) - y`: prediction minus label."""
    y, z = _pair(y_true, logits, ("y_true", "logits"))
    return sigmoid(z) - y


def softmax_cross_entropy(labels: np.ndarray, logits: np.ndarray, reduction: str = "mean"
                          ) -> np.ndarray | float:
    r"""Softmax (categorical) cross-entropy over :math:`C` classes, e.g. the next item among
    :math:`C` candidates:

    .. math:: \ell(y, z) = -\sum_{c} y_c \log \operatorname{softmax}(z)_c
              = \log\sum_{c} e^{z_c} - \sum_c y_c z_c .

    ``logits`` has shape ``(n, C)``; ``labels`` is either ``(n,)`` integer class indices
    (``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``) or ``(n, C)`` rows of
    probabilities, e.g. one-hot (``keras.losses.CategoricalCrossentropy(from_logits=True)``).
    """
    labels, z = _class_targets(labels, logits)
    lse = logsumexp(z, axis=1)
    if labels.ndim == 1:
        values = lse - z[np.arange(z.shape[0]), labels]
    else:
        values = lse * labels.sum(axis=1) - (labels * z).sum(axis=1)
    return _reduce(values, reduction)


def _class_targets(labels: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked ``(labels, logits)`` for the softmax losses: ``(n, C)`` float logits and either
    ``(n,)`` integer class indices in ``[0, C)`` or ``(n, C)`` target rows."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (examples x classes), got shape {z.shape}")
    labels = np.asarray(labels)
    if labels.ndim == 1:
        if labels.shape[0] != z.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {z.shape[0]} rows of logits")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError("1-D labels must be integer class indices; pass (n, C) rows for soft labels")
        if (labels < 0).any() or (labels >= z.shape[1]).any():
            raise ValueError(f"class indices must lie in [0, {z.shape[1]})")
    elif labels.shape != z.shape:
        raise ValueError(f"labels must be (n,) indices or (n, C) like logits {z.shape}, got {labels.shape}")
    return labels, z


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    r""":math:`\operatorname{softmax}(z)_c = e^{z_c - m} / \sum_k e^{z_k - m}`, :math:`m = \max_k z_k`
    (the shift changes nothing mathematically and prevents overflow)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_cross_entropy_grad(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    r""":math:`\partial \ell / \partial z_c = \operatorname{softmax}(z)_c\,\sum_k y_k - y_c`:
    softmax minus one-hot for class indices (or for target rows that sum to 1). Shape of
    ``logits``; ``labels`` as in :func:`softmax_cross_entropy`."""
    labels, z = _class_targets(labels, logits)
    if labels.ndim == 1:
        q = np.zeros_like(z)
        q[np.arange(z.shape[0]), labels] = 1.0
    else:
        q = labels.astype(np.float64)
    return softmax(z, axis=1) * q.sum(axis=1, keepdims=True) - q


def hinge(y_true: np.ndarray, scores: np.ndarray, reduction: str = "mean") -> np.ndarray | float:
    r"""Hinge loss of a score :math:`s` for a label :math:`y \in \{-1, +1\}` (labels in
    :math:`\{0, 1\}` are mapped to :math:`\{-1, +1\}`, as in ``keras.losses.Hinge``):

    .. math:: \ell(y, s) = \max(0,\ 1 - y\,s).

    Zero once the example is on the right side with margin 1; no reward beyond that.
    """
    y, s = _pair(y_true, scores, ("y_true", "scores"))
    if np.isin(y, (0.0, 1.0)).all():
        y = 2.0 * y - 1.0
    elif not np.isin(y, (-1.0, 1.0)).all():
        raise ValueError("hinge labels must be -1/+1 (or 0/1)")
    return _reduce(np.maximum(0.0, 1.0 - y * s), reduction)


def hinge_grad(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    r""":math:`\partial \ell / \partial s = -y\,[\,y s < 1\,]` (0 at the kink :math:`ys = 1`,
    as TensorFlow's ``relu`` gradient); labels as in :func:`hinge`."""
    y, s = _pair(y_true, scores, ("y_true", "scores"))
    if np.isin(y, (0.0, 1.0)).all():
        y = 2.0 * y - 1.0
    elif not np.isin(y, (-1.0, 1.0)).all():
        raise ValueError("hinge labels must be -1/+1 (or 0/1)")
    return np.where(y * s < 1.0, -y, 0.0)


# -------------------------------------------------------------------- pairwise ranking
def bpr(pos_scores: np.ndarray, neg_scores: np.ndarray, reduction: str = "mean") -> np.ndarray | float:
    r"""Bayesian personalised ranking loss (Rendle et al., 2009) of a user's observed item
    :math:`i` against an unobserved item :math:`j`:

    .. math:: \ell = -\log \sigma(\hat x_{ui} - \hat x_{uj}) = \operatorname{softplus}(\hat x_{uj} - \hat x_{ui}).

    Only the *difference* of the two scores matters: the loss asks for the right order, not
    for particular values. Keras has no BPR loss; it equals ``-tf.math.log_sigmoid(d)``.
    """
    pos, neg = _pair(pos_scores, neg_scores, ("pos_scores", "neg_scores"))
    return _reduce(softplus(neg - pos), reduction)


def bpr_grad(pos_scores: np.ndarray, neg_scores: np.ndarray) -> np.ndarray:
    r""":math:`\partial \ell / \partial \hat x_{ui} = -\sigma(\hat x_{uj} - \hat x_{ui})
    = -\partial \ell / \partial \hat x_{uj}`."""
    pos, neg = _pair(pos_scores, neg_scores, ("pos_scores", "neg_scores"))
    return -sigmoid(neg - pos)


def margin_ranking(pos_scores: np.ndarray, neg_scores: np.ndarray, margin: float = 1.0,
                   reduction: str = "mean") -> np.ndarray | float:
    r"""Pairwise hinge (margin ranking) loss, as in WARP or ``torch.nn.MarginRankingLoss``:

    .. math:: \ell = \max(0,\ m - (\hat x_{ui} - \hat x_{uj})).

    Zero once the observed item beats the unobserved one by the margin :math:`m`; the
    hinge version of :func:`bpr` (compare ``softplus`` with ``max(0, .)``).
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    pos, neg = _pair(pos_scores, neg_scores, ("pos_scores", "neg_scores"))
    return _reduce(np.maximum(0.0, margin - (pos - neg)), reduction)


def margin_ranking_grad(pos_scores: np.ndarray, neg_scores: np.ndarray, margin: float = 1.0
                        ) -> np.ndarray:
    r""":math:`\partial \ell / \partial \hat x_{ui} = -[\,\hat x_{ui} - \hat x_{uj} < m\,]`."""
    pos, neg = _pair(pos_scores, neg_scores, ("pos_scores", "neg_scores"))
    return -((pos - neg) < margin).astype(np.float64)
