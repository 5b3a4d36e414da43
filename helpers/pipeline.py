r"""A recommender end to end (chapter 15): candidates -> ranker -> re-ranking -> explanations.

The stages, each a plain function that the chapter also uses on its own:

* **candidates** -- the ``n_candidates`` best unseen films by a linear item-item model
  (EASE, :func:`helpers.baselines.ease`): :math:`s_{ui} = X_u B_{\cdot i}`;
* **ranker** -- any callable from a feature matrix (one row per candidate, columns
  :data:`FEATURE_NAMES`, built by :meth:`FeatureTables.features`) to scores, e.g. a
  fitted LightGBM ``predict``; ``None`` keeps the candidate order;
* **re-ranking** -- maximal marginal relevance (:func:`mmr_rerank`, Carbonell and
  Goldstein, 1998) trading relevance against genre similarity to what is already listed;
* **explanations** -- "because you rated *j*" with :math:`j = \arg\max_{h \in H_u} S_{hi}`
  over the user's rated films :math:`H_u` (:func:`explain`), :math:`S` an item-item
  cosine similarity.

:class:`Recommender` holds the fitted stages and answers ``recommend(user_id, k)`` for a
raw MovieLens user id, including the cases a real caller sends: an unknown user gets the
popularity list flagged ``cold_start=True``; a user who has rated the whole catalogue gets
an empty list and a ``reason``; a ``k`` that is not a positive integer is a ``ValueError``.
NumPy/pandas only; the ranker is whatever callable the caller passes.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: the ranker's feature columns, in the order :meth:`FeatureTables.features` returns them
FEATURE_NAMES: tuple[str, ...] = (
    "candidate_score", "candidate_rank", "log_item_ratings", "item_mean_rating",
    "log_item_recent_ratings", "item_year", "year_gap_to_user", "genre_match",
    "log_item_tags", "tag_match", "log_user_ratings", "user_mean_rating", "user_days_since_last",
)


# --------------------------------------------------------------------------- checks
def check_k(k: object) -> int:
    """``k`` as a Python int if it is a positive integer (``bool`` is not), else ValueError."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be a positive integer (the length of the list), got {k!r} "
                         f"of type {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be a positive integer (the length of the list), got {k}")
    return int(k)


# --------------------------------------------------------------------------- stages
def top_unseen(scores: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest ``scores`` (1-D) outside ``seen``, best first; ties go
    to the lower index (stable sort). Fewer than ``n`` are returned if fewer are unseen."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D (one score per item), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN: expected a finite score for every item")
    n = check_k(n)
    allowed = np.ones(s.size, dtype=bool)
    allowed[np.asarray(seen, dtype=np.int64)] = False
    idx = np.flatnonzero(allowed)
    order = np.argsort(-s[idx], kind="stable")[:n]
    return idx[order]


def mmr_rerank(relevance: np.ndarray, similarity: np.ndarray, k: int, lam: float) -> np.ndarray:
    r"""Maximal marginal relevance: pick ``k`` of ``n`` candidates one at a time,

    .. math:: i^\star = \arg\max_{i \notin S}\ \lambda\,\tilde r_i
              - (1 - \lambda)\max_{j \in S} \mathrm{sim}(i, j),

    with :math:`\tilde r_i = (r_i - \min r)/(\max r - \min r)` (all 1 if the scores are equal)
    and the max over an empty :math:`S` taken as 0, so the first pick is the most relevant.
    ``lam = 1`` returns the relevance order; smaller ``lam`` buys diversity. ``similarity``
    is ``(n, n)``. Returns positions into the candidates, in list order; ties go to the
    earlier candidate. ``k`` larger than ``n`` returns all ``n``.
    """
    r = np.asarray(relevance, dtype=np.float64)
    sim = np.asarray(similarity, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"relevance must be 1-D (one score per candidate), got shape {r.shape}")
    if sim.shape != (r.size, r.size):
        raise ValueError(f"similarity must be ({r.size}, {r.size}) for {r.size} candidates, got {sim.shape}")
    if not np.isfinite(r).all():
        raise ValueError("relevance must be finite")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1] (1 = relevance only), got {lam}")
    k = min(check_k(k), r.size)
    span = r.max() - r.min() if r.size else 0.0
    rt = (r - r.min()) / span if span > 0 else np.ones_like(r)
    chosen: list[int] = []
    max_sim = np.zeros(r.size)
    free = np.ones(r.size, dtype=bool)
    for _ in range(k):
        val = np.where(free, lam * rt - (1.0 - lam) * max_sim, -np.inf)
        i = int(np.argmax(val))
        chosen.append(i)
        free[i] = False
        max_sim = np.maximum(max_sim, sim[:, i])
    return np.asarray(chosen, dtype=np.int64)


def explain(history: np.ndarray, items: np.ndarray, similarity: np.ndarray | sp.sparray
            ) -> tuple[np.ndarray, np.ndarray]:
    r"""For each recommended item :math:`i`, the rated item :math:`j^\star = \arg\max_{h\in H}
    S_{hi}` and its similarity :math:`S_{j^\star i}` ("because you rated :math:`j^\star`").

    ``history`` holds the user's item indices :math:`H`, ``items`` the recommended ones,
    ``similarity`` is item x item. Returns ``(because, strength)``; ``because`` is -1 where
    no rated item has a positive similarity (or the history is empty). Ties go to the
    earlier history entry.
    """
    h = np.asarray(history, dtype=np.int64)
    it = np.asarray(items, dtype=np.int64)
    if h.ndim != 1 or it.ndim != 1:
        raise ValueError("history and items must be 1-D arrays of item indices")
    if h.size == 0 or it.size == 0:
        return np.full(it.size, -1, dtype=np.int64), np.zeros(it.size)
    block = similarity[h][:, it]
    block = np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)
    best = np.argmax(block, axis=0)
    strength = block[best, np.arange(it.size)]
    because = np.where(strength > 0, h[best], -1)
    return because, np.where(strength > 0, strength, 0.0)


def unit_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (an all-zero row stays zero): cosine = dot product."""
    f = np.asarray(features, dtype=np.float64)
    n = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.where(n > 0, n, 1.0)


# --------------------------------------------------------------------------- per-user metrics
def recall_ndcg_per_user(recommended: Sequence[Sequence[int]], relevant: Sequence[set[int]], k: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-user Recall@k and NDCG@k (binary relevance, log2 discount) of lists that may be
    shorter than ``k``:

    .. math:: \mathrm{R@}k_u = \frac{|L_u^{(k)} \cap R_u|}{|R_u|},\qquad
              \mathrm{NDCG@}k_u = \frac{\sum_{p=1}^{k} [L_{u,p} \in R_u] / \log_2(p+1)}
              {\sum_{p=1}^{\min(|R_u|, k)} 1/\log_2(p+1)}.

    Every user needs at least one relevant item. The means equal
    :func:`helpers.metrics.recall_at_k` and :func:`helpers.metrics.ndcg_lists` on full lists.
    """
    k = check_k(k)
    if len(recommended) != len(relevant):
        raise ValueError(f"one list and one relevant set per user expected, got {len(recommended)} "
                         f"and {len(relevant)}")
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    rec = np.zeros(len(relevant))
    ndcg = np.zeros(len(relevant))
    for u, (lst, rel) in enumerate(zip(recommended, relevant)):
        if len(rel) == 0:
            raise ValueError(f"user row {u} has no relevant items; drop such users before evaluating")
        hits = np.array([int(i) in rel for i in list(lst)[:k]], dtype=float)
        rec[u] = hits.sum() / len(rel)
        ndcg[u] = (hits * disc[:hits.size]).sum() / disc[:min(len(rel), k)].sum()
    return rec, ndcg


# --------------------------------------------------------------------------- features
@dataclass
class FeatureTables:
    r"""Item and user statistics known at one moment ``now`` (from training ratings only),
    and the ranker's feature rows built from them.

    Items are catalogue positions ``0 .. n_items-1``; users are raw ids. ``genres`` is the
    item x genre 0/1 matrix. Item mean ratings are damped towards the global mean
    :math:`\mu`: :math:`\bar r_i = (\sum r + m\mu)/(n_i + m)`, ``m = 10``. Tags: ``t_i`` is
    the unit-length 0/1 vector of the (lower-cased) tags anyone gave film :math:`i` before
    ``now``, the user's tag profile :math:`p_u` the unit-length sum of :math:`t_h` over their
    rated films, and ``tag_match`` :math:`= t_i^\top p_u` (0 without tags).
    """

    item_ratings: np.ndarray
    item_mean: np.ndarray
    item_recent: np.ndarray
    item_year: np.ndarray
    item_tags: np.ndarray
    genres_unit: np.ndarray
    user_n: pd.Series
    user_mean: pd.Series
    user_year: pd.Series
    user_last_days: pd.Series
    user_genres: dict[int, np.ndarray] = field(repr=False)
    item_tag_unit: sp.csr_array | None = field(default=None, repr=False)
    user_tags: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_ratings(cls, ratings: pd.DataFrame, item_index: pd.Index, genres: np.ndarray,
                     years: np.ndarray, tags: pd.DataFrame | None, now: pd.Timestamp,
                     recent_days: float = 365.0, damping: float = 10.0) -> FeatureTables:
        """``ratings``: ``user_id, item_id, rating, timestamp`` before ``now``; ``item_index``:
        raw item id of each catalogue position; ``tags``: ``item_id, timestamp`` (only rows
        before ``now`` are counted); ``years`` may hold NaN (filled with the median of the
        known years, 0 if none is known)."""
        if (ratings["timestamp"] >= now).any():
            raise ValueError("ratings must all be earlier than now (no future information in features)")
        n = len(item_index)
        g = np.asarray(genres, dtype=np.float64)
        if g.shape[0] != n:
            raise ValueError(f"genres must have one row per catalogue item ({n}), got {g.shape[0]}")
        pos = item_index.get_indexer(ratings["item_id"])
        inside = pos >= 0
        r_in, p_in = ratings[inside], pos[inside]
        mu = float(ratings["rating"].mean())
        cnt = np.bincount(p_in, minlength=n).astype(float)
        tot = np.bincount(p_in, weights=r_in["rating"].to_numpy(np.float64), minlength=n)
        recent = (r_in["timestamp"] >= now - pd.Timedelta(days=recent_days)).to_numpy()
        rec_cnt = np.bincount(p_in[recent], minlength=n).astype(float)
        y = np.asarray(years, dtype=np.float64)
        y = np.where(np.isnan(y), np.nanmedian(y) if np.isfinite(y).any() else 0.0, y)
        tag_cnt = np.zeros(n)
        item_tag_unit, user_tags = None, {}
        if tags is not None and len(tags):
            t = tags[tags["timestamp"] < now]
            tp = item_index.get_indexer(t["item_id"])
            tag_cnt = np.bincount(tp[tp >= 0], minlength=n).astype(float)
            words = t["tag"].astype(str).str.strip().str.lower().to_numpy()[tp >= 0]
            if words.size:
                vocab, col = np.unique(words, return_inverse=True)
                m = sp.csr_array((np.ones(col.size), (tp[tp >= 0], col)), shape=(n, vocab.size))
                m.sum_duplicates()
                m.data[:] = 1.0
                norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
                item_tag_unit = sp.csr_array(sp.diags_array(1.0 / np.where(norms > 0, norms, 1.0)) @ m)
        gu = unit_rows(g)
        by_user = r_in.assign(pos=p_in).groupby("user_id")
        user_genres = {int(u): unit_rows(g[grp["pos"].to_numpy()].sum(axis=0, keepdims=True))[0]
                       for u, grp in by_user}
        if item_tag_unit is not None:
            for u, grp in by_user:
                prof = np.asarray(item_tag_unit[grp["pos"].to_numpy()].sum(axis=0)).ravel()
                norm = np.linalg.norm(prof)
                if norm > 0:
                    user_tags[int(u)] = prof / norm
        year_of = pd.Series(y[p_in], index=r_in.index)
        ug = ratings.groupby("user_id")
        return cls(item_ratings=cnt, item_mean=(tot + damping * mu) / (cnt + damping), item_recent=rec_cnt,
                   item_year=y, item_tags=tag_cnt, genres_unit=gu,
                   user_n=ug.size().astype(float), user_mean=ug["rating"].mean().astype(float),
                   user_year=year_of.groupby(r_in["user_id"]).mean(),
                   user_last_days=(now - ug["timestamp"].max()).dt.total_seconds() / 86400.0,
                   user_genres=user_genres, item_tag_unit=item_tag_unit, user_tags=user_tags)

    def features(self, user_id: int, candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """One row per candidate, columns :data:`FEATURE_NAMES` (the candidate model's score
        and rank, item popularity, damped mean rating, recent popularity, year, the gap to the
        user's mean film year, the cosine between the user's genre profile and the item's
        genres, tag count, the cosine between its tags and the user's tag profile, and the
        user's rating count, mean and days since last rating)."""
        c = np.asarray(candidates, dtype=np.int64)
        u = int(user_id)
        uyear = float(self.user_year.get(u, np.median(self.item_year)))
        ug = self.user_genres.get(u, np.zeros(self.genres_unit.shape[1]))
        m = len(c)
        ut = self.user_tags.get(u)
        tag_match = (np.zeros(m) if ut is None or self.item_tag_unit is None
                     else np.asarray(self.item_tag_unit[c] @ ut, dtype=np.float64).ravel())
        return np.column_stack([
            np.asarray(scores, dtype=np.float64), np.arange(m, dtype=np.float64),
            np.log1p(self.item_ratings[c]), self.item_mean[c], np.log1p(self.item_recent[c]),
            self.item_year[c], np.abs(self.item_year[c] - uyear), self.genres_unit[c] @ ug,
            np.log1p(self.item_tags[c]), tag_match,
            np.full(m, np.log1p(float(self.user_n.get(u, 0.0)))),
            np.full(m, float(self.user_mean.get(u, np.nan))),
            np.full(m, float(self.user_last_days.get(u, np.nan))),
        ])


# --------------------------------------------------------------------------- the system
@dataclass
class Recommendation:
    """What :meth:`Recommender.recommend` returns: raw item ids best first, their titles and
    final scores, for each item the raw id and title of the rated film that explains it
    (``None`` if none is similar), whether the popularity fallback was used, and why the
    list is what it is."""

    user_id: object
    items: list[int]
    titles: list[str]
    scores: list[float]
    because: list[int | None]
    because_titles: list[str | None]
    cold_start: bool
    reason: str

    def table(self) -> pd.DataFrame:
        """The list as a DataFrame (rank from 1)."""
        return pd.DataFrame({"film": self.titles, "because you rated": self.because_titles},
                            index=pd.RangeIndex(1, len(self.items) + 1, name="rank"))


@dataclass
class Recommender:
    r"""The fitted pipeline. ``item_ids`` are the raw ids of the catalogue (positions are the
    columns of ``history`` and the rows of ``weights``); ``history`` is users x items (rows in
    the order of ``user_ids``); candidates are :math:`X_u B` (``weights`` = :math:`B`);
    ``ranker`` maps :meth:`FeatureTables.features` rows to scores (``None``: keep the
    candidate order); ``mmr_lambda`` = 1 switches re-ranking off; ``explain_similarity`` is
    item x item (``None``: no explanations); ``popularity`` orders the cold-start list."""

    item_ids: np.ndarray
    titles: np.ndarray
    user_ids: np.ndarray
    history: sp.csr_array
    weights: np.ndarray
    popularity: np.ndarray
    tables: FeatureTables | None = None
    ranker: Callable[[np.ndarray], np.ndarray] | None = None
    n_candidates: int = 100
    mmr_lambda: float = 1.0
    explain_similarity: np.ndarray | sp.sparray | None = None
    _row: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if self.history.shape != (len(self.user_ids), n):
            raise ValueError(f"history must be users x items = ({len(self.user_ids)}, {n}), got {self.history.shape}")
        if self.weights.shape != (n, n):
            raise ValueError(f"weights must be ({n}, {n}), got {self.weights.shape}")
        if len(self.popularity) != n or len(self.titles) != n:
            raise ValueError("popularity and titles need one entry per catalogue item")
        if self.ranker is not None and self.tables is None:
            raise ValueError("a ranker needs FeatureTables to build its features")
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda must lie in [0, 1], got {self.mmr_lambda}")
        self.n_candidates = check_k(self.n_candidates)
        self.history = sp.csr_array(self.history)
        self._row = {int(u): r for r, u in enumerate(self.user_ids)}

    def _item(self, i: int) -> tuple[int, str]:
        return int(self.item_ids[i]), str(self.titles[i])

    def recommend(self, user_id: object, k: int = 10) -> Recommendation:
        r"""The top-``k`` list of one user (raw id), through every stage:
        candidates (top ``n_candidates`` unseen by :math:`X_u B`, at least ``k``) -> ranker ->
        MMR with genre cosine -> explanations. Unknown user (an id not seen in training, or
        not an integer): the ``k`` most popular films, ``cold_start=True``. Nothing left unseen: an empty list with the reason."""
        k = check_k(k)
        known_type = isinstance(user_id, (int, np.integer)) and not isinstance(user_id, (bool, np.bool_))
        row = self._row.get(int(user_id)) if known_type else None    # "100", 100.7, None: not an id we know
        if row is None:
            top = top_unseen(self.popularity, np.array([], dtype=np.int64), k)
            return Recommendation(user_id, [int(self.item_ids[i]) for i in top], [str(self.titles[i]) for i in top],
                                  [float(self.popularity[i]) for i in top], [None] * len(top), [None] * len(top),
                                  True, f"unknown user {user_id!r}: cold-start fallback, the most-rated films")
        seen = self.history.indices[self.history.indptr[row]:self.history.indptr[row + 1]]
        if seen.size >= len(self.item_ids):
            return Recommendation(user_id, [], [], [], [], [], False,
                                  f"user {user_id!r} has rated all {len(self.item_ids)} films in the catalogue")
        cand_scores = np.asarray(self.weights[seen].sum(axis=0), dtype=np.float64)   # X_u B, X_u binary
        cand = top_unseen(cand_scores, seen, max(self.n_candidates, k))
        rel = cand_scores[cand]
        if self.ranker is not None:
            assert self.tables is not None
            rel = np.asarray(self.ranker(self.tables.features(int(user_id), cand, rel)), dtype=np.float64)
            order = np.argsort(-rel, kind="stable")
            cand, rel = cand[order], rel[order]
        if self.mmr_lambda < 1.0:
            g = self._genres_unit()
            pick = mmr_rerank(rel, g[cand] @ g[cand].T, k, self.mmr_lambda)
        else:
            pick = np.arange(min(k, cand.size))
        items, scores = cand[pick], rel[pick]
        reason = "personalised" if items.size == k else f"only {items.size} unseen films left"
        if self.explain_similarity is not None:
            because, _ = explain(seen, items, self.explain_similarity)
        else:
            because = np.full(items.size, -1)
        return Recommendation(user_id, [int(self.item_ids[i]) for i in items], [str(self.titles[i]) for i in items],
                              [float(s) for s in scores],
                              [None if b < 0 else int(self.item_ids[b]) for b in because],
                              [None if b < 0 else str(self.titles[b]) for b in because], False, reason)

    def _genres_unit(self) -> np.ndarray:
        if self.tables is None:
            raise ValueError("MMR re-ranking needs FeatureTables (for the genre vectors)")
        return self.tables.genres_unit
