"""Sphinx extension that makes the book read offline.

- MathJax comes from the installed `django-static-mathjax` wheel: the page loads
  `_static/mathjax/es5/tex-chtml.js`, copied from the wheel at build time, instead of a CDN. The
  copy lives outside any folder named `_static` in the sources: Jupyter Book 1 would otherwise add
  every .js file in it to every page.
- Thebe (live code through Binder, which this book does not offer) is dropped from every page: its
  script names a CDN URL, and Jupyter Book 1 adds it twice, which is a JavaScript error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MATHJAX_ENTRY = "mathjax/es5/tex-chtml.js"


def mathjax_folder() -> Path:
    """The wheel's folder that holds `mathjax/es5/`."""
    import mathjax  # the django-static-mathjax distribution

    folder = Path(mathjax.__file__).parent / "static"
    if not (folder / MATHJAX_ENTRY).is_file():
        raise FileNotFoundError(
            f"{folder / MATHJAX_ENTRY} is missing; reinstall with "
            "`pip install 'django-static-mathjax>=3.2.2,<3.3'`."
        )
    return folder


def _use_local_mathjax(app: Any, config: Any) -> None:
    config.html_static_path = [*config.html_static_path, str(mathjax_folder())]
    config.mathjax_path = MATHJAX_ENTRY


def _is_thebe(script: Any) -> bool:
    filename = getattr(script, "filename", None) or str(script)
    body = (getattr(script, "attributes", None) or {}).get("body", "")
    return "thebe" in filename or "THEBE_JS_URL" in body


def _drop_thebe(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not _is_thebe(s)]


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _use_local_mathjax)
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
