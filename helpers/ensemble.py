r"""Blending rating predictors (chapter 7): least-squares weights fitted on held-out ratings."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["fit_blend", "blend"]


def fit_blend(predictions: Sequence[np.ndarray], ratings: np.ndarray) -> np.ndarray:
    r"""Least-squares blend weights on held-out ratings:
    :math:`w = \arg\min_w \lVert r - [\hat r^{(1)}, \dots, \hat r^{(m)}, 1]\, w\rVert^2`.

    ``predictions`` are the models' predictions for the *validation* ratings (never the test
    ratings: the weights are a fitted parameter). Returns ``m + 1`` weights, the last one the
    intercept; apply them with :func:`blend`.
    """
    ratings = np.asarray(ratings, dtype=np.float64)
    cols = [np.asarray(p, dtype=np.float64) for p in predictions]
    if not cols:
        raise ValueError("need at least one model's predictions")
    if any(c.shape != ratings.shape for c in cols):
        raise ValueError(f"every prediction vector must match the ratings' shape {ratings.shape}, "
                         f"got {[c.shape for c in cols]}")
    x = np.column_stack(cols + [np.ones_like(ratings)])
    return np.linalg.lstsq(x, ratings, rcond=None)[0]


def blend(predictions: Sequence[np.ndarray], weights: np.ndarray,
          clip: tuple[float, float] | None = (1.0, 5.0)) -> np.ndarray:
    """Weighted sum of the models' predictions plus the intercept (``weights`` from
    :func:`fit_blend`), clipped to the rating scale unless ``clip=None``."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) != len(predictions) + 1:
        raise ValueError(f"{len(predictions)} prediction vectors need {len(predictions) + 1} weights "
                         f"(one each plus the intercept), got {len(weights)}")
    out = weights[-1] + sum(w * np.asarray(p, dtype=np.float64) for w, p in zip(weights[:-1], predictions))
    return np.clip(out, *clip) if clip is not None else out
