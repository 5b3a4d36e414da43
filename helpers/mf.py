r"""Matrix factorisation for explicit ratings, from NumPy to Keras (chapter 7, "NMF").

The model is biased matrix factorisation (Koren et al., 2009),

.. math:: \hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i ,

trained on the mini-batch objective

.. math:: J_B = \frac{1}{|B|}\sum_{(u,i,r)\in B}\big(r - \hat r_{ui}\big)^2
          + \frac{\lambda}{|B|}\sum_{(u,i,r)\in B}\big(\lVert p_u\rVert^2 + \lVert q_i\rVert^2
          + b_u^2 + b_i^2\big),

where every *occurrence* of a user or item in the batch is regularised, as in classical SGD
for MF. Summed over an epoch, user :math:`u` is penalised :math:`\lambda n_u \lVert p_u\rVert^2`
(:math:`n_u` its number of ratings); its data term grows with :math:`n_u` as well, so the
*relative* shrinkage is roughly the same for light and heavy users (the weighted-:math:`\lambda`
of ALS-WR, Zhou et al. 2008). :func:`helpers.factorization.als_mf` penalises each user and item once, which shrinks
light users far more. The same objective appears three times:

* NumPy: :class:`helpers.factorization.MatrixFactorization` (chapter 5) holds the parameters
  and its ``grads(..., l2)`` is the gradient of :math:`J_B`;
  :func:`helpers.factorization.sgd_mf` trains it with mini-batch SGD;
* Keras: :func:`build_mf` is the same network (embeddings, dot product, bias embeddings, a
  constant :math:`\mu`); the penalty is an ``activity_regularizer`` on each embedding
  lookup, which Keras divides by the batch size, so ``loss="mse"`` plus the layer losses is
  exactly :math:`J_B`; :func:`train_explicit` trains any such model;
* classical: :func:`helpers.factorization.als_mf` (alternating ridge regressions, each
  solved in closed form, iterated; a per-user/per-item penalty, so a different objective)
  and :func:`helpers.factorization.svd_mf` (truncated SVD of the baseline-filled rating
  matrix) are the non-neural references.

:func:`build_mlp_mf` swaps the dot product for an MLP on the concatenated embeddings, and
:func:`fit_item_autorec` computes the item embedding from the item's ratings instead of
looking it up (I-AutoRec, Sedhain et al., 2015). Layer names are fixed (``user_embedding``,
``item_embedding``, ``user_bias``, ``item_bias``) so that weights move between NumPy and
Keras by name (:func:`set_mf_weights`, :func:`mf_from_model`).

The NumPy fitters (:mod:`helpers.factorization`), the blend (:mod:`helpers.ensemble`) and
chapter 7's split (:func:`helpers.splits.rating_split`) live in the modules of their concern;
they are importable from here too, so ``from helpers import mf as M; M.als_mf(...)`` works.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from helpers.ensemble import blend, fit_blend
from helpers.factorization import MatrixFactorization, _check_ids, _rmse, _triples, als_mf, sgd_mf, svd_mf
from helpers.splits import RatingSplit, rating_split
from helpers.training import EpochHistory, Validation, compiled_epoch, predict_batched, run_epochs

__all__ = [
    "MatrixFactorization", "sgd_mf", "als_mf", "svd_mf", "build_mf", "build_mlp_mf",
    "set_mf_weights", "mf_from_model", "predict_ratings", "History", "train_explicit",
    "ItemAutoRec", "fit_item_autorec", "fit_blend", "blend", "RatingSplit", "rating_split",
]


# ----------------------------------------------------------------------------- Keras
def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    return (keras.Input(shape=(), dtype="int32", name="user"),
            keras.Input(shape=(), dtype="int32", name="item"))


def _embedding(n: int, dim: int, name: str, l2: float, init: keras.initializers.Initializer,
               constraint: keras.constraints.Constraint | None = None) -> keras.layers.Embedding:
    return keras.layers.Embedding(
        n, dim, embeddings_initializer=init, name=name, embeddings_constraint=constraint,
        activity_regularizer=keras.regularizers.L2(l2) if l2 > 0 else None)


def _biases(user, item, n_users: int, n_items: int, l2: float):
    zeros = keras.initializers.Zeros()
    bu = _embedding(n_users, 1, "user_bias", l2, zeros)(user)
    bi = _embedding(n_items, 1, "item_bias", l2, zeros)(item)
    return keras.layers.Reshape((), name="user_bias_flat")(bu), keras.layers.Reshape((), name="item_bias_flat")(bi)


def _check_model_args(n_users: int, n_items: int, dim: int, l2: float) -> None:
    if int(n_users) < 1 or int(n_items) < 1 or int(dim) < 1:
        raise ValueError(f"n_users, n_items and dim must be >= 1, got {n_users}, {n_items}, {dim}")
    if l2 < 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")


def build_mf(n_users: int, n_items: int, dim: int = 32, *, mu: float = 0.0, l2: float = 0.0,
             non_negative: bool = False, init_std: float = 0.05, name: str = "mf") -> keras.Model:
    r"""Biased MF as a Keras model: :math:`\hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i`.

    Inputs ``user`` and ``item`` (int32 vectors of 0-based indices), output one rating per
    pair. ``l2`` is the per-occurrence penalty :math:`\lambda` of :math:`J_B` (an
    ``activity_regularizer`` on the looked-up rows, which Keras divides by the batch size);
    compile with ``loss="mse"``. ``mu`` is a constant (set it to the mean training rating).

    With ``non_negative=True`` the factor tables are kept :math:`\ge 0` after every update
    (``keras.constraints.NonNeg``) and start from :math:`|N(0, \text{init\_std}^2)|`; the
    biases stay free. This is the constraint of non-negative matrix factorisation.
    """
    _check_model_args(n_users, n_items, dim, l2)
    if non_negative:
        init: keras.initializers.Initializer = _AbsNormal(init_std)
        constraint = keras.constraints.NonNeg()
    else:
        init, constraint = keras.initializers.RandomNormal(stddev=init_std), None
    user, item = _inputs()
    p = _embedding(n_users, dim, "user_embedding", l2, init, constraint)(user)
    q = _embedding(n_items, dim, "item_embedding", l2, init, constraint)(item)
    dot = keras.layers.Dot(axes=1, name="dot")([p, q])                 # (batch, 1)
    dot = keras.layers.Reshape((), name="dot_flat")(dot)
    bu, bi = _biases(user, item, n_users, n_items, l2)
    s = keras.layers.Add(name="sum")([dot, bu, bi])
    out = keras.layers.Rescaling(1.0, offset=float(mu), name="rating")(s)
    return keras.Model([user, item], out, name=name)


class _AbsNormal(keras.initializers.Initializer):
    """:math:`|N(0, \\sigma^2)|`: a non-negative start for NonNeg-constrained factors."""

    def __init__(self, stddev: float = 0.05, seed: int | None = None):
        self.stddev, self.seed = stddev, seed
        self._normal = keras.initializers.RandomNormal(stddev=stddev, seed=seed)

    def __call__(self, shape, dtype=None):
        return keras.ops.abs(self._normal(shape, dtype=dtype))

    def get_config(self) -> dict:
        return {"stddev": self.stddev, "seed": self.seed}


def build_mlp_mf(n_users: int, n_items: int, dim: int = 32, hidden: Sequence[int] = (64, 32), *,
                 mu: float = 0.0, l2: float = 0.0, dense_l2: float = 0.0, dropout: float = 0.0,
                 init_std: float = 0.05, name: str = "mlp_mf") -> keras.Model:
    r"""The dot product replaced by an MLP on the concatenated embeddings:

    .. math:: z_0 = [p_u; q_i],\quad z_l = \mathrm{ReLU}(W_l z_{l-1} + c_l),\quad
              \hat r_{ui} = \mu + b_u + b_i + w^\top z_L + c .

    Same inputs, biases and embedding penalty ``l2`` as :func:`build_mf`. ``dense_l2`` adds
    :math:`\lambda_W \sum_l \lVert W_l\rVert_F^2` (and :math:`\lambda_W\lVert w\rVert^2`) to
    the loss once per step (a ``kernel_regularizer``: the weights are shared by every rating,
    so there is no per-occurrence version); ``dropout`` is applied after each hidden layer
    during training.
    """
    _check_model_args(n_users, n_items, dim, l2)
    hidden = tuple(int(h) for h in hidden)
    if not hidden or any(h < 1 for h in hidden):
        raise ValueError(f"hidden must list positive layer widths, e.g. (64, 32); got {hidden}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if dense_l2 < 0:
        raise ValueError(f"dense_l2 must be >= 0, got {dense_l2}")
    kernel_reg = (lambda: keras.regularizers.L2(dense_l2)) if dense_l2 > 0 else (lambda: None)
    init = keras.initializers.RandomNormal(stddev=init_std)
    user, item = _inputs()
    p = _embedding(n_users, dim, "user_embedding", l2, init)(user)
    q = _embedding(n_items, dim, "item_embedding", l2, init)(item)
    z = keras.layers.Concatenate(name="concat")([p, q])
    for k, width in enumerate(hidden):
        z = keras.layers.Dense(width, activation="relu", name=f"dense_{k}",
                               kernel_regularizer=kernel_reg())(z)
        if dropout > 0:
            z = keras.layers.Dropout(dropout, name=f"dropout_{k}")(z)
    z = keras.layers.Dense(1, name="head", kernel_regularizer=kernel_reg())(z)
    z = keras.layers.Reshape((), name="head_flat")(z)
    bu, bi = _biases(user, item, n_users, n_items, l2)
    s = keras.layers.Add(name="sum")([z, bu, bi])
    out = keras.layers.Rescaling(1.0, offset=float(mu), name="rating")(s)
    return keras.Model([user, item], out, name=name)


def set_mf_weights(model: keras.Model, mf: MatrixFactorization) -> keras.Model:
    """Copy a NumPy :class:`helpers.factorization.MatrixFactorization` into a :func:`build_mf` model (in place;
    returns it). ``mf.mu`` must equal the model's constant offset."""
    offset = float(model.get_layer("rating").offset)
    if not np.isclose(offset, mf.mu, rtol=0, atol=1e-6):
        raise ValueError(f"the model adds mu = {offset}, the NumPy model mu = {mf.mu}; "
                         "build the Keras model with mu=mf.mu")
    pairs = [("user_embedding", mf.P), ("item_embedding", mf.Q),
             ("user_bias", mf.b_user[:, None]), ("item_bias", mf.b_item[:, None])]
    for layer_name, value in pairs:
        layer = model.get_layer(layer_name)
        shape = tuple(layer.embeddings.shape)
        if shape != value.shape:
            raise ValueError(f"layer {layer_name!r} has shape {shape}, the NumPy array {value.shape}")
        layer.embeddings.assign(value.astype("float32"))
    return model


def mf_from_model(model: keras.Model) -> MatrixFactorization:
    """The parameters of a :func:`build_mf` (or :func:`build_mlp_mf`) model as NumPy arrays
    (float64): embeddings, biases and :math:`\\mu`."""
    get = lambda n: np.asarray(model.get_layer(n).embeddings.numpy(), dtype=np.float64)  # noqa: E731
    return MatrixFactorization(get("user_embedding"), get("item_embedding"), get("user_bias")[:, 0],
                               get("item_bias")[:, 0], float(model.get_layer("rating").offset))


def predict_ratings(model: keras.Model, users: np.ndarray, items: np.ndarray,
                    clip: tuple[float, float] | None = (1.0, 5.0), batch_size: int = 65536) -> np.ndarray:
    """Predicted ratings (float64) for each ``(users[k], items[k])``, clipped to the rating
    scale unless ``clip=None``; compiled once per model, evaluated in batches."""
    users, items, _ = _triples(users, items)
    out = predict_batched(model, users, items, batch_size)
    return np.clip(out, *clip) if clip is not None else out


@dataclass
class History(EpochHistory):
    """What :func:`train_explicit` records: the :class:`helpers.training.EpochHistory` of
    :func:`helpers.training.run_epochs` (``loss`` = MSE + penalty averaged over the epoch's
    batches, cumulative ``seconds``, ``val["val RMSE"]`` with the value before training at
    index 0, ``best_epoch`` 0-based in that sense: 0 = the starting weights), plus
    ``val_rmse``, the clipped validation RMSE after epochs 1, 2, ... (empty without
    validation data)."""

    val_rmse: list[float] = field(default_factory=list)

    @property
    def best_val_rmse(self) -> float:
        if "val RMSE" not in self.val:
            return float("nan")
        return self.val["val RMSE"][self.best_epoch]

    def as_dict(self) -> dict[str, list[float]]:
        """``{"loss": [...], "val RMSE": [...]}`` for :func:`helpers.plotting.learning_curves`."""
        return {"loss": self.loss, "val RMSE": self.val_rmse}


def train_explicit(model: keras.Model, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, *,
                   epochs: int = 20, batch_size: int = 1024, learning_rate: float = 3e-3,
                   optimizer: str = "adam",
                   val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                   patience: int | None = None, restore_best: bool = True, seed: int = 0) -> History:
    r"""Train a rating model (:func:`build_mf`, :func:`build_mlp_mf`) on :math:`J_B`: the
    mean squared error plus the model's own penalties (``model.losses``), with Adam (or
    ``optimizer="sgd"``) on shuffled batches of ``batch_size`` ratings.

    With ``val = (users, items, ratings)`` the clipped validation RMSE is measured before
    training and after every epoch, and the book's one early-stopping rule applies
    (:func:`helpers.training.run_epochs`): training stops after ``patience`` epochs without
    improvement and, with ``restore_best``, the model ends with the weights of its best
    validation epoch. Never pass test ratings as ``val``: choosing the epoch on them is
    selecting on the test set.

    The loop is compiled per epoch (``tf.function`` over the batches) and applies embedding
    gradients as dense updates. On tables of this size that is about twice as fast as
    ``model.fit`` with Keras' sparse bookkeeping (u1, d = 32, 10 epochs: 1.7 s against 4.0 s
    of CPU), and it minimises the same objective.
    """
    users, items, ratings = _triples(users, items, ratings)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if patience is not None and val is None:
        raise ValueError("early stopping (patience) needs validation data (val=...)")
    opts = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    if optimizer not in opts:
        raise ValueError(f"optimizer must be one of {sorted(opts)}, got {optimizer!r}")
    opt = opts[optimizer](learning_rate)
    variables = model.trainable_variables
    opt.build(variables)

    @tf.function
    def train_step(u: tf.Tensor, i: tf.Tensor, r: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            pred = model([u, i], training=True)
            loss = tf.reduce_mean(tf.square(r - pred))
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, variables)
        # dense embedding updates (see the docstring); the optimiser then applies any
        # variable constraints (NonNeg) itself, after the step
        opt.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], variables))
        return loss

    train_epoch = compiled_epoch(train_step, batch_size)
    rng = np.random.default_rng(seed)

    def epoch_fn(epoch: int) -> float:
        order = rng.permutation(len(ratings))
        return float(train_epoch(tf.constant(users[order], tf.int32), tf.constant(items[order], tf.int32),
                                 tf.constant(ratings[order], tf.float32)))

    validation = None
    if val is not None:
        def evaluate(m: keras.Model) -> dict[str, float]:
            return {"val RMSE": _rmse(val[2], predict_ratings(m, val[0], val[1]))}
        validation = Validation(evaluate, monitor="val RMSE", mode="min", patience=patience,
                                restore_best=restore_best)
    hist = History()
    run_epochs(model, epoch_fn, epochs, validation, history=hist)
    hist.val_rmse = hist.val.get("val RMSE", [])[1:]
    return hist


# ----------------------------------------------------------------------------- AutoRec
@dataclass
class ItemAutoRec:
    r"""A trained item-based AutoRec, read as a factor model:

    .. math:: h_i = \sigma(V^\top r_i + b),\qquad \hat r_{ui} = c_u + w_u^\top h_i ,

    where :math:`r_i \in \mathbb R^{n_\text{users}}` is item :math:`i`'s column of training
    ratings (0 where missing). :math:`w_u` (a row of the decoder) plays the user embedding
    and :math:`h_i` the item embedding, *computed* from the item's ratings rather than
    looked up. ``item_embeddings`` is :math:`H` (n_items x hidden).
    """

    user_weights: np.ndarray     # W: (n_users, hidden)
    user_bias: np.ndarray        # c: (n_users,)
    item_embeddings: np.ndarray  # H: (n_items, hidden)
    history: dict[str, list[float]]
    best_epoch: int

    def predict(self, users: np.ndarray, items: np.ndarray, clip: tuple[float, float] | None = (1.0, 5.0)
                ) -> np.ndarray:
        users, items, _ = _triples(users, items)
        out = self.user_bias[users] + np.einsum("ij,ij->i", self.user_weights[users], self.item_embeddings[items])
        return np.clip(out, *clip) if clip is not None else out


def fit_item_autorec(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int,
                     n_items: int, *, hidden: int = 200, l2: float = 100.0, learning_rate: float = 0.01,
                     epochs: int = 200, val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                     eval_every: int = 5, patience: int | None = None, seed: int = 0) -> ItemAutoRec:
    r"""Item-based AutoRec (Sedhain et al., WWW 2015) by full-batch Adam in TensorFlow:

    .. math:: \min_{V,b,W,c}\ \sum_{(u,i)\ \text{observed}} \big(r_{ui} - c_u - w_u^\top
              \sigma(V^\top r_i + b)\big)^2 + \frac{\lambda}{2}\big(\lVert V\rVert_F^2
              + \lVert W\rVert_F^2\big).

    Each epoch is one gradient step on all items (the 1,682 x 943 rating matrix is small).
    With ``val`` the clipped validation RMSE is measured every ``eval_every`` epochs and the
    parameters of the best check are kept (stopping after ``patience`` checks without
    improvement); without it the last epoch is kept. Items without training ratings get
    :math:`h_i = \sigma(b)`, a shared "unknown item" embedding.
    """
    users, items, ratings = _triples(users, items, ratings)
    _check_ids(users, items, n_users, n_items)
    if hidden < 1 or epochs < 1 or eval_every < 1 or l2 < 0 or learning_rate <= 0:
        raise ValueError(f"need hidden, epochs, eval_every >= 1, l2 >= 0 and learning_rate > 0; got "
                         f"{hidden}, {epochs}, {eval_every}, {l2}, {learning_rate}")
    dense = np.zeros((n_items, n_users), np.float32)
    mask = np.zeros((n_items, n_users), np.float32)
    dense[items, users] = ratings
    mask[items, users] = 1.0
    x, m = tf.constant(dense), tf.constant(mask)
    glorot = keras.initializers.GlorotUniform(seed=seed)
    V = tf.Variable(glorot((n_users, hidden)), name="encoder")
    b = tf.Variable(tf.zeros(hidden), name="encoder_bias")
    W = tf.Variable(keras.initializers.GlorotUniform(seed=seed + 1)((n_users, hidden)), name="decoder")
    c = tf.Variable(tf.zeros(n_users), name="decoder_bias")
    variables = [V, b, W, c]
    opt = keras.optimizers.Adam(learning_rate)
    opt.build(variables)

    def embed() -> tf.Tensor:
        return tf.sigmoid(x @ V + b)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            out = tf.matmul(embed(), W, transpose_b=True) + c
            loss = tf.reduce_sum(m * tf.square(x - out)) + 0.5 * l2 * (tf.reduce_sum(V * V) + tf.reduce_sum(W * W))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def snapshot(best_epoch: int) -> ItemAutoRec:
        return ItemAutoRec(W.numpy().astype(np.float64), c.numpy().astype(np.float64),
                           embed().numpy().astype(np.float64), hist, best_epoch)

    hist: dict[str, list[float]] = {"loss": [], "val RMSE": [], "epoch": []}
    best, best_model, waited = np.inf, None, 0
    for epoch in range(1, epochs + 1):
        loss = float(step())
        if not np.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} in epoch {epoch}: lower learning_rate")
        hist["loss"].append(loss / len(ratings))
        if val is not None and (epoch % eval_every == 0 or epoch == epochs):
            model = snapshot(epoch)
            value = _rmse(val[2], model.predict(val[0], val[1]))
            hist["val RMSE"].append(value)
            hist["epoch"].append(epoch)
            if value < best:
                best, best_model, waited = value, model, 0
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    break
    if best_model is None:
        best_model = snapshot(len(hist["loss"]))
    best_model.history = hist
    return best_model


