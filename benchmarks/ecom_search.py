"""Chapter 13's validation searches: click models on the Open Bandit sample.

Every model is fitted on the train days and scored on the validation days of
helpers.ctr.SPLIT_DAYS (the test days are never read here). The metric is validation log loss
(a proper score: the models feed bids and off-policy estimates, which need probabilities),
with AUC recorded beside it. About a dozen settings per learned model (comparable effort);
LightGBM and the FM also choose their number of trees / epochs on the same validation days.

Run by hand:  RECSYS_DATA_DIR=... .venv/bin/python benchmarks/ecom_search.py [model ...]
(about 3 minutes on the shared 2-core machine: the FM's 12 settings 1.7 min, the rest 1 min).
Writes benchmarks/results/ecom_{position,popularity,logreg,lightgbm,fm}.{csv,json}.
"""
from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import helpers  # noqa: E402,F401  (quiet TensorFlow)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from helpers import ctr  # noqa: E402
from helpers.metrics import auc, log_loss  # noqa: E402
from helpers.repro import seed_everything  # noqa: E402
from helpers.tuning import write_search  # noqa: E402

GRIDS = {
    "position": [{"m": m} for m in (0.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)],
    "popularity": [{"m": m, "position": pos} for pos in (False, True)
                   for m in (10.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)],
    "logreg": [{"C": c} for c in (1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)],
    "lightgbm": [{"num_leaves": nl, "learning_rate": lr, "min_child_samples": mc, "n_estimators": 500}
                 for nl, lr, mc in itertools.product((4, 8, 16), (0.02, 0.1), (50, 200))],
    "fm": [{"dim": d, "learning_rate": lr, "weight_decay": wd, "epochs": 10}
           for d, lr, wd in itertools.product((4, 16), (1e-3, 3e-3, 1e-2), (1e-4, 1e-2))],
}
SEED = 0


def main(models: list[str] | None = None) -> None:
    models = list(GRIDS) if not models else models
    data = ctr.load_obd_impressions()
    split = ctr.day_split(data.rounds)
    X = data.pairs(np.arange(len(data.rounds)))
    y = data.rounds["click"].to_numpy(np.float64)
    tr, va = split["train"], split["valid"]
    for kind in models:
        rows = []
        for params in GRIDS[kind]:
            seed_everything(SEED)
            t0, c0 = time.perf_counter(), time.process_time()
            model = ctr.fit_ctr(kind, params, X.iloc[tr], y[tr], X.iloc[va], y[va], seed=SEED)
            p = model.predict(X.iloc[va])
            row = {**params, "val_logloss": log_loss(y[va], p), "val_auc": auc(y[va], p),
                   "val_ne": ctr.normalized_entropy(y[va], p),
                   "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
            if kind == "lightgbm":
                row["n_estimators"] = model.info["best_iteration"]       # the trees kept
            if kind == "fm":
                row["epochs"] = model.info["best_epoch"]                  # the epoch kept
            rows.append(row)
            print(kind, {k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        table = pd.DataFrame(rows).sort_values("val_logloss", kind="stable").reset_index(drop=True)
        choice = {k: table.iloc[0][k] for k in GRIDS[kind][0]}
        write_search(f"ecom_{kind}", table, choice, "val_logloss", goal="min",
                     notes={"script": "benchmarks/ecom_search.py", "train_days": "0-2 (24-26 Nov 2019)",
                            "valid_days": "3-4 (27-28 Nov)", "rows_train": len(tr), "rows_valid": len(va),
                            "clicks_valid": int(y[va].sum()), "seed": SEED, "settings": len(rows),
                            "minutes": round(float(table["wall_s"].sum()) / 60, 2)})


if __name__ == "__main__":
    main(sys.argv[1:] or list(GRIDS))
