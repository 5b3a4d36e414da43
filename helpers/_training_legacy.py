# TEMPORARY (one landing only): the chapter-8 training API as it was before helpers.training's
# TrainConfig/run_epochs rewrite (commit a59d93e), kept so that the committed chapter 8 runs
# until its rewrite on the new API lands. Not part of the documented package; delete with it.
"""Training loops shared by the model chapters: the compiled epoch, the per-epoch record
and batched, compiled prediction."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf


@dataclass
class EpochHistory:
    """What every training loop records, one entry per epoch: the mean batch ``loss`` and
    the cumulative training wall time ``seconds``; ``best_epoch`` (1-based) is the epoch
    whose weights the model holds at the end, ``stopped_early`` whether patience ran out."""

    loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.loss)

    @property
    def train_seconds(self) -> float:
        """Training wall time up to the last epoch run."""
        return self.seconds[-1] if self.seconds else 0.0


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
