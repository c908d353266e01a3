"""The command line: fast help without torch or the extras, defaults shown, chapter names, the
install hint for a missing extra, and `pathbook cache`."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pathbook import caches
from pathbook.cli import main

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "pathlib_core", "papermill", "jupyter_book", "nbformat")

# Run pathbook's main with some top-level modules made unimportable (None in sys.modules), then
# report which of the heavy modules ended up imported (on stderr, after pathbook's own output).
BLOCKED_MAIN = textwrap.dedent(
    """
    import sys

    for name in set(sys.argv[1].split(",")) - {""}:
        sys.modules[name] = None  # absent: import fails, find_spec gives None

    from pathbook.cli import main
    try:
        code = main(sys.argv[2:])
    except SystemExit as stop:
        code = stop.code or 0
    loaded = sorted(m for m in HEAVY_MODULES if sys.modules.get(m) is not None)
    print("IMPORTED:" + ",".join(loaded), file=sys.stderr)
    sys.exit(code)
    """
).replace("HEAVY_MODULES", repr(HEAVY))


def pathbook(*args: str, blocked: tuple[str, ...] = (), cwd: Path = REPO):
    """Run the command in a fresh interpreter; returns (exit code, stdout, stderr, imported)."""
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_MAIN, ",".join(blocked), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    marker = done.stderr.rfind("IMPORTED:")
    assert marker >= 0, done.stderr
    imported = [m for m in done.stderr[marker + len("IMPORTED:") :].strip().split(",") if m]
    return done.returncode, done.stdout, done.stderr[:marker], imported


@pytest.mark.parametrize("option", ["--help", "--version"])
def test_help_and_version_import_nothing_heavy(option):
    code, out, err, imported = pathbook(option)
    assert code == 0, err
    assert imported == []
    if option == "--version":
        version = importlib.metadata.version("critical-pathways-companion")
        assert out == f"pathbook {version} (critical-pathways-companion)\n"


def test_help_works_with_the_extras_and_torch_unimportable():
    blocked = ("papermill", "jupyter_book", "nbformat", "torch")
    for args in (["--help"], ["run", "--help"], ["build", "--help"], ["classroom", "--help"]):
        code, out, err, imported = pathbook(*args, blocked=blocked)
        assert code == 0, err
        assert "usage: pathbook" in out and imported == []


def test_python_dash_m_pathbook():
    done = subprocess.run(
        [sys.executable, "-m", "pathbook", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: pathbook ")
    assert "cache" in done.stdout and "classroom" in done.stdout


def test_a_command_needing_the_book_extra_says_what_to_install():
    code, out, err, _ = pathbook("status", blocked=("papermill", "nbformat", "jupyter_book"))
    assert code == 2
    assert 'pip install -e ".[book]"' in err
    assert "Traceback" not in err


def test_build_without_jupyter_book_names_the_extra_before_running_anything(tmp_path):
    code, out, err, imported = pathbook("build", blocked=("jupyter_book",))
    assert code == 2 and 'pip install -e ".[book]"' in err and "--no-html" in err
    assert "torch" not in imported  # refused before anything heavy was loaded


def _help(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*args, "--help"])
    assert stop.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere


def test_help_shows_defaults(capsys):
    grade = _help(capsys, "classroom", "grade")
    assert "seconds one cell may run (default: 120)" in grade
    assert "seconds one submission may run in all (default: 900)" in grade
    assert "(default: 1)" in grade and "(default: classroom/scores.csv)" in grade
    build = _help(capsys, "build")
    assert "notebooks executed at once (default: one per core, at most one per 4 GiB" in build
    assert "parameter set (default: quick)" in build
    assert "(default: all)" in build
    run = _help(capsys, "run")
    assert "(default: quick)" in run and "(default: .pathbook/runs/NAME.ipynb)" in run
    assert "(default: None)" not in run + build + grade


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with two chapters, alpha and beta (the notebooks are never opened here)."""
    (tmp_path / "notebooks").mkdir()
    for name in ("alpha", "beta"):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text("{}")
    (tmp_path / "notebooks" / "profiles.yml").write_text(
        "notebooks:\n  alpha:\n    quick: {}\n  beta:\n    quick: {}\n"
    )
    return tmp_path


def test_run_and_build_help_list_the_chapters(project, capsys):
    assert "one of alpha, beta" in _help(capsys, "--root", str(project), "run")
    assert "among: alpha, beta" in _help(capsys, f"--root={project}", "build")
    names = ", ".join(["getting_started", "pruning_vs_contribution"])
    assert names in _help(capsys, "--root", str(REPO), "run")


def test_help_outside_a_project_still_works(tmp_path, capsys):
    text = _help(capsys, "--root", str(tmp_path / "nowhere"), "run")
    assert "the names in notebooks/profiles.yml" in text


def test_an_unknown_chapter_is_refused_with_the_valid_names(project, capsys):
    assert main(["--root", str(project), "run", "gamma"]) == 2
    err = capsys.readouterr().err
    assert "'gamma'" in err and "alpha, beta" in err
    assert main(["--root", str(project), "build", "--only", "gamma", "--no-html"]) == 2
    assert "alpha, beta" in capsys.readouterr().err


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    """A pathlib_core cache of three kinds: a folder of maps, chunks, and keyed model files."""
    folder = tmp_path / "cache"
    (folder / "attributions").mkdir(parents=True)
    (folder / "attributions" / "roar-0123456789abcdef.pt").write_bytes(b"a" * 3000)
    (folder / "chunks" / "maps-0123456789abcdef").mkdir(parents=True)
    (folder / "chunks" / "maps-0123456789abcdef" / "result.pt").write_bytes(b"c" * 500)
    (folder / "mnist_cnn-af09e072cd58b659.pt").write_bytes(b"m" * 2000)
    (folder / "mnist_cnn-af09e072cd58b659.json").write_bytes(b"{}")
    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(folder))
    return folder


def test_cache_info_groups_by_kind_with_sizes(cache, project, capsys):
    (project / ".pathbook" / "stamps").mkdir(parents=True)
    (project / ".pathbook" / "stamps" / "alpha.json").write_bytes(b"s" * 100)
    assert main(["--root", str(project), "cache", "info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"pathlib_core cache: {cache}"
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert set(rows) == {"attributions", "chunks", "mnist_cnn", "pathbook"}
    assert rows["attributions"][1:5] == ["1", "files", "3.0", "kB"]
    assert rows["mnist_cnn"][1:5] == ["2", "files", "2.0", "kB"]
    assert rows["mnist_cnn"][5] == str(cache / "mnist_cnn-*")
    assert rows["pathbook"][1:5] == ["1", "files", "100", "B"]
    assert lines[-1] == "total: 5.6 kB in 5 files"


def test_cache_clear_one_kind_then_everything(cache, project, capsys):
    (project / ".pathbook").mkdir()
    (project / ".pathbook" / "log.txt").write_text("x")
    assert main(["--root", str(project), "cache", "clear", "mnist_cnn"]) == 0
    out = capsys.readouterr().out
    assert "removed mnist_cnn: 2 files, 2.0 kB" in out and "freed 2.0 kB" in out
    assert sorted(p.name for p in cache.iterdir()) == ["attributions", "chunks"]

    assert main(["--root", str(project), "cache", "clear", "gates"]) == 2
    err = capsys.readouterr().err
    assert "'gates'" in err and "attributions, chunks, pathbook" in err
    assert (cache / "attributions").exists()

    assert main(["--root", str(project), "cache", "clear"]) == 0
    assert "freed 3.5 kB" in capsys.readouterr().out
    assert list(cache.iterdir()) == [] and not (project / ".pathbook").exists()
    assert main(["--root", str(project), "cache", "clear"]) == 0
    assert "nothing to clear" in capsys.readouterr().out


def test_cache_folder_follows_pathlib_core_rule(tmp_path, monkeypatch):
    from pathlib_core.cache import cache_dir  # imports torch: only this test pays for it

    monkeypatch.setenv("PATHLIB_CORE_CACHE", str(tmp_path / "explicit"))
    assert caches.cache_folder() == cache_dir()
    monkeypatch.delenv("PATHLIB_CORE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert caches.cache_folder() == cache_dir() == tmp_path / "xdg" / "pathlib_core"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert caches.cache_folder() == cache_dir() == tmp_path / "home" / ".cache" / "pathlib_core"


def test_both_packages_ship_py_typed():
    assert (REPO / "pathbook" / "py.typed").is_file()
    assert (REPO / "pathlib_core" / "py.typed").is_file()
    text = (REPO / "pyproject.toml").read_text()
    assert 'pathbook = ["py.typed"]' in text and 'pathlib_core = ["py.typed"]' in text


def test_build_runs_one_chapter_per_core_as_memory_allows(monkeypatch):
    from pathbook import project

    gib = 2**30
    pages = {"SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(project.os, "sysconf", lambda name: pages.get(name) or pages["phys"])
    monkeypatch.setattr(project.os, "cpu_count", lambda: 8)
    pages["phys"] = 64 * gib // 4096
    assert project.default_jobs() == 8  # cores bind
    pages["phys"] = 24 * gib // 4096
    assert project.default_jobs() == 24 // project.MEMORY_PER_JOB_GIB  # memory binds
    pages["phys"] = 2 * gib // 4096
    assert project.default_jobs() == 1  # never below one
