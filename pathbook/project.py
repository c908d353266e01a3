"""The book project on disk: where things live and what `notebooks/profiles.yml` declares."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("quick", "full")
PROFILES_FILE = Path("notebooks") / "profiles.yml"
DEFAULT_CELL_TIMEOUT = 3600  # seconds one cell may run before the chapter counts as failed
MEMORY_PER_JOB_GIB = 4  # a quick chapter peaks near 3 GB; the full profile's need more (-j 1)


def default_jobs() -> int:
    """Chapters run at once by default: one per core, at most one per MEMORY_PER_JOB_GIB of RAM."""
    cores = os.cpu_count() or 1
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): trust the cores
        return cores
    return max(1, min(cores, int(memory // (MEMORY_PER_JOB_GIB * 2**30))))


class PathbookError(Exception):
    """An error a user can fix; the message says how. The CLI prints it without a traceback."""


@dataclass(frozen=True)
class Chapter:
    """One notebook of the book and its parameters for each profile."""

    name: str
    source: Path
    profiles: dict[str, dict[str, Any]]
    data: tuple[str, ...] = ()
    timeout: int = DEFAULT_CELL_TIMEOUT

    def parameters(self, profile: str) -> dict[str, Any]:
        if profile not in self.profiles:
            raise PathbookError(
                f"notebook {self.name!r} has no profile {profile!r} in {PROFILES_FILE}; "
                f"it has {sorted(self.profiles)}. Add a '{profile}:' entry (empty means the "
                "defaults)."
            )
        return dict(self.profiles[profile] or {})


@dataclass(frozen=True)
class Project:
    """Paths of one checkout. Everything pathbook writes stays under `root`."""

    root: Path
    chapters: dict[str, Chapter] = field(default_factory=dict)

    @property
    def generated(self) -> Path:
        return self.root / "book" / "generated"

    @property
    def figures(self) -> Path:
        return self.root / "book" / "figures"

    @property
    def state(self) -> Path:
        return self.root / ".pathbook"

    @property
    def html(self) -> Path:
        return self.root / "_build" / "html"

    def output_of(self, chapter: Chapter) -> Path:
        return self.generated / f"{chapter.name}.ipynb"

    def stamp_of(self, chapter: Chapter) -> Path:
        return self.state / "stamps" / f"{chapter.name}.json"

    def figures_of(self, chapter: Chapter) -> Path:
        return self.figures / chapter.name

    def chapter(self, name: str) -> Chapter:
        if name not in self.chapters:
            raise PathbookError(
                f"no notebook named {name!r} in {PROFILES_FILE}; known: {', '.join(self.chapters)}."
            )
        return self.chapters[name]


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def coerce_number(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` as a string; read such a string as the float it is."""
    return float(value) if isinstance(value, str) and _FLOAT.match(value) else value


def _numbers_as_numbers(values: Any) -> Any:
    if not isinstance(values, dict):
        return values
    return {key: coerce_number(value) for key, value in values.items()}


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` that holds `notebooks/profiles.yml`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROFILES_FILE).is_file():
            return folder
    raise PathbookError(
        f"no {PROFILES_FILE} found in {here} or above it; run pathbook inside the project "
        "or pass --root."
    )


def load_project(root: Path | None = None) -> Project:
    """Read `notebooks/profiles.yml` under `root` (found from the working folder if not given).

    The file maps each notebook name to `quick:` and `full:` parameter sets and, optionally,
    `data:`, a list of files (paths relative to the root, or `pkg://package/path`) whose content
    the chapter depends on, and `timeout:`, the seconds one cell may run (default 3600).
    """
    root = find_root(root) if root is None else Path(root).resolve()
    spec_path = root / PROFILES_FILE
    if not spec_path.is_file():
        raise PathbookError(f"{spec_path} does not exist; create it to list the book's notebooks.")
    try:
        spec = yaml.safe_load(spec_path.read_text()) or {}
    except yaml.YAMLError as error:
        raise PathbookError(f"{spec_path} is not valid YAML: {error}") from None
    entries = spec.get("notebooks")
    if not isinstance(entries, dict) or not entries:
        raise PathbookError(f"{spec_path} needs a 'notebooks:' mapping of name -> settings.")
    chapters = {}
    for name, entry in entries.items():
        entry = entry or {}
        unknown = set(entry) - {"path", "data", "timeout", *PROFILES}
        if unknown:
            raise PathbookError(
                f"{spec_path}: notebook {name!r} has unknown keys {sorted(unknown)}; "
                f"allowed: path, data, timeout, {', '.join(PROFILES)}."
            )
        source = root / entry.get("path", f"notebooks/{name}.ipynb")
        if not source.is_file():
            raise PathbookError(
                f"{spec_path}: notebook {name!r} points to {source}, which is missing."
            )
        profiles = {p: _numbers_as_numbers(entry.get(p) or {}) for p in PROFILES}
        for profile, params in profiles.items():
            if not isinstance(params, dict):
                raise PathbookError(
                    f"{spec_path}: {name}.{profile} must be a mapping of parameter -> value."
                )
        timeout = entry.get("timeout", DEFAULT_CELL_TIMEOUT)
        if not isinstance(timeout, int) or timeout <= 0:
            raise PathbookError(
                f"{spec_path}: {name}.timeout must be a positive number of "
                f"seconds per cell, got {timeout!r}."
            )
        chapters[name] = Chapter(name, source, profiles, tuple(entry.get("data") or ()), timeout)
    return Project(root, chapters)
