"""Classroom copies of the exercise notebooks in `notebooks/exercises/`: student and instructor
versions, and the grading of what students hand in (`pathbook classroom release|grade`).

An exercise source is an ordinary notebook with nbgrader's markers and two headers of ours, so that
authors write text and never edit cell metadata:

- `### BEGIN SOLUTION` ... `### END SOLUTION` in a code cell: the student gets
  `raise NotImplementedError()` there;
- `### TEST name (N points)` as the first line of a code cell: an auto-graded test, read-only,
  with `### BEGIN HIDDEN TESTS` ... `### END HIDDEN TESTS` for the part students never see;
- `<!-- ANSWER name (N points) -->` as the first line of a markdown cell: a written answer
  (the cell holds the model answer), graded by hand.

`mark_cells` turns these into nbgrader's cell metadata (schema 3); every other cell becomes a
read-only cell. nbgrader's own preprocessors then write the copies, as `nbgrader
generate_assignment` would. Grading is in `pathbook.grading`.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .execute import atomic_write_text
from .project import PathbookError

SOURCES = Path("notebooks") / "exercises"
SOLUTION_MARKER = "### BEGIN SOLUTION"
HIDDEN_MARKER = "### BEGIN HIDDEN TESTS"
_NAME = r"(?P<name>[A-Za-z][\w-]*)"
_POINTS = r"\((?P<points>\d+(?:\.\d+)?) points?\)"
TEST_HEADER = re.compile(rf"^### TEST {_NAME} {_POINTS}\s*$")
ANSWER_HEADER = re.compile(rf"^<!-- ANSWER {_NAME} {_POINTS} -->\s*$")
_DEFINED = re.compile(r"^(?:def|class)\s+(\w+)|^(\w+)\s*=", re.MULTILINE)
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


@dataclass(frozen=True)
class Question:
    """One graded cell: its nbgrader `grade_id`, its points, and whether a person grades it."""

    name: str
    points: float
    manual: bool = False


@dataclass(frozen=True)
class Assignment:
    """One exercise notebook and the two copies made from it."""

    name: str
    source: Path
    instructor: NotebookNode
    student: NotebookNode
    questions: tuple[Question, ...]

    @property
    def auto_points(self) -> float:
        return sum(q.points for q in self.questions if not q.manual)


def _metadata(
    grade_id: str,
    *,
    grade: bool = False,
    solution: bool = False,
    locked: bool = False,
    points: float | None = None,
) -> dict:
    meta = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
        "task": False,
    }
    if points is not None:
        meta["points"] = points
    return meta


def _header(
    cell: NotebookNode, pattern: re.Pattern, start: str, example: str, where: str
) -> re.Match | None:
    """The header match of `cell`, None when its first line does not start like a header."""
    first = cell.source.lstrip("\n").split("\n", 1)[0]
    if not first.startswith(start):
        return None
    match = pattern.match(first)
    if match is None:
        raise PathbookError(
            f"{where}: the header `{first}` is not understood; write it as `{example}`."
        )
    return match


def _solution_id(source: str, index: int) -> str:
    """The first name the solution cell defines, else `solution-INDEX`."""
    found = _DEFINED.search(source)
    return next(name for name in found.groups() if name) if found else f"solution-{index}"


def _cell_metadata(cell: NotebookNode, index: int, where: str) -> dict:
    """nbgrader metadata for one cell, read from its markers."""
    test = cell.cell_type == "code" and _header(
        cell, TEST_HEADER, "### TEST", "### TEST name (2 points)", where
    )
    answer = cell.cell_type == "markdown" and _header(
        cell, ANSWER_HEADER, "<!-- ANSWER", "<!-- ANSWER name (2 points) -->", where
    )
    if HIDDEN_MARKER in cell.source and not test:
        raise PathbookError(
            f"{where}: hidden tests belong in a test cell; start the cell with "
            "`### TEST name (N points)`."
        )
    if test:
        if SOLUTION_MARKER in cell.source:
            raise PathbookError(
                f"{where}: a test cell cannot hold a solution; move the solution "
                "into a cell of its own."
            )
        return _metadata(test["name"], grade=True, locked=True, points=float(test["points"]))
    if answer:
        return _metadata(answer["name"], grade=True, solution=True, points=float(answer["points"]))
    if SOLUTION_MARKER in cell.source:
        if cell.cell_type != "code":
            raise PathbookError(
                f"{where}: a written answer starts with "
                "`<!-- ANSWER name (N points) -->` and needs no solution markers."
            )
        return _metadata(_solution_id(cell.source, index), solution=True)
    # read-only text or code; the id follows the content, so an edit never mixes cells up
    digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:10]
    return _metadata(f"given-{digest}", locked=True)


def mark_cells(nb: NotebookNode, label: str = "notebook") -> NotebookNode:
    """A copy of `nb` with nbgrader metadata derived from the markers (module docstring)."""
    nb = copy.deepcopy(nb)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells, start=1):
        where = f"{label}, cell {index}"
        cell.metadata.pop("nbgrader", None)
        meta = _cell_metadata(cell, index, where)
        grade_id = meta["grade_id"]
        seen[grade_id] = seen.get(grade_id, 0) + 1
        if seen[grade_id] > 1:
            if meta["grade"] or meta["solution"]:
                raise PathbookError(
                    f"{where}: the name {grade_id!r} is used twice; give each "
                    "test, answer and solution its own name."
                )
            meta["grade_id"] = f"{grade_id}-{seen[grade_id]}"
        cell.metadata["nbgrader"] = meta
    return nb


def _run(preprocessors: list, nb: NotebookNode, label: str) -> NotebookNode:
    """Apply nbgrader preprocessors in order; their errors become `PathbookError`s."""
    from nbgrader.nbgraderformat import ValidationError

    resources: dict = {}
    for preprocessor in preprocessors:
        try:
            nb, resources = preprocessor.preprocess(nb, resources)
        except (RuntimeError, ValidationError) as error:
            raise PathbookError(f"{label}: {error}") from None
    return nb


def _copies(marked: NotebookNode, label: str) -> tuple[NotebookNode, NotebookNode]:
    """The instructor and student versions: nbgrader's `generate_assignment` steps, minus the
    course database (the instructor version is the source we grade against)."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearHiddenTests,
        ClearOutput,
        ClearSolutions,
        ComputeChecksums,
        LockCells,
    )

    instructor = _run([ClearOutput(), CheckCellMetadata()], copy.deepcopy(marked), label)
    student = _run(
        [
            LockCells(),
            ClearSolutions(),
            ClearOutput(),
            CheckCellMetadata(),
            ComputeChecksums(),
            ClearHiddenTests(),
            ComputeChecksums(),
            CheckCellMetadata(),
        ],
        copy.deepcopy(marked),
        label,
    )
    return instructor, student


def load_assignment(path: Path) -> Assignment:
    """Read one exercise source and make its two versions; `PathbookError` names any problem."""
    path = Path(path)
    try:
        source = nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 - unreadable JSON, wrong format, no file
        raise PathbookError(f"cannot read the exercise {path}: {error}") from None
    marked = mark_cells(source, path.name)
    questions = tuple(
        Question(meta["grade_id"], float(meta["points"]), manual=meta["solution"])
        for meta in (cell.metadata["nbgrader"] for cell in marked.cells)
        if meta["grade"]
    )
    if not any(not q.manual for q in questions):
        raise PathbookError(
            f"{path} has no auto-graded test; add a code cell that starts with "
            "`### TEST name (N points)`."
        )
    instructor, student = _copies(marked, path.name)
    return Assignment(path.stem, path, instructor, student, questions)


def load_assignments(sources: Path) -> dict[str, Assignment]:
    """Every `*.ipynb` in `sources`, by name (the file name without `.ipynb`), sorted."""
    paths = sorted(Path(sources).glob("*.ipynb"))
    if not paths:
        raise PathbookError(
            f"no exercise notebooks (*.ipynb) in {sources}; pass --sources with "
            "the folder that holds them."
        )
    return {path.stem: load_assignment(path) for path in paths}


def release(sources: Path, out_dir: Path) -> list[Path]:
    """Write `out_dir/student/NAME.ipynb` (solutions replaced by `raise NotImplementedError()`,
    hidden tests removed) and `out_dir/instructor/NAME.ipynb` (everything, with nbgrader
    metadata) for every exercise in `sources`. Returns the paths written."""
    written = []
    for name, assignment in load_assignments(sources).items():
        for kind, nb in (("student", assignment.student), ("instructor", assignment.instructor)):
            path = Path(out_dir) / kind / f"{name}.ipynb"
            atomic_write_text(path, nbformat.writes(nb))
            written.append(path)
    return written
