"""Chapter 7's validation searches for the rating models (run by hand, not in CI).

Every model of chapter 7's results table gets a grid on the **validation** ratings of fold
u1 (a random 5 % of ``u1.base``, ``helpers.splits.rating_split``); ``u1.test`` is never read.
The metric is the validation RMSE of clipped predictions (1-5). AutoRec has its own script,
``benchmarks/autorec_search.py``.

* ``nmf_biases`` -- the biased baseline mu + b_u + b_i, reg_user x reg_item (deterministic);
* ``nmf_svd`` -- the textbook SVD of the baseline-filled matrix, rank x both bias
  regularisations (deterministic);
* ``nmf_als`` -- biased MF by ALS, d x lambda (per user/item), 15 rounds (one seed: the
  start hardly matters after 15 exact alternations);
* ``nmf_mf`` -- the Keras MF (dot product), d x lambda (per occurrence), 3 seeds;
* ``nmf_mlp`` -- the MLP on concatenated embeddings (d = 32, layers of 64 and 32), learning
  rate x embedding lambda x {nothing, dropout 0.3, L2 1e-3 on the dense weights}, 3 seeds.

The Keras models train with Adam on batches of 4,096, at most 40 epochs, early stopping on
validation RMSE (patience 3, best epoch restored). A seeded setting's score is its mean over
seeds; the table also holds the standard deviation. Each search writes its table and choice
with ``helpers.tuning.write_search`` into ``benchmarks/results/``.

Usage (from the repository root; about 30 minutes on 2 idle cores)::

    RECSYS_DATA_DIR=../shared/data .venv/bin/python benchmarks/nmf_search.py [--only biases svd als mf mlp] [--resume]

With ``--resume``, a setting already present in its table in ``benchmarks/results/`` is kept
instead of refitted (every fit is deterministic or seeded); use it after widening a grid.
"""
from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import helpers  # first: quiet TensorFlow

import numpy as np
import pandas as pd

from helpers import metrics
from helpers import mf as M
from helpers.baselines import fit_biases
from helpers.tuning import read_table, write_search

SEEDS = (0, 1, 2)
BIAS_GRID = {"reg_user": (0.3, 1.0, 3.0, 5.0, 10.0, 15.0, 25.0), "reg_item": (0.3, 1.0, 3.0, 5.0, 10.0, 15.0, 25.0)}
SVD_GRID = {"dim": (2, 3, 5, 10, 20, 50), "reg_user": (5.0, 15.0, 25.0), "reg_item": (5.0, 10.0, 25.0)}
ALS_GRID = {"dim": (2, 3, 5, 10, 32, 128), "l2": (3.0, 10.0, 30.0, 100.0)}
MF_GRID = {"dim": (8, 32, 128), "l2": (0.03, 0.1, 0.3)}
MLP_GRID = {"learning_rate": (0.001, 0.003, 0.01), "l2": (0.03, 0.1, 0.3, 1.0, 3.0),
            "regulariser": ("none", "dropout 0.3", "dense L2 1e-3")}
MLP_REGULARISERS = {"none": {}, "dropout 0.3": {"dropout": 0.3}, "dense L2 1e-3": {"dense_l2": 1e-3}}
TRAIN = {"epochs": 40, "batch_size": 4096, "patience": 3}
MF_LEARNING_RATE = 0.01
METRIC = "val_rmse"


def grid(spec: dict[str, tuple]) -> list[dict]:
    return [dict(zip(spec, values)) for values in itertools.product(*spec.values())]


RESUME: dict[str, pd.DataFrame] = {}


def kept(name: str, s: dict, n_seeds: int) -> dict | None:
    """The stored row of setting ``s`` in search ``name`` (with ``--resume``), else None."""
    done = RESUME.get(name)
    if done is None:
        return None
    same = np.logical_and.reduce([done[k] == v if isinstance(v, str) else np.isclose(done[k], v)
                                  for k, v in s.items()])
    match = done.loc[same]
    if len(match) != 1 or int(match["seeds"].iloc[0]) != n_seeds:
        return None
    return {**match.iloc[0].to_dict(), **s}  # the grid's own values keep their types (ints stay ints)


def deterministic(spec: dict[str, tuple], fit_predict: Callable[[dict], np.ndarray], va, name: str) -> pd.DataFrame:
    rows = []
    for s in grid(spec):
        if (row := kept(name, s, 1)) is not None:
            rows.append(row)
            continue
        t0 = time.perf_counter()
        rows.append({**s, "seeds": 1, METRIC: metrics.rmse(va[2], np.clip(fit_predict(s), 1, 5)),
                     "seconds_per_fit": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def seeded(spec: dict[str, tuple], fit: Callable[[dict, int], tuple[np.ndarray, int]], label: str,
           name: str) -> pd.DataFrame:
    rows = []
    for s in grid(spec):
        if (row := kept(name, s, len(SEEDS))) is not None:
            rows.append(row)
            continue
        vals, epochs, secs = [], [], []
        for seed in SEEDS:
            t0 = time.perf_counter()
            v, e = fit(s, seed)
            vals.append(v), epochs.append(e), secs.append(time.perf_counter() - t0)
        rows.append({**s, "seeds": len(SEEDS), METRIC: float(np.mean(vals)),
                     f"{METRIC}_sd": float(np.std(vals, ddof=1)), "best_epoch_mean": float(np.mean(epochs)),
                     "seconds_per_fit": float(np.mean(secs))})
        print(f"  {label} {s}: {rows[-1][METRIC]:.4f} ± {rows[-1][METRIC + '_sd']:.4f}", flush=True)
    return pd.DataFrame(rows)


def save(name: str, table: pd.DataFrame, keys: list[str], **notes) -> None:
    best = table.loc[table[METRIC].idxmin()]
    choice = {k: table.loc[best.name, k] for k in keys}  # per column: ints stay ints
    write_search(name, table, choice, METRIC, goal="min", notes={
        "script": "benchmarks/nmf_search.py", "protocol": "fold u1; validation = random 5 % of u1.base "
        "(seed 0, helpers.splits.rating_split); clipped predictions", "settings": len(table),
        "seeds": int(table["seeds"].max()),
        "fit_minutes": round(float((table["seconds_per_fit"] * table["seeds"]).sum()) / 60, 1), **notes})
    print(f"{name}: {choice} -> {best[METRIC]:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="biases svd als mf mlp")
    parser.add_argument("--resume", action="store_true", help="keep settings already in the stored tables")
    args = parser.parse_args()
    todo = set(args.only or ["biases", "svd", "als", "mf", "mlp"])
    if args.resume:
        for name in todo:
            try:
                RESUME[f"nmf_{name}"] = read_table(f"nmf_{name}")
            except FileNotFoundError:
                pass
    split = M.rating_split(1)
    tr, va, nu, ni = split.train, split.val, split.n_users, split.n_items
    mu = float(tr[2].mean())

    if "biases" in todo:

        def biases(s):
            m, bu, bi = fit_biases(*tr, nu, ni, reg_user=s["reg_user"], reg_item=s["reg_item"])
            return m + bu[va[0]] + bi[va[1]]
        save("nmf_biases", deterministic(BIAS_GRID, biases, va, "nmf_biases"), list(BIAS_GRID))
    if "svd" in todo:
        table = deterministic(SVD_GRID, lambda s: M.svd_mf(*tr, nu, ni, **s).score(va[0], va[1]), va, "nmf_svd")
        save("nmf_svd", table, list(SVD_GRID))
    if "als" in todo:
        table = deterministic(ALS_GRID, lambda s: M.als_mf(*tr, nu, ni, n_iter=15, seed=0, **s).score(va[0], va[1]),
                              va, "nmf_als")
        save("nmf_als", table, list(ALS_GRID), n_iter=15)
    if "mf" in todo:

        def mf(s, seed):
            helpers.seed_everything(seed)
            model = M.build_mf(nu, ni, s["dim"], mu=mu, l2=s["l2"])
            h = M.train_explicit(model, *tr, val=va, seed=seed, learning_rate=MF_LEARNING_RATE, **TRAIN)
            return h.best_val_rmse, h.best_epoch
        save("nmf_mf", seeded(MF_GRID, mf, "MF", "nmf_mf"), list(MF_GRID), learning_rate=MF_LEARNING_RATE,
             **{f"train_{k}": v for k, v in TRAIN.items()})
    if "mlp" in todo:

        def mlp(s, seed):
            helpers.seed_everything(seed)
            model = M.build_mlp_mf(nu, ni, 32, hidden=(64, 32), mu=mu, l2=s["l2"],
                                   **MLP_REGULARISERS[s["regulariser"]])
            h = M.train_explicit(model, *tr, val=va, seed=seed, learning_rate=s["learning_rate"], **TRAIN)
            return h.best_val_rmse, h.best_epoch
        save("nmf_mlp", seeded(MLP_GRID, mlp, "MLP", "nmf_mlp"), list(MLP_GRID), dim=32, hidden="64, 32",
             **{f"train_{k}": v for k, v in TRAIN.items()})


if __name__ == "__main__":
    main()
