"""helpers.optim: every from-scratch optimizer takes the same steps as its keras.optimizers
counterpart on the same gradients, and the NumPy matrix factorisation's gradients agree with
tf.GradientTape."""
import numpy as np
import pytest

import helpers  # noqa: F401  (quiet TensorFlow before it is imported)
from helpers import losses as L
from helpers import optim
from helpers.factorization import MatrixFactorization

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _run_both(ours: optim.Optimizer, theirs, n_steps: int = 12, dtype="float32", seed: int = 0):
    """Apply the same gradient sequence to NumPy arrays and Keras variables; return both."""
    rng = np.random.default_rng(seed)
    shapes = [(5, 3), (4,)]
    init = [rng.normal(size=s) for s in shapes]
    params = [p.astype(np.float64) for p in init]
    variables = [keras.Variable(p, dtype=dtype) for p in init]
    for t in range(n_steps):
        # gradients of very different scales per coordinate, sign changes, exact zeros
        grads = [rng.normal(size=s) * 10.0 ** rng.integers(-3, 2, size=s) for s in shapes]
        grads[0][0] = 0.0
        ours.step(params, grads)
        theirs.apply_gradients(zip([tf.constant(g, dtype=dtype) for g in grads], variables))
    return params, [v.numpy() for v in variables]


@pytest.mark.parametrize("ours, theirs", [
    (lambda: optim.SGD(0.05), lambda: keras.optimizers.SGD(0.05)),
    (lambda: optim.Momentum(0.05, 0.9), lambda: keras.optimizers.SGD(0.05, momentum=0.9)),
    (lambda: optim.Momentum(0.05, 0.8, nesterov=True),
     lambda: keras.optimizers.SGD(0.05, momentum=0.8, nesterov=True)),
    (lambda: optim.Adagrad(0.1), lambda: keras.optimizers.Adagrad(0.1)),
    (lambda: optim.RMSProp(0.01), lambda: keras.optimizers.RMSprop(0.01)),
    (lambda: optim.Adam(0.01), lambda: keras.optimizers.Adam(0.01)),
    (lambda: optim.Adam(0.1, 0.5, 0.9, 1e-5), lambda: keras.optimizers.Adam(0.1, 0.5, 0.9, 1e-5)),
], ids=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adam_custom"])
def test_same_steps_as_keras_float32(ours, theirs):
    """Keras's default float32 variables, default hyperparameters: equal to 1e-6."""
    a, b = _run_both(ours(), theirs())
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)


# Keras keeps the learning rate in a float32 variable and turns Python floats such as 0.9
# into float32 constants before casting, so for agreement to rounding in float64 every
# hyperparameter here is a dyadic number (exact in float32).
D = dict(lr=2**-4, mom=0.875, b1=0.875, b2=1 - 2**-10, rho=0.75, eps=2**-20, acc=0.125)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: optim.SGD(D["lr"]), lambda: keras.optimizers.SGD(D["lr"])),
    (lambda: optim.Momentum(D["lr"], D["mom"]), lambda: keras.optimizers.SGD(D["lr"], momentum=D["mom"])),
    (lambda: optim.Momentum(D["lr"], D["mom"], nesterov=True),
     lambda: keras.optimizers.SGD(D["lr"], momentum=D["mom"], nesterov=True)),
    (lambda: optim.Adagrad(D["lr"], D["acc"], D["eps"]),
     lambda: keras.optimizers.Adagrad(D["lr"], D["acc"], D["eps"])),
    (lambda: optim.RMSProp(D["lr"], D["rho"], D["eps"]),
     lambda: keras.optimizers.RMSprop(D["lr"], D["rho"], epsilon=D["eps"])),
    (lambda: optim.Adam(D["lr"], D["b1"], D["b2"], D["eps"]),
     lambda: keras.optimizers.Adam(D["lr"], D["b1"], D["b2"], D["eps"])),
], ids=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_same_formula_as_keras_to_rounding_in_float64(ours, theirs):
    a, b = _run_both(ours(), theirs(), dtype="float64")
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)


def test_adam_first_step_has_size_lr_whatever_the_gradient_scale():
    for scale in (1e-2, 1.0, 1e4):
        p = [np.zeros(3)]
        optim.Adam(0.01).step(p, [np.array([1.0, -2.0, 0.5]) * scale])
        np.testing.assert_allclose(np.abs(p[0]), 0.01, rtol=1e-3)


def test_step_validates_inputs_and_counts():
    opt = optim.Adam(0.01)
    p = [np.zeros(3)]
    opt.step(p, [np.ones(3)])
    assert opt.iterations == 1
    with pytest.raises(ValueError, match="shape"):
        opt.step(p, [np.ones(4)])
    with pytest.raises(ValueError, match="started with 1 parameters"):
        opt.step([np.zeros(3), np.zeros(2)], [np.ones(3), np.ones(2)])
    with pytest.raises(TypeError, match="float"):
        optim.SGD(0.1).step([np.zeros(3, dtype=int)], [np.ones(3)])
    with pytest.raises(ValueError, match="learning_rate"):
        optim.SGD(0.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.make_optimizer("lbfgs", 0.1)
    assert isinstance(optim.make_optimizer("RMSProp", 0.1), optim.RMSProp)


def test_state_exposes_adagrad_accumulators_and_keras_default_is_sgd_for_tiny_gradients():
    opt = optim.Adagrad(0.1)
    assert opt.state == []
    p = [np.zeros(4)]
    q = [np.zeros(4)]
    sgd = optim.SGD(0.1 / np.sqrt(0.1))
    rng = np.random.default_rng(4)
    for _ in range(20):
        g = rng.normal(size=4) * 1e-4          # sum of squares stays << a0 = 0.1
        opt.step(p, [g])
        sgd.step(q, [g])
    acc = opt.state[0]["a"]
    assert (acc > 0.1).all() and (acc - 0.1 < 1e-6).all()
    np.testing.assert_allclose(p[0], q[0], rtol=1e-4)   # Adagrad(a0 = 0.1) ~ SGD(lr / sqrt(0.1))
    p0 = [np.zeros(4)]
    optim.Adagrad(0.1, initial_accumulator_value=0.0).step(p0, [np.full(4, 1e-4)])
    np.testing.assert_allclose(np.abs(p0[0]), 0.1 * 1e-4 / np.sqrt(1e-8 + 1e-7), rtol=1e-9)


def _tf_mf_loss(mf: MatrixFactorization, users, items, ratings, l2):
    P, Q, bu, bi = (tf.Variable(x) for x in mf.params)
    with tf.GradientTape() as tape:
        pu, qi = tf.gather(P, users), tf.gather(Q, items)
        s = mf.mu + tf.gather(bu, users) + tf.gather(bi, items) + tf.reduce_sum(pu * qi, axis=1)
        data = tf.reduce_mean((s - ratings) ** 2)
        reg = l2 / len(users) * (tf.reduce_sum(pu**2) + tf.reduce_sum(qi**2)
                                 + tf.reduce_sum(tf.gather(bu, users) ** 2)
                                 + tf.reduce_sum(tf.gather(bi, items) ** 2))
        total = data + reg
    return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, [P, Q, bu, bi])]


def test_mf_gradients_match_gradient_tape_with_duplicates_and_l2():
    rng = np.random.default_rng(1)
    mf = MatrixFactorization.init(7, 9, 4, rng, scale=0.5, mu=3.5)
    mf.b_user[:] = rng.normal(size=7)
    mf.b_item[:] = rng.normal(size=9)
    users = rng.integers(0, 7, 60)
    items = rng.integers(0, 9, 60)
    users[:5], items[:5] = 2, 3  # repeated pairs must be summed
    r = rng.integers(1, 6, 60).astype(float)
    s = mf.score(users, items)
    ours = mf.grads(users, items, L.mse_grad(r, s) / len(users), l2=0.3)
    theirs = _tf_mf_loss(mf, users, items, r, 0.3)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_mf_score_and_training_reduce_the_loss():
    rng = np.random.default_rng(2)
    n_u, n_i = 30, 40
    true_p, true_q = rng.normal(size=(n_u, 2)), rng.normal(size=(n_i, 2))
    users, items = rng.integers(0, n_u, 600), rng.integers(0, n_i, 600)
    r = np.einsum("ij,ij->i", true_p[users], true_q[items])
    mf = MatrixFactorization.init(n_u, n_i, 2, rng)
    np.testing.assert_allclose(mf.score(users[:3], items[:3]),
                               [mf.P[u] @ mf.Q[i] for u, i in zip(users[:3], items[:3])])
    opt = optim.Adam(0.05)
    before = L.mse(r, mf.score(users, items))
    for _ in range(300):
        for b in optim.minibatches(len(r), 100, rng):
            s = mf.score(users[b], items[b])
            opt.step(mf.params, mf.grads(users[b], items[b], L.mse_grad(r[b], s) / len(b)))
    assert L.mse(r, mf.score(users, items)) < 0.05 * before


def test_sparse_sgd_step_equals_dense_sgd_with_duplicates_and_l2():
    rng = np.random.default_rng(5)
    mf = MatrixFactorization.init(8, 11, 3, rng, scale=0.5, mu=3.0)
    mf.b_user[:] = rng.normal(size=8)
    mf.b_item[:] = rng.normal(size=11)
    dense = mf.copy()
    opt = optim.SGD(0.3)
    for _ in range(5):
        users, items = rng.integers(0, 8, 40), rng.integers(0, 11, 40)
        users[:6], items[:6] = 1, 2                       # repeated rows are summed
        r = rng.integers(1, 6, 40).astype(float)
        g = L.mse_grad(r, mf.score(users, items)) / 40
        opt.step(dense.params, dense.grads(users, items, L.mse_grad(r, dense.score(users, items)) / 40, l2=0.2))
        mf.sparse_sgd_step(users, items, g, 0.3, l2=0.2)
    for a, b in zip(mf.params, dense.params):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="equal length"):
        mf.sparse_sgd_step(np.zeros(2, int), np.zeros(3, int), np.zeros(2), 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        mf.sparse_sgd_step(np.zeros(2, int), np.zeros(2, int), np.zeros(2), 0.0)


def test_minibatches_cover_every_index_once():
    rng = np.random.default_rng(3)
    batches = list(optim.minibatches(10, 4, rng))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(np.concatenate(batches).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="batch_size"):
        list(optim.minibatches(10, 0))


def test_matrix_factorization_keeps_its_old_import_path():
    """Chapters written before helpers.factorization import it from helpers.optim."""
    from helpers import ensemble, factorization, mf, splits

    assert optim.MatrixFactorization is factorization.MatrixFactorization
    assert mf.als_mf is factorization.als_mf and mf.sgd_mf is factorization.sgd_mf
    assert mf.fit_blend is ensemble.fit_blend and mf.rating_split is splits.rating_split
    with pytest.raises(AttributeError, match="no attribute"):
        optim.NotAThing  # noqa: B018
