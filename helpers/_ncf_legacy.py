# TEMPORARY (one landing only): the chapter-8 training API as it was before helpers.training's
# TrainConfig/run_epochs rewrite (commit a59d93e), kept so that the committed chapter 8 runs
# until its rewrite on the new API lands. Not part of the documented package; delete with it.
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
weights can be moved between models by name.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from helpers.evaluation import evaluate_sampled
from helpers.sampling import NegativeSampler
from helpers._training_legacy import EpochHistory, compiled_epoch, predict_batched

__all__ = [
    "build_gmf", "build_mlp", "build_neumf", "load_pretrained", "pair_scorer", "user_scorer",
    "pointwise_epoch", "weighted_bce", "History", "train_pointwise",
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


# ----------------------------------------------------------------------------- scoring
def pair_scorer(model: keras.Model, batch_size: int = 65536
                ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``f(users, items) -> logits`` (float32, one per pair), compiled once, in batches:
    the ``score_pairs`` argument of :func:`helpers.evaluation.evaluate_sampled`."""
    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return predict_batched(model, users, items, batch_size).astype(np.float32)

    return score


def user_scorer(model: keras.Model, n_items: int, batch_size: int = 65536
                ) -> Callable[[np.ndarray], np.ndarray]:
    """``f(users) -> (len(users), n_items)`` logits for every item: the ``score_users``
    argument of :func:`helpers.evaluation.evaluate_full`."""
    score = pair_scorer(model, batch_size)

    def score_users(users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        u = np.repeat(users, n_items)
        i = np.tile(np.arange(n_items), len(users))
        return score(u, i).reshape(len(users), n_items)

    return score_users


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


@dataclass
class History(EpochHistory):
    """What :func:`train_pointwise` records, one entry per epoch.

    ``seconds[e]``: cumulative *training* wall time after epoch ``e + 1`` (sampling,
    shuffling and gradient steps; validation excluded); ``cpu_seconds[e]`` the same in
    process CPU time (all threads), which is less sensitive to other programs on a shared
    machine. ``val``: the validation metrics (``HR@10``, ``NDCG@10``, ``MRR``) per epoch,
    empty without validation data. ``best_epoch`` (1-based): the epoch with the best
    validation ``monitor`` value (the last epoch without validation); with
    ``restore_best`` the model ends with that epoch's weights.
    """

    val: dict[str, list[float]] = field(default_factory=dict)
    cpu_seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[float]]:
        """``{"loss": [...], "HR@10": [...], ...}`` for plotting
        (:func:`helpers.plotting.learning_curves`)."""
        return {"loss": self.loss, **self.val}


def train_pointwise(model: keras.Model, users: np.ndarray, items: np.ndarray, n_items: int, *,
                    weights: np.ndarray | None = None,
                    n_neg: int = 4, epochs: int = 20, batch_size: int = 4096,
                    learning_rate: float = 5e-3, weight_decay: float = 0.0,
                    decay_to: float | None = None, decay_epochs: int | None = None,
                    val_users: np.ndarray | None = None, val_candidates: np.ndarray | None = None,
                    monitor: str = "NDCG@10", patience: int | None = None,
                    restore_best: bool = True, seed: int = 0, jit_compile: bool = False,
                    on_epoch_end: Callable[[int, History], None] | None = None) -> History:
    r"""Train ``model`` (GMF, MLP or NeuMF) with binary cross-entropy on sampled negatives.

    Every epoch draws ``n_neg`` new uniform negatives per positive (never a training
    positive of that user), shuffles, and runs compiled steps of ``batch_size`` pairs with
    Adam (AdamW when ``weight_decay > 0``: each step shrinks every weight by
    ``learning_rate * weight_decay`` times itself, decoupled from the gradient). With
    ``decay_to`` the learning rate falls linearly from ``learning_rate`` to
    ``decay_to * learning_rate`` over ``decay_epochs`` (default ``epochs``): refitting for
    the ``best_epoch`` of a validation run with ``decay_epochs`` set to that run's
    ``epochs`` replays its learning-rate schedule exactly. With ``weights`` (one per
    positive, e.g. :func:`helpers.preprocessing.recency_weights`) each batch's loss is the
    weighted mean :math:`\sum_B w\,\ell / \sum_B w`, a positive's negatives sharing its
    weight (:func:`pointwise_epoch`). ``jit_compile`` compiles the
    step with XLA (faster steps, several seconds of compilation per call).

    With ``val_users``/``val_candidates`` (column 0 the held-out item, see
    :func:`helpers.evaluation.sample_candidates`) the model is evaluated after every epoch;
    training stops after ``patience`` epochs without a better ``monitor`` value, and with
    ``restore_best`` the model ends with the weights of its best validation epoch. Test
    items never enter this function: choosing epochs on them is selecting on the test set.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if users.shape != items.shape or users.ndim != 1 or len(users) == 0:
        raise ValueError(f"users and items must be non-empty 1-D arrays of equal length, got {users.shape} and {items.shape}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if learning_rate <= 0 or weight_decay < 0:
        raise ValueError(f"need learning_rate > 0 and weight_decay >= 0, got {learning_rate} and {weight_decay}")
    if decay_to is not None and not 0.0 <= decay_to <= 1.0:
        raise ValueError(f"decay_to is a fraction of the learning rate in [0, 1], got {decay_to}")
    decay_epochs = epochs if decay_epochs is None else int(decay_epochs)
    if decay_epochs < epochs:
        raise ValueError(f"decay_epochs ({decay_epochs}) must be >= epochs ({epochs})")
    validate = val_users is not None
    if validate != (val_candidates is not None):
        raise ValueError("pass both val_users and val_candidates, or neither")
    if patience is not None and not validate:
        raise ValueError("early stopping (patience) needs validation data")

    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32)
        if weights.shape != users.shape:
            raise ValueError(f"weights must have one entry per positive ({users.shape}), got {weights.shape}")
        if not np.all(np.isfinite(weights)) or weights.min() < 0 or weights.max() == 0:
            raise ValueError("weights must be finite and non-negative, and not all zero")
    rng = np.random.default_rng(seed)
    sampler = NegativeSampler(users, items, n_items)
    n = len(users) * (1 + n_neg)
    steps_per_epoch = -(-n // batch_size)
    lr: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if decay_to is not None:
        lr = keras.optimizers.schedules.PolynomialDecay(
            learning_rate, steps_per_epoch * decay_epochs, end_learning_rate=learning_rate * decay_to)
    opt: keras.optimizers.Optimizer
    if weight_decay > 0:
        opt = keras.optimizers.AdamW(lr, weight_decay=weight_decay)
    else:
        opt = keras.optimizers.Adam(lr)
    variables = model.trainable_variables
    opt.build(variables)

    @tf.function(jit_compile=jit_compile, autograph=False)  # no tensor-dependent Python control flow
    def train_step(u: tf.Tensor, i: tf.Tensor, y: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            logits = model([u, i], training=True)
            loss = weighted_bce(y, logits, w)
        grads = tape.gradient(loss, variables)
        # Embedding gradients arrive as sparse IndexedSlices; the tables are small, and one
        # dense update is cheaper than Keras' per-slice bookkeeping.
        opt.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], variables))
        return loss

    train_epoch = compiled_epoch(train_step, batch_size)

    score = pair_scorer(model) if validate else None
    hist = History()
    best_value, best_weights, waited = -np.inf, None, 0
    elapsed = cpu = 0.0
    for epoch in range(1, epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        u, i, y, w = pointwise_epoch(sampler, users, items, n_neg, rng, weights)
        loss = float(train_epoch(tf.constant(u), tf.constant(i), tf.constant(y), tf.constant(w)))
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        hist.loss.append(loss)
        hist.seconds.append(elapsed)
        hist.cpu_seconds.append(cpu)
        if not np.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} in epoch {epoch}: lower learning_rate")
        if validate:
            report = evaluate_sampled(score, val_users, val_candidates)
            for key, value in report.items():
                hist.val.setdefault(key, []).append(value)
            if monitor not in report:
                raise KeyError(f"monitor must be one of {sorted(report)}, got {monitor!r}")
            if report[monitor] > best_value:
                best_value, waited, hist.best_epoch = report[monitor], 0, epoch
                if restore_best:
                    best_weights = model.get_weights()
            else:
                waited += 1
        else:
            hist.best_epoch = epoch
        if on_epoch_end is not None:
            on_epoch_end(epoch, hist)
        if patience is not None and waited >= patience:
            hist.stopped_early = True
            break
    if restore_best and best_weights is not None and hist.best_epoch != hist.epochs:
        model.set_weights(best_weights)
    return hist
