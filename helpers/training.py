r"""Training loops shared by the model chapters: one set of optimisation settings
(:class:`TrainConfig`), one per-epoch record (:class:`EpochHistory`), one validation and
early-stopping rule (:class:`Validation`, :func:`run_epochs`), the compiled epoch
(:func:`compiled_epoch`) and batched, compiled prediction (:func:`predict_batched`), with the
scorers the evaluation loops take (:func:`pair_scorer`, :func:`user_scorer`) for any Keras model
with a ``[users, items]`` input.

The early-stopping rule, written once: the model is validated **before training (epoch 0)**
and after every epoch; the best epoch is the one with the best ``monitor`` value (the
earliest on ties), the model ends with that epoch's weights, and training stops after
``patience`` epochs without a better value. Because epoch 0 is a candidate, "keep the
starting model if training never beats it" -- e.g. a pre-trained NeuMF whose fine-tuning
does not help -- needs no special case: ``best_epoch == 0``.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class TrainConfig:
    r"""Optimisation settings of one training run.

    Adam (AdamW when ``weight_decay > 0``: every step shrinks each weight by
    ``learning_rate * weight_decay`` times itself, decoupled from the gradient) on batches of
    ``batch_size`` for ``epochs`` epochs. With ``decay_to`` the learning rate falls linearly
    from ``learning_rate`` to ``decay_to * learning_rate`` over ``decay_epochs`` epochs
    (default ``epochs``):

    .. math:: \eta_t = \eta_0\Big(1 - (1 - d)\,\frac{\min(t, T)}{T}\Big),\qquad
              T = \text{decay\_epochs}\times\text{steps per epoch}.

    :meth:`refit` keeps the schedule of a validation run and stops it early, so a model
    refitted for the epoch validation chose sees exactly the learning rates it saw then.
    ``seed`` seeds the loop's own randomness (negatives, shuffling); ``jit_compile``
    compiles the step with XLA.
    """

    epochs: int = 20
    batch_size: int = 4096
    learning_rate: float = 5e-3
    weight_decay: float = 0.0
    decay_to: float | None = None
    decay_epochs: int | None = None
    seed: int = 0
    jit_compile: bool = False

    def __post_init__(self) -> None:
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if not self.learning_rate > 0 or not self.weight_decay >= 0:
            raise ValueError(f"need learning_rate > 0 and weight_decay >= 0, got "
                             f"{self.learning_rate} and {self.weight_decay}")
        if self.decay_to is not None and not 0.0 <= self.decay_to <= 1.0:
            raise ValueError(f"decay_to is a fraction of the learning rate in [0, 1], got {self.decay_to}")
        if self.decay_epochs is not None and self.decay_epochs < self.epochs:
            raise ValueError(f"decay_epochs ({self.decay_epochs}) must be >= epochs ({self.epochs})")

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> TrainConfig:
        """The config from a mapping that may hold other keys too (e.g. a search's choice,
        :func:`helpers.tuning.read_choice`); missing keys keep their defaults. Integers
        that JSON or CSV turned into floats (``8192.0``) are converted back."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in settings and settings[f.name] is not None:
                v = settings[f.name]
                if f.name in ("epochs", "batch_size", "decay_epochs", "seed"):
                    v = int(v)
                elif f.name == "jit_compile":
                    v = bool(v)
                else:
                    v = float(v)
                kwargs[f.name] = v
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)

    def refit(self, epochs: int) -> TrainConfig:
        """The same schedule, stopped after ``epochs`` (the epoch validation chose)."""
        if int(epochs) != epochs or not 1 <= epochs <= (self.decay_epochs or self.epochs):
            raise ValueError(f"refit epochs must be in 1..{self.decay_epochs or self.epochs}, got {epochs!r}")
        return dataclasses.replace(self, epochs=int(epochs), decay_epochs=self.decay_epochs or self.epochs)

    def optimizer(self, steps_per_epoch: int) -> keras.optimizers.Optimizer:
        """Adam or AdamW with the learning-rate schedule, for ``steps_per_epoch`` steps."""
        lr: float | keras.optimizers.schedules.LearningRateSchedule = self.learning_rate
        if self.decay_to is not None:
            lr = keras.optimizers.schedules.PolynomialDecay(
                self.learning_rate, steps_per_epoch * (self.decay_epochs or self.epochs),
                end_learning_rate=self.learning_rate * self.decay_to)
        if self.weight_decay > 0:
            return keras.optimizers.AdamW(lr, weight_decay=self.weight_decay)
        return keras.optimizers.Adam(lr)


@dataclass
class EpochHistory:
    """What every training loop records, one entry per epoch: the mean batch ``loss``, the
    cumulative training wall time ``seconds`` and process CPU time ``cpu_seconds`` (all
    threads; less sensitive to other programs on a shared machine), both excluding
    validation. ``val[metric][e]`` is the validation value *after* epoch ``e``, with
    ``val[metric][0]`` measured before training (see :func:`run_epochs`); empty without
    validation. ``best_epoch`` is the epoch whose weights the model holds at the end (0 =
    the starting weights), ``stopped_early`` whether patience ran out."""

    loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    cpu_seconds: list[float] = field(default_factory=list)
    val: dict[str, list[float]] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """Number of training epochs run."""
        return len(self.loss)

    @property
    def train_seconds(self) -> float:
        """Training wall time up to the last epoch run."""
        return self.seconds[-1] if self.seconds else 0.0

    def best(self, metric: str) -> float:
        """Validation ``metric`` at the best epoch."""
        if metric not in self.val:
            raise KeyError(f"no validation metric {metric!r}; recorded: {sorted(self.val)}")
        return self.val[metric][self.best_epoch]


@dataclass(frozen=True)
class Validation:
    """How a loop validates: ``evaluate(model) -> {metric: value}`` (e.g. ranking metrics
    on validation candidates; never on test items), the ``monitor`` metric and whether it
    is maximised (``mode="max"``) or minimised, ``patience`` (stop after that many epochs
    without improvement; ``None`` = run all epochs) and ``restore_best``."""

    evaluate: Callable[[keras.Model], Mapping[str, float]]
    monitor: str = "NDCG@10"
    mode: str = "max"
    patience: int | None = None
    restore_best: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {self.mode!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")


def run_epochs(model: keras.Model, epoch_fn: Callable[[int], float], epochs: int,
               validation: Validation | None = None, history: EpochHistory | None = None,
               on_epoch_end: Callable[[int, EpochHistory], None] | None = None) -> EpochHistory:
    """Run ``epoch_fn(epoch) -> mean loss`` for epochs ``1..epochs`` and apply the book's one
    early-stopping rule (module docstring).

    Wall and CPU time of ``epoch_fn`` are accumulated into ``history.seconds`` and
    ``history.cpu_seconds``; a non-finite loss raises ``FloatingPointError``. With
    ``validation`` the model is evaluated before training and after every epoch; without it
    ``best_epoch`` is the last epoch. ``on_epoch_end(epoch, history)`` is called after each
    epoch (after validation).
    """
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    hist = EpochHistory() if history is None else history
    best_value, best_weights, waited = None, None, 0

    def check(epoch: int) -> None:
        nonlocal best_value, best_weights, waited
        report = validation.evaluate(model)
        if validation.monitor not in report:
            raise KeyError(f"monitor must be one of {sorted(report)}, got {validation.monitor!r}")
        for key, value in report.items():
            hist.val.setdefault(key, []).append(float(value))
        value = float(report[validation.monitor])
        better = best_value is None or (value > best_value if validation.mode == "max" else value < best_value)
        if better:
            best_value, waited, hist.best_epoch = value, 0, epoch
            if validation.restore_best:
                best_weights = model.get_weights()
        else:
            waited += 1

    if validation is not None:
        check(0)
    elapsed = cpu = 0.0
    for epoch in range(1, int(epochs) + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = float(epoch_fn(epoch))
        elapsed += time.perf_counter() - t0
        cpu += time.process_time() - c0
        hist.loss.append(loss)
        hist.seconds.append(elapsed)
        hist.cpu_seconds.append(cpu)
        if not np.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} in epoch {epoch}: lower the learning rate")
        if validation is not None:
            check(epoch)
        else:
            hist.best_epoch = epoch
        if on_epoch_end is not None:
            on_epoch_end(epoch, hist)
        if validation is not None and validation.patience is not None and waited >= validation.patience:
            hist.stopped_early = True
            break
    if best_weights is not None and hist.best_epoch != hist.epochs:
        model.set_weights(best_weights)
    return hist


def predict_batched(model: keras.Model, users: np.ndarray, items: np.ndarray,
                    batch_size: int = 65536) -> np.ndarray:
    """``model([users, items])`` for aligned int arrays, in batches, as float64. The
    inference function is compiled once per model and kept on it (outside Keras'
    attribute tracking), so repeated calls -- e.g. validation after every epoch -- do not
    trace again."""
    users = np.asarray(users, dtype=np.int32)
    items = np.asarray(items, dtype=np.int32)
    if users.shape != items.shape:
        raise ValueError(f"users and items must have the same shape, got {users.shape} and {items.shape}")
    fn = getattr(model, "_book_predict_fn", None)
    if fn is None:
        fn = tf.function(lambda u, i: model([u, i], training=False), reduce_retracing=True)
        object.__setattr__(model, "_book_predict_fn", fn)
    out = np.empty(len(users), dtype=np.float64)
    for s in range(0, len(users), batch_size):
        out[s:s + batch_size] = fn(tf.constant(users[s:s + batch_size]), tf.constant(items[s:s + batch_size])).numpy()
    return out


def pair_scorer(model: keras.Model, batch_size: int = 65536
                ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``f(users, items) -> logits`` (float32, one per pair), compiled once, in batches:
    the ``score_pairs`` argument of :func:`helpers.evaluation.evaluate_sampled`."""
    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return predict_batched(model, users, items, batch_size).astype(np.float32)

    return score


def user_scorer(model: keras.Model, n_items: int, batch_size: int = 65536
                ) -> Callable[[np.ndarray], np.ndarray]:
    """``f(users) -> (len(users), n_items)`` logits for every item: the ``score_users``
    argument of :func:`helpers.evaluation.evaluate_full`."""
    score = pair_scorer(model, batch_size)

    def score_users(users: np.ndarray) -> np.ndarray:
        users = np.asarray(users)
        u = np.repeat(users, n_items)
        i = np.tile(np.arange(n_items), len(users))
        return score(u, i).reshape(len(users), n_items)

    return score_users


def compiled_epoch(train_step: Callable[..., tf.Tensor], batch_size: int) -> Callable[..., tf.Tensor]:
    """Wrap a per-batch ``train_step(*tensors) -> loss`` (e.g. ``users, items, targets``,
    optionally ``weights``) into one compiled epoch over already shuffled tensors of equal
    length, returning the mean batch loss.

    The whole epoch runs as one ``tf.function`` graph (a ``tf.while_loop`` over slices), so
    Python is entered once per epoch instead of once per batch -- the main reason the book's
    loops are many times faster than ``model.fit`` with small batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    # autograph=False: the loop is written as an explicit tf.while_loop, which saves the
    # source-to-graph conversion (a good part of the first epoch's tracing time).
    @tf.function(autograph=False)
    def train_epoch(*tensors: tf.Tensor) -> tf.Tensor:
        n_batches = (tf.shape(tensors[0])[0] + batch_size - 1) // batch_size

        def body(b: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            s = b * batch_size
            return b + 1, total + train_step(*(t[s:s + batch_size] for t in tensors))

        _, total = tf.while_loop(lambda b, _: b < n_batches, body, (tf.constant(0), tf.constant(0.0)))
        return total / tf.cast(n_batches, tf.float32)

    return train_epoch
