"""Keep TensorFlow's start-up messages out of notebooks and the built site.

TensorFlow's C++ runtime prints lines such as ``cudart_stub.cc: Could not find cuda
drivers`` or ``WARNING: All log messages before absl::InitializeLog() is called ...``
directly to file descriptor 2, before Python's logging is involved, so
``TF_CPP_MIN_LOG_LEVEL`` alone does not hide them and a Jupyter kernel forwards them into
the notebook as red stderr output. :func:`quiet_tensorflow` sets the environment
variables first, then imports TensorFlow and initialises its devices while file
descriptor 2 points at ``/dev/null``, and finally restores it, so genuine errors later in
a session still show.

:func:`install_quiet_import` (what ``import helpers`` calls) does not import TensorFlow
itself: it sets the environment variables and arranges for the *first* ``import tensorflow``
(or ``import keras``, which imports it) to go through :func:`quiet_tensorflow`. NumPy-only
modules such as :mod:`helpers.metrics` therefore load in a fraction of a second without
TensorFlow, and a chapter that does use TensorFlow still gets a silent start.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
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


class _AlreadyImported(importlib.abc.Loader):
    """Hands the import system the module :func:`quiet_tensorflow` has just imported."""

    def __init__(self, module):
        self.module = module
        self.spec = module.__spec__
        self.loader = getattr(module, "__loader__", None)

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        # the import system stamped our spec on the module: give it back its real one
        module.__spec__ = self.spec
        if self.loader is not None:
            module.__loader__ = self.loader


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that routes the first ``import tensorflow`` through
    :func:`quiet_tensorflow` (fd 2 silenced while TensorFlow starts), then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        quiet_tensorflow()  # imports tensorflow (module locks are re-entrant in one thread)
        module = sys.modules.get("tensorflow")
        if module is None:  # pragma: no cover - quiet_tensorflow found no TensorFlow
            return None
        return importlib.machinery.ModuleSpec(fullname, _AlreadyImported(module))


def install_quiet_import() -> None:
    """Make the first import of TensorFlow silent without importing it now.

    Sets ``TF_CPP_MIN_LOG_LEVEL`` and ``KERAS_BACKEND`` (unless already set) and puts a
    finder at the front of ``sys.meta_path``; if TensorFlow is already imported, quiets its
    loggers directly.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        quiet_tensorflow()
        return
    if not any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
