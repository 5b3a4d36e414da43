"""Same run, same numbers: a model chapter executed twice in fresh kernels glues the same values.

The book promises that every number is reproducible (seeded NumPy, Python and Keras; see
:func:`helpers.seed_everything`). This test holds it to that: one chapter that trains Keras
models is executed in a fresh kernel and every ``myst_nb.glue`` value is compared, as text,
with the values of another fresh execution -- the one `make nbval` stored in the Jupyter
cache when it exists (so CI pays for one extra execution), otherwise a second run here.
``SAME_NUMBERS_CHAPTER`` picks another chapter.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat

from _book import ROOT, glue_outputs

CHAPTER = ROOT / os.environ.get("SAME_NUMBERS_CHAPTER", "notebooks/06_mlp.ipynb")
CACHE_DIR = ROOT / "_build" / ".jupyter_cache"

RUNNER = """
import sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
nbformat.write(nb, sys.stdout)
"""


def glued(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Every glued key with the text of its value."""
    return {key: data.get("text/plain", json.dumps(data, sort_keys=True))
            for key, data in glue_outputs(nb).items()}


def execute_fresh(path: Path) -> nbformat.NotebookNode:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(path), str(path.parent)], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{path.name} failed to execute:\n{proc.stderr[-3000:]}"
    return nbformat.reads(proc.stdout, as_version=4)


def cached_run(path: Path) -> nbformat.NotebookNode | None:
    if not CACHE_DIR.is_dir():
        return None
    from jupyter_cache import get_cache

    cache = get_cache(str(CACHE_DIR))
    try:
        record = cache.match_cache_notebook(nbformat.read(path, as_version=4))
    except KeyError:
        return None
    return cache.get_cache_bundle(record.pk).nb


def test_a_model_chapter_glues_the_same_numbers_twice():
    assert CHAPTER.is_file(), f"{CHAPTER} does not exist (SAME_NUMBERS_CHAPTER?)"
    first = cached_run(CHAPTER) or execute_fresh(CHAPTER)
    second = execute_fresh(CHAPTER)
    a, b = glued(first), glued(second)
    assert a, f"{CHAPTER.name} glued nothing"
    assert a.keys() == b.keys()
    differ = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not differ, f"{len(differ)} of {len(a)} glued values changed between runs: {differ}"
