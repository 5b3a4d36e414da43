import warnings

import numpy as np
import pytest

from helpers.compress import (HashedEmbedding, LowRankEmbedding, build_small_gmf, dequantize_rows,
                              distillation_loss, hash_ids, keras_quantized, latency_per_request,
                              magnitude_mask, model_bytes, parameter_table, quantize_rows, saved_bytes,
                              sparse_bytes)


def test_quantize_rows_error_bound_and_codes():
    w = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    w[3] = 0.0
    for bits in (8, 4):
        q, s = quantize_rows(w, bits)
        qmax = 2 ** (bits - 1) - 1
        assert q.dtype == np.int8 and np.abs(q).max() <= qmax and s.shape == (50,)
        err = np.abs(dequantize_rows(q, s) - w)
        assert np.all(err <= s[:, None] / 2 + 1e-6)
        assert np.all(np.abs(q).max(axis=1)[np.arange(50) != 3] == qmax)
    with pytest.raises(ValueError):
        quantize_rows(w[0], 8)
    with pytest.raises(ValueError):
        quantize_rows(w, 5)


def test_keras_int8_matches_numpy():
    from helpers.ncf import build_gmf
    m = build_gmf(10, 12, 8)
    q = keras_quantized(m, "int8")
    emb = m.get_layer("gmf_item").embeddings.numpy()
    codes, scale = quantize_rows(emb, 8)
    layer = q.get_layer("gmf_item")
    np.testing.assert_array_equal(np.asarray(layer._embeddings), codes)
    np.testing.assert_allclose(1.0 / np.asarray(layer.embeddings_scale), scale, rtol=1e-4)
    assert model_bytes(q) < model_bytes(m) / 2
    assert m.get_layer("gmf_item").embeddings.dtype == "float32"  # the original is untouched
    with pytest.raises(ValueError):
        keras_quantized(m, "int2")


def test_parameter_table_and_bytes():
    from helpers.ncf import build_neumf
    m = build_neumf(100, 200, 8, (16, 8))
    t = parameter_table(m)
    assert t.params.sum() == m.count_params()
    assert abs(t.share.sum() - 1) < 1e-9 and t.iloc[0]["kind"] == "embedding"
    assert model_bytes(m) == 4 * m.count_params()
    assert saved_bytes(m) > 0


def test_magnitude_mask_and_sparse_bytes():
    w = np.array([[0.1, -3.0], [2.0, 0.5]])
    np.testing.assert_array_equal(magnitude_mask(w, 0.5), [[False, True], [True, False]])
    assert magnitude_mask(w, 0.0).all()
    assert sparse_bytes(magnitude_mask(w, 0.5)) == 2 * 6 + 4 * 3
    with pytest.raises(ValueError):
        magnitude_mask(w, 1.0)


def test_hashing_and_low_rank_layers():
    b = hash_ids(np.arange(1000), 100, seed=0)
    assert b.min() >= 0 and b.max() < 100 and len(np.unique(b)) > 80
    np.testing.assert_array_equal(b, hash_ids(np.arange(1000), 100, seed=0))
    h = HashedEmbedding(1000, 100, 4, name="h")
    out = h(np.array([0, 1, 2], np.int32)).numpy()
    np.testing.assert_allclose(out[0], h.embeddings.numpy()[b[0]])
    lr = LowRankEmbedding(50, 2, 6)
    np.testing.assert_allclose(lr(np.array([3], np.int32)).numpy()[0], lr.a.numpy()[3] @ lr.b.numpy(), rtol=1e-6)
    assert len(lr.weights) == 2 and sum(int(np.prod(v.shape)) for v in lr.weights) == (50 + 6) * 2
    m = build_small_gmf(30, 40, 8, item_buckets=10)
    assert m.count_params() == 30 * 8 + 10 * 8 + 9
    m2 = build_small_gmf(30, 40, 8, rank=2)
    assert m2.count_params() == (30 + 8) * 2 + (40 + 8) * 2 + 9
    with pytest.raises(ValueError):
        build_small_gmf(30, 40, 8, rank=2, item_buckets=10)
    with pytest.raises(ValueError):
        LowRankEmbedding(10, 9, 8)


def test_distillation_loss():
    import tensorflow as tf
    y = tf.constant([1.0, 0.0])
    s = tf.constant([0.3, -1.0])
    t = tf.constant([2.0, -2.0])
    hard = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=s)).numpy()
    np.testing.assert_allclose(distillation_loss(y, s, t, alpha=1.0).numpy(), hard, rtol=1e-6)
    p = 1 / (1 + np.exp(-np.array([2.0, -2.0])))
    sig = 1 / (1 + np.exp(-np.array([0.3, -1.0])))
    soft = np.mean(-(p * np.log(sig) + (1 - p) * np.log(1 - sig)))
    np.testing.assert_allclose(distillation_loss(y, s, t, alpha=0.0).numpy(), soft, rtol=1e-5)
    with pytest.raises(ValueError):
        distillation_loss(y, s, t, alpha=2.0)


def test_latency_positive():
    lat = latency_per_request(lambda u, i: u * 0.0 + i, n_requests=5)
    assert 0 <= lat < 0.1


def test_fake_quantized_matches_rows_and_bytes():
    from helpers.compress import fake_quantized
    m = build_small_gmf(30, 40, 8, rank=None)
    q, nbytes = fake_quantized(m, 8)
    w = m.get_layer("gmf_item").embeddings.numpy()
    np.testing.assert_allclose(q.get_layer("gmf_item").embeddings.numpy(), dequantize_rows(*quantize_rows(w, 8)))
    assert nbytes == (30 + 40) * (8 + 4) + 4 * 9
    assert fake_quantized(m, 4)[1] == (30 + 40) * (4 + 4) + 4 * 9


def test_mixed_dim_embedding():
    from helpers.compress import MixedDimEmbedding
    layer = MixedDimEmbedding(10, 6, head_ids=[7, 2], tail_dim=2, name="m")
    out = layer(np.arange(10, dtype=np.int32)).numpy()
    np.testing.assert_allclose(out[2], layer.head.numpy()[0])
    np.testing.assert_allclose(out[7], layer.head.numpy()[1])
    np.testing.assert_allclose(out[0], layer.tail.numpy()[0] @ layer.proj.numpy(), rtol=1e-6)
    np.testing.assert_allclose(out[9], layer.tail.numpy()[7] @ layer.proj.numpy(), rtol=1e-6)
    assert sum(int(np.prod(v.shape)) for v in layer.weights) == 2 * 6 + 8 * 2 + 2 * 6
    m = build_small_gmf(30, 40, 8, head_users=np.arange(5), head_items=np.arange(10), tail_dim=2)
    assert m.count_params() == (5 * 8 + 25 * 2 + 16) + (10 * 8 + 30 * 2 + 16) + 9
    with pytest.raises(ValueError):
        build_small_gmf(30, 40, 8, tail_dim=2)
    with pytest.raises(ValueError):
        MixedDimEmbedding(10, 6, head_ids=[11], tail_dim=2)


def test_frequent_ids():
    from helpers.compress import frequent_ids
    np.testing.assert_array_equal(frequent_ids(np.array([3, 3, 1, 1, 0, 2, 2, 2]), 5, 0.4), [1, 2])
    with pytest.raises(ValueError):
        frequent_ids(np.array([7]), 5, 0.4)
