"""helpers.tuning: validated settings written once, read by chapters."""
import numpy as np
import pandas as pd
import pytest

from helpers import tuning


def test_round_trip(tmp_path):
    table = pd.DataFrame({"k": [10, 50, 100], "shrink": [0.0, 10.0, 10.0],
                          "val_ndcg10": [0.30, np.float64(0.35), 0.33]})
    tuning.write_search("knn", table, {"k": np.int64(50), "shrink": 10.0}, "val_ndcg10",
                        notes={"seeds": 3}, results_dir=tmp_path)
    assert tuning.read_choice("knn", tmp_path) == {"k": 50, "shrink": 10.0}
    rec = tuning.read_search("knn", tmp_path)
    assert rec["value"] == pytest.approx(0.35) and rec["goal"] == "max" and rec["notes"] == {"seeds": 3}
    pd.testing.assert_frame_equal(tuning.read_table("knn", tmp_path), table)


@pytest.mark.parametrize("choice, metric, goal, match", [
    ({"k": 7}, "m", "max", "not a row"),
    ({"z": 1}, "m", "max", "not columns"),
    ({}, "m", "max", "empty"),
    ({"k": 1}, "nope", "max", "no column"),
    ({"k": 1}, "m", "best", "goal"),
])
def test_bad_input_writes_nothing(tmp_path, choice, metric, goal, match):
    table = pd.DataFrame({"k": [1, 2], "m": [0.1, 0.2]})
    with pytest.raises(ValueError, match=match):
        tuning.write_search("s", table, choice, metric, goal, results_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_and_bad_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the search script"):
        tuning.read_choice("absent", tmp_path)
    with pytest.raises(ValueError, match="search name"):
        tuning.read_choice("../etc", tmp_path)
