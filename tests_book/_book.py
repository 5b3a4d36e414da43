"""What the book tests share: the pages of the table of contents and a notebook's glued values."""
from __future__ import annotations

from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent


def toc_pages() -> list[str]:
    """Every document in ``_toc.yml``, the root first (paths without suffix, as written there)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                pages.append(e["file"])
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return pages


def glue_outputs(nb: nbformat.NotebookNode) -> dict[str, dict]:
    """Every key ``myst_nb.glue`` stored in an executed notebook, with its mime bundle (the
    ``mime_prefix`` myst-nb adds to the mime types removed)."""
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook")
            if o.get("output_type") == "display_data" and meta:
                prefix = meta.get("mime_prefix", "")
                out[meta["name"]] = {k.removeprefix(prefix): v for k, v in o["data"].items()}
    return out
