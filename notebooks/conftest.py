"""nbval, executed once: every chapter runs one time per `make test`, and the site reuses it.

`pytest --nbval-lax notebooks` executes each chapter cell by cell (the check that every chapter
runs). This plugin, active whenever pytest collects this folder, adds three things:

1. **No stderr.** A cell that writes to stderr fails, as in the strict site build. The kernel
   is started without ``PYTEST_CURRENT_TEST`` in its environment, because ipykernel stops
   forwarding process-level (C++) stderr when it sees that variable, and TensorFlow's start-up
   noise would then go unnoticed.
2. **One execution, two uses.** When every cell of a chapter passed, the executed notebook
   (outputs as the kernel sent them) is stored in the Jupyter cache that the site build reads
   (``execute.cache`` in ``_config.yml``). `jupyter-book build` then finds each chapter already
   executed and renders it without running it again -- CI pays for one execution per chapter.
   A chapter that changed after the nbval run, or failed in it, is executed by the build.
3. **A visible budget.** Each chapter's execution time is printed at the end of the run and
   written to ``_build/chapter_times.json`` (``python tools/chapter_times.py`` prints it again).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "_build" / ".jupyter_cache"
TIMES_FILE = ROOT / "_build" / "chapter_times.json"
BUDGET_SECONDS = 120.0

_runs: dict[str, dict] = {}


def _kernel_env_without_pytest_marker() -> None:
    """Start nbval's kernels without PYTEST_CURRENT_TEST (see point 1 above)."""
    from nbval import kernel as nbval_kernel

    original = nbval_kernel.RunningKernel.__init__
    if getattr(original, "_recsys_patched", False):
        return

    def __init__(self, *args, **kwargs):
        saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
        try:
            original(self, *args, **kwargs)
        finally:
            if saved is not None:
                os.environ["PYTEST_CURRENT_TEST"] = saved

    __init__._recsys_patched = True  # type: ignore[attr-defined]
    nbval_kernel.RunningKernel.__init__ = __init__


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("nbval"):
        _kernel_env_without_pytest_marker()


def _is_nbval_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if not _is_nbval_cell(item):
        return (yield)
    path = str(Path(str(item.parent.fspath)).resolve())
    run = _runs.setdefault(path, {"cells": {}, "seconds": 0.0, "failed": False})
    start = time.perf_counter()
    try:
        result = yield
    except BaseException:
        run["failed"] = True
        raise
    finally:
        run["seconds"] += time.perf_counter() - start
    outputs = list(item.test_outputs or [])
    run["cells"][item.cell_num] = outputs
    stderr = [o.get("text", "") for o in outputs
              if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    if stderr:
        run["failed"] = True
        text = "".join(stderr)
        raise AssertionError(f"the cell wrote to stderr (the site build fails on it):\n{text[:2000]}")
    return result


def _executed_notebook(path: str, cells: dict[int, list]) -> nbformat.NotebookNode | None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if len(code) != len(cells):
        return None  # not every cell ran (deselected or skipped): do not cache a partial run
    for n, cell in enumerate(code):
        outs = []
        for o in cells[n]:
            kind = o["output_type"]
            if kind == "stream":
                outs.append(nbformat.v4.new_output("stream", name=o["name"], text=o["text"]))
            elif kind in ("display_data", "execute_result"):
                extra = {"execution_count": n + 1} if kind == "execute_result" else {}
                outs.append(nbformat.v4.new_output(kind, data=o.get("data", {}),
                                                   metadata=o.get("metadata", {}), **extra))
        cell.outputs = outs
        cell.execution_count = n + 1
    return nb


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _runs:
        return
    times = json.loads(TIMES_FILE.read_text()) if TIMES_FILE.is_file() else {}
    cached = []
    for path, run in sorted(_runs.items()):
        rel = os.path.relpath(path, ROOT)
        times[rel] = {"seconds": round(run["seconds"], 1), "passed": not run["failed"],
                      "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
        if run["failed"]:
            continue
        nb = _executed_notebook(path, run["cells"])
        if nb is None:
            continue
        from jupyter_cache import get_cache
        from jupyter_cache.base import CacheBundleIn

        cache = get_cache(str(CACHE_DIR))
        cache.cache_notebook_bundle(
            CacheBundleIn(nb, path, data={"execution_seconds": run["seconds"], "by": "nbval"}),
            check_validity=False, overwrite=True)
        cached.append(rel)
    TIMES_FILE.parent.mkdir(parents=True, exist_ok=True)
    TIMES_FILE.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
    session.config._recsys_cached = cached  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _runs:
        return
    tr = terminalreporter
    tr.section(f"chapter execution times (budget {BUDGET_SECONDS:.0f} s on 2 cores)")
    total = 0.0
    for path, run in sorted(_runs.items()):
        s = run["seconds"]
        total += s
        flag = "FAILED" if run["failed"] else ("OVER BUDGET" if s > BUDGET_SECONDS else "ok")
        tr.write_line(f"{os.path.relpath(path, ROOT):45s} {s:7.1f} s  {flag}")
    tr.write_line(f"{'total':45s} {total:7.1f} s")
    cached = getattr(config, "_recsys_cached", [])
    tr.write_line(f"{len(cached)} executed chapters stored in {os.path.relpath(CACHE_DIR, ROOT)} "
                  "for the site build")
