r"""Distributed training on one machine (chapter 18): worker processes on 127.0.0.1 with
``TF_CONFIG`` for ``tf.distribute.MultiWorkerMirroredStrategy``, bounded in time and
always stopped, and the small dot-product model every run trains.

Synchronous data parallelism: each of :math:`W` replicas computes the gradient on its
share of the global batch :math:`B`, the gradients are summed by an all-reduce and every
replica applies the same update, so

.. math:: g = \frac{1}{B}\sum_{w=1}^{W}\sum_{j\in \mathcal B_w}\nabla \ell_j ,

which is the single-process gradient of the same batch. Per step, time = compute on
:math:`B/W` examples + all-reduce of the gradients (a ring all-reduce moves
:math:`2\frac{W-1}{W}` times the gradient's bytes per worker).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any, Sequence

import numpy as np

__all__ = ["free_ports", "tf_config", "run_workers", "training_examples", "build_dot_model", "train_dot_model"]


def free_ports(n: int = 2) -> list[int]:
    """``n`` distinct TCP ports on 127.0.0.1 that are free right now (bound then released);
    raises ``OSError`` when ports cannot be bound."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(ports: Sequence[int], index: int) -> str:
    """The ``TF_CONFIG`` JSON of worker ``index`` in a cluster of workers on 127.0.0.1."""
    if not 0 <= index < len(ports):
        raise ValueError(f"index must be in [0, {len(ports)}), got {index}")
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": int(index)}})


def run_workers(args: Sequence[str], n_workers: int = 2, timeout: float = 60.0, log_dir: str = ".",
                env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start ``n_workers`` copies of ``python args...`` with their ``TF_CONFIG``, wait at most
    ``timeout`` seconds in total, and kill whatever is still running in a ``finally`` block.

    Each worker's stdout and stderr go to ``log_dir/worker{i}.log`` (framework noise stays out
    of the notebook). Returns ``{"returncodes", "seconds", "timed_out", "logs"}``; a worker
    killed at the deadline has a negative return code (the signal, -9 on POSIX).
    """
    if n_workers < 1 or timeout <= 0:
        raise ValueError(f"need n_workers >= 1 and timeout > 0, got {n_workers} and {timeout}")
    ports = free_ports(n_workers)
    os.makedirs(log_dir, exist_ok=True)
    procs: list[subprocess.Popen] = []
    logs, files = [], []
    t0 = time.perf_counter()
    timed_out = False
    try:
        for i in range(n_workers):
            e = dict(os.environ if env is None else env)
            e["TF_CONFIG"] = tf_config(ports, i)
            e["TF_CPP_MIN_LOG_LEVEL"] = "2"
            path = os.path.join(log_dir, f"worker{i}.log")
            f = open(path, "w")
            files.append(f)
            logs.append(path)
            procs.append(subprocess.Popen([sys.executable, *args], stdout=f, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=e))
        deadline = t0 + timeout
        for p in procs:
            try:
                p.wait(timeout=max(deadline - time.perf_counter(), 0.01))
            except subprocess.TimeoutExpired:
                timed_out = True
                break
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in files:
            f.close()
    return {"returncodes": [p.returncode for p in procs], "seconds": time.perf_counter() - t0, "timed_out": timed_out, "logs": logs}


def training_examples(users: np.ndarray, items: np.ndarray, n_items: int, n_neg: int = 2,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise examples fixed once: every positive pair with label 1 and ``n_neg`` uniformly
    sampled items per positive with label 0 (a sampled item may be a positive; rare and
    ignored), shuffled with ``seed``. The same arrays feed every run, so runs differ only in
    how they are distributed."""
    users = np.asarray(users, dtype=np.int32)
    items = np.asarray(items, dtype=np.int32)
    if users.shape != items.shape or users.ndim != 1 or n_neg < 0:
        raise ValueError(f"users and items must be 1-D of equal length and n_neg >= 0; got {users.shape}, "
                         f"{items.shape}, {n_neg}")
    rng = np.random.default_rng(seed)
    u = np.concatenate([users] + [users] * n_neg)
    i = np.concatenate([items, rng.integers(0, n_items, len(users) * n_neg).astype(np.int32)])
    y = np.concatenate([np.ones(len(users)), np.zeros(len(users) * n_neg)]).astype(np.float32)
    order = rng.permutation(len(u))
    return u[order], i[order], y[order]


def build_dot_model(n_users: int, n_items: int, dim: int = 32, seed: int = 0) -> Any:
    r"""The small model every run trains: :math:`s_{ui} = p_u^\top q_i + b_i`, inputs
    ``[user, item]`` (int32), output the logit."""
    import keras

    init = keras.initializers.RandomNormal(stddev=0.05, seed=seed)
    user = keras.Input((), dtype="int32", name="user")
    item = keras.Input((), dtype="int32", name="item")
    p = keras.layers.Embedding(n_users, dim, embeddings_initializer=init, name="user_embedding")(user)
    q = keras.layers.Embedding(n_items, dim, embeddings_initializer=init, name="item_embedding")(item)
    b = keras.layers.Embedding(n_items, 1, embeddings_initializer="zeros", name="item_bias")(item)
    s = keras.layers.Add()([keras.layers.Dot(axes=1)([p, q]), keras.layers.Reshape((1,))(b)])
    return keras.Model([user, item], keras.layers.Reshape(())(s), name="dot")


def train_dot_model(strategy: Any, u: np.ndarray, i: np.ndarray, y: np.ndarray, n_users: int, n_items: int, *,
                    dim: int = 32, epochs: int = 2, global_batch: int = 4096, learning_rate: float = 0.01,
                    seed: int = 0) -> tuple[Any, list[float]]:
    """Build and train :func:`build_dot_model` under ``strategy`` (Adam, binary cross-entropy on
    logits, batches of ``global_batch`` split across the replicas, data sharded across workers)
    in a custom loop (the Keras optimiser all-reduces the replicas' gradients). Returns the model and the wall time of every step in seconds."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_dot_model(n_users, n_items, dim, seed)
        opt = keras.optimizers.Adam(learning_rate)
        opt.build(model.trainable_variables)
    ds = tf.data.Dataset.from_tensor_slices((u.astype(np.int32), i.astype(np.int32), y.astype(np.float32)))
    ds = ds.batch(global_batch, drop_remainder=True)
    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dist = strategy.experimental_distribute_dataset(ds.with_options(opts))
    variables = model.trainable_variables

    def replica_step(bu: Any, bi: Any, by: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = model([bu, bi], training=True)
            loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(by, logits)) / global_batch
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip([tf.convert_to_tensor(g) for g in grads], variables))  # all-reduces the sum
        return loss

    @tf.function
    def step(batch: Any) -> Any:
        return strategy.reduce("SUM", strategy.run(replica_step, args=batch), axis=None)

    times: list[float] = []
    for _ in range(epochs):
        for batch in dist:
            t = time.perf_counter()
            step(batch).numpy()
            times.append(time.perf_counter() - t)
    return model, times
