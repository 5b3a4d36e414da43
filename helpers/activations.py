r"""Activation functions and their derivatives in NumPy, written to be numerically stable.

Every function takes an array-like ``x`` (a float array keeps its dtype; integers become
float64) and returns an array of the same shape. The derivatives are element-wise
:math:`f'(x)`, except :func:`softmax_jacobian`, which returns the full Jacobian.

Stability means: no overflow, no ``nan`` and no warning for any finite input, including
:math:`\pm 1000`. The naive formulas fail there: ``1 / (1 + np.exp(-x))`` overflows in
``exp`` for ``x = -1000`` and ``np.exp(x) / np.exp(x).sum()`` returns ``nan`` for
``x = [1000, 1000]``. The tricks used here are the standard ones:

* sigmoid: evaluate :math:`e^{-|x|}`, which lies in ``(0, 1]``, and pick the algebraically
  equal branch :math:`1/(1+e^{-x})` or :math:`e^{x}/(1+e^{x})` by the sign of ``x``;
* softplus / log-sigmoid: :math:`\log(1+e^{x}) = \max(x, 0) + \log(1 + e^{-|x|})`;
* softmax / log-softmax: subtract the row maximum first (softmax is shift-invariant).

Underflow to 0 (``exp(-1000)``) is harmless and is NumPy's default-ignored case.
Conventions match TensorFlow's gradients at the kinks: ``relu_grad(0) = 0``,
``leaky_relu_grad(0) = negative_slope``, ``elu_grad(0) = alpha``.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import special

_SQRT_2_OVER_PI = float(np.sqrt(2.0 / np.pi))
_GELU_CUBIC = 0.044715


def _as_float(x: np.ndarray | float) -> np.ndarray:
    """``x`` as a floating-point array (float inputs keep their precision)."""
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        return arr
    if arr.dtype.kind in "biu":
        return arr.astype(np.float64)
    raise TypeError(f"x must be a real numeric array, got dtype {arr.dtype}")


# ----------------------------------------------------------------------------- sigmoid
def sigmoid(x: np.ndarray | float) -> np.ndarray:
    r"""Logistic function :math:`\sigma(x) = \frac{1}{1+e^{-x}}`, range :math:`(0, 1)`.

    Stable form: with :math:`z = e^{-|x|} \in (0, 1]`,
    :math:`\sigma(x) = 1/(1+z)` for :math:`x \ge 0` and :math:`z/(1+z)` for :math:`x < 0`.
    (In floating point it rounds to exactly 1 from about :math:`x = 36.7` in float64 and
    :math:`x = 16.7` in float32; for negative ``x`` it stays a tiny positive number until
    :math:`e^{x}` underflows.)
    """
    x = _as_float(x)
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z)).astype(x.dtype, copy=False)


def sigmoid_grad(x: np.ndarray | float) -> np.ndarray:
    r""":math:`\sigma'(x) = \sigma(x)\,(1-\sigma(x))`, at most :math:`1/4` (at 0)."""
    s = sigmoid(x)
    return s * (1.0 - s)


def softplus(x: np.ndarray | float) -> np.ndarray:
    r""":math:`\mathrm{softplus}(x) = \log(1+e^{x}) = \max(x,0) + \log(1+e^{-|x|})`,
    range :math:`(0, \infty)`; its derivative is :math:`\sigma(x)`."""
    x = _as_float(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def log_sigmoid(x: np.ndarray | float) -> np.ndarray:
    r""":math:`\log\sigma(x) = -\mathrm{softplus}(-x)`, finite for every finite ``x``
    (``np.log(sigmoid(-1000))`` would be ``log(0) = -inf``)."""
    return -softplus(-_as_float(x))


# -------------------------------------------------------------------------------- tanh
def tanh(x: np.ndarray | float) -> np.ndarray:
    r""":math:`\tanh(x) = \frac{e^{x}-e^{-x}}{e^{x}+e^{-x}} = 2\sigma(2x) - 1`, range
    :math:`(-1, 1)`; ``np.tanh`` is already stable."""
    return np.tanh(_as_float(x))


def tanh_grad(x: np.ndarray | float) -> np.ndarray:
    r""":math:`\tanh'(x) = 1 - \tanh^2(x)`, at most 1 (at 0)."""
    t = tanh(x)
    return 1.0 - t * t


# ------------------------------------------------------------------------ ReLU family
def relu(x: np.ndarray | float) -> np.ndarray:
    r""":math:`\mathrm{ReLU}(x) = \max(0, x)`, range :math:`[0, \infty)`."""
    x = _as_float(x)
    return np.maximum(x, 0).astype(x.dtype, copy=False)


def relu_grad(x: np.ndarray | float) -> np.ndarray:
    r""":math:`[x > 0]`: 1 for positive inputs, 0 otherwise (0 at the kink, as in TF)."""
    x = _as_float(x)
    return (x > 0).astype(x.dtype)


def _check_slope(negative_slope: float) -> None:
    if not 0 <= negative_slope < 1:
        raise ValueError(f"negative_slope must be in [0, 1), got {negative_slope}")


def leaky_relu(x: np.ndarray | float, negative_slope: float = 0.2) -> np.ndarray:
    r""":math:`x` for :math:`x > 0`, :math:`a x` otherwise; range :math:`(-\infty, \infty)`.

    The default :math:`a = 0.2` is ``keras.activations.leaky_relu``'s; note that the Keras
    *layer* ``LeakyReLU`` defaults to 0.3 and PyTorch to 0.01.
    """
    _check_slope(negative_slope)
    x = _as_float(x)
    return np.where(x > 0, x, negative_slope * x).astype(x.dtype, copy=False)


def leaky_relu_grad(x: np.ndarray | float, negative_slope: float = 0.2) -> np.ndarray:
    r"""1 for :math:`x > 0`, :math:`a` otherwise."""
    _check_slope(negative_slope)
    x = _as_float(x)
    return np.where(x > 0, 1.0, negative_slope).astype(x.dtype)


def elu(x: np.ndarray | float, alpha: float = 1.0) -> np.ndarray:
    r""":math:`x` for :math:`x > 0`, :math:`\alpha(e^{x}-1)` otherwise; range
    :math:`(-\alpha, \infty)`. ``expm1`` keeps small negative inputs accurate and the
    unused branch is evaluated at :math:`\min(x, 0)`, so large ``x`` cannot overflow."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    x = _as_float(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)


def elu_grad(x: np.ndarray | float, alpha: float = 1.0) -> np.ndarray:
    r"""1 for :math:`x > 0`, :math:`\alpha e^{x}` otherwise."""
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    x = _as_float(x)
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0))).astype(x.dtype)


# -------------------------------------------------------------------------------- GELU
def gelu(x: np.ndarray | float, approximate: bool = False) -> np.ndarray:
    r"""Gaussian error linear unit :math:`\mathrm{GELU}(x) = x\,\Phi(x)`, with
    :math:`\Phi` the standard normal CDF; range about :math:`[-0.17, \infty)`.

    ``approximate=True`` uses
    :math:`\tfrac12 x\,(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715\,x^3)))`.
    Defaults follow ``keras.activations.gelu`` (exact); ``keras.ops.gelu`` defaults to
    the approximation.
    """
    x = _as_float(x)
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)
        return (0.5 * x * (1.0 + np.tanh(inner))).astype(x.dtype, copy=False)
    return (x * special.ndtr(x)).astype(x.dtype, copy=False)


def gelu_grad(x: np.ndarray | float, approximate: bool = False) -> np.ndarray:
    r""":math:`\mathrm{GELU}'(x) = \Phi(x) + x\,\varphi(x)` (exact), with :math:`\varphi`
    the standard normal density; the tanh form's derivative when ``approximate``."""
    x = _as_float(x)
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)
        t = np.tanh(inner)
        d_inner = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * x**2)
        return (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner).astype(x.dtype, copy=False)
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
    return (special.ndtr(x) + x * pdf).astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------- softmax
def _check_axis(x: np.ndarray, axis: int) -> None:
    if x.ndim == 0:
        raise ValueError("softmax needs at least a 1-D array of scores")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis {axis} is out of range for an array of shape {x.shape}")
    if x.shape[axis] == 0:
        raise ValueError(f"cannot take a softmax over an empty axis (shape {x.shape}, axis {axis})")


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    r""":math:`\mathrm{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}
    = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}` with :math:`m = \max_j x_j`.

    Every output lies in ``[0, 1]`` and they sum to 1 along ``axis``. After the shift the
    largest exponent is :math:`e^0 = 1`, so nothing overflows and the denominator is
    at least 1.
    """
    x = _as_float(x)
    _check_axis(x, axis)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    r""":math:`\log\mathrm{softmax}(x)_i = (x_i - m) - \log\sum_j e^{x_j - m}`,
    finite for finite inputs (``np.log(softmax(x))`` can be ``log(0) = -inf``)."""
    x = _as_float(x)
    _check_axis(x, axis)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax_jacobian(x: np.ndarray) -> np.ndarray:
    r"""Jacobian of the softmax over the last axis:
    :math:`\frac{\partial s_i}{\partial x_j} = s_i(\delta_{ij} - s_j)`, i.e.
    :math:`J = \mathrm{diag}(s) - s s^\top`.

    For ``x`` of shape ``(..., n)`` returns shape ``(..., n, n)``. Each row of :math:`J`
    sums to 0 (adding a constant to every score changes nothing).
    """
    s = softmax(x, axis=-1)
    return s[..., :, None] * (np.eye(s.shape[-1], dtype=s.dtype) - s[..., None, :])


#: ``name -> (f, f')`` for the element-wise activations, default parameters.
ACTIVATIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "elu": (elu, elu_grad),
    "gelu": (gelu, gelu_grad),
}

__all__ = [
    "ACTIVATIONS", "elu", "elu_grad", "gelu", "gelu_grad", "leaky_relu", "leaky_relu_grad",
    "log_sigmoid", "log_softmax", "relu", "relu_grad", "sigmoid", "sigmoid_grad", "softmax",
    "softmax_jacobian", "softplus", "tanh", "tanh_grad",
]
