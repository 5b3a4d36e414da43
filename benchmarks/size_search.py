"""Validation search for chapter 17's size section (run by hand; 2.9 minutes on the shared
2-core machine at a load of about 6):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/size_search.py

The reference is NeuMF with chapter 8's validated settings (``benchmarks/results/ncf_neumf.json``),
trained on the training split of :func:`helpers.protocol.leave_last_out_protocol` for the
epoch chapter 8 chose. Every candidate is scored by sampled validation HR@10 (1 + 99, seed 1)
and by its bytes; test items are never touched. Candidates:

* the reference with magnitude pruning of its four embedding tables (one global threshold;
  sparsities 50 %, 75 %, 87.5 %, 93.75 %; no retraining), stored as CSR (4-byte values, 2-byte
  column indices) beside the float32 dense layers;
* GMF students with 8, 16 or 32 factors trained on the labels (``alpha = 1``), on the
  teacher's probabilities (``alpha = 0``) or both (``alpha = 0.5``;
  :func:`helpers.compress.distillation_loss`, temperature 1), with GMF's chapter-8 training settings;
* GMF-32 with hashed user and item tables (half or a quarter of the rows) and with low-rank
  tables (rank 4 or 8; the factors initialised with the book's sd 0.01 setting or a larger one,
  since a product of two tiny factors starts near a saddle point), trained on the labels;
* GMF-32 with mixed-dimension tables: the 25 % most frequent users and films (in the training
  rows) keep 32-wide rows, the others get 4- or 8-wide rows and a shared projection
  (:class:`helpers.compress.MixedDimEmbedding`; initial sd 0.01 or 0.1), trained on the labels;
* every plain and hashed GMF also with int8 embedding tables (:func:`helpers.compress.fake_quantized`, one
  float32 scale per row; its bytes: ``rows x (factors + 4)`` per table).

The choice (``size_search.json``) is the **smallest** candidate at least 8x smaller than the
float32 reference whose validation HR@10 is within 0.01 of the reference's validation HR@10
(the notes record the reference's validation HR@10 and bytes).
"""
from __future__ import annotations

import time

import keras
import numpy as np
import pandas as pd

from helpers.compress import (build_small_gmf, fake_quantized, frequent_ids, magnitude_mask, model_bytes,
                              sparse_bytes, train_distilled)
from helpers.evaluation import evaluate_sampled
from helpers.ncf import build_gmf, build_neumf, pair_scorer, parse_layers, train_pointwise
from helpers.protocol import leave_last_out_protocol
from helpers.repro import seed_everything
from helpers.training import TrainConfig
from helpers.tuning import read_choice, write_search

EMB = ("gmf_user", "gmf_item", "mlp_user", "mlp_item")
HEAD_SHARE = 0.25



def train_reference(p, u, i) -> keras.Model:
    """NeuMF with chapter 8's choice, trained on ``u, i`` for the chosen epoch (seed 0)."""
    ch = read_choice("ncf_neumf")
    seed_everything(0)
    m = build_neumf(p.n_users, p.n_items, int(ch["factors"]), parse_layers(ch["layers"]))
    train_pointwise(m, u, i, p.n_items, TrainConfig.from_dict(ch).refit(int(ch["epoch"])), n_neg=int(ch["n_neg"]))
    return m


def main() -> None:
    t0 = time.time()
    p = leave_last_out_protocol()
    u, i = p.arrays("train")

    def val(m: keras.Model) -> float:
        return float(evaluate_sampled(pair_scorer(m), p.val_users, p.val_candidates)["HR@10"])

    ref = train_reference(p, u, i)
    ref_val, ref_bytes = val(ref), model_bytes(ref)
    rows = []
    base = dict(factors=0, alpha=-1.0, buckets=0.0, rank=0, tail_dim=0, init_std=0.01, sparsity=0.0, bits=32)

    def add(family: str, val_hr10: float, nbytes: float, **kw) -> None:
        rows.append({"family": family, **base, **kw, "bytes": int(nbytes), "val_hr10": val_hr10})
        print(rows[-1], flush=True)

    # pruning the reference's embedding tables, one global magnitude threshold
    weights = {v.path: v.numpy() for v in ref.weights}
    emb_paths = [f"{n}/embeddings" for n in EMB]
    flat = np.concatenate([weights[k].ravel() for k in emb_paths])
    other = 4 * sum(w.size for k, w in weights.items() if k not in emb_paths)
    for s in (0.5, 0.75, 0.875, 0.9375):
        keep = magnitude_mask(flat, s)
        pruned = keras.models.clone_model(ref)
        pruned.set_weights(ref.get_weights())
        nbytes, start = other, 0
        for k in emb_paths:
            w = weights[k]
            m = keep[start:start + w.size].reshape(w.shape)
            start += w.size
            pruned.get_layer(k.split("/")[0]).embeddings.assign(np.where(m, w, 0.0))
            nbytes += sparse_bytes(m)
        add("NeuMF pruned", val(pruned), nbytes, factors=64, sparsity=s)

    gmf_cfg = TrainConfig.from_dict(read_choice("ncf_gmf"))
    teacher = ref

    def student(model: keras.Model, family: str, alpha: float, **kw) -> None:
        if alpha == 1.0:
            train_pointwise(model, u, i, p.n_items, gmf_cfg, n_neg=4)
        else:
            train_distilled(model, teacher, u, i, p.n_items, gmf_cfg, n_neg=4, alpha=alpha)
        add(family, val(model), model_bytes(model), alpha=alpha, **kw)
        if family in ("GMF", "GMF hashed"):  # fake_quantized handles Embedding-style tables only
            q, nbytes = fake_quantized(model, 8)
            add(family, val(q), nbytes, alpha=alpha, bits=8, **kw)

    for f in (8, 16, 32):
        for alpha in (1.0, 0.5, 0.0):
            seed_everything(0)
            student(build_gmf(p.n_users, p.n_items, f), "GMF", alpha, factors=f)
    for share in (0.5, 0.25):
        seed_everything(0)
        m = build_small_gmf(p.n_users, p.n_items, 32, user_buckets=int(p.n_users * share),
                            item_buckets=int(p.n_items * share))
        student(m, "GMF hashed", 1.0, factors=32, buckets=share)
    for r in (4, 8):
        for std in (0.01, 0.1):  # the product A B starts near a saddle with tiny factors
            seed_everything(0)
            student(build_small_gmf(p.n_users, p.n_items, 32, rank=r, std=std), "GMF low-rank", 1.0,
                    factors=32, rank=r, init_std=std)

    head_users, head_items = frequent_ids(u, p.n_users, HEAD_SHARE), frequent_ids(i, p.n_items, HEAD_SHARE)
    for td in (4, 8):
        for std in (0.01, 0.1):
            seed_everything(0)
            m = build_small_gmf(p.n_users, p.n_items, 32, head_users=head_users, head_items=head_items,
                                tail_dim=td, std=std)
            student(m, "GMF mixed-dim", 1.0, factors=32, tail_dim=td, init_std=std)

    table = pd.DataFrame(rows)
    ok = table[(table.bytes * 8 <= ref_bytes) & (table.val_hr10 >= ref_val - 0.01)]
    if ok.empty:  # nothing meets the target on validation: the best of the 8x-smaller ones
        ok = table[table.bytes * 8 <= ref_bytes].sort_values("val_hr10", ascending=False)
    else:
        ok = ok.sort_values(["bytes", "val_hr10"], ascending=[True, False])
    choice = ok.iloc[0][["family", "factors", "alpha", "buckets", "rank", "tail_dim", "init_std", "sparsity",
                         "bits"]].to_dict()
    minutes = round((time.time() - t0) / 60, 1)
    write_search("size_search", table.sort_values("bytes", ignore_index=True), choice, "val_hr10", notes={
        "script": "benchmarks/size_search.py",
        "reference": f"NeuMF (ncf_neumf choice) trained on train: val HR@10 {ref_val:.4f}, {ref_bytes} bytes",
        "selection": "smallest candidate >= 8x smaller than the reference with val HR@10 >= reference - 0.01",
        "seed": 0, "minutes": minutes})
    print(choice, minutes, "min")


if __name__ == "__main__":
    main()
