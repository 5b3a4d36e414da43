r"""Bandits: exploration policies and their offline evaluation (chapter 16).

* :func:`replay_bandit` -- the replay evaluator of Li et al. (2011) for an epsilon-greedy or
  a Beta-Bernoulli Thompson-sampling bandit on a log written by a *uniformly random* policy:
  an event counts only when the bandit would have shown the logged item, and then the bandit
  learns from its click; the replay CTR is the SNIPS estimate of :mod:`helpers.ope` for this
  policy, the IPS form :math:`K \cdot \text{clicks} / n`;
* :func:`simulate_bandit` -- the same bandits run online against known click rates.

NumPy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.imbalance import _labels

__all__ = ["BANDITS", "ReplayResult", "simulate_bandit", "replay_bandit"]


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
