"""Validation searches for chapter 8's neural models: GMF, the MLP tower, NeuMF from scratch
and the fine-tuning of pre-trained NeuMF. Run by hand, not in CI, one model per call, in this
order (each step reads the choices of the steps before it; 3-20 minutes each on the shared 2-core
machine, see ``minutes`` in each result's JSON):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/ncf_search.py --model gmf
    ... --model mlp ; ... --model neumf ; ... --model finetune

Every run trains on the training split of the book's leave-last-out protocol
(:func:`helpers.protocol.leave_last_out_protocol`) and is validated before training and
after every epoch on the **validation** items only, under both protocols (sampled 1 + 99
candidates, seed 1; full ranking). Each row of a table is one setting at one epoch; the
chosen row -- setting *and* epoch -- has the best **full-ranking validation NDCG@10**,
averaged over three seeds: the grid runs with seed 0, and the three best settings are run
again with seeds 1 and 2 (single-seed differences between neighbouring settings are about the
seed-to-seed spread). The learning rate decays linearly to 0 over each run's epochs, so the
best epoch is usually one of the last. Results go to ``benchmarks/results/ncf_<model>.{csv,json}``
via :func:`helpers.tuning.write_search`; chapter 8 reads them. Test items are never touched.

Grids (a coordinate-wise search: the sizes and negatives are varied around the best
optimiser settings, not crossed with them). Every model has a fixed training budget in pairs
per positive (``BUDGET``): epochs x (1 + negatives per positive):

* GMF: learning rate x weight decay at 64 factors and 4 negatives; then factors and
  negatives per positive at the best pair (the paper's two studies, on validation; the
  negatives at equal budget, e.g. 8 negatives for 6 epochs instead of 4 for 10);
* MLP: learning rate x weight decay with the paper's tower 64 -> 32 -> 16 -> 8 and batch 2048;
  then a wider tower and a larger batch at the best pair;
* NeuMF from scratch: learning rate x weight decay, with GMF's factors and the MLP's tower;
* fine-tuning: GMF and MLP as chosen (trained for their chosen epochs), fused with
  alpha in {0.25, 0.5, 0.75}, then fine-tuned at several learning rates; epoch 0, the fused
  model itself, is a candidate (:func:`helpers.training.run_epochs`).
"""
from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

import helpers  # noqa: F401  (quiet TensorFlow first)

import keras
import numpy as np
import pandas as pd

from helpers.ncf import (build_gmf, build_mlp, build_neumf, load_pretrained, parse_layers,
                         ranking_validation, train_pointwise)
from helpers.protocol import leave_last_out_protocol
from helpers.training import TrainConfig
from helpers.tuning import read_choice, read_table, write_search

METRIC = "val NDCG@10 (full)"
SCRIPT = "benchmarks/ncf_search.py"
PROTOCOL = ("helpers.protocol.leave_last_out_protocol(): trained on train, validated after every epoch "
            "(and before training) on the validation items, sampled (1 + 99, seed 1) and full ranking")
SEEDS = (0, 1, 2)
RENAME = {"HR@10": "val HR@10 (sampled)", "NDCG@10": "val NDCG@10 (sampled)", "MRR": "val MRR (sampled)",
          "full HR@10": "val HR@10 (full)", "full NDCG@10": METRIC, "full MRR": "val MRR (full)"}

#: training budget of each model in pairs per positive: epochs x (1 + negatives per positive).
#: Negatives per positive are compared at equal budget (more negatives, fewer epochs), so that
#: "more negatives" does not simply mean "more gradient steps".
BUDGET = {"gmf": 50, "mlp": 60, "neumf": 50, "finetune": 20}


def epochs_for(model: str, n_neg: int) -> int:
    """Epochs that spend ``BUDGET[model]`` pairs per positive with ``n_neg`` negatives."""
    return max(1, round(BUDGET[model] / (1 + int(n_neg))))


GMF_BASE = dict(factors=64, n_neg=4, batch_size=8192, epochs=epochs_for("gmf", 4), decay_to=0.0)
GMF_LR, GMF_WD = (0.005, 0.01, 0.02, 0.04), (0.03, 0.1, 0.3, 1.0)
GMF_FACTORS, GMF_NEG = (8, 16, 32, 128), (1, 2, 8, 16)
MLP_BASE = dict(layers="64-32-16-8", batch_size=2048, decay_to=0.0)
MLP_LR, MLP_WD = (0.003, 0.01, 0.03, 0.06), (0.03, 0.1, 0.3)
NEUMF_BASE = dict(batch_size=8192, decay_to=0.0)
NEUMF_LR, NEUMF_WD = (0.005, 0.01, 0.02), (0.03, 0.1, 0.3, 1.0)
FT_BASE = dict(batch_size=4096, decay_to=0.0, weight_decay=0.0)
FT_ALPHA, FT_LR = (0.25, 0.5, 0.75), (1e-4, 3e-4, 1e-3, 3e-3)


def data() -> dict:
    p = leave_last_out_protocol()
    users, items = p.arrays("train")
    val = ranking_validation(p.val_users, candidates=p.val_candidates, targets=p.val_items,
                             exclude=p.X_train, monitor="full NDCG@10")
    return dict(p=p, users=users, items=items, val=val)


def curve_rows(setting: dict, seed: int, hist) -> list[dict]:
    """One row per epoch (0 = before training) of a validated run."""
    n = len(hist.val["full NDCG@10"])
    return [dict(setting, epoch=e, seed=seed, **{RENAME[k]: v[e] for k, v in hist.val.items()})
            for e in range(n)]


def builder(d: dict, setting: dict) -> Callable[[], keras.Model]:
    p = d["p"]
    if "factors" in setting and "layers" in setting:
        return lambda: build_neumf(p.n_users, p.n_items, int(setting["factors"]), parse_layers(setting["layers"]))
    if "factors" in setting:
        return lambda: build_gmf(p.n_users, p.n_items, int(setting["factors"]))
    return lambda: build_mlp(p.n_users, p.n_items, parse_layers(setting["layers"]))


def validated_run(d: dict, setting: dict, seed: int, weights: np.ndarray | None = None) -> list[dict]:
    """Train one model (GMF, MLP or NeuMF from its sizes in ``setting``) from scratch and
    return its per-epoch validation rows."""
    helpers.seed_everything(seed)
    model = builder(d, setting)()
    cfg = TrainConfig.from_dict(setting).replace(seed=seed)
    hist = train_pointwise(model, d["users"], d["items"], d["p"].n_items, cfg,
                           n_neg=int(setting.get("n_neg", 4)), weights=weights, validation=d["val"])
    return curve_rows(setting, seed, hist)


def with_seed_means(table: pd.DataFrame, keys: list[str], metric: str = METRIC) -> pd.DataFrame:
    """The per-seed table with, on every row, how many seeds ran its setting at its epoch
    (``seeds``), and for those run with every seed the ``mean over seeds`` and ``sd over
    seeds`` of ``metric`` (NaN otherwise); sorted best mean first, then best single value."""
    g = table.groupby(keys, sort=False)[metric]
    table = table.assign(seeds=g.transform("size"))
    full = table["seeds"] == len(SEEDS)
    table["mean over seeds"] = g.transform("mean").where(full)
    table["sd over seeds"] = g.transform("std").where(full)
    return table.sort_values(["mean over seeds", metric], ascending=False, kind="stable").reset_index(drop=True)


REUSE = False  # --reuse: take (setting, seed) runs from the existing table instead of training again


def reusing(name: str, run: Callable[[dict, int], list[dict]]) -> Callable[[dict, int], list[dict]]:
    """``run`` that first looks for the same setting and seed in the table already written
    for ``name`` (runs are seeded and deterministic, so a rerun would give the same rows)."""
    try:
        old = read_table(name).drop(columns=["seeds", "mean over seeds", "sd over seeds"], errors="ignore")
    except FileNotFoundError:
        return run

    def cached(setting: dict, seed: int) -> list[dict]:
        if all(k in old.columns for k in setting):
            mask = (old["seed"] == seed) & np.logical_and.reduce([old[k] == v for k, v in setting.items()])
            if mask.any():
                return old[mask].sort_values("epoch").to_dict("records")
        return run(setting, seed)

    return cached


def seeded_search(name: str, grid: list[dict], run: Callable[[dict, int], list[dict]],
                  keys: list[str], notes: dict, stage2: Callable[[dict], list[dict]] | None = None) -> pd.DataFrame:
    """Grid with seed 0 (plus an optional second stage around the best setting), the three
    best settings again with seeds 1 and 2, the choice by the mean over seeds; the table (one
    row per setting, epoch and seed) is written with :func:`helpers.tuning.write_search`."""
    t0 = time.perf_counter()
    if REUSE:
        run = reusing(name, run)
    rows: list[dict] = []
    for i, setting in enumerate(grid):
        new = run(setting, SEEDS[0])
        rows += new
        print(f"  [{time.perf_counter() - t0:5.0f} s] {i + 1}/{len(grid)} {setting}: "
              f"best {METRIC} {max(r[METRIC] for r in new):.4f}", flush=True)
    if stage2 is not None:
        best = pd.DataFrame(rows).sort_values(METRIC, ascending=False).iloc[0]
        extra = stage2({k: best[k] for k in keys if k != "epoch"})
        for setting in extra:
            rows += run(setting, SEEDS[0])
            print(f"  [{time.perf_counter() - t0:5.0f} s] stage 2 {setting}", flush=True)
    first = pd.DataFrame(rows)
    setting_keys = [k for k in keys if k != "epoch"]
    top = (first.sort_values(METRIC, ascending=False, kind="stable")
           .drop_duplicates(setting_keys).head(3)[setting_keys].to_dict("records"))
    for setting in top:
        for seed in SEEDS[1:]:
            rows += run(setting, seed)
        print(f"  [{time.perf_counter() - t0:5.0f} s] seeds {SEEDS[1:]} for {setting}", flush=True)
    table = with_seed_means(pd.DataFrame(rows), keys)
    best = table.iloc[0]
    choice = {k: best[k] for k in keys}
    minutes = (time.perf_counter() - t0) / 60
    write_search(name, table, choice, "mean over seeds",
                 notes={"script": SCRIPT, "protocol": PROTOCOL, "selection": f"max mean {METRIC} over seeds {SEEDS}",
                        "seeds": f"grid with seed {SEEDS[0]}; the 3 best settings rerun with seeds {SEEDS[1:]}",
                        "settings_tried": int(len(first.drop_duplicates(setting_keys))),
                        "runs": int(len(table.drop_duplicates(setting_keys + ["seed"]))),
                        "minutes": round(minutes, 1), **notes})
    runner = table.dropna(subset=["mean over seeds"]).drop_duplicates(setting_keys).iloc[1]
    print(f"{name}: chose {choice} -> mean {METRIC} {best['mean over seeds']:.4f} "
          f"(sd {best['sd over seeds']:.4f}); next setting {runner['mean over seeds']:.4f}; {minutes:.1f} min", flush=True)
    return table


def search_gmf(d: dict) -> None:
    grid = [dict(GMF_BASE, learning_rate=lr, weight_decay=wd) for lr, wd in itertools.product(GMF_LR, GMF_WD)]

    def stage2(best: dict) -> list[dict]:
        return ([dict(best, factors=f) for f in GMF_FACTORS]
                + [dict(best, n_neg=k, epochs=epochs_for("gmf", k)) for k in GMF_NEG])

    keys = ["factors", "n_neg", "batch_size", "epochs", "decay_to", "learning_rate", "weight_decay", "epoch"]
    seeded_search("ncf_gmf", grid, lambda s, seed: validated_run(d, s, seed), keys,
                  {"grid": f"learning rate {GMF_LR} x weight decay {GMF_WD} at {GMF_BASE}; then factors "
                           f"{GMF_FACTORS} and negatives {GMF_NEG} at the best pair (negatives at an equal "
                           f"budget of {BUDGET['gmf']} pairs per positive: epochs = budget / (1 + negatives))"}, stage2)


def search_mlp(d: dict) -> None:
    n_neg = int(read_choice("ncf_gmf")["n_neg"])
    base = dict(MLP_BASE, n_neg=n_neg, epochs=epochs_for("mlp", n_neg))
    grid = [dict(base, learning_rate=lr, weight_decay=wd) for lr, wd in itertools.product(MLP_LR, MLP_WD)]

    def stage2(best: dict) -> list[dict]:
        return [dict(best, layers="128-64-32-16"),
                dict(best, batch_size=8192, learning_rate=2 * best["learning_rate"])]

    keys = ["layers", "n_neg", "batch_size", "epochs", "decay_to", "learning_rate", "weight_decay", "epoch"]
    seeded_search("ncf_mlp", grid, lambda s, seed: validated_run(d, s, seed), keys,
                  {"grid": f"learning rate {MLP_LR} x weight decay {MLP_WD} at {base}; then the tower "
                           "128-64-32-16 and batch 8192 (learning rate doubled) at the best pair",
                   "negatives": f"{n_neg} (GMF's choice)"}, stage2)


def search_neumf(d: dict) -> None:
    g, m = read_choice("ncf_gmf"), read_choice("ncf_mlp")
    sizes = dict(factors=int(g["factors"]), layers=m["layers"], n_neg=int(g["n_neg"]),
                 epochs=epochs_for("neumf", int(g["n_neg"])))
    grid = [dict(NEUMF_BASE, **sizes, learning_rate=lr, weight_decay=wd) for lr, wd in itertools.product(NEUMF_LR, NEUMF_WD)]
    keys = ["factors", "layers", "n_neg", "batch_size", "epochs", "decay_to", "learning_rate", "weight_decay", "epoch"]
    seeded_search("ncf_neumf", grid, lambda s, seed: validated_run(d, s, seed), keys,
                  {"grid": f"learning rate {NEUMF_LR} x weight decay {NEUMF_WD} at {NEUMF_BASE}; "
                           "GMF's factors and negatives, the MLP's tower"})


def pretrained_parts(d: dict, seed: int, weights: np.ndarray | None = None) -> tuple[keras.Model, keras.Model]:
    """GMF and MLP as chosen, each trained for its chosen epoch (its validation run's schedule)."""
    p, g, m = d["p"], read_choice("ncf_gmf"), read_choice("ncf_mlp")
    parts = []
    for choice, build in ((g, lambda: build_gmf(p.n_users, p.n_items, int(g["factors"]))),
                          (m, lambda: build_mlp(p.n_users, p.n_items, parse_layers(m["layers"])))):
        helpers.seed_everything(seed)
        model = build()
        cfg = TrainConfig.from_dict(choice).refit(int(choice["epoch"])).replace(seed=seed)
        train_pointwise(model, d["users"], d["items"], p.n_items, cfg, n_neg=int(g["n_neg"]), weights=weights)
        parts.append(model)
    return parts[0], parts[1]


def search_finetune(d: dict) -> None:
    p, g, m = d["p"], read_choice("ncf_gmf"), read_choice("ncf_mlp")
    cache: dict[int, tuple[keras.Model, keras.Model]] = {}

    def run(setting: dict, seed: int) -> list[dict]:
        if seed not in cache:
            cache[seed] = pretrained_parts(d, seed)
        gmf, mlp = cache[seed]
        helpers.seed_everything(seed)
        neumf = load_pretrained(build_neumf(p.n_users, p.n_items, int(g["factors"]), parse_layers(m["layers"])),
                                gmf, mlp, float(setting["alpha"]))
        cfg = TrainConfig.from_dict(setting).replace(seed=seed)
        hist = train_pointwise(neumf, d["users"], d["items"], p.n_items, cfg, n_neg=int(g["n_neg"]),
                               validation=d["val"])
        return curve_rows(setting, seed, hist)

    ft_base = dict(FT_BASE, epochs=epochs_for("finetune", int(g["n_neg"])))
    grid = [dict(ft_base, alpha=a, learning_rate=lr) for a, lr in itertools.product(FT_ALPHA, FT_LR)]
    keys = ["alpha", "batch_size", "epochs", "decay_to", "weight_decay", "learning_rate", "epoch"]
    seeded_search("ncf_finetune", grid, run, keys,
                  {"grid": f"alpha {FT_ALPHA} x learning rate {FT_LR} at {ft_base}; epoch 0 = the fused model",
                   "pre-training": "GMF and MLP as chosen (ncf_gmf, ncf_mlp), trained for their chosen epochs"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, choices=["gmf", "mlp", "neumf", "finetune"])
    ap.add_argument("--reuse", action="store_true",
                    help="reuse runs (same setting and seed) from the model's existing results table")
    args = ap.parse_args()
    global REUSE
    REUSE = args.reuse
    d = data()
    {"gmf": search_gmf, "mlp": search_mlp, "neumf": search_neumf, "finetune": search_finetune}[args.model](d)


if __name__ == "__main__":
    main()
