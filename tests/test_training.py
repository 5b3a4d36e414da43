import numpy as np
import pytest
import tensorflow as tf

import helpers  # noqa: F401
from helpers.training import compiled_epoch


def test_compiled_epoch_visits_every_batch_and_averages_losses():
    seen = tf.Variable(0.0)

    def step(u, i, y):
        seen.assign_add(tf.cast(tf.shape(u)[0], tf.float32))
        return tf.reduce_mean(tf.cast(y, tf.float32))

    epoch = compiled_epoch(step, batch_size=4)
    y = np.arange(10, dtype=np.float32)  # batches [0..3], [4..7], [8, 9]
    loss = float(epoch(tf.zeros(10, tf.int32), tf.zeros(10, tf.int32), tf.constant(y)))
    assert seen.numpy() == 10
    assert loss == pytest.approx(np.mean([1.5, 5.5, 8.5]))
    with pytest.raises(ValueError, match="batch_size"):
        compiled_epoch(step, 0)


def test_compiled_epoch_slices_any_number_of_tensors_alike():
    def step(u, i, y, w):
        tf.debugging.assert_equal(u, tf.cast(w, tf.int32))
        return tf.reduce_sum(w * y) / tf.reduce_sum(w)

    epoch = compiled_epoch(step, batch_size=3)
    w = np.arange(7, dtype=np.float32)
    loss = float(epoch(tf.range(7), tf.zeros(7, tf.int32), tf.ones(7), tf.constant(w)))
    assert loss == pytest.approx(1.0)


def test_predict_batched_matches_predict_and_compiles_once():
    import keras

    from helpers.training import EpochHistory, predict_batched

    u_in, i_in = keras.Input(shape=(), dtype="int32"), keras.Input(shape=(), dtype="int32")
    emb_u, emb_i = keras.layers.Embedding(7, 3), keras.layers.Embedding(5, 3)
    out = keras.ops.sum(emb_u(u_in) * emb_i(i_in), axis=-1)
    model = keras.Model([u_in, i_in], out)
    users, items = np.arange(7).repeat(5), np.tile(np.arange(5), 7)
    got = predict_batched(model, users, items, batch_size=4)
    assert got.dtype == np.float64 and got.shape == (35,)
    np.testing.assert_allclose(got, model.predict([users, items], verbose=0), rtol=1e-6)
    fn = model._book_predict_fn
    predict_batched(model, users[:3], items[:3])
    assert model._book_predict_fn is fn                       # cached on the model
    with pytest.raises(ValueError, match="same shape"):
        predict_batched(model, users, items[:-1])
    h = EpochHistory(loss=[1.0, 0.5], seconds=[0.2, 0.5])
    assert h.epochs == 2 and h.train_seconds == 0.5 and EpochHistory().train_seconds == 0.0
