"""Training loops shared by the model chapters."""
from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def compiled_epoch(train_step: Callable[..., tf.Tensor], batch_size: int) -> Callable[..., tf.Tensor]:
    """Wrap a per-batch ``train_step(*tensors) -> loss`` (e.g. ``users, items, targets``,
    optionally ``weights``) into one compiled epoch over already shuffled tensors of equal
    length, returning the mean batch loss.

    The whole epoch runs as one ``tf.function`` graph (a ``tf.range`` loop over slices), so
    Python is entered once per epoch instead of once per batch -- the main reason the book's
    loops are many times faster than ``model.fit`` with small batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    @tf.function
    def train_epoch(*tensors: tf.Tensor) -> tf.Tensor:
        n_batches = (tf.shape(tensors[0])[0] + batch_size - 1) // batch_size
        total = tf.constant(0.0)
        for b in tf.range(n_batches):
            s = b * batch_size
            total += train_step(*(t[s:s + batch_size] for t in tensors))
        return total / tf.cast(n_batches, tf.float32)

    return train_epoch
