"""The book project on disk: where things live and what `notebooks/profiles.yml` declares.

Profiles: `quick` and `full` are each chapter's own entries; a profile named in `BASE_PROFILE`
starts from another profile's parameters and applies its own entry on top (`paper` = `full` +
`paper:`; a chapter without a `paper:` entry runs its `full` parameters). A value may reference
an environment variable as `${NAME}`, the whole value or inside a string; every variable a
profile references names a folder and is described in the top-level `environment:` section, which
the error for an unset variable quotes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES = ("quick", "full", "paper")
# profile -> the profile whose parameters it starts from (its own entry is applied on top)
BASE_PROFILE = {"paper": "full"}
# the profiles whose executed chapters are committed, in editions/PROFILE/ (see pathbook.edition)
EDITION_PROFILES = ("full",)
EDITIONS = "editions"
ENVIRONMENT_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
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
    seconds: dict[str, float] = field(default_factory=dict)  # measured run time, by profile

    def declared(self, profile: str) -> dict[str, Any]:
        """The profile's parameters as written, `${NAME}` references unexpanded: its base
        profile's (see `BASE_PROFILE`) with its own entry on top."""
        if profile not in self.profiles:
            raise PathbookError(
                f"notebook {self.name!r} has no profile {profile!r} in {PROFILES_FILE}; "
                f"it has {sorted(self.profiles)}. Add a '{profile}:' entry (empty means the "
                "defaults)."
            )
        base = BASE_PROFILE.get(profile)
        inherited = self.declared(base) if base is not None else {}
        return {**inherited, **(self.profiles[profile] or {})}

    def variables(self, profile: str) -> list[str]:
        """The environment variables the profile's parameters reference, in order."""
        return list(dict.fromkeys(_references(self.declared(profile))))

    def parameters(self, profile: str) -> dict[str, Any]:
        """The profile's parameters with `${NAME}` expanded from the environment.

        Raises PathbookError for an unset variable; `Project.require_environment` checks the
        variables of many chapters at once, with the layout each one needs.
        """
        unset = [v for v in self.variables(profile) if not os.environ.get(v)]
        if unset:
            raise PathbookError(
                f"notebook {self.name!r}, profile {profile!r}: set the environment variable(s) "
                f"{', '.join(unset)} (see 'environment:' in {PROFILES_FILE})."
            )
        return _expand(self.declared(profile))


@dataclass(frozen=True)
class Project:
    """Paths of one checkout. Everything pathbook writes stays under `root`."""

    root: Path
    chapters: dict[str, Chapter] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)  # variable -> its expected layout

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

    def edition_of(self, profile: str) -> Path:
        """The committed edition of a profile in `EDITION_PROFILES`: `editions/PROFILE/`."""
        return self.root / EDITIONS / profile

    def chapter(self, name: str) -> Chapter:
        if name not in self.chapters:
            raise PathbookError(
                f"no notebook named {name!r} in {PROFILES_FILE}; known: {', '.join(self.chapters)}."
            )
        return self.chapters[name]

    def require_environment(self, profile: str, names: Iterable[str] = ()) -> None:
        """Stop before anything runs when a chapter's parameters reference an environment
        variable that is unset or names no folder; the message lists each such variable, the
        chapters that need it and the layout it must have (all chapters when `names` is empty)."""
        needed: dict[str, list[str]] = {}
        for name in list(dict.fromkeys(names)) or list(self.chapters):
            for variable in self.chapter(name).variables(profile):
                needed.setdefault(variable, []).append(name)
        missing = {
            variable: chapters
            for variable, chapters in needed.items()
            if not (os.environ.get(variable) and Path(os.environ[variable]).is_dir())
        }
        if not missing:
            return
        lines = []
        for variable, chapters in missing.items():
            value = os.environ.get(variable)
            state = f"{value} is not a folder" if value else "unset"
            layout = self.environment.get(variable, "a folder")
            lines.append(f"  {variable} ({state}), for {', '.join(chapters)}: {layout}")
        raise PathbookError(
            f"the {profile!r} profile reads data from folders named by environment variables; "
            f"set each of these to an existing folder (export {next(iter(missing))}=/path/to/it) "
            "and rerun:\n" + "\n".join(lines)
        )


_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def coerce_number(value: Any) -> Any:
    """YAML 1.1 reads `1e-3` as a string; read such a string as the float it is."""
    return float(value) if isinstance(value, str) and _FLOAT.match(value) else value


def _numbers_as_numbers(values: Any) -> Any:
    if not isinstance(values, dict):
        return values
    return {key: coerce_number(value) for key, value in values.items()}


def _references(value: Any) -> Iterator[str]:
    """The `${NAME}` references in a parameter value (strings, lists and mappings)."""
    if isinstance(value, str):
        yield from ENVIRONMENT_REFERENCE.findall(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _references(item)


def _expand(value: Any) -> Any:
    """`value` with every `${NAME}` replaced by the variable's value."""
    if isinstance(value, str):
        return ENVIRONMENT_REFERENCE.sub(lambda m: os.environ[m.group(1)], value)
    if isinstance(value, (list, tuple)):
        return [_expand(item) for item in value]
    if isinstance(value, dict):
        return {key: _expand(item) for key, item in value.items()}
    return value


def _environment(spec_path: Path, spec: dict[str, Any]) -> dict[str, str]:
    """The `environment:` section: variable -> the layout its folder must have."""
    section = spec.get("environment") or {}
    if not isinstance(section, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in section.items()
    ):
        raise PathbookError(
            f"{spec_path}: 'environment:' must map each variable name to a description of the "
            'folder it names, e.g. IMAGENET_VAL: "an ImageNet validation folder ...".'
        )
    return section


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

    The file maps each notebook name to `quick:`, `full:` and (optional) `paper:` parameter sets
    and, optionally, `data:`, a list of files (paths relative to the root, or
    `pkg://package/path`) whose content the chapter depends on, `timeout:`, the seconds one
    cell may run (default 3600), and `seconds:`, a measured run time per profile (it orders a
    first build, before any run is recorded, longest first); the top-level `environment:`
    describes the variables that parameters reference as `${NAME}` (see the module's docstring).
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
    environment = _environment(spec_path, spec)
    chapters = {}
    for name, entry in entries.items():
        entry = entry or {}
        unknown = set(entry) - {"path", "data", "timeout", "seconds", *PROFILES}
        if unknown:
            raise PathbookError(
                f"{spec_path}: notebook {name!r} has unknown keys {sorted(unknown)}; "
                f"allowed: path, data, timeout, seconds, {', '.join(PROFILES)}."
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
            undocumented = sorted(set(_references(params)) - set(environment))
            if undocumented:
                raise PathbookError(
                    f"{spec_path}: {name}.{profile} references {', '.join(undocumented)}, "
                    "which the 'environment:' section does not describe; add each variable "
                    "there with the layout of the folder it names."
                )
        timeout = entry.get("timeout", DEFAULT_CELL_TIMEOUT)
        if not isinstance(timeout, int) or timeout <= 0:
            raise PathbookError(
                f"{spec_path}: {name}.timeout must be a positive number of "
                f"seconds per cell, got {timeout!r}."
            )
        seconds = entry.get("seconds") or {}
        if not isinstance(seconds, dict) or not all(
            p in PROFILES and isinstance(v, int | float) and v > 0 for p, v in seconds.items()
        ):
            raise PathbookError(
                f"{spec_path}: {name}.seconds must map profiles to a measured run time in "
                f"seconds (e.g. 'seconds: {{quick: 120}}'), got {seconds!r}."
            )
        chapters[name] = Chapter(
            name, source, profiles, tuple(entry.get("data") or ()), timeout, dict(seconds)
        )
    return Project(root, chapters, environment)
