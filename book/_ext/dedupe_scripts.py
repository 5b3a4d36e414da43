"""Sphinx extension: each page loads each script once.

sphinx-thebe adds its configuration script (``const THEBE_JS_URL = ...``) every time Sphinx
re-reads the sources, and sphinxcontrib-bibtex makes the build read them twice; the page then
declares the same ``const`` twice and the browser console reports a SyntaxError on every page.
The browser test (tests_site/) fails on console errors, so duplicates are dropped here.
"""
from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree):
    files = context.get("script_files")
    if not files:
        return
    seen, kept = set(), []
    for js in files:
        attrs = dict(getattr(js, "attributes", {}) or {})
        body = attrs.pop("body", None)
        # an inline script is identified by its body (its filename is None or ''), a file by its name
        key = ("inline", body) if body else ("file", str(getattr(js, "filename", js)),
                                             repr(sorted(attrs.items())))
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
