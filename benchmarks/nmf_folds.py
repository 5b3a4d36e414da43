"""Chapter 7's best rating model on all five MovieLens 100K folds (run by hand, not in CI).

The pipeline is the chapter's, with the settings it chose on the validation set of fold u1:

1. hold out a random 5 % of ``u{k}.base`` as validation (seed 0), train on the rest;
2. neural MF (``helpers.mf.build_mf``, d = 32, lambda = 0.1; Adam 0.01, batches of 4,096,
   early stopping on validation RMSE with patience 3);
3. item-based AutoRec (``helpers.mf.fit_item_autorec``, 200 hidden units, lambda = 100,
   full-batch Adam 0.01, up to 200 epochs, best validation epoch);
4. least-squares blend of the two, weights fitted on the validation ratings
   (``helpers.mf.fit_blend``); report RMSE and MAE on ``u{k}.test``.

Usage (from the repository root)::

    RECSYS_DATA_DIR=../shared/data .venv/bin/python benchmarks/nmf_folds.py [--folds 1 2 3 4 5]

Prints one line per fold (RMSE of MF, AutoRec and the blend, the blend's MAE, wall seconds)
and the mean and standard deviation over folds.
"""
from __future__ import annotations

import argparse
import time

import helpers  # first: quiet TensorFlow

import numpy as np

from helpers import metrics
from helpers import mf as M
from helpers.data import load_ml100k_fold

N_USERS, N_ITEMS = 943, 1682
MF = {"dim": 32, "l2": 0.1}
TRAIN = {"epochs": 40, "batch_size": 4096, "learning_rate": 0.01, "patience": 3}
AUTOREC = {"hidden": 200, "l2": 100.0, "learning_rate": 0.01, "epochs": 200, "eval_every": 5, "patience": 6}


def arrays(df):
    return (df["user_id"].to_numpy(np.int64) - 1, df["item_id"].to_numpy(np.int64) - 1,
            df["rating"].to_numpy(np.float64))


def run_fold(fold: int, seed: int = 0) -> dict[str, float]:
    t0 = time.perf_counter()
    base, test = load_ml100k_fold(fold)
    u, i, r = arrays(base)
    is_val = np.random.default_rng(0).random(len(r)) < 0.05
    tr = (u[~is_val], i[~is_val], r[~is_val])
    va = (u[is_val], i[is_val], r[is_val])
    te = arrays(test)

    helpers.seed_everything(seed)
    model = M.build_mf(N_USERS, N_ITEMS, MF["dim"], mu=float(tr[2].mean()), l2=MF["l2"])
    M.train_explicit(model, *tr, val=va, seed=seed, **TRAIN)
    mf_val, mf_test = M.predict_ratings(model, va[0], va[1]), M.predict_ratings(model, te[0], te[1])

    ar = M.fit_item_autorec(*tr, N_USERS, N_ITEMS, val=va, seed=seed, **AUTOREC)
    ar_val, ar_test = ar.predict(va[0], va[1]), ar.predict(te[0], te[1])

    w = M.fit_blend([mf_val, ar_val], va[2])
    blend_test = M.blend([mf_test, ar_test], w)
    return {"MF RMSE": metrics.rmse(te[2], mf_test), "AutoRec RMSE": metrics.rmse(te[2], ar_test),
            "blend RMSE": metrics.rmse(te[2], blend_test), "blend MAE": metrics.mae(te[2], blend_test),
            "seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keys = ["MF RMSE", "AutoRec RMSE", "blend RMSE", "blend MAE", "seconds"]
    print(f"{'fold':>4}  " + "  ".join(f"{k:>12}" for k in keys), flush=True)
    rows = []
    for fold in args.folds:
        res = run_fold(fold, args.seed)
        rows.append([res[k] for k in keys])
        print(f"{'u' + str(fold):>4}  " + "  ".join(f"{v:12.4f}" if k != "seconds" else f"{v:12.1f}"
                                                  for k, v in res.items()), flush=True)
    arr = np.array(rows)
    print(f"{'mean':>4}  " + "  ".join(f"{v:12.4f}" for v in arr.mean(axis=0)[:-1]) + f"  {arr[:, -1].mean():12.1f}")
    if len(rows) > 1:
        print(f"{'sd':>4}  " + "  ".join(f"{v:12.4f}" for v in arr.std(axis=0, ddof=1)[:-1]))


if __name__ == "__main__":
    main()
