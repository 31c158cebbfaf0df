"""A small Sphinx extension for the gptlib book (loaded through _config.yml's `local_extensions`).

The book has no live-code (Thebe) button: its notebooks run in JupyterLab or from the command line.
Yet jupyter-book always loads sphinx-thebe, whose configuration script is added to every page twice
(a page then fails with "Identifier 'THEBE_JS_URL' has already been declared") and names a script on
unpkg.com. This extension removes sphinx-thebe's scripts from each page, and any script added twice.
"""

from __future__ import annotations

from typing import Any


def _drop_thebe_and_duplicates(
    app: Any, pagename: str, templatename: str, context: dict, doctree: Any
) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    kept, seen = [], set()
    for js in scripts:
        attrs = getattr(js, "attributes", {}) or {}
        body, name = attrs.get("body", ""), str(getattr(js, "filename", js) or "")
        if "THEBE_JS_URL" in body or name.endswith("sphinx-thebe.js") or "thebe@" in name:
            continue
        key = (name, body)
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    scripts[:] = kept


def setup(app: Any) -> dict:
    app.connect("html-page-context", _drop_thebe_and_duplicates, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
