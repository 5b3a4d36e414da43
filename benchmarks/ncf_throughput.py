"""NeuMF training speed: the book's loop (helpers.ncf.train_pointwise) against a plain
``model.fit(batch_size=256)`` loop, on the same data, in one run. Run by hand, not in CI:

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/ncf_throughput.py [--target 0.67]

Both loops train the chapter's NeuMF (GMF with 64 factors, MLP tower 64 -> 32 -> 16 -> 8) from scratch on the same training positives,
with 4 fresh uniform negatives per positive each epoch drawn by the same vectorised sampler,
and are validated after every epoch on the same validation candidates (each user's
second-latest interaction among 99 sampled non-interacted items). Printed per loop:

* throughput -- training samples (positives + negatives) per second of training wall time
  (sampling, shuffling and gradient steps; validation excluded), per second of process CPU
  time (which other programs on a shared machine disturb less), and after the first epoch
  (which pays for tracing and compilation);
* time to target -- training seconds until validation HR@10 first reaches ``--target``;
* the best validation HR@10 / NDCG@10 reached, so that speed is compared at equal accuracy.

The fast loop runs twice: as in the chapter, and with the step compiled by XLA
(``jit_compile=True``: faster steps, several seconds of compilation, which time-to-target
includes). The plain loop is what most tutorials (and the NCF paper's code) do: ``batch_size=256``,
Adam at ``1e-3``, one ``model.fit(..., epochs=1)`` call per epoch on freshly sampled data. A
third point, ``model.fit`` with the fast loop's batch of 8192, separates what the larger batch
buys from what the compiled epoch loop buys.
Close other programs first: on a shared machine both timings are inflated, the ratios less.
"""
from __future__ import annotations

import argparse
import os
import time

import helpers  # noqa: F401  (quiet TensorFlow first)

import keras
import numpy as np
import tensorflow as tf

from helpers.evaluation import evaluate_sampled
from helpers.ncf import build_neumf, pair_scorer, pointwise_epoch, ranking_validation, train_pointwise
from helpers.protocol import leave_last_out_protocol
from helpers.sampling import NegativeSampler
from helpers.training import TrainConfig

FACTORS, LAYERS, N_NEG = 64, (64, 32, 16, 8), 4  # the chapter's NeuMF


def load() -> dict:
    """The book's leave-last-out protocol (helpers.protocol): training positives and the
    validation users with their sampled candidates."""
    p = leave_last_out_protocol()
    users, items = p.arrays("train")
    return dict(users=users, items=items, n_users=p.n_users, n_items=p.n_items,
                val_users=p.val_users, val_candidates=p.val_candidates, train=p.train)


def time_to_target(hr: list[float], seconds: list[float], target: float) -> float:
    hits = [s for h, s in zip(hr, seconds) if h >= target]
    return hits[0] if hits else float("nan")


def run_fast(d: dict, epochs: int, seed: int, jit_compile: bool = False) -> dict:
    helpers.seed_everything(seed)
    model = build_neumf(d["n_users"], d["n_items"], FACTORS, LAYERS)
    # the settings of notebooks/08_ncf.ipynb for NeuMF from scratch
    cfg = TrainConfig(epochs=epochs, batch_size=8192, learning_rate=0.01, weight_decay=0.3, decay_to=0.0,
                      seed=seed, jit_compile=jit_compile)
    hist = train_pointwise(model, d["users"], d["items"], d["n_items"], cfg, n_neg=N_NEG,
                           validation=ranking_validation(d["val_users"], candidates=d["val_candidates"]))
    # val[...][0] is the untrained model: drop it to align with seconds (one entry per epoch)
    return dict(hr=hist.val["HR@10"][1:], ndcg=hist.val["NDCG@10"][1:], seconds=hist.seconds, cpu=hist.cpu_seconds)


def run_plain(d: dict, epochs: int, seed: int, batch_size: int = 256, learning_rate: float = 1e-3) -> dict:
    helpers.seed_everything(seed)
    model = build_neumf(d["n_users"], d["n_items"], FACTORS, LAYERS)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    sampler = NegativeSampler(d["users"], d["items"], d["n_items"])
    rng = np.random.default_rng(seed)
    score = pair_scorer(model)
    hr, ndcg, seconds, cpu_seconds, elapsed, cpu = [], [], [], [], 0.0, 0.0
    for _ in range(epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        u, i, y, _ = pointwise_epoch(sampler, d["users"], d["items"], N_NEG, rng)
        model.fit([u, i], y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        seconds.append(elapsed)
        cpu_seconds.append(cpu)
        r = evaluate_sampled(score, d["val_users"], d["val_candidates"])
        hr.append(r["HR@10"])
        ndcg.append(r["NDCG@10"])
    return dict(hr=hr, ndcg=ndcg, seconds=seconds, cpu=cpu_seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", type=float, default=0.67, help="validation HR@10 to reach")
    ap.add_argument("--fast-epochs", type=int, default=8)
    ap.add_argument("--plain-epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    d = load()
    n_samples = len(d["users"]) * (1 + N_NEG)
    print(f"NeuMF (GMF {FACTORS} factors, MLP {LAYERS}), {len(d['users']):,} positives x (1 + {N_NEG}) "
          f"= {n_samples:,} samples per epoch; {os.cpu_count()} CPU cores visible; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    results = {}
    runs = [("fast loop (batch 8192, tf.function epoch)", lambda: run_fast(d, args.fast_epochs, args.seed)),
            ("fast loop + XLA (jit_compile=True)", lambda: run_fast(d, args.fast_epochs, args.seed, True)),
            ("plain model.fit (batch 8192, Adam 0.01)",
             lambda: run_plain(d, args.fast_epochs, args.seed, batch_size=8192, learning_rate=0.01)),
            ("plain model.fit (batch 256)", lambda: run_plain(d, args.plain_epochs, args.seed))]
    for name, fn in runs:
        r = fn()
        n_total = n_samples * len(r["seconds"])
        r["throughput"] = n_total / r["seconds"][-1]
        r["cpu_throughput"] = n_total / r["cpu"][-1]
        # steady state: epochs after the first (which includes tracing / XLA compilation)
        r["steady"] = n_samples * (len(r["seconds"]) - 1) / (r["seconds"][-1] - r["seconds"][0])
        r["ttt"] = time_to_target(r["hr"], r["seconds"], args.target)
        r["ttt_cpu"] = time_to_target(r["hr"], r["cpu"], args.target)
        b = int(np.argmax(r["hr"]))
        print(f"\n{name}: {len(r['seconds'])} epochs in {r['seconds'][-1]:.1f} s of training "
              f"({r['cpu'][-1]:.1f} s CPU)")
        print("  val HR@10 per epoch:", " ".join(f"{h:.3f}" for h in r["hr"]))
        print(f"  throughput {r['throughput']:,.0f} samples/s ({r['cpu_throughput']:,.0f} per CPU-second; "
              f"{r['steady']:,.0f}/s after the first epoch); "
              f"time to HR@10 >= {args.target}: {r['ttt']:.1f} s ({r['ttt_cpu']:.1f} CPU-s); "
              f"best HR@10 {r['hr'][b]:.3f} (NDCG@10 {r['ndcg'][b]:.3f}, epoch {b + 1})")
        results[name] = r
    plain = results.pop("plain model.fit (batch 256)")
    print()
    for name, fast in results.items():
        print(f"{name} vs plain model.fit:")
        print(f"  throughput ratio (fast / plain): {fast['throughput'] / plain['throughput']:.1f}x wall, "
              f"{fast['cpu_throughput'] / plain['cpu_throughput']:.1f}x CPU, "
              f"{fast['steady'] / plain['steady']:.1f}x after the first epoch")
        ratio = plain["ttt"] / fast["ttt"]
        if np.isfinite(ratio):
            print(f"  time-to-target ratio (plain / fast): {ratio:.1f}x wall, "
                  f"{plain['ttt_cpu'] / fast['ttt_cpu']:.1f}x CPU, at HR@10 >= {args.target}")
        else:
            print(f"  time-to-target ratio: undefined, a loop never reached HR@10 >= {args.target} "
                  "(raise its epochs or lower --target)")
        print(f"  best validation HR@10: fast {max(fast['hr']):.3f}, plain {max(plain['hr']):.3f}")


if __name__ == "__main__":
    main()
