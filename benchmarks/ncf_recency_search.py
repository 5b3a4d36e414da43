"""Choose the recency weights of pre-trained NeuMF on validation. Run by hand, not in CI,
after ``benchmarks/ncf_search.py`` (it reads the GMF, MLP and fine-tuning choices; about an
hour on the shared 2-core machine):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/ncf_recency_search.py

Each training positive gets the weight ``w = 1 + beta * exp(-r / tau)``
(:func:`helpers.preprocessing.recency_weights`, r = recency rank within the user, 0 = latest)
in the loss of every stage of pre-trained NeuMF. Two stages, on the training split of the
book's protocol (:func:`helpers.protocol.leave_last_out_protocol`), validated on the
validation items only (selection metric: full-ranking validation NDCG@10):

1. **screen** every tau x beta of the grid with GMF alone (the cheapest NCF model; seed 0;
   the settings of ``ncf_gmf``, best epoch);
2. run the whole pipeline (:func:`helpers.ncf.pretrained_neumf`: GMF, MLP, fusion,
   fine-tuning, each stage keeping its best validation epoch, epoch 0 included for
   fine-tuning) for the three best screened settings with seeds 0, 1 and 2, and choose the
   best mean over the seeds. The chosen row also stores the epochs of its seed-0 run, which
   the chapter's refit uses.

The table and the choice are written with :func:`helpers.tuning.write_search` to
``benchmarks/results/ncf_recency.{csv,json}``. The other settings (learning rates, weight
decay, sizes, epochs budget) stay those chosen without weights. Test items are never touched.
"""
from __future__ import annotations

import argparse
import itertools
import time

import helpers  # noqa: F401  (quiet TensorFlow first)

import numpy as np
import pandas as pd

from helpers.ncf import NeuMFSettings, pretrained_neumf
from helpers.preprocessing import recency_weights
from helpers.tuning import read_choice, write_search
from ncf_search import METRIC, PROTOCOL, RENAME, SEEDS, data, validated_run

TAUS = (2.0, 5.0, 10.0, 20.0, 50.0)
BOOSTS = (3.0, 10.0, 30.0, 100.0, 300.0)
N_FINALISTS = 3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--finalists", type=int, default=N_FINALISTS)
    args = ap.parse_args()
    t0 = time.perf_counter()
    d = data()
    g, m, ft = read_choice("ncf_gmf"), read_choice("ncf_mlp"), read_choice("ncf_finetune")
    settings = NeuMFSettings.from_choices(g, m, ft)
    gmf_setting = {k: v for k, v in g.items() if k != "epoch"}
    rows = []
    for tau, boost in itertools.product(TAUS, BOOSTS):
        w = recency_weights(d["p"].train, tau, boost)
        curve = pd.DataFrame(validated_run(d, gmf_setting, SEEDS[0], weights=w))
        best = curve.sort_values(METRIC, ascending=False, kind="stable").iloc[0]
        rows.append(dict(stage="GMF screen", tau=tau, boost=boost, seeds=1,
                         **{c: best[c] for c in curve.columns if c.startswith("val ")}, gmf_epoch=int(best["epoch"])))
        print(f"[{time.perf_counter() - t0:5.0f} s] GMF tau={tau:g} beta={boost:g}: {best[METRIC]:.4f} "
              f"(epoch {int(best['epoch'])})", flush=True)
    screen = pd.DataFrame(rows).sort_values(METRIC, ascending=False, kind="stable")
    for _, row in screen.head(args.finalists).iterrows():
        tau, boost = float(row["tau"]), float(row["boost"])
        w = recency_weights(d["p"].train, tau, boost)
        runs = [pretrained_neumf(d["p"].n_users, d["p"].n_items, d["users"], d["items"], settings, weights=w,
                                 validation=d["val"], seed=seed) for seed in SEEDS]
        finals = [r.histories["fine-tune"] for r in runs]
        rep = {RENAME[k]: float(np.mean([h.best(k) for h in finals])) for k in finals[0].val}
        rows.append(dict(stage="pre-trained NeuMF", tau=tau, boost=boost, seeds=len(SEEDS), **rep,
                         **{f"{METRIC} sd": float(np.std([h.best("full NDCG@10") for h in finals], ddof=1))},
                         gmf_epoch=runs[0].epochs[0], mlp_epoch=runs[0].epochs[1], finetune_epoch=runs[0].epochs[2]))
        print(f"[{time.perf_counter() - t0:5.0f} s] NeuMF tau={tau:g} beta={boost:g}: mean {rep[METRIC]:.4f} "
              f"over seeds {SEEDS}; seed-0 epochs {runs[0].epochs}", flush=True)
    table = pd.DataFrame(rows)
    table["mean over seeds"] = np.where(table["stage"] == "pre-trained NeuMF", table[METRIC], np.nan)
    table = table.sort_values(["mean over seeds", METRIC], ascending=False, kind="stable").reset_index(drop=True)
    best = table.iloc[0]
    keys = ["tau", "boost", "gmf_epoch", "mlp_epoch", "finetune_epoch"]
    choice = {k: (int(best[k]) if k.endswith("epoch") else float(best[k])) for k in keys}
    minutes = (time.perf_counter() - t0) / 60
    write_search("ncf_recency", table, choice, "mean over seeds",
                 notes={"script": "benchmarks/ncf_recency_search.py", "protocol": PROTOCOL,
                        "selection": f"max mean {METRIC} of pre-trained NeuMF over seeds {SEEDS}",
                        "seeds": f"screen with GMF, seed {SEEDS[0]}; {args.finalists} finalists x seeds {SEEDS}",
                        "grid": f"tau {TAUS} x beta {BOOSTS}", "settings_tried": len(TAUS) * len(BOOSTS),
                        "epochs": "gmf_epoch, mlp_epoch, finetune_epoch: the chosen setting's seed-0 run",
                        "minutes": round(minutes, 1)})
    print(f"chose {choice} (mean {METRIC} {best['mean over seeds']:.4f}); {minutes:.1f} min")


if __name__ == "__main__":
    main()
