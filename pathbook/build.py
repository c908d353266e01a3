"""`pathbook build` and `pathbook status`: rerun what is stale, then build the HTML book."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import nbformat
from tqdm.auto import tqdm

from . import parameters as params
from .fingerprint import core_files, explain_changes, fingerprint, module_sources
from .project import Chapter, PathbookError, Project

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
    when that differs)."""
    stamp = _recorded(project, item.chapter) or {}
    if not item.stale or "seconds" not in stamp:
        return ""
    other = stamp.get("profile")
    return f"; last run {stamp['seconds']:.0f} s" + (f" ({other})" if other != profile else "")


def _state(item: Plan) -> str:
    if item.stale:
        return "; ".join(item.reasons)
    if item.text_changed:
        return "text changed (merged into the last output, nothing executed)"
    return "up to date"


def plan(
    project: Project, profile: str, only: Iterable[str] = (), force: bool = False
) -> list[Plan]:
    """Validate every selected chapter's parameters and work out which ones must run."""
    names = list(dict.fromkeys(only)) or list(project.chapters)
    files = core_files(project)
    plans = []
    for name in names:
        chapter = project.chapter(name)
        values = chapter.parameters(profile)
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


def _stamp(project: Project, item: Plan, profile: str, outcome: Outcome) -> None:
    from .execute import atomic_write_text

    figures = sorted(p.name for p in project.figures_of(item.chapter).glob("*") if p.is_file())
    components = dict(item.fingerprint["components"])
    if outcome.modules is not None:  # from now on the chapter depends on what it loaded
        components["pathlib_core"] = module_sources(item.core_files, outcome.modules)
    record = {
        "profile": profile,
        "hash": item.fingerprint["hash"],  # the content hash the page and figures show
        "prose": item.fingerprint["prose"],
        "components": components,
        "modules": outcome.modules,
        "executed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(outcome.seconds, 2),
        "figures": figures,
    }
    atomic_write_text(project.stamp_of(item.chapter), json.dumps(record, indent=1))


def run_notebooks(
    project: Project, plans: list[Plan], profile: str, jobs: int = 1
) -> list[Outcome]:
    """Execute the stale chapters, `jobs` at a time, with a progress bar over notebooks."""
    from .execute import execute  # torch (via pathlib_core) only when something runs

    todo = [p for p in plans if p.stale]
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
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            pool.submit(
                execute,
                project,
                p.chapter,
                profile,
                p.parameters,
                p.fingerprint["hash"],
                shown_parameters=p.shown,
                threads=threads,
                show_cells=jobs == 1,  # one chapter at a time: its progress bars are readable
            ): p
            for p in todo
        }
        for future in as_completed(futures):
            item, outcome = futures[future], future.result()
            if outcome.ok:
                _stamp(project, item, profile, outcome)
            bar.set_postfix_str(
                f"{outcome.chapter} {'ok' if outcome.ok else 'FAILED'} {outcome.seconds:.0f}s"
            )
            bar.update()
            outcomes.append(outcome)
    bar.close()
    return outcomes


def build_html(project: Project) -> None:
    """Jupyter Book 1 with warnings as errors and nitpicky references; execution is off in
    config."""
    missing = [c.name for c in project.chapters.values() if not project.output_of(c).exists()]
    if missing:
        raise PathbookError(f"cannot build the HTML: no output yet for {', '.join(missing)}.")
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
) -> int:
    """The whole `pathbook build`; returns the process exit code."""
    start = time.perf_counter()
    plans = plan(project, profile, only, force)
    for item in plans:
        print(
            f"  {item.chapter.name}: {_state(item)}{_last_run(project, item, profile)}",
            file=sys.stderr,
        )
    refreshed = refresh_text(project, plans)
    outcomes = run_notebooks(project, plans, profile, jobs)
    failures = [o for o in outcomes if not o.ok]
    for failure in failures:
        print(f"error: {failure.message}", file=sys.stderr)
    ran = sum(o.ok for o in outcomes)
    print(
        f"pathbook: executed {ran} notebook(s), {len(failures)} failed, "
        f"{len(refreshed)} text-only update(s), "
        f"{len(plans) - len(outcomes) - len(refreshed)} up to date; "
        f"{time.perf_counter() - start:.1f}s",
        file=sys.stderr,
    )
    missing = [c.name for c in project.chapters.values() if not project.output_of(c).exists()]
    if html and missing and failures:
        print(f"pathbook: HTML not built: no output yet for {', '.join(missing)}.", file=sys.stderr)
    elif html:
        build_html(project)
    return 1 if failures else 0


def status(project: Project, profile: str = "quick") -> int:
    """Print what `build` would execute and why; exit 0 whether or not anything is stale."""
    for item in plan(project, profile):
        stale = "stale: " if item.stale else ""
        print(f"{item.chapter.name}: {stale}{_state(item)}{_last_run(project, item, profile)}")
    return 0
