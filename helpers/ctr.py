r"""Click-through-rate prediction: the measures an ads or shop team reads, and the simplest baselines.

* :func:`normalized_entropy` -- log loss divided by the entropy of the background click rate
  (He et al., 2014): below 1 the model knows more than the average CTR;
* :func:`reliability_bins`, :func:`expected_calibration_error` -- calibration (does a
  predicted 2 % mean 2 % clicks?), with bins of equal count, which suit rare clicks;
* :func:`smoothed_rate` -- a click rate per group shrunk towards the overall rate
  (a Beta prior), the item-popularity and position baselines;
* :func:`metric_interval`, :func:`paired_metric_difference` -- bootstrap intervals over
  impressions for any of these measures, and for the difference between two models scored on
  the same impressions.

* :func:`load_obd_impressions` -- the four Open Bandit sample logs as one table of
  impressions with 80 items (men's and women's campaigns side by side), and
  :meth:`ObdImpressions.pairs` -- the features of any (round, item, slot), so a model can
  score every item a policy could have shown;
* :func:`fit_ctr` -- the chapter's click models behind one interface (smoothed position or
  item rates, logistic regression, LightGBM, a factorisation machine), so that the
  validation search in ``benchmarks/ecom_search.py`` and chapter 13 fit the same thing.

The measures are NumPy only; AUC and log loss come from :mod:`helpers.metrics`. scikit-learn,
LightGBM and Keras are imported only by :func:`fit_ctr`, for the model asked for.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from helpers.metrics import auc, log_loss
from helpers.stats import Interval, _confidence


def _labels_probs(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"y and p must be 1-D of equal length, got shapes {y.shape} and {p.shape}")
    if y.size == 0:
        raise ValueError("y and p are empty")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold 0/1 click labels")
    if not np.isfinite(p).all() or ((p < 0) | (p > 1)).any():
        raise ValueError("p must be probabilities in [0, 1] (pass probabilities, not logits)")
    return y, p


def normalized_entropy(y: np.ndarray, p: np.ndarray, base_rate: float | None = None, eps: float = 1e-7) -> float:
    r"""Normalised entropy (He et al., 2014): the log loss relative to always predicting the
    background click rate :math:`\bar p`,

    .. math:: \mathrm{NE} = \frac{-\frac1n\sum_i \big[y_i \log p_i + (1-y_i)\log(1-p_i)\big]}
              {-\big[\bar p \log \bar p + (1-\bar p)\log(1-\bar p)\big]}.

    NE = 1 is no better than the average CTR; lower is better. ``base_rate`` defaults to the
    click rate of ``y`` itself (He et al.'s definition); pass the training rate to ask
    whether the model beats the rate it could have known.
    """
    y, p = _labels_probs(y, p)
    b = float(y.mean()) if base_rate is None else float(base_rate)
    if not 0 < b < 1:
        raise ValueError(f"the background click rate must be in (0, 1), got {b} (need both labels)")
    h = -(b * np.log(b) + (1 - b) * np.log1p(-b))
    return log_loss(y, p, eps) / h


def reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10, strategy: str = "quantile"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Reliability-diagram bins: ``(count, mean predicted, observed click rate)`` per bin.

    ``strategy="quantile"`` puts (nearly) equal numbers of impressions in each bin, sorted
    by :math:`p` (with clicks at 0.5 %, equal-width bins over [0, 1] would leave all but the
    first empty); ``"uniform"`` uses equal widths on [0, 1]. Empty bins are dropped.
    """
    y, p = _labels_probs(y, p)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    if strategy == "quantile":
        order = np.argsort(p, kind="stable")
        bins = np.empty(p.size, dtype=np.int64)
        bins[order] = np.arange(p.size) * int(n_bins) // p.size
    elif strategy == "uniform":
        bins = np.minimum((p * n_bins).astype(np.int64), int(n_bins) - 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    count = np.bincount(bins, minlength=int(n_bins)).astype(np.float64)
    keep = count > 0
    mean_p = np.bincount(bins, weights=p, minlength=int(n_bins))[keep] / count[keep]
    rate = np.bincount(bins, weights=y, minlength=int(n_bins))[keep] / count[keep]
    return count[keep], mean_p, rate


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10, strategy: str = "quantile") -> float:
    r"""Expected calibration error over the bins of :func:`reliability_bins`,

    .. math:: \mathrm{ECE} = \sum_b \frac{n_b}{n}\,\big|\bar p_b - \bar y_b\big|,

    in the units of the prediction (a CTR of 0.5 % has ECE in the same thousandths). It
    depends on the binning, and on rare clicks a perfectly calibrated model still has
    ECE > 0 from the noise in :math:`\bar y_b`; compare models on the same bins.
    """
    count, mean_p, rate = reliability_bins(y, p, n_bins, strategy)
    return float(np.sum(count / count.sum() * np.abs(mean_p - rate)))


def smoothed_rate(clicks: np.ndarray, shows: np.ndarray, prior_rate: float, prior_strength: float) -> np.ndarray:
    r"""Click rate per group shrunk towards ``prior_rate``:

    .. math:: \hat p_g = \frac{c_g + m\,p_0}{n_g + m},

    the posterior mean under a :math:`\mathrm{Beta}(m p_0, m (1 - p_0))` prior; :math:`m`
    (``prior_strength``, in impressions) says how many impressions a group needs before its
    own rate counts as much as the prior. A group never shown gets :math:`p_0`.
    """
    c = np.asarray(clicks, dtype=np.float64)
    n = np.asarray(shows, dtype=np.float64)
    if c.shape != n.shape or (c < 0).any() or (c > n).any():
        raise ValueError("clicks and shows must have the same shape with 0 <= clicks <= shows")
    if not 0 < prior_rate < 1 or prior_strength < 0:
        raise ValueError(f"need 0 < prior_rate < 1 and prior_strength >= 0, got {prior_rate}, {prior_strength}")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (c + prior_strength * prior_rate) / (n + prior_strength)
    return np.where(n + prior_strength > 0, out, prior_rate)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "AUC": auc,
    "log loss": log_loss,
    "NE": normalized_entropy,
    "ECE": expected_calibration_error,
}


def _metric(metric: str | Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)} or a function (y, p) -> float, got {metric!r}")
    return METRICS[metric]


def _resamples(n: int, y: np.ndarray, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Index resamples of the impressions, each holding at least one click and one non-click."""
    if n_resamples < 100:
        raise ValueError(f"n_resamples must be >= 100, got {n_resamples}")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n_resamples:
        idx = rng.integers(0, n, n)
        s = y[idx].sum()
        if 0 < s < n:
            out.append(idx)
    return out


def metric_interval(y: np.ndarray, p: np.ndarray, metric: str | Callable[[np.ndarray, np.ndarray], float] = "AUC",
                    n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """A CTR measure (``"AUC"``, ``"log loss"``, ``"NE"``, ``"ECE"`` or a function) with a
    percentile bootstrap interval over impressions (resamples without both labels are
    redrawn). NE is recomputed with each resample's own click rate."""
    y, p = _labels_probs(y, p)
    f = _metric(metric)
    c = _confidence(confidence)
    reps = np.array([f(y[i], p[i]) for i in _resamples(y.size, y, n_resamples, seed)])
    lo, hi = np.quantile(reps, [(1 - c) / 2, (1 + c) / 2])
    return Interval(float(f(y, p)), float(lo), float(hi), c)


def paired_metric_difference(y: np.ndarray, p_a: np.ndarray, p_b: np.ndarray,
                             metric: str | Callable[[np.ndarray, np.ndarray], float] = "AUC",
                             n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> Interval:
    r"""Metric of model ``b`` minus metric of model ``a`` on the same impressions, with a
    paired percentile bootstrap interval: each resample draws impressions with replacement
    and scores *both* models on it, so the luck of the draw cancels in the difference. If the
    interval holds 0, the data do not tell the two apart."""
    y, p_a = _labels_probs(y, p_a)
    _, p_b = _labels_probs(y, p_b)
    f = _metric(metric)
    c = _confidence(confidence)
    reps = np.array([f(y[i], p_b[i]) - f(y[i], p_a[i]) for i in _resamples(y.size, y, n_resamples, seed)])
    lo, hi = np.quantile(reps, [(1 - c) / 2, (1 + c) / 2])
    return Interval(float(f(y, p_b) - f(y, p_a)), float(lo), float(hi), c)


# ------------------------------------------------------------------ the Open Bandit impressions
USER_COLUMNS = ("user_feature_0", "user_feature_1", "user_feature_2", "user_feature_3")
ITEM_CATEGORICAL = ("item_feature_1", "item_feature_2", "item_feature_3")
#: categorical and numeric model inputs of :meth:`ObdImpressions.pairs`
CATEGORICAL = ("campaign", "position", "item") + USER_COLUMNS + ITEM_CATEGORICAL
#: numeric model inputs of :meth:`ObdImpressions.pairs` (standardised by the models that need it)
NUMERIC = ("item_feature_0", "affinity")


@dataclass(frozen=True)
class ObdImpressions:
    """The Open Bandit sample as one table (:func:`load_obd_impressions`).

    ``rounds``: one row per impression -- ``policy`` (``random``/``bts``), ``campaign``
    (``men``/``women``), ``timestamp``, ``day`` (0 = 24 Nov 2019 ... 6 = 30 Nov), ``item``
    (global id 0-79: men's items 0-33, women's 34-79), ``position`` (slot 1-3), ``click``,
    ``propensity`` (the logging policy's probability of that item in that slot) and the four
    hashed user features. ``items``: 80 rows indexed by global id: ``campaign``,
    ``local_id`` (the id within its campaign's files), ``item_feature_0`` (numeric) and
    ``item_feature_1..3`` (hashed categories). ``affinity[t, a]``: the user-item affinity
    of round ``t``'s user with item ``a`` (past clicks; 0 for the other campaign's items).
    """

    rounds: pd.DataFrame
    items: pd.DataFrame
    affinity: np.ndarray

    def campaign_items(self, campaign: str) -> np.ndarray:
        """Global ids of the campaign's items, in local-id order."""
        if campaign not in ("men", "women"):
            raise ValueError(f"campaign must be 'men' or 'women', got {campaign!r}")
        return self.items.index[self.items["campaign"] == campaign].to_numpy()

    def pairs(self, rows: np.ndarray, items: np.ndarray | None = None, positions: np.ndarray | None = None
              ) -> pd.DataFrame:
        """Model inputs (:data:`CATEGORICAL` + :data:`NUMERIC`) for round ``rows[j]`` showing
        ``items[j]`` in slot ``positions[j]`` (defaults: the logged item and slot). The
        affinity is that of the round's user with that item."""
        rows = np.asarray(rows)
        r = self.rounds.iloc[rows]
        items = r["item"].to_numpy() if items is None else np.asarray(items)
        positions = r["position"].to_numpy() if positions is None else np.asarray(positions)
        if items.shape != rows.shape or positions.shape != rows.shape:
            raise ValueError(f"rows, items and positions must have equal length, got {rows.shape}, "
                             f"{items.shape}, {positions.shape}")
        if items.min() < 0 or items.max() >= len(self.items) or not np.isin(positions, (1, 2, 3)).all():
            raise ValueError(f"items must be global ids 0..{len(self.items) - 1} and positions 1-3")
        it = self.items.iloc[items]
        if (it["campaign"].to_numpy() != r["campaign"].to_numpy()).any():
            raise ValueError("an item can only be shown in its own campaign")
        out = {"campaign": r["campaign"].to_numpy(), "position": positions, "item": items}
        out.update({c: r[c].to_numpy() for c in USER_COLUMNS})
        out.update({c: it[c].to_numpy() for c in ITEM_CATEGORICAL})
        out["item_feature_0"] = it["item_feature_0"].to_numpy()
        out["affinity"] = np.log1p(self.affinity[rows, items])
        return pd.DataFrame(out)


def load_obd_impressions(data_dir: str | os.PathLike | None = None) -> ObdImpressions:
    """Load the four logs of the Open Bandit sample (random and Bernoulli-TS policies x
    men's and women's campaigns, 10,000 impressions each) as one :class:`ObdImpressions`,
    rows ordered by policy, campaign and time."""
    from helpers.data import load_open_bandit

    rounds, affinities, item_tables = [], [], {}
    offset = {"men": 0}
    for campaign in ("men", "women"):
        for policy in ("random", "bts"):
            log, items = load_open_bandit(policy, campaign, data_dir)
            if campaign not in item_tables:
                item_tables[campaign] = items
            n_items = len(items)
            log = log.sort_values("timestamp", kind="stable").reset_index(drop=True)
            aff = log[[f"user-item_affinity_{i}" for i in range(n_items)]].to_numpy(np.float32)
            rounds.append(pd.DataFrame({
                "policy": policy, "campaign": campaign, "timestamp": log["timestamp"],
                "position": log["position"].astype(np.int64), "local_item": log["item_id"].astype(np.int64),
                "click": log["click"].astype(np.int64), "propensity": log["propensity_score"].astype(np.float64),
                **{c: log[c].astype(str) for c in USER_COLUMNS}}))
            affinities.append((campaign, aff))
        offset.setdefault("women", len(item_tables["men"]))
    n_all = len(item_tables["men"]) + len(item_tables["women"])
    items = pd.concat([t.assign(campaign=c, local_id=t.index.to_numpy()) for c, t in item_tables.items()],
                      ignore_index=True)
    items.index.name = "item"
    for c in ITEM_CATEGORICAL:
        items[c] = items[c].astype(str)
    rounds = pd.concat(rounds, ignore_index=True)
    rounds["item"] = rounds["local_item"] + rounds["campaign"].map(offset).astype(np.int64)
    start = pd.Timestamp("2019-11-24", tz="UTC")
    rounds["day"] = ((rounds["timestamp"] - start) // pd.Timedelta(days=1)).astype(np.int64)
    affinity = np.zeros((len(rounds), n_all), dtype=np.float32)
    at = 0
    for campaign, aff in affinities:
        affinity[at:at + len(aff), offset[campaign]:offset[campaign] + aff.shape[1]] = aff
        at += len(aff)
    cols = ["policy", "campaign", "timestamp", "day", "item", "local_item", "position", "click", "propensity",
            *USER_COLUMNS]
    return ObdImpressions(rounds[cols], items[["campaign", "local_id", "item_feature_0", *ITEM_CATEGORICAL]],
                          affinity)


#: the book's split of the week of logs by day (0 = 24 Nov 2019): train, validation, test
SPLIT_DAYS = {"train": (0, 1, 2), "valid": (3, 4), "test": (5, 6)}


def day_split(rounds: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row indices of the train / valid / test days of :data:`SPLIT_DAYS` (by time: the
    model is always scored on days after the ones it learned from)."""
    if "day" not in rounds:
        raise ValueError("rounds needs a 'day' column (see load_obd_impressions)")
    day = rounds["day"].to_numpy()
    return {part: np.flatnonzero(np.isin(day, days)) for part, days in SPLIT_DAYS.items()}


# ------------------------------------------------------------------ click models, one interface
CTR_MODELS = ("position", "popularity", "logreg", "lightgbm", "fm")


@dataclass
class CtrModel:
    """A fitted click model: :meth:`predict` gives P(click) for rows of
    :meth:`ObdImpressions.pairs`. ``info`` records what fitting chose (e.g. the epoch)."""

    kind: str
    params: dict[str, Any]
    _predict: Callable[[pd.DataFrame], np.ndarray]
    info: dict[str, Any]

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        p = np.asarray(self._predict(frame), dtype=np.float64).ravel()
        return np.clip(p, 1e-7, 1 - 1e-7)


def _rate_table(train: pd.DataFrame, y: np.ndarray, keys: list[str], base: float, m: float) -> Callable:
    g = pd.DataFrame({k: train[k].to_numpy() for k in keys}).assign(click=y).groupby(keys)["click"].agg(["sum", "count"])
    rate = pd.Series(smoothed_rate(g["sum"].to_numpy(), g["count"].to_numpy(), base, m), index=g.index)

    def lookup(frame: pd.DataFrame) -> np.ndarray:
        idx = pd.MultiIndex.from_frame(frame[keys]) if len(keys) > 1 else pd.Index(frame[keys[0]])
        return rate.reindex(idx).fillna(base).to_numpy()
    return lookup


def fit_ctr(kind: str, params: dict[str, Any], train: pd.DataFrame, y: np.ndarray,
            valid: pd.DataFrame | None = None, y_valid: np.ndarray | None = None, seed: int = 0) -> CtrModel:
    r"""Fit click model ``kind`` with settings ``params`` on ``train`` (rows of
    :meth:`ObdImpressions.pairs`) and clicks ``y``.

    * ``"position"``: :func:`smoothed_rate` per (campaign, slot); ``params``: ``m``.
    * ``"popularity"``: smoothed rate per item (``m``), times the slot's relative CTR
      (its smoothed rate over the campaign's) when ``params["position"]`` is true.
    * ``"logreg"``: scikit-learn logistic regression on one-hot :data:`CATEGORICAL` and
      standardised :data:`NUMERIC` columns, :math:`\min_w \sum_i \ell(y_i, w^\top x_i) +
      \lVert w\rVert^2 / (2C)`; ``params``: ``C``.
    * ``"lightgbm"``: gradient-boosted trees (LightGBM, categorical columns native);
      ``params``: ``num_leaves``, ``learning_rate``, ``min_child_samples``,
      ``n_estimators`` (with ``valid``: the most trees tried, the best iteration on
      validation log loss is kept and recorded in ``info["best_iteration"]``).
    * ``"fm"``: a factorisation machine (:func:`helpers.hybrid.build_ctr_model`, kind
      ``"fm"``) with the context (campaign, slot, user features) as the "user" side and an
      item id embedding, the output bias started at the training click rate; AdamW; ``params``: ``dim``, ``learning_rate``, ``weight_decay``,
      ``epochs`` (with ``valid``: the best epoch on validation log loss is kept and
      recorded in ``info["best_epoch"]``). Batches of 512, seeded.
    """
    if kind not in CTR_MODELS:
        raise ValueError(f"kind must be one of {CTR_MODELS}, got {kind!r}")
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(train),) or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"y must hold one 0/1 click per training row ({len(train)}), got shape {y.shape}")
    if (valid is None) != (y_valid is None):
        raise ValueError("pass both valid and y_valid, or neither")
    base = float(y.mean())
    if not 0 < base < 1:
        raise ValueError("the training rows need both clicks and non-clicks")
    info: dict[str, Any] = {}
    if kind == "position":
        f = _rate_table(train, y, ["campaign", "position"], base, float(params["m"]))
        return CtrModel(kind, dict(params), f, info)
    if kind == "popularity":
        f_item = _rate_table(train, y, ["item"], base, float(params["m"]))
        if not params.get("position", False):
            return CtrModel(kind, dict(params), f_item, info)
        f_pos = _rate_table(train, y, ["campaign", "position"], base, 1000.0)
        f_camp = _rate_table(train, y, ["campaign"], base, 1000.0)
        return CtrModel(kind, dict(params), lambda fr: f_item(fr) * f_pos(fr) / f_camp(fr), info)
    if kind == "logreg":
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
                                 ("num", StandardScaler(), list(NUMERIC))])
        model = make_pipeline(pre, LogisticRegression(C=float(params["C"]), max_iter=5000, tol=1e-8))
        model.fit(train, y.astype(int))
        return CtrModel(kind, dict(params), lambda fr: model.predict_proba(fr)[:, 1], {"model": model})
    if kind == "lightgbm":
        import lightgbm as lgb

        cats = {c: pd.CategoricalDtype(sorted(train[c].unique())) for c in CATEGORICAL}

        def prep(fr: pd.DataFrame) -> pd.DataFrame:
            out = fr[list(CATEGORICAL) + list(NUMERIC)].copy()
            for c, dt in cats.items():
                out[c] = out[c].astype(dt)
            return out
        lgb_params = {"objective": "binary", "num_leaves": int(params["num_leaves"]),
                      "learning_rate": float(params["learning_rate"]),
                      "min_child_samples": int(params["min_child_samples"]), "lambda_l2": 1.0,
                      "min_sum_hessian_in_leaf": 1e-3, "cat_smooth": 10.0, "seed": seed,
                      "deterministic": True, "force_col_wise": True, "num_threads": 1, "verbose": -1}
        dtrain = lgb.Dataset(prep(train), y, categorical_feature=list(CATEGORICAL), free_raw_data=False)
        if valid is not None:
            dvalid = lgb.Dataset(prep(valid), np.asarray(y_valid, dtype=np.float64), reference=dtrain)
            booster = lgb.train({**lgb_params, "metric": "binary_logloss"}, dtrain,
                                num_boost_round=int(params["n_estimators"]), valid_sets=[dvalid],
                                callbacks=[lgb.early_stopping(50, verbose=False)])
            info["best_iteration"] = int(booster.best_iteration or params["n_estimators"])
        else:
            booster = lgb.train(lgb_params, dtrain, num_boost_round=int(params["n_estimators"]))
        best = info.get("best_iteration")
        return CtrModel(kind, dict(params), lambda fr: booster.predict(prep(fr), num_iteration=best),
                        {**info, "model": booster})
    return _fit_fm(params, train, y, valid, y_valid, seed)


def _fit_fm(params: dict[str, Any], train: pd.DataFrame, y: np.ndarray, valid: pd.DataFrame | None,
            y_valid: np.ndarray | None, seed: int) -> CtrModel:
    base = float(np.mean(y))
    import itertools

    import keras

    from helpers.hybrid import SideFeatures, build_ctr_model
    from helpers.metrics import log_loss as _ll

    # contexts: every combination of the training levels of campaign, slot and user features
    # (2 x 3 x 3 x 5 x 9 x 9 on the sample), a level not seen in training counts as "other"
    ctx_cols = ["campaign", "position", *USER_COLUMNS]
    levels = {c: sorted(train[c].astype(str).unique()) + ["other"] for c in ctx_cols}
    sizes = [len(levels[c]) for c in ctx_cols]
    u_names = [f"{c}={v}" for c in ctx_cols for v in levels[c]]
    U = np.zeros((int(np.prod(sizes)), len(u_names)), dtype=np.float32)
    offsets = np.cumsum([0] + sizes[:-1])
    for r, combo in enumerate(itertools.product(*(range(k) for k in sizes))):
        U[r, offsets + np.array(combo)] = 1.0

    def ctx_ids(fr: pd.DataFrame) -> np.ndarray:
        code = np.zeros(len(fr), dtype=np.int64)
        for c, k in zip(ctx_cols, sizes):
            lv = pd.Index(levels[c][:-1])
            j = lv.get_indexer(fr[c].astype(str).to_numpy())
            code = code * k + np.where(j < 0, k - 1, j)
        return code.astype(np.int32)

    items = train.groupby("item")[list(ITEM_CATEGORICAL) + ["item_feature_0"]].first()
    n_items = int(max(train["item"].max(), valid["item"].max() if valid is not None else 0)) + 1
    items = items.reindex(range(n_items))
    i_levels = {c: sorted(items[c].dropna().astype(str).unique()) for c in ITEM_CATEGORICAL}
    i_names = [f"{c}={v}" for c in ITEM_CATEGORICAL for v in i_levels[c]] + ["item_feature_0"]
    I = np.zeros((n_items, len(i_names)), dtype=np.float32)
    for j, name in enumerate(i_names[:-1]):
        c, v = name.split("=", 1)
        I[:, j] = (items[c].astype(str).to_numpy() == v)
    z = items["item_feature_0"].to_numpy(np.float64)
    z = np.where(np.isnan(z), np.nanmean(z), z)
    I[:, -1] = (z - z.mean()) / (z.std() + 1e-12)
    feats = SideFeatures(U, I, u_names, i_names)

    keras.utils.set_random_seed(seed)
    model = build_ctr_model("fm", len(U), n_items, feats, dim=int(params["dim"]), ids=("item",))
    # start at the training click rate instead of p = 0.5: otherwise the first epochs only learn the bias
    model.get_layer("linear").bias.assign(np.array([np.log(base / (1 - base))], dtype=np.float32))
    model.compile(optimizer=keras.optimizers.AdamW(float(params["learning_rate"]),
                                                    weight_decay=float(params["weight_decay"])),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))
    u_train, i_train = ctx_ids(train), train["item"].to_numpy(np.int32)

    def predict(fr: pd.DataFrame) -> np.ndarray:
        s = model.predict([ctx_ids(fr), fr["item"].to_numpy(np.int32)], batch_size=16384, verbose=0).ravel()
        return 1 / (1 + np.exp(-s.astype(np.float64)))

    best_loss, best_weights, history = np.inf, None, []
    for _ in range(int(params["epochs"])):
        model.fit([u_train, i_train], y.astype(np.float32), batch_size=512, epochs=1, verbose=0, shuffle=True)
        if valid is not None:
            loss = _ll(np.asarray(y_valid, dtype=np.float64), np.clip(predict(valid), 1e-7, 1 - 1e-7))
            history.append(loss)
            if loss < best_loss:
                best_loss, best_weights = loss, model.get_weights()
    if best_weights is not None:
        model.set_weights(best_weights)
    info: dict[str, Any] = {"model": model, "history": history}
    if history:
        info["best_epoch"] = int(np.argmin(history)) + 1
    return CtrModel("fm", dict(params), predict, info)
