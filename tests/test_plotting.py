import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from helpers.plotting import BOOK_STYLE, PALETTE, learning_curves, use_book_style  # noqa: E402


def test_use_book_style_sets_the_palette():
    use_book_style()
    assert plt.rcParams["axes.grid"] is True
    assert plt.rcParams["axes.prop_cycle"].by_key()["color"] == PALETTE
    assert plt.rcParams["figure.figsize"] == list(BOOK_STYLE["figure.figsize"])


def test_learning_curves_x_from_start_and_colour_cycle_continues():
    use_book_style()
    fig, ax = plt.subplots()
    learning_curves({"a": {"loss": [3, 2, 1]}, "b": {"loss": [4, 3]}}, "loss", title="t", ylabel="y", ax=ax)
    learning_curves({"c": {"loss": [5, 4, 3]}}, "loss", title="t", ylabel="y", ax=ax, start=0)
    a, b, c = ax.get_lines()
    np.testing.assert_array_equal(a.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(b.get_xdata(), [1, 2])
    np.testing.assert_array_equal(c.get_xdata(), [0, 1, 2])   # measured before training: epoch 0
    assert [line.get_color() for line in (a, b, c)] == PALETTE[:3]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]
    with pytest.raises(KeyError, match="no 'HR@10'"):
        learning_curves({"a": {"loss": [1]}}, "HR@10", title="t", ylabel="y", ax=ax)
    plt.close(fig)
