"""The real book, built once per test session from a clean copy of the checkout (quick profile)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pathbook.cli import main

REPO = Path(__file__).resolve().parents[2]


def clean_copy(destination: Path) -> Path:
    """The files git tracks or would track (untracked but not ignored), nothing generated."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Root of a clean copy after `pathbook build --profile quick -j 2` (HTML with -W)."""
    root = clean_copy(tmp_path_factory.mktemp("book"))
    # What a developer's checkout also holds: tool caches and notes must stay out of the book.
    (root / ".pytest_cache").mkdir()
    (root / ".pytest_cache" / "README.md").write_text("# pytest cache\n")
    (root / "NOTES.md").write_text("# notes\n")
    code = main(["--root", str(root), "build", "--profile", "quick", "-j", "2"])
    assert code == 0, "pathbook build failed on a clean checkout; see the output above"
    return root


@pytest.fixture(scope="session")
def built_edition(tmp_path_factory) -> Path:
    """Root of a clean copy after `pathbook build --profile full --no-execute`: the committed
    full edition's HTML, what the Pages workflow publishes; nothing may be executed."""
    from pathbook import execute

    root = clean_copy(tmp_path_factory.mktemp("edition"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(execute, "execute", _refuse)
        code = main(["--root", str(root), "build", "--profile", "full", "--no-execute"])
    assert code == 0, "pathbook build --no-execute failed on a clean checkout; see above"
    return root


def _refuse(*args, **kwargs):
    raise AssertionError("a build from the edition executed a notebook")
