"""Choose the CNN news model of chapter 11 on validation. Run by hand, not in CI (about 30
minutes on 2 shared cores):

    RECSYS_DATA_DIR=/path/to/data .venv/bin/python benchmarks/content_search.py

Protocol (written into the JSON notes, which the chapter reads instead of retyping): the
DKN Bing News training file is split *by title* (:func:`helpers.text.holdout_titles`,
``VAL_SHARE`` of the distinct titles, seed ``SPLIT_SEED``): every row of a held-out title is
a validation row, so validation titles are unseen in training, as all test titles are.
Vocabularies come from the fit rows; a user's history is their last ``MAX_HISTORY``
clicked (and, for ``use_skipped``, shown-but-not-clicked) fit titles. Every run trains a
:class:`helpers.text.NewsClickModel` with :func:`helpers.text.fit_click_model` for at most
``EPOCHS`` epochs, keeping the epoch with the best validation AUC (patience ``PATIENCE``).

Two stages, each setting run with seeds 0 and 1 (the selection metric is the mean best
validation AUC over the two seeds):

1. **architecture** at default sizes: user encoder (mean, inner-product attention, MLP
   attention) x skipped-title profile (no, yes) x entity channel (no, yes);
2. **initialisation, size and optimisation** around the best architecture: word embeddings
   started at random or from PPMI co-occurrence vectors of the fit titles
   (:func:`helpers.text.ppmi_word_vectors`, the role word2vec plays in DKN) x dropout x
   embedding and filter size x learning rate.

Writes ``benchmarks/results/news_cnn.{csv,json}`` with :func:`helpers.tuning.write_search`.
The test file is never read.
"""
from __future__ import annotations

import itertools
import time

import helpers  # noqa: F401  (quiet TensorFlow first)

import numpy as np
import pandas as pd

from helpers import metrics, text
from helpers.data import load_dkn_news
from helpers.training import TrainConfig, Validation
from helpers.tuning import write_search

VAL_SHARE = 0.15
SPLIT_SEED = 0
MAX_LEN = 12
MIN_COUNT = 2
MAX_HISTORY = 32
EPOCHS = 15
PATIENCE = 3
BATCH = 256
WIDTHS = "1,2,3"
SEEDS = (0, 1)
DEFAULTS = dict(word_init="random", word_dim=32, filters=32, dropout=0.2, learning_rate=1e-3)
METRIC = "val AUC"


def data() -> dict:
    """The fit/validation arrays of the protocol above (the chapter builds the same)."""
    train, _ = load_dkn_news()
    held = text.holdout_titles(train["title"], VAL_SHARE, seed=SPLIT_SEED)
    fit, val = train[~held].reset_index(drop=True), train[held].reset_index(drop=True)
    news = text.vectorise_news(fit, [val], max_len=MAX_LEN, min_count=MIN_COUNT)
    d = dict(news=news, fit=fit, val=val)
    for name, f in (("fit", fit), ("val", val)):
        d[f"u_{name}"], d[f"i_{name}"] = news.user_codes(f), news.items(f)
        d[f"y_{name}"] = f["label"].to_numpy()
    n = len(news.users)
    d["clicked"] = text.user_histories(d["u_fit"], d["i_fit"], d["y_fit"], MAX_HISTORY, n)
    d["skipped"] = text.user_histories(d["u_fit"], d["i_fit"], 1 - d["y_fit"], MAX_HISTORY, n)
    return d


def build(d: dict, setting: dict):
    news = d["news"]
    vectors = None
    if setting["word_init"] == "ppmi":
        vectors = text.ppmi_word_vectors(news.words[np.unique(d["i_fit"])], len(news.vocabulary),
                                         int(setting["word_dim"]))  # the distinct fit titles
    widths = tuple(int(w) for w in str(setting.get("widths", WIDTHS)).split(","))
    ents = bool(setting["entities"])
    enc = text.build_title_encoder(len(news.vocabulary), MAX_LEN,
                                   n_entities=len(news.entity_vocabulary) if ents else 0,
                                   word_dim=int(setting["word_dim"]), entity_dim=int(setting["word_dim"]),
                                   widths=widths, filters=int(setting["filters"]),
                                   dropout=float(setting["dropout"]), word_vectors=vectors)
    return text.NewsClickModel(enc, news.words, news.entities if ents else None,
                               user_encoder=setting["user_encoder"], use_skipped=bool(setting["use_skipped"]))


def run(d: dict, setting: dict, seed: int):
    """Train one setting with one seed; return (model, history)."""
    helpers.seed_everything(seed)
    model = build(d, setting)
    skip = bool(setting["use_skipped"])

    def evaluate(m):
        p = text.predict_click_model(m, d["i_val"], d["clicked"][d["u_val"]],
                                     d["skipped"][d["u_val"]] if skip else None, users=d["u_val"])
        return {"AUC": metrics.auc(d["y_val"], p), "GAUC": metrics.grouped_auc(d["u_val"], d["y_val"], p)[0]}

    config = TrainConfig(epochs=EPOCHS, batch_size=BATCH, learning_rate=float(setting["learning_rate"]),
                         seed=seed)
    hist = text.fit_click_model(model, d["i_fit"], d["clicked"][d["u_fit"]], d["y_fit"], d["u_fit"], config,
                                skipped=d["skipped"][d["u_fit"]] if skip else None,
                                validation=Validation(evaluate, monitor="AUC", mode="max", patience=PATIENCE))
    return model, hist


def evaluate_setting(d: dict, setting: dict, stage: str) -> dict:
    hists = [run(d, setting, s)[1] for s in SEEDS]
    row = dict(stage=stage, **setting)
    row[METRIC] = float(np.mean([h.best("AUC") for h in hists]))
    row["val AUC sd"] = float(np.std([h.best("AUC") for h in hists], ddof=1))
    row["val GAUC"] = float(np.mean([h.val["GAUC"][h.best_epoch] for h in hists]))
    row["best epochs"] = ",".join(str(h.best_epoch) for h in hists)
    row["cpu s per run"] = float(np.mean([h.cpu_seconds[-1] for h in hists]))
    return row


def main() -> None:
    t0 = time.perf_counter()
    d = data()
    rows = []
    for ue, skip, ents in itertools.product(text.USER_ENCODERS, (False, True), (False, True)):
        setting = dict(user_encoder=ue, use_skipped=skip, entities=ents, widths=WIDTHS, **DEFAULTS)
        rows.append(evaluate_setting(d, setting, "1 architecture"))
        print(f"[{time.perf_counter() - t0:5.0f} s] {ue} skipped={skip} entities={ents}: "
              f"{rows[-1][METRIC]:.4f} ± {rows[-1]['val AUC sd']:.4f}", flush=True)
    best_arch = max(rows, key=lambda r: r[METRIC])
    arch = {k: best_arch[k] for k in ("user_encoder", "use_skipped", "entities", "widths")}
    for init, dropout, size, lr in itertools.product(("random", "ppmi"), (0.2, 0.5), (32, 64), (1e-3, 3e-3)):
        setting = dict(arch, word_init=init, word_dim=size, filters=size, dropout=dropout, learning_rate=lr)
        if all(setting[k] == best_arch[k] for k in setting):
            continue  # already run in stage 1
        rows.append(evaluate_setting(d, setting, "2 initialisation, size, optimisation"))
        print(f"[{time.perf_counter() - t0:5.0f} s] init={init} dropout={dropout} size={size} lr={lr}: "
              f"{rows[-1][METRIC]:.4f} ± {rows[-1]['val AUC sd']:.4f}", flush=True)
    table = pd.DataFrame(rows).sort_values(METRIC, ascending=False, kind="stable").reset_index(drop=True)
    keys = ["user_encoder", "use_skipped", "entities", "widths", "word_init", "word_dim", "filters",
            "dropout", "learning_rate"]
    choice = {k: table.iloc[0][k] for k in keys}
    notes = dict(script="benchmarks/content_search.py", val_share=VAL_SHARE, split_seed=SPLIT_SEED,
                 max_len=MAX_LEN, min_count=MIN_COUNT, max_history=MAX_HISTORY, epochs=EPOCHS,
                 patience=PATIENCE, batch_size=BATCH, seeds=",".join(map(str, SEEDS)),
                 minutes=round((time.perf_counter() - t0) / 60, 1))
    write_search("news_cnn", table, choice, METRIC, "max", notes)
    print(table.to_string())
    print("choice:", choice)


if __name__ == "__main__":
    main()
