"""Choose the settings of chapter 10's sequence models on validation. Run by hand, not in CI
(about 15 minutes of CPU on 2 idle cores for all three models; longer on a shared machine):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/seq_search.py [--model sasrec]

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
batches of about 6,400 positions (``batch_size = 6400 // max_len`` rows: the same number of
steps per epoch whatever ``L``), and stops after 4 epochs without a better validation NDCG@10.

Writes ``benchmarks/results/seq_<model>.csv`` (every run) and ``.json`` (the choice) with
:func:`helpers.tuning.write_search`; the chapter reads both. Runs are cached in
``--cache`` (JSON lines), so an interrupted search resumes where it stopped.
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

from helpers.protocol import leave_last_out_protocol
from helpers.sequences import fit_sequence_model, next_item_validation, pad_left, user_sequences
from helpers.tuning import write_search

#: starting settings; every run uses stride = max_len and sampled softmax with 128 negatives
#: unless a stage changes the loss. A batch holds BATCH_POSITIONS positions (batch_size =
#: BATCH_POSITIONS // max_len rows), so every L gets about the same number of steps per epoch.
DEFAULTS = {
    "sasrec": dict(max_len=50, dim=64, n_blocks=1, n_heads=1, dropout=0.2, loss="sampled_softmax", n_neg=128,
                   epochs=16, learning_rate=5e-3),
    "gru4rec": dict(max_len=50, dim=64, dropout=0.2, loss="sampled_softmax", n_neg=128,
                    epochs=12, learning_rate=5e-3),
    "caser": dict(max_len=50, window=5, dim=64, n_h=16, n_v=4, dropout=0.3, loss="sampled_softmax", n_neg=128,
                  epochs=12, learning_rate=5e-3),
}
BATCH_POSITIONS = 6400
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
    ],
    "gru4rec": [
        ("learning_rate", [dict(learning_rate=v) for v in (5e-3, 1e-2, 2e-2)]),
        ("max_len", [dict(max_len=v) for v in (10, 25, 50, 100)]),
        ("dropout", [dict(dropout=v) for v in (0.0, 0.2, 0.4)]),
    ],
    "caser": [
        ("window", [dict(window=v) for v in (3, 5, 8)]),
        ("dropout", [dict(dropout=v) for v in (0.1, 0.3, 0.5)]),
        ("learning_rate", [dict(learning_rate=v) for v in (5e-3, 1e-2)]),
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
            s["batch_size"] = max(1, BATCH_POSITIONS // int(s["max_len"]))
            key = json.dumps(s, sort_keys=True)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=[*DEFAULTS, "all"], default="all")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "seq_search_runs.jsonl")
    args = ap.parse_args()
    d = data()
    for kind in DEFAULTS if args.model == "all" else [args.model]:
        t0 = time.perf_counter()
        table = search(d, kind, args.cache)
        best = table[table["picked"]].iloc[-1]                              # picked in the last stage
        choice = {k: best[k] for k in [*DEFAULTS[kind], "batch_size"]}
        choice = {k: (v.item() if hasattr(v, "item") else v) for k, v in choice.items()}
        notes = dict(script="benchmarks/seq_search.py", protocol="helpers.protocol.leave_last_out_protocol, "
                     "validation split, sampled (99 negatives) and full ranking", seed=0,
                     stride="max_len (every target once per epoch)", batch_positions=BATCH_POSITIONS,
                     patience=PATIENCE, runs=len(table.drop_duplicates(list(choice))),
                     minutes=round((time.perf_counter() - t0) / 60, 1))
        write_search(f"seq_{kind}", table, choice, METRIC, notes=notes)
        print(f"{kind}: chose {choice} (validation NDCG@10 {best[METRIC]:.4f})", flush=True)


if __name__ == "__main__":
    main()
