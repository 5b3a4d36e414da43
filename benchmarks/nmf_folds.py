"""Chapter 7's best rating model on all five MovieLens 100K folds (run by hand, not in CI).

The pipeline is the chapter's, with the settings its validation searches chose on fold u1
(read from ``benchmarks/results/`` with ``helpers.tuning.read_choice``, never retyped):

1. hold out a random 5 % of ``u{k}.base`` as validation (seed 0, ``helpers.splits.rating_split``),
   train on the rest;
2. neural MF (``helpers.mf.build_mf``; d and lambda from ``nmf_mf``; Adam 0.01, batches of
   4,096, early stopping on validation RMSE with patience 3);
3. item-based AutoRec (``helpers.mf.fit_item_autorec``; hidden units and lambda from
   ``nmf_autorec``; full-batch Adam 0.01, up to 200 epochs, best validation check);
4. least-squares blend of the two, weights fitted on the validation ratings
   (``helpers.ensemble.fit_blend``);
5. for reference, biased MF by ALS with the settings of ``nmf_als``.

Reports RMSE and MAE on ``u{k}.test`` per fold, and writes the table (one row per fold) to
``benchmarks/results/nmf_folds.csv``, which chapter 7 reads for the mean and spread over
folds.

Usage (from the repository root; about 5 minutes on 2 cores)::

    RECSYS_DATA_DIR=../shared/data .venv/bin/python benchmarks/nmf_folds.py [--folds 1 2 3 4 5]
"""
from __future__ import annotations

import argparse
import time

import helpers  # first: quiet TensorFlow

import numpy as np
import pandas as pd

from helpers import metrics
from helpers import mf as M
from helpers.tuning import RESULTS_DIR, read_choice

TRAIN = {"epochs": 40, "batch_size": 4096, "learning_rate": 0.01, "patience": 3}
AUTOREC_FIT = {"learning_rate": 0.01, "epochs": 200, "eval_every": 5, "patience": 6}


def run_fold(fold: int, seed: int = 0) -> dict[str, float]:
    t0 = time.perf_counter()
    s = M.rating_split(fold)
    tr, va, te = s.train, s.val, s.test
    mf_set, ar_set, als_set = read_choice("nmf_mf"), read_choice("nmf_autorec"), read_choice("nmf_als")

    helpers.seed_everything(seed)
    model = M.build_mf(s.n_users, s.n_items, int(mf_set["dim"]), mu=float(tr[2].mean()), l2=float(mf_set["l2"]))
    M.train_explicit(model, *tr, val=va, seed=seed, **TRAIN)
    mf_val, mf_test = M.predict_ratings(model, va[0], va[1]), M.predict_ratings(model, te[0], te[1])

    ar = M.fit_item_autorec(*tr, s.n_users, s.n_items, hidden=int(ar_set["hidden"]), l2=float(ar_set["l2"]),
                            val=va, seed=seed, **AUTOREC_FIT)
    ar_val, ar_test = ar.predict(va[0], va[1]), ar.predict(te[0], te[1])

    w = M.fit_blend([mf_val, ar_val], va[2])
    blend_test = M.blend([mf_test, ar_test], w)
    als = M.als_mf(*tr, s.n_users, s.n_items, dim=int(als_set["dim"]), l2=float(als_set["l2"]), n_iter=15)
    als_test = np.clip(als.score(te[0], te[1]), 1, 5)
    return {"fold": f"u{fold}", "ALS RMSE": metrics.rmse(te[2], als_test), "MF RMSE": metrics.rmse(te[2], mf_test),
            "AutoRec RMSE": metrics.rmse(te[2], ar_test), "blend RMSE": metrics.rmse(te[2], blend_test),
            "blend MAE": metrics.mae(te[2], blend_test), "seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for fold in args.folds:
        rows.append(run_fold(fold, args.seed))
        print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
              flush=True)
    table = pd.DataFrame(rows)
    print(table.drop(columns="fold").agg(["mean", "std"]).round(4).to_string())
    if sorted(args.folds) == [1, 2, 3, 4, 5]:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        table.to_csv(RESULTS_DIR / "nmf_folds.csv", index=False)
        print(f"wrote {RESULTS_DIR / 'nmf_folds.csv'}")


if __name__ == "__main__":
    main()
