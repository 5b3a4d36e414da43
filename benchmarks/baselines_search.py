"""Validation searches for chapter 8's baselines: item-KNN, EASE, EASE + recency weights,
"last-k items" EASE, iALS and BPR-MF. Run by hand, not in CI (about two hours on the shared
2-core machine, mostly iALS and BPR-MF; ``minutes`` in each result's JSON; ``--only`` runs a subset):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/baselines_search.py [--only ease,knn]

Every model is fitted on the training split of the book's leave-last-out protocol
(:func:`helpers.protocol.leave_last_out_protocol`) and scored on the **validation** items only
(each user's second-latest interaction), under both protocols: sampled (1 + 99 candidates,
seed 1) and full ranking (every item the user has not interacted with in training). The
setting with the best **full-ranking validation NDCG@10** is chosen. Each search writes its
whole table and its choice with :func:`helpers.tuning.write_search` into
``benchmarks/results/baselines_<model>.{csv,json}``; chapter 8 reads them. Test items are
never touched.

* item-KNN: neighbours k x shrinkage h x asymmetry alpha of the asymmetric cosine
  (alpha = 0.5 is the cosine), :func:`helpers.baselines.item_knn`;
* EASE: lambda;
* EASE + recency: the user's history row weighted by ``1 + beta * exp(-r / tau)`` (r = recency
  rank), scored with EASE weights fitted on the unweighted data: lambda x tau x beta;
* last-k EASE: EASE weights, the user scored from only their k latest training items: k x lambda;
* iALS and BPR-MF (the ``implicit`` library, one thread): a grid with seed 0, every iteration
  count validated within one fit (callback); the three best settings are run again with seeds
  1 and 2 and the best mean over the three seeds is chosen.

Deterministic models (item-KNN, EASE and its variants) need one run per setting.
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd

from helpers import baselines
from helpers.evaluation import evaluate_full, evaluate_sampled, interaction_matrix
from helpers.preprocessing import recency_weights
from helpers.protocol import leave_last_out_protocol
from helpers.tuning import read_table, write_search

METRIC = "val NDCG@10 (full)"
SCRIPT = "benchmarks/baselines_search.py"
PROTOCOL = ("helpers.protocol.leave_last_out_protocol(): fit on train, scored on the validation "
            "items (sampled: 1 + 99 candidates, seed 1; full: all items not in the user's training data)")

KNN_K = (3, 5, 10, 20, 50, 100, 200, 500, 1682)          # 1682 = every item (no neighbourhood cut)
KNN_SHRINK = (0.0, 5.0, 20.0, 50.0, 100.0, 200.0)
KNN_ALPHA = (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)
EASE_L2 = (10.0, 25.0, 50.0, 100.0, 200.0, 300.0, 500.0, 800.0, 1200.0, 2000.0, 3000.0, 5000.0)
REC_L2 = (100.0, 200.0, 300.0, 500.0, 800.0, 1200.0, 2000.0, 3000.0, 5000.0)
REC_TAU = (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0)
REC_BOOST = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
LASTK_K = (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50, 100)
IALS_FACTORS = (32, 64, 128, 256, 512)
IALS_REG = (0.1, 1.0, 10.0, 100.0)
IALS_ALPHA = (0.3, 1.0, 3.0, 10.0, 30.0)
IALS_ITERS = (5, 10, 15, 25, 40)                      # validated within one fit of max(IALS_ITERS)
BPR_FACTORS = (64, 128, 256)
BPR_LR = (0.003, 0.01, 0.03)
BPR_REG = (0.001, 0.01, 0.1)
BPR_ITERS = (25, 50, 100, 200)                     # validated within one fit of max(BPR_ITERS)
SEEDS = (0, 1, 2)
KEYS = {"itemknn": ("k", "shrink", "alpha")}
REUSE = False  # --reuse: deterministic searches take rows of their existing table


class Validator:
    """Sampled and full-ranking validation metrics of a users x items score matrix."""

    def __init__(self) -> None:
        p = leave_last_out_protocol()
        self.p = p
        self.users = np.asarray(p.val_users)
        self.targets = np.asarray(p.val_items)
        self.candidates = np.asarray(p.val_candidates)

    def __call__(self, scores: np.ndarray) -> dict[str, float]:
        s = np.asarray(scores, dtype=np.float64)
        sampled = evaluate_sampled(lambda u, i: s[u, i], self.users, self.candidates)
        full = evaluate_full(lambda u: s[u], self.users, self.targets, self.p.X_train)
        return {"val HR@10 (sampled)": sampled["HR@10"], "val NDCG@10 (sampled)": sampled["NDCG@10"],
                "val HR@10 (full)": full["HR@10"], METRIC: full["NDCG@10"]}


def _finish(name: str, rows: list[dict], keys: list[str], t0: float, notes: dict, metric: str = METRIC) -> None:
    order = [metric] if metric == METRIC else [metric, METRIC]
    table = pd.DataFrame(rows).sort_values(order, ascending=False, kind="stable").reset_index(drop=True)
    best = table.iloc[0]
    choice = {k: best[k] for k in keys}
    minutes = (time.perf_counter() - t0) / 60
    write_search(f"baselines_{name}", table, choice, metric,
                 notes={"script": SCRIPT, "protocol": PROTOCOL, "selection": f"max {metric}",
                        "settings_tried": int(len(table.drop_duplicates(keys))), "minutes": round(minutes, 1), **notes})
    print(f"{name}: {len(table)} rows in {minutes:.1f} min; best {choice} -> {metric} {best[metric]:.4f}; "
          f"next row {table.iloc[1][metric]:.4f}", flush=True)


def _previous(name: str) -> dict[tuple, dict]:
    """Rows of the existing table of a deterministic search, by setting (``--reuse``)."""
    if not REUSE:
        return {}
    try:
        old = read_table(f"baselines_{name}")
    except FileNotFoundError:
        return {}
    return {tuple(r[k] for k in KEYS[name]): r for r in old.to_dict("records")}


def search_knn(v: Validator) -> None:
    t0, rows, x = time.perf_counter(), [], v.p.X_train
    old = _previous("itemknn")
    for k, shrink, alpha in itertools.product(KNN_K, KNN_SHRINK, KNN_ALPHA):
        if (k, shrink, alpha) in old:
            rows.append(old[k, shrink, alpha])
            continue
        s = baselines.item_knn(x, n_neighbors=k, shrink=shrink, alpha=alpha)
        rows.append(dict(k=k, shrink=shrink, alpha=alpha, **v(x @ s)))
    _finish("itemknn", rows, ["k", "shrink", "alpha"], t0,
            {"seeds": "deterministic", "grid": f"k {KNN_K} (1682 = all) x shrink {KNN_SHRINK} x alpha {KNN_ALPHA}"})


def search_ease(v: Validator) -> dict[float, np.ndarray]:
    t0, rows, weights = time.perf_counter(), [], {}
    x = v.p.X_train
    for l2 in EASE_L2:
        weights[l2] = baselines.ease(x, l2=l2)
        rows.append(dict(l2=l2, **v(x @ weights[l2])))
    _finish("ease", rows, ["l2"], t0, {"seeds": "deterministic", "grid": f"lambda {EASE_L2}"})
    return weights


def search_ease_recency(v: Validator, weights: dict[float, np.ndarray]) -> None:
    t0, rows, p = time.perf_counter(), [], v.p
    tu, ti = p.arrays("train")
    for tau, boost in itertools.product(REC_TAU, REC_BOOST):
        x_w = interaction_matrix(tu, ti, p.n_users, p.n_items, recency_weights(p.train, tau, boost))
        for l2 in REC_L2:
            b = weights[l2] if l2 in weights else baselines.ease(p.X_train, l2=l2)
            weights[l2] = b
            rows.append(dict(l2=l2, tau=tau, boost=boost, **v(x_w @ b)))
    _finish("ease_recency", rows, ["l2", "tau", "boost"], t0,
            {"seeds": "deterministic", "grid": f"lambda {REC_L2} x tau {REC_TAU} x beta {REC_BOOST}"})


def search_lastk(v: Validator, weights: dict[float, np.ndarray]) -> None:
    t0, rows, p = time.perf_counter(), [], v.p
    for k in LASTK_K:
        x_k = baselines.last_k_interactions(p.train, k, p.n_users, p.n_items)
        for l2 in REC_L2:
            b = weights[l2] if l2 in weights else baselines.ease(p.X_train, l2=l2)
            weights[l2] = b
            rows.append(dict(k=k, l2=l2, **v(x_k @ b)))
    _finish("lastk", rows, ["k", "l2"], t0, {"seeds": "deterministic", "grid": f"k {LASTK_K} x lambda {REC_L2}"})


def _factor_search(v: Validator, name: str, fit, grid: list[dict], iters: tuple[int, ...], grid_text: str) -> None:
    """Seed 0 over the grid (every iteration count in ``iters`` validated in one fit), then the
    three best settings again with the other seeds; choose by the mean over all seeds."""
    t0 = time.perf_counter()

    def run(setting: dict, seed: int) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}

        def check(it: int, uf: np.ndarray, vf: np.ndarray) -> None:
            if it in iters:
                out[it] = v(uf @ vf.T)

        fit(v.p.X_train, **setting, iterations=max(iters), seed=seed, callback=check)
        return out

    rows = []
    for setting in grid:
        for it, rep in run(setting, SEEDS[0]).items():
            rows.append(dict(setting, iterations=it, seed=SEEDS[0], **rep))
    first = pd.DataFrame(rows).sort_values(METRIC, ascending=False, kind="stable")
    keys = [*grid[0], "iterations"]
    top = first.drop_duplicates(list(grid[0])).head(3)
    for _, row in top.iterrows():
        setting = {k: row[k] for k in grid[0]}
        for seed in SEEDS[1:]:
            for it, rep in run(setting, seed).items():
                rows.append(dict(setting, iterations=it, seed=seed, **rep))
    table = pd.DataFrame(rows)
    g = table.groupby(keys, sort=False)[METRIC]
    table["seeds"] = g.transform("size")
    table["mean over seeds"] = g.transform("mean").where(table["seeds"] == len(SEEDS))
    table["sd over seeds"] = g.transform("std").where(table["seeds"] == len(SEEDS))
    _finish(name, table.to_dict("records"), keys, t0,
            {"seeds": f"grid with seed {SEEDS[0]}; the 3 best settings (any iteration count) rerun with seeds "
                      f"{SEEDS[1:]}; choice = best mean over seeds {SEEDS}", "grid": grid_text},
            metric="mean over seeds")


def search_ials(v: Validator) -> None:
    grid = [dict(factors=f, regularization=r, alpha=a)
            for f, r, a in itertools.product(IALS_FACTORS, IALS_REG, IALS_ALPHA)]
    _factor_search(v, "ials", baselines.implicit_als, grid, IALS_ITERS,
                   f"factors {IALS_FACTORS} x regularization {IALS_REG} x alpha {IALS_ALPHA} x iterations {IALS_ITERS}")


def search_bpr(v: Validator) -> None:
    grid = [dict(factors=f, learning_rate=lr, regularization=r)
            for f, lr, r in itertools.product(BPR_FACTORS, BPR_LR, BPR_REG)]
    _factor_search(v, "bpr", baselines.implicit_bpr, grid, BPR_ITERS,
                   f"factors {BPR_FACTORS} x learning rate {BPR_LR} x regularization {BPR_REG} x iterations {BPR_ITERS}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="knn,ease,recency,lastk,ials,bpr",
                    help="comma-separated subset of knn, ease, recency, lastk, ials, bpr")
    ap.add_argument("--reuse", action="store_true",
                    help="item-KNN: reuse the rows of the existing table (deterministic) and run only new settings")
    args = ap.parse_args()
    global REUSE
    REUSE = args.reuse
    todo = set(args.only.split(","))
    v = Validator()
    weights: dict[float, np.ndarray] = {}
    if "ease" in todo:
        weights = search_ease(v)
    if "recency" in todo:
        search_ease_recency(v, weights)
    if "lastk" in todo:
        search_lastk(v, weights)
    if "knn" in todo:
        search_knn(v)
    if "ials" in todo:
        search_ials(v)
    if "bpr" in todo:
        search_bpr(v)


if __name__ == "__main__":
    main()
