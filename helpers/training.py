"""Training loops shared by the model chapters."""
from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


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
