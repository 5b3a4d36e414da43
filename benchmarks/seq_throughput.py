"""Sequence-to-sequence training against the common tutorial recipe, side by side in one run.
Run by hand, not in CI (several minutes; the window recipe is the slow part):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/seq_throughput.py [--target 0.70]

Both train the same SASRec (chapter 10's settings, ``benchmarks/results/seq_sasrec.json``) on
the training split of the book's protocol and are validated after every epoch on the sampled
validation candidates:

* **chapter loop** (:func:`helpers.sequences.fit_sequence_model`): one row of up to ``L``
  positions per user (long histories cut into rows of ``L`` targets), every position predicts
  its next item, sampled softmax, the epoch compiled into one graph
  (:func:`helpers.training.compiled_epoch`);
* **tutorial recipe**: one sliding window per target (the ``L`` items before it, left-padded),
  the model's last position predicts the target with a full softmax, ``model.fit(batch_size=256)``.

Both see every training target once per epoch. Printed: user histories per second (an epoch
covers all 943 histories), targets per second, wall and CPU seconds per epoch, and the
training time until validation HR@10 first reaches each of ``--targets``; then the ratios.
The window recipe takes many more optimiser steps per epoch (one per 256 windows), so it
learns more per epoch: the time-to-quality ratio is smaller than the throughput ratio. Times exclude validation. The machine's other load inflates
wall times; CPU times are printed beside them. The same numbers are written to
``benchmarks/results/seq_throughput.json`` (the chapter quotes them).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import helpers  # noqa: F401  (quiet TensorFlow first)

import keras
import numpy as np
from keras import ops

from helpers.protocol import leave_last_out_protocol
from helpers.sequences import (build_sasrec, fit_sequence_model, next_item_arrays, next_item_validation, pad_left,
                               user_sequences)
from helpers.tuning import read_choice

FALLBACK = dict(max_len=50, dim=64, n_blocks=1, n_heads=1, dropout=0.2, loss="sampled_softmax", n_neg=128,
                epochs=16, batch_size=128, learning_rate=5e-3)


class TiedLogits(keras.layers.Layer):
    """Scores of every item from a hidden state, with the input embedding table (row 0 = padding)."""

    def __init__(self, embedding: keras.layers.Embedding, **kwargs):
        super().__init__(**kwargs)
        self.embedding = embedding

    def call(self, h):
        return ops.matmul(h, ops.transpose(self.embedding.embeddings[1:]))


def sliding_windows(seqs: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """One window per target: the ``max_len`` items before it (shifted by one, left-padded)
    and the target's 0-based index -- the recipe of most tutorials."""
    xs, ys = [], []
    for s in seqs:
        for i in range(1, len(s)):
            xs.append(pad_left([s[max(0, i - max_len):i]], max_len)[0])
            ys.append(s[i])
    return np.stack(xs), np.asarray(ys, dtype=np.int32)


def first_reaching(values: list[float], seconds: list[float], target: float) -> float:
    """Training seconds when the validation metric first reached ``target`` (inf if never).
    ``values[0]`` is measured before training, ``values[e]`` after epoch ``e``."""
    for e, v in enumerate(values[1:], start=1):
        if v >= target:
            return seconds[e - 1]
    return float("inf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.70, 0.73, 0.75],
                    help="validation HR@10 levels to time")
    ap.add_argument("--max-epochs", type=int, default=16)
    ap.add_argument("--max-minutes", type=float, default=15.0, help="time limit of the window recipe")
    args = ap.parse_args()
    try:
        settings = read_choice("seq_sasrec")
    except FileNotFoundError:
        settings = dict(FALLBACK)
    settings["epochs"] = args.max_epochs
    L = int(settings["max_len"])
    p = leave_last_out_protocol()
    seqs = user_sequences(p.train, p.n_users)
    val = next_item_validation(pad_left(seqs, L), np.arange(p.n_users), candidates=p.val_candidates,
                               monitor="HR@10")
    print(f"SASRec settings: {settings}")

    # --- the chapter's loop
    _, hist = fit_sequence_model("sasrec", seqs, p.n_items, dict(settings, stride=L), seed=0, validation=val)
    x_rows, y_rows, _ = next_item_arrays(seqs, L, L)
    n_rows, n_targets = len(x_rows), int((y_rows > 0).sum())
    ep_wall = float(np.median(np.diff([0.0] + hist.seconds)[1:]))    # steady state: tracing in epoch 1
    ep_cpu = float(np.median(np.diff([0.0] + hist.cpu_seconds)[1:]))
    fast = dict(histories=p.n_users / ep_wall, targets=n_targets / ep_wall, wall=ep_wall, cpu=ep_cpu,
                to={t: first_reaching(hist.val["HR@10"], hist.seconds, t) for t in args.targets},
                best=max(hist.val["HR@10"]))
    print(f"chapter loop: {n_rows} rows ({n_targets} targets) per epoch; {ep_wall:.2f} s wall, {ep_cpu:.2f} s CPU "
          f"per epoch; validation HR@10 per epoch {[round(v, 3) for v in hist.val['HR@10']]}", flush=True)

    # --- the tutorial recipe: sliding windows + model.fit(batch_size=256), full softmax
    xw, yw = sliding_windows(seqs, L)
    helpers.seed_everything(0)
    kw = {k: settings[k] for k in ("dim", "n_blocks", "n_heads", "dropout")}
    kw = {k: (float(v) if k == "dropout" else int(v)) for k, v in kw.items()}
    enc = build_sasrec(p.n_items, L, **kw)
    last = keras.layers.Lambda(lambda h: h[:, -1], name="last_position")(enc.output)
    model = keras.Model(enc.input, TiedLogits(enc.get_layer("item_embedding"), name="logits")(last))
    model.compile(optimizer=keras.optimizers.Adam(float(settings["learning_rate"])),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hr, seconds, cpus = [val.evaluate(enc)["HR@10"]], [], []
    wall = cpu = 0.0
    for epoch in range(1, args.max_epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(xw, yw, batch_size=256, epochs=1, shuffle=True, verbose=0)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        seconds.append(wall)
        cpus.append(cpu)
        hr.append(val.evaluate(enc)["HR@10"])
        print(f"  window recipe epoch {epoch}: {wall:.0f} s wall, {cpu:.0f} s CPU so far; validation HR@10 "
              f"{hr[-1]:.3f}", flush=True)
        if hr[-1] >= max(args.targets) or wall > 60 * args.max_minutes:
            break
    ep_wall_w = float(np.median(np.diff([0.0] + seconds)[1:])) if len(seconds) > 1 else seconds[0]
    ep_cpu_w = float(np.median(np.diff([0.0] + cpus)[1:])) if len(cpus) > 1 else cpus[0]
    slow = dict(histories=p.n_users / ep_wall_w, targets=len(xw) / ep_wall_w, wall=ep_wall_w, cpu=ep_cpu_w,
                to={t: first_reaching(hr, seconds, t) for t in args.targets}, best=max(hr))

    print(f"\n{'':>30} {'chapter loop':>14} {'windows + fit':>14} {'ratio':>8}")
    for key, label in [("histories", "user histories per second"), ("targets", "targets per second")]:
        print(f"{label:>30} {fast[key]:>14,.0f} {slow[key]:>14,.0f} {fast[key] / slow[key]:>7.1f}x")
    for key, label in [("wall", "s per epoch (wall)"), ("cpu", "s per epoch (CPU)")]:
        print(f"{label:>30} {fast[key]:>14.2f} {slow[key]:>14.2f} {slow[key] / fast[key]:>7.1f}x")
    for t in args.targets:
        f_t, s_t = fast["to"][t], slow["to"][t]
        reached = np.isfinite(s_t)
        s_t = s_t if reached else seconds[-1]                       # not reached: a lower bound
        ratio = s_t / f_t if np.isfinite(f_t) else float("nan")
        mark = "" if reached else ">"
        print(f"{'s to validation HR@10 >= ' + f'{t:.2f}':>30} {f_t:>14.1f} {mark + f'{s_t:.1f}':>14} "
              f"{mark + f'{ratio:.1f}':>7}x")
    print(f"{'best validation HR@10':>30} {fast['best']:>14.3f} {slow['best']:>14.3f}")
    steps = (int(np.ceil(n_rows / int(settings["batch_size"]))), int(np.ceil(len(xw) / 256)))
    print("(one epoch of the chapter loop is {} optimiser steps, of the window recipe {})".format(*steps))

    def plain(side: dict) -> dict:
        """JSON-ready: floats, and None for a target never reached."""
        out = {k: float(v) for k, v in side.items() if k != "to"}
        out["seconds_to"] = {f"{t:.2f}": (float(v) if np.isfinite(v) else None) for t, v in side["to"].items()}
        return out

    out = dict(script="benchmarks/seq_throughput.py", model="sasrec", settings=settings, targets=list(args.targets),
               max_minutes=args.max_minutes, steps_per_epoch=dict(loop=steps[0], windows=steps[1]),
               loop=plain(fast), windows=plain(slow), windows_epochs_run=len(seconds),
               windows_seconds_run=float(seconds[-1]))
    path = Path(__file__).resolve().parent / "results" / "seq_throughput.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
