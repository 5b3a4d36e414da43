"""Tests of helpers.distributed: ports, TF_CONFIG, bounded worker processes, the small model."""

import json

import numpy as np
import pytest

from helpers.distributed import build_dot_model, free_ports, run_workers, tf_config, training_examples


def _can_bind() -> bool:
    try:
        free_ports(2)
        return True
    except OSError:
        return False


needs_ports = pytest.mark.skipif(not _can_bind(), reason="cannot bind ports on 127.0.0.1")


@needs_ports
def test_free_ports_and_tf_config():
    ports = free_ports(2)
    assert len(set(ports)) == 2
    cfg = json.loads(tf_config(ports, 1))
    assert cfg["cluster"]["worker"] == [f"127.0.0.1:{p}" for p in ports] and cfg["task"] == {"type": "worker", "index": 1}
    with pytest.raises(ValueError, match="index must be"):
        tf_config(ports, 2)


@needs_ports
def test_run_workers_passes_tf_config(tmp_path):
    r = run_workers(["-c", "import os; print(os.environ['TF_CONFIG'])"], n_workers=2, timeout=30, log_dir=str(tmp_path))
    assert r["returncodes"] == [0, 0] and not r["timed_out"]
    idx = [json.loads(open(f).read())["task"]["index"] for f in r["logs"]]
    assert idx == [0, 1]


@needs_ports
def test_run_workers_kills_at_deadline(tmp_path):
    r = run_workers(["-c", "import time; time.sleep(60)"], n_workers=2, timeout=1.0, log_dir=str(tmp_path))
    assert r["timed_out"] and all(c is not None and c < 0 for c in r["returncodes"]) and r["seconds"] < 20


def test_training_examples():
    u, i, y = training_examples(np.array([0, 1, 2]), np.array([5, 6, 7]), 10, n_neg=2, seed=0)
    assert len(u) == len(i) == len(y) == 9 and y.sum() == 3
    pos = set(zip(u[y == 1].tolist(), i[y == 1].tolist()))
    assert pos == {(0, 5), (1, 6), (2, 7)}
    u2, i2, y2 = training_examples(np.array([0, 1, 2]), np.array([5, 6, 7]), 10, n_neg=2, seed=0)
    np.testing.assert_array_equal(i, i2)
    with pytest.raises(ValueError, match="equal length"):
        training_examples(np.array([0, 1]), np.array([5]), 10)


def test_dot_model_and_single_process_training():
    import tensorflow as tf

    from helpers.distributed import train_dot_model

    m = build_dot_model(4, 6, dim=3)
    assert m.predict([np.array([0, 1], np.int32), np.array([2, 3], np.int32)], verbose=0).shape == (2,)
    rng = np.random.default_rng(0)
    u, i, y = training_examples(rng.integers(0, 20, 400), rng.integers(0, 30, 400), 30, n_neg=1)
    model, steps = train_dot_model(tf.distribute.get_strategy(), u, i, y, 20, 30, dim=4, epochs=2, global_batch=100)
    assert len(steps) == 2 * (800 // 100) and all(t > 0 for t in steps)


WORKER = """
import helpers, json, os, sys
import numpy as np
import tensorflow as tf
from helpers.distributed import train_dot_model, training_examples
strategy = tf.distribute.MultiWorkerMirroredStrategy()
rng = np.random.default_rng(0)
u, i, y = training_examples(rng.integers(0, 20, 400), rng.integers(0, 30, 400), 30, n_neg=1)
model, steps = train_dot_model(strategy, u, i, y, 20, 30, dim=4, epochs=1, global_batch=100)
idx = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
np.save(os.path.join(sys.argv[1], f"w{idx}.npy"), model.get_layer("item_embedding").get_weights()[0])
"""


@needs_ports
def test_two_workers_train_the_same_model(tmp_path):
    r = run_workers(["-c", WORKER, str(tmp_path)], n_workers=2, timeout=90, log_dir=str(tmp_path))
    assert r["returncodes"] == [0, 0] and not r["timed_out"], open(r["logs"][0]).read()[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "w0.npy"), np.load(tmp_path / "w1.npy"))   # replicas in sync
