"""pathbook classroom: release the real exercises, then grade real submissions made from them.

One release and one grading run are shared by the module: the graded folder holds the instructor
versions, the student versions, one submission with a wrong answer (and a test edited to pass),
one that calls the library instead of computing and builds on a wrong function of its own, one
that hangs, one whose kernel dies and one that is not a notebook at all.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from pathbook.classroom import SOURCES, Question, load_assignments, mark_cells, release
from pathbook.cli import main
from pathbook.grading import COLUMNS, find_submissions, grade
from pathbook.project import PathbookError, load_project

REPO = Path(__file__).resolve().parents[2]
EXERCISES = REPO / SOURCES
CELL_TIMEOUT = 30  # seconds; the slowest cell of an exercise takes about 6 s on a busy core

WRONG_SELECTION = """def select_global(contributions, sparsity):
    # wrong on purpose: each layer is ranked on its own instead of all layers together
    masks = {}
    for name, c in contributions.items():
        rows = c.flatten(1)
        removed = math.ceil(sparsity * rows.shape[1] - 1e-6)
        if removed == 0:
            masks[name] = torch.ones_like(c, dtype=torch.bool)
            continue
        threshold = rows.kthvalue(removed, dim=1).values.view(-1, *[1] * (c.dim() - 1))
        masks[name] = (c > threshold) & (c != 0)
    return masks
"""


def solution_blocks(source: str) -> list[str]:
    return re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", source, re.DOTALL)


def cell_with_id(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("classroom")
    release(EXERCISES, folder)
    return folder


def _submit(folder: Path, student: str, name: str, nb) -> None:
    (folder / student).mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / student / f"{name}.ipynb")


def _edited(released: Path, name: str, grade_id: str, change):
    """The instructor version of `name` with one cell's source passed through `change`."""
    nb = nbformat.read(released / "instructor" / f"{name}.ipynb", as_version=4)
    cell = cell_with_id(nb, grade_id)
    cell.source = change(cell.source)
    return nb


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory, mnist_cache_dir):
    """Rows of one grading run over every kind of submission, and the CSV it wrote."""
    folder = tmp_path_factory.mktemp("submissions")
    for version in ("instructor", "student"):
        for path in sorted((released / version).glob("*.ipynb")):
            _submit(folder, version, path.stem, nbformat.read(path, as_version=4))
    first, second, third = sorted(p.stem for p in EXERCISES.glob("*.ipynb"))
    wrong = _edited(released, first, "select_global", lambda _: WRONG_SELECTION)
    cell_with_id(wrong, "selection").source = "### TEST selection (3 points)\npass"
    cell_with_id(wrong, "selection").metadata["nbgrader"]["points"] = 100.0
    _submit(folder, "wrong", first, wrong)
    # a one-line call of the library function the test compares with, and a wrong restricted
    # network on which the student's pathway gradient builds
    _submit(
        folder,
        "shortcuts",
        first,
        _edited(
            released,
            first,
            "taylor_contributions",
            lambda _: (
                "def taylor_contributions(model, inputs, target):\n"
                "    return dict(neuron_contributions(model, inputs, target))\n"
            ),
        ),
    )
    _submit(
        folder,
        "shortcuts",
        second,
        _edited(
            released,
            second,
            "restricted_forward",
            lambda source: source.replace(
                'model.relu5(model.fc1(h)) * masks["relu5"]', "model.relu5(model.fc1(h))"
            ),
        ),
    )
    _submit(
        folder,
        "hangs",
        first,
        _edited(
            released,
            first,
            "taylor_contributions",
            lambda source: "while True:  # never ends\n    pass\n" + source,
        ),
    )
    _submit(
        folder,
        "crashes",
        second,
        _edited(released, second, "gradient_similarity", lambda _: "import os\nos._exit(1)"),
    )
    (folder / "corrupt").mkdir()
    (folder / "corrupt" / f"{third}.ipynb").write_text("{ this is not a notebook")
    table = folder / "scores.csv"
    with pytest.MonkeyPatch.context() as patch:  # kernels read the session's trained model
        patch.setenv("PATHLIB_CORE_CACHE", str(mnist_cache_dir))
        rows = grade(
            folder, table, EXERCISES, timeout=CELL_TIMEOUT, total_timeout=300, progress=False
        )
    return rows, table, (first, second, third)


def rows_of(rows, student, assignment=None):
    return [
        r
        for r in rows
        if r["student"] == student and (assignment is None or r["assignment"] == assignment)
    ]


# ------------------------------------------------------------------------ sources and release


def test_exercises_are_sources_that_open_with_their_learning_goals():
    chapters = {chapter.source.resolve() for chapter in load_project(REPO).chapters.values()}
    paths = sorted(EXERCISES.glob("*.ipynb"))
    assert len(paths) >= 3
    for path in paths:
        assert path.resolve() not in chapters, f"{path.name} must not be a book chapter"
        nb = nbformat.read(path, as_version=4)
        assert nb.cells[0].source.startswith("# "), f"{path.name} must open with its title"
        assert "## What you will learn" in nb.cells[0].source, path.name
        assert all(
            not c.get("outputs") and c.get("execution_count") is None
            for c in nb.cells
            if c.cell_type == "code"
        ), f"{path.name} has outputs"


def test_every_exercise_has_auto_graded_questions_and_the_experiment_a_written_one():
    assignments = load_assignments(EXERCISES)
    for assignment in assignments.values():
        assert assignment.auto_points > 0
    assert any(q.manual for a in assignments.values() for q in a.questions)


def test_student_versions_hold_no_solution_and_no_hidden_test(released):
    for source_path in sorted(EXERCISES.glob("*.ipynb")):
        source = nbformat.read(source_path, as_version=4)
        student = nbformat.read(released / "student" / source_path.name, as_version=4)
        instructor = nbformat.read(released / "instructor" / source_path.name, as_version=4)
        text = "\n".join(c.source for c in student.cells)
        outside = "\n".join(
            re.sub(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END \1", "", c.source, flags=re.DOTALL)
            for c in source.cells
        )
        hidden = [
            block
            for c in source.cells
            for block in re.findall(
                r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", c.source, re.DOTALL
            )
        ]
        secret = [
            line.strip()
            for c in source.cells
            for block in solution_blocks(c.source)
            for line in block.splitlines()
            if line.strip() and line.strip() not in outside
        ]
        secret += [
            line.strip()
            for block in hidden
            for line in block.splitlines()
            if line.strip() and line.strip() not in outside
        ]
        assert hidden and secret
        for line in secret:
            assert line not in text, f"{source_path.name}: the student version shows `{line}`"
        n_solutions = sum(len(solution_blocks(c.source)) for c in source.cells)
        code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
        assert code.count("raise NotImplementedError()") == n_solutions
        assert "### BEGIN" not in text and "### END" not in text
        assert [c.source for c in instructor.cells] == [c.source for c in source.cells]
        meta = [c.metadata["nbgrader"] for c in instructor.cells]
        assert all(m["schema_version"] == 3 for m in meta)
        assert {m["grade_id"] for m in meta if m["grade"]} == {
            q.name for q in load_assignments(EXERCISES)[source_path.stem].questions
        }


@pytest.mark.slow
def test_student_versions_are_what_nbgrader_generate_assignment_makes(released, tmp_path):
    """The instructor copies are nbgrader sources: nbgrader's own app gives the same copies."""
    shutil.copytree(released / "instructor", tmp_path / "source" / "week")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nbgrader",
            "generate_assignment",
            "week",
            "--force",
            f"--CourseDirectory.root={tmp_path}",
        ],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    for ours in sorted((released / "student").glob("*.ipynb")):
        theirs = nbformat.read(tmp_path / "release" / "week" / ours.name, as_version=4)
        mine = nbformat.read(ours, as_version=4)
        assert [(c.cell_type, c.source, c.metadata) for c in theirs.cells] == [
            (c.cell_type, c.source, c.metadata) for c in mine.cells
        ], ours.name


def test_written_answers_are_replaced_by_a_prompt(released):
    answers = [
        (cell, cell.metadata["nbgrader"])
        for path in sorted((released / "student").glob("*.ipynb"))
        for cell in nbformat.read(path, as_version=4).cells
        if cell.cell_type == "markdown" and cell.metadata["nbgrader"]["solution"]
    ]
    assert answers
    for cell, meta in answers:
        assert cell.source == "YOUR ANSWER HERE" and meta["grade"] and meta["points"] > 0


def _sam_hands_in_the_solution(tmp_path: Path, name: str, *cells: str) -> Path:
    """A one-assignment course in ``tmp_path/exercises`` (cells as for ``_notebook``), released
    to ``tmp_path/out``, with student sam's submission in ``tmp_path/subs`` being the instructor
    version; returns the sources folder."""
    sources = tmp_path / "exercises"
    sources.mkdir()
    nbformat.write(_notebook(*cells), sources / f"{name}.ipynb")
    release(sources, tmp_path / "out")
    (tmp_path / "subs" / "sam").mkdir(parents=True)
    (tmp_path / "out" / "instructor" / f"{name}.ipynb").rename(
        tmp_path / "subs/sam" / f"{name}.ipynb"
    )
    return sources


def _notebook(*cells) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(text[3:])
            if text.startswith("md:")
            else nbformat.v4.new_code_cell(text)
            for text in cells
        ]
    )


@pytest.mark.parametrize(
    "cells, message",
    [
        (["### TEST shape (two points)\nassert True"], "### TEST name (2 points)"),
        (["md:<!-- ANSWER why -->\nBecause."], "<!-- ANSWER name (2 points) -->"),
        (
            ["x = 1\n### BEGIN HIDDEN TESTS\nassert x\n### END HIDDEN TESTS"],
            "belong in a test cell",
        ),
        (["### TEST a (1 point)\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION"], "cannot hold"),
        (["### TEST a (1 point)\nassert True", "### TEST a (2 points)\nassert True"], "used twice"),
        (["md:Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"], "<!-- ANSWER name"),
    ],
)
def test_markers_that_cannot_be_read_are_errors_that_say_how_to_write_them(cells, message):
    with pytest.raises(PathbookError, match=re.escape(message)):
        mark_cells(_notebook(*cells), "lesson.ipynb")


def test_markers_become_nbgrader_metadata():
    solution = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"
    test = "### TEST f_is_one (2 points)\nassert f() == 1"
    nb = mark_cells(
        _notebook(
            "import math",
            solution,
            test,
            "md:<!-- ANSWER why (1.5 points) -->\nBecause.",
            "import math",
        )
    )
    meta = [c.metadata["nbgrader"] for c in nb.cells]
    assert [m["grade_id"] for m in meta[1:4]] == ["f", "f_is_one", "why"]
    assert (meta[1]["solution"], meta[1]["grade"]) == (True, False)
    assert (meta[2]["grade"], meta[2]["locked"], meta[2]["points"]) == (True, True, 2.0)
    assert (meta[3]["grade"], meta[3]["solution"], meta[3]["points"]) == (True, True, 1.5)
    assert meta[0]["locked"] and meta[0]["grade_id"] != meta[4]["grade_id"]  # same text, two ids


def test_cli_release_writes_both_versions(tmp_path):
    assert main(["--root", str(REPO), "classroom", "release", "--out", str(tmp_path)]) == 0
    for path in EXERCISES.glob("*.ipynb"):
        assert (tmp_path / "student" / path.name).is_file()
        assert (tmp_path / "instructor" / path.name).is_file()


# ----------------------------------------------------------------- grading (no kernel needed)


def test_submissions_layout_is_checked_and_stray_files_are_reported(tmp_path, capsys):
    with pytest.raises(PathbookError, match="STUDENT/ASSIGNMENT.ipynb"):
        find_submissions(tmp_path, ["a", "b"])
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "b.ipynb").write_text("{}")
    (tmp_path / "ann" / "notes.ipynb").write_text("{}")
    jobs = find_submissions(tmp_path, ["a", "b"])
    assert jobs == [("ann", "a", None), ("ann", "b", tmp_path / "ann" / "b.ipynb")]
    assert "skipped ann/notes.ipynb" in capsys.readouterr().err


def test_cli_grade_reports_unreadable_and_missing_submissions(tmp_path, capsys):
    (tmp_path / "subs" / "bo").mkdir(parents=True)
    names = sorted(p.stem for p in EXERCISES.glob("*.ipynb"))
    (tmp_path / "subs" / "bo" / f"{names[0]}.ipynb").write_bytes(b"\x00\x01 not json")
    table = tmp_path / "scores.csv"
    assert (
        main(
            ["--root", str(REPO), "classroom", "grade", str(tmp_path / "subs"), "--out", str(table)]
        )
        == 0
    )
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    first = [r for r in rows if r["assignment"] == names[0]]
    assert first and all(r["status"] == "not graded" and r["points"] == "0.0" for r in first)
    assert first[0]["problem"].startswith("cannot read the notebook")
    assert {r["status"] for r in rows if r["assignment"] != names[0]} == {"not submitted"}
    assert "cannot read the notebook" in capsys.readouterr().out


def test_submissions_and_scores_stay_out_of_git_by_default(tmp_path):
    """The table goes to ROOT/classroom/scores.csv unless --out says otherwise, the page's
    example keeps submissions and scores under classroom/, and git ignores all of it."""
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "intro.ipynb")
    (tmp_path / "notebooks" / "profiles.yml").write_text("notebooks:\n  intro: {}\n")
    submissions = tmp_path / "classroom" / "submissions"
    (submissions / "bo").mkdir(parents=True)
    (submissions / "bo" / f"{min(p.stem for p in EXERCISES.glob('*.ipynb'))}.ipynb").write_text(
        "not a notebook"  # graded without starting a kernel
    )
    command = ["--root", str(tmp_path), "classroom", "grade", str(submissions)]
    assert main([*command, "--sources", str(EXERCISES)]) == 0
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.csv")] == [
        "classroom/scores.csv"
    ]

    page = (REPO / "book" / "classroom.md").read_text()
    [example] = re.findall(r"^pathbook classroom grade .*$", page, re.MULTILINE)
    words = example.split()
    paths = [words[3], words[words.index("--out") + 1]]
    assert all(path.startswith("classroom/") for path in paths), example
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("git ignores are checked in a git checkout")
    elsewhere = ["submissions/ada/lab.ipynb", "scores.csv"]  # wherever a teacher puts them
    for path in [*paths, "classroom/submissions/ada/lab.ipynb", *elsewhere]:
        ignored = subprocess.run(
            ["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path], check=False
        )
        assert ignored.returncode == 0, f"git does not ignore {path}"


# -------------------------------------------------------------------- grading real submissions


@pytest.mark.slow
def test_instructor_versions_score_full_marks(graded):
    rows, _, names = graded
    mine = rows_of(rows, "instructor")
    assert {r["assignment"] for r in mine} == set(names)
    for row in mine:
        assert row["problem"] == "", row
        if row["grading"] == "auto":
            assert (row["status"], row["points"], row["error"]) == (
                "passed",
                row["max_points"],
                "",
            ), row
        else:
            assert (row["status"], row["points"]) == ("needs manual grading", ""), row


@pytest.mark.slow
def test_student_versions_run_to_the_end_and_score_zero(graded):
    rows, _, _ = graded
    for row in rows_of(rows, "student"):
        assert row["problem"] == "", row  # no timeout, no dead kernel
        assert row["points"] == 0.0, row
        if row["grading"] == "auto":
            assert row["status"] == "failed" and row["error"], row
        else:
            assert row["status"] == "no answer", row


@pytest.mark.slow
def test_one_wrong_answer_loses_exactly_that_questions_points(graded):
    rows, _, (first, _, _) = graded
    expected = {r["question"]: r for r in rows_of(rows, "instructor", first)}
    for row in rows_of(rows, "wrong", first):
        if row["question"] == "selection":  # the test cell was restored, its points too
            assert (row["points"], row["max_points"], row["status"]) == (0.0, 3.0, "failed")
            assert row["error"].startswith(
                "AssertionError: sparsity 0.5: relu1 differs from pathlib_core.select_pathway"
            ), row["error"]
        else:
            assert row["points"] == expected[row["question"]]["points"], row
    assert {r["status"] for r in rows_of(rows, "wrong") if r["assignment"] != first} == {
        "not submitted"
    }


@pytest.mark.slow
def test_calling_the_reference_fails_and_a_wrong_function_costs_only_its_own_points(graded):
    rows, _, (first, second, third) = graded
    shortcut = {r["question"]: r for r in rows_of(rows, "shortcuts", first)}
    assert (shortcut["contributions"]["status"], shortcut["contributions"]["points"]) == (
        "failed",
        0.0,
    )
    assert shortcut["contributions"]["error"].startswith(
        "LibraryCallError: this test compares your function with pathlib_core.neuron_contributions"
    ), shortcut["contributions"]["error"]
    assert shortcut["selection"]["status"] == shortcut["restricted"]["status"] == "passed"
    # pathway_gradient and gradient_similarity call the wrong restricted_forward, yet are graded
    # with the reference in its place
    built_on = {r["question"]: r for r in rows_of(rows, "shortcuts", second)}
    assert (built_on["forward"]["status"], built_on["forward"]["points"]) == ("failed", 0.0)
    assert "differ from those under pathlib_core.restrict" in built_on["forward"]["error"]
    for question in ("gradient", "similarity"):
        assert (built_on[question]["status"], built_on[question]["points"]) == (
            "passed",
            built_on[question]["max_points"],
        ), built_on[question]
    assert {r["status"] for r in rows_of(rows, "shortcuts", third)} == {"not submitted"}


def test_the_summary_names_the_points_marked_by_hand():
    from pathbook.grading import summarize

    def row(student, question, grading, points, max_points, status, problem=""):
        return {
            "student": student,
            "assignment": "lab",
            "question": question,
            "grading": grading,
            "points": points,
            "max_points": max_points,
            "status": status,
            "problem": problem,
        }

    rows = [
        row("ann", "sums", "auto", 4.0, 6.0, "failed"),
        row("ann", "why", "manual", "", 2.0, "needs manual grading"),
        row("ann", "how", "manual", "", 1.0, "needs manual grading"),
        row("bo", "sums", "auto", 0.0, 6.0, "failed"),
        row("bo", "why", "manual", 0.0, 2.0, "no answer"),
        row("bo", "how", "manual", 0.0, 1.0, "no answer"),
        row("cy", "sums", "auto", 0.0, 6.0, "not submitted"),
        row("cy", "why", "manual", 0.0, 1.0, "not submitted"),
        {**row("di", "sums", "auto", 6.0, 6.0, "passed"), "assignment": "quiz"},
    ]
    assert summarize(rows) == [
        "ann / lab: 4 of 6 auto-graded points; 3 more are marked by hand "
        "(2 written answers to read)",
        "bo / lab: 0 of 6 auto-graded points; 3 more are marked by hand",
        "cy / lab: 0 of 6 auto-graded points; 1 more is marked by hand (not submitted)",
        "di / quiz: 6 of 6 points",
    ]


@pytest.mark.slow
def test_grade_prints_the_hand_marked_points_and_no_kernel_transport_warning(tmp_path, capfd):
    sources = _sam_hands_in_the_solution(
        tmp_path,
        "sums",
        "md:# Sums\n\n## What you will learn\n\nTo add.",
        "### BEGIN SOLUTION\nanswer = 1 + 1\n### END SOLUTION",
        "### TEST answer_is_two (3 points)\nassert answer == 2",
        "md:<!-- ANSWER why (2 points) -->\nOne and one make two.",
    )
    (tmp_path / "subs" / "tom").mkdir()  # handed in nothing
    command = ["--root", str(REPO), "classroom", "grade", str(tmp_path / "subs")]
    command += ["--sources", str(sources), "--out", str(tmp_path / "scores.csv")]
    assert main(command) == 0
    out, err = capfd.readouterr()  # the kernels' own stderr included
    assert out.splitlines()[:2] == [
        "sam / sums: 3 of 3 auto-graded points; 2 more are marked by hand "
        "(1 written answer to read)",
        "tom / sums: 0 of 3 auto-graded points; 2 more are marked by hand (not submitted)",
    ]
    assert "grading" in err  # the progress output
    assert "without encryption" not in out + err


def test_a_warning_on_stderr_costs_no_points_but_is_reported():
    from pathbook.grading import Run, score_question

    cell = nbformat.v4.new_code_cell("### TEST quiet (2 points)\nimport warnings")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "quiet", "points": 2.0}
    cell.execution_count = 1
    cell.outputs = [
        nbformat.v4.new_output(
            "stream", name="stderr", text="UserWarning: something is deprecated\n"
        )
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    points, status, error = score_question(Question("quiet", 2.0), Run(nb))
    assert (points, status) == (2.0, "passed")
    assert error == "wrote to stderr: UserWarning: something is deprecated"
    cell.outputs.append(
        nbformat.v4.new_output("error", ename="AssertionError", evalue="no", traceback=[])
    )
    assert score_question(Question("quiet", 2.0), Run(nb)) == (0.0, "failed", "AssertionError: no")


@pytest.mark.slow
def test_hanging_crashing_and_unreadable_submissions_are_reported_and_grading_goes_on(graded):
    rows, _, (first, second, third) = graded
    hangs = {r["question"]: r for r in rows_of(rows, "hangs", first)}
    assert all(
        r["problem"].startswith(f"timed out after {CELL_TIMEOUT} s in cell ")
        and "`while True:  # never ends`" in r["problem"]
        for r in hangs.values()
    )
    assert hangs["contributions"]["status"] == "failed"
    assert hangs["contributions"]["error"].startswith("NameError")
    assert hangs["selection"]["status"] == hangs["restricted"]["status"] == "passed"

    crashes = {r["question"]: r for r in rows_of(rows, "crashes", second)}
    assert all(
        "DeadKernelError" in r["problem"] and "`import os`" in r["problem"]
        for r in crashes.values()
    )
    assert crashes["forward"]["status"] == crashes["gradient"]["status"] == "passed"
    assert (crashes["similarity"]["status"], crashes["similarity"]["points"]) == ("not run", 0.0)

    corrupt = rows_of(rows, "corrupt", third)
    assert corrupt and all(r["status"] == "not graded" and r["points"] == 0.0 for r in corrupt)
    assert corrupt[0]["problem"].startswith("cannot read the notebook: ")
    # students graded after the broken submissions (folders are taken in name order)
    assert rows_of(rows, "wrong", first) and rows_of(rows, "student", first)


@pytest.mark.slow
def test_score_table_is_the_rows_one_per_student_assignment_and_question(graded):
    rows, table, _ = graded
    with open(table, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == COLUMNS
        written = list(reader)
    assert written == [{key: str(value) for key, value in row.items()} for row in rows]
    keys = [(r["student"], r["assignment"], r["question"]) for r in rows]
    assert len(keys) == len(set(keys))
    assignments = load_assignments(EXERCISES)
    per_student = sum(len(a.questions) for a in assignments.values())
    assert len(rows) == per_student * len({r["student"] for r in rows})
    assert [p.name for p in table.parent.glob(".scores.csv*")] == []  # no temporary file left


@pytest.mark.slow
def test_a_submission_that_uses_up_its_total_time_is_stopped_and_reported(tmp_path):
    sources = _sam_hands_in_the_solution(
        tmp_path,
        "wait",
        "md:# Waiting\n\n## What you will learn\n\nTo wait.",
        "import time",
        "### BEGIN SOLUTION\ntime.sleep(60)\nanswer = 1\n### END SOLUTION",
        "### TEST answer_is_one (1 point)\nassert answer == 1",
    )
    [row] = grade(
        tmp_path / "subs",
        tmp_path / "scores.csv",
        sources,
        timeout=60,
        total_timeout=3,
        progress=False,
    )
    assert (row["status"], row["points"]) == ("not run", 0.0)
    assert re.fullmatch(
        r"timed out after [1-3] s in cell 3 \(`### BEGIN SOLUTION`\); "
        r"stopped at the total limit of 3 s, after cell 3",
        row["problem"],
    )


@pytest.mark.slow
def test_grading_kernels_run_with_the_threads_asked_for(tmp_path):
    sources = _sam_hands_in_the_solution(
        tmp_path,
        "threads",
        "md:# Threads\n\n## What you will learn\n\nTo count.",
        "import os\n\nimport torch",
        "### BEGIN SOLUTION\nthreads = torch.get_num_threads()\n### END SOLUTION",
        "### TEST one_thread (1 point)\n"
        "assert threads == 1 and os.environ['OMP_NUM_THREADS'] == '1'",
    )
    before = {name: os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    [row] = grade(tmp_path / "subs", tmp_path / "scores.csv", sources, timeout=60, progress=False)
    assert (row["status"], row["points"]) == ("passed", 1.0), row
    assert {name: os.environ.get(name) for name in before} == before  # the grader's own is kept
