r"""Content models for items described by text: vectorising titles, a CNN title encoder
(Kim, 2014) with DKN's entity channel, and a user encoder that attends over the titles a
user clicked, conditioned on the candidate (Wang et al., 2018).

Three layers of the same idea, each usable on its own:

* **vectorisation** (NumPy only) -- :class:`Vocabulary` maps tokens to indices (0 is
  padding, 1 an unknown token) and encodes titles as fixed-length index matrices;
  :func:`align_entities` writes each title's knowledge-graph entities onto the word
  positions they name, DKN's second input channel;
* **the title encoder** -- :func:`conv1d_max_pool` is the from-scratch NumPy form of one
  convolution of width :math:`w` followed by max-over-time pooling,

  .. math:: h_f = \max_{t=0}^{L-w}\ \mathrm{ReLU}\Big(b_f + \sum_{k=0}^{w-1}\sum_{j=1}^{d}
            x_{t+k,j}\,K_{k,j,f}\Big),

  and :func:`build_title_encoder` is the Keras model: embeddings, one such convolution per
  width, pooled outputs concatenated;
* **the click model** -- :class:`NewsClickModel` scores a candidate title :math:`c` for a
  user with clicked titles :math:`h_1..h_H` (all encoded by the same encoder):

  .. math:: \alpha_i = \frac{m_i\,e^{s(h_i, c)}}{\sum_j m_j\,e^{s(h_j, c)}},\qquad
            u = \sum_i \alpha_i h_i,\qquad \hat p = \sigma(u^\top c + w^\top c + b),

  with :math:`m_i \in \{0, 1\}` masking padding and the candidate itself, and
  :math:`s` either constant (the mean of the clicked titles), an inner product
  :math:`h^\top c/\sqrt{F}` (DKN's released code) or a small network on
  :math:`[h; c]` (the DKN paper). :func:`fit_click_model` trains it with the book's
  early-stopping rule (:func:`helpers.training.run_epochs`).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from helpers.training import EpochHistory, TrainConfig, Validation, run_epochs

PAD = 0
"""Index of the padding token (and of "no entity" in the entity channel)."""
OOV = 1
"""Index of a token the vocabulary does not know."""

USER_ENCODERS = ("mean", "dot", "mlp")


# ----------------------------------------------------------------------------- vectorising
def _tokens(doc: str | Sequence[Hashable]) -> list[Hashable]:
    if isinstance(doc, str):
        return doc.split()
    if isinstance(doc, bytes) or not isinstance(doc, Iterable):
        raise ValueError(f"a document is a string of words or a sequence of tokens, got {type(doc).__name__}")
    return list(doc)


@dataclass(frozen=True)
class Vocabulary:
    """Token -> index, with ``0`` reserved for padding and ``1`` for unknown tokens.

    Build it with :meth:`fit` on the *training* documents only: a word first seen in a test
    title is then unknown (index 1), which is what a deployed model meets.
    """

    tokens: tuple[Hashable, ...]
    index: Mapping[Hashable, int] = field(repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("the vocabulary's tokens must be distinct")
        object.__setattr__(self, "index", {t: i + 2 for i, t in enumerate(self.tokens)})

    @classmethod
    def fit(cls, docs: Iterable[str | Sequence[Hashable]], min_count: int = 1,
            max_size: int | None = None) -> Vocabulary:
        """The tokens that occur at least ``min_count`` times in ``docs`` (strings are split
        on whitespace), most frequent first (ties in order of first appearance), at most
        ``max_size`` of them."""
        if int(min_count) != min_count or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        if max_size is not None and (int(max_size) != max_size or max_size < 1):
            raise ValueError(f"max_size must be a positive integer or None, got {max_size!r}")
        counts: Counter[Hashable] = Counter()
        for doc in docs:
            counts.update(_tokens(doc))
        kept = [t for t, c in counts.most_common() if c >= min_count]  # stable: first seen first on ties
        return cls(tuple(kept[:max_size] if max_size is not None else kept))

    def __len__(self) -> int:
        """Number of indices, padding and unknown included (the embedding table's rows)."""
        return len(self.tokens) + 2

    def lookup(self, token: Hashable) -> int:
        """The token's index, or :data:`OOV`."""
        return self.index.get(token, OOV)

    def encode(self, docs: Iterable[str | Sequence[Hashable]], max_len: int) -> np.ndarray:
        """``(n_docs, max_len)`` int32 indices: the first ``max_len`` tokens of each document,
        unknown tokens as :data:`OOV`, padded with :data:`PAD` on the right."""
        if int(max_len) != max_len or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        rows = [[self.lookup(t) for t in _tokens(d)[:max_len]] for d in docs]
        out = np.zeros((len(rows), int(max_len)), dtype=np.int32)
        for r, idx in enumerate(rows):
            out[r, :len(idx)] = idx
        return out


def _name_words(name: str) -> list[str]:
    return re.sub(r"[^0-9a-z]+", " ", name.lower()).split()


def align_entities(titles: Sequence[str], entities: Sequence[Sequence[tuple[int, str]]],
                   vocabulary: Vocabulary, max_len: int) -> np.ndarray:
    """DKN's entity channel: ``(n, max_len)`` int32, position ``t`` holding the index (in
    ``vocabulary``, a :class:`Vocabulary` of entity ids) of the entity whose name contains
    title word ``t``, :data:`PAD` where the word names no entity, :data:`OOV` for an entity
    the vocabulary does not know.

    A name is matched word by word after lower-casing and replacing everything but letters
    and digits by spaces ("Neil deGrasse Tyson" marks the words ``neil``, ``degrasse`` and
    ``tyson``); where two entities claim a word, the first listed wins. Positions align
    with :meth:`Vocabulary.encode` of the same titles and ``max_len``.
    """
    if len(titles) != len(entities):
        raise ValueError(f"titles and entities must have one entry per row, got {len(titles)} and "
                         f"{len(entities)}")
    if int(max_len) != max_len or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    out = np.zeros((len(titles), int(max_len)), dtype=np.int32)
    for r, (title, ents) in enumerate(zip(titles, entities)):
        owner: dict[str, int] = {}
        for pair in ents:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ValueError(f"row {r}: entities must be (id, name) pairs, got {pair!r}")
            eid, name = pair
            for w in _name_words(name):
                owner.setdefault(w, vocabulary.lookup(eid))
        for t, w in enumerate(_tokens(title)[:max_len]):
            out[r, t] = owner.get(w, PAD)
    return out


def holdout_titles(titles: Sequence[str], share: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of the rows whose title is one of a random ``share`` of the distinct
    titles: a validation split *by title*, so that, as on a test period of fresh news, no
    validation title was ever seen in training (all rows of a title fall on one side)."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    titles = pd.Series(np.asarray(titles, dtype=object))
    distinct = pd.unique(titles)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(distinct), size=max(1, int(round(share * len(distinct)))), replace=False)
    return titles.isin(set(distinct[chosen].tolist())).to_numpy()


@dataclass(frozen=True)
class NewsInputs:
    """Everything a content model reads about news items and users, vectorised once.

    ``titles`` lists every distinct title of all the frames given (training and test: a
    title's *text* is known when it is shown, its clicks are not), and row ``k`` of
    ``words`` and ``entities`` encodes ``titles[k]`` with vocabularies fitted on the
    training frame only. ``users`` lists the user ids of all frames, training users first
    (a user without training rows simply has an empty history).
    """

    titles: pd.Index
    words: np.ndarray
    entities: np.ndarray
    vocabulary: Vocabulary
    entity_vocabulary: Vocabulary
    users: pd.Index

    def items(self, frame: pd.DataFrame) -> np.ndarray:
        """Item index (row of ``words``) of each row's title."""
        idx = self.titles.get_indexer(frame["title"])
        if (idx < 0).any():
            raise ValueError(f"{int((idx < 0).sum())} titles were not vectorised: pass their frame to "
                             "vectorise_news")
        return idx.astype(np.int32)

    def user_codes(self, frame: pd.DataFrame) -> np.ndarray:
        """Index of each row's user in ``users``."""
        idx = self.users.get_indexer(frame["user_id"])
        if (idx < 0).any():
            raise ValueError(f"{int((idx < 0).sum())} rows belong to users of no vectorised frame: pass "
                             "their frame to vectorise_news")
        return idx.astype(np.int32)


def vectorise_news(train: pd.DataFrame, frames: Sequence[pd.DataFrame], max_len: int = 12,
                   min_count: int = 2) -> NewsInputs:
    """Vocabularies from ``train`` (words seen at least ``min_count`` times; every entity),
    then every distinct title of ``train`` and ``frames`` encoded as words
    (:meth:`Vocabulary.encode`) and entities (:func:`align_entities`). Frames have the
    columns of :func:`helpers.data.load_dkn_news` (``user_id``, ``title``, ``entities``)."""
    for f in (train, *frames):
        missing = {"user_id", "title", "entities"} - set(f.columns)
        if missing:
            raise ValueError("a news frame needs the columns user_id, title and entities; missing "
                             f"{sorted(missing)}")
    vocab = Vocabulary.fit(train["title"], min_count=min_count)
    evocab = Vocabulary.fit([[e for e, _ in ents] for ents in train["entities"]])
    every = pd.concat([train, *frames], ignore_index=True).drop_duplicates("title")
    titles = pd.Index(every["title"].to_numpy())
    words = vocab.encode(titles, max_len)
    ents = align_entities(list(titles), list(every["entities"]), evocab, max_len)
    users = pd.Index(pd.unique(pd.concat([f["user_id"] for f in (train, *frames)], ignore_index=True)))
    return NewsInputs(titles, words, ents, vocab, evocab, users)


def ppmi_word_vectors(words: np.ndarray, n_words: int, dim: int, seed: int = 0) -> np.ndarray:
    r"""Word vectors from co-occurrence in the same title, for initialising an embedding
    table (the role word2vec plays in DKN): ``(n_words, dim)`` float32.

    With :math:`C_{ij}` the number of titles holding both words :math:`i \ne j` (rows of
    ``words``, as from :meth:`Vocabulary.encode`; padding and unknown words are ignored),
    :math:`c_i = \sum_j C_{ij}` and :math:`T = \sum_i c_i`,

    .. math:: \mathrm{PPMI}_{ij} = \max\Big(0,\ \log\frac{C_{ij}\,T}{c_i\,c_j}\Big),\qquad
              \mathrm{PPMI} \approx U_d S_d V_d^\top,\qquad W = U_d S_d^{1/2},

    rescaled so that the mean norm of a non-zero row is 1. Rows 0 (padding), 1 (unknown) and
    words that never share a title stay zero. ``seed`` fixes the truncated SVD's start vector.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import svds

    words = np.asarray(words)
    if words.ndim != 2:
        raise ValueError(f"words must be (n_titles, max_len) indices, got shape {words.shape}")
    if int(dim) != dim or not 1 <= dim < n_words - 2:
        raise ValueError(f"dim must be an integer in [1, n_words - 2), got {dim!r}")
    if words.size and (words.min() < 0 or words.max() >= n_words):
        raise ValueError(f"word indices must lie in [0, {n_words}), got [{words.min()}, {words.max()}]")
    rows, cols = np.nonzero(words > OOV)
    incidence = sp.csr_array((np.ones(len(rows)), (rows, words[rows, cols])), shape=(words.shape[0], n_words))
    incidence.data[:] = 1.0                      # a word counted once per title
    co = sp.csr_array(incidence.T @ incidence)
    co.setdiag(0)
    co.eliminate_zeros()
    c = np.asarray(co.sum(axis=1)).ravel()
    total = c.sum()
    if total == 0:
        raise ValueError("no two known words share a title: nothing to learn word vectors from")
    co = co.tocoo()
    pmi = np.log(co.data * total / (c[co.row] * c[co.col]))
    keep = pmi > 0
    ppmi = sp.csr_array((pmi[keep], (co.row[keep], co.col[keep])), shape=co.shape)
    v0 = np.random.default_rng(seed).normal(size=n_words)
    u, sv, _ = svds(ppmi, k=int(dim), v0=v0)
    w = u * np.sqrt(sv)
    seen = c > 0                                  # words that share a title with another word
    w[~seen] = 0.0
    return (w / np.linalg.norm(w[seen], axis=1).mean()).astype(np.float32)


# ------------------------------------------------------------------------- from scratch
def conv1d_max_pool(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    r"""One 1-D convolution (``valid``, stride 1), ReLU, then max over time, in NumPy.

    ``x`` is ``(n, L, d)`` (a batch of ``L`` embedded words), ``kernel`` ``(w, d, F)`` and
    ``bias`` ``(F,)`` (Keras ``Conv1D`` stores its weights in this layout). Returns
    ``(n, F)``:

    .. math:: h_{nf} = \max_{t=0}^{L-w}\ \mathrm{ReLU}\Big(b_f + \sum_{k=0}^{w-1}\sum_{j}
              x_{n,t+k,j}\,K_{k,j,f}\Big)

    (ReLU is monotone, so pooling before or after it gives the same result).
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    if x.ndim != 3 or kernel.ndim != 3:
        raise ValueError(f"x must be (n, L, d) and kernel (w, d, F), got shapes {x.shape} and {kernel.shape}")
    w, d, f = kernel.shape
    if x.shape[2] != d:
        raise ValueError(f"x has {x.shape[2]} features per position but the kernel expects {d}")
    if bias.shape != (f,):
        raise ValueError(f"bias must have shape ({f},), got {bias.shape}")
    if not 1 <= w <= x.shape[1]:
        raise ValueError(f"kernel width {w} must be between 1 and the sequence length {x.shape[1]}")
    windows = np.lib.stride_tricks.sliding_window_view(x, w, axis=1)  # (n, L-w+1, d, w)
    z = np.einsum("ntjk,kjf->ntf", windows, kernel) + bias
    return np.maximum(z, 0.0).max(axis=1)


def attention_weights(history: np.ndarray, candidate: np.ndarray, mask: np.ndarray,
                      scores: np.ndarray | None = None) -> np.ndarray:
    r"""The user encoder's weights in NumPy: ``history`` ``(n, H, F)``, ``candidate``
    ``(n, F)``, ``mask`` ``(n, H)`` (1 = a real clicked title). With ``scores`` ``(n, H)``
    given, :math:`\alpha = \mathrm{softmax}` of them over unmasked positions; without, the
    inner-product scores :math:`s_i = h_i^\top c / \sqrt F`. A row with no unmasked position
    gets all-zero weights (an empty history gives the zero user vector)."""
    history = np.asarray(history, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if (history.ndim != 3 or candidate.shape != (history.shape[0], history.shape[2])
            or mask.shape != history.shape[:2]):
        raise ValueError(f"expected history (n, H, F), candidate (n, F), mask (n, H); got {history.shape}, "
                         f"{candidate.shape}, {mask.shape}")
    if scores is None:
        scores = np.einsum("nhf,nf->nh", history, candidate) / np.sqrt(history.shape[2])
    s = np.where(mask, scores, -np.inf)
    top = np.max(s, axis=1, keepdims=True)
    e = np.where(mask, np.exp(s - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = e.sum(axis=1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


# ----------------------------------------------------------------------------- Keras
def build_title_encoder(n_words: int, max_len: int, n_entities: int = 0, word_dim: int = 32,
                        entity_dim: int = 32, widths: Sequence[int] = (1, 2, 3), filters: int = 32,
                        dropout: float = 0.0, word_vectors: np.ndarray | None = None,
                        name: str = "title_encoder") -> keras.Model:
    r"""Kim's CNN over a title, with DKN's entity channel when ``n_entities > 0``.

    Inputs: ``words`` ``(n, max_len)`` (:meth:`Vocabulary.encode`) and, with entities,
    ``entities`` ``(n, max_len)`` (:func:`align_entities`). Each position becomes its word
    embedding (``word_dim``), and with entities also the transformed entity embedding
    :math:`g(e) = \tanh(M e + b)` (``word_dim``, zero where the word names no entity), side
    by side. For each width :math:`w` a ``Conv1D(filters, w, relu)`` and max-over-time
    pooling (:func:`conv1d_max_pool`); the pooled vectors are concatenated, so a title
    becomes ``len(widths) * filters`` numbers. DKN stacks the two channels and convolves
    them with a 2-D filter spanning both; a ``Conv1D`` over the concatenated channels is the
    same sum over the same products. ``word_vectors`` ``(n_words, word_dim)``, e.g. from
    :func:`ppmi_word_vectors`, initialise the word embeddings (they are trained further);
    without them the embeddings start random.
    """
    for arg, v in (("n_words", n_words), ("max_len", max_len), ("word_dim", word_dim),
                   ("entity_dim", entity_dim), ("filters", filters)):
        if int(v) != v or v < 1:
            raise ValueError(f"{arg} must be a positive integer, got {v!r}")
    if n_entities < 0:
        raise ValueError(f"n_entities must be >= 0 (0 = no entity channel), got {n_entities}")
    widths = tuple(int(w) for w in widths)
    if not widths or min(widths) < 1 or max(widths) > max_len:
        raise ValueError(f"widths must be 1..max_len ({max_len}), got {widths}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    init: str | keras.initializers.Initializer = "uniform"
    if word_vectors is not None:
        word_vectors = np.asarray(word_vectors, dtype=np.float32)
        if word_vectors.shape != (n_words, word_dim):
            raise ValueError(f"word_vectors must have shape ({n_words}, {word_dim}), got "
                             f"{word_vectors.shape}")
        init = keras.initializers.Constant(word_vectors)
    words = keras.Input((max_len,), dtype="int32", name="words")
    inputs = [words]
    x = keras.layers.Embedding(n_words, word_dim, embeddings_initializer=init, name="word_embedding")(words)
    if n_entities:
        ents = keras.Input((max_len,), dtype="int32", name="entities")
        inputs.append(ents)
        e = keras.layers.Embedding(n_entities, entity_dim, name="entity_embedding")(ents)
        g = keras.layers.Dense(word_dim, activation="tanh", name="entity_transform")(e)
        has = keras.ops.expand_dims(keras.ops.cast(keras.ops.not_equal(ents, PAD), g.dtype), -1)
        x = keras.layers.Concatenate(name="channels")([x, g * has])
    pooled = []
    for w in widths:
        c = keras.layers.Conv1D(filters, w, activation="relu", name=f"conv_w{w}")(x)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max_over_time_w{w}")(c))
    h = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="title_vector")(pooled)
    if dropout:
        h = keras.layers.Dropout(dropout, name="dropout")(h)
    return keras.Model(inputs, h, name=name)


class NewsClickModel(keras.Model):
    r"""Click probability of a candidate title for a user, from the titles the user clicked.

    ``title_words`` (and ``title_entities``) are the encoded titles of every news item
    the model may meet, one row per item index. Called on ``(candidates, history)``:
    ``candidates`` ``(B,)`` item indices, ``history`` ``(B, H)`` item indices of the
    user's clicked titles, ``-1`` for padding; a history entry equal to the row's
    candidate is masked (a title never explains its own click). Returns logits
    ``(B,)``. Each distinct title in a batch is encoded once (batches grouped by user
    share their histories, see :func:`user_grouped_batches`). ``user_encoder`` is
    ``"mean"``, ``"dot"`` or ``"mlp"`` (module docstring); ``item_bias`` adds the
    learned :math:`w^\top c` term, a content-only "is this title clicked by anyone".
    With ``use_skipped`` the model is called on ``(candidates, history, skipped)``, the
    third being the titles the user was shown and did *not* click (same layout), and the
    logit becomes :math:`a\,u^\top c - a'\,u'^\top c + w^\top c + b`, with :math:`u'` the
    skipped titles encoded like the clicked ones and :math:`a, a'` learned scalars (both
    start at 1): the neural form of a Rocchio profile, clicked minus skipped.
    ``mask_candidate=False`` leaves a candidate in its own history, as the DKN authors' data
    loader does (for demonstrating the leak, not for use).
    """

    def __init__(self, encoder: keras.Model, title_words: np.ndarray,
                 title_entities: np.ndarray | None = None, user_encoder: str = "dot",
                 attention_hidden: int = 32, item_bias: bool = True, use_skipped: bool = False,
                 mask_candidate: bool = True, **kwargs):
        super().__init__(**kwargs)
        if user_encoder not in USER_ENCODERS:
            raise ValueError(f"user_encoder must be one of {USER_ENCODERS}, got {user_encoder!r}")
        title_words = np.asarray(title_words, dtype=np.int32)
        if title_words.ndim != 2:
            raise ValueError(f"title_words must be (n_titles, max_len), got shape {title_words.shape}")
        n_inputs = len(encoder.inputs)
        if (title_entities is None) != (n_inputs == 1):
            raise ValueError(f"the encoder takes {n_inputs} input(s): pass title_entities exactly when it "
                             "has an entity channel")
        if title_entities is not None:
            title_entities = np.asarray(title_entities, dtype=np.int32)
            if title_entities.shape != title_words.shape:
                raise ValueError(f"title_entities {title_entities.shape} must match title_words "
                                 f"{title_words.shape}")
        self.encoder = encoder
        self.user_encoder = user_encoder
        self.n_titles = int(title_words.shape[0])
        self._words = tf.constant(title_words)
        self._entities = None if title_entities is None else tf.constant(title_entities)
        dim = int(encoder.outputs[0].shape[-1])
        self.dim = dim
        if user_encoder == "mlp":
            self.att_hidden = keras.layers.Dense(attention_hidden, activation="relu", name="attention_hidden")
            self.att_out = keras.layers.Dense(1, name="attention_score")
        self.item_weight = keras.layers.Dense(1, name="item_bias") if item_bias else None
        self.bias = self.add_weight(shape=(), initializer="zeros", name="bias")
        self.w_click = self.add_weight(shape=(), initializer="ones", name="weight_clicked")
        self.use_skipped = bool(use_skipped)
        self.mask_candidate = bool(mask_candidate)
        if self.use_skipped:
            self.w_skip = self.add_weight(shape=(), initializer="ones", name="weight_skipped")

    def encode_titles(self, ids: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Encoder output for item indices ``ids`` (any shape), shape ``ids.shape + (F,)``."""
        flat = tf.reshape(ids, [-1])
        uniq, pos = tf.unique(flat)
        x = [tf.gather(self._words, uniq)]
        if self._entities is not None:
            x.append(tf.gather(self._entities, uniq))
        vec = tf.gather(self.encoder(x if len(x) > 1 else x[0], training=training), pos)
        return tf.reshape(vec, tf.concat([tf.shape(ids), [self.dim]], 0))

    def _encode(self, candidates, histories, training):
        """Candidate vectors ``(B, F)`` and, per history ``(B, H)``, its vectors ``(B, H, F)``
        and mask, all titles encoded in one pass."""
        candidates = tf.cast(tf.reshape(candidates, [-1]), tf.int32)
        histories = [tf.cast(h, tf.int32) for h in histories]
        b = tf.shape(candidates)[0]
        flat = [candidates] + [tf.reshape(tf.maximum(h, 0), [-1]) for h in histories]
        vec = self.encode_titles(tf.concat(flat, 0), training)
        out, start = [], b
        for h in histories:
            n = tf.size(h)
            mask = h >= 0
            if self.mask_candidate:
                mask = tf.logical_and(mask, tf.not_equal(h, candidates[:, None]))
            out.append((tf.reshape(vec[start:start + n], [b, tf.shape(h)[1], self.dim]), mask))
            start = start + n
        return vec[:b], out

    def _weights(self, c, h, mask):
        m = tf.cast(mask, h.dtype)
        if self.user_encoder == "mean":
            s = tf.zeros_like(m)
        elif self.user_encoder == "dot":
            s = tf.einsum("bhf,bf->bh", h, c) / tf.sqrt(tf.cast(self.dim, h.dtype))
        else:
            cc = tf.broadcast_to(c[:, None, :], tf.shape(h))
            s = self.att_out(self.att_hidden(tf.concat([h, cc], -1)))[..., 0]
        s = tf.where(mask, s, tf.fill(tf.shape(s), tf.constant(-1e9, s.dtype)))
        e = tf.exp(s - tf.reduce_max(s, axis=1, keepdims=True)) * m
        return e / tf.maximum(tf.reduce_sum(e, axis=1, keepdims=True), 1e-12)

    def attention(self, candidates: np.ndarray, history: np.ndarray) -> np.ndarray:
        """The weights :math:`\\alpha` ``(B, H)`` the user encoder gives each history entry."""
        c, [(h, mask)] = self._encode(tf.constant(candidates), [tf.constant(history)], False)
        return self._weights(c, h, mask).numpy()

    def _user_term(self, c, h, mask):
        u = tf.einsum("bh,bhf->bf", self._weights(c, h, mask), h)
        return tf.reduce_sum(u * c, axis=-1)

    def call(self, inputs, training=False):
        n_expected = 3 if self.use_skipped else 2
        if len(inputs) != n_expected:
            raise ValueError("call the model on (candidates, history, skipped)" if self.use_skipped
                             else "call the model on (candidates, history)")
        c, hists = self._encode(inputs[0], list(inputs[1:]), training)
        logit = self.w_click * self._user_term(c, *hists[0]) + self.bias
        if self.use_skipped:
            logit = logit - self.w_skip * self._user_term(c, *hists[1])
        if self.item_weight is not None:
            logit = logit + self.item_weight(c)[:, 0]
        return logit


# ------------------------------------------------------------------------- data for it
def user_histories(users: np.ndarray, items: np.ndarray, clicked: np.ndarray, max_history: int,
                   n_users: int | None = None) -> np.ndarray:
    """``(n_users, max_history)`` int32: each user's clicked item indices, the *last*
    ``max_history`` distinct ones in row order, padded with ``-1``.

    ``users``, ``items`` and ``clicked`` (0/1) are aligned rows, e.g. the training
    impressions; only clicked rows enter a history.
    """
    users = np.asarray(users)
    items = np.asarray(items)
    clicked = np.asarray(clicked)
    if not users.shape == items.shape == clicked.shape or users.ndim != 1:
        raise ValueError(f"users, items and clicked must be 1-D and aligned, got {users.shape}, "
                         f"{items.shape}, {clicked.shape}")
    if int(max_history) != max_history or max_history < 1:
        raise ValueError(f"max_history must be a positive integer, got {max_history!r}")
    if users.size and (users.min() < 0 or items.min() < 0):
        raise ValueError("users and items must be non-negative indices")
    n = int(users.max()) + 1 if n_users is None else int(n_users)
    if users.size and users.max() >= n:
        raise ValueError(f"user index {int(users.max())} is outside n_users={n}")
    out = np.full((n, int(max_history)), -1, dtype=np.int32)
    per_user: dict[int, list[int]] = {}
    for u, i, y in zip(users.tolist(), items.tolist(), clicked.tolist()):
        if y:
            lst = per_user.setdefault(u, [])
            if i in lst:
                lst.remove(i)
            lst.append(i)
    for u, lst in per_user.items():
        last = lst[-int(max_history):]
        out[u, :len(last)] = last
    return out


def user_grouped_batches(users: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices in batches of ``batch_size`` (the last may be smaller), users in a random
    order, each user's rows shuffled and kept together, so a batch holds few users and
    their shared histories are encoded once (:class:`NewsClickModel`)."""
    users = np.asarray(users)
    if users.ndim != 1:
        raise ValueError(f"users must be 1-D, got shape {users.shape}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    codes = np.unique(users, return_inverse=True)[1]
    user_rank = rng.permutation(codes.max() + 1 if codes.size else 0)
    order = np.lexsort((rng.random(users.size), user_rank[codes]))
    return [order[s:s + int(batch_size)] for s in range(0, users.size, int(batch_size))]


def _click_inputs(candidates: np.ndarray, history: np.ndarray, skipped: np.ndarray | None
                  ) -> tuple[np.ndarray, ...]:
    candidates = np.asarray(candidates, dtype=np.int32)
    arrays = [candidates, np.asarray(history, dtype=np.int32)]
    if skipped is not None:
        arrays.append(np.asarray(skipped, dtype=np.int32))
    if candidates.ndim != 1 or any(a.ndim != 2 or a.shape[0] != candidates.shape[0] for a in arrays[1:]):
        raise ValueError("candidates must be (n,) and history (and skipped) (n, H), got shapes "
                         f"{[a.shape for a in arrays]}")
    return tuple(arrays)


def predict_click_model(model: NewsClickModel, candidates: np.ndarray, history: np.ndarray,
                        skipped: np.ndarray | None = None, users: np.ndarray | None = None,
                        batch_size: int = 512) -> np.ndarray:
    """Click probabilities :math:`\\sigma(z)` of :class:`NewsClickModel` for aligned rows
    (``skipped`` only for a model with ``use_skipped``), as float64, in batches grouped by
    ``users`` when given (faster: shared histories are encoded once); the output keeps the
    input order."""
    arrays = _click_inputs(candidates, history, skipped)
    n = arrays[0].shape[0]
    order = np.argsort(np.asarray(users), kind="stable") if users is not None else np.arange(n)
    fn = getattr(model, "_book_predict_fn", None)
    if fn is None:
        fn = tf.function(lambda *x: tf.sigmoid(model(x, training=False)), reduce_retracing=True)
        object.__setattr__(model, "_book_predict_fn", fn)
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, batch_size):
        idx = order[s:s + batch_size]
        out[idx] = fn(*(tf.constant(a[idx]) for a in arrays)).numpy()
    return out


def fit_click_model(model: NewsClickModel, candidates: np.ndarray, history: np.ndarray, labels: np.ndarray,
                    users: np.ndarray, config: TrainConfig, skipped: np.ndarray | None = None,
                    validation: Validation | None = None,
                    on_epoch_end: Callable[[int, EpochHistory], None] | None = None) -> EpochHistory:
    r"""Train :class:`NewsClickModel` with binary cross-entropy on logits,

    .. math:: \mathcal L = -\frac1B\sum_b \big[y_b \log\sigma(z_b) + (1-y_b)\log(1-\sigma(z_b))\big],

    with Adam or AdamW (``config``, a :class:`helpers.training.TrainConfig`: epochs, batch
    size, learning rate, weight decay, seed) on batches grouped by user
    (:func:`user_grouped_batches`), under the book's early-stopping rule
    (:func:`helpers.training.run_epochs`; ``validation`` a
    :class:`helpers.training.Validation`). Returns the :class:`helpers.training.EpochHistory`
    (loss, wall and CPU seconds, validation values per epoch).
    """
    arrays = _click_inputs(candidates, history, skipped)
    labels = np.asarray(labels, dtype=np.float32)
    users = np.asarray(users)
    n = arrays[0].shape[0]
    if labels.shape != (n,) or users.shape != (n,):
        raise ValueError(f"labels and users need one entry per row ({n}), got {labels.shape} and "
                         f"{users.shape}")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 (not clicked) or 1 (clicked)")
    rng = np.random.default_rng(config.seed)
    optimizer = config.optimizer(-(-n // config.batch_size))
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    model(tuple(tf.constant(a[:2]) for a in arrays))  # create the weights eagerly, outside tf.function
    optimizer.build(model.trainable_variables)

    @tf.function(reduce_retracing=True)
    def step(y, *x):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def epoch(_: int) -> float:
        batches = user_grouped_batches(users, config.batch_size, rng)
        total = 0.0
        for idx in batches:
            total += float(step(tf.constant(labels[idx]), *(tf.constant(a[idx]) for a in arrays)))
        return total / len(batches)

    return run_epochs(model, epoch, config.epochs, validation=validation, on_epoch_end=on_epoch_end)
