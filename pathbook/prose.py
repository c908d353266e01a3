"""A chapter's text without executing it: merge the source's markdown into the last output.

The fingerprint that decides whether a chapter runs covers its code cells only; the text around
them (markdown cells, cell tags such as ``hide-input``) is refreshed by rebuilding the published
notebook from the source's cells and the last run's code cells with their outputs, as
jupyter-cache does. Torch-free: ``pathbook status`` and a text-only build need no kernel.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import nbformat

from .project import PathbookError

HEADER_TAG = "pathbook-header"  # pathbook's note at the top of a published chapter
INJECTED_TAG = "injected-parameters"  # papermill's cell after the parameters cell


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def insert_header(nb: nbformat.NotebookNode, header: nbformat.NotebookNode) -> None:
    """Put pathbook's header just after the first top-level heading (first cell if none)."""
    first_heading = next(
        (
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "markdown" and c.source.lstrip().startswith("# ")
        ),
        -1,
    )
    nb.cells.insert(first_heading + 1, header)


INJECTED_FIRST_LINE = (
    "# The values this page ran with, where they differ from the defaults (folded above)"
)
FOLD_TAG = "hide-input"  # myst-nb shows such a cell's code folded, behind a button


def _comments(code: str) -> dict[str, str]:
    """Each top-level assignment's trailing comment (on the line where its value ends)."""
    try:
        tree = ast.parse(code)
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (SyntaxError, tokenize.TokenError):
        return {}
    on_line = {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and node.end_lineno in on_line:
                found[target.id] = on_line[node.end_lineno]
    return found


def present_parameters(nb: nbformat.NotebookNode) -> None:
    """Make papermill's injected cell say what it is: a first line saying these are the values
    the page ran with, and each parameter's comment from the defaults cell; and fold the
    defaults cell. The page otherwise shows the notebook's defaults first (the `quick` values,
    twenty lines of code a reader of another profile must read past) and a bare list of
    overrides after them. Only the published copy changes (the fingerprints read the source), so
    this is safe to repeat."""
    defaults = next((c for c in nb.cells if "parameters" in _tags(c)), None)
    injected = next((c for c in nb.cells if INJECTED_TAG in _tags(c)), None)
    if defaults is None or injected is None:
        return
    if FOLD_TAG not in _tags(defaults):
        defaults.setdefault("metadata", {})["tags"] = [*_tags(defaults), FOLD_TAG]
    comments = _comments(defaults.source)
    try:
        tree = ast.parse(injected.source)
    except SyntaxError:
        return
    lines = [INJECTED_FIRST_LINE]
    for node in tree.body:
        statement = ast.get_source_segment(injected.source, node) or ""
        name = (
            node.targets[0].id
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
            else None
        )
        lines.append(f"{statement}  {comments[name]}" if name in comments else statement)
    injected.source = "\n".join(lines) + "\n"


def merge_text(source: Path, published: Path) -> nbformat.NotebookNode:
    """The published notebook with the source's markdown cells and tags, and the published code
    cells' outputs: what executing the source again would publish, when its code is unchanged.

    Raises ``PathbookError`` when the code cells differ (the chapter must be executed)."""
    new = nbformat.read(source, as_version=4)
    old = nbformat.read(published, as_version=4)
    header = [c for c in old.cells if HEADER_TAG in _tags(c)]
    injected = [c for c in old.cells if INJECTED_TAG in _tags(c)]
    ran = [
        c
        for c in old.cells
        if c.cell_type == "code" and INJECTED_TAG not in _tags(c) and HEADER_TAG not in _tags(c)
    ]
    code = [c for c in new.cells if c.cell_type == "code"]
    if [c.source for c in ran] != [c.source for c in code]:
        raise PathbookError(
            f"{published.name}: its code cells differ from {source.name}; execute the chapter."
        )
    outputs = iter(ran)
    cells = []
    for cell in new.cells:
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        done = next(outputs)
        done.metadata["tags"] = _tags(cell)
        if not done.metadata["tags"]:
            del done.metadata["tags"]
        cells.append(done)
        if "parameters" in _tags(cell):
            cells.extend(injected)
    old.cells = cells
    for cell in header:
        insert_header(old, cell)
    present_parameters(old)
    return old
