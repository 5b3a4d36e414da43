"""Chapter 6's validation search (run by hand, not in CI): every model's settings, one place.

Four searches on chapter 6's per-user temporal split (``helpers.features.like_data``), all
scored on the **validation** ratings only (the test period is never loaded into a model
here). The metric chosen on is the validation log loss (binary cross-entropy), the loss the
networks train on; validation AUC and per-user AUC (GAUC) are recorded beside it.

* ``mlp_logreg_features`` -- logistic regression on the features, C in 6 values;
* ``mlp_logreg_ids`` -- logistic regression on features + one-hot ids, C in 6 values;
* ``mlp_feature`` -- the sources' features-only network (two ReLU layers of 64), learning
  rate x dropout, 3 seeds each;
* ``mlp_embedding`` -- the embedding MLP, embedding size (16 to 256) x dropout x learning
  rate, 3 seeds each.

Networks train with Adam, batches of 1,024 and early stopping on the validation log loss
(patience 3, at most 30 epochs, best epoch restored). A setting's score is the mean over
seeds; the table also holds the standard deviation over seeds. Each search writes its table
and choice with ``helpers.tuning.write_search`` into ``benchmarks/results/``.

Usage (from the repository root; about 30 minutes on 2 idle cores)::

    RECSYS_DATA_DIR=../shared/data .venv/bin/python benchmarks/mlp_search.py [--only ...] [--resume]

With ``--resume``, a network setting already present in its table in ``benchmarks/results/``
is kept instead of refitted (every run is seeded, so a refit repeats it); use it after
widening a grid.
"""
from __future__ import annotations

import argparse
import itertools
import time

import helpers  # first: quiet TensorFlow

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from helpers import metrics
from helpers.data import load_movielens
from helpers.features import build_embedding_mlp, like_data, train_classifier
from helpers.tuning import read_table, write_search

SEEDS = (0, 1, 2)
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
FEATURE_GRID = {"learning_rate": (1e-3, 3e-3), "dropout": (0.0, 0.2)}
EMBEDDING_GRID = {"dim": (16, 32, 64, 128, 256), "dropout": (0.0, 0.2, 0.5), "learning_rate": (1e-3, 3e-3)}
TRAIN = {"epochs": 30, "patience": 3, "batch_size": 1024}
METRIC = "val_logloss"


def val_scores(data, p: np.ndarray) -> dict[str, float]:
    y = data.y["val"]
    return {"val_logloss": metrics.log_loss(y, p), "val_auc": metrics.auc(y, p),
            "val_gauc": metrics.grouped_auc(data.val["user"].to_numpy(), y, p)[0]}


def feature_mlp(n_inputs: int, dropout: float, width: int = 64):
    import keras

    layers = [keras.Input((n_inputs,), name="features")]
    for _ in range(2):
        layers.append(keras.layers.Dense(width, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers, name="feature_mlp")


def search_logreg(data, with_ids: bool) -> pd.DataFrame:
    xs = {k: (data.design(k) if with_ids else data.X[k]) for k in ("train", "val")}
    rows = []
    for C in C_GRID:
        t0 = time.perf_counter()
        model = LogisticRegression(C=C, max_iter=2000).fit(xs["train"], data.y["train"])
        rows.append({"C": C, **val_scores(data, model.predict_proba(xs["val"])[:, 1]),
                     "seconds": time.perf_counter() - t0})
        print(f"  logreg ids={with_ids} C={C}: {rows[-1]}", flush=True)
    return pd.DataFrame(rows)


def search_network(data, grid: dict[str, tuple], build, done: pd.DataFrame | None = None) -> pd.DataFrame:
    rows = []
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        if done is not None:
            match = done.loc[np.logical_and.reduce([np.isclose(done[k], v) for k, v in setting.items()])]
            if len(match) == 1 and int(match["seeds"].iloc[0]) == len(SEEDS):
                rows.append({**match.iloc[0].to_dict(), **setting})  # grid values keep their types
                print(f"  {setting}: kept from the existing table", flush=True)
                continue
        runs = []
        for seed in SEEDS:
            helpers.seed_everything(seed)
            model, x_tr, x_va = build(setting)
            hist = train_classifier(model, x_tr, data.y["train"], x_va, data.y["val"],
                                    learning_rate=setting["learning_rate"], **TRAIN)
            p = model.predict(x_va, verbose=0, batch_size=8192)[:, 0]
            runs.append({**val_scores(data, p), "epochs": hist["best_epoch"], "seconds": hist["seconds"]})
        r = pd.DataFrame(runs)
        row = {**setting, "seeds": len(SEEDS)}
        for col in ("val_logloss", "val_auc", "val_gauc"):
            row[col] = float(r[col].mean())
            row[col + "_sd"] = float(r[col].std(ddof=1))
        row["best_epoch_mean"] = float(r["epochs"].mean())
        row["seconds_per_fit"] = float(r["seconds"].mean())
        rows.append(row)
        print(f"  {setting}: val log loss {row['val_logloss']:.4f} ± {row['val_logloss_sd']:.4f}, "
              f"AUC {row['val_auc']:.4f}, {row['seconds_per_fit']:.1f} s/fit", flush=True)
    return pd.DataFrame(rows)


def fit_minutes(table: pd.DataFrame) -> float:
    """Training time summed over the table's fits (kept rows included, so a resumed search
    reports the whole search's cost)."""
    if "seconds" in table:
        return round(float(table["seconds"].sum()) / 60, 1)
    return round(float((table["seconds_per_fit"] * table["seeds"]).sum()) / 60, 1)


def choose(table: pd.DataFrame, keys: list[str]) -> dict:
    idx = table[METRIC].idxmin()
    return {k: table.loc[idx, k] for k in keys}  # per column: ints stay ints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None,
                        help="run only these searches (logreg_features logreg_ids feature embedding)")
    parser.add_argument("--resume", action="store_true",
                        help="keep network settings already in the stored tables")
    args = parser.parse_args()

    def previous(name: str) -> pd.DataFrame | None:
        if not args.resume:
            return None
        try:
            return read_table(name)
        except FileNotFoundError:
            return None

    todo = set(args.only or ["logreg_features", "logreg_ids", "feature", "embedding"])
    ml = load_movielens("ml-100k")
    data = like_data(ml.users, ml.items, ml.ratings)
    notes = {"script": "benchmarks/mlp_search.py", "protocol": "chapter 6: per-user temporal split "
             "(test = latest 20 %, validation = latest 10 % of the rest); scored on validation only",
             "selection": "lowest validation log loss"}
    n_in = data.n_features
    for name, with_ids in (("logreg_features", False), ("logreg_ids", True)):
        if name in todo:
            table = search_logreg(data, with_ids)
            write_search(f"mlp_{name}", table, choose(table, ["C"]), METRIC, goal="min",
                         notes={**notes, "settings": len(table), "seeds": 1,
                                "fit_minutes": fit_minutes(table)})
    if "feature" in todo:
        table = search_network(data, FEATURE_GRID, lambda s: (
            feature_mlp(n_in, s["dropout"]), data.X["train"], data.X["val"]), previous("mlp_feature"))
        write_search("mlp_feature", table, choose(table, list(FEATURE_GRID)), METRIC, goal="min",
                     notes={**notes, "settings": len(table), "seeds": len(SEEDS), "width": 64,
                            **{f"train_{k}": v for k, v in TRAIN.items()},
                            "fit_minutes": fit_minutes(table)})
    if "embedding" in todo:
        table = search_network(data, EMBEDDING_GRID, lambda s: (
            build_embedding_mlp(data.n_users, data.n_items, n_in, dim=int(s["dim"]), hidden=(64, 32),
                                dropout=s["dropout"]), data.inputs("train"), data.inputs("val")),
            previous("mlp_embedding"))
        write_search("mlp_embedding", table, choose(table, list(EMBEDDING_GRID)), METRIC, goal="min",
                     notes={**notes, "settings": len(table), "seeds": len(SEEDS), "hidden": "64, 32",
                            **{f"train_{k}": v for k, v in TRAIN.items()},
                            "fit_minutes": fit_minutes(table)})


if __name__ == "__main__":
    main()
