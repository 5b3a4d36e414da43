"""Chapter 14's validation searches: Last.fm (HetRec 2011) artists, full ranking, Recall@20.

Protocol (the chapter builds the same split with the same code and checks its fingerprint
against the ``notes`` of these files): every user's artists are shuffled (seed 0); the first
20 % (at least one for users with two or more artists) are the test items, the next 20 % of
the rest the validation items, the remainder the training items. Every model below is fitted on
the training items only and scored on the validation items only, ranking *all* 17,632 artists
except the user's training artists; the metric is validation Recall@20 (NDCG@20 beside it).
Test items are never read here.

* popularity (no setting), friends' popularity (share of friends who play the artist, plus a
  popularity tie-breaker of weight gamma);
* item-KNN (asymmetric cosine, :func:`helpers.baselines.item_knn`) and EASE on the artists with
  at least ``min_listeners`` training listeners (a 17,632 x 17,632 dense similarity is 2.5 GB;
  the other artists score -inf);
* iALS with confidences ``1 + alpha log(1 + plays / eps)`` (``implicit``, one thread, 64
  factors, iterations validated within one fit) and the same solver with plays ignored
  (``1 + alpha`` on every observed cell, ``eps = 0`` in the table). Stage ``ials`` is a first
  grid (lambda 3-100); its best sat at the edge (largest lambda and alpha), so stage
  ``ials_extend`` adds lambda 300 and larger alphas along that ridge, keeping every row;
* BPR-MF (``implicit``, binary), iterations validated within one fit;
* a count-weighted multinomial autoencoder (Mult-DAE, Liang et al. 2018) whose loss weights
  each played artist by ``1 + alpha log(1 + plays / eps)`` (``alpha = 0``: unweighted),
  epochs validated every 5;
* social iALS (:func:`helpers.graph.confidence_ials` with ``social_reg`` beta) at the chosen
  iALS setting, beta = 0 included;
* one hop of LightGCN-style propagation of the chosen iALS factors over the user-artist (and
  friend) graph: mixing weight gamma x friend-edge weight w.

Run by hand:  RECSYS_DATA_DIR=... .venv/bin/python benchmarks/music_search.py [model ...]
(models: popularity friendpop knn ease ials ials_extend bpr dae social propagation; social and
propagation read the iALS choice, so they run after it; about 45 minutes in all on the shared
2-core machine)
Writes benchmarks/results/music_<model>.{csv,json}; the run time is in each JSON's notes.
"""
from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import helpers  # noqa: E402,F401  (quiet TensorFlow)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from helpers import graph, metrics  # noqa: E402
from helpers.baselines import ease, implicit_bpr, item_knn, popularity_scores  # noqa: E402
from helpers.data import load_lastfm  # noqa: E402
from helpers.tuning import read_choice, read_search, read_table, write_search  # noqa: E402

METRIC = "val_recall20"
SCRIPT = "benchmarks/music_search.py"
K = 20
SEED = 0


# ----------------------------------------------------------------------------- protocol
def music_split(seed: int = SEED, test_fraction: float = 0.2, val_fraction: float = 0.2):
    """(data, table, n_users, n_items, social): ``table`` has one row per (user, artist) with
    ``user``, ``item``, ``plays`` and ``part`` in {train, val, test}."""
    data = load_lastfm()
    ua = data.user_artists
    users = np.sort(ua["user_id"].unique())
    items = np.sort(ua["artist_id"].unique())
    t = pd.DataFrame({"user": np.searchsorted(users, ua["user_id"]),
                      "item": np.searchsorted(items, ua["artist_id"]),
                      "plays": ua["weight"].to_numpy().astype(np.float64)})
    rng = np.random.default_rng(seed)
    t["pos"] = t.assign(r=rng.random(len(t))).groupby("user")["r"].rank(method="first").to_numpy() - 1
    n = t.groupby("user")["user"].transform("size").to_numpy()
    n_test = np.where(n >= 2, np.maximum(1, np.floor(test_fraction * n)), 0)
    n_val = np.where(n - n_test >= 2, np.maximum(1, np.floor(val_fraction * (n - n_test))), 0)
    t["part"] = np.where(t["pos"] < n_test, "test", np.where(t["pos"] < n_test + n_val, "val", "train"))
    fr = data.friends
    social = graph.friend_adjacency(np.searchsorted(users, fr["user_id"]), np.searchsorted(users, fr["friend_id"]),
                                    len(users))
    return data, t.drop(columns="pos"), len(users), len(items), social, users, items


def fingerprint(table: pd.DataFrame) -> int:
    """A checksum of which (user, item) pairs are validation and test."""
    v = table[table["part"] == "val"]
    s = table[table["part"] == "test"]
    return int((v["user"] * 7919 + v["item"]).sum() % 1_000_003 * 1000 + (s["user"] * 31 + s["item"]).sum() % 997)


def plays_matrix(rows: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_array:
    return sp.csr_array((rows["plays"].to_numpy(), (rows["user"].to_numpy(), rows["item"].to_numpy())),
                        shape=(n_users, n_items))


def per_user_recall_ndcg(scores: np.ndarray, exclude: sp.csr_array, relevant: sp.csr_array,
                         k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """Per-user Recall@k and NDCG@k (binary relevance) of full-ranking scores (rows = users)."""
    top = metrics.top_k(scores, k, exclude=exclude)
    h = metrics.hits_matrix(top, relevant)
    n_rel = np.diff(sp.csr_array(relevant).indptr).astype(float)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    idcg = np.cumsum(disc)[np.minimum(n_rel, k).astype(int) - 1]
    return h.sum(1) / n_rel, (h * disc).sum(1) / idcg


def restricted(scores_small: np.ndarray, keep: np.ndarray, n_items: int) -> np.ndarray:
    out = np.full((scores_small.shape[0], n_items), -np.inf)
    out[:, keep] = scores_small
    return out


# ----------------------------------------------------------------------------- models
def implicit_conf_als(conf: sp.csr_array, factors: int, reg: float, iterations: int, seed: int = 0,
                      callback=None) -> tuple[np.ndarray, np.ndarray]:
    """``implicit``'s AlternatingLeastSquares on per-cell confidences (alpha = 1: the stored
    value is the confidence)."""
    import warnings

    from threadpoolctl import threadpool_limits
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="IProgress not found")
        import implicit.cpu.als
    with threadpool_limits(1, "blas"):
        m = implicit.cpu.als.AlternatingLeastSquares(factors=int(factors), regularization=float(reg), alpha=1.0,
                                                     iterations=int(iterations), num_threads=1,
                                                     random_state=int(seed))
        cb = None if callback is None else (lambda it, *_: callback(it + 1, np.asarray(m.user_factors, np.float64),
                                                                    np.asarray(m.item_factors, np.float64)))
        m.fit(sp.csr_matrix(conf.astype(np.float32)), show_progress=False, callback=cb)
    return np.asarray(m.user_factors, np.float64), np.asarray(m.item_factors, np.float64)


def confidence(plays: sp.csr_array, alpha: float, eps: float) -> sp.csr_array:
    """``eps = 0`` means plays ignored: confidence ``1 + alpha`` on every observed cell."""
    if eps == 0:
        c = sp.csr_array(plays, copy=True)
        c.data = np.full(c.nnz, 1.0 + alpha)
        return c
    return graph.log_confidence(plays, alpha=alpha, eps=eps)


def fit_dae(plays: sp.csr_array, keep: np.ndarray, hidden: int, alpha: float, eps: float, epochs: int,
            seed: int = 0, callback=None, every: int = 5):
    """Mult-DAE (Liang et al. 2018) with count-based weights: input the user's 0/1 row over the
    ``keep`` artists (L2-normalised, dropout 0.5), one tanh layer of ``hidden`` units, logits
    over the same artists; loss ``-sum_i w_ui log softmax(z_u)_i`` with ``w_ui = 1 + alpha
    log(1 + plays/eps)`` on played artists (0 elsewhere). Returns a function users -> scores
    over ``keep``. ``callback(epoch, score_fn)`` every ``every`` epochs."""
    import keras
    import tensorflow as tf

    helpers.seed_everything(seed)
    x = sp.csr_array(plays[:, keep])
    xb = x.copy()
    xb.data[:] = 1.0
    w = graph.log_confidence(x, alpha=alpha, eps=eps) if alpha > 0 else xb
    xb, w = xb.toarray().astype("float32"), w.toarray().astype("float32")
    n = len(keep)
    inp = keras.Input((n,))
    h = keras.layers.UnitNormalization()(inp)
    h = keras.layers.Dropout(0.5, seed=seed)(h)
    h = keras.layers.Dense(hidden, activation="tanh")(h)
    out = keras.layers.Dense(n)(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True, reduction="sum_over_batch_size"))

    def score(users: np.ndarray) -> np.ndarray:
        return model.predict(xb[users], batch_size=512, verbose=0).astype(np.float64)

    ds = tf.data.Dataset.from_tensor_slices((xb, w)).shuffle(len(xb), seed=seed).batch(128)
    for e in range(1, epochs + 1):
        model.fit(ds, epochs=1, shuffle=False, verbose=0)   # ds shuffles itself, seeded
        if callback is not None and e % every == 0:
            callback(e, score)
    return score


# ----------------------------------------------------------------------------- search
def main(models: list[str] | None = None) -> None:
    data, t, n_users, n_items, social, _, _ = music_split()
    tr = plays_matrix(t[t["part"] == "train"], n_users, n_items)
    va = plays_matrix(t[t["part"] == "val"], n_users, n_items)
    vu = np.flatnonzero(np.diff(va.indptr) > 0)
    ex, rel = tr[vu], va[vu]
    listeners = np.asarray((tr != 0).sum(axis=0)).ravel()
    notes0 = {"script": SCRIPT, "protocol": "random per-user hold-out, 20 % test, 20 % of the rest validation, "
              "seed 0; fitted on train, scored on validation, full ranking of all artists",
              "fingerprint": fingerprint(t), "val_users": int(len(vu)),
              "train_pairs": int(tr.nnz), "val_pairs": int(va.nnz)}

    def ev(scores: np.ndarray) -> dict:
        r, nd = per_user_recall_ndcg(scores, ex, rel)
        return {METRIC: float(r.mean()), "val_ndcg20": float(nd.mean())}

    def save(name: str, rows: list[dict], params: list[str], t0: float, extra: dict | None = None) -> dict:
        table = pd.DataFrame(rows).sort_values(METRIC, ascending=False, kind="stable").reset_index(drop=True)
        choice = {p: table.loc[0, p] for p in params}
        write_search(f"music_{name}", table, choice, METRIC,
                     notes={**notes0, "settings": len(table), "minutes": round((time.time() - t0) / 60, 2),
                            **(extra or {})})
        print(name, choice, round(table.loc[0, METRIC], 4), f"{(time.time() - t0) / 60:.1f} min", flush=True)
        return choice

    todo = models or ["popularity", "friendpop", "knn", "ease", "ials", "ials_extend", "bpr", "dae", "social",
                      "propagation"]
    pop = popularity_scores(tr)
    if "popularity" in todo:
        t0 = time.time()
        save("popularity", [{"model": "popularity", **ev(np.tile(pop, (len(vu), 1)))}], ["model"], t0)
    if "friendpop" in todo:
        t0 = time.time()
        rows = []
        for norm in (True, False):
            fp = graph.friends_popularity(social, tr, normalise=norm)[vu]
            for gamma in (0.0, 0.001, 0.01, 0.1, 0.3, 1.0, 3.0):
                rows.append({"normalise": norm, "gamma": gamma, **ev(fp + gamma * pop / pop.max() + 1e-9 * pop)})
        save("friendpop", rows, ["normalise", "gamma"], t0)
    if "knn" in todo:
        t0 = time.time()
        rows = []
        for m in (3, 5):
            keep = np.flatnonzero(listeners >= m)
            xk = sp.csr_array(tr[:, keep])
            for k, shrink, a in itertools.product((50, 100, 200, None), (0.0, 10.0, 50.0), (0.5, 0.7)):
                s = item_knn(xk, n_neighbors=k, shrink=shrink, alpha=a)
                sc = (xk[vu] != 0).astype(float) @ s
                rows.append({"min_listeners": m, "n_neighbors": -1 if k is None else k, "shrink": shrink,
                             "alpha": a, **ev(restricted(sc, keep, n_items))})
        save("knn", rows, ["min_listeners", "n_neighbors", "shrink", "alpha"], t0)
    if "ease" in todo:
        t0 = time.time()
        rows = []
        for m in (3, 5, 10):
            keep = np.flatnonzero(listeners >= m)
            xk = sp.csr_array(tr[:, keep])
            for l2 in (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0):
                sc = (xk[vu] != 0).astype(float) @ ease(xk, l2)
                rows.append({"min_listeners": m, "l2": l2, "artists": len(keep), **ev(restricted(sc, keep, n_items))})
        save("ease", rows, ["min_listeners", "l2"], t0)
    if "ials" in todo:
        t0 = time.time()
        rows = []
        for reg, (alpha, eps) in itertools.product(
                (3.0, 10.0, 30.0, 100.0),
                [(3.0, 0.0), (10.0, 0.0), (30.0, 0.0), (1.0, 1.0), (3.0, 1.0), (3.0, 30.0), (10.0, 30.0)]):
            def cb(it, p, q, reg=reg, alpha=alpha, eps=eps):
                if it in (5, 10, 15, 20):
                    rows.append({"factors": 64, "reg": reg, "alpha": alpha, "eps": eps, "iterations": it,
                                 **ev(p[vu] @ q.T)})
            implicit_conf_als(confidence(tr, alpha, eps), 64, reg, 20, seed=0, callback=cb)
        save("ials", rows, ["factors", "reg", "alpha", "eps", "iterations"], t0,
             {"solver": "implicit 0.7.3 AlternatingLeastSquares (conjugate gradient), one thread, seed 0",
              "eps_0_means": "plays ignored: confidence 1 + alpha on every observed cell"})
    if "ials_extend" in todo:
        # the first grid's best sat at its edge (largest lambda and alpha): extend it along the
        # ridge, keeping every row already tried
        t0 = time.time()
        old = read_table("music_ials")
        rows = old.to_dict("records")
        tried = set(zip(old["reg"], old["alpha"], old["eps"]))
        confs = [(3.0, 0.0), (10.0, 0.0), (30.0, 0.0), (100.0, 0.0), (1.0, 1.0), (3.0, 1.0), (10.0, 1.0),
                 (3.0, 30.0), (10.0, 30.0), (30.0, 30.0)]
        for reg, (alpha, eps) in [(r, c) for r in (30.0, 100.0, 300.0) for c in confs]:
            if (reg, alpha, eps) in tried:
                continue
            def cb(it, p, q, reg=reg, alpha=alpha, eps=eps):
                if it in (5, 10, 15, 20):
                    rows.append({"factors": 64, "reg": reg, "alpha": alpha, "eps": eps, "iterations": it,
                                 **ev(p[vu] @ q.T)})
            implicit_conf_als(confidence(tr, alpha, eps), 64, reg, 20, seed=0, callback=cb)
        prev = read_search("music_ials")["notes"]["minutes"]
        save("ials", rows, ["factors", "reg", "alpha", "eps", "iterations"], t0 - 60 * prev,
             {"solver": "implicit 0.7.3 AlternatingLeastSquares (conjugate gradient), one thread, seed 0",
              "eps_0_means": "plays ignored: confidence 1 + alpha on every observed cell",
              "stages": "a first grid (lambda 3-100), then extended along the ridge (lambda 300, more alpha)"})
    if "bpr" in todo:
        t0 = time.time()
        rows = []
        for lr, reg in itertools.product((0.01, 0.03, 0.1), (0.0001, 0.001, 0.01)):
            def cb(it, p, q, lr=lr, reg=reg):
                if it % 25 == 0:
                    rows.append({"factors": 64, "learning_rate": lr, "regularization": reg, "iterations": it,
                                 **ev(p[vu] @ q.T)})
            implicit_bpr(tr, factors=64, learning_rate=lr, regularization=reg, iterations=200, seed=0, callback=cb)
        save("bpr", rows, ["factors", "learning_rate", "regularization", "iterations"], t0)
    if "dae" in todo:
        t0 = time.time()
        rows = []
        keep = np.flatnonzero(listeners >= 2)
        for hidden, (alpha, eps) in itertools.product((64, 200), ((0.0, 1.0), (1.0, 10.0), (3.0, 10.0), (1.0, 100.0))):
            def cb(e, score, hidden=hidden, alpha=alpha, eps=eps):
                rows.append({"hidden": hidden, "alpha": alpha, "eps": eps, "epochs": e,
                             **ev(restricted(score(vu), keep, n_items))})
            fit_dae(tr, keep, hidden, alpha, eps, epochs=40, seed=0, callback=cb)
        save("dae", rows, ["hidden", "alpha", "eps", "epochs"], t0,
             {"artists": "artists with >= 2 training listeners (the rest score -inf)", "min_listeners": 2})
    if "social" in todo or "propagation" in todo:
        best = read_choice("music_ials")
        conf = confidence(tr, best["alpha"], best["eps"])
    if "social" in todo:
        t0 = time.time()
        rows = []
        for beta in (0.0, 0.3, 1.0, 3.0, 10.0, 30.0):
            x, y = graph.confidence_ials(conf, dim=int(best["factors"]), n_iter=int(best["iterations"]),
                                         reg=best["reg"], social=social, social_reg=beta, seed=0)
            rows.append({"social_reg": beta, **ev(x[vu] @ y.T)})
        save("social", rows, ["social_reg"], t0, {"base": best, "solver": "helpers.graph.confidence_ials"})
    if "propagation" in todo:
        t0 = time.time()
        rows = []
        x, y = implicit_conf_als(conf, best["factors"], best["reg"], best["iterations"], seed=0)
        e0 = np.vstack([x, y])
        for w in (0.0, 1.0):
            a_hat = graph.normalized_adjacency(graph.joint_adjacency(tr, social, social_weight=w))
            e1 = a_hat @ e0
            for gamma in (0.0, 0.1, 0.2, 0.3, 0.5, 0.7):
                e = (1 - gamma) * e0 + gamma * e1
                rows.append({"social_weight": w, "gamma": gamma, **ev(e[vu] @ e[n_users:].T)})
        save("propagation", rows, ["social_weight", "gamma"], t0, {"base": best})


if __name__ == "__main__":
    main(sys.argv[1:] or None)
