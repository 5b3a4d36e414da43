r"""Click-through-rate prediction: the measures an ads or shop team reads, and the simplest baselines.

* :func:`normalized_entropy` -- log loss divided by the entropy of the background click rate
  (He et al., 2014): below 1 the model knows more than the average CTR;
* :func:`reliability_bins`, :func:`expected_calibration_error` -- calibration (does a
  predicted 2 % mean 2 % clicks?), with bins of equal count, which suit rare clicks;
* :func:`smoothed_rate` -- a click rate per group shrunk towards the overall rate
  (a Beta prior), the item-popularity and position baselines;
* :func:`metric_interval`, :func:`paired_metric_difference` -- bootstrap intervals over
  impressions for any of these measures, and for the difference between two models scored on
  the same impressions.

NumPy only; AUC and log loss come from :mod:`helpers.metrics`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from helpers.metrics import auc, log_loss
from helpers.stats import Interval, _confidence


def _labels_probs(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"y and p must be 1-D of equal length, got shapes {y.shape} and {p.shape}")
    if y.size == 0:
        raise ValueError("y and p are empty")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold 0/1 click labels")
    if not np.isfinite(p).all() or ((p < 0) | (p > 1)).any():
        raise ValueError("p must be probabilities in [0, 1] (pass probabilities, not logits)")
    return y, p


def normalized_entropy(y: np.ndarray, p: np.ndarray, base_rate: float | None = None, eps: float = 1e-7) -> float:
    r"""Normalised entropy (He et al., 2014): the log loss relative to always predicting the
    background click rate :math:`\bar p`,

    .. math:: \mathrm{NE} = \frac{-\frac1n\sum_i \big[y_i \log p_i + (1-y_i)\log(1-p_i)\big]}
              {-\big[\bar p \log \bar p + (1-\bar p)\log(1-\bar p)\big]}.

    NE = 1 is no better than the average CTR; lower is better. ``base_rate`` defaults to the
    click rate of ``y`` itself (He et al.'s definition); pass the training rate to ask
    whether the model beats the rate it could have known.
    """
    y, p = _labels_probs(y, p)
    b = float(y.mean()) if base_rate is None else float(base_rate)
    if not 0 < b < 1:
        raise ValueError(f"the background click rate must be in (0, 1), got {b} (need both labels)")
    h = -(b * np.log(b) + (1 - b) * np.log1p(-b))
    return log_loss(y, p, eps) / h


def reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10, strategy: str = "quantile"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Reliability-diagram bins: ``(count, mean predicted, observed click rate)`` per bin.

    ``strategy="quantile"`` puts (nearly) equal numbers of impressions in each bin, sorted
    by :math:`p` (with clicks at 0.5 %, equal-width bins over [0, 1] would leave all but the
    first empty); ``"uniform"`` uses equal widths on [0, 1]. Empty bins are dropped.
    """
    y, p = _labels_probs(y, p)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    if strategy == "quantile":
        order = np.argsort(p, kind="stable")
        bins = np.empty(p.size, dtype=np.int64)
        bins[order] = np.arange(p.size) * int(n_bins) // p.size
    elif strategy == "uniform":
        bins = np.minimum((p * n_bins).astype(np.int64), int(n_bins) - 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    count = np.bincount(bins, minlength=int(n_bins)).astype(np.float64)
    keep = count > 0
    mean_p = np.bincount(bins, weights=p, minlength=int(n_bins))[keep] / count[keep]
    rate = np.bincount(bins, weights=y, minlength=int(n_bins))[keep] / count[keep]
    return count[keep], mean_p, rate


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10, strategy: str = "quantile") -> float:
    r"""Expected calibration error over the bins of :func:`reliability_bins`,

    .. math:: \mathrm{ECE} = \sum_b \frac{n_b}{n}\,\big|\bar p_b - \bar y_b\big|,

    in the units of the prediction (a CTR of 0.5 % has ECE in the same thousandths). It
    depends on the binning, and on rare clicks a perfectly calibrated model still has
    ECE > 0 from the noise in :math:`\bar y_b`; compare models on the same bins.
    """
    count, mean_p, rate = reliability_bins(y, p, n_bins, strategy)
    return float(np.sum(count / count.sum() * np.abs(mean_p - rate)))


def smoothed_rate(clicks: np.ndarray, shows: np.ndarray, prior_rate: float, prior_strength: float) -> np.ndarray:
    r"""Click rate per group shrunk towards ``prior_rate``:

    .. math:: \hat p_g = \frac{c_g + m\,p_0}{n_g + m},

    the posterior mean under a :math:`\mathrm{Beta}(m p_0, m (1 - p_0))` prior; :math:`m`
    (``prior_strength``, in impressions) says how many impressions a group needs before its
    own rate counts as much as the prior. A group never shown gets :math:`p_0`.
    """
    c = np.asarray(clicks, dtype=np.float64)
    n = np.asarray(shows, dtype=np.float64)
    if c.shape != n.shape or (c < 0).any() or (c > n).any():
        raise ValueError("clicks and shows must have the same shape with 0 <= clicks <= shows")
    if not 0 < prior_rate < 1 or prior_strength < 0:
        raise ValueError(f"need 0 < prior_rate < 1 and prior_strength >= 0, got {prior_rate}, {prior_strength}")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (c + prior_strength * prior_rate) / (n + prior_strength)
    return np.where(n + prior_strength > 0, out, prior_rate)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "AUC": auc,
    "log loss": log_loss,
    "NE": normalized_entropy,
    "ECE": expected_calibration_error,
}


def _metric(metric: str | Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)} or a function (y, p) -> float, got {metric!r}")
    return METRICS[metric]


def _resamples(n: int, y: np.ndarray, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Index resamples of the impressions, each holding at least one click and one non-click."""
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples}")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n_resamples:
        idx = rng.integers(0, n, n)
        s = y[idx].sum()
        if 0 < s < n:
            out.append(idx)
    return out


def metric_interval(y: np.ndarray, p: np.ndarray, metric: str | Callable[[np.ndarray, np.ndarray], float] = "AUC",
                    n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """A CTR measure (``"AUC"``, ``"log loss"``, ``"NE"``, ``"ECE"`` or a function) with a
    percentile bootstrap interval over impressions (resamples without both labels are
    redrawn). NE is recomputed with each resample's own click rate."""
    y, p = _labels_probs(y, p)
    f = _metric(metric)
    c = _confidence(confidence)
    reps = np.array([f(y[i], p[i]) for i in _resamples(y.size, y, n_resamples, seed)])
    lo, hi = np.quantile(reps, [(1 - c) / 2, (1 + c) / 2])
    return Interval(float(f(y, p)), float(lo), float(hi), c)


def paired_metric_difference(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray,
                             metric: str | Callable[[np.ndarray, np.ndarray], float] = "AUC",
                             n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    r"""Metric of model ``b`` minus metric of model ``a`` on the same impressions, with a
    paired percentile bootstrap interval: each resample draws impressions with replacement
    and scores *both* models on it, so the luck of the draw cancels in the difference. If the
    interval holds 0, the data do not tell the two apart."""
    y, p_a = _labels_probs(y, p_a)
    _, p_b = _labels_probs(y, p_b)
    f = _metric(metric)
    c = _confidence(confidence)
    reps = np.array([f(y[i], p_b[i]) - f(y[i], p_a[i]) for i in _resamples(y.size, y, n_resamples, seed)])
    lo, hi = np.quantile(reps, [(1 - c) / 2, (1 + c) / 2])
    return Interval(float(f(y, p_b) - f(y, p_a)), float(lo), float(hi), c)
