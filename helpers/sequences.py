r"""Sequence-aware recommenders (chapter 10): a user's history as an *ordered* list of items,
and models that predict the next item from it.

**Sequences.** :func:`user_sequences` orders each user's items by time, equal timestamps by
the data file's row order (as :func:`helpers.splits.recency_rank` and the leave-last-out
split do). Models read item *indices shifted by one*: ``0`` is padding, item ``i`` is
``i + 1``. :func:`pad_left` keeps a user's last ``max_len`` items, left-padded, so the most
recent item is always in the last column.

**Sequence-to-sequence training.** For a sequence :math:`s_0, s_1, \dots, s_{n-1}` the input
row is :math:`(s_0, \dots, s_{n-2})` and the target row :math:`(s_1, \dots, s_{n-1})`: the
hidden state :math:`h_t` after reading :math:`s_0..s_t` is trained to score
:math:`s_{t+1}` above other items, at every position at once, with padded positions masked
out (:func:`next_item_arrays`). One row of up to ``max_len`` positions per user (long
histories cut into several rows) replaces one sliding window per position. A model's score of
item :math:`j` at position :math:`t` is the dot product with the item embedding table
:math:`E` shared with the input,

.. math:: r_{t,j} = h_t^\top E_{j+1},

and the loss (:func:`next_item_loss`, :func:`train_next_item`) is the full softmax
cross-entropy over all items, a sampled softmax against ``n_neg`` items the user never
interacted with (shared by a row's positions), or binary cross-entropy against ``n_neg``
sampled negatives per position,

.. math:: \ell_t = -\log\frac{e^{r_{t,s_{t+1}}}}{\sum_j e^{r_{t,j}}},\qquad
          \ell_t = -\log\frac{e^{r_{t,s_{t+1}}}}{e^{r_{t,s_{t+1}}} + \sum_{k} e^{r_{t,j_k}}},\qquad
          \ell_t = -\log\sigma(r_{t,s_{t+1}}) - \sum_{k=1}^{n_\text{neg}}\log\big(1-\sigma(r_{t,j_k})\big),

averaged over the non-padded positions of a batch. :func:`fit_sequence_model` builds and
trains any of the three models from one settings mapping (a search's choice).

**Models** (all map a ``(batch, max_len)`` int32 array of shifted items to hidden states
``(batch, max_len, dim)``; every output at position :math:`t` depends only on positions
:math:`\le t`, and padding never changes a real position's output):

* :func:`build_gru4rec` -- a GRU over the item embeddings (Hidasi et al., 2016);
* :func:`build_caser` -- Caser's horizontal and vertical convolutions over the last
  ``window`` embeddings (Tang & Wang, 2018), computed for every position at once;
* :func:`build_sasrec` -- causal self-attention with learned positional embeddings
  (Kang & McAuley, 2018).

**Baselines**: first-order Markov transitions (:func:`transition_counts`,
:func:`markov_scores`). **Blends** of a sequence model with another scorer:
:func:`standardise_rows`, :func:`blend_scores`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import keras
import numpy as np
import pandas as pd
import scipy.sparse as sp
import tensorflow as tf
from keras import ops

from helpers.evaluation import full_ranks, ranking_report
from helpers.metrics import rank_of_target
from helpers.sampling import NegativeSampler
from helpers.training import EpochHistory, TrainConfig, Validation, compiled_epoch, run_epochs

__all__ = [
    "PAD", "user_sequences", "pad_left", "next_item_arrays", "transition_counts", "markov_scores",
    "build_gru4rec", "build_caser", "build_sasrec", "item_table", "hidden_states", "last_hidden",
    "score_all", "sequence_ranks", "next_item_validation", "next_item_loss", "train_next_item",
    "BUILDERS", "fit_sequence_model", "LOSSES", "standardise_rows", "blend_scores",
]

#: the input index of padding; item ``i`` enters a model as ``i + 1``
PAD = 0
#: the training losses of :func:`next_item_loss`
LOSSES = ("softmax", "sampled_softmax", "bce")


# ----------------------------------------------------------------------------- sequences
def user_sequences(df: pd.DataFrame, n_users: int, user_col: str = "user", item_col: str = "item",
                   time_col: str = "timestamp") -> list[np.ndarray]:
    """Each user's items in time order: ``seqs[u]`` is an int64 array of 0-based item indices.

    Equal timestamps keep the order of the rows in ``df`` (the later row counts as later),
    exactly as :func:`helpers.splits.leave_last_out` breaks ties, so the last item of
    ``seqs[u]`` built from a training split is the interaction just before the held-out one.
    Users in ``[0, n_users)`` without rows get an empty array.
    """
    missing = [c for c in (user_col, item_col, time_col) if c not in df.columns]
    if missing:
        raise KeyError(f"df needs columns {[user_col, item_col, time_col]}; missing {missing}")
    users = df[user_col].to_numpy()
    items = df[item_col].to_numpy()
    if len(df) and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"users must lie in [0, {n_users}), got values in [{users.min()}, {users.max()}]; "
                         "encode ids first (helpers.encoding)")
    if len(df) and items.min() < 0:
        raise ValueError(f"items must be 0-based indices, found {items.min()}")
    t = df[time_col]
    t = t.to_numpy().astype("datetime64[s]").astype(np.int64) if pd.api.types.is_datetime64_any_dtype(t) \
        else t.to_numpy()
    order = np.lexsort((np.arange(len(df)), t, users))
    bounds = np.searchsorted(users[order], np.arange(n_users + 1))
    items_sorted = items[order].astype(np.int64)
    return [items_sorted[bounds[u]:bounds[u + 1]] for u in range(n_users)]


def _check_len(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def pad_left(seqs: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """``(len(seqs), max_len)`` int32 model input: each sequence's last ``max_len`` items,
    shifted by one (item ``i`` -> ``i + 1``) and left-padded with :data:`PAD` (0), so the
    latest item sits in the last column."""
    max_len = _check_len("max_len", max_len)
    out = np.zeros((len(seqs), max_len), dtype=np.int32)
    for r, s in enumerate(seqs):
        s = np.asarray(s)
        if s.size and s.min() < 0:
            raise ValueError(f"sequence {r} holds a negative item index ({s.min()}); items are 0-based")
        tail = s[-max_len:] if s.size else s
        if tail.size:
            out[r, max_len - tail.size:] = tail + 1
    return out


def next_item_arrays(seqs: Sequence[np.ndarray], max_len: int, stride: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Sequence-to-sequence training rows ``(inputs, targets, owners)``.

    For a sequence :math:`s_0..s_{n-1}`, target :math:`s_i` (:math:`i \ge 1`) is predicted
    from the items before it; its input column holds :math:`s_{i-1}`. Both arrays are shifted
    by one and left-padded like :func:`pad_left`; a target of :data:`PAD` (0) is masked out
    of the loss. ``owners[r]`` is the sequence (user) a row belongs to.

    * ``stride=None`` (SASRec's recipe): one row per sequence, its last ``max_len`` targets;
      earlier items of longer sequences are not trained on.
    * ``stride=k`` (``1 <= k <= max_len``): rows end every ``k`` targets from the end of the
      sequence, each row trains only its last ``k`` targets (the others are masked; they are
      trained in the next row) and keeps up to ``max_len - k`` earlier positions as context.
      Every target is trained exactly once per epoch. ``stride=max_len`` cuts long sequences
      into non-overlapping pieces.

    Sequences with fewer than two items give no row.
    """
    max_len = _check_len("max_len", max_len)
    if stride is not None:
        stride = _check_len("stride", stride)
        if stride > max_len:
            raise ValueError(f"stride must be at most max_len ({max_len}), got {stride}")
    rows_in, rows_out, owners = [], [], []
    for u, s in enumerate(seqs):
        s = np.asarray(s, dtype=np.int64)
        if s.size and s.min() < 0:
            raise ValueError(f"sequence {u} holds a negative item index ({s.min()}); items are 0-based")
        n = s.size
        ends = [n] if stride is None else list(range(n, 1, -stride))
        for e in ends:
            if e < 2:
                break
            m = min(max_len, e - 1)                       # real positions in this row
            x = np.zeros(max_len, dtype=np.int32)
            y = np.zeros(max_len, dtype=np.int32)
            x[max_len - m:] = s[e - m - 1:e - 1] + 1
            y[max_len - m:] = s[e - m:e] + 1
            if stride is not None:
                y[:max_len - min(stride, m)] = PAD        # trained in another row
            rows_in.append(x)
            rows_out.append(y)
            owners.append(u)
    if not rows_in:
        return (np.zeros((0, max_len), np.int32), np.zeros((0, max_len), np.int32), np.zeros(0, np.int64))
    return np.stack(rows_in), np.stack(rows_out), np.asarray(owners, dtype=np.int64)


# ----------------------------------------------------------------------------- Markov
def transition_counts(seqs: Sequence[np.ndarray], n_items: int) -> sp.csr_array:
    r"""First-order transition counts :math:`C_{ij}` = how often item :math:`j` directly
    follows item :math:`i` in the sequences (an ``n_items x n_items`` sparse matrix)."""
    n_items = _check_len("n_items", n_items)
    src, dst = [], []
    for s in seqs:
        s = np.asarray(s, dtype=np.int64)
        if s.size and (s.min() < 0 or s.max() >= n_items):
            raise ValueError(f"items must lie in [0, {n_items}), got values in [{s.min()}, {s.max()}]")
        src.append(s[:-1])
        dst.append(s[1:])
    src_a = np.concatenate(src) if src else np.zeros(0, np.int64)
    dst_a = np.concatenate(dst) if dst else np.zeros(0, np.int64)
    c = sp.csr_array((np.ones(len(src_a), np.float64), (src_a, dst_a)), shape=(n_items, n_items))
    c.sum_duplicates()
    return c


def markov_scores(counts: sp.csr_array, last_items: np.ndarray, prior: np.ndarray,
                  damping: float) -> np.ndarray:
    r"""Scores of a damped first-order Markov chain, "items that follow your last item":

    .. math:: \hat P(j \mid i) = \frac{C_{ij} + \beta\, p_j}{\sum_k C_{ik} + \beta},

    for each user's last item :math:`i` (``last_items``), with ``prior`` :math:`p` (e.g.
    item popularity, normalised to sum 1) and damping :math:`\beta` (``damping``): an item
    seen rarely after :math:`i` is shrunk towards its prior, and an item never seen after
    :math:`i` is ranked by the prior. Returns a ``(len(last_items), n_items)`` array.
    """
    counts = sp.csr_array(counts)
    n = counts.shape[0]
    last_items = np.asarray(last_items, dtype=np.int64)
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != (n,) or not np.isfinite(prior).all() or prior.min() < 0:
        raise ValueError(f"prior must be {n} finite non-negative values (one per item), got shape {prior.shape}")
    if not damping >= 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    if last_items.size and (last_items.min() < 0 or last_items.max() >= n):
        raise ValueError(f"last_items must lie in [0, {n}), got values in [{last_items.min()}, {last_items.max()}]")
    p = prior / prior.sum() if prior.sum() > 0 else prior
    rows = counts[last_items].toarray()
    total = rows.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (rows + damping * p) / (total + damping)
    return np.where(total + damping > 0, out, p)


# ----------------------------------------------------------------------------- models
def _check_model_args(n_items: int, max_len: int, dim: int, dropout: float) -> None:
    _check_len("n_items", n_items)
    _check_len("max_len", max_len)
    _check_len("dim", dim)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout is a rate in [0, 1), got {dropout}")


def _item_input(max_len: int) -> keras.KerasTensor:
    return keras.Input(shape=(max_len,), dtype="int32", name="items")


def _item_embedding(n_items: int, dim: int) -> keras.layers.Embedding:
    return keras.layers.Embedding(n_items + 1, dim, name="item_embedding",
                                  embeddings_initializer=keras.initializers.RandomNormal(0.0, 0.05))


def build_gru4rec(n_items: int, max_len: int, dim: int = 64, dropout: float = 0.2,
                  name: str = "gru4rec") -> keras.Model:
    r"""GRU4Rec-style model: a GRU reads the item embeddings :math:`x_t = E_{s_t}` in order,

    .. math:: z_t = \sigma(W_z x_t + U_z h_{t-1} + b_z),\quad
              r_t = \sigma(W_r x_t + U_r h_{t-1} + b_r),\\
              \tilde h_t = \tanh(W_h x_t + r_t \odot (U_h h_{t-1} + b'_h) + b_h),\quad
              h_t = z_t \odot h_{t-1} + (1 - z_t)\odot \tilde h_t

    (Keras' ``reset_after`` form), and :math:`h_t` scores the next item against the same
    embeddings. Padding steps are skipped (masked), so a left-padded sequence gives the
    same states as the unpadded one. Dropout on the embeddings and the states.
    """
    _check_model_args(n_items, max_len, dim, dropout)
    items = _item_input(max_len)
    mask = keras.layers.Lambda(lambda x: ops.not_equal(x, PAD), name="not_padding")(items)
    x = _item_embedding(n_items, dim)(items)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    h = keras.layers.GRU(dim, return_sequences=True, name="gru")(x, mask=mask)
    h = keras.layers.Dropout(dropout, name="state_dropout")(h)
    return keras.Model(items, h, name=name)


def build_caser(n_items: int, max_len: int, window: int = 5, dim: int = 64, n_h: int = 16,
                n_v: int = 4, dropout: float = 0.3, name: str = "caser") -> keras.Model:
    r"""Caser (Tang & Wang, 2018) at every position at once. At position :math:`t` the
    window is the matrix of the last :math:`w` (``window``) embeddings
    :math:`W_t = [E_{s_{t-w+1}}; \dots; E_{s_t}]` (rows before the sequence start are 0):

    * **horizontal** filters of height :math:`h = 1..w` (``n_h`` each) slide down the rows,
      :math:`c_k = \mathrm{ReLU}(\langle F, W_t[k:k+h]\rangle + b)`, then max over the
      :math:`w - h + 1` positions -- union-level patterns ("these items together");
    * **vertical** filters (``n_v``) weight the rows,
      :math:`\tilde o = \sum_{k} f_k\, W_t[k] + b` -- point-level patterns;
    * :math:`h_t = \mathrm{ReLU}(W [o_v; o_h] + b)`, dropout before the dense layer.

    A causal 1-D convolution of height :math:`h` gives :math:`c` for every position at
    once, and a max-pool of width :math:`w-h+1` and stride 1 over it the window's max, so
    output :math:`t` equals Caser applied to the window ending at :math:`t` -- the sliding
    windows are never materialised. The paper's user embedding is left out: like the other
    two models, this one knows a user only by their recent items.
    """
    _check_model_args(n_items, max_len, dim, dropout)
    window = _check_len("window", window)
    n_h = _check_len("n_h", n_h)
    n_v = _check_len("n_v", n_v)
    items = _item_input(max_len)
    valid = keras.layers.Lambda(lambda x: ops.expand_dims(ops.cast(ops.not_equal(x, PAD), "float32"), -1),
                                name="not_padding")(items)
    e = keras.layers.Multiply(name="zero_padding_rows")([_item_embedding(n_items, dim)(items), valid])
    e_pad = keras.layers.ZeroPadding1D((window - 1, 0), name="window_padding")(e)   # (B, L + w - 1, d)
    pooled = []
    for h in range(1, window + 1):
        c = keras.layers.Conv1D(n_h, h, activation="relu", name=f"horizontal_{h}")(e_pad)  # (B, L + w - h, n_h)
        pooled.append(keras.layers.MaxPooling1D(window - h + 1, strides=1, name=f"max_over_time_{h}")(c))
    # vertical: stack the w rows of every window, (B, L, d, w), and weight them
    rows = keras.layers.Lambda(
        lambda z: ops.stack([z[:, k:k + max_len] for k in range(window)], axis=-1), name="windows")(e_pad)
    o_v = keras.layers.Dense(n_v, name="vertical")(rows)                  # (B, L, d, n_v)
    o_v = keras.layers.Reshape((max_len, dim * n_v), name="vertical_flat")(o_v)
    z = keras.layers.Concatenate(name="concat")([o_v, *pooled])
    z = keras.layers.Dropout(dropout, name="dropout")(z)
    out = keras.layers.Dense(dim, activation="relu", name="fc")(z)
    return keras.Model(items, out, name=name)


class _Positions(keras.layers.Layer):
    """``scale * x`` plus a learned embedding per position (``max_len x dim``)."""

    def __init__(self, max_len: int, dim: int, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.max_len, self.dim, self.scale = max_len, dim, scale

    def build(self, input_shape):
        self.table = self.add_weight(shape=(self.max_len, self.dim), name="table",
                                     initializer=keras.initializers.RandomNormal(0.0, 0.05))

    def call(self, x):
        return self.scale * x + ops.expand_dims(self.table, 0)

    def compute_output_shape(self, input_shape):
        return input_shape


def build_sasrec(n_items: int, max_len: int, dim: int = 64, n_blocks: int = 2, n_heads: int = 1,
                 dropout: float = 0.2, name: str = "sasrec") -> keras.Model:
    r"""SASRec-style model (Kang & McAuley, 2018): item embeddings scaled by
    :math:`\sqrt d` plus learned positional embeddings, then ``n_blocks`` pre-norm
    Transformer blocks

    .. math:: x \leftarrow x + \mathrm{MHA}(\mathrm{LN}(x)),\qquad
              x \leftarrow x + W_2\,\mathrm{ReLU}(W_1\,\mathrm{LN}(x) + b_1) + b_2,

    and a final layer norm. Attention is *causal* -- position :math:`t` attends to
    positions :math:`\le t` -- and never to padding:

    .. math:: \mathrm{Attn}(Q, K, V) = \mathrm{softmax}\Big(\frac{QK^\top}{\sqrt{d_k}} + M\Big)V,
              \quad M_{tk} = \begin{cases}0 & k \le t,\ s_k \ne \text{pad}\\ -\infty & \text{else.}\end{cases}

    Block ``b``'s layers are named ``block{b}_ln1``, ``block{b}_attention``, ``block{b}_ln2``,
    ``block{b}_ffn1``, ``block{b}_ffn2``. Dropout on the embeddings, the attention weights
    and each residual branch.
    """
    _check_model_args(n_items, max_len, dim, dropout)
    n_blocks = _check_len("n_blocks", n_blocks)
    n_heads = _check_len("n_heads", n_heads)
    if dim % n_heads:
        raise ValueError(f"dim ({dim}) must be divisible by n_heads ({n_heads})")
    items = _item_input(max_len)
    not_pad = keras.layers.Lambda(lambda x: ops.not_equal(x, PAD), name="not_padding")(items)
    key_mask = keras.layers.Lambda(
        lambda m: ops.repeat(ops.expand_dims(m, 1), max_len, axis=1), name="key_mask")(not_pad)  # (B, L, L)
    x = _item_embedding(n_items, dim)(items)
    x = _Positions(max_len, dim, scale=math.sqrt(dim), name="position_embedding")(x)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for b in range(n_blocks):
        a = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{b}_ln1")(x)
        a = keras.layers.MultiHeadAttention(n_heads, dim // n_heads, dropout=dropout,
                                            name=f"block{b}_attention")(
            a, a, attention_mask=key_mask, use_causal_mask=True)
        x = x + keras.layers.Dropout(dropout, name=f"block{b}_attention_dropout")(a)
        f = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{b}_ln2")(x)
        f = keras.layers.Dense(dim, activation="relu", name=f"block{b}_ffn1")(f)
        f = keras.layers.Dropout(dropout, name=f"block{b}_ffn_dropout")(f)
        f = keras.layers.Dense(dim, name=f"block{b}_ffn2")(f)
        x = x + keras.layers.Dropout(dropout, name=f"block{b}_ffn_out_dropout")(f)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    return keras.Model(items, x, name=name)


# ----------------------------------------------------------------------------- scoring
def item_table(model: keras.Model) -> tf.Variable:
    """The model's item embedding table :math:`E` (``n_items + 1`` rows, row 0 = padding),
    shared by the input and the output layer."""
    return model.get_layer("item_embedding").embeddings


def _check_inputs(model: keras.Model, inputs: np.ndarray) -> np.ndarray:
    inputs = np.asarray(inputs)
    expected = model.inputs[0].shape[1]
    if inputs.ndim != 2 or inputs.shape[1] != expected:
        raise ValueError(f"inputs must be (rows, {expected}) item indices shifted by one (pad_left), "
                         f"got shape {inputs.shape}")
    n_rows = item_table(model).shape[0]
    if inputs.size and (inputs.min() < 0 or inputs.max() >= n_rows):
        raise ValueError(f"inputs must lie in [0, {n_rows}) (0 = padding, item i as i + 1), got values in "
                         f"[{inputs.min()}, {inputs.max()}]")
    return inputs.astype(np.int32)


def hidden_states(model: keras.Model, inputs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """``model(inputs)`` in inference mode, in batches: ``(rows, max_len, dim)`` float32.
    The compiled function is kept on the model, so repeated calls do not trace again."""
    inputs = _check_inputs(model, inputs)
    fn = getattr(model, "_book_hidden_fn", None)
    if fn is None:
        fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        object.__setattr__(model, "_book_hidden_fn", fn)
    parts = [fn(tf.constant(inputs[s:s + batch_size])).numpy() for s in range(0, len(inputs), batch_size)]
    dim = model.outputs[0].shape[-1]
    return np.concatenate(parts) if parts else np.zeros((0, inputs.shape[1], dim), np.float32)


def last_hidden(model: keras.Model, inputs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The hidden state at the last position, ``(rows, dim)``: what the model predicts the
    *next* item from (inputs left-padded by :func:`pad_left`, latest item last)."""
    return hidden_states(model, inputs, batch_size)[:, -1, :]


def score_all(model: keras.Model, inputs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    r"""Scores :math:`r_j = h^\top E_{j+1}` of every item ``j`` (0-based) for the next
    position of each input row: ``(rows, n_items)`` float64."""
    h = last_hidden(model, inputs, batch_size).astype(np.float64)
    e = np.asarray(item_table(model).numpy(), dtype=np.float64)[1:]
    return h @ e.T


def sequence_ranks(scores: np.ndarray, users: np.ndarray, *, candidates: np.ndarray | None = None,
                   targets: np.ndarray | None = None, exclude: sp.csr_array | None = None) -> np.ndarray:
    """0-based rank of each user's held-out item, from a ``(n_users, n_items)`` score
    matrix: among its sampled ``candidates`` row (column 0 the held-out item; ties count
    against it), or -- with ``targets`` and ``exclude`` (the training matrix) -- among all
    items the user has not interacted with (:func:`helpers.evaluation.full_ranks`)."""
    scores = np.asarray(scores)
    users = np.asarray(users, dtype=np.int64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x items), got shape {scores.shape}")
    if (candidates is None) == (targets is None):
        raise ValueError("pass candidates (sampled ranking) or targets and exclude (full ranking)")
    if candidates is not None:
        candidates = np.asarray(candidates)
        if candidates.shape[0] != len(users):
            raise ValueError(f"one candidate row per user: {len(users)} users, {candidates.shape[0]} rows")
        return rank_of_target(scores[users[:, None], candidates], 0)
    if exclude is None:
        raise ValueError("full ranking needs exclude (the users x items training matrix)")
    return full_ranks(scores[users], targets, sp.csr_array(exclude)[users])


def next_item_validation(inputs: np.ndarray, users: np.ndarray, *, candidates: np.ndarray | None = None,
                         targets: np.ndarray | None = None, exclude: sp.csr_array | None = None,
                         monitor: str = "NDCG@10", patience: int | None = None,
                         restore_best: bool = True) -> Validation:
    """Validation of a sequence model (:class:`helpers.training.Validation`): the rows of
    ``inputs`` (one per user, :func:`pad_left` of the *training* sequences) are scored by
    :func:`score_all`, and each user's held-out item is ranked among its sampled
    ``candidates`` (``HR@10``, ``NDCG@10``, ``MRR``) and/or -- with ``targets`` and
    ``exclude`` -- among all items not in training (``full HR@10``, ...). Pass validation
    items, never test items."""
    users = np.asarray(users, dtype=np.int64)
    if candidates is None and targets is None:
        raise ValueError("pass candidates (sampled metrics), targets and exclude (full ranking), or both")
    if (targets is None) != (exclude is None):
        raise ValueError("full-ranking validation needs both targets and exclude")
    if len(inputs) <= (users.max() if users.size else -1):
        raise ValueError(f"inputs has {len(inputs)} rows; users index its rows (max user {users.max()})")

    def evaluate(model: keras.Model) -> dict[str, float]:
        scores = score_all(model, inputs[users])
        rows = np.arange(len(users))
        report: dict[str, float] = {}
        if candidates is not None:
            report.update(ranking_report(sequence_ranks(scores, rows, candidates=candidates)))
        if targets is not None:
            ranks = full_ranks(scores, targets, sp.csr_array(exclude)[users])
            report.update({f"full {k}": v for k, v in ranking_report(ranks).items()})
        return report

    return Validation(evaluate, monitor=monitor, patience=patience, restore_best=restore_best)


# ----------------------------------------------------------------------------- training
def next_item_loss(hidden: tf.Tensor, targets: tf.Tensor, table: tf.Tensor, loss: str = "softmax",
                   negatives: tf.Tensor | None = None) -> tf.Tensor:
    r"""The sequence-to-sequence loss of one batch, averaged over non-padded positions.

    ``hidden`` is ``(B, L, d)``, ``targets`` ``(B, L)`` shifted items (0 = masked),
    ``table`` the ``(n_items + 1, d)`` item embeddings (row 0, padding, is never a class).

    * ``"softmax"``: cross-entropy of the target among *all* items;
    * ``"sampled_softmax"``: cross-entropy of the target among itself and the row's
      ``negatives`` ``(B, n_neg)`` (shifted indices, shared by the row's positions, none of
      them the target): :math:`-\log \frac{e^{r_y}}{e^{r_y} + \sum_k e^{r_{j_k}}}`;
    * ``"bce"``: :math:`-\log\sigma(r_y) - \sum_k \log(1 - \sigma(r_{j_k}))` with
      ``negatives`` ``(B, L, n_neg)``, drawn per position.
    """
    mask = tf.cast(tf.not_equal(targets, PAD), hidden.dtype)   # (B, L); static shapes (XLA-friendly)
    if loss == "softmax":
        logits = tf.einsum("bld,nd->bln", hidden, table[1:])                     # (B, L, n_items)
        per = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(targets - 1, 0), logits=logits)
    elif loss == "sampled_softmax":
        if negatives is None:
            raise ValueError("loss='sampled_softmax' needs negatives (B, n_neg)")
        pos = tf.reduce_sum(hidden * tf.gather(table, targets), axis=-1, keepdims=True)   # (B, L, 1)
        neg = tf.einsum("bld,bkd->blk", hidden, tf.gather(table, negatives))              # (B, L, n_neg)
        logits = tf.concat([pos, neg], axis=-1)
        per = tf.reduce_logsumexp(logits, axis=-1) - logits[..., 0]
    elif loss == "bce":
        if negatives is None:
            raise ValueError("loss='bce' needs negatives (B, L, n_neg)")
        pos = tf.reduce_sum(hidden * tf.gather(table, targets), axis=-1)
        negs = tf.einsum("bld,blkd->blk", hidden, tf.gather(table, negatives))
        per = tf.nn.softplus(-pos) + tf.reduce_sum(tf.nn.softplus(negs), axis=-1)
    else:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return tf.reduce_sum(per * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def train_next_item(model: keras.Model, inputs: np.ndarray, targets: np.ndarray, n_items: int,
                    config: TrainConfig | None = None, *, loss: str = "softmax", n_neg: int = 1,
                    owners: np.ndarray | None = None, validation: Validation | None = None,
                    on_epoch_end: Callable[[int, EpochHistory], None] | None = None) -> EpochHistory:
    r"""Train a sequence model sequence-to-sequence (:func:`next_item_arrays` rows): every
    non-padded position predicts its next item, with :func:`next_item_loss`.

    Each epoch shuffles the rows (``config.seed``), draws fresh negatives for
    ``loss="bce"`` (``n_neg`` per position, uniform over items the row's ``owners`` user
    never interacted with in ``inputs``/``targets``; without ``owners`` each row is its own
    user) and runs the whole epoch as one compiled graph
    (:func:`helpers.training.compiled_epoch`): the epoch's tensors have the same shape every
    epoch, so the graph is traced once. Optimiser, schedule and epochs come from ``config``
    (:class:`helpers.training.TrainConfig`); validation and early stopping follow the book's
    one rule (:func:`helpers.training.run_epochs`). Returns the
    :class:`helpers.training.EpochHistory`.
    """
    config = TrainConfig() if config is None else config
    inputs = _check_inputs(model, inputs)
    targets = np.asarray(targets)
    if targets.shape != inputs.shape:
        raise ValueError(f"targets must have the shape of inputs {inputs.shape}, got {targets.shape}")
    if len(inputs) == 0 or not (targets != PAD).any():
        raise ValueError("no training positions: every target is padding")
    n_rows_table = item_table(model).shape[0]
    if n_rows_table != n_items + 1:
        raise ValueError(f"the model's item table has {n_rows_table} rows, expected n_items + 1 = {n_items + 1}")
    if targets.min() < 0 or targets.max() > n_items:
        raise ValueError(f"targets must lie in [0, {n_items}] (0 = masked), got [{targets.min()}, {targets.max()}]")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    n_neg = _check_len("n_neg", n_neg)
    targets = targets.astype(np.int32)
    rng = np.random.default_rng(config.seed)
    sampler = None
    if loss != "softmax":
        own = np.arange(len(inputs)) if owners is None else np.asarray(owners, dtype=np.int64)
        if own.shape != (len(inputs),):
            raise ValueError(f"owners must hold one user per row ({len(inputs)}), got shape {own.shape}")
        seen = np.concatenate([inputs, targets], axis=1)
        r_idx = np.repeat(own, seen.shape[1])
        keep = seen.ravel() != PAD
        sampler = NegativeSampler(r_idx[keep], seen.ravel()[keep].astype(np.int64) - 1, n_items)
        pos_owner = np.repeat(own, inputs.shape[1])            # one per position
    steps = -(-len(inputs) // config.batch_size)
    opt = config.optimizer(steps)
    variables = model.trainable_variables
    opt.build(variables)
    table_var = item_table(model)

    @tf.function(jit_compile=config.jit_compile, autograph=False)
    def train_step(x: tf.Tensor, y: tf.Tensor, *neg: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            h = model(x, training=True)
            value = next_item_loss(h, y, table_var, loss, neg[0] if neg else None)
        grads = tape.gradient(value, variables)
        opt.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], variables))
        return value

    train_epoch = compiled_epoch(train_step, config.batch_size)

    def one_epoch(epoch: int) -> float:
        order = rng.permutation(len(inputs))
        tensors = [tf.constant(inputs[order]), tf.constant(targets[order])]
        if loss == "bce":
            neg = sampler.sample(pos_owner, n_neg, rng=rng).reshape(len(inputs), inputs.shape[1], n_neg) + 1
            tensors.append(tf.constant(neg[order].astype(np.int32)))
        elif loss == "sampled_softmax":
            neg = sampler.sample(own, n_neg, rng=rng) + 1
            tensors.append(tf.constant(neg[order].astype(np.int32)))
        return float(train_epoch(*tensors))

    return run_epochs(model, one_epoch, config.epochs, validation, on_epoch_end=on_epoch_end)


# ----------------------------------------------------------------------------- one call
#: builders by model name (the ``kind`` of :func:`fit_sequence_model`)
BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "gru4rec": build_gru4rec, "caser": build_caser, "sasrec": build_sasrec}
_MODEL_KEYS = {"gru4rec": ("dim", "dropout"), "caser": ("window", "dim", "n_h", "n_v", "dropout"),
               "sasrec": ("dim", "n_blocks", "n_heads", "dropout")}


def fit_sequence_model(kind: str, seqs: Sequence[np.ndarray], n_items: int, settings: dict, *,
                       seed: int = 0, epochs: int | None = None, validation: Validation | None = None,
                       on_epoch_end: Callable[[int, EpochHistory], None] | None = None
                       ) -> tuple[keras.Model, EpochHistory]:
    """Build model ``kind`` (``"gru4rec"``, ``"caser"`` or ``"sasrec"``) and train it on
    ``seqs`` sequence-to-sequence, all settings from one mapping (e.g. a search's choice,
    :func:`helpers.tuning.read_choice`):

    * ``max_len`` (rows of length :math:`L`), ``stride`` (:func:`next_item_arrays`; ``0`` or
      missing = one row per user);
    * the builder's own keys (``dim``, ``dropout``, ``window``, ``n_blocks`` ...);
    * ``loss``, ``n_neg`` and the :class:`helpers.training.TrainConfig` keys
      (``epochs``, ``batch_size``, ``learning_rate`` ...).

    ``epochs`` overrides the settings' epochs with the same schedule
    (:meth:`helpers.training.TrainConfig.refit`: a refit for the epoch validation chose).
    The model is built after ``helpers.seed_everything(seed)`` and trained with loop seed
    ``seed``. Returns ``(model, history)``.
    """
    from helpers.repro import seed_everything

    if kind not in BUILDERS:
        raise ValueError(f"kind must be one of {sorted(BUILDERS)}, got {kind!r}")
    if "max_len" not in settings:
        raise ValueError("settings need max_len (the length L of a training row)")
    max_len = int(settings["max_len"])
    stride = settings.get("stride") or None
    x, y, owners = next_item_arrays(seqs, max_len, None if stride is None else int(stride))
    config = TrainConfig.from_dict(settings).replace(seed=int(seed))
    if epochs is not None:
        config = config.refit(int(epochs))
    model_kwargs = {k: settings[k] for k in _MODEL_KEYS[kind] if k in settings and settings[k] is not None}
    for k in ("dim", "window", "n_h", "n_v", "n_blocks", "n_heads"):
        if k in model_kwargs:
            model_kwargs[k] = int(model_kwargs[k])
    if "dropout" in model_kwargs:
        model_kwargs["dropout"] = float(model_kwargs["dropout"])
    seed_everything(int(seed))
    model = BUILDERS[kind](n_items, max_len, **model_kwargs)
    history = train_next_item(model, x, y, n_items, config, loss=str(settings.get("loss", "softmax")),
                              n_neg=int(settings.get("n_neg", 1)), owners=owners, validation=validation,
                              on_epoch_end=on_epoch_end)
    return model, history


# ----------------------------------------------------------------------------- blends
def standardise_rows(scores: np.ndarray) -> np.ndarray:
    r"""Each row of a ``(users, items)`` score matrix shifted and scaled to mean 0 and standard
    deviation 1 over the items, :math:`z_{uj} = (s_{uj} - \bar s_u) / \sigma_u`, so that two
    scorers on different scales can be averaged. A constant row (:math:`\sigma_u = 0`) becomes
    all zeros. Returns float64; the order of items within a row never changes."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (users x items), got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (no NaN or inf)")
    sd = s.std(axis=1, keepdims=True)
    return (s - s.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def blend_scores(seq_scores: np.ndarray, other_scores: np.ndarray, alpha: float) -> np.ndarray:
    r"""A weighted blend of two scorers' standardised rows (:func:`standardise_rows`),

    .. math:: b_{uj} = \alpha\, z^{\text{seq}}_{uj} + (1 - \alpha)\, z^{\text{other}}_{uj},

    ``alpha`` in [0, 1]: 1 is the sequence model alone, 0 the other scorer alone (each up to a
    per-user monotone transform, so its ranking is unchanged)."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    a, b = np.asarray(seq_scores), np.asarray(other_scores)
    if a.shape != b.shape:
        raise ValueError(f"the two score matrices must have the same shape, got {a.shape} and {b.shape}")
    return float(alpha) * standardise_rows(a) + (1.0 - float(alpha)) * standardise_rows(b)
