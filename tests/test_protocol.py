"""The canonical leave-last-out protocol (helpers.protocol) on the real MovieLens 100K."""
import numpy as np
import pytest

from helpers.evaluation import sample_candidates
from helpers.protocol import leave_last_out_protocol
from helpers.sampling import NegativeSampler


@pytest.fixture(scope="module")
def proto(real_data_dir):
    return leave_last_out_protocol("ml-100k", data_dir=real_data_dir)


def test_split_shapes_and_order(proto):
    p = proto
    assert p.n_users == 943 and p.n_items == 1682
    assert len(p.val) == len(p.test) == p.n_users
    assert len(p.train) + len(p.val) + len(p.test) == len(p.df) == 100_000
    assert len(p.trainval) == len(p.train) + len(p.val)
    assert (np.diff(p.test_users) > 0).all() and (np.diff(p.val_users) > 0).all()
    # validation is not earlier than any training row of its user; test not earlier than validation
    last_train = p.train.groupby("user")["timestamp"].max().to_numpy()
    assert (p.val["timestamp"].to_numpy() >= last_train).all()
    assert (p.test["timestamp"].to_numpy() >= p.val["timestamp"].to_numpy()).all()
    assert p.X_train.sum() == len(p.train) and p.X_trainval.sum() == len(p.trainval)


def test_candidates_are_distinct_unseen_and_canonical(proto, real_data_dir):
    p = proto
    for users, items, cand in [(p.test_users, p.test_items, p.test_candidates),
                               (p.val_users, p.val_items, p.val_candidates)]:
        assert cand.shape == (p.n_users, 100)
        assert (cand[:, 0] == items).all()
        assert all(len(set(row)) == 100 for row in cand)
        seen = NegativeSampler(*p.arrays("all"), p.n_items)
        assert not seen.is_positive(np.repeat(users, 99), cand[:, 1:].ravel()).any()
    # the same call as the chapters used to make by hand (users sorted, seed 0)
    all_u, all_i = p.arrays("all")
    again = sample_candidates(all_u, all_i, p.n_items, p.test_users, p.test_items, 99, seed=0)
    np.testing.assert_array_equal(again, p.test_candidates)


def test_cached_and_read_only(proto, real_data_dir):
    assert leave_last_out_protocol("ml-100k", data_dir=real_data_dir) is proto
    with pytest.raises(ValueError):
        proto.test_candidates[0, 0] = 1
    with pytest.raises(ValueError, match="part must be one of"):
        proto.arrays("validation")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "99"])
def test_bad_n_neg(bad):
    with pytest.raises(ValueError, match="n_neg must be a positive integer"):
        leave_last_out_protocol(n_neg=bad)
