import numpy as np
import pandas as pd
import pytest

from helpers.features import FeatureEncoder, like_labels, pair_features


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
