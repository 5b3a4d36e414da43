r"""Privacy for a dot-product recommender, in NumPy: federated averaging, DP-SGD, the privacy
accountant and a membership-inference attack.

The model (:class:`DotModel`) is logistic matrix factorisation,
:math:`s_{ui} = p_u^\top q_i + b_i`, trained on binary cross-entropy
:math:`\ell = \log(1 + e^{s}) - y s` over positives and sampled negatives. Its gradient is
:math:`\partial\ell/\partial s = g = \sigma(s) - y`, so one example's gradient is
:math:`(g\,q_i` for :math:`p_u`, :math:`g\,p_u` for :math:`q_i`, :math:`g` for :math:`b_i)` and
its norm has a closed form (:func:`per_example_grad_norms`):

.. math:: \lVert\nabla\ell_{ui}\rVert_2 = |g|\,\sqrt{\lVert p_u\rVert^2 + \lVert q_i\rVert^2 + 1}.

* **FedAvg** (:func:`fedavg`; McMahan et al., 2017): each user is a client that keeps
  :math:`p_u` and its ratings; per round a fraction of clients trains locally from the
  server's item parameters and sends back only the change; the server adds the
  example-weighted mean change, :math:`Q \leftarrow Q + \eta_s \sum_k n_k \Delta Q_k / \sum_k n_k`.
* **DP-SGD** (:func:`dp_sgd_step`, :func:`train_dp_sgd`; Abadi et al., 2016): Poisson-sampled
  batches (rate :math:`q`), every example's gradient clipped to norm :math:`C`, Gaussian noise
  :math:`\mathcal N(0, \sigma^2 C^2)` added to every coordinate of the summed gradient,
  divided by the expected batch size :math:`qN`.
* **Accounting** (:func:`dp_epsilon`): :math:`\varepsilon` at a given :math:`\delta` for
  :math:`T` steps of the subsampled Gaussian mechanism, from ``dp-accounting``'s RDP or PLD
  accountant.
* **Membership inference** (:func:`membership_auc`): the attacker scores pairs by the model's
  logit and guesses "was in training" for high scores; the AUC over members vs non-members is
  0.5 when the model leaks nothing (Yeom et al., 2018).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["DotModel", "per_example_grad_norms", "dp_sgd_step", "train_dp_sgd", "dp_epsilon",
           "fedavg", "membership_auc", "fixed_negatives", "membership_holdout"]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _scatter(rows: np.ndarray, values: np.ndarray, n_rows: int) -> np.ndarray:
    """``out[r] = sum of values[k] with rows[k] == r`` (a sparse matrix product; much faster
    than ``np.add.at``)."""
    import scipy.sparse as sp

    m = sp.csr_array((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n_rows, len(rows)))
    return np.asarray(m @ values)


def _poisson_sample(n: int, q: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of a Poisson sample of ``range(n)`` (each kept with probability ``q``), drawn
    by geometric gaps in O(qn)."""
    size = int(q * n + 6 * np.sqrt(q * n) + 16)
    pos = np.cumsum(rng.geometric(q, size)) - 1
    while pos[-1] < n:
        pos = np.concatenate([pos, pos[-1] + np.cumsum(rng.geometric(q, size))])
    return pos[pos < n]


@dataclass
class DotModel:
    r"""Logistic MF :math:`s_{ui} = p_u^\top q_i + b_i`: ``P`` (users x d), ``Q`` (items x d),
    ``b`` (items)."""

    P: np.ndarray
    Q: np.ndarray
    b: np.ndarray

    @classmethod
    def init(cls, n_users: int, n_items: int, dim: int, std: float = 0.1, seed: int = 0) -> DotModel:
        """Entries of ``P`` and ``Q`` drawn from N(0, std^2), biases 0."""
        if min(n_users, n_items, dim) < 1 or std <= 0:
            raise ValueError(f"need n_users, n_items, dim >= 1 and std > 0; got {n_users}, {n_items}, {dim}, {std}")
        rng = np.random.default_rng(seed)
        return cls(rng.normal(0, std, (n_users, dim)), rng.normal(0, std, (n_items, dim)), np.zeros(n_items))

    def copy(self) -> DotModel:
        return DotModel(self.P.copy(), self.Q.copy(), self.b.copy())

    def logits(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """:math:`s_{ui}` for each pair (float32, the ``score_pairs`` of
        :func:`helpers.evaluation.evaluate_sampled`)."""
        users, items = np.asarray(users), np.asarray(items)
        return (np.einsum("ij,ij->i", self.P[users], self.Q[items]) + self.b[items]).astype(np.float32)

    @property
    def n_params(self) -> int:
        return int(self.P.size + self.Q.size + self.b.size)


def _check_pairs(users: np.ndarray, items: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    users, items, y = np.asarray(users, np.int64), np.asarray(items, np.int64), np.asarray(y, np.float64)
    if not (users.shape == items.shape == y.shape) or users.ndim != 1:
        raise ValueError(f"users, items, y must be 1-D of equal length; got {users.shape}, {items.shape}, {y.shape}")
    return users, items, y


def per_example_grad_norms(model: DotModel, users: np.ndarray, items: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Closed-form L2 norm of each example's loss gradient with respect to all parameters:
    :math:`|\sigma(s_{ui}) - y|\,\sqrt{\lVert p_u\rVert^2 + \lVert q_i\rVert^2 + 1}`."""
    users, items, y = _check_pairs(users, items, y)
    g = _sigmoid(model.logits(users, items).astype(np.float64)) - y
    return np.abs(g) * np.sqrt((model.P[users] ** 2).sum(1) + (model.Q[items] ** 2).sum(1) + 1.0)


def dp_sgd_step(model: DotModel, users: np.ndarray, items: np.ndarray, y: np.ndarray, *, lr: float,
                clip: float | None, noise_multiplier: float, expected_batch: float,
                rng: np.random.Generator) -> None:
    r"""One DP-SGD step in place on a sampled batch:

    .. math:: \tilde g = \frac{1}{qN}\Big(\sum_{k\in B} \nabla\ell_k \cdot
              \min\big(1, C / \lVert\nabla\ell_k\rVert\big) + \mathcal N(0, \sigma^2 C^2 I)\Big),
              \qquad \theta \leftarrow \theta - \eta\,\tilde g

    (``clip=None`` and ``noise_multiplier=0``: plain SGD on the batch's sum divided by
    ``expected_batch``). The noise goes to *every* parameter, touched by the batch or not."""
    users, items, y = _check_pairs(users, items, y)
    if lr <= 0 or expected_batch <= 0 or noise_multiplier < 0:
        raise ValueError("need lr > 0, expected_batch > 0 and noise_multiplier >= 0")
    if clip is None and noise_multiplier > 0:
        raise ValueError("noise is calibrated to the clip norm: pass clip with noise_multiplier > 0")
    pu, qi = model.P[users], model.Q[items]
    g = _sigmoid(np.einsum("ij,ij->i", pu, qi) + model.b[items]) - y
    if clip is not None:
        if clip <= 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        norms = np.abs(g) * np.sqrt((pu ** 2).sum(1) + (qi ** 2).sum(1) + 1.0)
        g = g * np.minimum(1.0, clip / np.maximum(norms, 1e-12))
    gP = _scatter(users, g[:, None] * qi, model.P.shape[0])
    gQ = _scatter(items, g[:, None] * pu, model.Q.shape[0])
    gb = np.bincount(items, weights=g, minlength=model.Q.shape[0])
    if noise_multiplier > 0:
        sd = noise_multiplier * clip
        gP += rng.normal(0, sd, gP.shape)
        gQ += rng.normal(0, sd, gQ.shape)
        gb += rng.normal(0, sd, gb.shape)
    step = lr / expected_batch
    model.P -= step * gP
    model.Q -= step * gQ
    model.b -= step * gb


def fixed_negatives(users: np.ndarray, items: np.ndarray, n_items: int, n_neg: int, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The DP-SGD data set: every positive ``(users[k], items[k])`` with label 1 and ``n_neg``
    negatives per positive drawn **once** (seeded, never a positive of that user), label 0.
    Returns ``(u, i, y)``; the privacy unit is one such pair."""
    from helpers.sampling import NegativeSampler

    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    neg = NegativeSampler(users, items, n_items).sample(users, n_neg, rng=np.random.default_rng(seed))
    u = np.concatenate([users, np.repeat(users, n_neg)])
    i = np.concatenate([items, neg.ravel()])
    y = np.concatenate([np.ones(len(users)), np.zeros(len(users) * n_neg)])
    return u, i, y


def train_dp_sgd(model: DotModel, users: np.ndarray, items: np.ndarray, y: np.ndarray, *, epochs: float,
                 sampling_rate: float, lr: float, clip: float | None = None, noise_multiplier: float = 0.0,
                 seed: int = 0) -> int:
    """DP-SGD (:func:`dp_sgd_step`) for ``epochs`` passes: ``T = round(epochs / q)`` steps,
    each on a Poisson sample (every pair joins independently with probability
    ``q = sampling_rate``). Returns ``T``, the number of
    steps to give :func:`dp_epsilon`."""
    users, items, y = _check_pairs(users, items, y)
    if not 0 < sampling_rate <= 1 or epochs <= 0:
        raise ValueError(f"need 0 < sampling_rate <= 1 and epochs > 0, got {sampling_rate}, {epochs}")
    rng = np.random.default_rng(seed)
    n = len(users)
    steps = max(1, int(round(epochs / sampling_rate)))
    for _ in range(steps):
        idx = _poisson_sample(n, sampling_rate, rng)
        dp_sgd_step(model, users[idx], items[idx], y[idx], lr=lr, clip=clip,
                    noise_multiplier=noise_multiplier, expected_batch=sampling_rate * n, rng=rng)
    return steps


def dp_epsilon(noise_multiplier: float, sampling_rate: float, steps: int, delta: float,
               accountant: str = "rdp") -> float:
    r""":math:`\varepsilon` of ``steps`` compositions of the Poisson-subsampled Gaussian
    mechanism (noise :math:`\sigma` = ``noise_multiplier``, rate :math:`q`) at ``delta``, from
    ``dp_accounting`` (``"rdp"``: Rényi DP, Mironov 2017; ``"pld"``: privacy loss
    distributions, tighter)."""
    import dp_accounting
    from dp_accounting import pld, rdp

    if noise_multiplier <= 0 or not 0 < sampling_rate <= 1 or steps < 1 or not 0 < delta < 1:
        raise ValueError(f"need noise_multiplier > 0, 0 < q <= 1, steps >= 1, 0 < delta < 1; got "
                         f"{noise_multiplier}, {sampling_rate}, {steps}, {delta}")
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
        int(steps))
    if accountant == "rdp":
        acc = rdp.RdpAccountant()
    elif accountant == "pld":
        acc = pld.PLDAccountant()
    else:
        raise ValueError(f"accountant must be 'rdp' or 'pld', got {accountant!r}")
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)  # RDP warns when an order fails to converge and drops it
    try:
        acc.compose(event)
        return float(acc.get_epsilon(delta))
    finally:
        absl_logger.setLevel(level)


def fedavg(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, *, dim: int = 32,
           rounds: int = 50, client_fraction: float = 0.1, local_steps: int = 5, lr: float = 1.0,
           server_lr: float = 1.0, n_neg: int = 4, std: float = 0.1, seed: int = 0,
           on_round_end: Callable[[int, DotModel], None] | None = None) -> DotModel:
    r"""Federated averaging of a :class:`DotModel`, one client per user.

    Each round a fraction ``client_fraction`` of users is drawn. Client :math:`k` (user
    :math:`u`) draws ``n_neg`` negatives per positive from items it has not rated, then takes
    ``local_steps`` full-batch gradient steps of size ``lr`` on its mean loss, updating its own
    :math:`p_u` (which never leaves it) and a local copy of the item parameters it touches. It
    sends :math:`\Delta Q_k, \Delta b_k` (zero outside its items) and its example count
    :math:`n_k`; the server applies

    .. math:: Q \leftarrow Q + \eta_s\,\frac{\sum_k n_k\,\Delta Q_k}{\sum_k n_k}

    (``server_lr`` :math:`\eta_s = 1` is McMahan et al.'s FedAvg). ``on_round_end(r, model)``
    is called after every round (``r`` from 1). Returns the model; ``P`` holds the clients'
    own embeddings (in a real deployment each stays on its device)."""
    from helpers.sampling import NegativeSampler

    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    if users.shape != items.shape or users.ndim != 1 or len(users) == 0:
        raise ValueError("users and items must be non-empty 1-D arrays of equal length")
    if not 0 < client_fraction <= 1 or rounds < 1 or local_steps < 1 or lr <= 0 or server_lr <= 0:
        raise ValueError("need 0 < client_fraction <= 1, rounds >= 1, local_steps >= 1, lr > 0, server_lr > 0")
    model = DotModel.init(n_users, n_items, dim, std, seed)
    rng = np.random.default_rng(seed)
    sampler = NegativeSampler(users, items, n_items)
    order = np.argsort(users, kind="stable")
    starts = np.searchsorted(users[order], np.arange(n_users + 1))
    active = np.flatnonzero(np.diff(starts) > 0)
    m = max(1, int(round(client_fraction * len(active))))
    for r in range(1, rounds + 1):
        chosen = np.sort(rng.choice(active, size=m, replace=False))
        # every chosen client's examples, in one array (clients are independent, so their
        # local steps run side by side); a client's local copy of item j is one "pair" row
        slices = [order[starts[u]:starts[u + 1]] for u in chosen]
        pos_client = np.repeat(np.arange(m), [len(s) for s in slices])
        pos_item = items[np.concatenate(slices)]
        neg = sampler.sample(chosen[pos_client], n_neg, rng=rng).ravel()
        ex_client = np.concatenate([pos_client, np.repeat(pos_client, n_neg)])
        ex_item = np.concatenate([pos_item, neg])
        y = np.concatenate([np.ones(len(pos_item)), np.zeros(len(neg))])
        keys, ex_pair = np.unique(ex_client * n_items + ex_item, return_inverse=True)
        pair_client, pair_item = keys // n_items, keys % n_items
        n_k = np.bincount(ex_client, minlength=m).astype(float)
        p = model.P[chosen].copy()
        q = model.Q[pair_item].copy()
        b = model.b[pair_item].copy()
        for _ in range(local_steps):
            pe, qe = p[ex_client], q[ex_pair]
            g = (_sigmoid(np.einsum("ij,ij->i", pe, qe) + b[ex_pair]) - y) / n_k[ex_client]
            p -= lr * _scatter(ex_client, g[:, None] * qe, m)
            q -= lr * _scatter(ex_pair, g[:, None] * pe, len(keys))
            b -= lr * np.bincount(ex_pair, weights=g, minlength=len(keys))
        model.P[chosen] = p
        w = n_k[pair_client][:, None]
        total = n_k.sum()
        model.Q += server_lr * _scatter(pair_item, w * (q - model.Q[pair_item]), n_items) / total
        model.b += server_lr * _scatter(pair_item, w[:, 0] * (b - model.b[pair_item]), n_items) / total
        if on_round_end is not None:
            on_round_end(r, model)
    return model


def membership_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    r"""AUC of the attack "higher score = was in training": the probability that a random
    member outscores a random non-member (ties count one half). 0.5 = no leak."""
    from helpers.metrics import auc

    a, b = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if a.ndim != 1 or b.ndim != 1 or len(a) == 0 or len(b) == 0:
        raise ValueError("member and non-member scores must be non-empty 1-D arrays")
    return auc(np.concatenate([np.ones(len(a)), np.zeros(len(b))]), np.concatenate([a, b]))


def membership_holdout(users: np.ndarray, items: np.ndarray, share: float = 0.1, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold back a random ``share`` of the rows (each row independently, seeded) as the
    non-members of a membership-inference attack: returns ``(users_in, items_in, users_out,
    items_out)``. Members and non-members then come from the same distribution, so an attack
    AUC above 0.5 measures what training on a row did, not a difference between the sets."""
    users, items = np.asarray(users), np.asarray(items)
    if users.shape != items.shape or users.ndim != 1 or not 0 < share < 1:
        raise ValueError(f"need 1-D users and items of equal length and 0 < share < 1; got "
                         f"{users.shape}, {items.shape}, {share}")
    out = np.random.default_rng(seed).random(len(users)) < share
    return users[~out], items[~out], users[out], items[out]
