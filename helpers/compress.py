r"""Making a recommender small: where the parameters are, and five ways to store fewer bytes.

* **Counting** (:func:`parameter_table`): a (user, item) model's parameters sit almost all
  in its embedding tables, :math:`(|U| + |I|)\,d` numbers per tower.
* **Quantisation** (:func:`quantize_rows`, :func:`dequantize_rows`, :func:`keras_quantized`):
  symmetric per-row ("per-channel") absmax quantisation to :math:`b` bits,

  .. math:: s_r = \frac{\max_j |W_{rj}|}{2^{b-1} - 1},\qquad
            Q_{rj} = \mathrm{clip}\Big(\mathrm{round}\big(W_{rj} / s_r\big),\,
            -(2^{b-1}-1),\, 2^{b-1}-1\Big),\qquad \hat W_{rj} = s_r\,Q_{rj},

  so each row stores :math:`d` small integers and one float32 scale; the rounding error is at
  most :math:`s_r / 2` per entry. Keras 3's ``model.quantize("int8")`` does exactly this for
  ``Embedding`` (one scale per row) and ``Dense`` (one scale per output unit).
* **Magnitude pruning** (:func:`magnitude_mask`, :func:`sparse_bytes`): keep the fraction
  :math:`1 - s` of weights with the largest :math:`|w|`, zero the rest; stored sparsely, each
  kept weight costs its value plus an index.
* **Hashing trick** (:func:`hash_ids`, :class:`HashedEmbedding`): ids share
  :math:`B < n` rows, :math:`h(x) = ((a x + c) \bmod p) \bmod B` with a prime :math:`p`.
* **Low-rank embeddings** (:class:`LowRankEmbedding`): :math:`E = A B` with
  :math:`A \in \mathbb R^{n\times r}`, :math:`B \in \mathbb R^{r\times d}`:
  :math:`(n + d)\,r` numbers instead of :math:`n d`.
* **Distillation** (:func:`distillation_loss`, :func:`train_distilled`): a small student
  learns from the labels *and* the teacher's probabilities.

:func:`model_bytes` counts bytes in memory, :func:`saved_bytes` on disk, and
:func:`latency_per_request` times scoring one user's candidates.
"""
from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

__all__ = [
    "parameter_table", "quantize_rows", "dequantize_rows", "keras_quantized", "model_bytes",
    "saved_bytes", "fake_quantized", "magnitude_mask", "apply_masks", "sparse_bytes", "hash_ids", "HashedEmbedding",
    "LowRankEmbedding", "MixedDimEmbedding", "frequent_ids", "build_small_gmf", "distillation_loss", "train_distilled",
    "latency_per_request",
]

_PRIME = 2_147_483_647  # 2^31 - 1


# ----------------------------------------------------------------------------- counting
def parameter_table(model: keras.Model) -> pd.DataFrame:
    """One row per layer that holds weights: ``layer``, ``kind`` (``"embedding"`` or
    ``"dense"`` / the class name), ``params`` (number of scalars) and ``share`` of the
    model's total, largest first."""
    rows = []
    for layer in model.layers:
        n = int(sum(int(np.prod(v.shape)) for v in layer.weights))
        if n == 0:
            continue
        kind = "embedding" if isinstance(layer, (keras.layers.Embedding, HashedEmbedding, LowRankEmbedding,
                                                  MixedDimEmbedding)) \
            else type(layer).__name__.lower()
        rows.append(dict(layer=layer.name, kind=kind, params=n))
    if not rows:
        raise ValueError(f"model {model.name!r} has no weights; build it before counting")
    table = pd.DataFrame(rows).sort_values("params", ascending=False, ignore_index=True)
    table["share"] = table["params"] / table["params"].sum()
    return table


# ------------------------------------------------------------------------- quantising
def _qmax(bits: int) -> int:
    if bits not in (2, 3, 4, 8):
        raise ValueError(f"bits must be one of 2, 3, 4, 8; got {bits}")
    return 2 ** (bits - 1) - 1


def quantize_rows(w: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    r"""Symmetric absmax quantisation of each row of a 2-D array to ``bits`` bits.

    :math:`s_r = \max_j |W_{rj}| / (2^{b-1}-1)`, :math:`Q_{rj} = \mathrm{round}(W_{rj}/s_r)`
    (clipped to :math:`\pm(2^{b-1}-1)`). Returns ``(q, scale)``: int8 codes of ``w``'s shape
    and float32 scales, one per row. An all-zero row gets scale 1 (codes 0)."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"w must be 2-D (rows x columns), got shape {w.shape}")
    qmax = _qmax(bits)
    amax = np.max(np.abs(w), axis=1)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    q = np.clip(np.round(w / scale[:, None]), -qmax, qmax).astype(np.int8)
    return q, scale


def dequantize_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    r""":math:`\hat W_{rj} = s_r Q_{rj}` (float32)."""
    q = np.asarray(q)
    scale = np.asarray(scale, dtype=np.float32)
    if q.ndim != 2 or scale.shape != (q.shape[0],):
        raise ValueError(f"need 2-D codes and one scale per row; got {q.shape} and {scale.shape}")
    return q.astype(np.float32) * scale[:, None]


def keras_quantized(model: keras.Model, mode: str = "int8") -> keras.Model:
    """A copy of ``model`` (same weights) quantised with Keras 3's ``model.quantize(mode)``
    (``"int8"`` or ``"int4"``); ``Embedding`` and ``Dense`` layers are quantised, the others
    are left alone (Keras' warnings about them are silenced). The original is unchanged."""
    if mode not in ("int8", "int4"):
        raise ValueError(f"mode must be 'int8' or 'int4', got {mode!r}")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copy.quantize(mode)
    return copy


def model_bytes(model: keras.Model) -> int:
    """Bytes of all the model's variables in memory (sum of ``size * itemsize``; Keras' int4
    packs two codes in one int8)."""
    return int(sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights))


def saved_bytes(model: keras.Model) -> int:
    """Size on disk of ``model.save(...)`` (a zipped ``.keras`` file: weights + config)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.keras")
        model.save(path)
        return int(os.path.getsize(path))


def fake_quantized(model: keras.Model, bits: int = 8) -> tuple[keras.Model, int]:
    """A float copy of ``model`` whose embedding tables (variables named ``.../embeddings``)
    are replaced by their row-wise ``bits``-bit quantised-and-dequantised values
    (:func:`quantize_rows`), and the bytes of storing it so: ``rows x (dim x bits / 8 + 4)``
    per table (codes and one float32 scale per row), 4 bytes per other weight. Works for any
    layer type (Keras' ``quantize`` only handles built-in ``Embedding`` and ``Dense``)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    nbytes = 0.0
    for v in copy.weights:
        w = v.numpy()
        if v.path.endswith("embeddings") and w.ndim == 2:
            q, s = quantize_rows(w, bits)
            v.assign(dequantize_rows(q, s))
            nbytes += q.size * bits / 8 + 4 * s.size
        else:
            nbytes += 4 * w.size
    return copy, int(np.ceil(nbytes))


# --------------------------------------------------------------------------- pruning
def magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    r"""Boolean mask keeping the ``1 - sparsity`` fraction of entries with the largest
    :math:`|w|` (ties at the threshold broken by position): :math:`m = [\,|w| \ge \tau\,]`."""
    w = np.asarray(w)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity is the fraction of weights removed, in [0, 1); got {sparsity}")
    n_keep = int(round((1.0 - sparsity) * w.size))
    mask = np.zeros(w.size, dtype=bool)
    if n_keep > 0:
        mask[np.argsort(-np.abs(w).ravel(), kind="stable")[:n_keep]] = True
    return mask.reshape(w.shape)


def apply_masks(model: keras.Model, masks: dict[str, np.ndarray]) -> None:
    """Zero the weights outside ``masks[path]`` in place (``path`` = a variable's
    ``v.path``, e.g. ``"gmf_item/embeddings"``)."""
    by_path = {v.path: v for v in model.weights}
    for path, m in masks.items():
        if path not in by_path:
            raise ValueError(f"no variable {path!r} in the model; have {sorted(by_path)}")
        v = by_path[path]
        if tuple(m.shape) != tuple(v.shape):
            raise ValueError(f"mask for {path} has shape {m.shape}, variable {tuple(v.shape)}")
        v.assign(np.where(m, v.numpy(), 0.0).astype(v.dtype))


def sparse_bytes(mask: np.ndarray, value_bytes: float = 4.0, index_bytes: float = 2.0) -> float:
    r"""Bytes of a pruned matrix stored in CSR form: :math:`\mathrm{nnz}\,(v + i) +
    4\,(\text{rows} + 1)` (values, column indices, row pointers)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    return float(mask.sum() * (value_bytes + index_bytes) + 4 * (mask.shape[0] + 1))


# ------------------------------------------------------------------ small embeddings
def hash_ids(ids: np.ndarray, n_buckets: int, seed: int = 0) -> np.ndarray:
    r"""Universal hash :math:`h(x) = ((a x + c) \bmod p) \bmod B`, :math:`p = 2^{31}-1`,
    :math:`a, c` drawn from ``seed``: many ids share a bucket once ``B`` < number of ids."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and ids.min() < 0:
        raise ValueError("ids must be non-negative")
    rng = np.random.default_rng(seed)
    a, c = int(rng.integers(1, _PRIME)), int(rng.integers(0, _PRIME))
    return ((a * ids + c) % _PRIME) % n_buckets


@keras.saving.register_keras_serializable(package="helpers")
class HashedEmbedding(keras.layers.Layer):
    r"""Embedding with the hashing trick: id :math:`x` reads row :math:`h(x)` of an
    ``n_buckets`` x ``dim`` table (:func:`hash_ids`; the map is precomputed for
    ``input_dim`` ids, so lookups are one gather)."""

    def __init__(self, input_dim: int, n_buckets: int, dim: int, seed: int = 0, std: float = 0.01,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.n_buckets, self.dim, self.seed, self.std = input_dim, n_buckets, dim, seed, std
        self.bucket = tf.constant(hash_ids(np.arange(input_dim), n_buckets, seed).astype(np.int32))
        self.embeddings = self.add_weight(shape=(n_buckets, dim), name="embeddings",
                                          initializer=keras.initializers.RandomNormal(stddev=std))

    def call(self, ids):
        return tf.gather(self.embeddings, tf.gather(self.bucket, ids))

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "n_buckets": self.n_buckets,
                "dim": self.dim, "seed": self.seed, "std": self.std}


@keras.saving.register_keras_serializable(package="helpers")
class LowRankEmbedding(keras.layers.Layer):
    r"""Factorised embedding :math:`E = A B` (:math:`n \times r` times :math:`r \times d`):
    id :math:`x` maps to :math:`A_x B`, :math:`(n + d) r` parameters."""

    def __init__(self, input_dim: int, rank: int, dim: int, std: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= rank <= dim:
            raise ValueError(f"rank must be in 1..dim ({dim}), got {rank}")
        self.input_dim, self.rank, self.dim, self.std = input_dim, rank, dim, std
        init = keras.initializers.RandomNormal(stddev=std)
        self.a = self.add_weight(shape=(input_dim, rank), name="a", initializer=init)
        self.b = self.add_weight(shape=(rank, dim), name="b", initializer=init)

    def call(self, ids):
        return tf.matmul(tf.gather(self.a, ids), self.b)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "rank": self.rank,
                "dim": self.dim, "std": self.std}


def frequent_ids(ids: np.ndarray, n: int, share: float) -> np.ndarray:
    """The ``round(share * n)`` most frequent values of ``ids`` among ``0..n-1`` (ties broken by
    the smaller id), sorted: the "head" that keeps full rows in :class:`MixedDimEmbedding`."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=n)
    if len(counts) != n:
        raise ValueError(f"ids must lie in 0..{n - 1}")
    return np.sort(np.argsort(-counts, kind="stable")[:int(round(share * n))])


@keras.saving.register_keras_serializable(package="helpers")
class MixedDimEmbedding(keras.layers.Layer):
    r"""Mixed-dimension embedding (Ginart et al., 2021): the ``head_ids`` (e.g. the most
    frequent ids) get full ``dim``-wide rows :math:`H`, every other id a ``tail_dim``-wide row
    of :math:`T` mapped up by one shared projection :math:`P` (``tail_dim`` x ``dim``):
    :math:`E = [H;\ T P]` (rows re-ordered), :math:`n_h d + n_t d_t + d_t d` parameters. Head
    rows start with sd ``std``, :math:`T` and :math:`P` with sd :math:`\sqrt{\text{std}/\sqrt{d_t}}`
    (so :math:`TP` has sd ``std``)."""

    def __init__(self, input_dim: int, dim: int, head_ids, tail_dim: int, std: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        head_ids = np.unique(np.asarray(head_ids, dtype=np.int64))
        if head_ids.size and (head_ids.min() < 0 or head_ids.max() >= input_dim):
            raise ValueError(f"head_ids must lie in 0..{input_dim - 1}")
        if not 1 <= tail_dim <= dim:
            raise ValueError(f"tail_dim must be in 1..dim ({dim}), got {tail_dim}")
        self.input_dim, self.dim, self.tail_dim, self.std = input_dim, dim, tail_dim, std
        self.head_ids = [int(x) for x in head_ids]
        is_head = np.zeros(input_dim, dtype=bool)
        is_head[head_ids] = True
        remap = np.empty(input_dim, dtype=np.int32)  # head ids -> 0..n_h-1, tail -> n_h..n-1
        remap[is_head] = np.arange(is_head.sum())
        remap[~is_head] = is_head.sum() + np.arange((~is_head).sum())
        self.remap = tf.constant(remap)
        init = keras.initializers.RandomNormal(stddev=std)
        self.head = self.add_weight(shape=(int(is_head.sum()), dim), name="head", initializer=init)
        small = keras.initializers.RandomNormal(stddev=float(np.sqrt(std / np.sqrt(tail_dim))))
        self.tail = self.add_weight(shape=(int((~is_head).sum()), tail_dim), name="tail", initializer=small)
        self.proj = self.add_weight(shape=(tail_dim, dim), name="proj", initializer=small)

    def call(self, ids):
        table = tf.concat([self.head, tf.matmul(self.tail, self.proj)], axis=0)
        return tf.gather(table, tf.gather(self.remap, ids))

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "dim": self.dim,
                "head_ids": self.head_ids, "tail_dim": self.tail_dim, "std": self.std}


def build_small_gmf(n_users: int, n_items: int, factors: int = 16, *, item_buckets: int | None = None,
                    user_buckets: int | None = None, rank: int | None = None, std: float = 0.01,
                    head_users: np.ndarray | None = None, head_items: np.ndarray | None = None,
                    tail_dim: int | None = None, seed: int = 0, name: str = "small_gmf") -> keras.Model:
    r"""GMF, :math:`s_{ui} = h^\top (p_u \odot q_i) + b`, with smaller embedding tables:
    hashed (``user_buckets`` / ``item_buckets`` rows, :class:`HashedEmbedding`), low-rank
    (``rank``, :class:`LowRankEmbedding`, both tables) or plain with ``factors`` columns.
    With ``tail_dim`` (and ``head_users``, ``head_items``) both tables are mixed-dimension
    (:class:`MixedDimEmbedding`). Entries start with sd ``std``; for low rank each factor gets sd
    :math:`\sqrt{\text{std}/\sqrt r}`, so that the entries of :math:`AB` have sd ``std``.
    Layer names follow :func:`helpers.ncf.build_gmf` (``gmf_user``, ``gmf_item``, ``output``)."""
    if min(n_users, n_items, factors) < 1:
        raise ValueError(f"n_users, n_items and factors must be >= 1, got {n_users}, {n_items}, {factors}")
    if sum(x is not None for x in (rank, item_buckets or user_buckets, tail_dim)) > 1:
        raise ValueError("choose one of hashing, low rank and mixed dimensions")
    if tail_dim is not None and (head_users is None or head_items is None):
        raise ValueError("mixed dimensions need head_users and head_items (the ids that keep full rows)")
    user = keras.Input(shape=(), dtype="int32", name="user")
    item = keras.Input(shape=(), dtype="int32", name="item")

    def table(n: int, buckets: int | None, nm: str, s: int):
        if tail_dim is not None:
            return MixedDimEmbedding(n, factors, head_users if nm == "gmf_user" else head_items, tail_dim,
                                     std=std, name=nm)
        if rank is not None:
            return LowRankEmbedding(n, rank, factors, std=float(np.sqrt(std / np.sqrt(rank))), name=nm)
        if buckets is not None:
            return HashedEmbedding(n, buckets, factors, seed=s, std=std, name=nm)
        return keras.layers.Embedding(n, factors, name=nm,
                                      embeddings_initializer=keras.initializers.RandomNormal(stddev=std))

    p = table(n_users, user_buckets, "gmf_user", seed)(user)
    q = table(n_items, item_buckets, "gmf_item", seed + 1)(item)
    z = keras.layers.Multiply(name="gmf_product")([p, q])
    s = keras.layers.Reshape((), name="logit")(keras.layers.Dense(1, name="output")(z))
    return keras.Model([user, item], s, name=name)


# ---------------------------------------------------------------------- distillation
def distillation_loss(y: tf.Tensor, student_logits: tf.Tensor, teacher_logits: tf.Tensor,
                      alpha: float = 0.5, temperature: float = 1.0) -> tf.Tensor:
    r"""Knowledge distillation for a binary (click / no click) model (Hinton et al., 2015):

    .. math:: \mathcal L = \alpha\,\mathrm{BCE}\big(y, \sigma(s)\big)
              + (1-\alpha)\,T^2\,\mathrm{BCE}\big(\sigma(t/T), \sigma(s/T)\big)

    averaged over the batch, with student logits :math:`s`, teacher logits :math:`t` and
    temperature :math:`T` (the :math:`T^2` keeps the soft term's gradient scale)."""
    if not 0.0 <= alpha <= 1.0 or temperature <= 0:
        raise ValueError(f"need 0 <= alpha <= 1 and temperature > 0, got {alpha}, {temperature}")
    hard = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=student_logits)
    soft = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.sigmoid(teacher_logits / temperature),
                                                   logits=student_logits / temperature)
    return tf.reduce_mean(alpha * hard + (1.0 - alpha) * temperature ** 2 * soft)


def train_distilled(student: keras.Model, teacher: keras.Model, users: np.ndarray, items: np.ndarray,
                    n_items: int, config, *, n_neg: int = 4, alpha: float = 0.5,
                    temperature: float = 1.0) -> list[float]:
    """Train ``student`` on :func:`distillation_loss` against ``teacher`` (frozen), on the same
    pointwise data as :func:`helpers.ncf.train_pointwise` (``n_neg`` fresh negatives per
    positive each epoch, batches of ``config.batch_size``, ``config``'s optimiser and
    epochs; ``config`` is a :class:`helpers.training.TrainConfig`). Returns the mean loss of
    each epoch."""
    from helpers.ncf import pointwise_epoch
    from helpers.sampling import NegativeSampler
    from helpers.training import compiled_epoch

    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if users.shape != items.shape or users.ndim != 1 or len(users) == 0:
        raise ValueError(f"users and items must be non-empty 1-D arrays of equal length, got {users.shape}, {items.shape}")
    rng = np.random.default_rng(config.seed)
    sampler = NegativeSampler(users, items, n_items)
    opt = config.optimizer(-(-len(users) * (1 + n_neg) // config.batch_size))
    variables = student.trainable_variables
    opt.build(variables)

    @tf.function(autograph=False)
    def step(u, i, y, w):
        t = teacher([u, i], training=False)
        with tf.GradientTape() as tape:
            loss = distillation_loss(y, student([u, i], training=True), t, alpha, temperature)
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], variables))
        return loss

    epoch = compiled_epoch(step, config.batch_size)
    losses = []
    for _ in range(config.epochs):
        u, i, y, w = pointwise_epoch(sampler, users, items, n_neg, rng)
        losses.append(float(epoch(tf.constant(u), tf.constant(i), tf.constant(y), tf.constant(w))))
    return losses


# --------------------------------------------------------------------------- latency
def latency_per_request(score: Callable[[np.ndarray, np.ndarray], np.ndarray], n_candidates: int = 100,
                        n_requests: int = 50, n_users: int = 943, n_items: int = 1682,
                        seed: int = 0) -> float:
    """Median seconds to score one request: one user's ``n_candidates`` items through
    ``score(users, items)`` (after one warm-up call)."""
    if n_requests < 1 or n_candidates < 1:
        raise ValueError("n_requests and n_candidates must be >= 1")
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_requests)
    score(np.full(n_candidates, users[0], np.int32), rng.integers(0, n_items, n_candidates).astype(np.int32))
    times = []
    for u in users:
        it = rng.integers(0, n_items, n_candidates).astype(np.int32)
        t0 = time.perf_counter()
        score(np.full(n_candidates, u, np.int32), it)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
