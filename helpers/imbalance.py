r"""Rare positives and cold starts: the tools of chapter 16.

* :func:`downsample_negatives` -- keep every positive and a share ``w`` of the negatives
  (He et al., 2014), and :func:`recalibrate` -- undo the shift that sampling puts into the
  predicted probability:

  .. math:: q = \frac{p}{p + (1 - p)/w} \iff \operatorname{logit} q = \operatorname{logit} p + \log w

* :func:`class_weights` -- per-row weights that give each class the same total weight;
* :func:`focal_loss` and :func:`focal_loss_grad` -- the focal loss of Lin et al. (2017)
  in NumPy, with its gradient with respect to the logit; :func:`keras_focal_loss` builds the
  same loss for Keras (Keras is imported only there);
* the bandits of the chapter's exploration section live in :mod:`helpers.bandits`
  (``helpers.imbalance.replay_bandit`` and ``simulate_bandit`` still resolve to them).

NumPy only at import time.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_EPS = 1e-7


def _labels(y: np.ndarray, name: str = "y") -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of 0/1 labels, got shape {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold only 0 and 1")
    return y


def _rate(w: float) -> float:
    w = float(w)
    if not 0 < w <= 1:
        raise ValueError(f"the negative sampling rate w must be in (0, 1], got {w}")
    return w


def downsample_negatives(y: np.ndarray, w: float, seed: int = 0) -> np.ndarray:
    r"""Row indices (sorted) of a negative down-sample: every positive row and each negative
    row independently with probability ``w`` (0 < w <= 1).

    A model trained on the sample sees the positive rate inflated by about ``1 / w`` in the
    odds; :func:`recalibrate` maps its predictions back.
    """
    y = _labels(y)
    w = _rate(w)
    keep = (y == 1) | (np.random.default_rng(seed).random(y.size) < w)
    return np.flatnonzero(keep)


def recalibrate(p: np.ndarray, w: float) -> np.ndarray:
    r"""Probability under the full data from a probability ``p`` predicted by a model trained
    on a negative down-sample with rate ``w`` (He et al., 2014):

    .. math:: q = \frac{p}{p + (1 - p)/w}

    equivalently :math:`\operatorname{logit} q = \operatorname{logit} p + \log w`: sampling
    negatives with rate ``w`` multiplies the odds by ``1/w``, and this divides them back.
    """
    p = np.asarray(p, dtype=np.float64)
    w = _rate(w)
    if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1 or np.isnan(p).any()):
        raise ValueError("p must hold probabilities in [0, 1]")
    return p / (p + (1.0 - p) / w)


def class_weights(y: np.ndarray) -> np.ndarray:
    r"""Per-row weights that give both classes the same total ("balanced"):
    :math:`c_k = n / (2 n_k)` for class :math:`k`, so :math:`\sum_{i: y_i = 1} c_1 = \sum_{i:
    y_i = 0} c_0 = n/2` (scikit-learn's ``class_weight="balanced"``)."""
    y = _labels(y)
    n1 = y.sum()
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("y needs both classes to weight them")
    return np.where(y == 1, y.size / (2 * n1), y.size / (2 * n0))


def _focal_args(y: np.ndarray, p: np.ndarray, gamma: float, alpha: float | None) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y)
    p = np.asarray(p, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError(f"p must have the shape of y {y.shape}, got {p.shape}")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) or None, got {alpha}")
    return y, p


def focal_loss(y: np.ndarray, p: np.ndarray, gamma: float = 2.0, alpha: float | None = 0.25,
               reduce: bool = True) -> np.ndarray | float:
    r"""Binary focal loss (Lin et al., 2017), with :math:`p_t = p` if :math:`y = 1` else
    :math:`1 - p`, and :math:`\alpha_t = \alpha` if :math:`y = 1` else :math:`1 - \alpha`:

    .. math:: \mathrm{FL}(p_t) = -\alpha_t\,(1 - p_t)^{\gamma}\,\log p_t

    ``gamma = 0`` and ``alpha = None`` give the log loss. Probabilities are clipped to
    :math:`[10^{-7}, 1 - 10^{-7}]` as Keras does. Mean over rows if ``reduce``, else per row.
    """
    y, p = _focal_args(y, p, gamma, alpha)
    p = np.clip(p, _EPS, 1 - _EPS)
    pt = np.where(y == 1, p, 1 - p)
    a = 1.0 if alpha is None else np.where(y == 1, alpha, 1 - alpha)
    per = -a * (1 - pt) ** gamma * np.log(pt)
    return float(per.mean()) if reduce else per


def focal_loss_grad(y: np.ndarray, s: np.ndarray, gamma: float = 2.0, alpha: float | None = 0.25) -> np.ndarray:
    r"""Derivative of the per-row focal loss with respect to the logit :math:`s`
    (:math:`p = \sigma(s)`, no clipping):

    .. math::
        \frac{\partial \mathrm{FL}}{\partial s} =
        \begin{cases} \alpha\,(1 - p)^{\gamma}\,\big[\gamma\,p \log p - (1 - p)\big] & y = 1 \\
        (1 - \alpha)\,p^{\gamma}\,\big[p - \gamma\,(1 - p)\log(1 - p)\big] & y = 0 \end{cases}

    With ``gamma = 0`` and ``alpha = None`` this is :math:`p - y`, the log-loss gradient.
    """
    y, s = _focal_args(y, s, gamma, alpha)
    log_p = -np.logaddexp(0.0, -s)           # log sigma(s), stable
    log_1p = -np.logaddexp(0.0, s)           # log (1 - sigma(s))
    p, q = np.exp(log_p), np.exp(log_1p)
    a1, a0 = (1.0, 1.0) if alpha is None else (alpha, 1 - alpha)
    g1 = a1 * q ** gamma * (gamma * p * log_p - q)
    g0 = a0 * p ** gamma * (p - gamma * q * log_1p)
    return np.where(y == 1, g1, g0)


def keras_focal_loss(gamma: float = 2.0, alpha: float | None = 0.25) -> Any:
    r"""The focal loss of :func:`focal_loss` as a Keras loss ``f(y_true, y_pred)`` on
    probabilities (mean over the batch), written with ``keras.ops``."""
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) or None, got {alpha}")
    from keras import ops

    def loss(y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, _EPS, 1 - _EPS)
        pt = y_true * p + (1 - y_true) * (1 - p)
        a = 1.0 if alpha is None else y_true * alpha + (1 - y_true) * (1 - alpha)
        return ops.mean(-a * ops.power(1 - pt, gamma) * ops.log(pt))
    return loss


def __getattr__(name: str):
    """The bandit tools, which moved to :mod:`helpers.bandits`, under their old names here."""
    if name in ("BANDITS", "ReplayResult", "simulate_bandit", "replay_bandit"):
        from helpers import bandits
        return getattr(bandits, name)
    raise AttributeError(f"module 'helpers.imbalance' has no attribute {name!r}")
