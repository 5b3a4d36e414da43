"""Tests for helpers.sequences: sequence building and padding, the Markov baseline, the three
models (causality, padding, NumPy references, Caser's windows), the losses, the training
loop and validation (tiny data, seconds)."""
from __future__ import annotations

import helpers  # noqa: F401  (quiet TensorFlow first)

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import tensorflow as tf

from helpers import sequences as S
from helpers.evaluation import evaluate_full, evaluate_sampled, ranking_report
from helpers.splits import leave_last_out, recency_rank
from helpers.training import TrainConfig

N_ITEMS = 13


def _randomise(model: keras.Model, seed: int = 0, scale: float = 0.3) -> None:
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, scale, w.shape).astype(np.float32) for w in model.get_weights()])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------- sequences
def _frame() -> pd.DataFrame:
    # user 0: items 5, 3 (same second, file order), 7; user 2: 1, 2; user 1: none
    return pd.DataFrame({"user": [0, 2, 0, 0, 2], "item": [3, 2, 7, 5, 1],
                         "timestamp": [10, 6, 30, 10, 5]}).iloc[[3, 0, 1, 2, 4]]


def test_user_sequences_orders_by_time_then_file_row():
    seqs = S.user_sequences(_frame(), 3)
    assert [s.tolist() for s in seqs] == [[5, 3, 7], [], [1, 2]]


def test_user_sequences_agree_with_leave_last_out_ties():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"user": rng.integers(0, 20, 400), "item": rng.integers(0, 50, 400),
                       "timestamp": rng.integers(0, 30, 400)})  # many ties
    train, test = leave_last_out(df, user_col="user")
    seqs = S.user_sequences(df, 20)
    last = test.set_index("user")["item"]
    for u, s in enumerate(seqs):
        if u in last.index:
            assert s[-1] == last[u]
    r = recency_rank(df, "user")
    for u, s in enumerate(seqs):
        rows = df[df["user"] == u]
        order = np.argsort(-r[df["user"].to_numpy() == u], kind="stable")
        assert s.tolist() == rows["item"].to_numpy()[order].tolist()


def test_user_sequences_datetime_and_errors():
    df = _frame().assign(timestamp=pd.to_datetime(_frame()["timestamp"], unit="s"))
    assert S.user_sequences(df, 3)[0].tolist() == [5, 3, 7]
    with pytest.raises(KeyError, match="timestamp"):
        S.user_sequences(df.drop(columns="timestamp"), 3)
    with pytest.raises(ValueError, match=r"users must lie in \[0, 2\)"):
        S.user_sequences(df, 2)


def test_pad_left_shifts_truncates_and_pads():
    x = S.pad_left([np.array([0, 1, 2, 3]), np.array([4]), np.array([], int)], 3)
    np.testing.assert_array_equal(x, [[2, 3, 4], [0, 0, 5], [0, 0, 0]])
    assert x.dtype == np.int32
    with pytest.raises(ValueError, match="max_len must be a positive integer"):
        S.pad_left([np.array([1])], 0)
    with pytest.raises(ValueError, match="negative item"):
        S.pad_left([np.array([-1])], 2)


def test_next_item_arrays_one_row_per_user():
    x, y, own = S.next_item_arrays([np.array([0, 1, 2, 3, 4]), np.array([7]), np.array([5, 6])], 3)
    np.testing.assert_array_equal(x, [[2, 3, 4], [0, 0, 6]])
    np.testing.assert_array_equal(y, [[3, 4, 5], [0, 0, 7]])
    np.testing.assert_array_equal(own, [0, 2])


@pytest.mark.parametrize("max_len,stride", [(4, 4), (4, 2), (5, 1), (3, 3), (6, 4)])
def test_next_item_arrays_stride_trains_every_target_once_with_its_context(max_len, stride):
    rng = np.random.default_rng(max_len * 10 + stride)
    seqs = [rng.permutation(50)[:n] for n in (1, 2, 3, 7, 12, 20)]  # distinct items: positions are unique
    x, y, own = S.next_item_arrays(seqs, max_len, stride)
    for u, s in enumerate(seqs):
        rows = np.flatnonzero(own == u)
        active = y[rows][y[rows] > 0] - 1
        assert sorted(active.tolist()) == sorted(s[1:].tolist())  # every target exactly once
        for r in rows:
            real = x[r] > 0
            inputs = x[r][real] - 1
            start = int(np.flatnonzero(s == inputs[0])[0])
            np.testing.assert_array_equal(inputs, s[start:start + len(inputs)])  # contiguous context
            expected = s[start + 1:start + 1 + len(inputs)] + 1                  # each target follows its input
            got = y[r][real]
            np.testing.assert_array_equal(got[got > 0], expected[got > 0])
            assert (got > 0).sum() == min(stride, real.sum())


def test_next_item_arrays_errors():
    with pytest.raises(ValueError, match="stride must be at most max_len"):
        S.next_item_arrays([np.arange(5)], 3, 4)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        S.next_item_arrays([np.arange(5)], 3, 0)
    x, y, own = S.next_item_arrays([np.array([1])], 3)
    assert x.shape == (0, 3) and own.shape == (0,)


# ----------------------------------------------------------------------------- Markov
def test_transition_counts_and_damped_markov_scores():
    c = S.transition_counts([np.array([0, 1, 0, 1]), np.array([1, 2])], 3)
    np.testing.assert_array_equal(c.toarray(), [[0, 2, 0], [1, 0, 1], [0, 0, 0]])
    prior = np.array([1.0, 1.0, 2.0])
    s = S.markov_scores(c, np.array([1, 2]), prior, damping=2.0)
    p = prior / prior.sum()
    np.testing.assert_allclose(s[0], (np.array([1, 0, 1]) + 2 * p) / (2 + 2))
    np.testing.assert_allclose(s[1], p)  # never followed by anything: the prior
    np.testing.assert_allclose(S.markov_scores(c, np.array([0]), prior, 0.0)[0], [0, 1, 0])
    with pytest.raises(ValueError, match="damping must be >= 0"):
        S.markov_scores(c, np.array([0]), prior, -1.0)
    with pytest.raises(ValueError, match="prior must be 3"):
        S.markov_scores(c, np.array([0]), prior[:2], 1.0)
    with pytest.raises(ValueError, match=r"items must lie in \[0, 3\)"):
        S.transition_counts([np.array([0, 3])], 3)


# ----------------------------------------------------------------------------- models
def _models(max_len: int = 6) -> dict[str, keras.Model]:
    return {"gru4rec": S.build_gru4rec(N_ITEMS, max_len, dim=8, dropout=0.1),
            "caser": S.build_caser(N_ITEMS, max_len, window=3, dim=8, n_h=2, n_v=2, dropout=0.1),
            "sasrec": S.build_sasrec(N_ITEMS, max_len, dim=8, n_blocks=2, n_heads=2, dropout=0.1)}


@pytest.mark.parametrize("kind", ["gru4rec", "caser", "sasrec"])
def test_models_are_causal(kind):
    m = _models()[kind]
    _randomise(m)
    rng = np.random.default_rng(1)
    x = rng.integers(1, N_ITEMS + 1, (4, 6)).astype(np.int32)
    x[0, :2] = 0  # some left padding
    h = S.hidden_states(m, x)
    assert h.shape == (4, 6, 8)
    for t in range(5):
        x2 = x.copy()
        x2[:, t + 1:] = rng.integers(1, N_ITEMS + 1, (4, 5 - t))
        np.testing.assert_allclose(S.hidden_states(m, x2)[:, :t + 1], h[:, :t + 1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["gru4rec", "caser", "sasrec"])
def test_padding_embedding_never_reaches_real_positions(kind):
    m = _models()[kind]
    _randomise(m, 2)
    x = np.array([[0, 0, 0, 3, 4, 5], [0, 1, 2, 3, 4, 5]], np.int32)
    h = S.hidden_states(m, x)
    table = m.get_layer("item_embedding")
    w = table.get_weights()[0]
    w[0] = 5.0
    table.set_weights([w])
    h2 = S.hidden_states(m, x)
    real = x > 0
    np.testing.assert_allclose(h2[real], h[real], rtol=1e-5, atol=1e-5)


def test_gru_skips_padding_and_matches_a_numpy_gru():
    long, short = S.build_gru4rec(N_ITEMS, 6, dim=5, dropout=0.0), S.build_gru4rec(N_ITEMS, 3, dim=5, dropout=0.0)
    _randomise(long, 3)
    short.set_weights(long.get_weights())
    h_long = S.hidden_states(long, np.array([[0, 0, 0, 4, 9, 2]], np.int32))
    h_short = S.hidden_states(short, np.array([[4, 9, 2]], np.int32))
    np.testing.assert_allclose(h_long[0, 3:], h_short[0], rtol=1e-5, atol=1e-6)
    # the Keras GRU (reset_after) written out in NumPy
    e = long.get_layer("item_embedding").get_weights()[0]
    kernel, rec, bias = long.get_layer("gru").get_weights()
    h = np.zeros(5)
    for item in (4, 9, 2):
        xz, xr, xh = np.split(e[item] @ kernel + bias[0], 3)
        hz, hr, hh = np.split(h @ rec + bias[1], 3)
        z, r = _sigmoid(xz + hz), _sigmoid(xr + hr)
        h = z * h + (1 - z) * np.tanh(xh + r * hh)
    np.testing.assert_allclose(h_short[0, -1], h, rtol=1e-5, atol=1e-6)


def test_caser_sequence_outputs_equal_caser_on_each_window():
    seq_model = S.build_caser(N_ITEMS, 7, window=3, dim=4, n_h=2, n_v=2, dropout=0.0)
    win_model = S.build_caser(N_ITEMS, 3, window=3, dim=4, n_h=2, n_v=2, dropout=0.0)
    _randomise(seq_model, 4)
    win_model.set_weights(seq_model.get_weights())
    x = np.array([[0, 0, 5, 1, 7, 7, 2]], np.int32)
    h = S.hidden_states(seq_model, x)
    padded = np.concatenate([np.zeros((1, 2), np.int32), x], axis=1)
    windows = np.stack([padded[0, t:t + 3] for t in range(7)])
    np.testing.assert_allclose(S.hidden_states(win_model, windows)[:, -1], h[0], rtol=1e-5, atol=1e-6)


def test_sasrec_attention_equals_numpy_causal_attention():
    m = S.build_sasrec(N_ITEMS, 5, dim=4, n_blocks=1, n_heads=1, dropout=0.0)
    _randomise(m, 5)
    att = m.get_layer("block0_attention")
    a = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32)
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = [att.get_weights()[i:i + 2] for i in range(0, 8, 2)]
    q, k, v = (np.einsum("bld,dhk->blhk", a, w)[:, :, 0] + b[0] for w, b in ((wq, bq), (wk, bk), (wv, bv)))
    s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    s = np.where(np.tril(np.ones((5, 5), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    out = (p @ v) @ wo[0] + bo
    np.testing.assert_allclose(att(a, a, use_causal_mask=True).numpy(), out, rtol=1e-5, atol=1e-5)


def test_builders_reject_bad_settings():
    with pytest.raises(ValueError, match="dropout is a rate"):
        S.build_sasrec(N_ITEMS, 5, dropout=1.0)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        S.build_sasrec(N_ITEMS, 5, dim=6, n_heads=4)
    with pytest.raises(ValueError, match="window must be a positive integer"):
        S.build_caser(N_ITEMS, 5, window=0)
    m = S.build_gru4rec(N_ITEMS, 4, dim=4)
    with pytest.raises(ValueError, match=r"inputs must be \(rows, 4\)"):
        S.hidden_states(m, np.zeros((2, 5), np.int32))
    with pytest.raises(ValueError, match=r"inputs must lie in \[0, 14\)"):
        S.hidden_states(m, np.full((2, 4), 14, np.int32))


# ----------------------------------------------------------------------------- losses
def _loss_case():
    rng = np.random.default_rng(6)
    h = rng.normal(size=(2, 3, 4)).astype(np.float32)
    table = rng.normal(size=(N_ITEMS + 1, 4)).astype(np.float32)
    y = np.array([[0, 3, 5], [2, 0, 13]], np.int32)
    return h, table, y, y > 0


def test_softmax_loss_equals_numpy_over_real_positions():
    h, table, y, m = _loss_case()
    logits = h[m] @ table[1:].T
    ce = np.log(np.exp(logits).sum(1)) - logits[np.arange(m.sum()), y[m] - 1]
    np.testing.assert_allclose(float(S.next_item_loss(h, y, table, "softmax")), ce.mean(), rtol=1e-5)


def test_sampled_softmax_and_bce_losses_equal_numpy():
    h, table, y, m = _loss_case()
    neg_row = np.array([[1, 4], [6, 7]], np.int32)
    pos = np.einsum("bld,bld->bl", h, table[y])
    neg = np.einsum("bld,bkd->blk", h, table[neg_row])
    logits = np.concatenate([pos[..., None], neg], -1)
    ss = np.log(np.exp(logits).sum(-1)) - pos
    np.testing.assert_allclose(float(S.next_item_loss(h, y, table, "sampled_softmax", neg_row)), ss[m].mean(),
                               rtol=1e-5)
    neg_pos = np.random.default_rng(0).integers(1, N_ITEMS + 1, (2, 3, 2)).astype(np.int32)
    negs = np.einsum("bld,blkd->blk", h, table[neg_pos])
    bce = np.log1p(np.exp(-pos)) + np.log1p(np.exp(negs)).sum(-1)
    np.testing.assert_allclose(float(S.next_item_loss(h, y, table, "bce", neg_pos)), bce[m].mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="needs negatives"):
        S.next_item_loss(h, y, table, "bce")
    with pytest.raises(ValueError, match="loss must be one of"):
        S.next_item_loss(h, y, table, "hinge")


# ----------------------------------------------------------------------------- training
def _cycle_data(n_users: int = 40, length: int = 12):
    """Every user walks the catalogue in steps of +1 from a random start: the next item is
    determined by the last one, which any of the three models can learn."""
    rng = np.random.default_rng(7)
    return [(rng.integers(0, N_ITEMS) + np.arange(length)) % N_ITEMS for _ in range(n_users)]


@pytest.mark.parametrize("kind,loss", [("sasrec", "softmax"), ("gru4rec", "sampled_softmax"), ("caser", "bce")])
def test_training_learns_a_deterministic_next_item(kind, loss):
    seqs = _cycle_data(40, 7)
    settings = dict(max_len=6, stride=6, dim=16, dropout=0.0, window=2, n_blocks=1, loss=loss,
                    n_neg=4 if loss != "softmax" else 1, epochs=25, batch_size=16, learning_rate=0.02)
    hist_inputs = S.pad_left([s[:-1] for s in seqs], 6)
    targets = np.array([s[-1] for s in seqs])
    candidates = np.column_stack([targets, (targets + 5) % N_ITEMS, (targets + 9) % N_ITEMS])
    val = S.next_item_validation(hist_inputs, np.arange(len(seqs)), candidates=candidates, monitor="MRR")
    model, hist = S.fit_sequence_model(kind, [s[:-1] for s in seqs], N_ITEMS, settings, validation=val)
    assert hist.loss[-1] < hist.loss[0]
    assert hist.best("MRR") > 0.9, hist.val["MRR"]
    history = [s[:-1] for s in seqs]
    seen = sp.csr_array((np.ones(sum(map(len, history))), (np.repeat(np.arange(len(seqs)), list(map(len, history))),
                                                           np.concatenate(history))), shape=(len(seqs), N_ITEMS))
    seen.sum_duplicates()
    ranks = S.sequence_ranks(S.score_all(model, hist_inputs), np.arange(len(seqs)), targets=targets, exclude=seen)
    assert (ranks == 0).mean() >= 0.8, ranks  # first among the items not yet seen


def test_training_is_reproducible_and_refit_keeps_the_schedule():
    seqs = _cycle_data(20, 8)
    settings = dict(max_len=5, dim=8, dropout=0.1, loss="sampled_softmax", n_neg=3, epochs=3, batch_size=8,
                    learning_rate=0.01, decay_to=0.0)
    m1, h1 = S.fit_sequence_model("sasrec", seqs, N_ITEMS, settings, seed=3)
    m2, h2 = S.fit_sequence_model("sasrec", seqs, N_ITEMS, settings, seed=3)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    _, h3 = S.fit_sequence_model("sasrec", seqs, N_ITEMS, settings, seed=3, epochs=2)
    assert h3.epochs == 2 and h3.loss == h1.loss[:2]
    with pytest.raises(ValueError, match="kind must be one of"):
        S.fit_sequence_model("lstm", seqs, N_ITEMS, settings)
    with pytest.raises(ValueError, match="settings need max_len"):
        S.fit_sequence_model("sasrec", seqs, N_ITEMS, {"dim": 8})


def test_train_next_item_rejects_bad_input():
    m = S.build_sasrec(N_ITEMS, 4, dim=4)
    x = np.ones((3, 4), np.int32)
    with pytest.raises(ValueError, match="targets must have the shape"):
        S.train_next_item(m, x, x[:2], N_ITEMS)
    with pytest.raises(ValueError, match="every target is padding"):
        S.train_next_item(m, x, np.zeros_like(x), N_ITEMS)
    with pytest.raises(ValueError, match="expected n_items"):
        S.train_next_item(m, x, x, N_ITEMS + 1)
    with pytest.raises(ValueError, match="loss must be one of"):
        S.train_next_item(m, x, x, N_ITEMS, loss="hinge")


# ----------------------------------------------------------------------------- evaluation
def test_sequence_ranks_agree_with_the_evaluation_helpers():
    rng = np.random.default_rng(8)
    scores = rng.normal(size=(6, N_ITEMS))
    users = np.arange(6)
    train = sp.csr_array((np.ones(6), (users, (users + 1) % N_ITEMS)), shape=(6, N_ITEMS))
    targets = users % N_ITEMS
    cand = np.column_stack([targets, (targets + 3) % N_ITEMS, (targets + 7) % N_ITEMS])
    r_s = S.sequence_ranks(scores, users, candidates=cand)
    assert ranking_report(r_s) == evaluate_sampled(lambda u, i: scores[u, i], users, cand)
    r_f = S.sequence_ranks(scores, users, targets=targets, exclude=train)
    assert ranking_report(r_f) == evaluate_full(lambda u: scores[u], users, targets, train)
    with pytest.raises(ValueError, match="pass candidates"):
        S.sequence_ranks(scores, users)
    with pytest.raises(ValueError, match="needs exclude"):
        S.sequence_ranks(scores, users, targets=targets)


def test_next_item_validation_reports_sampled_and_full_metrics():
    seqs = _cycle_data(10, 6)
    m = S.build_gru4rec(N_ITEMS, 4, dim=4)
    inputs = S.pad_left(seqs, 4)
    targets = np.array([(s[-1] + 1) % N_ITEMS for s in seqs])
    train = sp.csr_array((np.ones(sum(map(len, seqs))), (np.repeat(np.arange(10), 6), np.concatenate(seqs))),
                         shape=(10, N_ITEMS))
    cand = np.column_stack([targets, (targets + 6) % N_ITEMS])
    val = S.next_item_validation(inputs, np.arange(10), candidates=cand, targets=targets, exclude=train)
    report = val.evaluate(m)
    assert {"HR@10", "NDCG@10", "MRR", "full HR@10", "full NDCG@10", "full MRR"} <= set(report)
    with pytest.raises(ValueError, match="needs both targets and exclude"):
        S.next_item_validation(inputs, np.arange(10), targets=targets)
    with pytest.raises(ValueError, match="pass candidates"):
        S.next_item_validation(inputs, np.arange(10))
    assert tf.is_tensor(S.item_table(m)) or hasattr(S.item_table(m), "numpy")


# ----------------------------------------------------------------------------- blends
def test_standardise_rows_and_blend_scores():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (4, 9)), rng.normal(-1, 5, (4, 9))
    z = S.standardise_rows(a)
    np.testing.assert_allclose(z.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=1), 1, atol=1e-12)
    assert (np.argsort(z, axis=1) == np.argsort(a, axis=1)).all()          # ranking unchanged
    np.testing.assert_array_equal(S.standardise_rows(np.ones((2, 3))), np.zeros((2, 3)))   # constant row
    np.testing.assert_allclose(S.blend_scores(a, b, 1.0), z)
    np.testing.assert_allclose(S.blend_scores(a, b, 0.0), S.standardise_rows(b))
    np.testing.assert_allclose(S.blend_scores(a, b, 0.3), 0.3 * z + 0.7 * S.standardise_rows(b))
    with pytest.raises(ValueError, match="alpha"):
        S.blend_scores(a, b, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        S.blend_scores(a, b[:, :3], 0.5)
    with pytest.raises(ValueError, match="2-D"):
        S.standardise_rows(a[0])
    with pytest.raises(ValueError, match="finite"):
        S.standardise_rows(np.array([[0.0, np.nan]]))
