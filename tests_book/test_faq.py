"""The FAQ page answers the source articles' questions with the chapters' own numbers.

Static checks on ``book/faq.md`` (no build needed):

* every question (a ``##`` heading) says which source article asks it, and every article it
  names exists in ``shared/sources`` (next to the repository, as in the project layout);
* every source article is mentioned on the page (the table of where questions come from);
* every answer links at least one chapter, and every chapter linked is in ``_toc.yml``;
* every number is a cross-notebook glue reference with an explicit format spec, to a chapter in
  ``_toc.yml`` whose source glues or references that key, or which ``book/dashboard.md``
  already pastes (a missing key fails the strict build anyway; this says which one, earlier);
* no decimal number is typed in the prose.
"""
from __future__ import annotations

import re

import pytest

from _book import ROOT, toc_pages

PAGE = ROOT / "book" / "faq.md"
SOURCES = ROOT.parent / "shared" / "sources"

GLUE_REF = re.compile(r"\{glue:text\}`([^`]+)`")
DOC_REF = re.compile(r"\{doc\}`(?:[^`<]*<)?\.\./(notebooks/[0-9A-Za-z_]+)>?`")
SOURCE_FILE = re.compile(r"\b(\d{3}_[0-9a-f]{16}\.txt)\b")


def _sections() -> list[tuple[str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def test_every_question_names_an_existing_source():
    sections = _sections()
    assert len(sections) >= 10, "the FAQ should answer every question the sources ask"
    for title, body in sections:
        assert body.lstrip().startswith("*Asked in"), f"{title!r}: first line must say who asks"
        names = SOURCE_FILE.findall(body.lstrip().split("*\n")[0] + "*")
        assert names, f"{title!r} names no source article"
        if SOURCES.is_dir():
            for n in names:
                assert (SOURCES / n).is_file(), f"{title!r} cites {n}, which is not in {SOURCES}"


def test_every_source_article_is_on_the_page():
    if not SOURCES.is_dir():
        pytest.skip(f"{SOURCES} not present")
    text = PAGE.read_text(encoding="utf-8")
    for f in sorted(SOURCES.glob("*.txt")):
        assert f.name in text, f"{f.name} is not mentioned on the FAQ page"


def test_every_answer_links_a_chapter_in_the_toc():
    toc = set(toc_pages())
    for title, body in _sections():
        docs = DOC_REF.findall(body)
        assert docs, f"{title!r} links no chapter"
        for d in docs:
            assert d in toc, f"{title!r} links {d}, which is not in _toc.yml"


def test_every_number_is_glued_with_a_format_from_a_toc_chapter():
    toc = set(toc_pages())
    text = PAGE.read_text(encoding="utf-8")
    refs = GLUE_REF.findall(text)
    assert refs
    sources: dict[str, str] = {}
    dashboard = (ROOT / "book" / "dashboard.md").read_text(encoding="utf-8")
    for ref in refs:
        m = re.fullmatch(r"/(notebooks/[0-9A-Za-z_]+)\.ipynb::([A-Za-z0-9_]+):(.+)", ref)
        assert m, f"{ref!r}: expected /notebooks/NAME.ipynb::key:format (format spec required)"
        chapter, key, _fmt = m.groups()
        assert chapter in toc, f"{ref!r}: {chapter} is not in _toc.yml"
        if chapter not in sources:
            sources[chapter] = (ROOT / f"{chapter}.ipynb").read_text(encoding="utf-8")
        # keys glued in a loop (f-strings) are not in the source literally; the dashboard's
        # test checks those against the chapter's execution, so a key it uses is accepted
        assert key in sources[chapter] or f"/{chapter}.ipynb::{key}:" in dashboard, (
            f"{ref!r}: neither {chapter} nor book/dashboard.md mentions the key {key}")
    # no decimal typed in the prose outside glue references
    stripped = GLUE_REF.sub("", text)
    typed = re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", stripped)
    assert not typed, f"numbers typed by hand on the FAQ page: {typed}"
