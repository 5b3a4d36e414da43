"""Tests for helpers.hybrid: side features, the FM identity, the Keras models against NumPy,
cold-start splits, weighted and paired AUC, and the in-batch softmax with log-q correction
(tiny synthetic data; a few seconds)."""
from __future__ import annotations

import helpers  # noqa: F401  (quiet TensorFlow first)

import keras
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from helpers import metrics
from helpers.hybrid import (AGE_GROUPS, YEAR_GROUPS, SideFeatures, auc_difference_interval, build_ctr_model,
                            cell_matrix, cell_rate_scores, field_codes, item_group_members, shelf_exclusion,
                            user_segment_members,
                            build_two_tower, cold_start_data, cold_start_split, ctr_validation, extra_item_columns,
                            extra_user_columns, field_of, fm_pairwise, fm_pairwise_naive, fm_score,
                            in_batch_softmax_loss, in_batch_softmax_numpy, predict_logits, retrieval_validation,
                            sampling_log_q, side_features, train_ctr, train_two_tower, weighted_auc, zip_region)
from helpers.training import TrainConfig

N_USERS, N_ITEMS = 9, 13


@pytest.fixture()
def feats() -> SideFeatures:
    rng = np.random.default_rng(0)
    U = np.column_stack([rng.normal(size=N_USERS), np.eye(2)[rng.integers(0, 2, N_USERS)],
                         np.eye(3)[rng.integers(0, 3, N_USERS)]]).astype(np.float32)
    I = np.column_stack([rng.normal(size=N_ITEMS), (rng.random((N_ITEMS, 4)) < 0.4)]).astype(np.float32)
    return SideFeatures(U, I, ["age_z", "gender=F", "gender=M", "occupation=a", "occupation=b", "occupation=c"],
                        ["year_z", "genre=A", "genre=B", "genre=C", "genre=D"])


@pytest.fixture()
def tables():
    users = pd.DataFrame({"age": np.array([15, 24, 35, 60], dtype=np.int16),
                          "gender": pd.Categorical(["F", "M", "M", "F"]),
                          "occupation": pd.Categorical(["student", "doctor", "student", "none"]),
                          "zip_code": ["02139", "94043", "T8H1N", "55414"]},
                         index=pd.Index([1, 2, 3, 4], name="user_id"))
    items = pd.DataFrame({"title": ["a", "b", "c"],
                          "release_date": pd.to_datetime(["1995-01-01", None, "1960-06-01"]),
                          "Action": np.array([1, 0, 1], dtype=np.uint8),
                          "Drama": np.array([0, 1, 1], dtype=np.uint8)},
                         index=pd.Index([10, 11, 12], name="item_id"))
    return users, items


def _randomise(model: keras.Model, seed: int = 0, scale: float = 0.3) -> None:
    """Random weights for the trainable layers (fresh embeddings are ~0 and hide bugs)."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        w.assign(rng.normal(0, scale, w.shape).astype("float32"))


def _pairs(n: int = 40, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, N_USERS, n).astype(np.int32), rng.integers(0, N_ITEMS, n).astype(np.int32)


# ----------------------------------------------------------------------------- side features
def test_zip_region_and_extra_columns(tables):
    users, items = tables
    assert zip_region(["02139", "T8H1N", " 9", None]).tolist() == ["0", "other", "9", "other"]
    m, names = extra_user_columns(users, [3, 1])
    assert m.shape == (2, 11 + len(AGE_GROUPS)) and len(names) == m.shape[1]
    row = dict(zip(names, m[0]))
    assert row["zip=other"] == 1 and row["age_group=35-44"] == 1 and m[0].sum() == 2
    assert dict(zip(names, m[1]))["age_group=<18"] == 1
    mi, inames = extra_item_columns(items, [10, 11, 12])
    assert mi.shape == (3, len(YEAR_GROUPS))
    assert dict(zip(inames, mi[0]))["year_group=1995"] == 1 and dict(zip(inames, mi[2]))["year_group=<1970"] == 1
    assert mi[1].sum() == 0                                       # missing date: no group
    with pytest.raises(KeyError, match="not in the users table"):
        extra_user_columns(users, [99])


def test_side_features_fields_and_design(tables):
    users, items = tables
    f = side_features(users, items, [1, 2, 3, 4], [10, 11, 12], [1, 2], [10, 12])
    assert f.U.shape[0] == 4 and f.I.shape[0] == 3 and f.U.dtype == np.float32
    assert f.fields[:5] == ["age", "gender", "occupation", "zip", "age_group"]
    assert f.fields[5:] == ["year", "genre", "year_group"]
    A = f.field_matrix()
    assert A.shape == (f.n_columns, len(f.fields)) and (A.sum(axis=1) == 1).all()
    d = f.design(np.array([0, 3]), np.array([2, 1]))
    assert d.shape == (2, f.n_columns + 4 + 3)
    assert d[0, f.n_columns + 0] == 1 and d[1, f.n_columns + 4 + 1] == 1
    np.testing.assert_allclose(d[:, :f.n_columns].toarray(), f.pairs(np.array([0, 3]), np.array([2, 1])))
    assert f.design(np.array([0]), np.array([0]), use_ids=False).shape == (1, f.n_columns)
    assert field_of("genre=Film-Noir") == "genre" and field_of("year_missing") == "year" and field_of("age_z") == "age"
    with pytest.raises(ValueError, match="one name per column"):
        SideFeatures(f.U, f.I, f.user_names[:-1], f.item_names)
    with pytest.raises(ValueError, match="must lie in"):
        f.pairs(np.array([5]), np.array([0]))


# ----------------------------------------------------------------------------- FM
@pytest.mark.parametrize("sparse", [False, True])
def test_fm_identity_equals_the_pairwise_sum(sparse):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 12)) * (rng.random((30, 12)) < 0.4)
    V = rng.normal(size=(12, 5))
    Xin = sp.csr_array(X) if sparse else X
    np.testing.assert_allclose(fm_pairwise(Xin, V), fm_pairwise_naive(Xin, V), rtol=1e-10, atol=1e-10)
    brute = np.array([sum(V[a] @ V[b] * x[a] * x[b] for a in range(12) for b in range(a + 1, 12)) for x in X])
    np.testing.assert_allclose(fm_pairwise(Xin, V), brute, rtol=1e-10, atol=1e-10)
    w = rng.normal(size=12)
    np.testing.assert_allclose(fm_score(Xin, 0.5, w, V), 0.5 + X @ w + brute, rtol=1e-10)
    with pytest.raises(ValueError, match="one factor vector per column"):
        fm_pairwise(X, V[:-1])
    with pytest.raises(ValueError, match="one weight per column"):
        fm_score(X, 0.0, w[:-1], V)


def _fm_reference(model: keras.Model, f: SideFeatures, u: np.ndarray, i: np.ndarray, ids: bool = True) -> np.ndarray:
    """The Keras FM as the NumPy FM on the explicit design [x_u; x_i; e_u; e_i]."""
    V = model.get_layer("field_embedding").get_weights()[0]
    w, w0 = model.get_layer("linear").get_weights()
    X = f.design(u, i, use_ids=ids)
    if ids:
        V = np.vstack([V, model.get_layer("user_embedding").get_weights()[0],
                       model.get_layer("item_embedding").get_weights()[0]])
        w = np.concatenate([w[:, 0], model.get_layer("user_bias").get_weights()[0][:, 0],
                            model.get_layer("item_bias").get_weights()[0][:, 0]])
    return fm_score(X, float(w0[0]), np.ravel(w), V)


@pytest.mark.parametrize("ids", [True, False])
def test_keras_fm_matches_numpy(feats, ids):
    m = build_ctr_model("fm", N_USERS, N_ITEMS, feats, dim=4, ids=("user", "item") if ids else ())
    _randomise(m)
    u, i = _pairs()
    np.testing.assert_allclose(predict_logits(m, u, i), _fm_reference(m, feats, u, i, ids), rtol=1e-4, atol=1e-4)


def test_frozen_feature_tables_stay_frozen(feats):
    m = build_ctr_model("deepfm", N_USERS, N_ITEMS, feats, dim=4)
    names = {w.path.split("/")[0] for w in m.trainable_weights}
    assert "user_features" not in names and "item_features" not in names
    np.testing.assert_array_equal(m.get_layer("user_features").get_weights()[0], feats.U)


def test_deepfm_is_fm_plus_the_deep_part(feats):
    m = build_ctr_model("deepfm", N_USERS, N_ITEMS, feats, dim=4, hidden=(8,))
    _randomise(m)
    u, i = _pairs()
    out = m.get_layer("deep_output")
    k, b = out.get_weights()
    out.set_weights([np.zeros_like(k), np.zeros_like(b)])
    np.testing.assert_allclose(predict_logits(m, u, i), _fm_reference(m, feats, u, i), rtol=1e-4, atol=1e-4)


def test_linear_model_is_logistic_regression(feats):
    m = build_ctr_model("linear", N_USERS, N_ITEMS, feats)
    _randomise(m)
    u, i = _pairs()
    w, w0 = m.get_layer("linear").get_weights()
    ref = (feats.pairs(u, i) @ w[:, 0] + w0[0] + m.get_layer("user_bias").get_weights()[0][u, 0]
           + m.get_layer("item_bias").get_weights()[0][i, 0])
    np.testing.assert_allclose(predict_logits(m, u, i), ref, rtol=1e-5, atol=1e-5)


def test_dcn_cross_layer_formula(feats):
    m = build_ctr_model("dcn", N_USERS, N_ITEMS, feats, dim=3, hidden=(4,), cross_layers=1)
    _randomise(m)
    u, i = _pairs(5)
    # x0 = [fields, p_u, q_i]; one cross layer: x1 = x0 * (W x0 + b) + x0; then ReLU MLP and output
    V = m.get_layer("field_embedding").get_weights()[0]
    A = feats.field_matrix()
    x = feats.pairs(u, i)
    fields = np.stack([x @ (V * A[:, [f]]) for f in range(A.shape[1])], axis=1).reshape(len(u), -1)
    x0 = np.hstack([fields, m.get_layer("user_embedding").get_weights()[0][u],
                    m.get_layer("item_embedding").get_weights()[0][i]])
    W, b = m.get_layer("cross_0").get_weights()[:2] if len(m.get_layer("cross_0").get_weights()) == 2 else (None, None)
    W, b = m.get_layer("cross_0").dense.get_weights()
    x1 = x0 * (x0 @ W + b) + x0
    h = np.maximum(x1 @ m.get_layer("deep_dense_0").get_weights()[0] + m.get_layer("deep_dense_0").get_weights()[1], 0)
    wo, bo = m.get_layer("deep_output").get_weights()
    lin_w, lin_b = m.get_layer("linear").get_weights()
    ref = (h @ wo)[:, 0] + bo[0] + x @ lin_w[:, 0] + lin_b[0] + m.get_layer("user_bias").get_weights()[0][u, 0] \
        + m.get_layer("item_bias").get_weights()[0][i, 0]
    np.testing.assert_allclose(predict_logits(m, u, i), ref, rtol=1e-4, atol=1e-4)


def test_wide_deep_cross_products(feats):
    m = build_ctr_model("wide_deep", N_USERS, N_ITEMS, feats, dim=3, hidden=(4,))
    _randomise(m)
    u, i = _pairs(6)
    full = predict_logits(m, u, i)
    W = m.get_layer("wide_cross").get_weights()[0][:, 0].reshape(feats.U.shape[1], feats.I.shape[1])
    cross = np.einsum("ba,ag,bg->b", feats.U[u], W, feats.I[i])
    m.get_layer("wide_cross").set_weights([np.zeros((W.size, 1), np.float32)])
    np.testing.assert_allclose(full - predict_logits(m, u, i), cross, rtol=1e-4, atol=1e-4)


def test_features_only_models_ignore_the_id(feats):
    f = SideFeatures(np.repeat(feats.U[:1], N_USERS, axis=0), feats.I, feats.user_names, feats.item_names)
    for kind in ("fm", "wide_deep", "deepfm", "dcn"):
        m = build_ctr_model(kind, N_USERS, N_ITEMS, f, dim=4, hidden=(4,), ids=())
        _randomise(m)
        items = np.arange(N_ITEMS, dtype=np.int32)
        a = predict_logits(m, np.zeros(N_ITEMS, np.int32), items)
        b = predict_logits(m, np.full(N_ITEMS, 5, np.int32), items)
        np.testing.assert_allclose(a, b, rtol=1e-6)   # identical features, identical scores
        assert "user_embedding" not in [layer.name for layer in m.layers]
    m = build_ctr_model("fm", N_USERS, N_ITEMS, f, dim=4, ids=("item",))
    assert {"item_embedding", "item_bias"} <= {layer.name for layer in m.layers}
    assert "user_embedding" not in [layer.name for layer in m.layers]


def test_model_arguments_are_checked(feats):
    with pytest.raises(ValueError, match="kind must be one of"):
        build_ctr_model("xgboost", N_USERS, N_ITEMS, feats)
    with pytest.raises(ValueError, match="one row per user"):
        build_ctr_model("fm", N_USERS + 1, N_ITEMS, feats)
    with pytest.raises(ValueError, match="ids lists the sides"):
        build_ctr_model("fm", N_USERS, N_ITEMS, feats, ids=("users",))
    with pytest.raises(ValueError, match="at least one hidden layer"):
        build_ctr_model("deepfm", N_USERS, N_ITEMS, feats, hidden=())


def test_train_ctr_learns_and_validates(feats):
    helpers.seed_everything(0)
    rng = np.random.default_rng(0)
    u, i = _pairs(600, 3)
    y = (feats.I[i, 1] + 0.5 * feats.U[u, 1] + 0.1 * rng.normal(size=len(u)) > 0.6).astype(np.float32)
    m = build_ctr_model("fm", N_USERS, N_ITEMS, feats, dim=4)
    val = ctr_validation(u[:200], i[:200], y[:200], patience=3)
    h = train_ctr(m, u, i, y, TrainConfig(epochs=15, batch_size=64, learning_rate=0.02), val)
    assert h.loss[-1] < h.loss[0] and h.val["AUC"][h.best_epoch] > 0.8
    assert len(h.cpu_seconds) == h.epochs and h.val["log loss"][h.best_epoch] == min(h.val["log loss"])
    with pytest.raises(ValueError, match="0/1 labels"):
        train_ctr(m, u, i, y * 2, TrainConfig(epochs=1))


# ----------------------------------------------------------------------------- splits and AUC
def test_cold_start_split_partitions():
    tr, va, te = cold_start_split(np.repeat(np.arange(100), 3), 0.2, 0.1, seed=4)
    assert (len(tr), len(va), len(te)) == (70, 10, 20)
    assert np.array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(100))
    assert np.array_equal(cold_start_split(np.arange(100), 0.2, 0.1, seed=4)[2], te)
    assert not np.array_equal(cold_start_split(np.arange(100), 0.2, 0.1, seed=5)[2], te)
    with pytest.raises(ValueError, match="test_fraction"):
        cold_start_split(np.arange(10), 0.6, 0.5)


def test_cold_start_data_holds_out_whole_users(tables):
    users, items = tables
    from helpers.encoding import encode_ids
    rng = np.random.default_rng(0)
    raw = pd.DataFrame({"user_id": np.repeat([1, 2, 3, 4], 6), "item_id": rng.choice([10, 11, 12], 24),
                        "rating": rng.integers(1, 6, 24).astype(np.float32)})
    enc, ue, ie = encode_ids(raw)
    cs = cold_start_data(enc, users, items, ue.raw_ids, ie.raw_ids, "user", test_fraction=0.25, val_fraction=0.25)
    assert len(cs.test_ids) == 1 and len(cs.val_ids) == 1
    assert set(cs.test["user_id"]) == set(cs.test_ids) and not set(cs.train["user_id"]) & set(cs.test_ids)
    assert len(cs.train) + len(cs.val) + len(cs.test) == len(enc)
    u, i, y = cs.arrays("trainval")
    assert len(u) == len(cs.train) + len(cs.val) and set(np.unique(y)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="side must be"):
        cold_start_data(enc, users, items, ue.raw_ids, ie.raw_ids, "movie")


def test_weighted_auc():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.4).astype(float)
    s = np.round(rng.normal(size=200) + y, 1)                 # with ties
    assert weighted_auc(y, s) == pytest.approx(metrics.auc(y, s), abs=1e-12)
    w = rng.integers(0, 4, 200)
    rep = np.repeat(np.arange(200), w)
    assert weighted_auc(y, s, w) == pytest.approx(metrics.auc(y[rep], s[rep]), abs=1e-12)
    assert weighted_auc(y, np.zeros(200)) == 0.5
    with pytest.raises(ValueError, match="0/1 labels"):
        weighted_auc(y * 3, s)


def test_auc_difference_interval():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 10)
    y = (rng.random(600) < 0.5).astype(float)
    good, weak = y + rng.normal(0, 0.8, 600), y + rng.normal(0, 2.0, 600)
    res = auc_difference_interval(y, weak, good, groups, n_resamples=300)
    assert res.estimate == pytest.approx(metrics.auc(y, good) - metrics.auc(y, weak))
    assert 0 < res.low < res.estimate < res.high
    same = auc_difference_interval(y, good, good, groups, n_resamples=200)
    assert same.estimate == same.low == same.high == 0.0
    seeds = np.stack([good, good + rng.normal(0, 0.3, 600)])
    two = auc_difference_interval(y, weak, seeds, groups, n_resamples=200)
    assert two.estimate == pytest.approx(np.mean([metrics.auc(y, r) for r in seeds]) - metrics.auc(y, weak))
    with pytest.raises(ValueError, match="one id per row"):
        auc_difference_interval(y, weak, good, groups[:-1])


# ----------------------------------------------------------------------------- group baselines
def test_field_codes(feats):
    g = field_codes(feats.U, feats.user_names, "gender")
    np.testing.assert_array_equal(g, feats.U[:, 1:3].argmax(axis=1))
    both = field_codes(feats.U, feats.user_names, ("gender", "occupation"))
    np.testing.assert_array_equal(both, g * 4 + feats.U[:, 3:6].argmax(axis=1))
    U = feats.U.copy()
    U[0, 1:3] = 0                                             # a missing gender gets the extra code
    assert field_codes(U, feats.user_names, "gender")[0] == 2
    with pytest.raises(ValueError, match="multi-hot"):
        field_codes(np.ones((2, 2)), ["genre=A", "genre=B"], "genre")
    with pytest.raises(ValueError, match="no one-hot columns"):
        field_codes(feats.U, feats.user_names, "zip")


def test_cell_matrix_and_rate_scores_by_hand():
    genres = np.array([[1, 0], [1, 1], [0, 0]])             # item 0: A; item 1: A and B; item 2: none
    users, items = np.array([0, 0, 1, 0]), np.array([0, 1, 1, 2])
    y = np.array([1.0, 0.0, 1.0, 1.0])
    cells = cell_matrix(users, genres[items], n_keys=2)      # cell (u, g) = column 2u + g
    np.testing.assert_array_equal(cells.toarray(), [[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]])
    prior = np.array([0.5, 0.5, 0.9, 0.9])                   # each user's own rate as the prior of its cells
    q = cell_matrix(np.array([0, 1]), genres[[1, 2]], n_keys=2)
    s = cell_rate_scores(cells, y, q, prior, damping=1.0, fallback=np.array([-1.0, 0.7]))
    r_0a, r_0b = (1 + 0 + 0.5) / 3, (0 + 0.5) / 2             # user 0, genre A: y = 1, 0; genre B: y = 0
    assert s[0] == pytest.approx((r_0a + r_0b) / 2) and s[1] == 0.7   # user 1's query has no genre: fallback
    cnt = cell_rate_scores(cells, y, q, 0.0, 0.0, 0.0, statistic="count")
    assert cnt[0] == pytest.approx((2 / 4 + 1 / 4) / 2)
    with pytest.raises(ValueError, match="statistic"):
        cell_rate_scores(cells, y, q, prior, 1.0, 0.0, statistic="mean")
    with pytest.raises(ValueError, match="keys must lie"):
        cell_matrix(np.array([0, 5]), genres[[0, 1]], n_keys=2)


def test_segment_and_group_members(feats):
    g = user_segment_members(feats, "gender").toarray()
    assert g.shape == (N_USERS, 3) and (g.sum(axis=1) == 1).all()       # F, M and "missing"
    np.testing.assert_array_equal(g[:, :2], feats.U[:, 1:3])
    with pytest.raises(ValueError, match="segment must be"):
        user_segment_members(feats, "height")
    genres = item_group_members(feats, "genre").toarray()
    np.testing.assert_array_equal(genres, feats.I[:, 1:])
    with pytest.raises(ValueError, match="group must be"):
        item_group_members(feats, "brand")


# ----------------------------------------------------------------------------- in-batch softmax
def test_sampling_log_q():
    lq = sampling_log_q(np.array([0, 0, 1, 3]), 5)
    np.testing.assert_allclose(np.exp(lq)[[0, 1, 3]], [0.5, 0.25, 0.25], rtol=1e-6)
    assert np.exp(lq[2]) == pytest.approx(0.5 / 4)
    with pytest.raises(ValueError, match="must lie in"):
        sampling_log_q(np.array([0, 7]), 5)


def test_in_batch_softmax_numpy_by_hand():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    items = np.array([2, 5, 2, 7])
    lq = np.log(np.array([0.1, 0.1, 0.3, 0.1, 0.1, 0.2, 0.1, 0.1]))
    loss = 0.0
    for r in range(4):
        cols = [j for j in range(4) if j == r or items[j] != items[r]]      # accidental hits removed
        logit = {j: a[r] @ b[j] / 0.5 - lq[items[j]] for j in cols}
        loss += -(logit[r] - np.log(sum(np.exp(v) for v in logit.values())))
    assert in_batch_softmax_numpy(a, b, items, lq, temperature=0.5) == pytest.approx(loss / 4)
    plain = np.mean([-(a[r] @ b[r] - np.log(np.exp(a[r] @ b.T).sum())) for r in range(4)])
    assert in_batch_softmax_numpy(a, b, items, mask_hits=False) == pytest.approx(plain)


@pytest.mark.parametrize("log_q,mask", [(True, True), (False, True), (True, False)])
def test_keras_in_batch_softmax_matches_numpy(log_q, mask):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(6, 4)).astype("float32")
    items = np.array([1, 3, 1, 0, 3, 2], dtype=np.int32)
    lq = np.log(rng.dirichlet(np.ones(4))).astype("float32")
    got = float(in_batch_softmax_loss(a, b, items, lq[items] if log_q else None, 0.2, mask))
    want = in_batch_softmax_numpy(a, b, items, lq if log_q else None, 0.2, mask)
    assert got == pytest.approx(want, rel=1e-4)


def test_keras_rs_remove_accidental_hits_is_a_no_op_in_0_4():
    """Why in_batch_softmax_loss masks hits itself (keras-rs pull request #206)."""
    import keras_rs

    logits = np.array([[2.0, 1.0, 3.0]], dtype="float32")
    out = keras_rs.layers.RemoveAccidentalHits()(logits, np.array([[1.0, 0.0, 0.0]], "float32"),
                                                 np.array([7, 8, 7], "int32"))
    if keras_rs.__version__.startswith("0.4"):
        np.testing.assert_array_equal(np.asarray(out), logits)   # the hit (column 2) is not masked


def test_two_tower_trains_and_scores(feats):
    helpers.seed_everything(0)
    rng = np.random.default_rng(0)
    # each user likes the items whose genre A flag matches their gender=F flag
    u = rng.integers(0, N_USERS, 3000)
    fits = np.flatnonzero(feats.I[:, 1] == 1)
    other = np.flatnonzero(feats.I[:, 1] == 0)
    i = np.where(feats.U[u, 1] == 1, rng.choice(fits, 3000), rng.choice(other, 3000))
    tt = build_two_tower(N_USERS, N_ITEMS, feats, dim=4, out_dim=4, hidden=(8,), user_ids=False)
    s = tt.scores(np.arange(N_USERS), N_ITEMS)
    assert s.shape == (N_USERS, N_ITEMS) and np.all(np.abs(s) <= 1 + 1e-6)       # unit vectors: cosines
    np.testing.assert_allclose(predict_logits(tt.model, np.array([0, 1]), np.array([2, 3])), s[[0, 1], [2, 3]], rtol=1e-5)
    X = sp.csr_array((N_USERS, N_ITEMS))
    val = retrieval_validation(tt, np.arange(N_USERS), np.where(feats.U[:, 1] == 1, fits[0], other[0]), X, patience=None)
    h = train_two_tower(tt, u, i, N_ITEMS, TrainConfig(epochs=6, batch_size=256, learning_rate=0.01),
                        temperature=0.2, validation=val)
    assert h.loss[-1] < h.loss[0] and set(h.val) == {"full HR@10", "full NDCG@10"}
    s = tt.scores(np.arange(N_USERS), N_ITEMS)
    f_users = feats.U[:, 1] == 1
    assert s[np.ix_(f_users, fits)].mean() > s[np.ix_(f_users, other)].mean()
    with pytest.raises(ValueError, match="at least one batch"):
        train_two_tower(tt, u[:10], i[:10], N_ITEMS, TrainConfig(epochs=1, batch_size=256))
    with pytest.raises(ValueError, match="each tower needs"):
        build_two_tower(N_USERS, N_ITEMS, feats, user_ids=False, user_features=False)


def test_shelf_exclusion():
    seen = sp.csr_array(np.array([[1, 0, 0, 1, 0], [0, 0, 0, 0, 0]]))
    E = shelf_exclusion(seen, np.array([1, 3, 4]))
    np.testing.assert_array_equal(E.toarray(), [[1, 0, 1, 1, 0], [1, 0, 1, 0, 0]])
    with pytest.raises(ValueError, match="shelf"):
        shelf_exclusion(seen, np.array([7]))
