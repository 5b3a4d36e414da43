"""Worker process of chapter 18: ``python -m helpers._dist_worker MODE OUT_DIR [EPOCHS]``.

MODE ``multiworker`` reads ``TF_CONFIG`` (set by :func:`helpers.distributed.run_workers`) and
trains under ``MultiWorkerMirroredStrategy``; ``mirrored`` splits the CPU into two logical
devices and trains under ``MirroredStrategy``. The chief (worker 0) writes ``MODE.npz`` (the
trained embeddings) and ``MODE.json`` (per-step times and the all-reduce time) to OUT_DIR.
"""

from __future__ import annotations

import json
import os
import sys
import time

import helpers  # noqa: F401  (quiet TensorFlow start-up; must come first)


def main(mode: str, out_dir: str, epochs: int = 2) -> None:
    import tensorflow as tf

    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                                  cross_device_ops=tf.distribute.ReductionToOneDevice())
        chief = True
    elif mode == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        chief = json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0
    else:
        raise ValueError(f"mode must be 'multiworker' or 'mirrored', got {mode!r}")

    import numpy as np

    from helpers.distributed import train_dot_model, training_examples
    from helpers.protocol import leave_last_out_protocol

    p = leave_last_out_protocol()
    u, i, y = training_examples(*p.arrays("trainval"), p.n_items, seed=0)
    t0 = time.perf_counter()
    model, steps = train_dot_model(strategy, u, i, y, p.n_users, p.n_items, epochs=epochs)
    train_s = time.perf_counter() - t0

    variables = model.trainable_variables

    @tf.function
    def all_reduce():
        def fn():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce("sum", [tf.ones_like(v) for v in variables])
        return strategy.run(fn)

    all_reduce()  # trace and warm up
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        all_reduce()
    reduce_s = (time.perf_counter() - t0) / reps
    if chief:
        w = {v.path.split("/")[0]: np.asarray(v.numpy()) for v in variables}
        np.savez(os.path.join(out_dir, f"{mode}.npz"), **w)
        with open(os.path.join(out_dir, f"{mode}.json"), "w") as f:
            json.dump({"step_s": steps, "all_reduce_s": reduce_s, "train_s": train_s,
                       "replicas": int(strategy.num_replicas_in_sync),
                       "gradient_floats": int(sum(int(np.prod(v.shape)) for v in variables))}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
