"""Choose the recency weights of pre-trained NeuMF on validation, averaging three seeds.
Run by hand, not in CI (about 15 minutes on 2 cores):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/ncf_recency_search.py

For every :math:`\\tau \\in \\{5, 10, 20\\}` and :math:`\\beta \\in \\{3, 10, 30\\}` (plus
:math:`\\beta = 0`, no weighting, for reference) and seeds 0, 1, 2 it runs the chapter's
pipeline (notebooks/08_ncf.ipynb) on the training split: GMF and the MLP tower trained with
``weights=recency_weights(train, tau, beta)``, fused with alpha = 0.5, fine-tuned, each stage
keeping its best validation epoch. It prints validation HR@10 / NDCG@10 per setting (mean and
standard deviation over the seeds) and the setting with the best mean NDCG@10, which the
chapter uses. Test items are never touched. Single-seed differences between neighbouring
settings are about the size of the seed-to-seed spread, hence the three seeds.
"""
from __future__ import annotations

import argparse
import itertools
import time

import helpers  # noqa: F401  (quiet TensorFlow first)

import numpy as np

from helpers.evaluation import evaluate_sampled
from helpers.ncf import build_gmf, build_mlp, build_neumf, load_pretrained, pair_scorer, train_pointwise
from helpers.preprocessing import recency_weights
from ncf_throughput import FACTORS, LAYERS, N_NEG, load  # the chapter's model sizes and data

RUNS = {  # the chapter's settings (notebooks/08_ncf.ipynb)
    "GMF": dict(epochs=8, batch_size=8192, learning_rate=0.02, weight_decay=0.3, decay_to=0.0),
    "MLP": dict(epochs=12, batch_size=2048, learning_rate=0.01, weight_decay=0.1, decay_to=0.0),
    "NeuMF fine-tune": dict(epochs=3, batch_size=4096, learning_rate=0.001, decay_to=0.0),
}


def pretrained_neumf(d: dict, weights: np.ndarray | None, seed: int) -> dict[str, float]:
    """Validation HR@10 / NDCG@10 of pre-trained NeuMF as the chapter selects it."""
    common = dict(n_neg=N_NEG, seed=seed, weights=weights, val_users=d["val_users"],
                  val_candidates=d["val_candidates"], monitor="NDCG@10")
    helpers.seed_everything(seed)
    gmf = build_gmf(d["n_users"], d["n_items"], FACTORS)
    train_pointwise(gmf, d["users"], d["items"], d["n_items"], **RUNS["GMF"], **common)
    helpers.seed_everything(seed)
    mlp = build_mlp(d["n_users"], d["n_items"], LAYERS)
    train_pointwise(mlp, d["users"], d["items"], d["n_items"], **RUNS["MLP"], **common)
    helpers.seed_everything(seed)
    neumf = load_pretrained(build_neumf(d["n_users"], d["n_items"], FACTORS, LAYERS), gmf, mlp, 0.5)
    fused = evaluate_sampled(pair_scorer(neumf), d["val_users"], d["val_candidates"])
    hist = train_pointwise(neumf, d["users"], d["items"], d["n_items"], **RUNS["NeuMF fine-tune"], **common)
    b = hist.best_epoch - 1
    if hist.val["NDCG@10"][b] > fused["NDCG@10"]:
        return {"HR@10": hist.val["HR@10"][b], "NDCG@10": hist.val["NDCG@10"][b]}
    return {"HR@10": fused["HR@10"], "NDCG@10": fused["NDCG@10"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    d = load()
    settings = [(None, 0.0)] + list(itertools.product([5, 10, 20], [3.0, 10.0, 30.0]))
    results = {}
    t0 = time.perf_counter()
    for tau, boost in settings:
        w = None if boost == 0 else recency_weights(d["train"], tau, boost)
        runs = [pretrained_neumf(d, w, seed) for seed in range(args.seeds)]
        hr = np.array([r["HR@10"] for r in runs])
        ndcg = np.array([r["NDCG@10"] for r in runs])
        results[tau, boost] = ndcg.mean()
        label = "unweighted" if boost == 0 else f"tau={tau:>2}, beta={boost:>4g}"
        print(f"{label:>18}: val HR@10 {hr.mean():.4f} (sd {hr.std(ddof=1):.4f}), "
              f"NDCG@10 {ndcg.mean():.4f} (sd {ndcg.std(ddof=1):.4f})  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    tau, boost = max((k for k in results if k[1] > 0), key=results.get)
    print(f"\nbest mean validation NDCG@10 over {args.seeds} seeds: tau={tau}, beta={boost:g} "
          f"({results[tau, boost]:.4f}; unweighted {results[None, 0.0]:.4f})")


if __name__ == "__main__":
    main()
