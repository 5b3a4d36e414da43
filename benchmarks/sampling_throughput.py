"""Negative sampling throughput: helpers.sampling vs a per-sample Python loop (run by hand).

    .venv/bin/python benchmarks/sampling_throughput.py

Both draw one uniform negative per positive of MovieLens 100K (rejecting the user's
positives) in the same run; the script prints samples per second and the ratio.
"""
from __future__ import annotations

import random
import time

import numpy as np

import helpers  # noqa: F401  (quiet TensorFlow if installed)
from helpers.data import load_movielens
from helpers.encoding import encode_ids
from helpers.sampling import NegativeSampler


def python_loop(users: np.ndarray, positives: dict[int, set[int]], n_items: int, seed: int) -> list[int]:
    rnd = random.Random(seed)
    out = []
    for u in users.tolist():
        j = rnd.randrange(n_items)
        while j in positives[u]:
            j = rnd.randrange(n_items)
        out.append(j)
    return out


def main(repeats: int = 20) -> None:
    df, ue, ie = encode_ids(load_movielens("ml-100k").ratings)
    users, items, n_items = df["user"].to_numpy(), df["item"].to_numpy(), len(ie)
    positives: dict[int, set[int]] = {}
    for u, i in zip(users.tolist(), items.tolist()):
        positives.setdefault(u, set()).add(i)
    big = np.tile(users, repeats)  # 2 million draws

    t = time.perf_counter()
    python_loop(users, positives, n_items, 0)
    loop_rate = len(users) / (time.perf_counter() - t)

    sampler = NegativeSampler(users, items, n_items)
    t = time.perf_counter()
    neg = sampler.sample(big, 1, rng=0)
    vec_rate = len(big) / (time.perf_counter() - t)
    assert not sampler.is_positive(big, neg[:, 0]).any()

    print(f"python loop     : {loop_rate / 1e6:6.2f} M samples/s ({len(users):,} draws)")
    print(f"helpers.sampling: {vec_rate / 1e6:6.2f} M samples/s ({len(big):,} draws)")
    print(f"speed-up        : {vec_rate / loop_rate:6.1f}x")


if __name__ == "__main__":
    main()
