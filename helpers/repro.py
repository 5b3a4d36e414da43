"""Reproducibility: one call seeds every random number generator the book uses."""
from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int = 42, deterministic_ops: bool = True) -> np.random.Generator:
    """Seed Python, NumPy and TensorFlow/Keras and return a fresh NumPy ``Generator``.

    With ``deterministic_ops`` TensorFlow's op determinism is switched on
    (``tf.config.experimental.enable_op_determinism``), so that the same run gives the same
    numbers on the same machine. Call it once at the top of every chapter, and again before
    a model whose result should not depend on what ran before it.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    try:
        import keras
        import tensorflow as tf
    except ImportError:  # NumPy-only use
        return np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    return np.random.default_rng(seed)
