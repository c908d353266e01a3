"""The committed edition of the full profile (`editions/full/`): executed chapters saved with
their run record, taken back instead of executing, and the book built from it with nothing run."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from pathbook.prose import HEADER_TAG

LINE = b"\x89PNG\r\n\x1a\n line figure, shown in the notebook"
HIDDEN = b"\x89PNG\r\n\x1a\n a figure saved with show=False"
MODULES = ["pathlib_core", "pathlib_core.plotting"]


@pytest.fixture
def runs(executed, monkeypatch) -> list[dict[str, Any]]:
    """`executed`, publishing what a chapter run publishes: a header, a figure shown in the
    notebook and saved to its figure folder with provenance, one saved only (show=False)."""
    from pathbook import execute as module

    recorded = module.execute

    def fake(project, chapter, profile, parameters, content_hash, **options):
        outcome = recorded(project, chapter, profile, parameters, content_hash, **options)
        header = nbformat.v4.new_markdown_cell(f"This page: `{profile}`, hash `{content_hash}`.")
        header.metadata["tags"] = [HEADER_TAG]
        code = nbformat.v4.new_code_cell("save_figure(fig, 'line')")
        code.outputs = [
            nbformat.v4.new_output(
                "display_data", data={"image/png": base64.b64encode(LINE).decode()}
            )
        ]
        title = nbformat.v4.new_markdown_cell(f"# Chapter {chapter.name}")
        nb = nbformat.v4.new_notebook(cells=[title, header, code])
        nbformat.write(nb, outcome.output)
        figures = project.figures_of(chapter)
        figures.mkdir(parents=True, exist_ok=True)
        (figures / "line.png").write_bytes(LINE)
        (figures / "line.json").write_text(json.dumps({"figure": "line", "profile": profile}))
        (figures / "hidden.png").write_bytes(HIDDEN)
        outcome.modules = MODULES
        outcome.peak_memory = 123_000_000
        return outcome

    monkeypatch.setattr(module, "execute", fake)
    return executed


@pytest.fixture
def root(make_project) -> Path:
    code = 'device = "cpu"\nn = 3'
    root = make_project({"a": code, "b": code}, {n: {"quick": {}, "full": {"n": 9}} for n in "ab"})
    (root / "pathlib_core").mkdir()
    for name in ("__init__.py", "plotting.py", "core.py"):
        (root / "pathlib_core" / name).write_text(f"# {name}\n")
    return root


def fresh_clone(root: Path) -> None:
    """What a checkout has: the sources and the committed edition, nothing built."""
    for folder in ("book", ".pathbook", "_build"):
        shutil.rmtree(root / folder, ignore_errors=True)


def edition(root: Path) -> Path:
    return root / "editions" / "full"


def header(root: Path, name: str) -> str:
    nb = nbformat.read(root / "book" / "generated" / f"{name}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if HEADER_TAG in c.metadata.get("tags", []))


def test_an_executed_full_chapter_lands_in_the_edition_with_its_run_record(root, cli, runs):
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    assert sorted(c["chapter"] for c in runs) == ["a", "b"]
    folder = edition(root)
    assert sorted(p.name for p in folder.iterdir()) == [
        "a",
        "a.ipynb",
        "a.run.json",
        "b",
        "b.ipynb",
        "b.run.json",
    ]
    record = json.loads((folder / "a.run.json").read_text())
    stamp = json.loads((root / ".pathbook" / "stamps" / "a.json").read_text())
    assert record["components"] == stamp["components"]
    assert record["components"]["pathlib_core"].keys() == {"__init__.py", "plotting.py"}
    assert record["content_hash"] == stamp["hash"] and len(record["hash"]) == 16
    assert record["profile"] == "full" and record["parameters"]["n"] == 9
    assert record["device"]["type"] == "cpu" and record["device"]["cpu"]
    assert record["peak_memory_bytes"] == 123_000_000 and record["seconds"] >= 0
    assert record["date"] == stamp["executed_at"]
    assert record["pathbook"]["pipeline"] and "commit" in record
    # the published page says where its results come from
    assert "committed `full` edition" in header(root, "a") and "This page: `full`" in header(
        root, "a"
    )


def test_the_edition_stores_no_image_twice(root, cli, runs):
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    folder = edition(root)
    nb = nbformat.read(folder / "a.ipynb", as_version=4)
    assert "committed" not in nb.cells[1].source, "the edition keeps the header as executed"
    embedded = [
        base64.b64decode(o["data"]["image/png"])
        for c in nb.cells
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    files = [p.read_bytes() for p in (folder / "a").iterdir()]
    assert sorted(p.name for p in (folder / "a").iterdir()) == ["hidden.png", "line.json"]
    stored = [hashlib.sha256(b).hexdigest() for b in embedded + files]
    assert len(stored) == len(set(stored)), "an image is stored twice"
    assert LINE in embedded and HIDDEN in files


def test_a_second_build_takes_chapters_from_the_edition_without_executing(root, cli, runs, capsys):
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    book = {p.relative_to(root): p.read_bytes() for p in (root / "book").rglob("*") if p.is_file()}
    fresh_clone(root)
    capsys.readouterr()
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    err = capsys.readouterr().err
    assert len(runs) == 2, "a chapter was executed again"
    assert "a: taken from editions/full/" in err and "executed 0 notebook(s)" in err
    assert "2 taken from editions/full/" in err
    rebuilt = {
        p.relative_to(root): p.read_bytes() for p in (root / "book").rglob("*") if p.is_file()
    }
    assert rebuilt == book, "the book from the edition differs from the one executed"
    assert cli(root, "status", "--profile", "full") == 0
    out = capsys.readouterr().out
    assert "a: up to date" in out and "stale" not in out
    assert out.count("edition: in the edition and up to date") == 2


def test_no_execute_with_a_chapter_missing_names_it_and_executes_nothing(root, cli, runs, capsys):
    assert cli(root, "build", "--profile", "full", "--no-html", "--only", "a") == 0
    fresh_clone(root)
    capsys.readouterr()
    assert cli(root, "build", "--profile", "full", "--no-execute", "--no-html") == 2
    err = capsys.readouterr().err
    assert "for b;" in err and "pathbook build --profile full --only b" in err
    assert len(runs) == 1 and not (root / "book").exists(), "something was run or published"
    assert cli(root, "status", "--profile", "full") == 0
    out = capsys.readouterr().out
    assert "edition: missing (make it: pathbook build --profile full --only b)" in out


def test_a_code_change_marks_the_chapter_older_and_names_the_files(root, cli, runs, capsys):
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    fresh_clone(root)
    (root / "pathlib_core" / "plotting.py").write_text("# edited\n")
    (root / "pathlib_core" / "core.py").write_text("# edited, loaded by no chapter\n")
    source = root / "notebooks" / "a.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('new')"))
    nbformat.write(nb, source)
    capsys.readouterr()
    assert cli(root, "build", "--profile", "full", "--no-execute", "--no-html") == 0
    assert len(runs) == 2, "--no-execute executed a chapter"
    note = header(root, "a")
    assert "Older than the code" in note
    assert "`notebooks/a.ipynb`" in note and "`pathlib_core/plotting.py`" in note
    assert "core.py`" not in note.replace("plotting.py`", "")
    assert "pathbook build --profile full --only a" in note
    assert "`pathlib_core/plotting.py`" in header(root, "b")
    assert "notebooks/a.ipynb" not in header(root, "b")
    assert cli(root, "status", "--profile", "full") == 0
    out = capsys.readouterr().out
    assert (
        "edition: in the edition but older than the code: notebooks/a.ipynb, "
        "pathlib_core/plotting.py" in out
    )
    assert "older than the code: pathlib_core/plotting.py" in out  # b's
    # a build that may execute runs them again rather than taking the older entries
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    assert len(runs) == 4
    assert "Older than the code" not in header(root, "a")


def test_no_execute_builds_the_html_from_a_complete_edition(root, cli, runs, monkeypatch, capsys):
    from pathbook import build

    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    fresh_clone(root)
    html: list[bool] = []

    def fake_html(project):
        assert all(project.output_of(c).exists() for c in project.chapters.values())
        html.append(True)

    monkeypatch.setattr(build, "build_html", fake_html)
    assert cli(root, "build", "--profile", "full", "--no-execute") == 0
    assert html == [True] and len(runs) == 2
    assert (root / "book" / "figures" / "a" / "line.png").read_bytes() == LINE
    assert (root / "book" / "figures" / "a" / "hidden.png").read_bytes() == HIDDEN
    assert "up to date" in capsys.readouterr().err
    assert cli(root, "build", "--profile", "quick", "--no-execute", "--no-html") == 2
    assert "the 'quick' profile has none" in capsys.readouterr().err


def test_a_damaged_entry_is_not_used(root, cli, runs, capsys):
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    fresh_clone(root)
    path = edition(root) / "a.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "# Edited by hand"
    nbformat.write(nb, path)
    capsys.readouterr()
    assert cli(root, "build", "--profile", "full", "--no-execute", "--no-html") == 2
    assert "a.ipynb does not match a.run.json" in capsys.readouterr().err
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    assert [c["chapter"] for c in runs[2:]] == ["a"], "only the damaged chapter runs again"


def test_the_worker_measures_the_kernels_peak_memory():
    from pathbook.worker import kernel_peak_memory

    subprocess.run(
        [sys.executable, "-c", "b = bytearray(300_000_000); b[::4096] = b'x' * len(b[::4096])"],
        check=True,
    )
    assert kernel_peak_memory() >= 300_000_000


def test_a_chapter_built_but_not_in_the_edition_is_saved_without_executing(root, cli, runs):
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    for path in edition(root).glob("a*"):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    assert len(runs) == 2, "a chapter up to date in book/ was executed again"
    record = json.loads((edition(root) / "a.run.json").read_text())
    assert record["commit"] is None, "the commit it ran at is unknown"
    assert sorted(p.name for p in (edition(root) / "a").iterdir()) == ["hidden.png", "line.json"]


def test_the_run_record_names_the_commit_and_a_dirty_tree(root, monkeypatch):
    from pathbook import edition as module
    from pathbook.project import load_project

    answers = {"rev-parse": "0123456789abcdef", "status": " M pathlib_core/plotting.py"}
    monkeypatch.setattr(module, "_git", lambda project, command, *args: answers[command])
    project = load_project(root)
    assert module.commit_of(project) == {"sha": "0123456789abcdef", "dirty": True}
    answers["status"] = ""
    assert module.commit_of(project) == {"sha": "0123456789abcdef", "dirty": False}
    summary = module.summary({"commit": {"sha": "0123456789abcdef", "dirty": True}})
    assert "commit 0123456789ab with uncommitted changes" in summary


def _colophon(root: Path) -> str:
    from pathbook import colophon
    from pathbook.project import load_project

    project = load_project(root)
    return colophon.lead_text(project) + "\n" + colophon.table_text(project)


def _table(text: str) -> dict[str, list[str]]:
    """Table rows by chapter name: the cells after the chapter's."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| {doc}"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].split("/")[-1].rstrip("`")] = cells[1:]
    return rows


def test_the_colophon_says_which_edition_the_reader_reads(root, cli, runs):
    assert cli(root, "build", "--profile", "quick", "--no-html") == 0
    quick = _colophon(root)
    assert quick.startswith("**You are reading the quick edition.**")
    assert "not the papers' scale" in quick and "full edition" not in quick  # none committed yet
    rows = _table(quick)
    assert sorted(rows) == ["a", "b"] and all(r[0] == "`quick`" for r in rows.values())
    assert all(r[3] == "0.1 GB" for r in rows.values())
    assert "of computing on cpu (" in quick  # one device: named once, under the table

    assert cli(root, "build", "--profile", "full", "--no-html") == 0
    fresh_clone(root)
    assert cli(root, "build", "--profile", "full", "--no-execute", "--no-html") == 0
    full = _colophon(root)
    assert full.startswith("**You are reading the full edition.**")
    assert "without executing a notebook" in full
    record = json.loads((edition(root) / "a.run.json").read_text())
    assert _table(full)["a"] == [
        "`full`",
        record["date"][:10],
        f"{record['seconds']:.0f} s",
        "0.1 GB",
    ]

    assert cli(root, "build", "--profile", "quick", "--only", "b", "--no-html") == 0
    mixed = _colophon(root)
    assert mixed.startswith("**This build mixes profiles** (1 the `full` profile, 1 the `quick`")
    assert _table(mixed)["a"][0] == "`full`" and _table(mixed)["b"][0] == "`quick`"


def test_the_costs_table_reads_the_measured_quick_times_and_the_edition(make_project, cli, runs):
    code = 'device = "cpu"\nn = 3'
    entries = {n: {"quick": {}, "full": {"n": 9}, "seconds": {"quick": 200}} for n in "ab"}
    root = make_project({"a": code, "b": code}, entries)
    from pathbook import colophon
    from pathbook.project import load_project

    before = _table(colophon.costs_text(load_project(root)))
    assert before["a"] == ["3 min", "not in the edition yet", "", ""]
    assert cli(root, "build", "--profile", "full", "--only", "a", "--no-html") == 0
    text = colophon.costs_text(load_project(root))
    record = json.loads((edition(root) / "a.run.json").read_text())
    assert _table(text)["a"] == [
        "3 min",
        f"{record['seconds']:.0f} s",
        "0.1 GB",
        f"cpu ({record['device']['cpu']}), {record['date'][:10]}",
    ]
    assert _table(text)["b"][1] == "not in the edition yet"
    assert "| **all 2** | 7 min |" in text and "(1 of 2)" in text
