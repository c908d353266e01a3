"""`pathbook build` and `pathbook status`: rerun what is stale, then build the HTML book."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import nbformat
from tqdm.auto import tqdm

from . import colophon, edition
from . import parameters as params
from .devices import DEVICE_PARAMETER, DeviceSlots, require_devices, with_device
from .fingerprint import core_files, explain_changes, fingerprint, module_sources
from .project import EDITION_PROFILES, Chapter, PathbookError, Project

if TYPE_CHECKING:
    from .execute import Outcome


@dataclass
class Plan:
    """What `build` would do for one chapter, and why."""

    chapter: Chapter
    parameters: dict[str, Any]  # the profile's values, given to papermill
    shown: dict[str, Any]  # every parameter's value, defaults included, for the provenance
    fingerprint: dict[str, Any]
    reasons: list[str]

    text_changed: bool = False  # only the text changed: merged into the output, not executed
    core_files: dict[str, str] = field(default_factory=dict)  # pathlib_core file digests now

    @property
    def stale(self) -> bool:
        return bool(self.reasons)


def _recorded(project: Project, chapter: Chapter) -> dict[str, Any] | None:
    path = project.stamp_of(chapter)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _last_run(project: Project, item: Plan, profile: str) -> str:
    """A stale chapter's estimate: how long its last recorded run took (and with which profile,
    when that differs), else the time profiles.yml records for the profile."""
    if not item.stale:
        return ""
    stamp = _recorded(project, item.chapter) or {}
    if "seconds" in stamp:
        other = stamp.get("profile")
        return f"; last run {stamp['seconds']:.0f} s" + (f" ({other})" if other != profile else "")
    if profile in item.chapter.seconds:
        return f"; about {item.chapter.seconds[profile]:.0f} s (profiles.yml)"
    return ""


def _estimate(project: Project, item: Plan, profile: str) -> float:
    """Expected seconds of a run with `profile`: the last recorded run with it, else the time
    profiles.yml records, else 0 (unknown)."""
    stamp = _recorded(project, item.chapter) or {}
    if stamp.get("profile") == profile and "seconds" in stamp:
        return float(stamp["seconds"])
    return float(item.chapter.seconds.get(profile, 0.0))


def longest_first(project: Project, plans: list[Plan], profile: str) -> list[Plan]:
    """The chapters in the order to start them with several workers: longest expected run
    first, so that the last long chapter does not start when the others are done (chapters
    with no estimate keep their order, after the others)."""
    return sorted(plans, key=lambda item: -_estimate(project, item, profile))


def _state(item: Plan) -> str:
    if item.stale:
        return "; ".join(item.reasons)
    if item.text_changed:
        return "text changed (merged into the last output, nothing executed)"
    return "up to date"


def plan(
    project: Project,
    profile: str,
    only: Iterable[str] = (),
    force: bool = False,
    device: str | None = None,
) -> list[Plan]:
    """Validate every selected chapter's parameters and work out which ones must run.

    `device` (from `--device`) overrides the profile's `device` parameter; a chapter that does not
    declare one fails the validation. Nothing runs when an environment variable the profile
    reads is missing (`Project.require_environment`).
    """
    names = list(dict.fromkeys(only)) or list(project.chapters)
    project.require_environment(profile, names)  # refuses an unknown name too
    files = core_files(project)
    plans = []
    for name in names:
        chapter = project.chapter(name)
        values = with_device(chapter.parameters(profile), device)
        shown = params.validate(name, chapter.source, values)
        stamp = _recorded(project, chapter)
        modules = stamp.get("modules") if stamp else None  # what its last run loaded
        fp = fingerprint(project, chapter, values, files, modules)
        if force:
            reasons = ["--force"]
        elif stamp is None or not project.output_of(chapter).exists():
            reasons = ["no output yet"]
        else:
            reasons = explain_changes(stamp["components"], fp["components"])
            if stamp.get("profile") != profile and not reasons:
                reasons = [f"profile {stamp.get('profile')} -> {profile}"]
            if not reasons and json.dumps(stamp["components"], sort_keys=True) != json.dumps(
                fp["components"], sort_keys=True
            ):
                reasons = ["fingerprint changed"]
            missing = [
                f
                for f in stamp.get("figures", [])
                if not (project.figures_of(chapter) / f).exists()
            ]
            if missing:
                reasons.append(f"figures missing: {', '.join(missing)}")
        text_changed = not reasons and stamp is not None and stamp.get("prose") != fp["prose"]
        plans.append(Plan(chapter, values, shown, fp, reasons, text_changed, files))
    return plans


def refresh_text(project: Project, plans: list[Plan]) -> list[str]:
    """Merge the new text of chapters whose code is unchanged into their outputs (no kernel),
    and record it in their stamps; returns the names refreshed."""
    from .execute import atomic_write_text
    from .prose import merge_text

    done = []
    for item in plans:
        if not item.text_changed:
            continue
        output = project.output_of(item.chapter)
        merged = merge_text(item.chapter.source, output)
        atomic_write_text(output, nbformat.writes(merged))
        stamp = _recorded(project, item.chapter) or {}
        stamp["prose"] = item.fingerprint["prose"]
        atomic_write_text(project.stamp_of(item.chapter), json.dumps(stamp, indent=1))
        done.append(item.chapter.name)
    return done


def _stamp(
    project: Project, item: Plan, profile: str, outcome: Outcome, device: str | None
) -> None:
    from .execute import atomic_write_text

    figures = sorted(p.name for p in project.figures_of(item.chapter).glob("*") if p.is_file())
    components = dict(item.fingerprint["components"])
    if outcome.modules is not None:  # from now on the chapter depends on what it loaded
        components["pathlib_core"] = module_sources(item.core_files, outcome.modules)
    record = {
        "profile": profile,
        "device": device,  # where it ran (the fingerprint keeps cuda:N as cuda)
        "hash": item.fingerprint["hash"],  # the content hash the page and figures show
        "prose": item.fingerprint["prose"],
        "components": components,
        "modules": outcome.modules,
        "executed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(outcome.seconds, 2),
        "peak_memory_bytes": outcome.peak_memory,
        "figures": figures,
    }
    atomic_write_text(project.stamp_of(item.chapter), json.dumps(record, indent=1))


def run_notebooks(
    project: Project,
    plans: list[Plan],
    profile: str,
    jobs: int = 1,
    devices: list[str] | None = None,
) -> list[Outcome]:
    """Execute the stale chapters, `jobs` at a time, with a progress bar over notebooks.

    `devices` (from `--devices`): each of the `jobs` worker slots computes on its own device,
    which replaces the chapters' `device` parameter when they run (`DeviceSlots`).
    """
    from .execute import execute  # torch (via pathlib_core) only when something runs

    todo = longest_first(project, [p for p in plans if p.stale], profile)
    outcomes: list[Outcome] = []
    if not todo:
        return outcomes
    logs = os.path.relpath(project.state / "logs", project.root)
    print(
        f"pathbook: a line per cell below; each chapter's whole output (its progress bars too) "
        f"is in {logs}{os.sep}NAME.log" + ("" if jobs > 1 else ", and shown here"),
        file=sys.stderr,
    )
    bar = tqdm(total=len(todo), desc=f"notebooks ({profile})", unit="nb", file=sys.stderr)
    jobs = max(1, jobs)
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    slots = DeviceSlots(devices, jobs) if devices else None

    def run(item: Plan) -> tuple[Outcome, str | None]:
        with slots.lease() if slots else nullcontext(None) as device:
            shown = with_device(item.shown, device)
            outcome = execute(
                project,
                item.chapter,
                profile,
                with_device(item.parameters, device),
                item.fingerprint["hash"],
                shown_parameters=shown,
                threads=threads,
                show_cells=jobs == 1,  # one chapter at a time: its progress bars are readable
            )
        return outcome, shown.get(DEVICE_PARAMETER)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run, p): p for p in todo}
        for future in as_completed(futures):
            item, (outcome, device) = futures[future], future.result()
            if outcome.ok:
                _stamp(project, item, profile, outcome, device)
                if edition.has_edition(profile):
                    _save_into_edition(project, item, profile, outcome)
            bar.set_postfix_str(
                f"{outcome.chapter} {'ok' if outcome.ok else 'FAILED'} {outcome.seconds:.0f}s"
            )
            bar.update()
            outcomes.append(outcome)
    bar.close()
    return outcomes


def _save_into_edition(project: Project, item: Plan, profile: str, outcome: Outcome) -> None:
    """Save a chapter just executed with a profile that has an edition into it; a failure to
    do so fails the chapter (its output and stamp stay: the next build saves it)."""
    try:
        edition.save_run(project, item, profile, outcome)
    except Exception as error:
        outcome.ok = False
        outcome.message = (
            f"notebook {item.chapter.name!r} ran and is in the book, but saving it into "
            f"{project.edition_of(profile).relative_to(project.root)}/ failed: "
            f"{type(error).__name__}: {error}; the next build saves it."
        )


def build_html(project: Project) -> None:
    """Jupyter Book 1 with warnings as errors and nitpicky references; execution is off in
    config."""
    missing = [c.name for c in project.chapters.values() if not project.output_of(c).exists()]
    if missing:
        raise PathbookError(f"cannot build the HTML: no output yet for {', '.join(missing)}.")
    colophon.write(project)
    command = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(project.root),
        "-W",
        "-n",
        "--keep-going",
        "--builder",
        "html",
    ]
    print("building HTML: jupyter-book", " ".join(command[3:]), file=sys.stderr)
    done = subprocess.run(command, cwd=project.root, check=False)
    if done.returncode != 0:
        raise PathbookError(
            f"jupyter-book build failed (exit {done.returncode}); see its output above."
        )


def build(
    project: Project,
    profile: str = "quick",
    jobs: int = 1,
    only: Iterable[str] = (),
    force: bool = False,
    html: bool = True,
    device: str | None = None,
    devices: list[str] | None = None,
    no_execute: bool = False,
) -> int:
    """The whole `pathbook build`; returns the process exit code. `device` sets every chapter's
    device; `devices` gives each of the `jobs` worker slots its own (see `run_notebooks`).

    With a profile that has an edition (`editions/PROFILE/`, see `pathbook.edition`), a stale
    chapter whose entry has today's fingerprint is taken from it, and each chapter executed is
    saved into it; `no_execute` publishes every chapter from the edition and executes nothing.
    """
    start = time.perf_counter()
    plans = plan(project, profile, only, force, devices[0] if devices else device)
    if no_execute:
        return _build_from_edition(project, plans, profile, html, start)
    taken: dict[str, Any] = {}
    adopted: list[str] = []
    if edition.has_edition(profile):
        taken = edition.take_current(project, plans, profile)
        adopted = edition.adopt_local(project, plans, profile)
    folder = project.edition_of(profile).relative_to(project.root).as_posix()
    for item in plans:
        name = item.chapter.name
        if name in taken:
            state = f"taken from {folder}/ ({edition.summary(taken[name].record)}), not executed"
        else:
            state = _state(item) + (f"; saved into {folder}/" if name in adopted else "")
        print(f"  {name}: {state}{_last_run(project, item, profile)}", file=sys.stderr)
    wanted = {p.parameters.get(DEVICE_PARAMETER) for p in plans if p.stale}
    require_devices(sorted(d for d in wanted if isinstance(d, str)), "device")  # the profile's
    refreshed = refresh_text(project, plans)
    outcomes = run_notebooks(project, plans, profile, jobs, devices)
    failures = [o for o in outcomes if not o.ok]
    for failure in failures:
        print(f"error: {failure.message}", file=sys.stderr)
    ran = sum(o.ok for o in outcomes)
    print(
        f"pathbook: executed {ran} notebook(s), {len(failures)} failed, "
        f"{len(refreshed)} text-only update(s), "
        f"{len(plans) - len(outcomes) - len(refreshed) - len(taken)} up to date"
        + (f", {len(taken)} taken from {folder}/" if edition.has_edition(profile) else "")
        + f"; {time.perf_counter() - start:.1f}s",
        file=sys.stderr,
    )
    missing = [c.name for c in project.chapters.values() if not project.output_of(c).exists()]
    if html and missing and failures:
        print(f"pathbook: HTML not built: no output yet for {', '.join(missing)}.", file=sys.stderr)
    elif html:
        build_html(project)
    return 1 if failures else 0


def _build_from_edition(
    project: Project, plans: list[Plan], profile: str, html: bool, start: float
) -> int:
    """`build --no-execute`: every selected chapter from the committed edition, whatever its
    age (a page older than the code says so in its header); a missing one is an error."""
    if not edition.has_edition(profile):
        raise PathbookError(
            f"--no-execute builds from a committed edition; the {profile!r} profile has none "
            f"(profiles with one: {', '.join(EDITION_PROFILES)})."
        )
    lines = edition.publish_all(project, plans, profile)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    folder = project.edition_of(profile).relative_to(project.root).as_posix()
    print(
        f"pathbook: executed 0 notebook(s), {len(lines)} from {folder}/; "
        f"{time.perf_counter() - start:.1f}s",
        file=sys.stderr,
    )
    if html:
        build_html(project)
    return 0


def status(project: Project, profile: str = "quick") -> int:
    """Print what `build` would execute and why; exit 0 whether or not anything is stale.
    With a profile that has an edition, a second line per chapter says where its entry stands."""
    for item in plan(project, profile):
        stale = "stale: " if item.stale else ""
        print(f"{item.chapter.name}: {stale}{_state(item)}{_last_run(project, item, profile)}")
        if edition.has_edition(profile):
            print(f"  edition: {edition.status_line(project, item, profile)}")
    return 0
