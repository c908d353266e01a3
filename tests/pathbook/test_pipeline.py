"""The pathbook pipeline on a tiny project made by the test: build, staleness, failures, runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from pathbook.cli import main

NOTEBOOK_CODE = [
    "import pathlib, time",
    # -j 2 check: each notebook waits for the other to start; run one after the other, it times out.
    """if rendezvous:
    pathlib.Path(rendezvous, NAME).touch()
    deadline = time.time() + 60
    while not pathlib.Path(rendezvous, OTHER).exists():
        if time.time() > deadline:
            raise TimeoutError("the other notebook never started: not run in parallel")
        time.sleep(0.05)""",
    """if fail:
    raise RuntimeError("asked to fail")""",
    """import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
from pathlib_core.plotting import save_figure
fig, ax = plt.subplots()
ax.plot(range(n))
save_figure(fig, "line", "A line of n points.")""",
]


def write_notebook(path: Path, name: str, other: str, extra: str = "") -> None:
    cells = [nbformat.v4.new_markdown_cell(f"# Chapter {name}\n\nSome text.")]
    params = nbformat.v4.new_code_cell('n = 3\nfail = False\nrendezvous = ""')
    params.metadata["tags"] = ["parameters"]
    cells.append(params)
    cells.append(nbformat.v4.new_code_cell(f"NAME, OTHER = {name!r}, {other!r}\n{extra}"))
    cells += [nbformat.v4.new_code_cell(code) for code in NOTEBOOK_CODE]
    nb = nbformat.v4.new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, path)


def set_profiles(root: Path, quick_a: dict | None = None, quick_b: dict | None = None) -> None:
    spec = {
        "notebooks": {
            "a": {"quick": quick_a or {}, "full": {"n": 9}, "data": ["data.txt"]},
            "b": {"quick": quick_b or {}, "full": {}},
        }
    }
    (root / "notebooks" / "profiles.yml").write_text(yaml.safe_dump(spec))


def pathbook(root: Path, *args: str) -> int:
    return main(["--root", str(root), *args])


def outputs(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "book" / "generated").glob("*.ipynb"))}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    (root / "notebooks").mkdir()
    # The library's sources as the fingerprint sees them: files named like the modules the
    # kernels load (they import the installed pathlib_core; its module names map onto these).
    # Both chapters save a figure (plotting, cache); only a imports report.text; nobody core.
    for rel in ("__init__.py", "plotting.py", "cache.py", "report/__init__.py", "report/text.py"):
        (root / "pathlib_core" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "pathlib_core" / rel).write_text(f"# stands for {rel}\n")
    (root / "pathlib_core" / "core.py").write_text("VALUE = 1\n")
    (root / "data.txt").write_text("chapter a reads this\n")
    write_notebook(root / "notebooks" / "a.ipynb", "a", "b", "import pathlib_core.report.text")
    write_notebook(root / "notebooks" / "b.ipynb", "b", "a")
    set_profiles(root)
    assert pathbook(root, "build", "--no-html") == 0
    return root


@pytest.fixture
def project(built, tmp_path) -> Path:
    """A private copy of the built project, outputs and stamps included."""
    return Path(shutil.copytree(built, tmp_path / "copy"))


def test_first_build_publishes_chapters_figures_and_provenance(built):
    generated = outputs(built)
    assert set(generated) == {"a.ipynb", "b.ipynb"}
    nb = nbformat.reads(generated["a.ipynb"].decode(), as_version=4)
    assert nb.cells[0].source.startswith("# Chapter a")
    assert "pathbook-header" in nb.cells[1].metadata["tags"]
    assert "{download}`notebooks/a.ipynb" in nb.cells[1].source
    figure = built / "book" / "figures" / "a" / "line.png"
    assert figure.read_bytes().startswith(b"\x89PNG")
    record = json.loads(figure.with_suffix(".json").read_text())
    stamp = json.loads((built / ".pathbook" / "stamps" / "a.json").read_text())
    assert record["notebook"] == "notebooks/a.ipynb"
    assert record["profile"] == "quick" and record["content_hash"] == stamp["hash"]
    assert record["parameters"] == {"n": 3, "fail": False, "rendezvous": ""}, "defaults shown"
    assert "torch" in record["packages"]
    assert not list((built / ".pathbook" / "tmp").iterdir()), "temporary folders were left behind"


def test_noop_rebuild_executes_nothing(project, capsys):
    before = outputs(project)
    assert pathbook(project, "build", "--no-html") == 0
    assert "executed 0 notebook(s)" in capsys.readouterr().err
    assert outputs(project) == before


def test_editing_one_notebook_reruns_only_that_one(project, capsys):
    path = project / "notebooks" / "a.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('a new cell')"))
    nbformat.write(nb, path)
    before = outputs(project)
    assert pathbook(project, "build", "--no-html") == 0
    assert "executed 1 notebook(s)" in capsys.readouterr().err
    after = outputs(project)
    assert after["b.ipynb"] == before["b.ipynb"]
    assert "a new cell" in after["a.ipynb"].decode()


def test_a_text_edit_is_merged_into_the_page_without_executing(project, capsys):
    path = project / "notebooks" / "a.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "# Chapter a\n\nA corrected sentence."
    nb.cells.insert(3, nbformat.v4.new_markdown_cell("A new paragraph between two code cells."))
    nb.cells[-1].metadata["tags"] = ["hide-input"]  # collapse the drawing cell
    nbformat.write(nb, path)
    figure = project / "book" / "figures" / "a" / "line.png"
    drawn = figure.stat().st_mtime_ns
    before = outputs(project)
    assert pathbook(project, "status") == 0
    assert "a: text changed (merged into the last output, nothing executed)" in (
        capsys.readouterr().out
    )
    assert pathbook(project, "build", "--no-html") == 0
    err = capsys.readouterr().err
    assert "executed 0 notebook(s)" in err and "1 text-only update(s)" in err
    assert figure.stat().st_mtime_ns == drawn, "the figure was drawn again"
    after = outputs(project)
    assert after["b.ipynb"] == before["b.ipynb"]
    merged = nbformat.reads(after["a.ipynb"].decode(), as_version=4)
    old = nbformat.reads(before["a.ipynb"].decode(), as_version=4)
    markdown = [c.source for c in merged.cells if c.cell_type == "markdown"]
    assert markdown[0] == "# Chapter a\n\nA corrected sentence."
    assert "pathbook-header" in merged.cells[1].metadata["tags"], "the header stays under the title"
    assert "A new paragraph between two code cells." in markdown
    # the code cells and their outputs are the last run's, papermill's injected cell included
    code = [c for c in merged.cells if c.cell_type == "code"]
    assert [c.source for c in code] == [c.source for c in old.cells if c.cell_type == "code"]
    assert [c.outputs for c in code] == [c.outputs for c in old.cells if c.cell_type == "code"]
    assert code[-1].metadata["tags"] == ["hide-input"]
    # and the next build has nothing left to do
    assert pathbook(project, "build", "--no-html") == 0
    assert "0 text-only update(s), 2 up to date" in capsys.readouterr().err


def test_each_chapter_records_the_library_modules_its_kernel_loaded(built):
    folder = built / ".pathbook" / "stamps"
    stamps = {n: json.loads((folder / f"{n}.json").read_text()) for n in "ab"}
    assert {"pathlib_core", "pathlib_core.plotting", "pathlib_core.cache"} <= set(
        stamps["b"]["modules"]
    )
    assert "pathlib_core.report.text" in stamps["a"]["modules"]
    assert "pathlib_core.report.text" not in stamps["b"]["modules"]
    assert "plotting.py" in stamps["a"]["components"]["pathlib_core"]
    assert "core.py" not in stamps["a"]["components"]["pathlib_core"]


def test_changing_a_module_every_chapter_loads_reruns_all(project, capsys):
    (project / "pathlib_core" / "plotting.py").write_text("# edited\n")
    assert pathbook(project, "status") == 0
    assert capsys.readouterr().out.count("pathlib_core changed: plotting.py") == 2
    assert pathbook(project, "build", "--no-html") == 0
    assert "executed 2 notebook(s)" in capsys.readouterr().err


def test_changing_a_module_one_chapter_loads_reruns_that_chapter_only(project, capsys):
    (project / "pathlib_core" / "report" / "text.py").write_text("# edited\n")
    assert pathbook(project, "status") == 0
    out = capsys.readouterr().out
    assert "a: stale: pathlib_core changed: report/text.py" in out and "b: up to date" in out
    assert pathbook(project, "build", "--no-html") == 0
    assert "executed 1 notebook(s)" in capsys.readouterr().err


def test_changing_a_module_no_chapter_loads_reruns_nothing(project, capsys):
    (project / "pathlib_core" / "core.py").write_text("VALUE = 2\n")
    assert pathbook(project, "build", "--no-html") == 0
    assert "executed 0 notebook(s)" in capsys.readouterr().err


def test_profile_switch_reruns_with_the_other_parameters(project, capsys):
    assert pathbook(project, "status", "--profile", "full") == 0
    assert "parameters changed" in capsys.readouterr().out
    assert pathbook(project, "build", "--no-html", "--only", "a", "--profile", "full") == 0
    record = json.loads((project / "book" / "figures" / "a" / "line.json").read_text())
    assert record["parameters"]["n"] == 9 and record["profile"] == "full"


@pytest.mark.parametrize(
    "bad, expected",
    [
        ({"nn": 3}, ["'a'", "'nn'", "n (int, default 3)", "rendezvous"]),
        ({"n": "three"}, ["'a'", "'n'", "expects int", "'three'"]),
    ],
)
def test_bad_parameter_is_rejected_before_anything_runs(project, capsys, bad, expected):
    set_profiles(project, quick_a=bad)
    before = outputs(project)
    assert pathbook(project, "build", "--no-html", "--force") == 2
    message = capsys.readouterr().err
    for text in expected:
        assert text in message
    assert outputs(project) == before


def test_failing_notebook_keeps_previous_output_and_names_the_cell(project, capsys):
    before = outputs(project)
    figure = (project / "book" / "figures" / "a" / "line.png").read_bytes()
    set_profiles(project, quick_a={"fail": True, "n": 5})
    assert pathbook(project, "build", "--no-html") == 1
    message = capsys.readouterr().err
    assert "notebook 'a' failed in cell 6 of a.ipynb" in message
    assert "RuntimeError: asked to fail" in message
    assert outputs(project)["a.ipynb"] == before["a.ipynb"]
    assert (project / "book" / "figures" / "a" / "line.png").read_bytes() == figure
    assert (project / ".pathbook" / "failed" / "a.ipynb").exists()
    assert pathbook(project, "status") == 0
    assert "a: stale" in capsys.readouterr().out, "a failed run must not be recorded as done"


def test_two_jobs_run_notebooks_side_by_side(project, tmp_path):
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    set_profiles(
        project, quick_a={"rendezvous": str(meeting)}, quick_b={"rendezvous": str(meeting)}
    )
    assert pathbook(project, "build", "--no-html", "-j", "2") == 0
    assert sorted(p.name for p in meeting.iterdir()) == ["a", "b"]


def test_run_executes_elsewhere_with_overrides(project, tmp_path, capsys):
    before = outputs(project)
    out = tmp_path / "mine.ipynb"
    assert pathbook(project, "run", "a", "-p", "n", "7", "-o", str(out)) == 0
    assert "n = 7" in out.read_text()
    record = json.loads((tmp_path / "mine-figures" / "line.json").read_text())
    assert record["parameters"]["n"] == 7
    assert outputs(project) == before
    assert pathbook(project, "run", "a", "-p", "m", "7") == 2
    assert "no parameter 'm'" in capsys.readouterr().err


def test_clean_removes_everything_generated(project):
    assert pathbook(project, "clean") == 0
    for folder in ("book/generated", "book/figures", ".pathbook", "_build"):
        assert not (project / folder).exists()
    assert (project / "notebooks" / "a.ipynb").exists()


def test_data_file_or_deleted_figure_makes_a_chapter_stale(project, capsys):
    (project / "data.txt").write_text("new content\n")
    (project / "book" / "figures" / "b" / "line.png").unlink()
    assert pathbook(project, "status") == 0
    out = capsys.readouterr().out
    assert "a: stale: data file data.txt changed" in out
    assert "b: stale: figures missing: line.png" in out


def test_unknown_chapter_and_missing_profiles_file(project, tmp_path, capsys):
    assert pathbook(project, "build", "--only", "nope") == 2
    assert "no notebook named 'nope'" in capsys.readouterr().err
    assert main(["--root", str(tmp_path / "empty"), "status"]) == 2
    assert "profiles.yml" in capsys.readouterr().err


def test_first_failure_reports_no_previous_output_and_skips_html(built, tmp_path, capsys):
    root = Path(shutil.copytree(built, tmp_path / "fresh"))
    shutil.rmtree(root / "book")
    shutil.rmtree(root / ".pathbook")
    set_profiles(root, quick_a={"fail": True})
    assert pathbook(root, "build") == 1
    err = capsys.readouterr().err
    assert "It has no output yet." in err and "HTML not built: no output yet for a" in err
