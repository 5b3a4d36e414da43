"""Tests for helpers.ncf: the models against NumPy, weight fusion, per-epoch negatives and
the training loop (tiny data, a few seconds)."""
from __future__ import annotations

import helpers  # noqa: F401  (quiet TensorFlow first)

import keras
import numpy as np
import pytest

from helpers.evaluation import evaluate_sampled, sample_candidates
from helpers.evaluation import interaction_matrix
from helpers.ncf import (History, NeuMFSettings, build_gmf, build_mlp, build_neumf, load_pretrained,
                         pair_scorer, pointwise_epoch, pretrained_neumf, ranking_validation,
                         train_pointwise, user_scorer)
from helpers.sampling import NegativeSampler
from helpers.training import TrainConfig

N_USERS, N_ITEMS = 7, 11


def _w(model: keras.Model, name: str) -> list[np.ndarray]:
    return model.get_layer(name).get_weights()


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _np_mlp(model: keras.Model, u: np.ndarray, i: np.ndarray, n_hidden: int) -> np.ndarray:
    z = np.concatenate([_w(model, "mlp_user")[0][u], _w(model, "mlp_item")[0][i]], axis=1)
    for k in range(n_hidden):
        w, b = _w(model, f"mlp_dense_{k}")
        z = _relu(z @ w + b)
    return z


def _randomise(model: keras.Model, seed: int = 0) -> None:
    """Random non-trivial weights (fresh embeddings are ~0, which would hide bugs)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, N_USERS, 50), rng.integers(0, N_ITEMS, 50)


def test_gmf_matches_numpy(pairs):
    u, i = pairs
    m = build_gmf(N_USERS, N_ITEMS, factors=4)
    _randomise(m)
    h, b = _w(m, "output")
    expected = (_w(m, "gmf_user")[0][u] * _w(m, "gmf_item")[0][i]) @ h[:, 0] + b[0]
    np.testing.assert_allclose(m.predict([u, i], verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_mlp_matches_numpy(pairs):
    u, i = pairs
    m = build_mlp(N_USERS, N_ITEMS, layers=(8, 6, 3))
    _randomise(m)
    assert _w(m, "mlp_user")[0].shape == (N_USERS, 4)
    h, b = _w(m, "output")
    expected = _np_mlp(m, u, i, 2) @ h[:, 0] + b[0]
    np.testing.assert_allclose(m.predict([u, i], verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_neumf_matches_numpy(pairs):
    u, i = pairs
    m = build_neumf(N_USERS, N_ITEMS, factors=3, layers=(8, 4))
    _randomise(m)
    g = _w(m, "gmf_user")[0][u] * _w(m, "gmf_item")[0][i]
    z = _np_mlp(m, u, i, 1)
    h, b = _w(m, "output")
    expected = np.concatenate([g, z], axis=1) @ h[:, 0] + b[0]
    np.testing.assert_allclose(m.predict([u, i], verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_load_pretrained_blends_logits(pairs):
    u, i = pairs
    gmf, mlp = build_gmf(N_USERS, N_ITEMS, 3), build_mlp(N_USERS, N_ITEMS, (8, 4))
    _randomise(gmf, 1)
    _randomise(mlp, 2)
    neumf = load_pretrained(build_neumf(N_USERS, N_ITEMS, 3, (8, 4)), gmf, mlp, alpha=0.3)
    expected = 0.3 * gmf.predict([u, i], verbose=0) + 0.7 * mlp.predict([u, i], verbose=0)
    np.testing.assert_allclose(neumf.predict([u, i], verbose=0), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(_w(neumf, "gmf_item")[0], _w(gmf, "gmf_item")[0])
    np.testing.assert_array_equal(_w(neumf, "mlp_dense_0")[0], _w(mlp, "mlp_dense_0")[0])


def test_load_pretrained_rejects_bad_input():
    neumf = build_neumf(N_USERS, N_ITEMS, 3, (8, 4))
    gmf, mlp = build_gmf(N_USERS, N_ITEMS, 3), build_mlp(N_USERS, N_ITEMS, (8, 4))
    with pytest.raises(ValueError, match="same sizes"):
        load_pretrained(neumf, build_gmf(N_USERS, N_ITEMS, 5), mlp)
    with pytest.raises(ValueError, match="alpha"):
        load_pretrained(neumf, gmf, mlp, alpha=1.5)
    with pytest.raises(ValueError, match="not a NeuMF"):
        load_pretrained(gmf, gmf, mlp)
    with pytest.raises(ValueError, match="GMF model"):
        load_pretrained(neumf, mlp, mlp)


def test_builders_reject_bad_sizes():
    with pytest.raises(ValueError, match="even"):
        build_mlp(N_USERS, N_ITEMS, (7, 4))
    with pytest.raises(ValueError, match="factors"):
        build_gmf(N_USERS, N_ITEMS, 0)
    with pytest.raises(ValueError, match="n_users"):
        build_neumf(0, N_ITEMS)


def test_pointwise_epoch_labels_and_negatives():
    users = np.array([0, 0, 1, 2, 2, 2])
    items = np.array([1, 2, 0, 3, 4, 5])
    sampler = NegativeSampler(users, items, N_ITEMS)
    u, i, y, w = pointwise_epoch(sampler, users, items, 3, np.random.default_rng(0))
    assert len(u) == len(i) == len(y) == len(w) == 6 * 4 and np.all(w == 1)
    assert y.sum() == 6 and u.dtype == np.int32 and y.dtype == np.float32
    assert not sampler.is_positive(u[y == 0], i[y == 0]).any()  # negatives are true non-positives
    assert sampler.is_positive(u[y == 1], i[y == 1]).all()
    np.testing.assert_array_equal(np.bincount(u, minlength=3), [8, 4, 12])  # 1 + n_neg rows per positive
    again = pointwise_epoch(sampler, users, items, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(again[1], i)
    other = pointwise_epoch(sampler, users, items, 3, np.random.default_rng(1))
    assert not np.array_equal(other[1], i)
    with pytest.raises(ValueError, match="n_neg"):
        pointwise_epoch(sampler, users, items, 0, np.random.default_rng(0))


def test_pointwise_epoch_weights_follow_their_positive():
    users = np.array([0, 0, 1, 2, 2, 2])
    items = np.array([1, 2, 0, 3, 4, 5])
    weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    sampler = NegativeSampler(users, items, N_ITEMS)
    u, i, y, w = pointwise_epoch(sampler, users, items, 3, np.random.default_rng(0), weights)
    same = pointwise_epoch(sampler, users, items, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(same[1], i)                        # weights do not change the draw
    pos = y == 1
    weight_of = {(a, b): c for a, b, c in zip(users, items, weights)}
    assert [weight_of[a, b] for a, b in zip(u[pos], i[pos])] == list(w[pos])
    # each positive's 3 negatives carry its weight: user 0 has weights 1 and 2
    assert sorted(w[(u == 0) & ~pos]) == [1, 1, 1, 2, 2, 2]
    assert w.sum() == pytest.approx(4 * weights.sum())
    for bad in (weights[:-1], -weights, weights * np.nan):
        with pytest.raises(ValueError, match="weights"):
            pointwise_epoch(sampler, users, items, 3, np.random.default_rng(0), bad)


def _planted(n_users: int = 40, n_items: int = 30, seed: int = 0):
    """Two user groups, each interacting with (most of) its own half of the catalogue."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(n_users):
        half = np.arange(n_items // 2) + (n_items // 2 if u % 2 else 0)
        chosen = rng.choice(half, size=10, replace=False)
        users += [u] * 10
        items += chosen.tolist()
    users, items = np.array(users), np.array(items)
    test_rows = np.arange(9, len(users), 10)  # one held-out item per user
    train = np.setdiff1d(np.arange(len(users)), test_rows)
    cand = sample_candidates(users, items, n_items, users[test_rows], items[test_rows], n_neg=9, seed=0)
    return users[train], items[train], users[test_rows], cand, n_items


def test_train_pointwise_learns_planted_groups():
    keras.utils.set_random_seed(0)
    tu, ti, vu, cand, n_items = _planted()
    model = build_neumf(40, n_items, factors=4, layers=(8, 4))
    before = evaluate_sampled(pair_scorer(model), vu, cand)["HR@10"]
    hist = train_pointwise(model, tu, ti, n_items, TrainConfig(epochs=12, batch_size=64, learning_rate=0.02),
                           n_neg=2, validation=ranking_validation(vu, candidates=cand))
    assert isinstance(hist, History) and hist.epochs == 12 and len(hist.val["HR@10"]) == 13
    assert hist.val["HR@10"][0] == pytest.approx(before)  # epoch 0: the untrained model
    assert hist.loss[-1] < 0.7 * hist.loss[0], hist.loss
    assert np.all(np.diff(hist.seconds) > 0) and len(hist.cpu_seconds) == 12 and hist.cpu_seconds[-1] > 0
    # 9 negatives, about half of them from the user's own group: a model that learned the
    # groups ranks the held-out item in the top 5 far more often than chance (~0.5)
    after = evaluate_sampled(pair_scorer(model), vu, cand, ks=(5,))
    assert after["HR@5"] > 0.75, (before, after)
    # the restored weights are those of the best validation epoch
    assert hist.best("NDCG@10") == max(hist.val["NDCG@10"]) and hist.best_epoch >= 1
    np.testing.assert_allclose(evaluate_sampled(pair_scorer(model), vu, cand)["NDCG@10"],
                               hist.best("NDCG@10"), rtol=1e-6)


def test_train_pointwise_early_stopping_and_options():
    keras.utils.set_random_seed(0)
    tu, ti, vu, cand, n_items = _planted()
    model = build_gmf(40, n_items, factors=4)
    calls = []
    cfg = TrainConfig(epochs=30, batch_size=128, learning_rate=0.5, weight_decay=0.01, decay_to=0.0)
    hist = train_pointwise(model, tu, ti, n_items, cfg, n_neg=1,
                           validation=ranking_validation(vu, candidates=cand, patience=2),
                           on_epoch_end=lambda e, h: calls.append(e))
    assert calls == list(range(1, hist.epochs + 1))
    assert hist.stopped_early and hist.epochs == hist.best_epoch + 2 < 30
    assert set(hist.val) == {"HR@10", "NDCG@10", "MRR"}


def test_train_pointwise_without_validation_and_errors():
    tu, ti, vu, cand, n_items = _planted()
    model = build_gmf(40, n_items, factors=2)
    hist = train_pointwise(model, tu, ti, n_items, TrainConfig(epochs=2, batch_size=256))
    assert hist.val == {} and hist.best_epoch == 2 and hist.train_seconds > 0
    with pytest.raises(ValueError, match="targets and exclude"):
        ranking_validation(vu, targets=cand[:, 0])
    with pytest.raises(ValueError, match="candidates"):
        ranking_validation(vu)
    with pytest.raises(ValueError, match="one candidate row"):
        ranking_validation(vu[:-1], candidates=cand)
    with pytest.raises(ValueError, match="equal length"):
        train_pointwise(model, tu, ti[:-1], n_items)
    with pytest.raises(ValueError, match="n_neg"):
        train_pointwise(model, tu, ti, n_items, n_neg=0)
    with pytest.raises(ValueError, match="decay_to"):
        TrainConfig(decay_to=2.0)


def test_train_pointwise_weights_are_a_weighted_mean():
    """Constant weights change nothing (the loss is a weighted *mean*); unequal ones do."""
    tu, ti, _, _, n_items = _planted()

    def run(weights):
        keras.utils.set_random_seed(5)
        model = build_gmf(40, n_items, factors=3)
        hist = train_pointwise(model, tu, ti, n_items, TrainConfig(epochs=3, batch_size=64, learning_rate=0.05, seed=5),
                               weights=weights, n_neg=1)
        return hist.loss, model.get_weights()

    loss_none, w_none = run(None)
    loss_const, w_const = run(np.full(len(tu), 3.0))
    np.testing.assert_allclose(loss_const, loss_none, rtol=1e-5)
    for a, b in zip(w_const, w_none):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    recent = np.where(np.arange(len(tu)) % 9 >= 6, 5.0, 1.0)
    _, w_recent = run(recent)
    assert not all(np.allclose(a, b) for a, b in zip(w_recent, w_none))
    with pytest.raises(ValueError, match="weights"):
        train_pointwise(build_gmf(40, n_items, 2), tu, ti, n_items, weights=np.zeros(len(tu)))
    with pytest.raises(ValueError, match="weights"):
        train_pointwise(build_gmf(40, n_items, 2), tu, ti, n_items, weights=np.ones(3))


def test_scorers_agree_with_predict():
    m = build_neumf(N_USERS, N_ITEMS, factors=3, layers=(8, 4))
    _randomise(m)
    users = np.array([0, 3, 6])
    full = user_scorer(m, N_ITEMS, batch_size=5)(users)
    assert full.shape == (3, N_ITEMS)
    u = np.repeat(users, N_ITEMS)
    i = np.tile(np.arange(N_ITEMS), 3)
    np.testing.assert_allclose(full.ravel(), m.predict([u, i], verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pair_scorer(m, batch_size=4)(u, i), full.ravel(), rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        pair_scorer(m)(u, i[:-1])


def test_decay_epochs_replays_the_schedule():
    """Refitting for k epochs with decay_epochs=E repeats the first k epochs of an E-epoch run."""
    tu, ti, _, _, n_items = _planted()
    snapshots = {}

    def run(epochs, decay_epochs=None):
        keras.utils.set_random_seed(3)
        model = build_gmf(40, n_items, factors=3)
        cfg = TrainConfig(epochs=epochs, decay_epochs=decay_epochs, batch_size=64, learning_rate=0.05,
                          decay_to=0.0, seed=3)
        train_pointwise(model, tu, ti, n_items, cfg, n_neg=1,
                        on_epoch_end=lambda e, h: snapshots.setdefault((epochs, e), model.get_weights()))
        return model.get_weights()

    run(4)
    short = run(2, decay_epochs=4)
    for a, b in zip(short, snapshots[(4, 2)]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    different = run(2)  # a 2-epoch schedule decays faster: different weights
    assert not all(np.allclose(a, b) for a, b in zip(different, short))
    with pytest.raises(ValueError, match="decay_epochs"):
        run(3, decay_epochs=2)


def test_weighted_bce_is_a_weighted_mean_of_per_pair_losses():
    from helpers.ncf import weighted_bce

    y = np.array([1, 0, 0, 1], dtype=np.float32)
    s = np.array([2.0, -1.0, 0.5, -3.0], dtype=np.float32)
    per_pair = np.logaddexp(0, s) - y * s
    np.testing.assert_allclose(float(weighted_bce(y, s, np.ones(4, np.float32))), per_pair.mean(), rtol=1e-6)
    w = np.array([1, 2, 3, 4], dtype=np.float32)
    np.testing.assert_allclose(float(weighted_bce(y, s, w)), (w * per_pair).sum() / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(float(weighted_bce(y, s, 10 * w)), float(weighted_bce(y, s, w)), rtol=1e-6)


def test_full_ranking_validation_matches_evaluate_full():
    from helpers.evaluation import evaluate_full

    tu, ti, vu, cand, n_items = _planted()
    X = interaction_matrix(tu, ti, 40, n_items)
    model = build_gmf(40, n_items, factors=3)
    _randomise(model, 4)
    report = ranking_validation(vu, candidates=cand, targets=cand[:, 0], exclude=X).evaluate(model)
    full = evaluate_full(user_scorer(model, n_items), vu, cand[:, 0], X)
    assert report["full NDCG@10"] == pytest.approx(full["NDCG@10"])
    assert report["NDCG@10"] == pytest.approx(evaluate_sampled(pair_scorer(model), vu, cand)["NDCG@10"])


def test_epoch_zero_keeps_a_model_that_training_only_hurts():
    """A learning rate far too high wrecks a good model: the best epoch is 0 and the
    starting weights come back (the rule "keep the fused model if fine-tuning never beats
    it" lives in the loop)."""
    keras.utils.set_random_seed(0)
    tu, ti, vu, cand, n_items = _planted()
    model = build_gmf(40, n_items, factors=4)
    val = ranking_validation(vu, candidates=cand)
    train_pointwise(model, tu, ti, n_items, TrainConfig(epochs=10, batch_size=64, learning_rate=0.05), validation=val)
    good = [w.copy() for w in model.get_weights()]
    score = val.evaluate(model)["NDCG@10"]
    hist = train_pointwise(model, tu, ti, n_items, TrainConfig(epochs=2, batch_size=64, learning_rate=3.0),
                           validation=val)
    assert hist.val["NDCG@10"][0] == pytest.approx(score)
    assert hist.best_epoch == 0 and max(hist.val["NDCG@10"][1:]) < score
    for a, b in zip(model.get_weights(), good):
        np.testing.assert_array_equal(a, b)


def test_pretrained_neumf_validation_run_and_refit():
    tu, ti, vu, cand, n_items = _planted()
    cfg = TrainConfig(epochs=3, batch_size=64, learning_rate=0.02, decay_to=0.0)
    settings = NeuMFSettings(factors=3, layers=(8, 4), gmf=cfg, mlp=cfg.replace(epochs=4),
                             finetune=cfg.replace(epochs=2, learning_rate=0.001), n_neg=2)
    run = pretrained_neumf(40, n_items, tu, ti, settings, validation=ranking_validation(vu, candidates=cand))
    assert set(run.histories) == {"GMF", "MLP", "fine-tune"}
    assert run.epochs == tuple(h.best_epoch for h in run.histories.values())
    assert 0 <= run.epochs[2] <= 2 and len(run.histories["fine-tune"].val["NDCG@10"]) == 3
    fused_then_tuned = run.histories["fine-tune"].val["NDCG@10"]
    assert run.histories["fine-tune"].best("NDCG@10") == max(fused_then_tuned)
    refit = pretrained_neumf(40, n_items, tu, ti, settings, epochs=(2, 3, 0))
    assert refit.epochs == (2, 3, 0) and refit.histories["fine-tune"].epochs == 0
    np.testing.assert_allclose(  # no fine-tuning: NeuMF is the 0.5-blend of its two parents
        pair_scorer(refit.neumf)(vu, cand[:, 0]),
        0.5 * pair_scorer(refit.gmf)(vu, cand[:, 0]) + 0.5 * pair_scorer(refit.mlp)(vu, cand[:, 0]),
        rtol=1e-4, atol=1e-5)
    again = pretrained_neumf(40, n_items, tu, ti, settings, epochs=(2, 3, 0))
    for a, b in zip(again.neumf.get_weights(), refit.neumf.get_weights()):
        np.testing.assert_array_equal(a, b)  # seeded: reproducible
    with pytest.raises(ValueError, match="not both"):
        pretrained_neumf(40, n_items, tu, ti, settings, epochs=(1, 1, 0),
                         validation=ranking_validation(vu, candidates=cand))
    with pytest.raises(ValueError, match="epochs"):
        pretrained_neumf(40, n_items, tu, ti, settings, epochs=(0, 1, 0))


def test_settings_from_search_choices():
    from helpers.ncf import parse_layers

    gmf = {"factors": 64.0, "n_neg": 4, "learning_rate": 0.02, "weight_decay": 0.3, "batch_size": 8192,
           "epochs": 10, "decay_to": 0.0, "epoch": 9, "val NDCG@10 (full)": 0.08}
    mlp = {"layers": "64-32-16-8", "learning_rate": 0.01, "batch_size": 2048, "epochs": 12}
    ft = {"learning_rate": 0.001, "alpha": 0.75, "epochs": 4, "batch_size": 4096}
    s = NeuMFSettings.from_choices(gmf, mlp, ft)
    assert (s.factors, s.layers, s.alpha, s.n_neg) == (64, (64, 32, 16, 8), 0.75, 4)
    assert s.gmf == TrainConfig(epochs=10, batch_size=8192, learning_rate=0.02, weight_decay=0.3, decay_to=0.0)
    assert s.mlp.batch_size == 2048 and s.finetune.learning_rate == 0.001
    assert parse_layers((16, 8)) == (16, 8)
    with pytest.raises(ValueError, match="64-32-16-8"):
        parse_layers("64,32")
    with pytest.raises(ValueError, match="even"):
        parse_layers("7-4")
