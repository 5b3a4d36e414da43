r"""Neural collaborative filtering (He et al., WWW 2017): GMF, the MLP tower, NeuMF, and a
fast training loop for implicit feedback.

All three models map a (user, item) pair to a **logit** :math:`s_{ui}`; the predicted
probability of an interaction is :math:`\hat y_{ui} = \sigma(s_{ui})`. Ranking only needs
the logit (the sigmoid is monotone), and the loss is computed from logits for numerical
stability.

* **GMF** (generalised matrix factorisation):
  :math:`s_{ui} = h^\top (p_u \odot q_i) + b`, a dot product with learned weights;
* **MLP**: :math:`z_0 = [p'_u; q'_i]`, :math:`z_l = \mathrm{ReLU}(W_l z_{l-1} + b_l)`,
  :math:`s_{ui} = h'^\top z_L + b'`;
* **NeuMF**: both towers with their own embeddings, fused by one output layer,
  :math:`s_{ui} = h^\top [p_u \odot q_i;\ z_L] + b`.

Pre-training (:func:`load_pretrained`) copies a trained GMF and MLP into NeuMF and sets
the output layer to :math:`[\alpha h_\text{GMF};\ (1-\alpha) h_\text{MLP}]`, bias
:math:`\alpha b_\text{GMF} + (1-\alpha) b_\text{MLP}`, so that the fused model starts out
as the :math:`\alpha`-blend of the two logits.

:func:`train_pointwise` minimises binary cross-entropy over the positives and
``n_neg`` fresh uniform negatives per positive drawn every epoch
(:class:`helpers.sampling.NegativeSampler`):

.. math:: \mathcal L = -\frac{1}{|B|}\sum_{(u,i,y)\in B}
          \big[y \log \sigma(s_{ui}) + (1-y)\log(1-\sigma(s_{ui}))\big]

Speed comes from doing per epoch what others do per sample: one vectorised draw of all
negatives, one shuffle, the epoch's arrays handed to TensorFlow once, and a compiled
(``tf.function``) training step on large batches. Layer names are fixed (``gmf_user``,
``gmf_item``, ``mlp_user``, ``mlp_item``, ``mlp_dense_0`` ..., ``output``) so that
weights can be moved between models by name. Optimisation settings come in one
:class:`helpers.training.TrainConfig`; validation and early stopping follow the book's one
rule (:func:`helpers.training.run_epochs`: epoch 0, the starting model, is a candidate).

:func:`pretrained_neumf` is the whole pre-training pipeline -- GMF, MLP, fusion,
fine-tuning -- once for a validation run and once more for the refit on training +
validation data with the epochs validation chose.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from helpers.evaluation import evaluate_full, evaluate_sampled
from helpers.repro import seed_everything
from helpers.sampling import NegativeSampler
from helpers.training import (EpochHistory, TrainConfig, Validation, compiled_epoch, pair_scorer,
                              run_epochs, user_scorer)

__all__ = [
    "build_gmf", "build_mlp", "build_neumf", "load_pretrained", "pair_scorer", "user_scorer",
    "pointwise_epoch", "weighted_bce", "History", "ranking_validation", "train_pointwise",
    "NeuMFSettings", "PretrainedNeuMF", "pretrained_neumf", "parse_layers", "TrainConfig",
]

_INIT_STD = 0.01  # N(0, 0.01^2) embeddings, as in the NCF paper's code


def _check_sizes(n_users: int, n_items: int) -> None:
    if int(n_users) < 1 or int(n_items) < 1:
        raise ValueError(f"n_users and n_items must be >= 1, got {n_users} and {n_items}")


def _check_layers(layers: Sequence[int]) -> tuple[int, ...]:
    layers = tuple(int(w) for w in layers)
    if len(layers) < 1 or any(w < 1 for w in layers):
        raise ValueError(f"layers must be positive widths, e.g. (64, 32, 16, 8); got {layers}")
    if layers[0] % 2:
        raise ValueError(
            f"layers[0] = {layers[0]} is the width of [user embedding; item embedding] and must "
            "be even (each embedding gets half)")
    return layers


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    return (keras.Input(shape=(), dtype="int32", name="user"),
            keras.Input(shape=(), dtype="int32", name="item"))


def _embedding(n: int, dim: int, name: str, std: float) -> keras.layers.Embedding:
    return keras.layers.Embedding(
        n, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=std), name=name)


def _gmf_tower(user, item, n_users: int, n_items: int, factors: int, std: float):
    p = _embedding(n_users, factors, "gmf_user", std)(user)
    q = _embedding(n_items, factors, "gmf_item", std)(item)
    return keras.layers.Multiply(name="gmf_product")([p, q])


def _mlp_tower(user, item, n_users: int, n_items: int, layers: tuple[int, ...], std: float):
    p = _embedding(n_users, layers[0] // 2, "mlp_user", std)(user)
    q = _embedding(n_items, layers[0] // 2, "mlp_item", std)(item)
    z = keras.layers.Concatenate(name="mlp_concat")([p, q])
    for k, width in enumerate(layers[1:]):
        z = keras.layers.Dense(width, activation="relu", name=f"mlp_dense_{k}")(z)
    return z


def _head(z) -> keras.KerasTensor:
    s = keras.layers.Dense(1, name="output")(z)
    return keras.layers.Reshape((), name="logit")(s)


def build_gmf(n_users: int, n_items: int, factors: int = 32, init_std: float = _INIT_STD,
              name: str = "gmf") -> keras.Model:
    r"""GMF: :math:`s_{ui} = h^\top(p_u \odot q_i) + b` with ``factors``-dimensional
    embeddings. Inputs ``[user, item]`` (int32 vectors), output the logit (one per pair)."""
    _check_sizes(n_users, n_items)
    if factors < 1:
        raise ValueError(f"factors must be >= 1, got {factors}")
    user, item = _inputs()
    return keras.Model([user, item], _head(_gmf_tower(user, item, n_users, n_items, factors, init_std)), name=name)


def build_mlp(n_users: int, n_items: int, layers: Sequence[int] = (64, 32, 16, 8),
              init_std: float = _INIT_STD, name: str = "mlp") -> keras.Model:
    r"""MLP tower: embeddings of size ``layers[0] // 2`` each, concatenated, then ReLU layers
    of widths ``layers[1:]`` (the last width is the *predictive factors*) and a linear
    output. ``layers=(64, 32, 16, 8)`` is the paper's tower for 8 predictive factors with
    32-dimensional embeddings."""
    _check_sizes(n_users, n_items)
    layers = _check_layers(layers)
    user, item = _inputs()
    return keras.Model([user, item], _head(_mlp_tower(user, item, n_users, n_items, layers, init_std)), name=name)


def build_neumf(n_users: int, n_items: int, factors: int = 32,
                layers: Sequence[int] = (64, 32, 16, 8), init_std: float = _INIT_STD,
                name: str = "neumf") -> keras.Model:
    r"""NeuMF: a GMF tower (``factors``) and an MLP tower (``layers``) with separate
    embeddings, concatenated into one linear output:
    :math:`s_{ui} = h^\top[p_u \odot q_i;\ z_L] + b`."""
    _check_sizes(n_users, n_items)
    if factors < 1:
        raise ValueError(f"factors must be >= 1, got {factors}")
    layers = _check_layers(layers)
    user, item = _inputs()
    g = _gmf_tower(user, item, n_users, n_items, factors, init_std)
    z = _mlp_tower(user, item, n_users, n_items, layers, init_std)
    fused = keras.layers.Concatenate(name="neumf_concat")([g, z])
    return keras.Model([user, item], _head(fused), name=name)


def load_pretrained(neumf: keras.Model, gmf: keras.Model, mlp: keras.Model, alpha: float = 0.5
                    ) -> keras.Model:
    r"""Initialise ``neumf`` from a trained ``gmf`` and ``mlp`` (in place; returns it).

    Embeddings and hidden layers are copied by name; the output layer becomes
    :math:`h = [\alpha h_\text{GMF};\ (1-\alpha) h_\text{MLP}]`,
    :math:`b = \alpha b_\text{GMF} + (1-\alpha) b_\text{MLP}`, so the fused logit equals
    :math:`\alpha s^\text{GMF}_{ui} + (1-\alpha) s^\text{MLP}_{ui}` before fine-tuning.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    names = [layer.name for layer in neumf.layers]
    if "neumf_concat" not in names:
        raise ValueError(f"{neumf.name!r} is not a NeuMF model from build_neumf (no 'neumf_concat' layer)")
    copied = []
    for src in (gmf, mlp):
        for layer in src.layers:
            if layer.name.startswith(("gmf_", "mlp_")) and layer.weights:
                target = neumf.get_layer(layer.name)
                shapes = [tuple(w.shape) for w in target.weights], [tuple(w.shape) for w in layer.weights]
                if shapes[0] != shapes[1]:
                    raise ValueError(f"layer {layer.name!r}: NeuMF has shapes {shapes[0]}, "
                                     f"{src.name!r} has {shapes[1]}; build them with the same sizes")
                target.set_weights(layer.get_weights())
                copied.append(layer.name)
    if not any(n.startswith("gmf_") for n in copied) or not any(n.startswith("mlp_") for n in copied):
        raise ValueError("expected a GMF model (gmf_* layers) and an MLP model (mlp_* layers)")
    h_g, b_g = gmf.get_layer("output").get_weights()
    h_m, b_m = mlp.get_layer("output").get_weights()
    neumf.get_layer("output").set_weights(
        [np.concatenate([alpha * h_g, (1 - alpha) * h_m]), alpha * b_g + (1 - alpha) * b_m])
    return neumf


# ----------------------------------------------------------------------------- training
def pointwise_epoch(sampler: NegativeSampler, users: np.ndarray, items: np.ndarray, n_neg: int,
                    rng: np.random.Generator, weights: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of pointwise training data, shuffled: every positive ``(users[k], items[k])``
    with label 1 and ``n_neg`` fresh negatives of the same user with label 0.

    Returns ``(u, i, y, w)`` of length ``len(users) * (1 + n_neg)`` (int32, int32, float32,
    float32). ``w`` is the training weight of each pair: ``weights[k]`` for positive ``k``
    *and* for its negatives (so weighting a positive is like repeating it with its
    negatives), all ones without ``weights``.
    """
    if n_neg < 1:
        raise ValueError(f"n_neg must be >= 1, got {n_neg}")
    users = np.asarray(users, dtype=np.int64)
    n_pos = len(users)
    if weights is None:
        w_pos = np.ones(n_pos, dtype=np.float32)
    else:
        w_pos = np.asarray(weights, dtype=np.float32)
        if w_pos.shape != users.shape or not np.all(np.isfinite(w_pos)) or np.any(w_pos < 0):
            raise ValueError(f"weights must be finite, non-negative and one per positive ({n_pos}), "
                             f"got shape {w_pos.shape}")
    neg = sampler.sample(users, n_neg, rng=rng)
    u = np.concatenate([users, np.repeat(users, n_neg)])
    i = np.concatenate([np.asarray(items, dtype=np.int64), neg.ravel()])
    y = np.zeros(n_pos * (1 + n_neg), dtype=np.float32)
    y[:n_pos] = 1.0
    w = np.concatenate([w_pos, np.repeat(w_pos, n_neg)])
    order = rng.permutation(len(u))
    return u[order].astype(np.int32), i[order].astype(np.int32), y[order], w[order]


def weighted_bce(y: tf.Tensor, logits: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    r"""Binary cross-entropy from logits, as a *weighted mean* over the batch:

    .. math:: \mathcal L = \frac{\sum_k w_k\,\big[\log(1 + e^{s_k}) - y_k s_k\big]}{\sum_k w_k}

    (the loss :func:`train_pointwise` minimises; with all :math:`w_k = 1` the plain mean).
    Keras' ``sample_weight`` divides by the batch size instead, so its loss scale would
    change with the weights' scale."""
    per_pair = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
    return tf.reduce_sum(w * per_pair) / tf.maximum(tf.reduce_sum(w), 1e-12)


History = EpochHistory  # what train_pointwise returns (helpers.training.EpochHistory)


def ranking_validation(users: np.ndarray, *, candidates: np.ndarray | None = None,
                       targets: np.ndarray | None = None, exclude: sp.csr_array | None = None,
                       monitor: str = "NDCG@10", patience: int | None = None,
                       restore_best: bool = True) -> Validation:
    """Validation of a (user, item) -> logit model by ranking each user's held-out item.

    With ``candidates`` (column 0 the held-out item, :func:`helpers.evaluation.sample_candidates`)
    the report holds the sampled ``HR@10``, ``NDCG@10`` and ``MRR``; with ``targets`` (the
    held-out items) and ``exclude`` (the users x items training matrix) also the
    full-ranking ``full HR@10``, ``full NDCG@10`` and ``full MRR`` (every item the user has
    not interacted with in training is a candidate, :func:`helpers.evaluation.evaluate_full`).
    ``monitor`` names the metric early stopping follows. Pass validation items here, never
    test items: choosing epochs on them is selecting on the test set.
    """
    users = np.asarray(users, dtype=np.int64)
    if candidates is None and targets is None:
        raise ValueError("pass candidates (sampled metrics), targets and exclude (full ranking), or both")
    if (targets is None) != (exclude is None):
        raise ValueError("full-ranking validation needs both targets and exclude")
    if candidates is not None and len(candidates) != len(users):
        raise ValueError(f"one candidate row per user: {len(users)} users, {len(candidates)} rows")
    if targets is not None and len(targets) != len(users):
        raise ValueError(f"one target per user: {len(users)} users, {len(targets)} targets")

    def evaluate(model: keras.Model) -> dict[str, float]:
        report: dict[str, float] = {}
        if candidates is not None:
            report.update(evaluate_sampled(pair_scorer(model), users, candidates))
        if targets is not None:
            full = evaluate_full(user_scorer(model, exclude.shape[1]), users, targets, exclude)
            report.update({f"full {k}": v for k, v in full.items()})
        return report

    return Validation(evaluate, monitor=monitor, patience=patience, restore_best=restore_best)


def train_pointwise(model: keras.Model, users: np.ndarray, items: np.ndarray, n_items: int,
                    config: TrainConfig | None = None, *, n_neg: int = 4,
                    weights: np.ndarray | None = None, validation: Validation | None = None,
                    on_epoch_end: Callable[[int, EpochHistory], None] | None = None) -> EpochHistory:
    r"""Train ``model`` (GMF, MLP or NeuMF) with binary cross-entropy on sampled negatives.

    Every epoch draws ``n_neg`` new uniform negatives per positive (never a training
    positive of that user), shuffles, and runs compiled steps of ``config.batch_size``
    pairs with the optimiser and learning-rate schedule of ``config``
    (:class:`helpers.training.TrainConfig`; default ``TrainConfig()``). With ``weights`` (one
    per positive, e.g. :func:`helpers.preprocessing.recency_weights`) each batch's loss is
    the weighted mean :math:`\sum_B w\,\ell / \sum_B w`, a positive's negatives sharing its
    weight (:func:`pointwise_epoch`, :func:`weighted_bce`).

    With ``validation`` (e.g. :func:`ranking_validation` on validation items) the model is
    evaluated before training and after every epoch, and the book's one early-stopping rule
    applies (:func:`helpers.training.run_epochs`): the model ends with the weights of its
    best validation epoch, which may be epoch 0, the model it started from. Returns the
    :class:`helpers.training.EpochHistory`.
    """
    config = TrainConfig() if config is None else config
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if users.shape != items.shape or users.ndim != 1 or len(users) == 0:
        raise ValueError(f"users and items must be non-empty 1-D arrays of equal length, got {users.shape} and {items.shape}")
    if n_neg < 1:
        raise ValueError(f"n_neg must be >= 1, got {n_neg}")
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != users.shape:
            raise ValueError(f"weights must have one entry per positive ({users.shape}), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.max() == 0:
            raise ValueError("weights must be finite and non-negative, and not all zero")
    rng = np.random.default_rng(config.seed)
    sampler = NegativeSampler(users, items, n_items)
    steps_per_epoch = -(-len(users) * (1 + n_neg) // config.batch_size)
    opt = config.optimizer(steps_per_epoch)
    variables = model.trainable_variables
    opt.build(variables)

    @tf.function(jit_compile=config.jit_compile, autograph=False)  # no tensor-dependent Python control flow
    def train_step(u: tf.Tensor, i: tf.Tensor, y: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model([u, i], training=True)
            loss = weighted_bce(y, logits, w)
        grads = tape.gradient(loss, variables)
        # Embedding gradients arrive as sparse IndexedSlices; the tables are small, and one
        # dense update is cheaper than Keras' per-slice bookkeeping.
        opt.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], variables))
        return loss

    train_epoch = compiled_epoch(train_step, config.batch_size)

    def one_epoch(epoch: int) -> float:
        u, i, y, w = pointwise_epoch(sampler, users, items, n_neg, rng, weights)
        return float(train_epoch(tf.constant(u), tf.constant(i), tf.constant(y), tf.constant(w)))

    return run_epochs(model, one_epoch, config.epochs, validation, on_epoch_end=on_epoch_end)


# ------------------------------------------------------------------ pre-trained NeuMF
@dataclass(frozen=True)
class NeuMFSettings:
    """Everything that defines pre-trained NeuMF: the sizes (``factors`` of the GMF tower,
    ``layers`` of the MLP tower), the training settings of its three stages (GMF, MLP,
    fine-tuning of the fused model), the blend ``alpha`` and the negatives per positive."""

    factors: int
    layers: tuple[int, ...]
    gmf: TrainConfig
    mlp: TrainConfig
    finetune: TrainConfig
    alpha: float = 0.5
    n_neg: int = 4

    @classmethod
    def from_choices(cls, gmf: dict, mlp: dict, finetune: dict) -> NeuMFSettings:
        """Settings from three validated choices (:func:`helpers.tuning.read_choice`): the GMF
        search's ``factors``, ``n_neg`` and training settings, the MLP search's ``layers``
        (a tuple or a string such as ``"64-32-16-8"``) and training settings, and the
        fine-tuning search's training settings and ``alpha``."""
        return cls(factors=int(gmf["factors"]), layers=parse_layers(mlp["layers"]),
                   gmf=TrainConfig.from_dict(gmf), mlp=TrainConfig.from_dict(mlp),
                   finetune=TrainConfig.from_dict(finetune), alpha=float(finetune.get("alpha", 0.5)),
                   n_neg=int(gmf.get("n_neg", 4)))


def parse_layers(layers: str | Sequence[int]) -> tuple[int, ...]:
    """``"64-32-16-8"`` (how a search table stores a tower) or a sequence -> ``(64, 32, 16, 8)``."""
    if isinstance(layers, str):
        try:
            layers = [int(w) for w in layers.split("-")]
        except ValueError:
            raise ValueError(f"layers must look like '64-32-16-8', got {layers!r}") from None
    return _check_layers(layers)


@dataclass
class PretrainedNeuMF:
    """The three models of one pre-training run and their histories (keys ``"GMF"``,
    ``"MLP"``, ``"fine-tune"``). ``epochs`` holds the epochs each stage kept: the best
    validation epochs after a validation run (fine-tuning 0 = the fused model itself),
    the requested ones after a refit."""

    gmf: keras.Model
    mlp: keras.Model
    neumf: keras.Model
    histories: dict[str, EpochHistory]
    epochs: tuple[int, int, int]


def pretrained_neumf(n_users: int, n_items: int, users: np.ndarray, items: np.ndarray,
                     settings: NeuMFSettings, *, weights: np.ndarray | None = None,
                     validation: Validation | None = None,
                     epochs: tuple[int, int, int] | None = None, seed: int = 0) -> PretrainedNeuMF:
    r"""NeuMF with pre-training (He et al., 2017): train GMF and the MLP tower, fuse them
    (:func:`load_pretrained`, :math:`\alpha` = ``settings.alpha``), fine-tune the fused model.

    * **Validation run** (``validation`` given, ``epochs=None``): each stage runs its
      config's epochs and keeps its best validation epoch; for fine-tuning, epoch 0 -- the
      fused model before any fine-tuning -- is a candidate like any other.
    * **Refit** (``epochs=(gmf, mlp, finetune)``, typically a validation run's ``epochs``,
      on training + validation data): each stage trains for that many epochs with the
      learning-rate schedule of its validation run (:meth:`TrainConfig.refit`); 0
      fine-tuning epochs keep the fused model.

    Every model is built after ``helpers.seed_everything(seed)`` and trained with the loop's
    seed ``seed``, so a run is reproducible. ``weights`` (one per positive) weight the loss
    of all three stages.
    """
    if validation is not None and epochs is not None:
        raise ValueError("pass validation (a validation run) or epochs (a refit), not both")
    if epochs is not None:
        if len(epochs) != 3 or min(epochs) < 0 or min(epochs[:2]) < 1:
            raise ValueError(f"epochs = (gmf >= 1, mlp >= 1, finetune >= 0), got {epochs}")
    stages = {"GMF": settings.gmf, "MLP": settings.mlp, "fine-tune": settings.finetune}
    if epochs is not None:
        stages = {name: (cfg.refit(e) if e else None) for (name, cfg), e in zip(stages.items(), epochs)}
    stages = {name: (cfg.replace(seed=seed) if cfg is not None else None) for name, cfg in stages.items()}

    def fit(model: keras.Model, name: str) -> EpochHistory:
        return train_pointwise(model, users, items, n_items, stages[name], n_neg=settings.n_neg,
                               weights=weights, validation=validation)

    histories: dict[str, EpochHistory] = {}
    seed_everything(seed)
    gmf = build_gmf(n_users, n_items, settings.factors)
    histories["GMF"] = fit(gmf, "GMF")
    seed_everything(seed)
    mlp = build_mlp(n_users, n_items, settings.layers)
    histories["MLP"] = fit(mlp, "MLP")
    seed_everything(seed)
    neumf = load_pretrained(build_neumf(n_users, n_items, settings.factors, settings.layers), gmf, mlp,
                            settings.alpha)
    if stages["fine-tune"] is not None:
        histories["fine-tune"] = fit(neumf, "fine-tune")
    else:
        histories["fine-tune"] = EpochHistory()
    kept = tuple(h.best_epoch for h in histories.values())
    return PretrainedNeuMF(gmf, mlp, neumf, histories, kept)  # type: ignore[arg-type]
