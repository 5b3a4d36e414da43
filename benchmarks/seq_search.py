"""Choose the settings of chapter 10's sequence models on validation. Run by hand, not in CI
(about 15 minutes of CPU on 2 idle cores for all three models, plus about 4 for the blend
stage; longer on a shared machine):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/seq_search.py [--model sasrec] [--blend]

For each model (GRU4Rec, Caser, SASRec) a coordinate search: starting from default settings,
each stage tries every value of one setting with the others at the values picked so far, and
picks the best by validation NDCG@10 on the book's sampled candidates -- except that where the
values differ in cost (``max_len``, ``n_blocks``, Caser's ``window``) the cheapest value within
0.005 of the best is picked, about the seed-to-seed spread of the metric (column ``picked``)
(:func:`helpers.protocol.leave_last_out_protocol`; models trained on the training split,
validated after every epoch, best epoch kept -- :func:`helpers.sequences.fit_sequence_model`).
Full-ranking validation HR@10 / NDCG@10, the best epoch and the training wall and CPU time of
every run are recorded too. Test items are never touched; one seed (0).

The stages hold the studies the chapter shows: the maximum sequence length ``max_len``
(:math:`L`) and ``dropout`` for SASRec and GRU4Rec, Caser's window, the learning rate, and
for SASRec the number of blocks and the training loss (full softmax, sampled softmax, BCE
with one negative per position as in the SASRec paper). Every run trains every target once
per epoch (``stride = max_len``: long histories are cut into rows of ``max_len`` targets), in
batches of about ``batch_positions`` positions (6,400 until the last stage tries 1,600 and
3,200; ``batch_size = batch_positions // max_len`` rows, so every ``L`` gets the same number
of steps per epoch), and stops after 4 epochs without a better validation NDCG@10.

Writes ``benchmarks/results/seq_<model>.csv`` (every run) and ``.json`` (the choice) with
:func:`helpers.tuning.write_search`; the chapter reads both. Runs are cached in
``--cache`` (JSON lines), so an interrupted search resumes where it stopped.

**Blend and seeds** (``--blend``, run after the searches; also part of the default run): each
model's chosen setting is trained on the training split with seeds 0, 1 and 2 for the epoch
count its search run chose (:meth:`helpers.training.TrainConfig.refit`), and its validation
scores are blended with EASE + recency (settings from ``baselines_ease_recency``, chapter 8's
search) as :math:`\alpha z^\text{seq} + (1 - \alpha) z^\text{EASE+rec}`
(:func:`helpers.sequences.blend_scores`) for :math:`\alpha` = 0, 0.1, ..., 1. Writes
``seq_blend.csv`` (model x seed x alpha, sampled and full validation metrics) and
``seq_blend.json``: the model and :math:`\alpha > 0` with the best validation NDCG@10 averaged
over the three seeds (:math:`\alpha` = 1 is the sequence model alone). The seed columns are the
chapter's seed-to-seed spread; test items are never touched.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import helpers  # noqa: F401  (quiet TensorFlow first)

import numpy as np
import pandas as pd

from helpers import baselines
from helpers.encoding import interaction_matrix
from helpers.evaluation import ranking_report
from helpers.preprocessing import recency_weights
from helpers.protocol import leave_last_out_protocol
from helpers.sequences import (blend_scores, fit_sequence_model, next_item_validation, pad_left, score_all,
                               sequence_ranks, user_sequences)
from helpers.tuning import read_choice, read_table, write_search

#: starting settings; every run uses stride = max_len and sampled softmax with 128 negatives
#: unless a stage changes the loss. A batch holds ``batch_positions`` positions (batch_size =
#: batch_positions // max_len rows), so every L gets about the same number of steps per epoch.
DEFAULTS = {
    "sasrec": dict(max_len=50, dim=64, n_blocks=1, n_heads=1, dropout=0.2, loss="sampled_softmax", n_neg=128,
                   epochs=16, learning_rate=5e-3, batch_positions=6400),
    "gru4rec": dict(max_len=50, dim=64, dropout=0.2, loss="sampled_softmax", n_neg=128,
                    epochs=12, learning_rate=5e-3, batch_positions=6400),
    "caser": dict(max_len=50, window=5, dim=64, n_h=16, n_v=4, dropout=0.3, loss="sampled_softmax", n_neg=128,
                  epochs=12, learning_rate=5e-3, batch_positions=6400),
}
#: early stopping: a run stops after PATIENCE epochs without a better validation NDCG@10
PATIENCE = 4
#: the stages, in order: (name, list of setting changes)
STAGES = {
    "sasrec": [
        ("max_len", [dict(max_len=v) for v in (10, 25, 50, 100, 200)]),
        ("dropout", [dict(dropout=v) for v in (0.0, 0.1, 0.2, 0.3, 0.5)]),
        ("n_blocks", [dict(n_blocks=v) for v in (1, 2)]),
        ("learning_rate", [dict(learning_rate=v) for v in (2e-3, 5e-3, 1e-2)]),
        ("loss", [dict(loss="sampled_softmax", n_neg=128), dict(loss="softmax", n_neg=1),
                  dict(loss="bce", n_neg=1)]),
        ("batch_positions", [dict(batch_positions=v) for v in (1600, 3200, 6400)]),
    ],
    "gru4rec": [
        ("learning_rate", [dict(learning_rate=v) for v in (5e-3, 1e-2, 2e-2)]),
        ("max_len", [dict(max_len=v) for v in (10, 25, 50, 100)]),
        ("dropout", [dict(dropout=v) for v in (0.0, 0.2, 0.4)]),
        ("batch_positions", [dict(batch_positions=v) for v in (1600, 3200, 6400)]),
    ],
    "caser": [
        ("window", [dict(window=v) for v in (3, 5, 8)]),
        ("dropout", [dict(dropout=v) for v in (0.1, 0.3, 0.5)]),
        ("learning_rate", [dict(learning_rate=v) for v in (5e-3, 1e-2)]),
        ("batch_positions", [dict(batch_positions=v) for v in (1600, 3200, 6400)]),
    ],
}
METRIC = "val_ndcg10"
#: stages whose settings differ in cost, cheapest first: a costlier setting must beat the
#: cheapest one within TOLERANCE of the stage's best to be kept (about the seed-to-seed spread
#: of validation NDCG@10); other stages keep the best value.
COST_ORDER = {"max_len": "max_len", "n_blocks": "n_blocks", "window": "window"}
TOLERANCE = 0.005


def data() -> dict:
    """Training sequences and the validation set of the book's protocol."""
    p = leave_last_out_protocol()
    seqs = user_sequences(p.train, p.n_users)
    return dict(p=p, seqs=seqs)


def validate(d: dict, kind: str, settings: dict, seed: int = 0) -> dict:
    """One validation run: the model trained on the training split, validated every epoch."""
    p = d["p"]
    val = next_item_validation(pad_left(d["seqs"], int(settings["max_len"])), np.arange(p.n_users),
                               candidates=p.val_candidates, targets=p.val_items, exclude=p.X_train,
                               patience=PATIENCE)
    run = dict(settings, stride=int(settings["max_len"]))
    _, h = fit_sequence_model(kind, d["seqs"], p.n_items, run, seed=seed, validation=val)
    e = h.best_epoch
    return dict(val_hr10=h.val["HR@10"][e], val_ndcg10=h.val["NDCG@10"][e],
                val_full_hr10=h.val["full HR@10"][e], val_full_ndcg10=h.val["full NDCG@10"][e],
                best_epoch=e, train_seconds=h.seconds[-1], train_cpu_seconds=h.cpu_seconds[-1],
                epochs_run=h.epochs, val_ndcg10_curve=json.dumps([round(v, 4) for v in h.val["NDCG@10"]]))


def search(d: dict, kind: str, cache: Path) -> pd.DataFrame:
    done = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            r = json.loads(line)
            if r["model"] == kind:
                done[r["key"]] = r
    best = dict(DEFAULTS[kind])
    rows = []
    for stage, changes in STAGES[kind]:
        stage_rows = []
        for change in changes:
            s = dict(best, **change)
            s["batch_size"] = max(1, int(s["batch_positions"]) // int(s["max_len"]))
            # the run is defined by batch_size; batch_positions stays out of the cache key
            key = json.dumps({k: v for k, v in s.items() if k != "batch_positions"}, sort_keys=True)
            if key not in done:
                t0 = time.perf_counter()
                r = dict(model=kind, key=key, **validate(d, kind, s))
                done[key] = r
                with cache.open("a") as f:
                    f.write(json.dumps(r) + "\n")
                print(f"{kind} {stage:>13} {change}: val NDCG@10 {r['val_ndcg10']:.4f} HR@10 {r['val_hr10']:.4f} "
                      f"full HR@10 {r['val_full_hr10']:.4f} (epoch {r['best_epoch']}; train {r['train_seconds']:.0f} s, "
                      f"CPU {r['train_cpu_seconds']:.0f} s; run {time.perf_counter() - t0:.0f} s)", flush=True)
            r = done[key]
            stage_rows.append(dict(stage=stage, **s, **{k: v for k, v in r.items() if k not in ("model", "key")}))
        rows += stage_rows
        scores = np.array([r[METRIC] for r in stage_rows])
        pick = int(np.argmax(scores))
        if stage in COST_ORDER:  # the cheapest setting within TOLERANCE of the best
            close = [i for i in range(len(stage_rows)) if scores[i] >= scores.max() - TOLERANCE]
            pick = min(close, key=lambda i: stage_rows[i][COST_ORDER[stage]])
        for i, r in enumerate(stage_rows):
            r["picked"] = i == pick
        best = {k: stage_rows[pick][k] for k in DEFAULTS[kind]}
        print(f"{kind}: after stage {stage}: {best}", flush=True)
    return pd.DataFrame(rows)


#: blend weights of the sequence model (1 = alone, 0 = EASE + recency alone) and the seeds
ALPHAS = tuple(round(a / 10, 1) for a in range(11))
SEEDS = (0, 1, 2)


def ease_recency_scores(p) -> np.ndarray:
    """EASE + recency on the training split with chapter 8's validated settings."""
    c = read_choice("baselines_ease_recency")
    tu, ti = p.arrays("train")
    x_w = interaction_matrix(tu, ti, p.n_users, p.n_items, recency_weights(p.train, float(c["tau"]), float(c["boost"])))
    return x_w @ baselines.ease(p.X_train, l2=float(c["l2"]))


def blend(d: dict) -> None:
    """Every model's chosen setting, three seeds, blended with EASE + recency on validation."""
    t0 = time.perf_counter()
    p, users = d["p"], np.arange(d["p"].n_users)
    other = ease_recency_scores(p)
    rows = []
    for kind in DEFAULTS:
        settings = dict(read_choice(f"seq_{kind}"))
        settings["stride"] = int(settings["max_len"])
        t = read_table(f"seq_{kind}")
        epochs = int(t[t["picked"]].iloc[-1]["best_epoch"])
        inputs = pad_left(d["seqs"], int(settings["max_len"]))
        for seed in SEEDS:
            t1 = time.process_time()
            model, _ = fit_sequence_model(kind, d["seqs"], p.n_items, settings, seed=seed, epochs=epochs)
            cpu = time.process_time() - t1
            scores = score_all(model, inputs)
            for alpha in ALPHAS:
                b = blend_scores(scores, other, alpha)
                sampled = ranking_report(sequence_ranks(b, users, candidates=p.val_candidates))
                full = ranking_report(sequence_ranks(b, users, targets=p.val_items, exclude=p.X_train))
                rows.append(dict(model=kind, seed=seed, alpha=alpha, epochs=epochs, train_cpu_seconds=cpu,
                                 val_hr10=sampled["HR@10"], val_ndcg10=sampled["NDCG@10"],
                                 val_full_hr10=full["HR@10"], val_full_ndcg10=full["NDCG@10"]))
            r = [x for x in rows if x["model"] == kind and x["seed"] == seed]
            print(f"blend {kind} seed {seed}: alone val NDCG@10 {r[-1]['val_ndcg10']:.4f}; best alpha "
                  f"{max(r, key=lambda x: x['val_ndcg10'])['alpha']} ({cpu:.0f} s CPU)", flush=True)
    table = pd.DataFrame(rows)
    table["val_ndcg10_seed_mean"] = table.groupby(["model", "alpha"])["val_ndcg10"].transform("mean")
    mean = table[table["alpha"] > 0].groupby(["model", "alpha"])["val_ndcg10"].mean()
    kind, alpha = mean.idxmax()
    choice = dict(model=kind, alpha=float(alpha))
    notes = dict(script="benchmarks/seq_search.py --blend", seeds=list(SEEDS),
                 other="EASE + recency, benchmarks/results/baselines_ease_recency.json",
                 selection="max mean val NDCG@10 (sampled) over seeds, alpha > 0",
                 minutes=round((time.perf_counter() - t0) / 60, 1))
    write_search("seq_blend", table, choice, "val_ndcg10_seed_mean", notes=notes)
    print(f"blend: chose {choice} (mean validation NDCG@10 {mean.max():.4f})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=[*DEFAULTS, "all"], default="all")
    ap.add_argument("--blend", action="store_true", help="only the blend-and-seeds stage (searches done)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "seq_search_runs.jsonl")
    args = ap.parse_args()
    d = data()
    if args.blend:
        blend(d)
        return
    for kind in DEFAULTS if args.model == "all" else [args.model]:
        t0 = time.perf_counter()
        table = search(d, kind, args.cache)
        best = table[table["picked"]].iloc[-1]                              # picked in the last stage
        choice = {k: best[k] for k in [*DEFAULTS[kind], "batch_size"]}
        choice = {k: (v.item() if hasattr(v, "item") else v) for k, v in choice.items()}
        notes = dict(script="benchmarks/seq_search.py", protocol="helpers.protocol.leave_last_out_protocol, "
                     "validation split, sampled (99 negatives) and full ranking", seed=0,
                     stride="max_len (every target once per epoch)", patience=PATIENCE, runs=len(table.drop_duplicates(list(choice))),
                     minutes=round((time.perf_counter() - t0) / 60, 1))
        write_search(f"seq_{kind}", table, choice, METRIC, notes=notes)
        print(f"{kind}: chose {choice} (validation NDCG@10 {best[METRIC]:.4f})", flush=True)
    if args.model == "all":
        blend(d)


if __name__ == "__main__":
    main()
