"""Lazy re-exports for a package ``__init__`` (PEP 562): ``import pathlib_core`` costs nothing,
and a submodule is imported, with torch, when a name from it is first used.

Why it matters beyond start-up time: pathbook records which ``pathlib_core`` modules a chapter's
kernel loaded and reruns the chapter only when one of those changes; an eager ``__init__`` would
make every chapter depend on every module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, submodules: tuple[str, ...], names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package``: each of ``submodules`` and
    each ``name -> "module"`` (or ``"module:attribute"`` for a renamed export) of ``names``."""
    exported = sorted({*submodules, *names})

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name in names:
            module, _, attribute = names[name].partition(":")
            return getattr(importlib.import_module(f"{package}.{module}"), attribute or name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return exported

    return __getattr__, __dir__, exported
