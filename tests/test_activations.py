"""helpers.activations: values and derivatives against Keras / tf.GradientTape, stability."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from helpers import activations as A

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

GRID = np.concatenate([np.linspace(-8, 8, 321), [-1000.0, -50.0, -20.0, 20.0, 50.0, 1000.0]])
# away from the kinks at 0, where one-sided derivatives differ
SMOOTH = GRID[np.abs(GRID) > 1e-3]

KERAS = {
    "sigmoid": keras.activations.sigmoid,
    "tanh": keras.activations.tanh,
    "relu": keras.activations.relu,
    "leaky_relu": keras.activations.leaky_relu,
    "elu": keras.activations.elu,
    "gelu": keras.activations.gelu,
}


def strict():
    """Floating-point errors and Python warnings both raise inside the block."""
    ctx = warnings.catch_warnings()

    class _Both:
        def __enter__(self):
            ctx.__enter__()
            warnings.simplefilter("error")
            self.err = np.errstate(over="raise", divide="raise", invalid="raise")
            self.err.__enter__()

        def __exit__(self, *exc):
            self.err.__exit__(*exc)
            return ctx.__exit__(*exc)

    return _Both()


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_values_match_keras_float32_and_float64(name):
    f, _ = A.ACTIVATIONS[name]
    # Keras keeps some constants (the leaky slope, GELU's 1/sqrt(2)) in float32, so even in
    # float64 it agrees only to about 1e-7 relative; exact references are tested below.
    for dtype, rtol in [(np.float32, 1e-6), (np.float64, 1e-6)]:
        x = GRID.astype(dtype)
        with strict():
            ours = f(x)
        assert ours.dtype == dtype
        ref = KERAS[name](tf.constant(x)).numpy()
        np.testing.assert_allclose(ours, ref, rtol=rtol, atol=1e-7 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_derivatives_match_gradient_tape(name):
    f, df = A.ACTIVATIONS[name]
    x = tf.constant(GRID, dtype=tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(KERAS[name](x))
    ref = tape.gradient(y, x).numpy()
    with strict():
        ours = df(GRID)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)


def test_exact_references_in_float64():
    x = GRID[np.abs(GRID) < 40]
    gelu_ref = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(A.gelu(x), gelu_ref, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(A.sigmoid(x), [1 / (1 + math.exp(-v)) for v in x], rtol=1e-14)
    np.testing.assert_allclose(A.leaky_relu(x, 0.2), np.where(x > 0, x, 0.2 * x), rtol=0)


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_derivatives_match_central_differences(name):
    f, df = A.ACTIVATIONS[name]
    x = SMOOTH[np.abs(SMOOTH) < 10]
    h = 1e-6
    numeric = (f(x + h) - f(x - h)) / (2 * h)
    np.testing.assert_allclose(df(x), numeric, rtol=1e-5, atol=1e-7)


def test_gelu_approximation_matches_keras_ops_and_its_gradient():
    x = GRID.astype(np.float64)
    np.testing.assert_allclose(A.gelu(x, approximate=True), keras.ops.gelu(x, approximate=True).numpy(),
                               rtol=1e-6, atol=1e-14)
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = tf.reduce_sum(keras.ops.gelu(t, approximate=True))
    np.testing.assert_allclose(A.gelu_grad(x, approximate=True), tape.gradient(y, t).numpy(),
                               rtol=1e-6, atol=1e-12)


def test_kink_conventions_follow_tensorflow():
    assert A.relu_grad(0.0) == 0.0
    assert A.leaky_relu_grad(0.0, 0.1) == pytest.approx(0.1)
    assert A.elu_grad(0.0, 0.5) == pytest.approx(0.5)


def test_stable_sigmoid_and_softplus_at_extremes():
    with strict():
        s = A.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
        ls = A.log_sigmoid(np.array([-1000.0, 1000.0]))
        sp = A.softplus(np.array([-1000.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(ls, [-1000.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(sp, [0.0, 1000.0], atol=1e-12)
    # the naive formula overflows where the stable one does not
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        1.0 / (1.0 + np.exp(-np.array([-1000.0])))


def test_sigmoid_tanh_relu_ranges():
    x = np.linspace(-15, 15, 301)  # tanh rounds to exactly +-1 beyond |x| > 19
    s, t, r = A.sigmoid(x), A.tanh(x), A.relu(x)
    assert (s > 0).all() and (s < 1).all()
    assert (t > -1).all() and (t < 1).all()
    assert (r >= 0).all() and r.min() == 0
    np.testing.assert_allclose(t, 2 * A.sigmoid(2 * x) - 1, atol=1e-12)
    np.testing.assert_allclose(A.softplus(x), np.log1p(np.exp(x)), rtol=1e-12)


def test_softmax_matches_keras_and_is_stable():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 7)) * 10
    extreme = np.array([[1000.0, 1000.0, -1000.0], [-1000.0, -1000.0, -1000.0], [1000.0, 0.0, -1000.0]])
    for arr in (x, extreme, x.astype(np.float32)):
        with strict():
            ours = A.softmax(arr)
            ours_log = A.log_softmax(arr)
        np.testing.assert_allclose(ours, keras.activations.softmax(tf.constant(arr)).numpy(), rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(ours_log, keras.activations.log_softmax(tf.constant(arr)).numpy(),
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ours.sum(axis=-1), 1.0, rtol=1e-6)
        assert np.isfinite(ours_log).all()
    np.testing.assert_allclose(A.softmax(x + 123.0), A.softmax(x), rtol=1e-12)
    np.testing.assert_allclose(A.softmax(x, axis=0), keras.activations.softmax(tf.constant(x), axis=0).numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(A.softmax(extreme)[0], [0.5, 0.5, 0.0])


def test_softmax_jacobian_matches_tape_and_rows_sum_to_zero():
    x = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -2.0, 1.0]])
    t = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(t)
        y = tf.nn.softmax(t)
    ref = tape.batch_jacobian(y, t).numpy()
    ours = A.softmax_jacobian(x)
    assert ours.shape == (2, 4, 4)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours.sum(axis=-1), 0.0, atol=1e-12)


def test_integers_become_float_and_bad_input_raises():
    assert A.sigmoid(np.array([0, 1])).dtype == np.float64
    with pytest.raises(TypeError, match="real numeric"):
        A.relu(np.array(["a"]))
    with pytest.raises(ValueError, match="negative_slope"):
        A.leaky_relu(1.0, negative_slope=-0.1)
    with pytest.raises(ValueError, match="alpha"):
        A.elu(1.0, alpha=0)
    with pytest.raises(ValueError, match="empty axis"):
        A.softmax(np.zeros((2, 0)))
    with pytest.raises(ValueError, match="out of range"):
        A.softmax(np.zeros(3), axis=1)
    with pytest.raises(ValueError, match="at least a 1-D"):
        A.softmax(np.float64(1.0))
