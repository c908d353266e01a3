"""The book's sources agree with each other (fast: nothing is executed)."""

from pathlib import Path

import nbformat
import yaml

from pathbook.parameters import validate
from pathbook.project import load_project

REPO = Path(__file__).resolve().parents[2]


def toc_files(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        if "file" in node:
            found.append(node["file"])
        for value in node.values():
            found += toc_files(value)
    elif isinstance(node, list):
        for value in node:
            found += toc_files(value)
    return found


def test_every_notebook_is_a_chapter_and_every_generated_chapter_has_a_notebook():
    project = load_project(REPO)
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    generated = {f.split("/")[-1] for f in toc_files(toc) if f.startswith("book/generated/")}
    assert generated == set(project.chapters)


def test_notebooks_are_committed_without_outputs_and_profiles_are_valid():
    project = load_project(REPO)
    for name, chapter in project.chapters.items():
        nb = nbformat.read(chapter.source, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name} has outputs"
        assert nb.cells[0].source.startswith("# "), f"{name} must open with its title"
        for profile in ("quick", "full"):
            validate(name, chapter.source, chapter.parameters(profile))


def test_hand_written_pages_exist():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    for entry in toc_files(toc) + [toc["root"]]:
        if not entry.startswith("book/generated/"):
            assert (REPO / f"{entry}.md").is_file(), entry
