r"""Off-policy evaluation: what would a *new* policy have earned, estimated from the log of an *old* one.

A logged round :math:`t` has a context :math:`x_t` (the user, the slot :math:`k_t`), the
action the logging policy :math:`\pi_0` took (item :math:`a_t`), its propensity
:math:`\pi_0(a_t \mid x_t)` and the reward :math:`r_t` (a click). A target policy
:math:`\pi_e` is a distribution over items for each context; its value is its expected
reward per round, :math:`V(\pi_e) = \mathbb E_x \sum_a \pi_e(a \mid x)\, q(x, a)` with
:math:`q(x, a) = \mathbb E[r \mid x, a]` (for clicks: the click-through rate it would get).

* :func:`ips_estimate`, :func:`snips_estimate`, :func:`dr_estimate` -- the three classic
  estimators with a normal-approximation interval over rounds (also importable from
  :mod:`helpers.stats`, where chapter 9 first used them);
* :func:`ope_bootstrap` -- the same estimates with percentile bootstrap intervals;
* :func:`bts_action_dist` -- the slot-wise action distribution of Bernoulli Thompson
  sampling with Beta priors (the Open Bandit Dataset's second logging policy), by Monte Carlo;
* :func:`greedy_slate_dist` -- the distribution of a policy that ranks items by a model's
  scores (deterministic, or epsilon-greedy);
* :func:`target_and_model_terms` -- per-round :math:`\pi_e(a_t \mid x_t, k_t)`,
  :math:`\hat q(x_t, a_t, k_t)` and :math:`\sum_a \pi_e(a \mid x_t, k_t)\,\hat q(x_t, a, k_t)`
  from ``(rounds, items, slots)`` arrays, the inputs of the estimators;
* :func:`synthetic_slot_log` -- a simulated uniform-random log whose true policy values
  are known, to test all of the above.

The definitions follow the Open Bandit Pipeline (Saito et al., 2021,
``obp.ope.InverseProbabilityWeighting`` and friends, version 0.4.1): the slot is part of
the context, ``action_dist[t, a, k]`` is :math:`\pi_e(a \mid x_t, k)` and the value is the
expected reward per impression. NumPy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from helpers.stats import Interval, _confidence, _sample

ESTIMATORS = ("IPS", "SNIPS", "DR")


# ------------------------------------------------------------------ the three estimators
def _ope_inputs(rewards: np.ndarray, target_prob: np.ndarray, logging_prob: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    r = _sample(rewards, "rewards")
    pe = _sample(target_prob, "target_prob")
    p0 = _sample(logging_prob, "logging_prob")
    if not r.shape == pe.shape == p0.shape:
        raise ValueError("rewards, target_prob and logging_prob need one value per logged round, got "
                         f"lengths {r.size}, {pe.size}, {p0.size}")
    if ((pe < 0) | (pe > 1)).any():
        raise ValueError("target_prob must be probabilities in [0, 1]")
    if ((p0 <= 0) | (p0 > 1)).any():
        raise ValueError("logging_prob must be probabilities in (0, 1]: an action the logging policy "
                         "could not take cannot be in its log, and a zero propensity makes the weight infinite")
    return r, pe / p0


def _model_terms(r: np.ndarray, reward_logged: np.ndarray, reward_target: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    q_log = _sample(reward_logged, "reward_logged")
    q_tgt = _sample(reward_target, "reward_target")
    if not q_log.shape == q_tgt.shape == r.shape:
        raise ValueError(f"reward_logged and reward_target need one value per round ({r.size}), got "
                         f"{q_log.size} and {q_tgt.size}")
    return q_log, q_tgt


def _normal_interval(terms: np.ndarray, estimate: float, scale: float, confidence: float) -> Interval:
    c = _confidence(confidence)
    h = float(stats.norm.ppf((1 + c) / 2) * terms.std(ddof=1) / np.sqrt(terms.size) / scale)
    return Interval(float(estimate), float(estimate) - h, float(estimate) + h, c)


def ips_estimate(rewards: np.ndarray, target_prob: np.ndarray, logging_prob: np.ndarray,
                 confidence: float = 0.95) -> Interval:
    r"""Inverse propensity scoring: the value of a target policy :math:`\pi_e` from rounds
    logged by a policy :math:`\pi_0` (Horvitz & Thompson, 1952; Precup et al., 2000):

    .. math:: \hat V_{\mathrm{IPS}} = \frac1n\sum_{t=1}^n w_t\, r_t,\qquad
              w_t = \frac{\pi_e(a_t \mid x_t)}{\pi_0(a_t \mid x_t)},

    where round :math:`t` showed action :math:`a_t` in context :math:`x_t` and got reward
    :math:`r_t` (e.g. a click). Unbiased whenever :math:`\pi_0 > 0` wherever
    :math:`\pi_e > 0`. ``target_prob[t]`` is :math:`\pi_e(a_t \mid x_t)`,
    ``logging_prob[t]`` :math:`\pi_0(a_t \mid x_t)` (the logged propensity). Interval:
    :math:`\hat V \pm z\, s(w r)/\sqrt n` (central limit theorem over rounds).
    """
    r, w = _ope_inputs(rewards, target_prob, logging_prob)
    terms = w * r
    return _normal_interval(terms, terms.mean(), 1.0, confidence)


def snips_estimate(rewards: np.ndarray, target_prob: np.ndarray, logging_prob: np.ndarray,
                   confidence: float = 0.95) -> Interval:
    r"""Self-normalised IPS (Swaminathan & Joachims, 2015): divide by the sum of the weights,

    .. math:: \hat V_{\mathrm{SNIPS}} = \frac{\sum_t w_t r_t}{\sum_t w_t},

    slightly biased but never outside the range of the rewards and usually less variable
    than IPS (the weights average to 1 only in expectation). Interval by the delta method:
    :math:`\hat V \pm z\, s\big(w (r - \hat V)\big) / (\sqrt n\,\bar w)`.
    """
    r, w = _ope_inputs(rewards, target_prob, logging_prob)
    if w.sum() == 0:
        raise ValueError("all importance weights are 0: the target policy never takes a logged action")
    v = float((w * r).sum() / w.sum())
    return _normal_interval(w * (r - v), v, float(w.mean()), confidence)


def dr_estimate(rewards: np.ndarray, target_prob: np.ndarray, logging_prob: np.ndarray,
                reward_logged: np.ndarray, reward_target: np.ndarray,
                confidence: float = 0.95) -> Interval:
    r"""Doubly robust estimate (Dudík, Langford & Li, 2011): a reward model
    :math:`\hat q(x, a)` plus an IPS correction of its error,

    .. math:: \hat V_{\mathrm{DR}} = \frac1n\sum_t\Big(\hat q_{\pi_e}(x_t)
              + w_t\,\big(r_t - \hat q(x_t, a_t)\big)\Big),\qquad
              \hat q_{\pi_e}(x_t) = \sum_a \pi_e(a \mid x_t)\,\hat q(x_t, a).

    ``reward_logged[t]`` is :math:`\hat q(x_t, a_t)`, ``reward_target[t]`` is
    :math:`\hat q_{\pi_e}(x_t)`. Unbiased if either the propensities or the reward model
    are right; a good model shrinks the variance. With :math:`\hat q = 0` it is IPS.
    The model must not have been fitted on the rounds it is evaluated on (fit it on other
    data or cross-fit it). Interval: :math:`\hat V \pm z\, s/\sqrt n` over the per-round terms.
    """
    r, w = _ope_inputs(rewards, target_prob, logging_prob)
    q_log, q_tgt = _model_terms(r, reward_logged, reward_target)
    terms = q_tgt + w * (r - q_log)
    return _normal_interval(terms, terms.mean(), 1.0, confidence)


# ------------------------------------------------------------------ bootstrap intervals
def ope_bootstrap(estimator: str, rewards: np.ndarray, target_prob: np.ndarray, logging_prob: np.ndarray,
                  reward_logged: np.ndarray | None = None, reward_target: np.ndarray | None = None,
                  n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                  return_replicates: bool = False) -> Interval | tuple[Interval, np.ndarray]:
    r"""``estimator`` (``"IPS"``, ``"SNIPS"`` or ``"DR"``) with a percentile bootstrap interval:
    resample the logged rounds with replacement ``n_resamples`` times, recompute the
    estimate on each resample (for SNIPS the ratio :math:`\sum w r / \sum w` of the
    resample), and take the :math:`(1 \mp c)/2` quantiles. The point estimate is the one on
    the whole log. Needs no normal approximation, which matters when a few heavily weighted
    clicks carry the estimate. With ``return_replicates`` also returns the resampled
    estimates (same seed and same number of rounds: the same resamples for every
    estimator, so differences between estimators can be paired).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100 for stable quantiles, got {n_resamples}")
    c = _confidence(confidence)
    r, w = _ope_inputs(rewards, target_prob, logging_prob)
    if estimator == "DR":
        if reward_logged is None or reward_target is None:
            raise ValueError("DR needs reward_logged and reward_target (the reward model's predictions)")
        q_log, q_tgt = _model_terms(r, reward_logged, reward_target)
        num, den = q_tgt + w * (r - q_log), np.ones_like(r)
    elif estimator == "SNIPS":
        if w.sum() == 0:
            raise ValueError("all importance weights are 0: the target policy never takes a logged action")
        num, den = w * r, w
    else:
        num, den = w * r, np.ones_like(r)
    rng = np.random.default_rng(seed)
    n = r.size
    reps = np.empty(n_resamples)
    for s in range(0, n_resamples, 200):             # bounded memory: 200 resamples at a time
        b = min(200, n_resamples - s)
        idx = rng.integers(0, n, size=(b, n))
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[s:s + b] = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    reps = reps[np.isfinite(reps)]                   # a SNIPS resample with no weight has no value
    lo, hi = np.quantile(reps, [(1 - c) / 2, (1 + c) / 2])
    iv = Interval(float(num.sum() / den.sum()), float(lo), float(hi), c)
    return (iv, reps) if return_replicates else iv


# ------------------------------------------------------------------ policies over slots
def bts_action_dist(alpha: np.ndarray, beta: np.ndarray, n_slots: int = 3, n_sim: int = 100_000,
                    seed: int = 0) -> np.ndarray:
    r"""Slot-wise action distribution of Bernoulli Thompson sampling, by Monte Carlo.

    Each impression draws :math:`\theta_a \sim \mathrm{Beta}(\alpha_a, \beta_a)` for every item
    and shows the items with the ``n_slots`` largest draws, the largest in slot 1. Returns
    ``(n_items, n_slots)``: entry :math:`(a, k)` is :math:`P(\text{item } a \text{ in slot } k)
    \approx \frac{1}{S}\sum_{s=1}^{S} [\text{rank}_s(a) = k]` over ``n_sim`` simulated impressions
    (``obp.policy.BernoulliTS.compute_batch_action_dist``, vectorised). Each column sums to 1.
    """
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    if alpha.ndim != 1 or alpha.shape != beta.shape:
        raise ValueError(f"alpha and beta must be 1-D of equal length (one per item), got {alpha.shape}, {beta.shape}")
    if (alpha <= 0).any() or (beta <= 0).any():
        raise ValueError("Beta parameters must be positive")
    if not 1 <= int(n_slots) <= alpha.size:
        raise ValueError(f"n_slots must be in 1..{alpha.size} (the number of items), got {n_slots}")
    if int(n_sim) < 1:
        raise ValueError(f"n_sim must be a positive integer, got {n_sim}")
    n_slots, n_items = int(n_slots), alpha.size
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_items, n_slots))
    for s in range(0, int(n_sim), 20_000):
        b = min(20_000, int(n_sim) - s)
        theta = rng.beta(alpha, beta, size=(b, n_items))
        top = np.argsort(-theta, axis=1)[:, :n_slots]
        for k in range(n_slots):
            counts[:, k] += np.bincount(top[:, k], minlength=n_items)
    return counts / int(n_sim)


def greedy_slate_dist(scores: np.ndarray, n_slots: int = 3, epsilon: float = 0.0) -> np.ndarray:
    r"""The action distribution of a policy that ranks items by ``scores``.

    ``scores`` is ``(n_rounds, n_items)``: a model's score of each item in each round's context.
    The greedy slate puts the best item in slot 1, the second in slot 2, ... (ties broken by
    the lower item index). With probability ``epsilon`` the policy shows a uniformly random
    item instead (epsilon-greedy), so

    .. math:: \pi_e(a \mid x, k) = (1 - \varepsilon)\,[a = \text{the } k\text{-th best item}]
              + \varepsilon / n_{\text{items}}.

    Returns ``(n_rounds, n_items, n_slots)``; every ``[t, :, k]`` sums to 1. A deterministic
    policy (``epsilon = 0``) gets an importance weight only where it agrees with the log.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (rounds, items), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    if not 1 <= int(n_slots) <= s.shape[1]:
        raise ValueError(f"n_slots must be in 1..{s.shape[1]} (the number of items), got {n_slots}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon is a probability in [0, 1], got {epsilon}")
    n, m = s.shape
    top = np.argsort(-s, axis=1, kind="stable")[:, :int(n_slots)]
    dist = np.full((n, m, int(n_slots)), epsilon / m)
    for k in range(int(n_slots)):
        dist[np.arange(n), top[:, k], k] += 1.0 - epsilon
    return dist


def target_and_model_terms(action_dist: np.ndarray, items: np.ndarray, slots: np.ndarray,
                           q_hat: np.ndarray | None = None
                           ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    r"""Per-round inputs of the estimators from whole distributions.

    ``action_dist`` is ``(n_items, n_slots)`` (a context-free policy) or
    ``(n_rounds, n_items, n_slots)``; ``items[t]`` and ``slots[t]`` (0-based) are the logged
    item and slot; ``q_hat`` (optional, ``(n_rounds, n_items, n_slots)``) a reward model's
    prediction for every item in every slot of each round. Returns

    * ``target_prob[t]`` :math:`= \pi_e(a_t \mid x_t, k_t)`,
    * ``reward_logged[t]`` :math:`= \hat q(x_t, a_t, k_t)`,
    * ``reward_target[t]`` :math:`= \sum_a \pi_e(a \mid x_t, k_t)\, \hat q(x_t, a, k_t)`

    (the last two ``None`` without ``q_hat``), as in ``obp.ope.DoublyRobust``.
    """
    items = np.asarray(items)
    slots = np.asarray(slots)
    if items.ndim != 1 or items.shape != slots.shape:
        raise ValueError(f"items and slots must be 1-D of equal length, got {items.shape}, {slots.shape}")
    d = np.asarray(action_dist, dtype=np.float64)
    n = items.size
    if d.ndim == 2:
        d = np.broadcast_to(d, (n,) + d.shape)
    if d.ndim != 3 or d.shape[0] != n:
        raise ValueError(f"action_dist must be (items, slots) or (rounds={n}, items, slots), got {np.shape(action_dist)}")
    if items.min() < 0 or items.max() >= d.shape[1] or slots.min() < 0 or slots.max() >= d.shape[2]:
        raise ValueError(f"items must be in 0..{d.shape[1] - 1} and slots (0-based) in 0..{d.shape[2] - 1}")
    if ((d < 0) | (d > 1 + 1e-9)).any():
        raise ValueError("action_dist must hold probabilities")
    t = np.arange(n)
    target = d[t, items, slots]
    if q_hat is None:
        return target, None, None
    q = np.asarray(q_hat, dtype=np.float64)
    if q.shape != d.shape:
        raise ValueError(f"q_hat must be (rounds, items, slots) = {d.shape}, got {q.shape}")
    return target, q[t, items, slots], np.einsum("ti,ti->t", d[t, :, slots], q[t, :, slots])


# ------------------------------------------------------------------ a log with known truth
@dataclass(frozen=True)
class SyntheticLog:
    """A simulated uniform-random log (:func:`synthetic_slot_log`). ``q_true[t, a, k]`` is
    the true click probability of item ``a`` in slot ``k`` in round ``t``'s context."""

    context: np.ndarray
    items: np.ndarray
    slots: np.ndarray
    rewards: np.ndarray
    logging_prob: np.ndarray
    q_true: np.ndarray

    def true_value(self, action_dist: np.ndarray) -> float:
        r"""The policy's value in these rounds' contexts and slots:
        :math:`\frac1n\sum_t \sum_a \pi_e(a \mid x_t, k_t)\, q(x_t, a, k_t)` (no sampling noise
        from the clicks)."""
        _, _, v = target_and_model_terms(action_dist, self.items, self.slots, self.q_true)
        return float(v.mean())


def synthetic_slot_log(n_rounds: int = 20_000, n_items: int = 20, n_slots: int = 3, n_contexts: int = 5,
                       base_ctr: float = 0.02, seed: int = 0) -> SyntheticLog:
    r"""A uniform-random log with known click probabilities, for testing estimators.

    Context :math:`x_t` uniform over ``n_contexts`` user types, slot :math:`k_t` uniform,
    item :math:`a_t` uniform (propensity :math:`1/n_{\text{items}}`), and

    .. math:: q(x, a, k) = \sigma\big(\operatorname{logit}(b) + \beta_a + \gamma_{x a} - 0.4\,k\big),

    with item effects :math:`\beta_a \sim N(0, 0.5^2)`, context-item effects
    :math:`\gamma_{xa} \sim N(0, 0.5^2)` and a position penalty per slot;
    :math:`r_t \sim \mathrm{Bernoulli}(q(x_t, a_t, k_t))`. Seeded.
    """
    for name, v in (("n_rounds", n_rounds), ("n_items", n_items), ("n_slots", n_slots), ("n_contexts", n_contexts)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v}")
    if n_slots > n_items:
        raise ValueError(f"n_slots ({n_slots}) cannot exceed n_items ({n_items})")
    if not 0 < base_ctr < 1:
        raise ValueError(f"base_ctr must be in (0, 1), got {base_ctr}")
    rng = np.random.default_rng(seed)
    item_eff = rng.normal(0, 0.5, n_items)
    ctx_item = rng.normal(0, 0.5, (n_contexts, n_items))
    slot_eff = -0.4 * np.arange(n_slots)
    logit = (np.log(base_ctr / (1 - base_ctr)) + item_eff[None, :, None] + ctx_item[:, :, None]
             + slot_eff[None, None, :])
    q_ctx = 1 / (1 + np.exp(-logit))                        # (contexts, items, slots)
    context = rng.integers(0, n_contexts, n_rounds)
    items = rng.integers(0, n_items, n_rounds)
    slots = rng.integers(0, n_slots, n_rounds)
    q_true = q_ctx[context]
    rewards = (rng.random(n_rounds) < q_true[np.arange(n_rounds), items, slots]).astype(np.float64)
    return SyntheticLog(context, items, slots, rewards, np.full(n_rounds, 1.0 / n_items), q_true)


# ------------------------------------------------------------------ the Open Bandit BTS prior
#: Beta priors (alpha, beta) per item of the Bernoulli Thompson sampling policy that logged the
#: Open Bandit Dataset's "bts" logs, men's and women's campaigns, items in the order of the
#: campaign's ``item_id``. Copied from the Open Bandit Pipeline 0.4.1,
#: ``obp/policy/conf/prior_bts.yaml`` (Saito et al., 2021; Apache License 2.0), the values
#: ``obp.policy.BernoulliTS(is_zozotown_prior=True)`` uses.
ZOZOTOWN_BTS_PRIOR: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "men": (
        (47, 8, 62, 142, 3, 6, 100, 48, 23, 71, 61, 13, 16, 518, 30, 7, 4, 23, 8, 10, 11, 11, 18, 121,
         11, 4, 32, 30, 9, 22, 6, 23, 5, 54),
        (12198, 3566, 15993, 35522, 2367, 3100, 24665, 13210, 7061, 18061, 17449, 5644, 6787, 111326,
         8776, 3334, 2271, 7389, 2659, 3665, 4724, 3561, 5085, 27407, 4601, 2923, 8897, 8654, 4000, 6580,
         3174, 6766, 2602, 14506),
    ),
    "women": (
        (12, 7, 984, 13, 15, 15, 11, 14, 9, 200, 72, 3, 14, 49, 1278, 3, 325, 14, 27, 14, 169, 48, 47,
         18, 40, 12, 447, 46, 5, 3, 5, 7, 35, 34, 99, 30, 880, 51, 182, 6, 45, 39, 10, 24, 72, 229),
        (3612, 3173, 204484, 4517, 4765, 5331, 4131, 4728, 4028, 44280, 17918, 2309, 4339, 12922, 270771,
         2480, 68475, 5129, 7367, 5819, 38026, 13047, 11604, 5394, 10912, 4439, 94485, 10700, 2679, 2319,
         2578, 3288, 9566, 9775, 20120, 7317, 172026, 13673, 37329, 3365, 10911, 10734, 4278, 7574,
         16826, 47462),
    ),
}
