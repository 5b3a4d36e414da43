"""Validated settings: the one place a chapter and its search script read a choice from.

A search that is too slow for a chapter's two-minute budget runs as a script in
``benchmarks/`` (by hand, on validation only). It writes two files into
``benchmarks/results/``, which are committed:

* ``<name>.csv`` -- the full validation table, one row per setting tried;
* ``<name>.json`` -- the chosen setting, the metric it maximised or minimised, and how the
  table was produced (script, protocol, seeds).

The chapter then shows the table and reads the choice with :func:`read_choice`, so no
setting is typed by hand and the page and the script cannot drift apart.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

RESULTS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def _paths(name: str, results_dir: str | os.PathLike | None) -> tuple[Path, Path]:
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"a search name is letters, digits, '_' and '-', got {name!r}")
    d = Path(results_dir) if results_dir is not None else RESULTS_DIR
    return d / f"{name}.csv", d / f"{name}.json"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(v: Any) -> Any:
    """NumPy scalars to Python numbers, so the JSON is readable and exact."""
    if hasattr(v, "item") and callable(v.item):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"a chosen setting must be finite, got {v}")
    return v


def write_search(name: str, table: pd.DataFrame, choice: dict[str, Any], metric: str,
                 goal: str = "max", notes: dict[str, Any] | None = None,
                 results_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Write a search's validation ``table`` and its ``choice``; return the two paths.

    ``table`` must contain the column ``metric`` and one column per key of ``choice``;
    ``choice`` must be a row of ``table`` (the setting is checked to have been tried).
    ``goal`` says whether the metric was maximised or minimised; ``notes`` records how the
    table was made (script, protocol, seeds, minutes). Both files are written atomically.
    """
    if goal not in ("max", "min"):
        raise ValueError(f"goal must be 'max' or 'min', got {goal!r}")
    if metric not in table.columns:
        raise ValueError(f"the table has no column {metric!r}; columns: {list(table.columns)}")
    missing = [k for k in choice if k not in table.columns]
    if missing:
        raise ValueError(f"choice keys {missing} are not columns of the table {list(table.columns)}")
    if not choice:
        raise ValueError("choice is empty: name the setting that was chosen")
    mask = pd.Series(True, index=table.index)
    for k, v in choice.items():
        mask &= table[k] == v
    if not mask.any():
        raise ValueError(f"the choice {choice} is not a row of the table: a chosen setting "
                         "must be one that the search tried")
    csv_path, json_path = _paths(name, results_dir)
    payload = {"name": name, "metric": metric, "goal": goal,
               "choice": {k: _plain(v) for k, v in choice.items()},
               "value": _plain(table.loc[mask, metric].iloc[0]),
               "notes": {k: _plain(v) for k, v in (notes or {}).items()}}
    _atomic_write(csv_path, table.to_csv(index=False))
    _atomic_write(json_path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return csv_path, json_path


def read_search(name: str, results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The JSON record written by :func:`write_search` (``choice``, ``metric``, ``value``, ``notes``)."""
    _, json_path = _paths(name, results_dir)
    if not json_path.is_file():
        raise FileNotFoundError(
            f"no validated setting {name!r} at {json_path}: run the search script in benchmarks/ "
            "that writes it (see benchmarks/README or the chapter), then commit benchmarks/results/")
    return json.loads(json_path.read_text(encoding="utf-8"))


def read_choice(name: str, results_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The chosen setting of search ``name``, e.g. ``{"tau": 20, "boost": 30}``."""
    return dict(read_search(name, results_dir)["choice"])


def read_table(name: str, results_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The full validation table of search ``name``."""
    csv_path, _ = _paths(name, results_dir)
    if not csv_path.is_file():
        raise FileNotFoundError(f"no validation table {name!r} at {csv_path}: run its search script")
    return pd.read_csv(csv_path)
