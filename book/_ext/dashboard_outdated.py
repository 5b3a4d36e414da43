"""Sphinx extension: the results dashboard is rebuilt whenever any page is.

``book/dashboard.md`` pastes numbers glued in the chapters (``{glue:text}`/notebooks/...::key```).
Sphinx re-reads only the documents whose own source changed, so an incremental build after a
chapter changed would keep the dashboard's old numbers (and ``tests_book/test_dashboard.py``
would fail). Marking it outdated whenever anything else is added, changed or removed keeps it
current; a clean build is unaffected.
"""
from __future__ import annotations

DASHBOARD = "book/dashboard"


def _dashboard_too(app, env, added, changed, removed):
    return [DASHBOARD] if (added or changed or removed) and DASHBOARD in env.found_docs else []


def setup(app):
    app.connect("env-get-outdated", _dashboard_too)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
