"""The `pathbook` command: build the book, say what is stale, run one chapter, clean up, show and
clear the saved caches, and make and grade the classroom copies of the exercises.

Only argparse, yaml and the standard library are imported here: the modules that pull in torch,
papermill or nbgrader are imported inside the command that needs them, so that `--help`,
`--version` and `cache` answer at once and without the optional extras installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from .devices import DEVICE_PARAMETER, parse_device, parse_devices, require_devices, with_device
from .project import (
    EDITION_PROFILES,
    MEMORY_PER_JOB_GIB,
    PROFILES,
    PROFILES_FILE,
    PathbookError,
    default_jobs,
    find_root,
    load_project,
)

DISTRIBUTION = "critical-pathways-companion"

# The module a missing import names -> the extra of pyproject.toml that installs it.
EXTRAS = {
    "papermill": "book",
    "nbformat": "book",
    "nbclient": "book",
    "jupyter_book": "book",
    "ipykernel": "book",
    "nbgrader": "classroom",
}


def install_hint(module: str, extra: str) -> str:
    return (
        f"{module} is not installed; this command needs the [{extra}] extra: "
        f'pip install -e ".[{extra}]"'
    )


@contextmanager
def needs_extras() -> Iterator[None]:
    """Turn a missing optional dependency into a PathbookError that says what to install."""
    try:
        yield
    except ModuleNotFoundError as error:
        module = (error.name or "").partition(".")[0]
        if module not in EXTRAS:
            raise
        raise PathbookError(install_hint(module, EXTRAS[module])) from None


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows `(default: X)` after every option that has a default worth showing.

    Options whose default is None, False or empty say in their own help what happens instead.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


class _Version(argparse.Action):
    """`--version`: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        import importlib.metadata

        try:
            version = importlib.metadata.version(DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown (the distribution is not installed; pip install -e .)"
        print(f"pathbook {version} ({DISTRIBUTION})")
        parser.exit()


def chapter_names(root: Path | None) -> list[str]:
    """The chapter names in `notebooks/profiles.yml`, read with yaml only; [] if none is found."""
    try:
        folder = find_root() if root is None else Path(root)
        spec = yaml.safe_load((folder / PROFILES_FILE).read_text()) or {}
    except (PathbookError, OSError, yaml.YAMLError):
        return []
    notebooks = spec.get("notebooks") if isinstance(spec, dict) else None
    return [str(name) for name in notebooks] if isinstance(notebooks, dict) else []


def _root_in(argv: Sequence[str]) -> Path | None:
    """The `--root` given on the command line, before argparse has run."""
    for i, token in enumerate(argv):
        if token == "--root" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if token.startswith("--root="):
            return Path(token.partition("=")[2])
    return None


def _parser(chapters: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pathbook",
        description="Execute the companion's notebooks with papermill and build the Jupyter Book.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="project folder (default: the nearest folder upwards holding notebooks/profiles.yml)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    known = ", ".join(chapters) if chapters else f"the names in {PROFILES_FILE}"

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_Formatter)

    b = command("build", "execute stale notebooks, then build the HTML book")
    b.add_argument("--profile", choices=PROFILES, default="quick", help="parameter set")
    b.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        help="notebooks executed at once (default: one per core, at most one per "
        f"{MEMORY_PER_JOB_GIB} GiB of memory; with --devices, one per device)",
    )
    where = b.add_mutually_exclusive_group()
    _device_option(where)
    where.add_argument(
        "--devices",
        type=parse_devices,
        default=None,
        metavar="LIST",
        help="one device per worker slot, e.g. cuda:0,cuda:1: the k-th of the chapters running "
        "at once computes on the k-th device, round robin when -j exceeds them (default: none, "
        "every chapter on --device or the profile's device)",
    )
    b.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="NAME",
        help=f"only these chapters, among: {known} (default: all)",
    )
    b.add_argument("--force", action="store_true", help="execute even if up to date")
    b.add_argument("--no-html", action="store_true", help="execute notebooks only, no HTML")
    b.add_argument(
        "--no-execute",
        action="store_true",
        help="execute nothing: publish every chapter from the profile's committed edition "
        f"(editions/PROFILE/; profiles with one: {', '.join(EDITION_PROFILES)}), even one older "
        "than the code (its page says so); a chapter missing from it is an error",
    )

    s = command("status", "show which notebooks are stale and why")
    s.add_argument("--profile", choices=PROFILES, default="quick", help="parameter set")

    r = command("run", "execute one chapter with other parameters (not into the book)")
    r.add_argument("name", metavar="NAME", help=f"the chapter: one of {known}")
    r.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="override one parameter, VALUE read as YAML; repeatable (default: none)",
    )
    r.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="parameters to start from before the overrides",
    )
    _device_option(r)
    r.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="executed notebook path (default: .pathbook/runs/NAME.ipynb)",
    )

    c = command("clean", "delete generated chapters, figures, pathbook state and HTML")
    c.add_argument("--html-only", action="store_true", help="delete only _build/")

    cache = command(
        "cache", "size of the saved pieces (pathlib_core cache, .pathbook/); clear them"
    )
    what = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    what.add_parser(
        "info",
        help="size and place of each kind of saved piece",
        description="Size and place of each kind of saved piece: the pathlib_core cache folder "
        "($PATHLIB_CORE_CACHE, else $XDG_CACHE_HOME/pathlib_core, else ~/.cache/pathlib_core), "
        "one line per top-level entry kind, and the project's .pathbook/ folder (kind "
        "'pathbook').",
        formatter_class=_Formatter,
    )
    cl = what.add_parser(
        "clear",
        help="remove one kind of saved piece, or all",
        description="Remove one kind of saved piece (see `pathbook cache info`), or all of them.",
        formatter_class=_Formatter,
    )
    cl.add_argument("kind", nargs="?", default=None, help="kind to remove (default: every kind)")
    _classroom_parser(sub)
    return parser


def _device_option(parser: argparse._ActionsContainer) -> None:
    """`--device` of `build` and `run`: the same words, choices and checks in both."""
    parser.add_argument(
        "--device",
        type=parse_device,
        default=None,
        metavar="D",
        help="what the chapters compute on: cpu, cuda, cuda:N or auto (cuda when available); "
        "sets their 'device' parameter over the profile's (default: the profile's, else the "
        "notebook's)",
    )


def _classroom_parser(sub) -> None:
    room = sub.add_parser(
        "classroom",
        help="student copies of the exercises, and grading (extra [classroom])",
        formatter_class=_Formatter,
    )
    actions = room.add_subparsers(dest="action", required=True, metavar="ACTION")
    sources = {
        "type": Path,
        "default": None,
        "help": "folder of exercise notebooks (default: notebooks/exercises)",
    }
    r = actions.add_parser(
        "release",
        help="write student and instructor versions of the exercises",
        formatter_class=_Formatter,
    )
    r.add_argument("--sources", **sources)
    r.add_argument("--out", type=Path, default=None, help="output folder (default: classroom/)")
    g = actions.add_parser(
        "grade",
        help="run submissions with the hidden tests, write scores",
        formatter_class=_Formatter,
    )
    g.add_argument("submissions", type=Path, help="folder holding STUDENT/ASSIGNMENT.ipynb")
    g.add_argument("--sources", **sources)
    g.add_argument(
        "--out",
        type=Path,
        default=None,
        help="score table to write (default: classroom/scores.csv)",
    )
    g.add_argument("--timeout", type=int, default=120, help="seconds one cell may run")
    g.add_argument(
        "--total-timeout", type=int, default=900, help="seconds one submission may run in all"
    )
    g.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each grading kernel; 0: the environment's",
    )


def _build(project, args) -> int:
    for name in args.only:
        project.chapter(name)  # an unknown name fails before anything heavy is imported
    if args.no_execute and args.profile not in EDITION_PROFILES:
        raise PathbookError(
            f"--no-execute builds from a committed edition; the {args.profile!r} profile has "
            f"none (profiles with one: {', '.join(EDITION_PROFILES)})."
        )
    if args.no_execute and args.force:
        raise PathbookError("--no-execute and --force contradict each other; give one.")
    if not args.no_html and importlib.util.find_spec("jupyter_book") is None:
        raise PathbookError(install_hint("jupyter_book", "book") + " (or pass --no-html)")
    project.require_environment(args.profile, args.only)
    device, devices = _devices(args)
    with needs_extras():
        from .build import build

    jobs = args.jobs or (len(devices) if devices else default_jobs())
    return build(
        project,
        args.profile,
        jobs,
        args.only,
        args.force,
        not args.no_html,
        device,
        devices,
        no_execute=args.no_execute,
    )


def _devices(args: argparse.Namespace) -> tuple[str | None, list[str] | None]:
    """`build`'s `--device` and `--devices`, checked against the machine before anything runs."""
    if args.devices:
        return None, require_devices(args.devices, "--devices")
    if args.device is None:
        return None, None
    return require_devices([args.device])[0], None


def _status(project, args) -> int:
    with needs_extras():
        from .build import status

    return status(project, args.profile)


def _run(project, args) -> int:
    chapter = project.chapter(args.name)
    project.require_environment(args.profile, [chapter.name])
    with needs_extras():
        from . import parameters as params
        from .execute import execute
        from .fingerprint import fingerprint

    values = with_device(chapter.parameters(args.profile), args.device)
    values.update({key: params.parse_cli_value(text) for key, text in args.parameter})
    device = values.get(DEVICE_PARAMETER)  # from --device, -p device or the profile
    if isinstance(device, str):
        given = "--device" if device == args.device else "device"
        values[DEVICE_PARAMETER] = require_devices([device], given)[0]
    shown = params.validate(chapter.name, chapter.source, values)
    output = (args.output or project.state / "runs" / f"{chapter.name}.ipynb").resolve()
    figures = output.with_name(output.stem + "-figures")
    fp = fingerprint(project, chapter, values)
    outcome = execute(
        project,
        chapter,
        args.profile,
        values,
        fp["hash"],
        shown_parameters=shown,
        destination=output,
        figure_destination=figures,
        show_cells=True,
    )
    if not outcome.ok:
        print(f"error: {outcome.message}", file=sys.stderr)
        return 1
    print(f"wrote {output} and its figures in {figures} ({outcome.seconds:.0f}s)")
    return 0


def _clean(project, args) -> int:
    targets = [project.root / "_build"]
    if not args.html_only:
        targets += [project.generated, project.figures, project.state]
    for target in targets:
        if target.exists():
            shutil.rmtree(target)
            print(f"removed {target.relative_to(project.root)}")
    return 0


def _cache(root: Path | None, args) -> int:
    from . import caches

    try:
        state: Path | None = (find_root() if root is None else Path(root).resolve()) / ".pathbook"
    except PathbookError:
        state = None  # outside a project: only the pathlib_core cache
    folder = caches.cache_folder()
    if args.action == "info":
        print("\n".join(caches.describe(folder, state)))
        return 0
    try:
        print("\n".join(caches.clear(folder, state, args.kind)))
    except ValueError as error:
        raise PathbookError(str(error)) from None
    return 0


def _classroom(project, args) -> int:
    with needs_extras():
        import nbgrader  # noqa: F401

        from .classroom import SOURCES, release
        from .grading import grade, summarize

    sources = args.sources or project.root / SOURCES
    out = project.root / "classroom"
    if args.action == "release":
        written = release(sources, args.out or out)
        for path in written:
            print(f"wrote {path}")
        return 0
    table = args.out or out / "scores.csv"
    rows = grade(
        args.submissions,
        table,
        sources,
        args.timeout,
        args.total_timeout,
        threads=args.threads or None,
    )
    print("\n".join(summarize(rows)))
    print(f"wrote {table}")
    return 0


COMMANDS = {
    "build": _build,
    "status": _status,
    "run": _run,
    "clean": _clean,
    "classroom": _classroom,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pathbook` console script (and `python -m pathbook`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    asks_help = any(token in ("-h", "--help") for token in argv)
    args = _parser(chapter_names(_root_in(argv)) if asks_help else ()).parse_args(argv)
    try:
        if args.command == "cache":
            return _cache(args.root, args)
        return COMMANDS[args.command](load_project(args.root), args)
    except PathbookError as error:
        print(f"pathbook: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
