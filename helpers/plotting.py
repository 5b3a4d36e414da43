"""One figure style for the whole book, and the plots more than one chapter draws."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

#: Colour-blind-safe palette (Okabe & Ito), in the order models appear.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

BOOK_STYLE = {
    "figure.figsize": (7.0, 4.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.labelsize": 11,
    "legend.frameon": False,
    "font.size": 10,
    "lines.linewidth": 2.0,
}


def use_book_style() -> None:
    """Apply the book's matplotlib style (call once per chapter, after imports)."""
    mpl.rcParams.update(BOOK_STYLE)
    try:  # crisp figures in notebooks and in the built site
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("retina")
    except Exception:  # pragma: no cover - outside IPython
        pass


def learning_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], metric: str,
                    title: str, ylabel: str, ax: plt.Axes | None = None,
                    xlabel: str = "epoch", start: int = 1) -> plt.Axes:
    """One line per model (``histories[name][metric]`` per epoch), epochs counted from
    ``start``: 1 when the first value is measured after the first epoch, 0 when it is
    measured before any training (e.g. a pre-trained model before fine-tuning). Lines added
    to an existing ``ax`` continue its colour cycle."""
    if ax is None:
        _, ax = plt.subplots()
    for name, hist in histories.items():
        if metric not in hist:
            raise KeyError(f"{name!r} has no {metric!r}; it has {sorted(hist)}")
        y = np.asarray(hist[metric], dtype=float)
        ax.plot(np.arange(start, start + len(y)), y, label=name, marker="o" if len(y) <= 30 else None, ms=3)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    return ax
