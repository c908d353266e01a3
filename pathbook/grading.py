"""Grading handed-in exercise notebooks (`pathbook classroom grade`).

Each submission goes through nbgrader's `autograde` steps: outputs cleared, duplicate ids
dropped, every read-only cell (tests with their hidden part, given code and text) restored from
the instructor version by its `grade_id`, nbgrader's `Execute` run with a time limit per cell,
and each question scored by nbgrader's rule (`nbgrader.utils.determine_grade`: a test that
raises scores 0), except that what a test writes to stderr (a library's warning) is reported in
the `error` column and costs nothing. What nbgrader would read from and write to its course
database, the reference cells and the scores, comes from the exercise source and goes to a CSV.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .classroom import Assignment, Question, load_assignments
from .execute import THREAD_VARIABLES, atomic_write_text
from .project import PathbookError

COLUMNS = (
    "student",
    "assignment",
    "question",
    "grading",
    "points",
    "max_points",
    "status",
    "error",
    "problem",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Run:
    """An executed submission (None when it could not be run) and what went wrong overall."""

    notebook: NotebookNode | None
    problem: str = ""


def _one_line(text: str) -> str:
    lines = [line.strip() for line in _ANSI.sub("", str(text)).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _described(error: BaseException) -> str:
    message = _one_line(str(error))
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _sanitize(nb: NotebookNode, assignment: Assignment) -> NotebookNode:
    """nbgrader's sanitizing steps, with the instructor version in place of the database:
    read-only cells get their source back (hidden tests included), every graded or solution
    cell its reference metadata (points, checksum), and the kernel is the source's."""
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
    )

    nb, _ = ClearOutput().preprocess(nb, {})
    nb, _ = DeduplicateIds().preprocess(nb, {})
    nb.metadata["kernelspec"] = dict(assignment.instructor.metadata["kernelspec"])
    instructor = {_grade_id(c): c for c in assignment.instructor.cells}
    reference = {_grade_id(c): c for c in assignment.student.cells}
    for index, cell in enumerate(nb.cells):
        grade_id = _grade_id(cell)
        if grade_id is None:
            continue
        if grade_id not in reference:  # forged, or from another release: an ordinary cell
            del cell.metadata["nbgrader"]
        elif reference[grade_id].metadata["nbgrader"]["locked"]:
            restored = copy.deepcopy(instructor[grade_id])
            restored.pop("id", None)
            if "id" in cell:
                restored["id"] = cell["id"]
            nb.cells[index] = cell = restored
        else:
            OverwriteCells().update_cell_type(cell, reference[grade_id].cell_type)
        cell.metadata["nbgrader"] = copy.deepcopy(reference[grade_id].metadata["nbgrader"])
    nb, _ = CheckCellMetadata().preprocess(nb, {})
    return nb


class _OutOfTime(Exception):
    """The submission used up its total time."""


def _kernel_config():
    """Kernel managers that give each kernel CurveZMQ keys (`transport_encryption="auto"`), where
    pyzmq and jupyter_client can: the kernel and the grader then talk encrypted, and ipykernel
    no longer warns on every start that it runs "over TCP without encryption" (a line per graded
    notebook in the progress output). Elsewhere the settings are jupyter_client's defaults."""
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names():
        return Config({"KernelManager": {"transport_encryption": "auto"}})
    return Config()


def _executor(timeout: int, total_timeout: int):
    """nbgrader's `Execute`, which interrupts a cell after `timeout` seconds and goes on with the
    next, plus a budget for the whole notebook (counted from its first cell), a note of the
    cell being run and of the time limit each cell had."""
    from nbgrader.preprocessors import Execute

    class Executor(Execute):
        current: int | None = None
        deadline: float | None = None

        def preprocess_cell(self, cell, resources, index):
            now = time.monotonic()
            self.deadline = self.deadline or now + total_timeout
            if now >= self.deadline:
                raise _OutOfTime()
            self.current = index
            return super().preprocess_cell(cell, resources, index)

    def limit(cell) -> int:
        seconds = max(1, min(timeout, math.ceil(executor.deadline - time.monotonic())))
        executor.limits[executor.current] = seconds
        return seconds

    executor = Executor(
        timeout=timeout, interrupt_on_timeout=True, timeout_func=limit, config=_kernel_config()
    )
    executor.limits = {}
    return executor


def _where(nb: NotebookNode, index: int | None) -> str:
    if index is None:
        return "before the first cell"
    return f"in cell {index + 1} (`{_one_line(nb.cells[index].source)}`)"


@contextmanager
def _kernel_threads(threads: int | None):
    """Kernels started within run with `threads` threads (they inherit the environment);
    None leaves the environment as it is."""
    saved = {variable: os.environ.get(variable) for variable in THREAD_VARIABLES}
    if threads:
        os.environ.update({variable: str(threads) for variable in THREAD_VARIABLES})
    try:
        yield
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def run_submission(
    path: Path | None,
    assignment: Assignment,
    timeout: int,
    total_timeout: int,
    threads: int | None = 1,
) -> Run:
    """Sanitize and execute one submission, in a kernel with `threads` torch threads (one by
    default: a student's small tensors gain nothing from more, and on a busy grading machine
    threads that wait for each other can make a cell many times slower than its limit allows);
    never raises for a problem of the submission."""
    if path is None:
        return Run(None, "not submitted")
    try:
        nb = _sanitize(nbformat.read(path, as_version=4), assignment)
    except Exception as error:  # noqa: BLE001 - not JSON, not a notebook, bad metadata
        return Run(None, f"cannot read the notebook: {_described(error)}")
    executor = _executor(timeout, total_timeout)
    problems = []
    with tempfile.TemporaryDirectory(prefix="pathbook-grade-") as folder:
        try:
            with _kernel_threads(threads):
                executor.preprocess(nb, {"metadata": {"path": folder}})
        except _OutOfTime:
            problems.append(
                f"stopped at the total limit of {total_timeout} s, after cell "
                f"{executor.current + 1}"
            )
        except Exception as error:  # noqa: BLE001 - the kernel died or did not start
            problems.append(f"{_described(error)} {_where(nb, executor.current)}")
    timeouts = [
        f"timed out after {executor.limits.get(index, timeout)} s {_where(nb, index)}"
        for index, cell in enumerate(nb.cells)
        if any(out.get("ename") == "CellTimeoutError" for out in cell.get("outputs", []))
    ]
    return Run(nb, "; ".join(timeouts + problems))


def _error(cell: NotebookNode) -> str:
    """The first error a cell raised (`Name: first line`), or what it wrote to stderr."""
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            message = _one_line(output.get("evalue", ""))
            if output.ename == "CellTimeoutError":
                message = "no reply from the kernel before the time limit"
            return f"{output.ename}: {message}" if message else output.ename
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == "stderr":
            return f"wrote to stderr: {_one_line(output.text)}"
    return ""


def _without_stderr(cell: NotebookNode) -> NotebookNode:
    """The cell without what it wrote to standard error. nbgrader scores such a cell 0; here a
    warning (a deprecation in torch, say) costs no points, and `_error` still reports it."""
    kept = copy.copy(cell)
    kept.outputs = [
        out
        for out in cell.get("outputs", [])
        if not (out.output_type == "stream" and out.name == "stderr")
    ]
    return kept


def score_question(question: Question, run: Run) -> tuple[float | str, str, str]:
    """(points, status, error) of one question in one run."""
    from nbgrader.utils import determine_grade

    if run.notebook is None:
        return 0.0, "not submitted" if run.problem == "not submitted" else "not graded", ""
    cell = next((c for c in run.notebook.cells if _grade_id(c) == question.name), None)
    if cell is None:
        return 0.0, "missing", "the cell was deleted from the submission"
    if not question.manual and cell.get("execution_count") is None and not cell.outputs:
        return 0.0, "not run", ""
    try:
        points, _ = determine_grade(_without_stderr(cell))
    except ValueError as error:  # a test printed a number above its points
        return 0.0, "failed", _described(error)
    if question.manual:
        return ("", "needs manual grading", "") if points is None else (0.0, "no answer", "")
    return float(points), "passed" if points == question.points else "failed", _error(cell)


def score_rows(student: str, assignment: Assignment, run: Run) -> list[dict]:
    """One CSV row per question of `assignment`."""
    rows = []
    for question in assignment.questions:
        points, status, error = score_question(question, run)
        rows.append(
            {
                "student": student,
                "assignment": assignment.name,
                "question": question.name,
                "grading": "manual" if question.manual else "auto",
                "points": points,
                "max_points": question.points,
                "status": status,
                "error": error,
                "problem": "" if run.problem == "not submitted" else run.problem,
            }
        )
    return rows


def find_submissions(folder: Path, names: list[str]) -> list[tuple[str, str, Path | None]]:
    """(student, assignment, path or None) for every student folder and assignment; files that
    are no assignment are reported on stderr and skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PathbookError(f"{folder} is not a folder of submissions.")
    students = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise PathbookError(
            f"no student folders in {folder}; the layout is "
            f"{folder}/STUDENT/ASSIGNMENT.ipynb, ASSIGNMENT one of "
            f"{', '.join(names)}."
        )
    jobs = []
    for student in students:
        for extra in sorted(p for p in student.glob("*.ipynb") if p.stem not in names):
            print(
                f"pathbook: skipped {student.name}/{extra.name}: not an assignment "
                f"(expected one of {', '.join(names)})",
                file=sys.stderr,
            )
        for name in names:
            path = student / f"{name}.ipynb"
            jobs.append((student.name, name, path if path.exists() else None))
    return jobs


def write_csv(rows: list[dict], path: Path) -> None:
    """The score table, written atomically (readers never see half a file)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(path), buffer.getvalue())


def summarize(rows: list[dict]) -> list[str]:
    """One line per submission: auto-graded points out of their maximum, the points marked by
    hand (so that "6 of 6" is not read as the whole assignment), the written answers waiting
    for them, and the problem, if any."""
    lines, groups = [], {}
    for row in rows:
        groups.setdefault((row["student"], row["assignment"]), []).append(row)
    for (student, assignment), group in groups.items():
        auto = [r for r in group if r["grading"] == "auto"]
        by_hand = sum(float(r["max_points"]) for r in group if r["grading"] == "manual")
        waiting = sum(r["status"] == "needs manual grading" for r in group)
        text = (
            f"{student} / {assignment}: {sum(float(r['points']) for r in auto):g} of "
            f"{sum(float(r['max_points']) for r in auto):g} "
            f"{'auto-graded points' if by_hand else 'points'}"
        )
        if by_hand:
            text += f"; {by_hand:g} more {'is' if by_hand == 1 else 'are'} marked by hand"
        if waiting:
            text += f" ({waiting} written answer{'s' if waiting > 1 else ''} to read)"
        problem = group[0]["problem"] or (
            "not submitted" if group[0]["status"] == "not submitted" else ""
        )
        lines.append(text + (f" ({problem})" if problem else ""))
    return lines


def grade(
    submissions: Path,
    out_csv: Path,
    sources: Path,
    timeout: int = 120,
    total_timeout: int = 900,
    progress: bool = True,
    threads: int | None = 1,
) -> list[dict]:
    """Grade `submissions/STUDENT/ASSIGNMENT.ipynb` against the exercises in `sources` and write
    the score table to `out_csv` (columns `COLUMNS`, one row per student, assignment and
    question). `timeout` bounds each cell, `total_timeout` each notebook, in seconds; each
    kernel runs with `threads` torch threads (None: the environment's). A
    submission that hangs, crashes or cannot be read is reported in its rows and grading goes on.
    """
    from tqdm import tqdm

    if timeout <= 0 or total_timeout <= 0:
        raise PathbookError(
            f"timeouts must be positive seconds, got {timeout} and {total_timeout}."
        )
    assignments = load_assignments(sources)
    jobs = find_submissions(submissions, list(assignments))
    rows: list[dict] = []
    with tqdm(jobs, desc="grading", unit="notebook", disable=not progress) as bar:
        for student, name, path in bar:
            bar.set_postfix_str(f"{student}/{name}")
            run = run_submission(path, assignments[name], timeout, total_timeout, threads)
            rows += score_rows(student, assignments[name], run)
    write_csv(rows, out_csv)
    return rows
