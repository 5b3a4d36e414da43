"""helpers.losses against keras.losses (or TensorFlow ops where Keras has none), and every
hand-written gradient against tf.GradientTape."""
import numpy as np
import pytest

import helpers  # noqa: F401  (quiet TensorFlow before it is imported)
from helpers import losses as L

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

RNG = np.random.default_rng(0)
Y_REG = RNG.uniform(1, 5, 200)
P_REG = Y_REG + RNG.normal(0, 1.5, 200)
Y_BIN = RNG.integers(0, 2, 200).astype(float)
Z = RNG.normal(0, 4, 200)


def _keras(loss_obj, y, p):
    return float(loss_obj(np.asarray(y, np.float64)[:, None], np.asarray(p, np.float64)[:, None]))


def _tf_grad(fn, x):
    x = tf.Variable(np.asarray(x, np.float64))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(fn(x))
    return tape.gradient(total, x).numpy()


@pytest.mark.parametrize("name, ours, theirs", [
    ("mse", L.mse, keras.losses.MeanSquaredError()),
    ("mae", L.mae, keras.losses.MeanAbsoluteError()),
    ("huber1", lambda y, p: L.huber(y, p, 1.0), keras.losses.Huber(1.0)),
    ("huber03", lambda y, p: L.huber(y, p, 0.3), keras.losses.Huber(0.3)),
])
def test_regression_losses_match_keras(name, ours, theirs):
    np.testing.assert_allclose(ours(Y_REG, P_REG), _keras(theirs, Y_REG, P_REG), rtol=1e-6)


def test_elementwise_values_match_keras_per_sample():
    ours = L.huber(Y_REG, P_REG, 0.5, reduction="none")
    theirs = keras.losses.huber(Y_REG[:, None], P_REG[:, None], delta=0.5).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert L.mse(Y_REG, P_REG, reduction="sum") == pytest.approx(np.sum((Y_REG - P_REG) ** 2))


def test_smooth_l1_is_huber_over_beta_and_torch_formula():
    for beta in (0.25, 1.0, 2.0):
        ours = L.smooth_l1(Y_REG, P_REG, beta, reduction="none")
        theirs = keras.losses.huber(Y_REG[:, None], P_REG[:, None], delta=beta).numpy() / beta
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        e = np.abs(P_REG - Y_REG)  # PyTorch's SmoothL1Loss definition, written out
        torch_def = np.where(e < beta, 0.5 * e**2 / beta, e - 0.5 * beta)
        np.testing.assert_allclose(ours, torch_def, rtol=1e-12)
    np.testing.assert_allclose(L.smooth_l1(Y_REG, P_REG, 1.0), L.huber(Y_REG, P_REG, 1.0))


def test_bce_from_probabilities_matches_keras_including_clipping():
    p = L.sigmoid(Z)
    p[:3] = [0.0, 1.0, 1e-12]  # exercise the clip at eps
    ours = L.binary_cross_entropy(Y_BIN, p, reduction="none")
    theirs = keras.losses.binary_crossentropy(Y_BIN[:, None], p[:, None]).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert np.isfinite(ours).all() and ours.max() <= -np.log(L.EPSILON) + 1e-9


def test_bce_with_logits_matches_keras_and_tf_at_extremes():
    z = np.r_[Z, -1000.0, 1000.0, -40.0, 40.0]
    y = np.r_[Y_BIN, 1.0, 0.0, 1.0, 0.0]
    ours = L.binary_cross_entropy_with_logits(y, z, reduction="none")
    k = keras.losses.BinaryCrossentropy(from_logits=True, reduction="none")(y[:, None], z[:, None]).numpy()
    t = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z).numpy()
    np.testing.assert_allclose(ours, k, rtol=1e-6)
    np.testing.assert_allclose(ours, t, rtol=1e-12)
    np.testing.assert_allclose(ours[-4:], [1000.0, 1000.0, 40.0, 40.0], rtol=1e-12)


def test_softmax_cross_entropy_sparse_and_dense_match_keras():
    logits = RNG.normal(0, 3, (50, 7))
    logits[0, 0] = 1000.0  # stable at extreme logits
    labels = RNG.integers(0, 7, 50)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    np.testing.assert_allclose(L.softmax_cross_entropy(labels, logits, reduction="none"),
                               sparse(labels, logits).numpy(), rtol=1e-6, atol=1e-6)
    soft = RNG.dirichlet(np.ones(7), 50)
    dense = keras.losses.CategoricalCrossentropy(from_logits=True, reduction="none")
    np.testing.assert_allclose(L.softmax_cross_entropy(soft, logits, reduction="none"),
                               dense(soft, logits).numpy(), rtol=1e-6)
    assert np.isfinite(L.softmax_cross_entropy(labels, logits * 100)).all()


def test_hinge_matches_keras_for_pm1_and_01_labels():
    y_pm = 2 * Y_BIN - 1
    np.testing.assert_allclose(L.hinge(y_pm, Z), _keras(keras.losses.Hinge(), y_pm, Z), rtol=1e-6)
    np.testing.assert_allclose(L.hinge(Y_BIN, Z), L.hinge(y_pm, Z))
    with pytest.raises(ValueError, match="-1/\\+1"):
        L.hinge(np.array([2.0, -1.0]), np.array([0.0, 0.0]))


def test_bpr_equals_minus_log_sigmoid_and_bce_of_the_difference():
    pos, neg = Z[:100], Z[100:]
    ours = L.bpr(pos, neg, reduction="none")
    np.testing.assert_allclose(ours, -tf.math.log_sigmoid(pos - neg).numpy(), rtol=1e-12)
    # BPR is binary cross-entropy with label 1 on the score difference
    np.testing.assert_allclose(ours, L.binary_cross_entropy_with_logits(np.ones(100), pos - neg, "none"))
    assert np.isfinite(L.bpr(np.array([-1000.0]), np.array([1000.0])))
    assert L.bpr(np.array([-1000.0]), np.array([1000.0])) == pytest.approx(2000.0)


def test_margin_ranking_matches_relu_and_keras_hinge():
    pos, neg, m = Z[:100], Z[100:], 0.5
    ours = L.margin_ranking(pos, neg, m, reduction="none")
    np.testing.assert_allclose(ours, tf.nn.relu(m - (pos - neg)).numpy(), rtol=1e-12)
    # m * max(0, 1 - d/m) is Keras's hinge with label +1 on d/m
    k = keras.losses.hinge(np.ones((100, 1)), ((pos - neg) / m)[:, None]).numpy() * m
    np.testing.assert_allclose(ours, k, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("x, grad_fn, tf_fn", [
    (P_REG, lambda p: L.mse_grad(Y_REG, p), lambda p: (p - Y_REG) ** 2),
    (P_REG, lambda p: L.mae_grad(Y_REG, p), lambda p: tf.abs(p - Y_REG)),
    (P_REG, lambda p: L.huber_grad(Y_REG, p, 0.7),
     lambda p: keras.losses.huber(Y_REG[:, None], p[:, None], delta=0.7)),
    (Z, lambda z: L.binary_cross_entropy_with_logits_grad(Y_BIN, z),
     lambda z: tf.nn.sigmoid_cross_entropy_with_logits(labels=Y_BIN, logits=z)),
], ids=["mse", "mae", "huber", "bce_logits"])
def test_pointwise_gradients_match_gradient_tape(x, grad_fn, tf_fn):
    np.testing.assert_allclose(grad_fn(x), _tf_grad(tf_fn, x), rtol=1e-9, atol=1e-12)


def test_smooth_l1_gradient_matches_gradient_tape_and_huber_over_beta():
    for beta in (0.3, 1.0, 2.5):
        g_tf = _tf_grad(lambda p: keras.losses.huber(Y_REG[:, None], p[:, None], delta=beta) / beta, P_REG)
        np.testing.assert_allclose(L.smooth_l1_grad(Y_REG, P_REG, beta), g_tf, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(L.smooth_l1_grad(Y_REG, P_REG, beta), L.huber_grad(Y_REG, P_REG, beta) / beta)
    with pytest.raises(ValueError, match="beta"):
        L.smooth_l1_grad(np.ones(2), np.ones(2), beta=0.0)


def test_bce_from_probabilities_gradient_matches_keras_and_vanishes_where_clipped():
    p = L.sigmoid(Z)
    p[:4] = [0.0, 1.0, 1e-12, 1 - 1e-12]  # clipped: Keras's gradient is exactly zero there
    g_tf = _tf_grad(lambda q: keras.losses.binary_crossentropy(Y_BIN[:, None], q[:, None]), p)
    ours = L.binary_cross_entropy_grad(Y_BIN, p)
    np.testing.assert_allclose(ours, g_tf, rtol=1e-6, atol=1e-9)
    assert (ours[:4] == 0).all()
    # chained with dp/dz = p(1 - p) it is sigma(z) - y wherever the clip does not bite
    z = np.linspace(-8, 8, 33)
    y = (np.arange(33) % 2).astype(float)
    pz = L.sigmoid(z)
    np.testing.assert_allclose(L.binary_cross_entropy_grad(y, pz) * pz * (1 - pz),
                               L.binary_cross_entropy_with_logits_grad(y, z), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="probabilities"):
        L.binary_cross_entropy_grad(np.ones(2), np.array([0.5, 1.5]))


def test_softmax_cross_entropy_gradient_is_softmax_minus_target():
    logits = RNG.normal(0, 3, (40, 6))
    logits[0] = [800.0, 790.0, 0.0, -5.0, 2.0, 1.0]  # stable at extreme logits
    labels = RNG.integers(0, 6, 40)
    soft = RNG.dirichlet(np.ones(6), 40)
    for target in (labels, soft):
        g_tf = _tf_grad(lambda z: _tf_softmax_ce(target, z), logits)
        np.testing.assert_allclose(L.softmax_cross_entropy_grad(target, logits), g_tf, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(L.softmax(logits).sum(axis=1), 1.0)
    np.testing.assert_allclose(L.softmax_cross_entropy_grad(labels, logits).sum(axis=1), 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="class indices"):
        L.softmax_cross_entropy_grad(np.array([0, 7]), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="2-D"):
        L.softmax_cross_entropy_grad(np.array([0]), np.zeros(6))


def _tf_softmax_ce(target, z):
    if np.ndim(target) == 1:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=z)
    return tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=z)


def test_hinge_gradient_matches_gradient_tape_for_pm1_and_01_labels():
    y_pm = 2 * Y_BIN - 1
    g_tf = _tf_grad(lambda s: tf.nn.relu(1.0 - y_pm * s), Z)
    np.testing.assert_allclose(L.hinge_grad(y_pm, Z), g_tf)
    np.testing.assert_allclose(L.hinge_grad(Y_BIN, Z), g_tf)
    with pytest.raises(ValueError, match="-1/\\+1"):
        L.hinge_grad(np.array([2.0, -1.0]), np.array([0.0, 0.0]))


def test_every_loss_has_a_gradient():
    names = ["mse", "mae", "huber", "smooth_l1", "binary_cross_entropy", "binary_cross_entropy_with_logits",
             "softmax_cross_entropy", "hinge", "bpr", "margin_ranking"]
    assert all(callable(getattr(L, f"{n}_grad")) for n in names)


def test_pairwise_gradients_match_gradient_tape():
    pos, neg = Z[:100], Z[100:]
    g_pos = _tf_grad(lambda p: -tf.math.log_sigmoid(p - neg), pos)
    np.testing.assert_allclose(L.bpr_grad(pos, neg), g_pos, rtol=1e-9)
    g_neg = _tf_grad(lambda n: -tf.math.log_sigmoid(pos - n), neg)
    np.testing.assert_allclose(-L.bpr_grad(pos, neg), g_neg, rtol=1e-9)
    g_m = _tf_grad(lambda p: tf.nn.relu(1.0 - (p - neg)), pos)
    np.testing.assert_allclose(L.margin_ranking_grad(pos, neg, 1.0), g_m)


def test_stable_primitives_at_extremes():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    np.testing.assert_allclose(L.sigmoid(x), keras.activations.sigmoid(x).numpy(), rtol=1e-12)
    np.testing.assert_allclose(L.log_sigmoid(x), tf.math.log_sigmoid(x).numpy(), rtol=1e-12)
    np.testing.assert_allclose(L.softplus(x), tf.math.softplus(x).numpy(), rtol=1e-12)
    z = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(L.logsumexp(z), tf.reduce_logsumexp(z, axis=-1).numpy(), rtol=1e-12)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        L.mse(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="empty"):
        L.mae(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="probabilities"):
        L.binary_cross_entropy(np.ones(2), np.array([0.5, 3.0]))
    with pytest.raises(ValueError, match="reduction"):
        L.mse(np.ones(2), np.ones(2), reduction="avg")
    with pytest.raises(ValueError, match="delta"):
        L.huber(np.ones(2), np.ones(2), delta=0)
    with pytest.raises(ValueError, match="class indices"):
        L.softmax_cross_entropy(np.array([0, 5]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-D"):
        L.softmax_cross_entropy(np.array([0]), np.zeros(3))
