"""The committed editions: executed chapters that a reader builds the book from without running.

The full profile costs hours of CPU, so its executed chapters are kept in the repository, in
`editions/PROFILE/` (only the profiles in `project.EDITION_PROFILES` have one):

- `NAME.ipynb`: the chapter as published (outputs as executed, pathbook's header). Each figure
  that `save_figure` wrote is also shown in the notebook, with the same PNG bytes; the PNG is
  therefore kept only there, and restored into `book/figures/NAME/` from the notebook.
- `NAME/`: the figures' provenance records, and any figure file the notebook does not show.
- `NAME.run.json`: the run record: fingerprint hash and components (as in the stamp), commit and
  whether the tree was dirty, date, device (type, CPU model, GPU name), wall seconds, peak memory
  of the kernel, pathbook's pipeline and package versions, and the digests of the notebook and of
  each figure (an entry whose files do not match its record is not used).

`pathbook build --profile full` takes a chapter from its entry when the entry's fingerprint is
the chapter's fingerprint now, and saves each chapter it executes into the edition;
`--no-execute` publishes every entry whatever its age, with a header that says when the code
changed since (`header_note`). Written files are replaced atomically; `NAME.run.json` last.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat

from .fingerprint import PIPELINE_VERSION, _digest, explain_changes, fingerprint
from .project import EDITION_PROFILES, Chapter, PathbookError, Project
from .prose import HEADER_TAG, insert_header, merge_text, present_parameters

if TYPE_CHECKING:
    from .build import Plan
    from .execute import Outcome

FORMAT = 1  # of NAME.run.json
EDITION_MARK = "% pathbook-edition"  # a MyST comment: where the edition's note starts in a header
DISTRIBUTION = "critical-pathways-companion"


def has_edition(profile: str) -> bool:
    return profile in EDITION_PROFILES


def refresh_command(profile: str, names: list[str]) -> str:
    return f"pathbook build --profile {profile} --only {' '.join(names)}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_digest(text: str) -> str:
    """The digest of a notebook's content (its JSON, whatever the file's line endings)."""
    return _sha256(json.dumps(json.loads(text), sort_keys=True).encode())


def components_hash(components: dict[str, Any]) -> str:
    return _digest(components)[:16]


def embedded_pngs(nb: nbformat.NotebookNode) -> dict[str, bytes]:
    """Every PNG the notebook's outputs show, by the sha256 of its bytes."""
    images = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}).get("image/png")
            if data:
                png = base64.b64decode("".join(data) if isinstance(data, list) else data)
                images[_sha256(png)] = png
    return images


@dataclass
class Entry:
    """One chapter's entry in an edition; `problem` says why it cannot be used."""

    chapter: Chapter
    folder: Path  # editions/PROFILE
    record: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def notebook(self) -> Path:
        return self.folder / f"{self.chapter.name}.ipynb"

    @property
    def figures(self) -> Path:
        return self.folder / self.chapter.name

    @property
    def run(self) -> Path:
        return self.folder / f"{self.chapter.name}.run.json"


def entry_of(project: Project, profile: str, chapter: Chapter) -> Entry:
    return Entry(chapter, project.edition_of(profile))


def load(project: Project, profile: str, chapter: Chapter) -> Entry | None:
    """The chapter's entry (None when it has none); a damaged one comes with its `problem`."""
    entry = entry_of(project, profile, chapter)
    if not entry.run.is_file():
        return None
    try:
        entry.record = json.loads(entry.run.read_text())
        if entry.record.get("format") != FORMAT:
            entry.problem = f"{entry.run.name} has format {entry.record.get('format')!r}"
        elif not entry.notebook.is_file():
            entry.problem = f"{entry.notebook.name} is missing"
        elif notebook_digest(entry.notebook.read_text()) != entry.record["notebook_sha256"]:
            entry.problem = f"{entry.notebook.name} does not match {entry.run.name}"
    except (OSError, ValueError, KeyError) as error:
        entry.problem = f"{entry.run.name} is unreadable ({error})"
    return entry


@dataclass
class Comparison:
    """An entry against the chapter as it is now."""

    current: bool  # same fingerprint hash: the entry is what a run now would compute
    files: list[str]  # the files changed since the entry's run: its code, library, data
    others: list[str]  # other changes: parameters, package versions, the pipeline


def compare(project: Project, item: Plan, entry: Entry) -> Comparison:
    """The chapter's fingerprint now (with the library modules the entry's run loaded) against
    the entry's."""
    old = entry.record["components"]
    try:
        now = fingerprint(
            project, item.chapter, item.parameters, item.core_files, entry.record.get("modules")
        )["components"]
    except PathbookError as error:  # e.g. a data file's package is not installed here
        return Comparison(False, [], [f"cannot compare ({error})"])
    if components_hash(now) == entry.record["hash"]:
        return Comparison(True, [], [])
    files = []
    if old.get("notebook") != now["notebook"]:
        files.append(Path(os.path.relpath(item.chapter.source, project.root)).as_posix())
    before, after = old.get("pathlib_core"), now["pathlib_core"]
    if isinstance(before, dict) and isinstance(after, dict):
        files += [
            f"pathlib_core/{f}"
            for f in sorted(set(before) | set(after))
            if before.get(f) != after.get(f)
        ]
    elif before != after:
        files.append("pathlib_core/")
    old_data = old.get("data", {})
    files += [
        e for e in sorted(set(old_data) | set(now["data"])) if old_data.get(e) != now["data"].get(e)
    ]
    skip = ("notebook code cells", "pathlib_core ", "data file ")
    others = [r for r in explain_changes(old, now) if not r.startswith(skip)]
    return Comparison(False, files, others)


def describe(comparison: Comparison) -> str:
    """What changed since an entry's run, in one line."""
    parts = []
    if comparison.files:
        parts.append(", ".join(comparison.files))
    parts += comparison.others
    return "; ".join(parts) or "its fingerprint changed"


# --- what ran where --------------------------------------------------------------------------


def _git(project: Project, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=project.root, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit_of(project: Project) -> dict[str, Any] | None:
    """The checked-out commit and whether tracked files differ from it (the editions aside)."""
    sha = _git(project, "rev-parse", "HEAD")
    if not sha:
        return None
    changes = _git(
        project, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)editions"
    )
    return {"sha": sha, "dirty": bool(changes) if changes is not None else None}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_of(project: Project, chapter: Chapter, device: str | None) -> dict[str, Any]:
    """The chapter's device (its `device` parameter; none: the CPU), the CPU model, and the GPU's
    name for CUDA (from the figures' provenance, which the kernel recorded, else torch)."""
    kind = (device or "cpu").partition(":")[0]
    record: dict[str, Any] = {"type": kind, "parameter": device, "cpu": cpu_model()}
    if kind == "cuda":
        for path in sorted(project.figures_of(chapter).glob("*.json")):
            try:
                name = json.loads(path.read_text()).get("device", {}).get("name")
            except (OSError, ValueError, AttributeError):
                name = None
            if name:
                record["gpu"] = name
                break
        else:
            try:
                import torch

                record["gpu"] = torch.cuda.get_device_name(device)
            except Exception:  # no torch, no GPU here: the record says what it knows
                pass
    return record


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# --- saving ----------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    from pathlib_core.cache import atomic_write

    atomic_write(path, lambda fh: fh.write(data))


def _swap(new: Path, destination: Path) -> None:
    from .execute import _swap_folder

    _swap_folder(new, destination)


def _header_text(cell: nbformat.NotebookNode) -> str:
    """A header's own text, without an edition's note."""
    return cell.source.split("\n\n" + EDITION_MARK)[0]


def save(
    project: Project,
    item: Plan,
    profile: str,
    seconds: float | None = None,
    peak_memory: int | None = None,
    commit: dict[str, Any] | None | str = "now",
) -> Entry:
    """Copy the chapter's published notebook and figures (`book/`) into the edition, with its run
    record made from the stamp; `commit="now"` records the checkout's commit."""
    chapter = item.chapter
    stamp = json.loads(project.stamp_of(chapter).read_text())
    entry = entry_of(project, profile, chapter)
    nb = nbformat.read(project.output_of(chapter), as_version=4)
    for cell in nb.cells:  # the edition keeps the header as executed; the note is added on use
        if HEADER_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = _header_text(cell)
    text = nbformat.writes(nb)
    shown = embedded_pngs(nb)
    figures: dict[str, dict[str, str]] = {}
    staging = entry.folder / f".{chapter.name}.new-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        for path in sorted(project.figures_of(chapter).glob("*")):
            if not path.is_file():
                continue
            data = path.read_bytes()
            digest = _sha256(data)
            in_notebook = path.suffix == ".png" and digest in shown
            figures[path.name] = {"sha256": digest, "stored": "notebook" if in_notebook else "file"}
            if not in_notebook:
                shutil.copy2(path, staging / path.name)
        if any(staging.iterdir()):
            _swap(staging, entry.figures)
        else:
            shutil.rmtree(staging)
            shutil.rmtree(entry.figures, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _write(entry.notebook, text.encode())
    components = stamp["components"]
    entry.record = {
        "format": FORMAT,
        "chapter": chapter.name,
        "profile": profile,
        "hash": components_hash(components),  # compared with the chapter's fingerprint now
        "content_hash": stamp["hash"],  # the one the page and the figures show
        "components": components,
        "modules": stamp.get("modules"),
        "prose": stamp.get("prose"),
        "parameters": item.shown,
        "commit": commit_of(project) if commit == "now" else commit,
        "date": stamp.get("executed_at"),
        "device": device_of(project, chapter, stamp.get("device")),
        "seconds": round(seconds if seconds is not None else stamp.get("seconds", 0.0), 1),
        "peak_memory_bytes": peak_memory
        if peak_memory is not None
        else stamp.get("peak_memory_bytes"),
        "pathbook": {"pipeline": PIPELINE_VERSION, "version": _version()},
        "notebook_sha256": notebook_digest(text),
        "figures": figures,
    }
    _write(entry.run, (json.dumps(entry.record, indent=1) + "\n").encode())
    return entry


def save_run(project: Project, item: Plan, profile: str, outcome: Outcome) -> Entry:
    """After a successful run (its stamp written): save it and publish it with its note."""
    entry = save(project, item, profile, outcome.seconds, outcome.peak_memory)
    publish(project, item, entry, Comparison(True, [], []), figures=False)
    return entry


# --- using an entry --------------------------------------------------------------------------


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def machine(record: dict[str, Any]) -> str:
    """A run record's device in words: "cpu (AMD EPYC)", "cuda (NVIDIA H200)"."""
    device = record.get("device") or {}
    detail = device.get("gpu") or device.get("cpu")
    kind = device.get("type", "cpu")
    return f"{kind} ({detail})" if detail else kind


def summary(record: dict[str, Any]) -> str:
    """Where and when an entry was computed, in one line."""
    commit = record.get("commit")
    if commit:
        where = f"commit {commit['sha'][:12]}" + (
            " with uncommitted changes" if commit.get("dirty") else ""
        )
    else:
        where = "an unknown commit"
    parts = [f"{where}, {(record.get('date') or 'an unknown date')[:10]}, {machine(record)}"]
    if record.get("seconds"):
        parts.append(duration(record["seconds"]))
    if record.get("peak_memory_bytes"):
        parts.append(f"peak memory {record['peak_memory_bytes'] / 1e9:.1f} GB")
    return ", ".join(parts)


def header_note(entry: Entry, comparison: Comparison) -> str:
    """The note a chapter from an edition gets under pathbook's header."""
    profile = entry.record.get("profile", entry.folder.name)
    rel = f"editions/{entry.folder.name}/{entry.chapter.name}.ipynb"
    text = (
        f"{EDITION_MARK}\n:::{{note}}\nThese results are the committed `{profile}` edition "
        f"(`{rel}`), computed at {summary(entry.record)}.\n:::"
    )
    if not comparison.current:
        changed = (
            f"The code changed since this run: {', '.join(f'`{f}`' for f in comparison.files)}."
            if comparison.files
            else "The chapter's fingerprint changed since this run."
        )
        others = f" Also: {'; '.join(comparison.others)}." if comparison.others else ""
        text += (
            f"\n\n:::{{warning}}\nOlder than the code. {changed}{others} The outputs below are "
            f"from the older code; refresh them with "
            f"`{refresh_command(profile, [entry.chapter.name])}`.\n:::"
        )
    return text


def _with_note(nb: nbformat.NotebookNode, note: str) -> None:
    for cell in nb.cells:
        if HEADER_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = _header_text(cell) + "\n\n" + note
            return
    header = nbformat.v4.new_markdown_cell(note)
    header.metadata["tags"] = [HEADER_TAG]
    insert_header(nb, header)


def _figure_bytes(entry: Entry, nb: nbformat.NotebookNode) -> dict[str, bytes]:
    shown = embedded_pngs(nb)
    files = {}
    for name, figure in entry.record.get("figures", {}).items():
        if figure["stored"] == "notebook":
            data = shown.get(figure["sha256"])
        else:
            path = entry.figures / name
            data = path.read_bytes() if path.is_file() else None
        if data is None or _sha256(data) != figure["sha256"]:
            raise PathbookError(
                f"edition entry {entry.chapter.name!r}: figure {name} is missing or differs from "
                f"{entry.run.name}; refresh it: "
                f"{refresh_command(entry.folder.name, [entry.chapter.name])}"
            )
        files[name] = data
    return files


def publish(
    project: Project, item: Plan, entry: Entry, comparison: Comparison, figures: bool = True
) -> bool:
    """Write the entry into the book: `book/generated/NAME.ipynb` with the edition's note in its
    header (the source's text merged in when its code cells are the entry's), and, with
    `figures`, `book/figures/NAME/` and the stamp. Returns whether the source's text was merged."""
    from .execute import atomic_write_text

    chapter = item.chapter
    try:
        nb, merged = merge_text(chapter.source, entry.notebook), True
    except PathbookError:  # its code changed since: the page is the entry's, as it ran
        nb, merged = nbformat.read(entry.notebook, as_version=4), False
        present_parameters(nb)
    _with_note(nb, header_note(entry, comparison))
    output = project.output_of(chapter)
    text = nbformat.writes(nb)
    if not output.is_file() or output.read_text() != text:
        atomic_write_text(output, text)
    if not figures:
        return merged
    wanted = _figure_bytes(entry, nb)
    folder = project.figures_of(chapter)
    have = {p.name: p.read_bytes() for p in folder.glob("*") if p.is_file()}
    if have != wanted:
        staging = project.state / "tmp" / f"{chapter.name}-edition-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        for name, data in wanted.items():
            (staging / name).write_bytes(data)
        _swap(staging, folder)
    record = entry.record
    stamp = {
        "profile": record["profile"],
        "device": record.get("device", {}).get("parameter"),
        "hash": record["content_hash"],
        "prose": item.fingerprint["prose"] if merged else record.get("prose"),
        "components": record["components"],
        "modules": record.get("modules"),
        "executed_at": record.get("date"),
        "seconds": record.get("seconds", 0.0),
        "peak_memory_bytes": record.get("peak_memory_bytes"),
        "figures": sorted(wanted),
        "edition": entry.run.relative_to(project.root).as_posix(),
    }
    atomic_write_text(project.stamp_of(chapter), json.dumps(stamp, indent=1))
    return merged


def take_current(project: Project, plans: list[Plan], profile: str) -> dict[str, Entry]:
    """`build`: publish each stale chapter whose entry is what a run now would compute, instead
    of running it (the plan is then up to date); returns those entries by chapter name."""
    taken = {}
    for item in plans:
        if not item.stale or item.reasons == ["--force"]:
            continue
        entry = load(project, profile, item.chapter)
        if entry is None or entry.problem or not compare(project, item, entry).current:
            continue
        publish(project, item, entry, Comparison(True, [], []))
        item.reasons, item.text_changed = [], False
        taken[item.chapter.name] = entry
    return taken


def adopt_local(project: Project, plans: list[Plan], profile: str) -> list[str]:
    """`build`: a chapter up to date in `book/` with this profile but not in the edition (run
    before the edition existed, or its entry removed) is saved into it as it is."""
    adopted = []
    for item in plans:
        if item.stale:
            continue
        stamp = json.loads(project.stamp_of(item.chapter).read_text())
        if stamp.get("profile") != profile or stamp.get("edition"):
            continue
        entry = load(project, profile, item.chapter)
        if (
            entry is not None
            and not entry.problem
            and entry.record["hash"] == components_hash(stamp["components"])
        ):
            continue
        entry = save(project, item, profile, commit=None)  # the commit it ran at is unknown
        publish(project, item, entry, Comparison(True, [], []), figures=False)
        stamp["edition"] = entry.run.relative_to(project.root).as_posix()
        from .execute import atomic_write_text

        atomic_write_text(project.stamp_of(item.chapter), json.dumps(stamp, indent=1))
        adopted.append(item.chapter.name)
    return adopted


def publish_all(project: Project, plans: list[Plan], profile: str) -> list[str]:
    """`build --no-execute`: publish every selected chapter from the edition, whatever its age;
    returns one line per chapter. A chapter without a usable entry stops everything first."""
    entries = {item.chapter.name: load(project, profile, item.chapter) for item in plans}
    missing = [name for name, entry in entries.items() if entry is None or entry.problem]
    if missing:
        problems = [
            f"  {name}: {entries[name].problem}"  # type: ignore[union-attr]
            for name in missing
            if entries[name] is not None
        ]
        raise PathbookError(
            f"no usable entry in {project.edition_of(profile).relative_to(project.root)}/ for "
            f"{', '.join(missing)}; nothing was executed. Make "
            f"{'it' if len(missing) == 1 else 'them'} with: {refresh_command(profile, missing)}"
            + ("\n" + "\n".join(problems) if problems else "")
        )
    lines = []
    for item in plans:
        entry = entries[item.chapter.name]
        assert entry is not None
        comparison = compare(project, item, entry)
        publish(project, item, entry, comparison)
        state = (
            "up to date" if comparison.current else f"older than the code: {describe(comparison)}"
        )
        lines.append(f"{item.chapter.name}: from the edition ({summary(entry.record)}), {state}")
    return lines


def status_line(project: Project, item: Plan, profile: str) -> str:
    """`status`: the chapter's entry in the edition, in one line."""
    entry = load(project, profile, item.chapter)
    command = refresh_command(profile, [item.chapter.name])
    if entry is None:
        return f"missing (make it: {command})"
    if entry.problem:
        return f"unusable: {entry.problem} (remake it: {command})"
    comparison = compare(project, item, entry)
    if comparison.current:
        return f"in the edition and up to date ({summary(entry.record)})"
    return f"in the edition but older than the code: {describe(comparison)}"
