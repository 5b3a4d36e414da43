"""Chapter 7's validation search for item-based AutoRec (run by hand, not in CI).

Hidden units x L2 penalty, 3 seeds each, on the **validation** ratings of fold u1 (a random
5 % of ``u1.base``, ``helpers.splits.rating_split``); ``u1.test`` is never read. Each fit is
full-batch Adam (learning rate 0.01) for at most 200 epochs, validation RMSE every 5 epochs,
stopping after 6 checks without improvement and keeping the best check
(``helpers.mf.fit_item_autorec``). A setting's score is its mean validation RMSE over seeds.
Writes ``benchmarks/results/nmf_autorec.{csv,json}`` with ``helpers.tuning.write_search``;
chapter 7 and ``benchmarks/nmf_folds.py`` read the choice from there.

Usage (from the repository root; about 15 minutes on 2 cores)::

    RECSYS_DATA_DIR=../shared/data .venv/bin/python benchmarks/autorec_search.py
"""
from __future__ import annotations

import itertools
import time

import helpers  # first: quiet TensorFlow

import numpy as np
import pandas as pd

from helpers import mf as M
from helpers.tuning import write_search

SEEDS = (0, 1, 2)
GRID = {"hidden": (100, 200, 500), "l2": (10.0, 30.0, 100.0, 300.0)}
FIT = {"learning_rate": 0.01, "epochs": 200, "eval_every": 5, "patience": 6}


def main() -> None:
    t_start = time.perf_counter()
    split = M.rating_split(1)
    rows = []
    for hidden, l2 in itertools.product(*GRID.values()):
        vals, epochs, secs = [], [], []
        for seed in SEEDS:
            t0 = time.perf_counter()
            ar = M.fit_item_autorec(*split.train, split.n_users, split.n_items, hidden=hidden, l2=l2,
                                    val=split.val, seed=seed, **FIT)
            vals.append(min(ar.history["val RMSE"])), epochs.append(ar.best_epoch)
            secs.append(time.perf_counter() - t0)
        rows.append({"hidden": hidden, "l2": l2, "seeds": len(SEEDS), "val_rmse": float(np.mean(vals)),
                     "val_rmse_sd": float(np.std(vals, ddof=1)), "best_epoch_mean": float(np.mean(epochs)),
                     "seconds_per_fit": float(np.mean(secs))})
        print(f"  hidden {hidden}, l2 {l2}: {rows[-1]['val_rmse']:.4f} ± {rows[-1]['val_rmse_sd']:.4f}, "
              f"epoch {rows[-1]['best_epoch_mean']:.0f}, {rows[-1]['seconds_per_fit']:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    best = table.loc[table["val_rmse"].idxmin()]
    choice = {"hidden": int(best["hidden"]), "l2": float(best["l2"])}
    write_search("nmf_autorec", table, choice, "val_rmse", goal="min", notes={
        "script": "benchmarks/autorec_search.py", "protocol": "fold u1; validation = random 5 % of "
        "u1.base (seed 0, helpers.splits.rating_split); clipped predictions", "settings": len(table),
        "seeds": len(SEEDS), **{f"fit_{k}": v for k, v in FIT.items()},
        "minutes": round((time.perf_counter() - t_start) / 60, 1)})
    print(f"nmf_autorec: {choice} -> {best['val_rmse']:.4f}")


if __name__ == "__main__":
    main()
