"""The results dashboard shows the chapters' own numbers, and types none of its own.

Run after the site build (`make site`; `make checks` runs every test in this folder). Every
result on ``book/dashboard.md`` is a cross-notebook glue reference,
``{glue:text}`/notebooks/NAME.ipynb::key:format```, which myst-nb resolves while it builds the
site, from the chapter it has just executed or found executed in the Jupyter cache
(``_build/.jupyter_cache``; `make nbval` stores its executions there). This test reads each
chapter's execution from that cache, matched to the chapter's current source as the build
matches it (the copies the build writes to ``_build/jupyter_execute`` have the glue outputs
stripped), and checks that

* every chapter the page refers to is in ``_toc.yml`` (a chapter outside the table of contents
  is neither executed nor built, and its reference would not resolve);
* every referenced key is glued by its chapter;
* the built page ``_build/html/book/dashboard.html`` shows each value, in the page's order,
  formatted exactly as myst-nb formats it (``myst_nb.core.variables.format_plain_text``);
* the only decimals typed in the page's source are the published anchors in ``PUBLISHED``;
* each verdict the page states in words ("level", "A over B") agrees with the sign of the
  chapter's glued 95 % interval, so a chapter whose result flips makes this test fail until the
  page says what the chapter now says.
"""
from __future__ import annotations

import functools
import html.parser
import re

import nbformat
import pytest

from _book import ROOT, glue_outputs, toc_pages

PAGE = ROOT / "book" / "dashboard.md"
HTML = ROOT / "_build" / "html" / "book" / "dashboard.html"
CACHE_DIR = ROOT / "_build" / ".jupyter_cache"

# {glue:text}`path::key:format` -- the form myst-nb's PasteTextRole accepts for another document
GLUE_REF = re.compile(r"\{glue:text\}`([^`]+)`")

# The published numbers the page may type (each labelled as published on the page, with its
# protocol): NCF (ML-1M NeuMF HR@10, NDCG@10), SASRec (ML-1M HR@10, NDCG@10), the Surprise
# README (ML-100K 5-fold RMSE of SVD, SVD++, k-NN Baseline, BaselineOnly), GC-MC and IGMC (u1).
PUBLISHED = {"0.730", "0.447", "0.8245", "0.5905", "0.934", "0.919", "0.931", "0.944",
             "0.910", "0.905"}

# Verdicts the page states in words, as its chapter does, and the interval each rests on:
# (chapter, key of the lower end, key of the upper end, where the interval must lie).
VERDICTS = [
    ("01_big_picture", "bigpic_ease_minus_pop_lo", "bigpic_ease_minus_pop_hi", "above zero"),
    ("01_big_picture", "bigpic_ease_minus_knn_lo", "bigpic_ease_minus_knn_hi", "holds zero"),
    ("04_losses", "losses_bpr_minus_ease_lo", "losses_bpr_minus_ease_hi", "holds zero"),
    ("04_losses", "losses_bce_minus_ease_lo", "losses_bce_minus_ease_hi", "holds zero"),
    ("04_losses", "losses_bpr_minus_ease_full_lo", "losses_bpr_minus_ease_full_hi", "below zero"),
    ("05_optimizers", "optimizers_duel_lo", "optimizers_duel_hi", "holds zero"),
    ("06_mlp", "mlp_rank_pop_minus_mlp20_lo", "mlp_rank_pop_minus_mlp20_hi", "above zero"),
    ("09_evaluation", "eval_pair_ease_ials_low", "eval_pair_ease_ials_high", "holds zero"),
]


def page_source() -> str:
    """The page's MyST source without its comment lines (``%``), which the build ignores."""
    return re.sub(r"(?m)^%.*(\n|$)", "", PAGE.read_text(encoding="utf-8"))


def references() -> list[tuple[str, str, str]]:
    """(notebook path relative to the book root, key, format) of each glue reference, in order.

    Parsed as myst-nb's ``PasteTextRole`` parses it: the format is what follows the last ``:``,
    the document what precedes ``::``; a path without a leading ``/`` is relative to the page.
    """
    refs = []
    for text in GLUE_REF.findall(page_source()):
        key_part, fmt = text.rsplit(":", 1)
        assert "::" in key_part, f"{text!r}: the dashboard glues from chapters, `path::key:format`"
        doc, key = key_part.split("::", 1)
        path = doc[1:] if doc.startswith("/") else (PAGE.parent / doc).resolve().relative_to(ROOT).as_posix()
        refs.append((path, key, fmt))
    return refs


@functools.lru_cache(maxsize=None)
def glued(path: str) -> dict[str, str]:
    """Every key the chapter's execution glued, with its text/plain representation."""
    from jupyter_cache import get_cache

    if not CACHE_DIR.is_dir():
        pytest.fail(f"{CACHE_DIR} does not exist: run the site build (`make site`) first")
    cache = get_cache(str(CACHE_DIR))
    try:
        record = cache.match_cache_notebook(nbformat.read(ROOT / path, as_version=4))
    except KeyError:
        pytest.fail(f"no execution of the current {path} in {CACHE_DIR}: run the site build first")
    outputs = glue_outputs(cache.get_cache_bundle(record.pk).nb)
    return {key: data["text/plain"] for key, data in outputs.items() if "text/plain" in data}


class _PastedText(html.parser.HTMLParser):
    """The text of every ``<span class="pasted-text">`` (a resolved glue:text role), in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        if self._depth:
            self._depth += 1
        elif tag == "span" and "pasted-text" in (dict(attrs).get("class") or "").split():
            self._depth = 1
            self.values.append("")

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1

    def handle_data(self, data):
        if self._depth:
            self.values[-1] += data


@pytest.fixture(scope="module")
def refs():
    found = references()
    assert found, f"{PAGE} has no glue references"
    return found


@pytest.fixture(scope="module")
def values(refs):
    return {path: glued(path) for path in {p for p, _, _ in refs}}


def test_every_referenced_chapter_is_in_the_book(refs):
    pages = set(toc_pages())
    assert "book/dashboard" in pages, "book/dashboard is not in _toc.yml"
    missing = sorted({p for p, _, _ in refs if p.rsplit(".", 1)[0] not in pages})
    assert not missing, f"the dashboard refers to chapters not in _toc.yml: {missing}"


def test_every_referenced_key_is_glued(refs, values):
    missing = [f"{p}::{k}" for p, k, _ in refs if k not in values[p]]
    assert not missing, f"keys the chapters no longer glue: {missing}"


def test_the_built_page_shows_the_chapters_values(refs, values):
    from myst_nb.core.variables import format_plain_text

    if not HTML.is_file():
        pytest.fail(f"{HTML} does not exist: run the site build (`make site`) first")
    expected = [format_plain_text(values[p][k], fmt) for p, k, fmt in refs]
    parser = _PastedText()
    parser.feed(HTML.read_text(encoding="utf-8"))
    shown = parser.values
    assert len(shown) == len(expected), (
        f"the page shows {len(shown)} pasted values, its source has {len(expected)} references "
        "(an unresolved reference is dropped from the page)")
    differ = [(f"{p}::{k}:{fmt}", want, got)
              for (p, k, fmt), want, got in zip(refs, expected, shown) if want != got]
    assert not differ, f"the page differs from the executed chapters: {differ}"


def test_the_only_typed_decimals_are_published_anchors():
    text = GLUE_REF.sub("", page_source())
    text = re.sub(r"\{[a-z:]+\}`[^`]*`", "", text)   # {cite}, {doc}, ... roles
    text = re.sub(r"`[^`]*`", "", text)              # inline code
    typed = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text))
    assert typed <= PUBLISHED, f"decimals typed on the page that are not published anchors: {sorted(typed - PUBLISHED)}"


@pytest.mark.parametrize("chapter, lo_key, hi_key, where", VERDICTS,
                         ids=[v[1].rsplit("_", 1)[0] for v in VERDICTS])
def test_each_verdict_in_words_matches_its_interval(chapter, lo_key, hi_key, where):
    values = glued(f"notebooks/{chapter}.ipynb")
    lo, hi = float(values[lo_key]), float(values[hi_key])
    lies = "above zero" if lo > 0 else "below zero" if hi < 0 else "holds zero"
    assert lies == where, (
        f"{chapter}: the dashboard says the interval {lo_key}..{hi_key} {where}, "
        f"the chapter now has {lo:+.4f} to {hi:+.4f}: update book/dashboard.md")


def test_a_p_value_verdict_matches_its_chapter():
    """Chapter 9 states EASE ahead of item-KNN by a paired test; the page repeats it."""
    values = glued("notebooks/09_evaluation.ipynb")
    assert float(values["eval_pair_knn_ease_p"]) < 0.05, (
        "chapter 9's EASE-vs-item-KNN paired test is no longer below 0.05: update book/dashboard.md")
