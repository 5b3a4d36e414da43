import numpy as np
import pytest

import helpers  # noqa: F401  (quiet TensorFlow first)
from helpers import text
from helpers.text import OOV, PAD, Vocabulary


# ----------------------------------------------------------------------------- vocabulary
def test_vocabulary_reserves_pad_and_oov_and_orders_by_frequency():
    v = Vocabulary.fit(["b a b", "c b a", "d"], min_count=1)
    assert v.tokens == ("b", "a", "c", "d")         # frequency, then first appearance
    assert len(v) == 6 and v.lookup("b") == 2 and v.lookup("zzz") == OOV
    v2 = Vocabulary.fit(["b a b", "c b a", "d"], min_count=2)
    assert v2.tokens == ("b", "a")
    assert Vocabulary.fit(["b a b", "c b a"], max_size=1).tokens == ("b",)


def test_encode_truncates_pads_and_marks_unknown_words():
    v = Vocabulary.fit(["x y z"])
    out = v.encode(["x y", "z q x y z w", ""], max_len=4)
    assert out.dtype == np.int32 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, [[2, 3, PAD, PAD], [4, OOV, 2, 3], [PAD] * 4])
    # token lists work like strings; integer tokens (entity ids) too
    np.testing.assert_array_equal(v.encode([["x", "y"]], 2), [[2, 3]])
    assert Vocabulary.fit([[7, 9], [9]]).encode([[9, 7, 8]], 3).tolist() == [[2, 3, OOV]]


@pytest.mark.parametrize("kwargs, match", [({"min_count": 0}, "min_count"), ({"max_size": 0}, "max_size")])
def test_vocabulary_fit_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary.fit(["a"], **kwargs)


def test_encode_and_fit_reject_bad_input():
    v = Vocabulary.fit(["a"])
    with pytest.raises(ValueError, match="max_len"):
        v.encode(["a"], 0)
    with pytest.raises(ValueError, match="document"):
        v.encode([3], 2)
    with pytest.raises(ValueError, match="distinct"):
        Vocabulary(("a", "a"))


def test_align_entities_marks_the_words_of_each_name():
    ents = Vocabulary.fit([[11, 22]])  # 11 -> 2, 22 -> 3
    titles = ["donald trump visits neil degrasse tyson lab", "ms 13 gang", "no entity here"]
    entities = [[(11, "Donald Trump"), (22, "Neil deGrasse Tyson")], [(99, "MS-13")], []]
    out = text.align_entities(titles, entities, ents, max_len=6)
    np.testing.assert_array_equal(out[0], [2, 2, PAD, 3, 3, 3])          # truncated at 6 words
    np.testing.assert_array_equal(out[1], [OOV, OOV, PAD, PAD, PAD, PAD])  # an entity the vocabulary lacks
    np.testing.assert_array_equal(out[2], [PAD] * 6)
    # the first entity listed wins a shared word
    both = text.align_entities(["new york"], [[(11, "New York"), (22, "York")]], ents, 2)
    np.testing.assert_array_equal(both, [[2, 2]])


def test_align_entities_rejects_misaligned_or_malformed_input():
    ents = Vocabulary.fit([[1]])
    with pytest.raises(ValueError, match="one entry per row"):
        text.align_entities(["a"], [], ents, 3)
    with pytest.raises(ValueError, match="pairs"):
        text.align_entities(["a"], [[1]], ents, 3)
    with pytest.raises(ValueError, match="max_len"):
        text.align_entities(["a"], [[]], ents, 0)


# ------------------------------------------------------------------------- from scratch
def test_conv1d_max_pool_equals_keras_conv1d_and_global_max_pooling():
    import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7, 4)).astype(np.float32)
    for w in (1, 2, 3):
        layer_in = keras.Input((7, 4))
        conv = keras.layers.Conv1D(6, w, activation="relu")
        model = keras.Model(layer_in, keras.layers.GlobalMaxPooling1D()(conv(layer_in)))
        kernel, bias = conv.get_weights()
        bias = rng.normal(size=bias.shape).astype(np.float32)  # non-zero bias is part of the check
        conv.set_weights([kernel, bias])
        np.testing.assert_allclose(text.conv1d_max_pool(x, kernel, bias), model.predict(x, verbose=0),
                                   rtol=1e-5, atol=1e-5)


def test_conv1d_max_pool_by_hand_and_errors():
    x = np.array([[[1.0], [2.0], [-1.0]]])                       # one title, 3 words, 1 feature
    k = np.array([[[1.0]], [[1.0]]])                             # width 2, sums neighbours
    np.testing.assert_allclose(text.conv1d_max_pool(x, k, np.array([0.0])), [[3.0]])
    np.testing.assert_allclose(text.conv1d_max_pool(x, -k, np.array([0.0])), [[0.0]])  # ReLU floor
    with pytest.raises(ValueError, match="features"):
        text.conv1d_max_pool(x, np.ones((2, 3, 1)), np.zeros(1))
    with pytest.raises(ValueError, match="width"):
        text.conv1d_max_pool(x, np.ones((4, 1, 1)), np.zeros(1))
    with pytest.raises(ValueError, match="bias"):
        text.conv1d_max_pool(x, k, np.zeros(2))


def test_attention_weights_softmax_over_unmasked_positions():
    rng = np.random.default_rng(1)
    h, c = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 5))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    a = text.attention_weights(h, c, mask)
    np.testing.assert_allclose(a[:2].sum(axis=1), 1.0)
    assert (a[~mask] == 0).all() and (a[2] == 0).all()             # empty history: zero weights
    s = h[0, :2] @ c[0] / np.sqrt(5)
    np.testing.assert_allclose(a[0, :2], np.exp(s) / np.exp(s).sum())
    # constant scores give the mean over the real entries
    flat = text.attention_weights(h, c, mask, scores=np.zeros((3, 4)))
    np.testing.assert_allclose(flat[0], [0.5, 0.5, 0, 0])
    with pytest.raises(ValueError, match="expected history"):
        text.attention_weights(h, c[:2], mask)


# ----------------------------------------------------------------------------- Keras
def _tiny_titles(n_titles=12, max_len=5, n_words=9, n_ents=4, seed=0):
    rng = np.random.default_rng(seed)
    words = rng.integers(2, n_words, size=(n_titles, max_len)).astype(np.int32)
    words[:, 3:] = np.where(rng.random((n_titles, 2)) < 0.5, PAD, words[:, 3:])
    ents = np.where(rng.random((n_titles, max_len)) < 0.3,
                    rng.integers(1, n_ents, size=(n_titles, max_len)), PAD)
    return words, ents.astype(np.int32)


def test_title_encoder_shapes_and_entity_channel_is_zero_without_entities():
    words, ents = _tiny_titles()
    enc = text.build_title_encoder(9, 5, n_entities=4, word_dim=3, entity_dim=2, widths=(1, 2), filters=4)
    assert enc.predict([words, ents], verbose=0).shape == (12, 8)
    plain = text.build_title_encoder(9, 5, word_dim=3, widths=(2,), filters=4)
    assert plain.predict(words, verbose=0).shape == (12, 4)
    # changing the entity table only changes titles that have entities
    before = enc.predict([words, ents], verbose=0)
    table = enc.get_layer("entity_embedding")
    table.set_weights([table.get_weights()[0] + 1.0])
    after = enc.predict([words, ents], verbose=0)
    no_ent = (ents == PAD).all(axis=1)
    assert no_ent.any()
    np.testing.assert_allclose(after[no_ent], before[no_ent], rtol=1e-6)
    with pytest.raises(ValueError, match="widths"):
        text.build_title_encoder(9, 5, widths=(6,))
    with pytest.raises(ValueError, match="n_words"):
        text.build_title_encoder(0, 5)


def test_encoder_matches_numpy_embedding_then_conv1d_max_pool():
    words, _ = _tiny_titles()
    enc = text.build_title_encoder(9, 5, word_dim=3, widths=(1, 3), filters=4)
    emb = enc.get_layer("word_embedding").get_weights()[0]
    parts = [text.conv1d_max_pool(emb[words], *enc.get_layer(f"conv_w{w}").get_weights()) for w in (1, 3)]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), enc.predict(words, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("user_encoder", ["mean", "dot", "mlp"])
def test_click_model_equals_per_row_computation_and_masks_the_candidate(user_encoder):
    words, ents = _tiny_titles()
    enc = text.build_title_encoder(9, 5, n_entities=4, word_dim=3, entity_dim=2, widths=(1, 2), filters=4)
    model = text.NewsClickModel(enc, words, ents, user_encoder=user_encoder)
    cand = np.array([0, 3, 5, 7], np.int32)
    hist = np.array([[1, 2, 3, -1], [3, 4, -1, -1], [6, 6, 8, 9], [-1, -1, -1, -1]], np.int32)
    logits = model((cand, hist)).numpy()
    vec = enc.predict([words, ents], verbose=0).astype(np.float64)
    mask = (hist >= 0) & (hist != cand[:, None])               # row 1: title 3 is its own candidate
    h, c = vec[np.maximum(hist, 0)], vec[cand]
    if user_encoder == "dot":
        alpha = text.attention_weights(h, c, mask)
    else:
        scores = np.zeros(mask.shape) if user_encoder == "mean" else None
        if scores is None:
            scores = model.att_out(model.att_hidden(np.concatenate(
                [h, np.broadcast_to(c[:, None], h.shape)], -1).astype(np.float32))).numpy()[..., 0]
        alpha = text.attention_weights(h, c, mask, scores=scores)
    np.testing.assert_allclose(model.attention(cand, hist), alpha, rtol=1e-4, atol=1e-6)
    assert alpha[1, 0] == 0 and np.isclose(alpha[1, 1], 1.0)
    u = np.einsum("bh,bhf->bf", alpha, h)
    w_item, b_item = model.item_weight.get_weights()
    expected = (u * c).sum(1) + c @ w_item[:, 0] + b_item[0]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    assert np.isfinite(logits[3])                              # empty history: zero user vector


def test_click_model_with_skipped_titles_subtracts_their_profile():
    words, _ = _tiny_titles()
    enc = text.build_title_encoder(9, 5, word_dim=3, widths=(1,), filters=4)
    model = text.NewsClickModel(enc, words, user_encoder="mean", item_bias=False, use_skipped=True)
    cand = np.array([0, 1], np.int32)
    hist = np.array([[2, 3], [4, -1]], np.int32)
    skip = np.array([[5, -1], [-1, -1]], np.int32)
    vec = enc.predict(words, verbose=0).astype(np.float64)
    pos = np.stack([vec[[2, 3]].mean(0), vec[4]])
    neg = np.stack([vec[5], np.zeros(4)])
    expected = ((pos - neg) * vec[cand]).sum(1)
    np.testing.assert_allclose(model((cand, hist, skip)).numpy(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="skipped"):
        model((cand, hist))


def test_click_model_can_leave_the_candidate_in_its_history():
    words, _ = _tiny_titles()
    enc = text.build_title_encoder(9, 5, word_dim=3, widths=(1,), filters=4)
    leaky = text.NewsClickModel(enc, words, user_encoder="mean", mask_candidate=False)
    cand, hist = np.array([3], np.int32), np.array([[3, 4]], np.int32)
    np.testing.assert_allclose(leaky.attention(cand, hist), [[0.5, 0.5]])


def test_click_model_rejects_bad_configuration():
    words, ents = _tiny_titles()
    enc = text.build_title_encoder(9, 5, n_entities=4, word_dim=3, entity_dim=2, widths=(1,), filters=2)
    with pytest.raises(ValueError, match="user_encoder"):
        text.NewsClickModel(enc, words, ents, user_encoder="rnn")
    with pytest.raises(ValueError, match="title_entities"):
        text.NewsClickModel(enc, words)
    with pytest.raises(ValueError, match="match"):
        text.NewsClickModel(enc, words, ents[:, :3])


# ------------------------------------------------------------------------- data and fit
def test_user_histories_keep_the_last_distinct_clicks():
    users = np.array([0, 0, 0, 1, 0, 0, 2])
    items = np.array([5, 6, 7, 8, 5, 9, 1])
    clicked = np.array([1, 1, 0, 1, 1, 1, 0])
    h = text.user_histories(users, items, clicked, max_history=3, n_users=4)
    np.testing.assert_array_equal(h, [[6, 5, 9], [8, -1, -1], [-1, -1, -1], [-1, -1, -1]])
    with pytest.raises(ValueError, match="aligned"):
        text.user_histories(users, items[:3], clicked, 2)
    with pytest.raises(ValueError, match="n_users"):
        text.user_histories(users, items, clicked, 2, n_users=2)


def test_user_grouped_batches_cover_every_row_once_with_users_together():
    users = np.repeat([4, 1, 9, 7], [5, 3, 4, 2])
    batches = text.user_grouped_batches(users, 4, np.random.default_rng(0))
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == list(range(len(users)))
    assert [len(b) for b in batches] == [4, 4, 4, 2]
    runs = users[order]
    assert (np.diff(np.flatnonzero(np.diff(runs) != 0)).size + 1) == 3  # 4 users -> 3 changes
    with pytest.raises(ValueError, match="batch_size"):
        text.user_grouped_batches(users, 0, np.random.default_rng(0))


def test_fit_click_model_learns_a_planted_preference():
    import helpers
    from helpers.metrics import auc
    from helpers.training import TrainConfig, Validation

    helpers.seed_everything(0)
    rng = np.random.default_rng(0)
    # 40 titles: even ones use words 2-5 ("sport"), odd ones words 6-9 ("politics")
    n_titles, max_len = 40, 4
    words = np.where(np.arange(n_titles)[:, None] % 2 == 0, rng.integers(2, 6, (n_titles, max_len)),
                     rng.integers(6, 10, (n_titles, max_len))).astype(np.int32)
    n_users = 20
    likes_even = np.arange(n_users) % 2 == 0
    users = np.repeat(np.arange(n_users), 16)
    items = rng.integers(0, n_titles, users.size)
    labels = ((items % 2 == 0) == likes_even[users]).astype(np.int8)
    hist = text.user_histories(users, items, labels, 8, n_users)
    enc = text.build_title_encoder(10, max_len, word_dim=4, widths=(1,), filters=4)
    model = text.NewsClickModel(enc, words, user_encoder="dot")
    tr, va = np.arange(users.size) % 4 != 0, np.arange(users.size) % 4 == 0
    evaluate = lambda m: {"AUC": auc(labels[va], text.predict_click_model(m, items[va], hist[users[va]],
                                                                           users=users[va]))}
    h = text.fit_click_model(model, items[tr], hist[users[tr]], labels[tr], users[tr],
                             TrainConfig(epochs=15, batch_size=32, learning_rate=0.02),
                             validation=Validation(evaluate, monitor="AUC", patience=5))
    assert h.loss[-1] < h.loss[0] and h.best("AUC") > 0.9, (h.loss, h.val)
    assert len(h.cpu_seconds) == h.epochs
    with pytest.raises(ValueError, match="labels"):
        text.fit_click_model(model, items[:4], hist[users[:4]], np.array([0, 1, 2, 1]), users[:4],
                             TrainConfig(epochs=1))


def test_predict_click_model_keeps_the_input_order():
    words, _ = _tiny_titles()
    enc = text.build_title_encoder(9, 5, word_dim=3, widths=(1,), filters=2)
    model = text.NewsClickModel(enc, words)
    cand = np.arange(12, dtype=np.int32)
    hist = np.tile(np.array([[1, 2, -1]], np.int32), (12, 1))
    users = np.array([3, 1, 2] * 4)
    p = text.predict_click_model(model, cand, hist, users=users, batch_size=5)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-model((cand, hist)).numpy())), rtol=1e-5)
    with pytest.raises(ValueError, match="candidates"):
        text.predict_click_model(model, cand, hist[:3])


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["user_id", "title", "label", "entities"])


def test_holdout_titles_keeps_all_rows_of_a_title_together():
    titles = np.array(["a", "b", "a", "c", "d", "b", "e", "f", "g", "h"], dtype=object)
    mask = text.holdout_titles(titles, 0.25, seed=3)
    held = set(titles[mask])
    assert len(held) == 2 and not held & set(titles[~mask])
    np.testing.assert_array_equal(mask, text.holdout_titles(titles, 0.25, seed=3))
    with pytest.raises(ValueError, match="share"):
        text.holdout_titles(titles, 1.0)


def test_vectorise_news_fits_vocabularies_on_training_only():
    train = _frame([(1, "apple pie", 1, [(5, "Apple")]), (2, "apple tart", 0, []), (1, "pie", 0, [])])
    test = _frame([(2, "apple strudel", 1, [(5, "Apple"), (6, "Strudel")])])
    news = text.vectorise_news(train, [test], max_len=3, min_count=2)
    assert list(news.titles) == ["apple pie", "apple tart", "pie", "apple strudel"]
    assert news.vocabulary.tokens == ("apple", "pie")               # 'tart' seen once, 'strudel' never
    np.testing.assert_array_equal(news.words[3], [2, OOV, PAD])
    np.testing.assert_array_equal(news.entities[3], [2, OOV, PAD])  # entity 6 unknown in training
    np.testing.assert_array_equal(news.items(test), [3])
    np.testing.assert_array_equal(news.user_codes(test), [1])
    with pytest.raises(ValueError, match="not vectorised"):
        news.items(_frame([(1, "new title", 0, [])]))
    assert list(news.users) == [1, 2]
    with pytest.raises(ValueError, match="no vectorised frame"):
        news.user_codes(_frame([(9, "pie", 0, [])]))
    with pytest.raises(ValueError, match="columns"):
        text.vectorise_news(train.drop(columns="entities"), [])


def test_ppmi_word_vectors_put_co_occurring_words_close():
    # words 2-4 always appear together, words 5-7 together; 8 appears with both groups
    rng = np.random.default_rng(0)
    titles = [rng.permutation([2, 3, 4]) for _ in range(30)] + [rng.permutation([5, 6, 7]) for _ in range(30)]
    titles += [[2, 8, 0], [5, 8, 1]]
    words = np.array([np.pad(t, (0, 4 - len(t))) for t in titles], np.int32)
    w = text.ppmi_word_vectors(words, 10, 2)
    assert w.shape == (10, 2) and w.dtype == np.float32
    assert (w[:2] == 0).all() and (w[9] == 0).all()                 # pad, unknown, never seen
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cos(w[2], w[3]) > 0.9 and cos(w[5], w[6]) > 0.9 and abs(cos(w[2], w[5])) < 0.5
    np.testing.assert_allclose(np.linalg.norm(w[w.any(axis=1)], axis=1).mean(), 1.0, rtol=1e-5)
    enc = text.build_title_encoder(10, 4, word_dim=2, widths=(1,), filters=2, word_vectors=w)
    np.testing.assert_allclose(enc.get_layer("word_embedding").get_weights()[0], w)
    with pytest.raises(ValueError, match="word_vectors"):
        text.build_title_encoder(10, 4, word_dim=3, word_vectors=w)
    with pytest.raises(ValueError, match="dim"):
        text.ppmi_word_vectors(words, 10, 9)
    with pytest.raises(ValueError, match="share a title"):
        text.ppmi_word_vectors(np.array([[2, 0], [3, 0]]), 10, 2)
