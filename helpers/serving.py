r"""Serving a recommender: an approximate-nearest-neighbour index over item vectors,
its recall against brute force, and a two-stage recommender (retrieval, then re-ranking)
that answers requests from exported artefacts (chapter 18).

NumPy-only at import; faiss is imported when an index is built, TensorFlow when exported
models are loaded. Requests are plain dicts (what a JSON body decodes to)::

    {"user": 196, "k": 10}                       # a known user: the user tower's vector
    {"user": 99999, "history": [242, 302]}       # unknown user: mean of the history's item vectors
    {"user": 99999}                              # unknown user, no history: most popular items

Every response says which path answered it (``"path"``: ``"personal"``, ``"history"`` or
``"popular"``) and whether it is a fallback (``"fallback"``), and the milliseconds each stage
took (``"stage_ms"``: query vector, retrieval, re-ranking). A malformed request raises
:class:`BadRequest` in :func:`parse_request`; :meth:`TwoStageRecommender.handle` turns it into
an error response and the service keeps serving.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["BadRequest", "Request", "AnnIndex", "exact_top_k", "recall_at_k", "latency_summary",
           "parse_request", "TwoStageRecommender", "export_artefacts", "load_recommender", "serve_batch"]


class BadRequest(ValueError):
    """A request the service cannot answer (wrong type, missing field, bad value)."""


def exact_top_k(queries: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    r"""Brute-force inner-product top-``k``: for each query :math:`a`,
    the ``k`` indices :math:`i` with the largest :math:`a^\top b_i`, best first
    (ties broken by the smaller index)."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    items = np.asarray(items, dtype=np.float32)
    if queries.ndim != 2 or items.ndim != 2 or queries.shape[1] != items.shape[1]:
        raise ValueError(f"queries (n, d) and items (m, d) must share d; got {queries.shape} and {items.shape}")
    if not 1 <= int(k) <= items.shape[0]:
        raise ValueError(f"k must be in [1, {items.shape[0]}], got {k}")
    s = queries @ items.T
    idx = np.argpartition(-s, int(k) - 1, axis=1)[:, :k]
    part = np.take_along_axis(s, idx, axis=1)
    order = np.lexsort((idx, -part), axis=1)
    return np.take_along_axis(idx, order, axis=1)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    r"""Recall@k of an approximate top-k against the exact one:
    :math:`\frac{1}{n}\sum_q |A_q \cap E_q| / k`, with :math:`k` the width of ``exact``
    (entries ``-1`` in ``approx``, faiss's "no result", count as misses)."""
    approx, exact = np.atleast_2d(approx), np.atleast_2d(exact)
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(f"one row per query in both: {approx.shape} vs {exact.shape}")
    k = exact.shape[1]
    hits = [len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approx, exact)]
    return float(np.mean(hits) / k)


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99 and mean latency in milliseconds, and throughput (requests per second of
    the summed latencies, i.e. one request at a time)."""
    t = np.asarray(seconds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or np.any(t < 0):
        raise ValueError("seconds must be a non-empty 1-D array of non-negative durations")
    p50, p95, p99 = np.percentile(t, [50, 95, 99]) * 1e3
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "mean_ms": float(t.mean() * 1e3),
            "qps": float(t.size / max(t.sum(), 1e-12)), "n": int(t.size)}


class AnnIndex:
    """Inner-product index over item vectors, built with faiss.

    ``kind``: ``"flat"`` (exact), ``"ivf"`` (k-means into ``nlist`` cells, a query scans the
    ``nprobe`` nearest cells) or ``"hnsw"`` (graph with ``M`` links per node, search beam
    ``ef_search``; built on one thread, so the graph is the same on every run).
    ``build_seconds`` and ``memory_bytes`` (the serialised index) are recorded.
    """

    def __init__(self, vectors: np.ndarray, kind: str = "flat", *, nlist: int = 16, nprobe: int = 1,
                 m: int = 16, ef_search: int = 32, seed: int = 0) -> None:
        import faiss

        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] < 1:
            raise ValueError(f"vectors must be (n_items, d) with n_items >= 1, got {x.shape}")
        if kind not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"kind must be 'flat', 'ivf' or 'hnsw', got {kind!r}")
        d = x.shape[1]
        t0 = time.perf_counter()
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif kind == "ivf":
            if not 1 <= nlist <= x.shape[0]:
                raise ValueError(f"nlist must be in [1, {x.shape[0]}], got {nlist}")
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, int(nlist), faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = int(seed)
            index.cp.min_points_per_centroid = 1   # no "too few training points" warning on small catalogues
            index.train(x)
            index.nprobe = int(nprobe)
        else:
            index = faiss.IndexHNSWFlat(d, int(m), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = int(ef_search)
        threads = faiss.omp_get_max_threads()
        if kind == "hnsw":
            faiss.omp_set_num_threads(1)   # a parallel HNSW build inserts in a racy order: not reproducible
        try:
            index.add(x)
        finally:
            faiss.omp_set_num_threads(threads)
        self.build_seconds = time.perf_counter() - t0
        self.index, self.kind, self.n, self.d = index, kind, x.shape[0], d
        self.memory_bytes = int(faiss.serialize_index(index).size)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(n_queries, k)``, best first."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.d:
            raise ValueError(f"queries must be (n, {self.d}), got {q.shape}")
        if not 1 <= int(k) <= self.n:
            raise ValueError(f"k must be in [1, {self.n}], got {k}")
        return self.index.search(q, int(k))

    def distances_per_query(self, queries: np.ndarray, k: int) -> float:
        """Mean number of inner products computed per query: a cost that, unlike a latency,
        does not depend on the machine or its load. Flat: ``n``; IVF: ``nlist`` centroids plus
        the items in the ``nprobe`` scanned cells; HNSW: the nodes the beam search visits
        (faiss's search statistics)."""
        import faiss

        q = np.atleast_2d(queries)
        if self.kind == "flat":
            return float(self.n)
        faiss.cvar.indexIVF_stats.reset()
        faiss.cvar.hnsw_stats.reset()
        self.search(q, k)
        if self.kind == "ivf":
            return float(faiss.cvar.indexIVF_stats.ndis / len(q) + self.index.nlist)
        return float(faiss.cvar.hnsw_stats.ndis / len(q))

    def save(self, path: str) -> None:
        import faiss

        faiss.write_index(self.index, path)


@dataclass
class Request:
    """A validated request: ``user`` (raw id), ``history`` (raw item ids) and ``k``."""

    user: int
    history: list[int] = field(default_factory=list)
    k: int = 10


def parse_request(obj: Any, max_k: int = 100) -> Request:
    """Validate a decoded request; raises :class:`BadRequest` naming what was wrong and what is
    expected. ``user`` must be an int (raw id), ``history`` (optional) a list of ints,
    ``k`` (optional, default 10) an int in ``[1, max_k]``."""
    if not isinstance(obj, dict):
        raise BadRequest(f"request must be a JSON object (dict), got {type(obj).__name__}")
    unknown = set(obj) - {"user", "history", "k"}
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}; expected 'user', 'history', 'k'")
    if "user" not in obj:
        raise BadRequest("request has no 'user' field; expected an integer user id")
    user = obj["user"]
    if isinstance(user, bool) or not isinstance(user, (int, np.integer)):
        raise BadRequest(f"'user' must be an integer id, got {user!r}")
    history = obj.get("history", [])
    if not isinstance(history, (list, tuple)) or any(isinstance(h, bool) or not isinstance(h, (int, np.integer))
                                                     for h in history):
        raise BadRequest(f"'history' must be a list of integer item ids, got {history!r}")
    k = obj.get("k", 10)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= max_k:
        raise BadRequest(f"'k' must be an integer in [1, {max_k}], got {k!r}")
    return Request(int(user), [int(h) for h in history], int(k))


class TwoStageRecommender:
    r"""Retrieval, then re-ranking.

    1. Query vector: a known user's tower output :math:`a_u`; for an unknown user, the mean of
       the known history items' vectors :math:`\frac{1}{|H|}\sum_{i\in H} b_i`; with neither,
       the most popular items (the cold-start path).
    2. Retrieval: the ``n_candidates`` items of largest :math:`a^\top b_i` from ``index``.
    3. Drop the items the user has seen; re-score the rest with ``rank_fn(user, items)``
       (known users) and return the top ``k``. Unknown users keep the retrieval order.

    ``user_vector_fn(user_index) -> (d,)`` and ``rank_fn(user_index, item_indices) -> scores``
    are callables, so the same class serves in-memory Keras models and exported SavedModels.
    """

    def __init__(self, *, user_ids: np.ndarray, item_ids: np.ndarray, item_vectors: np.ndarray, index: Any,
                 user_vector_fn: Callable[[int], np.ndarray], rank_fn: Callable[[int, np.ndarray], np.ndarray],
                 seen: Any, popular: np.ndarray, n_candidates: int = 100) -> None:
        self.user_pos = {int(u): i for i, u in enumerate(np.asarray(user_ids))}
        self.item_pos = {int(t): i for i, t in enumerate(np.asarray(item_ids))}
        self.item_ids = np.asarray(item_ids)
        self.item_vectors = np.asarray(item_vectors, dtype=np.float32)
        self.index, self.user_vector_fn, self.rank_fn = index, user_vector_fn, rank_fn
        self.seen, self.popular = seen, np.asarray(popular)
        self.n_candidates = int(n_candidates)

    def seen_items(self, u: int) -> np.ndarray:
        """Indices of the items user index ``u`` interacted with (a CSR row)."""
        return self.seen.indices[self.seen.indptr[u]:self.seen.indptr[u + 1]]

    def retrieve(self, query: np.ndarray, exclude: set[int], n: int) -> np.ndarray:
        """The ``n`` items of largest :math:`a^\\top b_i` from the index, skipping ``exclude``
        (seen items), best first. An approximate index can return fewer results than asked
        (IVF scans only ``nprobe`` cells); the list is then filled up with the most popular
        remaining items, so it always has ``n`` entries (fewer only if the catalogue runs out)."""
        n_ask = min(int(n) + len(exclude), len(self.item_ids))
        _, ids = self.index.search(np.asarray(query, dtype=np.float32)[None, :], n_ask)
        out = [int(c) for c in ids[0] if c >= 0 and int(c) not in exclude][:n]
        if len(out) < n:
            have = set(out) | exclude
            out += [int(i) for i in self.popular if int(i) not in have][:n - len(out)]
        return np.asarray(out, dtype=np.int64)

    def recommend(self, request: Request) -> dict[str, Any]:
        t0 = time.perf_counter()
        u = self.user_pos.get(request.user)
        known_hist = [self.item_pos[h] for h in request.history if h in self.item_pos]
        dropped = [h for h in request.history if h not in self.item_pos]
        if u is not None:
            path, query = "personal", np.asarray(self.user_vector_fn(u), dtype=np.float32)
            exclude = set(self.seen_items(u).tolist()) | set(known_hist)
        elif known_hist:
            path, query = "history", self.item_vectors[known_hist].mean(axis=0)
            exclude = set(known_hist)
        else:
            path, query, exclude = "popular", None, set()
        t1 = t2 = time.perf_counter()
        if query is None:
            items = np.array([i for i in self.popular if i not in exclude][:request.k], dtype=np.int64)
        else:
            cand = self.retrieve(query, exclude, self.n_candidates)
            t2 = time.perf_counter()
            if u is not None:
                s = np.asarray(self.rank_fn(u, cand))
                cand = cand[np.argsort(-s, kind="stable")]
            items = cand[:request.k]
        t3 = time.perf_counter()
        return {"user": request.user, "items": [int(self.item_ids[i]) for i in items], "path": path,
                "fallback": path != "personal", "unknown_history_items": dropped,
                "stage_ms": {"query": 1e3 * (t1 - t0), "retrieve": 1e3 * (t2 - t1), "rank": 1e3 * (t3 - t2)}}

    def handle(self, obj: Any) -> dict[str, Any]:
        """Answer one decoded request; a malformed one gets ``{"error": ...}`` instead of an
        exception, so the caller's loop keeps serving."""
        try:
            return self.recommend(parse_request(obj))
        except BadRequest as e:
            return {"error": str(e)}


def export_artefacts(directory: str, *, user_tower: Any, ranker: Any, item_vectors: np.ndarray, index: AnnIndex,
                     user_ids: np.ndarray, item_ids: np.ndarray, seen: Any, popular: np.ndarray) -> list[str]:
    """Write what the service needs: the user tower and the ranking model as SavedModels
    (``model.export``), the item vectors, the faiss index, the id maps, the seen items and the
    popularity order. Returns the file names written."""
    import scipy.sparse as sp

    os.makedirs(directory, exist_ok=True)
    user_tower.export(os.path.join(directory, "user_tower"), verbose=False)
    ranker.export(os.path.join(directory, "ranker"), verbose=False)
    np.save(os.path.join(directory, "item_vectors.npy"), np.asarray(item_vectors, dtype=np.float32))
    index.save(os.path.join(directory, "items.faiss"))
    np.savez(os.path.join(directory, "ids.npz"), user_ids=np.asarray(user_ids), item_ids=np.asarray(item_ids),
             popular=np.asarray(popular))
    sp.save_npz(os.path.join(directory, "seen.npz"), sp.csr_matrix(seen))
    return sorted(os.listdir(directory))


def load_recommender(directory: str, n_candidates: int = 100) -> TwoStageRecommender:
    """A :class:`TwoStageRecommender` built only from :func:`export_artefacts`' files."""
    import faiss
    import scipy.sparse as sp
    import tensorflow as tf

    user_tower = tf.saved_model.load(os.path.join(directory, "user_tower"))
    ranker = tf.saved_model.load(os.path.join(directory, "ranker"))
    ids = np.load(os.path.join(directory, "ids.npz"))
    index = faiss.read_index(os.path.join(directory, "items.faiss"))

    def user_vector(u: int) -> np.ndarray:
        return user_tower.serve(tf.constant([u], dtype=tf.int32)).numpy()[0]

    def rank(u: int, items: np.ndarray) -> np.ndarray:
        it = tf.constant(np.asarray(items, dtype=np.int32))
        return ranker.serve([tf.fill(tf.shape(it), u), it]).numpy()

    return TwoStageRecommender(user_ids=ids["user_ids"], item_ids=ids["item_ids"],
                               item_vectors=np.load(os.path.join(directory, "item_vectors.npy")), index=index,
                               user_vector_fn=user_vector, rank_fn=rank,
                               seen=sp.csr_array(sp.load_npz(os.path.join(directory, "seen.npz"))),
                               popular=ids["popular"], n_candidates=n_candidates)


def serve_batch(directory: str, requests: Sequence[Any], warmup: int = 5) -> dict[str, Any]:
    """Load the artefacts, answer ``requests`` one at a time (after ``warmup`` untimed ones)
    and return the responses, each request's latency in seconds and the load time."""
    t0 = time.perf_counter()
    rec = load_recommender(directory)
    load_s = time.perf_counter() - t0
    for r in list(requests)[:warmup]:
        rec.handle(r)
    responses, latency = [], []
    for r in requests:
        t = time.perf_counter()
        responses.append(rec.handle(r))
        latency.append(time.perf_counter() - t)
    return {"responses": responses, "latency_s": latency, "load_s": load_s}


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.serving ARTEFACT_DIR REQUESTS.json OUT.json``: a fresh process that
    serves the requests from the exported artefacts only."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: python -m helpers.serving ARTEFACT_DIR REQUESTS.json OUT.json", file=sys.stderr)
        return 2
    with open(args[1]) as f:
        requests = json.load(f)
    out = serve_batch(args[0], requests)
    with open(args[2], "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    import helpers  # noqa: F401  (quiet TensorFlow start-up)

    raise SystemExit(_main())
