"""`pathbook cache`: what the saved pieces weigh, and removing them.

Two places hold saved work: the `pathlib_core` cache folder (trained models, attribution maps,
resumable chunks, ...) and the project's own `.pathbook/` folder (build stamps, runs, logs). This
module only walks folders; it imports neither torch nor `pathlib_core`, so `pathbook cache` answers
at once.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "PATHLIB_CORE_CACHE"
STATE_KIND = "pathbook"  # the kind naming the project's `.pathbook/` folder

# A file saved at the top of the cache is NAME-KEY.ext (e.g. mnist_cnn-af09e072cd58b659.pt).
_KEYED = re.compile(r"^(?P<kind>.+?)-[0-9a-f]{8,}$")


def cache_folder() -> Path:
    """The `pathlib_core` cache folder, by the rule of `pathlib_core.cache.cache_dir`.

    Repeated here (without creating the folder) so that reading the cache needs no torch:
    `$PATHLIB_CORE_CACHE`, else `$XDG_CACHE_HOME/pathlib_core`, else `~/.cache/pathlib_core`.
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "pathlib_core"


@dataclass
class Kind:
    """One kind of saved piece: its name, the paths that hold it, their file count and bytes."""

    name: str
    paths: list[Path] = field(default_factory=list)
    files: int = 0
    size: int = 0

    def where(self) -> str:
        """The folder, or the file pattern when the kind is a family of top-level files."""
        if len(self.paths) == 1 and self.paths[0].is_dir():
            return str(self.paths[0])
        return str(self.paths[0].parent / f"{self.name}-*") if self.paths else ""


def _measure(path: Path) -> tuple[int, int]:
    """Files and bytes under `path`, symbolic links counted as themselves and never followed."""
    if not path.is_dir() or path.is_symlink():
        return 1, path.lstat().st_size
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            files += 1
            size += (Path(folder) / name).lstat().st_size
    return files, size


def kind_of(entry: Path) -> str:
    """The kind of a top-level cache entry: a folder's name, or a file's name before its key."""
    if entry.is_dir():
        return entry.name
    stem = entry.name.split(".", 1)[0]
    match = _KEYED.match(stem)
    return match["kind"] if match else stem


def survey(cache: Path, state: Path | None = None) -> dict[str, Kind]:
    """Every kind present in `cache`, by name, plus the project's `state` folder if it exists."""
    kinds: dict[str, Kind] = {}
    if cache.is_dir():
        for entry in sorted(cache.iterdir()):
            kind = kinds.setdefault(kind_of(entry), Kind(kind_of(entry)))
            files, size = _measure(entry)
            kind.paths.append(entry)
            kind.files += files
            kind.size += size
    if state is not None and state.is_dir():
        files, size = _measure(state)
        kinds[STATE_KIND] = Kind(STATE_KIND, [state], files, size)
    return kinds


def human(size: int) -> str:
    """A byte count as people read it (1.5 MB)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def describe(cache: Path, state: Path | None = None) -> list[str]:
    """The lines of `pathbook cache info`."""
    kinds = survey(cache, state)
    lines = [f"pathlib_core cache: {cache}" + ("" if cache.is_dir() else " (does not exist)")]
    width = max((len(k) for k in kinds), default=0)
    for kind in kinds.values():
        lines.append(
            f"  {kind.name:<{width}}  {kind.files:>6} files  {human(kind.size):>9}  {kind.where()}"
        )
    if state is None:
        lines.append("pathbook state: no project found (pass --root to include its .pathbook/)")
    elif STATE_KIND not in kinds:
        lines.append(f"  {STATE_KIND:<{width}}  (no {state} yet)")
    total = sum(k.size for k in kinds.values())
    lines.append(f"total: {human(total)} in {sum(k.files for k in kinds.values())} files")
    return lines


def clear(cache: Path, state: Path | None, kind: str | None = None) -> list[str]:
    """Remove one kind (or every kind when `kind` is None); return lines saying what was freed.

    Raises ValueError naming the kinds present when `kind` is not one of them.
    """
    kinds = survey(cache, state)
    if kind is not None and kind not in kinds:
        known = ", ".join(kinds) or "none: the cache is empty"
        raise ValueError(f"no saved pieces of kind {kind!r}; kinds present: {known}.")
    chosen = [kinds[kind]] if kind is not None else list(kinds.values())
    lines = []
    for item in chosen:
        for path in item.paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        note = " (the next build reruns every chapter)" if item.name == STATE_KIND else ""
        lines.append(f"removed {item.name}: {item.files} files, {human(item.size)}{note}")
    freed = sum(item.size for item in chosen)
    lines.append(f"freed {human(freed)}" if chosen else "nothing to clear")
    return lines
