"""Keep TensorFlow's start-up messages out of notebooks and the built site.

TensorFlow's C++ runtime prints lines such as ``cudart_stub.cc: Could not find cuda
drivers`` or ``WARNING: All log messages before absl::InitializeLog() is called ...``
directly to file descriptor 2, before Python's logging is involved, so
``TF_CPP_MIN_LOG_LEVEL`` alone does not hide them and a Jupyter kernel forwards them into
the notebook as red stderr output. :func:`quiet_tensorflow` sets the environment
variables first, then imports TensorFlow and initialises its devices while file
descriptor 2 points at ``/dev/null``, and finally restores it, so genuine errors later in
a session still show.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Iterator

_DONE = False


@contextlib.contextmanager
def stderr_fd_silenced() -> Iterator[None]:
    """Redirect the process-level stderr (fd 2) to ``/dev/null`` inside the block."""
    try:
        sys.stderr.flush()
    except Exception:  # pragma: no cover - exotic stderr objects
        pass
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no fd 2 at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow() -> None:
    """Import TensorFlow silently (once); a no-op when TensorFlow is not installed.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (C++ logs: errors hidden below FATAL) unless the user
    chose a level, lowers the Python loggers of TensorFlow and absl to ERROR, and lists the
    devices inside the silenced block so that CUDA probing happens there too.
    """
    global _DONE
    if _DONE:
        return
    _DONE = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if importlib.util.find_spec("tensorflow") is None:
        return
    with stderr_fd_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tensorflow as tf  # noqa: F401

        tf.config.list_physical_devices()
        import keras  # noqa: F401
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover
        pass
