"""Tiny projects for the option and profile tests, and an `execute` that starts no kernel."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from pathbook.cli import main

KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def write_notebook(path: Path, parameters: str) -> None:
    """A notebook whose cell tagged `parameters` holds `parameters`, then one code cell."""
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    cells = [nbformat.v4.new_markdown_cell("# A chapter"), cell, nbformat.v4.new_code_cell("1")]
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=KERNEL), path)


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """make_project({name: parameters cell}, {name: profiles entry}, environment=None) -> root."""

    def make(
        notebooks: dict[str, str],
        entries: dict[str, dict[str, Any]],
        environment: dict[str, str] | None = None,
    ) -> Path:
        root = tmp_path / "project"
        (root / "notebooks").mkdir(parents=True)
        for name, parameters in notebooks.items():
            write_notebook(root / "notebooks" / f"{name}.ipynb", parameters)
        spec: dict[str, Any] = {"notebooks": entries}
        if environment is not None:
            spec["environment"] = environment
        (root / "notebooks" / "profiles.yml").write_text(yaml.safe_dump(spec))
        return root

    return make


@pytest.fixture
def cli() -> Callable[..., int]:
    """cli(root, *args): `pathbook --root ROOT ARGS...` in this process; returns the exit code."""
    return lambda root, *args: main(["--root", str(root), *args])


@pytest.fixture
def executed(monkeypatch) -> list[dict[str, Any]]:
    """Replace `pathbook.execute.execute` by a stand-in that starts no kernel: it records each
    call (chapter, parameters, shown parameters) and publishes an empty notebook."""
    from pathbook import execute as module

    calls: list[dict[str, Any]] = []

    def fake(project, chapter, profile, parameters, content_hash, **options):
        calls.append(
            {
                "chapter": chapter.name,
                "parameters": dict(parameters),
                "shown": dict(options.get("shown_parameters") or {}),
            }
        )
        output = options.get("destination") or project.output_of(chapter)
        output.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(), output)
        return module.Outcome(chapter.name, True, 0.01, output=output, modules=[])

    monkeypatch.setattr(module, "execute", fake)
    return calls
