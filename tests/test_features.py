import numpy as np
import pandas as pd
import pytest

from helpers.features import (FeatureEncoder, build_embedding_mlp, id_design, like_data, like_labels,
                               pair_features, top_n_table, top_n_unrated, train_classifier)


@pytest.fixture()
def tables():
    users = pd.DataFrame({"age": np.array([20, 30, 40, 50], dtype=np.int16),
                          "gender": pd.Categorical(["F", "M", "M", "F"], categories=["F", "M"]),
                          "occupation": pd.Categorical(["student", "doctor", "student", "none"],
                                                       categories=["doctor", "none", "student", "writer"]),
                          "zip_code": ["1", "2", "3", "4"]},
                         index=pd.Index([1, 2, 3, 4], name="user_id"))
    items = pd.DataFrame({"title": ["a", "b", "c"],
                          "release_date": pd.to_datetime(["1990-01-01", None, "1998-06-01"]),
                          "Action": np.array([1, 0, 1], dtype=np.uint8),
                          "Drama": np.array([0, 1, 1], dtype=np.uint8)},
                         index=pd.Index([10, 11, 12], name="item_id"))
    return users, items


def test_scaling_is_fitted_on_training_rows_only(tables):
    users, items = tables
    enc = FeatureEncoder().fit(users, items, train_user_ids=[1, 2], train_item_ids=[10, 12])
    assert enc.age_mean == 25.0 and enc.age_std == 5.0  # population std of 20, 30
    assert enc.year_mean == 1994.0 and enc.year_std == 4.0
    u = enc.user_matrix(users, [3, 1])
    assert u[0, 0] == pytest.approx((40 - 25) / 5) and u[1, 0] == pytest.approx(-1.0)


def test_user_matrix_layout_and_one_hot(tables):
    users, items = tables
    enc = FeatureEncoder().fit(users, items)
    u = enc.user_matrix(users, [2, 4])
    assert u.dtype == np.float32 and u.shape == (2, len(enc.user_names))
    names = enc.user_names
    assert names[:3] == ["age_z", "gender=F", "gender=M"]
    row2 = dict(zip(names, u[0]))
    assert row2["gender=M"] == 1 and row2["gender=F"] == 0
    assert row2["occupation=doctor"] == 1 and row2["occupation=writer"] == 0  # unused category kept
    assert u[:, 1:].sum(axis=1).tolist() == [2.0, 2.0]  # one gender + one occupation per user


def test_item_matrix_handles_missing_year(tables):
    users, items = tables
    enc = FeatureEncoder().fit(users, items)
    i = enc.item_matrix(items, [11, 12])
    assert enc.item_names == ["year_z", "year_missing", "genre=Action", "genre=Drama"]
    np.testing.assert_array_equal(i[0], [0.0, 1.0, 0.0, 1.0])  # missing year -> z = 0 and a flag
    assert i[1, 1] == 0 and i[1, 0] > 0 and i[1, 2:].tolist() == [1.0, 1.0]


def test_rows_follow_the_requested_id_order(tables):
    users, items = tables
    enc = FeatureEncoder().fit(users, items)
    np.testing.assert_array_equal(enc.user_matrix(users, [4, 1]), enc.user_matrix(users)[[3, 0]])


def test_errors_are_explicit(tables):
    users, items = tables
    with pytest.raises(RuntimeError, match="fit"):
        FeatureEncoder().user_matrix(users)
    with pytest.raises(KeyError, match="missing"):
        FeatureEncoder().fit(users.drop(columns="age"), items)
    enc = FeatureEncoder().fit(users, items)
    with pytest.raises(KeyError, match="not in the user table"):
        enc.user_matrix(users, [1, 99])


def test_pair_features_concatenates_rows():
    U = np.arange(6, dtype=np.float32).reshape(3, 2)
    I = np.arange(4, dtype=np.float32).reshape(2, 2) + 100
    x = pair_features(U, I, np.array([2, 0]), np.array([1, 1]))
    np.testing.assert_array_equal(x, [[4, 5, 102, 103], [0, 1, 102, 103]])
    with pytest.raises(IndexError):
        pair_features(U, I, np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="equal length"):
        pair_features(U, I, np.array([0, 1]), np.array([0]))


def test_like_labels_threshold():
    np.testing.assert_array_equal(like_labels(np.array([1, 3, 3.5, 4, 5])), [0, 0, 0, 1, 1])
    assert like_labels(pd.Series([4.0])).dtype == np.float32
    with pytest.raises(ValueError):
        like_labels(np.array([np.nan]))


def test_on_movielens(real_data_dir):
    from helpers.data import load_movielens

    ml = load_movielens("ml-100k", data_dir=real_data_dir)
    enc = FeatureEncoder().fit(ml.users, ml.items)
    U, I = enc.user_matrix(ml.users), enc.item_matrix(ml.items)
    assert U.shape == (943, 1 + 2 + 21) and I.shape == (1682, 2 + 19)
    assert abs(U[:, 0].mean()) < 1e-5 and U[:, 0].std() == pytest.approx(1.0, rel=1e-4)
    assert I[:, 1].sum() == 1  # exactly one movie without a release date
    assert np.isfinite(U).all() and np.isfinite(I).all()


def test_id_design_appends_one_hot_users_and_items():
    x = np.array([[0.5, -1.0], [2.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    z = id_design(x, np.array([1, 0, 1]), np.array([2, 2, 0]), n_users=2, n_items=3)
    assert z.shape == (3, 2 + 2 + 3) and z.format == "csr"
    np.testing.assert_array_equal(z.toarray(), [[0.5, -1, 0, 1, 0, 0, 1],
                                                [2, 0, 1, 0, 0, 0, 1],
                                                [1, 1, 0, 1, 1, 0, 0]])
    with pytest.raises(ValueError, match="users indices"):
        id_design(x, np.array([2, 0, 1]), np.array([0, 0, 0]), n_users=2, n_items=3)
    with pytest.raises(ValueError, match="one index per feature row"):
        id_design(x, np.array([0, 1]), np.array([0, 0]), n_users=2, n_items=3)


def test_top_n_unrated_skips_rated_and_rare_items_and_breaks_ties_low():
    scores = np.array([0.9, 0.5, 0.8, 0.8, 0.1, 0.95])
    items, s = top_n_unrated(scores, rated=[5], n=3)
    np.testing.assert_array_equal(items, [0, 2, 3])            # 5 is rated; 2 and 3 tie -> lower first
    np.testing.assert_array_equal(s, [0.9, 0.8, 0.8])
    support = np.array([30, 30, 5, 30, 30, 30])
    items, _ = top_n_unrated(scores, rated=[5], n=3, support=support, min_support=20)
    np.testing.assert_array_equal(items, [0, 3, 1])            # item 2 has too few ratings
    items, _ = top_n_unrated(scores, rated=[0, 1, 2, 3], n=5)
    np.testing.assert_array_equal(items, [5, 4])               # fewer items qualify than n
    with pytest.raises(ValueError, match="rated item indices"):
        top_n_unrated(scores, rated=[6])
    with pytest.raises(ValueError, match="support"):
        top_n_unrated(scores, rated=[], support=np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        top_n_unrated(np.array([np.nan, 1.0]), rated=[])


def test_top_n_table_marks_unrated_items():
    t = top_n_table(np.array([2, 0]), np.array([4.5, 4.1]), np.array(["a", "b", "c"]), np.array([10, 20, 30]),
                    {0: 5.0}, score_name="predicted", held_out_name="test rating")
    assert list(t.columns) == ["title", "predicted", "training ratings", "test rating"]
    assert t["title"].tolist() == ["c", "a"] and t["test rating"].tolist() == ["–", "5"]
    assert t.index.tolist() == [1, 2]
    with pytest.raises(ValueError, match="item indices"):
        top_n_table(np.array([3]), np.array([1.0]), np.array(["a"]), np.array([1]), {})


def test_embedding_mlp_trains_with_early_stopping():
    import helpers

    helpers.seed_everything(0)
    rng = np.random.default_rng(0)
    n, n_users, n_items = 600, 20, 15
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    feats = rng.normal(size=(n, 3)).astype(np.float32)
    y = ((users % 2 == 0) ^ (items % 3 == 0)).astype(np.float32)  # an id interaction
    x = {"user": users.astype(np.int32), "item": items.astype(np.int32), "features": feats}
    model = build_embedding_mlp(n_users, n_items, 3, dim=4, hidden=(8,), dropout=0.1)
    assert {"user_embedding", "item_embedding", "dropout_0", "p_like"} <= {l.name for l in model.layers}
    hist = train_classifier(model, x, y, x, y, epochs=40, patience=3, batch_size=64, learning_rate=0.02)
    assert hist["val_loss"][hist["best_epoch"] - 1] == min(hist["val_loss"]) < 0.6 and hist["seconds"] > 0
    p = model.predict(x, verbose=0)[:, 0]
    assert ((p > 0.5) == (y == 1)).mean() > 0.8
    with pytest.raises(ValueError, match="dropout"):
        build_embedding_mlp(n_users, n_items, 3, dropout=1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        train_classifier(model, x, y, x, y, epochs=1, learning_rate=0.0)


def test_like_data_on_movielens(real_data_dir):
    from helpers.data import load_movielens

    ml = load_movielens("ml-100k", data_dir=real_data_dir)
    d = like_data(ml.users, ml.items, ml.ratings)
    assert len(d.train) + len(d.val) + len(d.test) == len(ml.ratings)
    assert d.n_users == 943 and d.n_items == 1682 and d.n_features == d.X["train"].shape[1]
    for earlier, later in ((d.train, d.val), (d.val, d.test)):   # per user, never backwards in time
        last = earlier.groupby("user")["timestamp"].max()
        first = later.groupby("user")["timestamp"].min()
        assert (first >= last.reindex(first.index)).all()
    np.testing.assert_array_equal(d.y["test"], (d.test["rating"].to_numpy() >= 4))
    assert d.design("val").shape == (len(d.val), d.n_features + 943 + 1682)
    assert d.inputs("train")["user"].dtype == np.int32
    with pytest.raises(ValueError, match="part"):
        d.part("validation")
