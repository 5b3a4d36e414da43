"""Reproducibility and quiet TensorFlow, tested where it matters: inside a real kernel."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import numpy as np
import pytest

import helpers

MODEL_CELL = """
import numpy as np, keras
m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
m.compile("adam", "mse")
h = m.fit(np.ones((64, 3)), np.ones(64), epochs=2, batch_size=16, verbose=0)
print(round(float(h.history["loss"][-1]), 6))
"""


RUNNER = """
import json, sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.v4.new_notebook()
nb.cells = [nbformat.v4.new_code_cell(s) for s in json.load(sys.stdin)]
NotebookClient(nb, timeout=300, kernel_name="python3").execute()
print(nbformat.writes(nb))
"""


def run_cells(*sources: str) -> nbformat.NotebookNode:
    """Execute cells in a fresh kernel started by a separate process, as JupyterLab or the
    book build would. ipykernel stops forwarding fd-level stderr when it sees
    PYTEST_CURRENT_TEST, so that variable is removed: the kernel must see what a learner's sees."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    proc = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(sources), env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return nbformat.reads(proc.stdout, as_version=4)


def stderr_text(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.outputs
                   if o.output_type == "stream" and o.name == "stderr")


def test_seed_everything_makes_numpy_and_keras_repeatable():
    import keras

    def draw():
        rng = helpers.seed_everything(123)
        layer = keras.layers.Dense(3)
        layer.build((None, 2))
        return rng.random(3), np.random.rand(2), layer.kernel.numpy()

    a, b = draw(), draw()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="non-negative integer"):
        helpers.seed_everything(-1)


@pytest.fixture
def clean_env(monkeypatch):
    """Kernels inherit this process's environment; start them as a learner's would."""
    for var in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND"):
        monkeypatch.delenv(var, raising=False)


def test_importing_helpers_first_keeps_tensorflow_noise_out_of_the_notebook(clean_env):
    nb = run_cells("import helpers\nimport tensorflow as tf\nhelpers.seed_everything(0)", MODEL_CELL)
    assert stderr_text(nb) == ""
    assert nb.cells[1].outputs[0]["text"].strip()  # the model really ran and printed


def test_without_helpers_the_noise_would_reach_the_notebook(clean_env):
    """Control: proves the test above can see C++ stderr output at all on this machine."""
    nb = run_cells("import tensorflow as tf\ntf.config.list_physical_devices()")
    if not stderr_text(nb):
        pytest.skip("this TensorFlow build prints nothing at start-up here; nothing to hide")
    assert "absl" in stderr_text(nb) or "cuda" in stderr_text(nb).lower()


def test_numpy_scalars_print_as_plain_numbers_so_glue_can_format_them():
    from myst_nb.core.variables import format_plain_text

    assert repr(np.float64(0.398)) == "0.398"
    assert format_plain_text(repr(np.float64(0.39812)), ".3f") == "0.398"
    assert format_plain_text(repr(np.int64(943)), ",d") == "943"


def test_figures_appear_even_when_the_environment_selects_agg(clean_env, monkeypatch):
    """Headless servers often set MPLBACKEND=Agg; a chapter must still show its figures."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()"
    without = run_cells(plot)
    with_helpers = run_cells("import helpers", plot)
    has_png = lambda cell: any("image/png" in o.get("data", {}) for o in cell.outputs)  # noqa: E731
    assert not has_png(without.cells[0])  # the failure this guards against is real
    assert has_png(with_helpers.cells[1])
    assert stderr_text(with_helpers) == ""


NUMPY_ONLY = ["data", "encoding", "splits", "sampling", "metrics", "evaluation", "baselines",
              "protocol", "tuning", "stats", "beyond", "activations", "losses", "preprocessing",
              "optim", "factorization", "ensemble", "ope", "ctr", "privacy", "pipeline", "imbalance", "graph",
              "serving", "distributed", "bandits"]


@pytest.mark.parametrize("module", NUMPY_ONLY)
def test_numpy_only_modules_do_not_import_tensorflow(module):
    """Scripts, tests and the API page load these without paying for TensorFlow."""
    code = f"import sys, helpers.{module}; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "False"], f"helpers.{module} imports TensorFlow or Keras"


def test_the_first_tensorflow_import_after_helpers_is_silent_and_complete():
    code = ("import helpers, os\nimport keras, tensorflow as tf\n"
            "print(tf.__spec__.origin is not None, hasattr(tf, '__path__'), int(tf.constant(2).numpy()))")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True", "2"]
    assert out.stderr == ""
