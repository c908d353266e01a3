"""Sphinx extension: serve MathJax from the installed `django-static-mathjax` wheel.

The book must read offline, so the page loads `_static/mathjax/es5/tex-chtml.js`, copied from the
wheel at build time, instead of MathJax's CDN. The copy lives outside any folder named `_static`
in the sources: Jupyter Book 1 would otherwise add every .js file in it to every page.
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


def setup(app: Any) -> dict[str, Any]:
    app.connect("config-inited", _use_local_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
