r"""Beyond accuracy: what a set of top-``K`` lists does to the catalogue and to its users.

Accuracy metrics ask whether the held-out item was found. These ask what else the lists
are like. Every function takes ``recommended``, an integer matrix ``(n_users, K)`` whose
row ``u`` is user ``u``'s top-``K`` list (item indices, best first, e.g. from
:func:`helpers.metrics.top_k`), and returns a Python ``float`` (a mean over users where
the metric is per list):

* :func:`catalogue_coverage` -- share of the catalogue that appears in at least one list;
* :func:`gini_index` -- how unequally the recommendation slots are spread over items;
* :func:`novelty` -- mean self-information :math:`-\log_2 p(i)` of recommended items;
* :func:`intra_list_diversity` -- mean pairwise cosine *distance* within a list;
* :func:`mean_popularity` -- average popularity of recommended items (ARP);
* :func:`long_tail_mask` and :func:`long_tail_share` -- share of slots given to
  long-tail items (APLT).

``item_counts[i]`` is the number of distinct *training* users who interacted with item
``i`` (:func:`helpers.baselines.popularity_scores`); compute it on training data only, or
the test interactions leak into the measurement.
"""
from __future__ import annotations

import numpy as np


def _lists(recommended: np.ndarray, n_items: int | None = None) -> np.ndarray:
    rec = np.asarray(recommended)
    if rec.ndim != 2 or rec.shape[0] == 0 or rec.shape[1] == 0:
        raise ValueError(f"recommended must be a non-empty 2-D matrix (users x K), got shape {rec.shape}")
    if not np.issubdtype(rec.dtype, np.integer):
        raise ValueError(f"recommended must hold integer item indices, got dtype {rec.dtype}")
    if rec.min() < 0 or (n_items is not None and rec.max() >= n_items):
        hi = "" if n_items is None else f", {n_items}"
        raise ValueError(f"item indices must lie in [0{hi}), got min {rec.min()} and max {rec.max()}")
    return rec


def _counts(item_counts: np.ndarray) -> np.ndarray:
    c = np.asarray(item_counts, dtype=np.float64)
    if c.ndim != 1:
        raise ValueError(f"item_counts must be 1-D (one count per item), got shape {c.shape}")
    if (c < 0).any():
        raise ValueError("item_counts cannot be negative")
    return c


def catalogue_coverage(recommended: np.ndarray, n_items: int) -> float:
    r"""Share of the catalogue recommended to at least one user:

    .. math:: \mathrm{Coverage} = \frac{\lvert \bigcup_u L_u \rvert}{|I|}

    where :math:`L_u` is user :math:`u`'s list and :math:`I` the catalogue. A popularity
    recommender shows every user nearly the same list, so its coverage is about
    :math:`K / |I|`.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    rec = _lists(recommended, n_items)
    return float(np.unique(rec).size / n_items)


def gini_index(recommended: np.ndarray, n_items: int) -> float:
    r"""Gini index of how often each catalogue item is recommended (0 = every item gets the
    same number of slots, close to 1 = a few items get them all).

    With :math:`c_{(1)} \le \dots \le c_{(n)}` the recommendation counts of all
    :math:`n = |I|` items sorted ascending (items never recommended count 0):

    .. math:: G = \frac{\sum_{j=1}^{n} (2j - n - 1)\, c_{(j)}}{n \sum_j c_{(j)}}
              = \frac{\sum_i \sum_j |c_i - c_j|}{2 n^2 \bar c}.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    rec = _lists(recommended, n_items)
    c = np.sort(np.bincount(rec.ravel(), minlength=n_items).astype(np.float64))
    j = np.arange(1, n_items + 1)
    return float(((2 * j - n_items - 1) * c).sum() / (n_items * c.sum()))


def novelty(recommended: np.ndarray, item_counts: np.ndarray, n_users: int) -> float:
    r"""Mean self-information of the recommended items, in bits:

    .. math:: \mathrm{Novelty} = \frac{1}{|U|\,K}\sum_u \sum_{i \in L_u} -\log_2 p(i),
              \qquad p(i) = \frac{|U_i|}{|U|}

    where :math:`|U_i|` = ``item_counts[i]`` (training users who interacted with ``i``) and
    :math:`|U|` = ``n_users``. An item every user knows carries 0 bits; one known to a
    single user out of 943 carries :math:`\log_2 943 \approx 9.9` bits (Zhou et al., 2010).
    An item nobody interacted with would carry infinite information: that is an error here.
    """
    rec = _lists(recommended)
    c = _counts(item_counts)
    if rec.max() >= c.size:
        raise ValueError(f"recommended holds item {rec.max()} but item_counts has only {c.size} items")
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}")
    if (c > n_users).any():
        raise ValueError(f"an item count ({c.max():.0f}) exceeds n_users ({n_users}); "
                         "item_counts must count distinct users")
    counts = c[rec]
    if (counts == 0).any():
        raise ValueError("a recommended item has no training interactions, so its self-information "
                         "is infinite; exclude such items from the lists or smooth the counts "
                         "(e.g. item_counts + 1 and n_users + 1)")
    return float(np.mean(-np.log2(counts / n_users)))


def intra_list_diversity(recommended: np.ndarray, item_features: np.ndarray) -> float:
    r"""Mean pairwise cosine distance between the items of a list, averaged over users:

    .. math:: \mathrm{ILD}(L_u) = \frac{2}{K(K-1)} \sum_{i<j \in L_u}
              \Big(1 - \frac{f_i^\top f_j}{\lVert f_i\rVert\,\lVert f_j\rVert}\Big)

    (Ziegler et al., 2005) with feature vectors :math:`f_i` = ``item_features[i]`` (e.g.
    the 19 MovieLens genre flags). 0 means every list holds items with identical
    features; with non-negative features the maximum is 1 (no two items share a feature).
    Needs ``K >= 2``; a recommended item with an all-zero feature vector is an error
    (its cosine is undefined).
    """
    rec = _lists(recommended)
    f = np.asarray(item_features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"item_features must be 2-D (items x features), got shape {f.shape}")
    if rec.max() >= f.shape[0]:
        raise ValueError(f"recommended holds item {rec.max()} but item_features has only {f.shape[0]} rows")
    k = rec.shape[1]
    if k < 2:
        raise ValueError("intra-list diversity needs lists of at least 2 items")
    norms = np.linalg.norm(f, axis=1)
    if (norms[rec] == 0).any():
        raise ValueError("a recommended item has an all-zero feature vector; its cosine similarity "
                         "is undefined (give it a feature, e.g. an 'unknown' genre)")
    g = (f / np.where(norms > 0, norms, 1.0)[:, None])[rec]  # (users, K, d), unit rows
    sim = np.einsum("ukd,uld->ukl", g, g)
    off_diag = (sim.sum(axis=(1, 2)) - np.trace(sim, axis1=1, axis2=2)) / (k * (k - 1))
    return float(np.mean(1.0 - off_diag))


def mean_popularity(recommended: np.ndarray, item_counts: np.ndarray) -> float:
    r"""Average recommendation popularity (ARP):

    .. math:: \mathrm{ARP} = \frac{1}{|U|}\sum_u \frac{1}{K}\sum_{i \in L_u} |U_i|

    in training users per recommended item, one of the popularity-bias measures used by
    Abdollahpouri and colleagues. Compare it with the catalogue's mean, ``item_counts.mean()``.
    """
    rec = _lists(recommended)
    c = _counts(item_counts)
    if rec.max() >= c.size:
        raise ValueError(f"recommended holds item {rec.max()} but item_counts has only {c.size} items")
    return float(np.mean(c[rec]))


def long_tail_mask(item_counts: np.ndarray, head_fraction: float = 0.2) -> np.ndarray:
    r"""Boolean mask of long-tail items: everything except the *head*, the
    :math:`\lceil h\,|I| \rceil` most popular items (``h`` = ``head_fraction``; ties in count
    broken by the lower item index).

    ``head_fraction=0.2`` is the "80/20" convention. Papers differ here: some define the head
    instead as the most popular items that together hold a given share of all interactions,
    so say which definition a reported number uses.
    """
    c = _counts(item_counts)
    if not 0 < head_fraction < 1:
        raise ValueError(f"head_fraction must be in (0, 1), got {head_fraction}")
    n_head = int(np.ceil(head_fraction * c.size))
    order = np.lexsort((np.arange(c.size), -c))  # most popular first, ties by index
    tail = np.ones(c.size, dtype=bool)
    tail[order[:n_head]] = False
    return tail


def long_tail_share(recommended: np.ndarray, tail_mask: np.ndarray) -> float:
    r"""Average percentage of long-tail items (APLT), as a share:

    .. math:: \mathrm{APLT} = \frac{1}{|U|}\sum_u \frac{|L_u \cap T|}{K}

    where :math:`T` is the long tail (``tail_mask``, from :func:`long_tail_mask`)
    (Abdollahpouri, Burke and Mobasher, RecSys 2017).
    """
    rec = _lists(recommended)
    t = np.asarray(tail_mask)
    if t.dtype != bool or t.ndim != 1:
        raise ValueError("tail_mask must be a 1-D boolean array (True = long-tail item)")
    if rec.max() >= t.size:
        raise ValueError(f"recommended holds item {rec.max()} but tail_mask has only {t.size} items")
    return float(np.mean(t[rec]))


def beyond_accuracy_report(recommended: np.ndarray, item_counts: np.ndarray, n_users: int,
                           item_features: np.ndarray, head_fraction: float = 0.2
                           ) -> dict[str, float]:
    """All the measures of this module for one set of lists, as a dict (one table row)."""
    c = _counts(item_counts)
    return {
        "coverage": catalogue_coverage(recommended, c.size),
        "gini": gini_index(recommended, c.size),
        "novelty_bits": novelty(recommended, c, n_users),
        "ild": intra_list_diversity(recommended, item_features),
        "mean_popularity": mean_popularity(recommended, c),
        "long_tail_share": long_tail_share(recommended, long_tail_mask(c, head_fraction)),
    }
