import numpy as np
import pytest
import keras
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


def test_train_config_validates_refits_and_reads_choices():
    from helpers.training import TrainConfig

    cfg = TrainConfig(epochs=8, batch_size=8192, learning_rate=0.02, decay_to=0.0)
    r = cfg.refit(5)
    assert (r.epochs, r.decay_epochs, r.learning_rate) == (5, 8, 0.02)
    assert r.refit(3).decay_epochs == 8  # a refit of a refit keeps the original schedule
    with pytest.raises(ValueError, match="refit epochs"):
        cfg.refit(9)
    with pytest.raises(ValueError, match="refit epochs"):
        cfg.refit(0)
    for bad in (dict(epochs=0), dict(batch_size=0), dict(learning_rate=0), dict(weight_decay=-1),
                dict(decay_to=1.5), dict(epochs=4, decay_epochs=3)):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    got = TrainConfig.from_dict({"epochs": 8.0, "batch_size": 8192.0, "learning_rate": 0.02,
                                 "decay_to": 0.0, "model": "GMF", "val NDCG@10": 0.4})
    assert got == cfg and isinstance(got.batch_size, int)
    assert isinstance(cfg.optimizer(10), keras.optimizers.Adam)
    assert isinstance(cfg.replace(weight_decay=0.1).optimizer(10), keras.optimizers.AdamW)


def _toy_model():
    x = keras.Input(shape=(1,))
    return keras.Model(x, keras.layers.Dense(1, use_bias=False)(x))


def test_run_epochs_evaluates_epoch_zero_and_restores_the_best():
    from helpers.training import Validation, run_epochs

    model = _toy_model()
    model.set_weights([np.array([[5.0]], dtype=np.float32)])
    scores = iter([0.5, 0.7, 0.9, 0.6, 0.65, 0.62])  # epoch 0, 1, 2, ...

    def epoch_fn(epoch):
        model.set_weights([np.array([[float(epoch)]], dtype=np.float32)])
        return 1.0 / epoch

    seen = []
    val = Validation(lambda m: {"NDCG@10": next(scores)}, patience=2)
    h = run_epochs(model, epoch_fn, 10, val, on_epoch_end=lambda e, hist: seen.append(e))
    assert h.val["NDCG@10"][:4] == [0.5, 0.7, 0.9, 0.6] and h.best_epoch == 2 and h.best("NDCG@10") == 0.9
    assert h.stopped_early and h.epochs == 4 and seen == [1, 2, 3, 4]
    assert model.get_weights()[0][0, 0] == 2.0
    assert len(h.seconds) == len(h.cpu_seconds) == 4


def test_run_epochs_keeps_the_starting_model_and_minimises():
    from helpers.training import Validation, run_epochs

    model = _toy_model()
    model.set_weights([np.array([[5.0]], dtype=np.float32)])

    def epoch_fn(epoch):
        model.set_weights([np.array([[float(epoch)]], dtype=np.float32)])
        return 0.1

    h = run_epochs(model, epoch_fn, 3, Validation(lambda m: {"NDCG@10": 0.9 - 0.1 * float(m.get_weights()[0][0, 0] != 5)}))
    assert h.best_epoch == 0 and model.get_weights()[0][0, 0] == 5.0 and h.epochs == 3
    rmse = Validation(lambda m: {"RMSE": abs(float(m.get_weights()[0][0, 0]) - 2)}, monitor="RMSE", mode="min")
    h = run_epochs(model, epoch_fn, 3, rmse)
    assert h.best_epoch == 2 and model.get_weights()[0][0, 0] == 2.0
    with pytest.raises(KeyError, match="monitor"):
        run_epochs(model, epoch_fn, 1, Validation(lambda m: {"HR@10": 0.1}))
    with pytest.raises(FloatingPointError):
        run_epochs(model, lambda e: float("nan"), 1)
    with pytest.raises(ValueError, match="mode"):
        Validation(lambda m: {}, mode="up")
    h = run_epochs(model, epoch_fn, 2)
    assert h.best_epoch == 2 and h.val == {}


def test_scorers_live_in_training_and_ncf_reexports_them():
    """pair_scorer/user_scorer serve any Keras model (chapters 8, 10, 12); helpers.ncf keeps the names."""
    from helpers import ncf, training

    assert ncf.pair_scorer is training.pair_scorer and ncf.user_scorer is training.user_scorer
