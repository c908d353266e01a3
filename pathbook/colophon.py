"""Which edition the reader is reading, and what each profile costs, as Markdown fragments in
`book/generated/` written before every HTML build: `edition.md` (a lead) and `colophon.md` (a
table per chapter), from the chapters' stamps and, for a chapter published from an edition, its
run record, both included by the introduction; `costs.md`, from `profiles.yml`'s measured
seconds and the committed edition's run records, included by the reproduce page. They follow the
build and the records, so nobody keeps a hand-written "this is the quick profile" or a table of
timings in step with what was published."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import edition
from .edition import duration
from .project import Project

LEAD = "edition.md"  # the introduction's first lines
NAME = "colophon.md"  # its table, in the introduction's last section
COSTS = "costs.md"  # the reproduce page's table

WHAT = {
    "quick": "small samples that check in minutes that the pipeline still runs and still shows "
    "the methods' behaviour; its numbers are not the papers' scale",
    "full": "the scale of the papers on the data and models this book ships",
    "paper": "the papers' own setting, on data the builder provided",
}


@dataclass
class Row:
    chapter: str
    profile: str
    date: str
    device: str
    seconds: float | None
    peak_memory: int | None
    edition: bool  # whether an edition's run record describes it


def _record(project: Project, stamp: dict[str, Any], name: str) -> dict[str, Any]:
    """The edition's run record of what the page shows: the one it was published from, or the
    entry a run in this checkout saved (same content hash); else nothing."""
    paths = [project.root / stamp["edition"]] if stamp.get("edition") else []
    if stamp.get("profile"):
        paths.append(project.edition_of(stamp["profile"]) / f"{name}.run.json")
    for path in paths:
        if path.is_file():
            record = json.loads(path.read_text())
            if record.get("content_hash") == stamp.get("hash"):
                return record
    return {}


def _row(project: Project, name: str) -> Row:
    chapter = project.chapters[name]
    path = project.stamp_of(chapter)
    stamp: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    record = _record(project, stamp, name)
    device = record.get("device") or edition.device_of(project, chapter, stamp.get("device"))
    return Row(
        chapter=name,
        profile=stamp.get("profile", "unknown"),
        date=(record.get("date") or stamp.get("executed_at") or "")[:10] or "unknown",
        device=edition.machine({"device": device}),
        seconds=record.get("seconds", stamp.get("seconds")),
        peak_memory=record.get("peak_memory_bytes", stamp.get("peak_memory_bytes")),
        edition=bool(record),
    )


def _edition_totals(project: Project, profile: str) -> tuple[int, float]:
    """How many chapters `editions/PROFILE/` holds, and their recorded seconds in all."""
    records = [
        json.loads(path.read_text())
        for path in sorted(project.edition_of(profile).glob("*.run.json"))
    ]
    return len(records), sum(r.get("seconds") or 0.0 for r in records)


def _lead(project: Project, rows: list[Row]) -> str:
    profiles = sorted({row.profile for row in rows})
    if len(profiles) > 1:
        counts = ", ".join(
            f"{sum(r.profile == p for r in rows)} the `{p}` profile" for p in profiles
        )
        return (
            f"**This build mixes profiles** ({counts}): compare numbers across chapters only "
            "within one profile. The table at the end of this page says which chapter ran which."
        )
    profile = profiles[0]
    lead = f"**You are reading the {profile} edition.** Every chapter ran the `{profile}` profile"
    lead += f": {WHAT[profile]}." if profile in WHAT else "."
    if all(row.edition for row in rows):
        folder = project.edition_of(profile).relative_to(project.root).as_posix()
        lead += (
            f" The chapters were computed once and committed (`{folder}/`); this site was built "
            "from them without executing a notebook."
        )
    if profile != "full":
        held, seconds = _edition_totals(project, "full")
        if held:
            lead += (
                f" The full edition, every chapter at the papers' scale, holds {held} of the "
                f"{len(project.chapters)} chapters so far ({duration(seconds)} of computing in "
                "all) and is built with `pathbook build --profile full --no-execute`."
            )
    return lead + (
        " The last section of this page says when and where each chapter ran; "
        "{doc}`/book/reproduce` says what each profile costs and how to rebuild it."
    )


def _memory(value: int | None) -> str:
    return f"{value / 1e9:.1f} GB" if value else "not recorded"


def lead_text(project: Project) -> str:
    """One paragraph for the top of the introduction: which edition this is."""
    return _lead(project, [_row(project, name) for name in project.chapters]) + "\n"


def table_text(project: Project) -> str:
    """Each chapter's profile, date, wall time and peak memory (and device, when they differ),
    with the total."""
    rows = [_row(project, name) for name in project.chapters]
    devices = sorted({row.device for row in rows})
    several = len(devices) > 1
    lines = [
        "| chapter | profile | computed |" + (" on |" if several else "") + " wall time | "
        "peak memory |",
        "|---|---|---|" + ("---|" if several else "") + "---|---|",
    ]
    for row in rows:
        seconds = duration(row.seconds) if row.seconds is not None else "not recorded"
        lines.append(
            f"| {{doc}}`/book/generated/{row.chapter}` | `{row.profile}` | {row.date} | "
            + (f"{row.device} | " if several else "")
            + f"{seconds} | {_memory(row.peak_memory)} |"
        )
    total = sum(row.seconds or 0.0 for row in rows)
    lines += [
        "",
        f"In all, {duration(total)} of computing on {' and '.join(devices)}: each chapter's own "
        "wall time, measured by pathbook around its kernel (chapters may have run side by side). "
        "A chapter that found results saved by an earlier run (attribution maps, trained models, "
        "retrainings) counts only their loading; {doc}`/book/reproduce` says what the long "
        "chapters cost from scratch.",
    ]
    return "\n".join(lines) + "\n"


def costs_text(project: Project) -> str:
    """Per chapter: the `quick` profile's measured time (`profiles.yml`) and the `full` edition's
    run (time, peak memory, device, date), with totals."""
    lines = [
        "| chapter | `quick` | `full`: wall time | `full`: peak memory | `full`: ran on |",
        "|---|---|---|---|---|",
    ]
    quick_total, full_total, held = 0.0, 0.0, 0
    for name, chapter in project.chapters.items():
        quick = chapter.seconds.get("quick")
        quick_total += quick or 0.0
        path = project.edition_of("full") / f"{name}.run.json"
        record = json.loads(path.read_text()) if path.is_file() else None
        if record:
            held += 1
            full_total += record.get("seconds") or 0.0
            full = [
                duration(record["seconds"])
                if record.get("seconds") is not None
                else "not recorded",
                _memory(record.get("peak_memory_bytes")),
                f"{edition.machine(record)}, {(record.get('date') or '')[:10]}",
            ]
        else:
            full = ["not in the edition yet", "", ""]
        lines.append(
            f"| {{doc}}`/book/generated/{name}` | "
            f"{duration(quick) if quick else 'not measured'} | " + " | ".join(full) + " |"
        )
    lines.append(
        f"| **all {len(project.chapters)}** | {duration(quick_total)} | "
        f"{duration(full_total)} ({held} of {len(project.chapters)}) | | |"
    )
    return "\n".join(lines) + "\n"


def _write(path: Path, content: str) -> None:
    """Write if the text changed (a rewrite would make Sphinx rebuild its page for nothing)."""
    from .execute import atomic_write_text

    if not path.is_file() or path.read_text() != content:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, content)


def write(project: Project) -> None:
    """Write the three fragments into `book/generated/`."""
    _write(project.generated / LEAD, lead_text(project))
    _write(project.generated / NAME, table_text(project))
    _write(project.generated / COSTS, costs_text(project))
