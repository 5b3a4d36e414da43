r"""Rare positives and cold starts: the tools of chapter 16.

* :func:`downsample_negatives` -- keep every positive and a share ``w`` of the negatives
  (He et al., 2014), and :func:`recalibrate` -- undo the shift that sampling puts into the
  predicted probability:

  .. math:: q = \frac{p}{p + (1 - p)/w} \iff \operatorname{logit} q = \operatorname{logit} p + \log w

* :func:`class_weights` -- per-row weights that give each class the same total weight;
* :func:`focal_loss` and :func:`focal_loss_grad` -- the focal loss of Lin et al. (2017)
  in NumPy, with its gradient with respect to the logit; :func:`keras_focal_loss` builds the
  same loss for Keras (Keras is imported only there);
* :func:`replay_bandit` -- the replay evaluator of Li et al. (2011) for an epsilon-greedy or
  a Beta-Bernoulli Thompson-sampling bandit on a log written by a *uniformly random* policy,
  and :func:`simulate_bandit` -- the same bandits run online against known click rates.

NumPy only at import time.
"""
from __future__ import annotations

from dataclasses import dataclass
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


# ------------------------------------------------------------------ bandit replay
BANDITS = ("uniform", "epsilon_greedy", "thompson")


@dataclass(frozen=True)
class ReplayResult:
    """Outcome of :func:`replay_bandit`: ``matched`` events (the policy chose the logged
    arm), their ``clicks``, ``ctr`` = clicks / matched (the replay estimate), ``ips`` = the
    same clicks weighted by 1 / propensity over all ``n`` events, and the bandit's final
    ``successes`` / ``failures`` per arm (its learned state)."""

    n: int
    matched: int
    clicks: int
    ctr: float
    ips: float
    successes: np.ndarray
    failures: np.ndarray


def _choose(policy: str, rng: np.random.Generator, n_arms: int, epsilon: float, a0: np.ndarray, b0: np.ndarray,
            s: np.ndarray, f: np.ndarray) -> int:
    """One decision of a Beta-Bernoulli bandit (see :func:`replay_bandit`)."""
    if policy == "uniform" or (policy == "epsilon_greedy" and rng.random() < epsilon):
        return int(rng.integers(n_arms))
    if policy == "epsilon_greedy":
        mean = (a0 + s) / (a0 + b0 + s + f)
        best = np.flatnonzero(mean == mean.max())
        return int(best[rng.integers(best.size)])
    return int(np.argmax(rng.beta(a0 + s, b0 + f)))


def _bandit_args(policy: str, n_arms: int, epsilon: float, prior_alpha: np.ndarray | float,
                 prior_beta: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    if policy not in BANDITS:
        raise ValueError(f"policy must be one of {BANDITS}, got {policy!r}")
    if not 0 <= epsilon <= 1:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    a0 = np.broadcast_to(np.asarray(prior_alpha, dtype=np.float64), (n_arms,))
    b0 = np.broadcast_to(np.asarray(prior_beta, dtype=np.float64), (n_arms,))
    if (a0 <= 0).any() or (b0 <= 0).any():
        raise ValueError("prior_alpha and prior_beta must be > 0")
    return a0, b0


def simulate_bandit(policy: str, true_rates: np.ndarray, n: int, *, epsilon: float = 0.1,
                    prior_alpha: np.ndarray | float = 1.0, prior_beta: np.ndarray | float = 1.0,
                    seed: int = 0) -> np.ndarray:
    r"""Run a bandit online for ``n`` rounds against arms whose click probabilities are
    ``true_rates`` (a simulation, not an evaluation on data); returns the cumulative clicks
    after each round. The same decisions as :func:`replay_bandit`. The expected regret after
    :math:`n` rounds is :math:`n \max_a \mu_a - \mathbb{E}[	ext{clicks}]`."""
    mu = np.asarray(true_rates, dtype=np.float64)
    if mu.ndim != 1 or mu.size < 2 or (mu < 0).any() or (mu > 1).any():
        raise ValueError("true_rates must be a 1-D array of at least two probabilities")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    k = mu.size
    a0, b0 = _bandit_args(policy, k, epsilon, prior_alpha, prior_beta)
    rng = np.random.default_rng(seed)
    s, f = np.zeros(k), np.zeros(k)
    clicks = np.empty(n, dtype=np.int64)
    total = 0
    u = np.random.default_rng([seed, 1]).random(n)          # the environment's draws, separate from the policy's
    for t in range(n):
        a = _choose(policy, rng, k, epsilon, a0, b0, s, f)
        if u[t] < mu[a]:
            s[a] += 1
            total += 1
        else:
            f[a] += 1
        clicks[t] = total
    return clicks


def replay_bandit(policy: str, arms: np.ndarray, rewards: np.ndarray, n_arms: int, *, epsilon: float = 0.1,
                  prior_alpha: np.ndarray | float = 1.0, prior_beta: np.ndarray | float = 1.0,
                  state: tuple[np.ndarray, np.ndarray] | None = None, seed: int = 0) -> ReplayResult:
    r"""Replay a bandit on a log written by a uniformly random policy (Li et al., 2011).

    The events are taken in order. At event :math:`t` the bandit picks an arm :math:`a`
    from its state; if :math:`a` equals the logged arm :math:`a_t`, the logged reward
    :math:`r_t` is revealed to it (counted and learned from), otherwise the event is
    skipped. Because the log chose each arm with probability :math:`1/K`, the matched events
    are a fair sample of what the bandit would have met online, and
    :math:`\widehat{\mathrm{CTR}} = \sum_t [a = a_t]\,r_t / \sum_t [a = a_t]`; the IPS form is
    :math:`K \sum_t [a = a_t]\, r_t / n`.

    Policies: ``"uniform"`` (a random arm), ``"epsilon_greedy"`` (with probability
    ``epsilon`` a random arm, otherwise the arm of highest posterior mean
    :math:`(\alpha_a + s_a) / (\alpha_a + \beta_a + s_a + f_a)`, ties at random),
    ``"thompson"`` (draw :math:`\theta_a \sim \mathrm{Beta}(\alpha_a + s_a, \beta_a + f_a)`,
    play the largest). ``state`` = (successes, failures) continues a bandit from an earlier
    replay.
    """
    arms = np.asarray(arms)
    rewards = _labels(rewards, "rewards")
    if arms.shape != rewards.shape:
        raise ValueError(f"arms and rewards must have equal shapes, got {arms.shape} and {rewards.shape}")
    if n_arms < 2 or arms.min() < 0 or arms.max() >= n_arms:
        raise ValueError(f"arms must be integers in 0..n_arms-1 with n_arms >= 2, got n_arms={n_arms}, "
                         f"range {arms.min()}..{arms.max()}")
    a0, b0 = _bandit_args(policy, n_arms, epsilon, prior_alpha, prior_beta)
    if state is None:
        s, f = np.zeros(n_arms), np.zeros(n_arms)
    else:
        s, f = (np.array(x, dtype=np.float64) for x in state)
        if s.shape != (n_arms,) or f.shape != (n_arms,):
            raise ValueError(f"state must be two arrays of length n_arms={n_arms}")
    rng = np.random.default_rng(seed)
    matched = clicks = 0
    for a_t, r_t in zip(arms.astype(np.int64), rewards):
        a = _choose(policy, rng, n_arms, epsilon, a0, b0, s, f)
        if a != a_t:
            continue
        matched += 1
        clicks += int(r_t)
        if r_t:
            s[a] += 1
        else:
            f[a] += 1
    n = int(arms.size)
    return ReplayResult(n, matched, clicks, clicks / matched if matched else float("nan"),
                        n_arms * clicks / n, s, f)
