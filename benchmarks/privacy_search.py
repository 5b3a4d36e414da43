"""Validation searches for chapter 17's privacy section (run by hand; measured on the shared
2-core machine at a load of about 7: ``central`` 0.5 min, ``dp`` 2.5 min, ``fed`` 4.4 min):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/privacy_search.py --part central
    ... --part dp ; ... --part fed

Every model is :class:`helpers.privacy.DotModel` (logistic MF, 32 factors) trained on the
training split of :func:`helpers.protocol.leave_last_out_protocol` **minus a random 10 % of its
rows** (:func:`helpers.privacy.membership_holdout`, seed 0), held back as the non-members of the membership-inference
attack. Selection is by sampled validation HR@10 (1 + 99 candidates, seed 1); test items are
never touched.

* ``central``: plain mini-batch SGD (no clipping, no noise), learning rate x epochs ->
  ``privacy_central``;
* ``dp``: DP-SGD at noise multipliers 0.5, 1, 2, 4 (Poisson rate 0.05, 10 epochs = 200 steps),
  learning rate x clip norm per multiplier -> ``privacy_dp`` (the choice is the best setting at
  the chapter's policy noise multiplier, 1.0; the table holds the best of every multiplier);
* ``fed``: FedAvg (one client per user, 5 local steps), client learning rate x server
  learning rate at 10 % of clients per round, then 5 % and 20 % at the best pair; validated
  every 10 rounds up to 100 -> ``privacy_fed`` (setting and round).
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import pandas as pd

from helpers.evaluation import evaluate_sampled
from helpers.privacy import DotModel, dp_epsilon, fedavg, fixed_negatives, membership_holdout, train_dp_sgd
from helpers.protocol import leave_last_out_protocol
from helpers.tuning import write_search

DIM, STD, N_NEG, Q, EPOCHS, DELTA = 32, 0.1, 4, 0.05, 10, 1e-5
POLICY_SIGMA = 1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["central", "dp", "fed"], required=True)
    args = ap.parse_args()
    p = leave_last_out_protocol()
    u, i, _, _ = membership_holdout(*p.arrays("train"))

    def val(m: DotModel) -> float:
        return float(evaluate_sampled(m.logits, p.val_users, p.val_candidates)["HR@10"])

    t0 = time.time()
    notes = {"script": "benchmarks/privacy_search.py", "model": f"DotModel, {DIM} factors, init sd {STD}",
             "data": "train minus a random 10 % (seed 0) kept for the membership attack",
             "selection": "max sampled validation HR@10 (1 + 99, seed 1), seed 0"}
    if args.part in ("central", "dp"):
        U, I, Y = fixed_negatives(u, i, p.n_items, N_NEG, seed=0)
        rows = []
        if args.part == "central":
            for lr, epochs in itertools.product([100.0, 300.0, 1000.0], [5, 10, 20]):
                m = DotModel.init(p.n_users, p.n_items, DIM, STD, 0)
                train_dp_sgd(m, U, I, Y, epochs=epochs, sampling_rate=Q, lr=lr)
                rows.append(dict(lr=lr, epochs=epochs, val_hr10=val(m)))
                print(rows[-1], flush=True)
            table = pd.DataFrame(rows).sort_values("val_hr10", ascending=False, ignore_index=True)
            choice = table.iloc[0][["lr", "epochs"]].to_dict()
            notes.update(grid="lr (100, 300, 1000) x epochs (5, 10, 20), Poisson rate 0.05, 4 fixed negatives")
        else:
            for sigma, lr, clip in itertools.product([0.5, 1.0, 2.0, 4.0], [100.0, 300.0, 1000.0], [0.25, 1.0]):
                m = DotModel.init(p.n_users, p.n_items, DIM, STD, 0)
                steps = train_dp_sgd(m, U, I, Y, epochs=EPOCHS, sampling_rate=Q, lr=lr, clip=clip,
                                     noise_multiplier=sigma)
                rows.append(dict(sigma=sigma, lr=lr, clip=clip, steps=steps,
                                 eps_rdp=dp_epsilon(sigma, Q, steps, DELTA, "rdp"), val_hr10=val(m)))
                print(rows[-1], flush=True)
            table = pd.DataFrame(rows).sort_values("val_hr10", ascending=False, ignore_index=True)
            choice = table[table.sigma == POLICY_SIGMA].iloc[0][["sigma", "lr", "clip"]].to_dict()
            notes.update(grid="noise multiplier (0.5, 1, 2, 4) x lr (100, 300, 1000) x clip (0.25, 1)",
                         policy=f"noise multiplier {POLICY_SIGMA} is a privacy policy, not tuned; "
                                f"Poisson rate {Q}, {EPOCHS} epochs, delta {DELTA}")
        name = f"privacy_{args.part}"
    else:
        rows = []

        def run(lr: float, server_lr: float, fraction: float) -> None:
            hist: dict[int, float] = {}
            fedavg(u, i, p.n_users, p.n_items, dim=DIM, rounds=100, client_fraction=fraction,
                   local_steps=5, lr=lr, server_lr=server_lr, n_neg=N_NEG, std=STD, seed=0,
                   on_round_end=lambda r, m: hist.__setitem__(r, val(m)) if r % 10 == 0 else None)
            for r, v in hist.items():
                rows.append(dict(lr=lr, server_lr=server_lr, fraction=fraction, round=r, val_hr10=v))
            print(rows[-1], max(hist.values()), flush=True)

        for lr, slr in itertools.product([5.0, 10.0, 20.0], [10.0, 30.0]):
            run(lr, slr, 0.1)
        best = pd.DataFrame(rows).sort_values("val_hr10", ascending=False).iloc[0]
        for fr in (0.05, 0.2):
            run(float(best.lr), float(best.server_lr), fr)
        table = pd.DataFrame(rows).sort_values("val_hr10", ascending=False, ignore_index=True)
        choice = table[table.fraction == 0.1].iloc[0][["lr", "server_lr", "fraction", "round"]].to_dict()
        notes.update(grid="client lr (5, 10, 20) x server lr (10, 30) at 10 % of clients; 5 % and 20 % "
                          "at the best pair; validated every 10 rounds up to 100; the choice is at 10 %",
                     local_steps=5)
        name = "privacy_fed"
    notes["minutes"] = round((time.time() - t0) / 60, 1)
    write_search(name, table, choice, "val_hr10", notes=notes)
    print(name, choice, notes["minutes"], "min")


if __name__ == "__main__":
    main()
