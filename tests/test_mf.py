import helpers  # noqa: F401  (quiet TensorFlow first)

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import mf as M
from helpers.factorization import MatrixFactorization

N_USERS, N_ITEMS, RANK = 40, 60, 3


@pytest.fixture(scope="module")
def data():
    """Ratings from a rank-3 biased model plus noise, 60 % of the matrix observed, split 80/20."""
    rng = np.random.default_rng(0)
    P = rng.normal(0, 0.7, (N_USERS, RANK))
    Q = rng.normal(0, 0.7, (N_ITEMS, RANK))
    bu, bi = rng.normal(0, 0.3, N_USERS), rng.normal(0, 0.3, N_ITEMS)
    full = 3.5 + bu[:, None] + bi[None, :] + P @ Q.T
    u, i = np.nonzero(rng.random((N_USERS, N_ITEMS)) < 0.6)
    r = full[u, i] + rng.normal(0, 0.3, len(u))
    test = rng.random(len(u)) < 0.2
    return (u[~test], i[~test], r[~test]), (u[test], i[test], r[test])


def rmse(y, p):
    return float(np.sqrt(np.mean((y - p) ** 2)))


def bias_rmse(train, test):
    mu = train[2].mean()
    return rmse(test[2], np.full(len(test[2]), mu))


# ----------------------------------------------------------------------------- NumPy
def test_sgd_mf_learns_and_is_reproducible(data):
    train, test = data
    mf, hist = M.sgd_mf(*train, N_USERS, N_ITEMS, dim=8, l2=0.01, learning_rate=5.0, epochs=40,
                        batch_size=64, seed=1, val=test)
    assert hist["train RMSE"][-1] < hist["train RMSE"][0]
    assert hist["val RMSE"][-1] < 0.8 * bias_rmse(train, test)
    mf2, _ = M.sgd_mf(*train, N_USERS, N_ITEMS, dim=8, l2=0.01, learning_rate=5.0, epochs=40,
                      batch_size=64, seed=1)
    np.testing.assert_array_equal(mf.P, mf2.P)


def test_sgd_mf_rejects_bad_input(data):
    (u, i, r), _ = data
    with pytest.raises(ValueError, match="equal length"):
        M.sgd_mf(u, i[:-1], r, N_USERS, N_ITEMS)
    with pytest.raises(ValueError, match="user indices"):
        M.sgd_mf(u + 1, i, r, N_USERS, N_ITEMS)
    with pytest.raises(ValueError, match="one value per"):
        M.sgd_mf(u, i, r[:-1], N_USERS, N_ITEMS)
    with pytest.raises(FloatingPointError, match="diverged"):
        with np.errstate(all="ignore"):
            M.sgd_mf(u, i, r, N_USERS, N_ITEMS, learning_rate=1e6, epochs=3)


def _objective(mf, u, i, r, l2):
    """The ALS objective: squared error + l2 * (sum of squared factors and biases)."""
    err = r - mf.score(u, i)
    return err @ err + l2 * sum(float(np.sum(p ** 2)) for p in mf.params)


def test_als_decreases_its_objective_and_fits(data):
    train, test = data
    values = [_objective(M.als_mf(*train, N_USERS, N_ITEMS, dim=RANK, l2=1.0, n_iter=n), *train, 1.0)
              for n in (1, 2, 5, 20)]
    assert all(a >= b - 1e-6 for a, b in zip(values, values[1:]))
    mf = M.als_mf(*train, N_USERS, N_ITEMS, dim=RANK, l2=1.0, n_iter=20)
    assert rmse(test[2], mf.score(test[0], test[1])) < 0.6 * bias_rmse(train, test)


def test_als_user_step_is_a_ridge_regression(data):
    (u, i, r), _ = data
    mf = M.als_mf(u, i, r, N_USERS, N_ITEMS, dim=2, l2=2.0, n_iter=1)
    # after the item step, re-solving user 0 by hand must reproduce the user step of the next sweep
    mf2 = M.als_mf(u, i, r, N_USERS, N_ITEMS, dim=2, l2=2.0, n_iter=2)
    rows = u == 0
    x = np.column_stack([mf.Q[i[rows]], np.ones(rows.sum())])
    y = r[rows] - mf.mu - mf.b_item[i[rows]]
    sol = np.linalg.solve(x.T @ x + 2.0 * np.eye(3), x.T @ y)
    np.testing.assert_allclose(np.r_[mf2.P[0], mf2.b_user[0]], sol, rtol=1e-8, atol=1e-10)


def test_svd_mf_is_the_truncated_svd_of_the_filled_residuals():
    rng = np.random.default_rng(3)
    n_u, n_i = 12, 9
    u, i = np.divmod(np.arange(n_u * n_i), n_i)                 # every entry observed
    r = rng.normal(3.5, 1.0, n_u * n_i)
    mf = M.svd_mf(u, i, r, n_u, n_i, dim=3)
    resid = (r - mf.mu - mf.b_user[u] - mf.b_item[i]).reshape(n_u, n_i)
    U, s, Vt = np.linalg.svd(resid)
    np.testing.assert_allclose(mf.P @ mf.Q.T, (U[:, :3] * s[:3]) @ Vt[:3], atol=1e-8)


# ----------------------------------------------------------------------------- Keras
def _random_mf(seed=0, dim=4):
    rng = np.random.default_rng(seed)
    mf = MatrixFactorization.init(N_USERS, N_ITEMS, dim, rng, scale=0.3, mu=3.5)
    mf.b_user[:] = rng.normal(0, 0.2, N_USERS)
    mf.b_item[:] = rng.normal(0, 0.2, N_ITEMS)
    return mf


def test_keras_forward_pass_matches_numpy(data):
    (u, i, _), _ = data
    mf = _random_mf()
    model = M.set_mf_weights(M.build_mf(N_USERS, N_ITEMS, 4, mu=3.5), mf)
    np.testing.assert_allclose(M.predict_ratings(model, u, i, clip=None), mf.score(u, i), rtol=1e-5)
    back = M.mf_from_model(model)
    for a, b in zip(back.params, mf.params):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert back.mu == pytest.approx(3.5)


def test_activity_penalty_is_per_occurrence_and_batch_averaged(data):
    (u, i, _), _ = data
    mf = _random_mf(1)
    model = M.set_mf_weights(M.build_mf(N_USERS, N_ITEMS, 4, mu=3.5, l2=0.3), mf)
    b = slice(0, 50)
    model([tf.constant(u[b], tf.int32), tf.constant(i[b], tf.int32)], training=True)
    expected = 0.3 / 50 * (np.sum(mf.P[u[b]] ** 2) + np.sum(mf.Q[i[b]] ** 2)
                           + np.sum(mf.b_user[u[b]] ** 2) + np.sum(mf.b_item[i[b]] ** 2))
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)


def test_one_sgd_step_matches_numpy_gradients(data):
    (u, i, r), _ = data
    mf = _random_mf(2)
    model = M.set_mf_weights(M.build_mf(N_USERS, N_ITEMS, 4, mu=3.5, l2=0.05), mf)
    b = np.arange(64)
    with tf.GradientTape() as tape:
        pred = model([tf.constant(u[b], tf.int32), tf.constant(i[b], tf.int32)], training=True)
        loss = tf.reduce_mean(tf.square(tf.constant(r[b], tf.float32) - pred)) + tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    keras.optimizers.SGD(0.5).apply_gradients(zip(grads, model.trainable_variables))
    err = mf.score(u[b], i[b]) - r[b]
    for p, g in zip(mf.params, mf.grads(u[b], i[b], 2 * err / len(b), 0.05)):
        p -= 0.5 * g
    for a, c in zip(M.mf_from_model(model).params, mf.params):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)


def test_set_mf_weights_checks_mu_and_shapes():
    mf = _random_mf()
    with pytest.raises(ValueError, match="mu"):
        M.set_mf_weights(M.build_mf(N_USERS, N_ITEMS, 4, mu=0.0), mf)
    with pytest.raises(ValueError, match="shape"):
        M.set_mf_weights(M.build_mf(N_USERS, N_ITEMS, 5, mu=3.5), mf)


def test_train_explicit_learns_and_restores_best_epoch(data):
    train, test = data
    helpers.seed_everything(0)
    model = M.build_mf(N_USERS, N_ITEMS, 8, mu=float(train[2].mean()), l2=0.01)
    hist = M.train_explicit(model, *train, epochs=60, batch_size=128, learning_rate=0.02, val=test, patience=5)
    assert min(hist.val_rmse) < 0.8 * bias_rmse(train, test)
    assert 1 <= hist.best_epoch <= hist.epochs
    assert rmse(test[2], M.predict_ratings(model, test[0], test[1])) == pytest.approx(hist.best_val_rmse, abs=1e-6)
    assert hist.as_dict()["val RMSE"] == hist.val_rmse
    with pytest.raises(ValueError, match="validation"):
        M.train_explicit(model, *train, patience=3)


def test_non_negative_factors_stay_non_negative(data):
    train, _ = data
    helpers.seed_everything(0)
    model = M.build_mf(N_USERS, N_ITEMS, 4, mu=3.5, l2=0.01, non_negative=True)
    M.train_explicit(model, *train, epochs=5, batch_size=128, learning_rate=0.05)
    mf = M.mf_from_model(model)
    assert (mf.P >= 0).all() and (mf.Q >= 0).all()
    assert (mf.P == 0).any()  # the projection has clipped something
    assert (mf.b_user < 0).any()  # biases are free


def test_mlp_mf_builds_and_validates():
    model = M.build_mlp_mf(N_USERS, N_ITEMS, 6, hidden=(8, 4), mu=3.0, dropout=0.1)
    out = model([tf.constant([0, 1], tf.int32), tf.constant([2, 3], tf.int32)])
    assert out.shape == (2,)
    assert {"user_embedding", "item_embedding", "user_bias", "item_bias", "dropout_0"} <= {l.name for l in model.layers}
    with pytest.raises(ValueError, match="hidden"):
        M.build_mlp_mf(N_USERS, N_ITEMS, 6, hidden=())
    with pytest.raises(ValueError, match="dropout"):
        M.build_mlp_mf(N_USERS, N_ITEMS, 6, dropout=1.0)


# ----------------------------------------------------------------------------- AutoRec, blend
def test_item_autorec_beats_the_mean_and_reads_as_a_factor_model(data):
    train, test = data
    ar = M.fit_item_autorec(*train, N_USERS, N_ITEMS, hidden=16, l2=1.0, learning_rate=0.02,
                            epochs=300, val=test, eval_every=10)
    assert ar.item_embeddings.shape == (N_ITEMS, 16) and ar.user_weights.shape == (N_USERS, 16)
    p = ar.predict(test[0], test[1], clip=None)
    np.testing.assert_allclose(p, ar.user_bias[test[0]]
                               + np.sum(ar.user_weights[test[0]] * ar.item_embeddings[test[1]], axis=1))
    assert rmse(test[2], ar.predict(test[0], test[1])) < 0.9 * bias_rmse(train, test)
    assert min(ar.history["val RMSE"]) == pytest.approx(rmse(test[2], ar.predict(test[0], test[1])))


def test_fit_blend_recovers_weights():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 1, 500), rng.normal(3, 1, 500)
    y = 0.3 * a + 0.6 * b + 0.2
    w = M.fit_blend([a, b], y)
    np.testing.assert_allclose(w, [0.3, 0.6, 0.2], atol=1e-10)
    np.testing.assert_allclose(M.blend([a, b], w, clip=None), y, atol=1e-10)
    assert M.blend([a, b], w).max() <= 5
    with pytest.raises(ValueError, match="weights"):
        M.blend([a, b], w[:2])
    with pytest.raises(ValueError, match="shape"):
        M.fit_blend([a[:10]], y)


def test_als_users_without_ratings_get_zero_factors(data):
    (u, i, r), _ = data
    keep = u != 5                                               # user 5 has no ratings at all
    mf = M.als_mf(u[keep], i[keep], r[keep], N_USERS, N_ITEMS, dim=RANK, l2=1.0, n_iter=3)
    np.testing.assert_array_equal(mf.P[5], 0.0)
    assert mf.b_user[5] == 0.0 and np.isfinite(mf.P).all()


def test_mlp_mf_dense_l2_penalises_the_dense_weights_once_per_step():
    model = M.build_mlp_mf(N_USERS, N_ITEMS, 4, hidden=(8,), mu=3.5, dense_l2=0.01)
    u = tf.constant([0, 1, 2], tf.int32)
    model([u, u], training=True)
    kernels = [model.get_layer(n).kernel.numpy() for n in ("dense_0", "head")]
    expected = 0.01 * sum(float(np.sum(k ** 2)) for k in kernels)
    assert float(tf.add_n(model.losses)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="dense_l2"):
        M.build_mlp_mf(N_USERS, N_ITEMS, 4, dense_l2=-1.0)


def test_rating_split_partitions_the_base_file(real_data_dir):
    from helpers.data import load_ml100k_fold

    s = M.rating_split(1, data_dir=real_data_dir)
    base, test = load_ml100k_fold(1, data_dir=real_data_dir)
    assert len(s.train[2]) + len(s.val[2]) == len(base) and len(s.test[2]) == len(test)
    assert 0.04 < len(s.val[2]) / len(base) < 0.06
    assert s.train[0].min() == 0 and s.train[0].max() < s.n_users and s.train[1].max() < s.n_items
    again = M.rating_split(1, data_dir=real_data_dir)
    np.testing.assert_array_equal(again.val[0], s.val[0])   # seeded: the same split every time
    with pytest.raises(ValueError, match="val_fraction"):
        M.rating_split(1, val_fraction=0.0, data_dir=real_data_dir)
