"""The `pathbook` command: build the book, say what is stale, run one chapter, clean up, and
make and grade the classroom copies of the exercises."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import parameters as params
from .build import build, status
from .execute import execute
from .fingerprint import fingerprint
from .project import PROFILES, PathbookError, load_project


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pathbook",
        description="Execute the companion's notebooks with papermill and build the Jupyter Book.",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="project folder (default: found from the working folder upwards)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="execute stale notebooks, then build the HTML book")
    b.add_argument("--profile", choices=PROFILES, default="quick")
    b.add_argument("-j", "--jobs", type=int, default=1, help="notebooks executed at once")
    b.add_argument("--only", nargs="+", default=[], metavar="NAME", help="only these notebooks")
    b.add_argument("--force", action="store_true", help="execute even if up to date")
    b.add_argument("--no-html", action="store_true", help="execute notebooks only")

    s = sub.add_parser("status", help="show which notebooks are stale and why")
    s.add_argument("--profile", choices=PROFILES, default="quick")

    r = sub.add_parser("run", help="execute one chapter with other parameters (not into the book)")
    r.add_argument("name")
    r.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="override one parameter (YAML value)",
    )
    r.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="parameters to start from before the overrides",
    )
    r.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="executed notebook path (default .pathbook/runs/NAME.ipynb)",
    )

    c = sub.add_parser("clean", help="delete generated chapters, figures, cache and HTML")
    c.add_argument("--html-only", action="store_true", help="delete only _build/")
    _classroom_parser(sub)
    return parser


def _classroom_parser(sub) -> None:
    room = sub.add_parser("classroom", help="student copies of the exercises, and grading")
    actions = room.add_subparsers(dest="action", required=True)
    sources = {
        "type": Path,
        "default": None,
        "help": "folder of exercise notebooks (default notebooks/exercises)",
    }
    r = actions.add_parser("release", help="write student and instructor versions of the exercises")
    r.add_argument("--sources", **sources)
    r.add_argument("--out", type=Path, default=None, help="output folder (default classroom/)")
    g = actions.add_parser("grade", help="run submissions with the hidden tests, write scores")
    g.add_argument("submissions", type=Path, help="folder holding STUDENT/ASSIGNMENT.ipynb")
    g.add_argument("--sources", **sources)
    g.add_argument(
        "--out", type=Path, default=None, help="score table to write (default classroom/scores.csv)"
    )
    g.add_argument("--timeout", type=int, default=120, help="seconds one cell may run")
    g.add_argument(
        "--total-timeout", type=int, default=900, help="seconds one submission may run in all"
    )
    g.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of each grading kernel (default 1; 0: the environment's)",
    )


def _run(project, args) -> int:
    chapter = project.chapter(args.name)
    values = chapter.parameters(args.profile)
    values.update({key: params.parse_cli_value(text) for key, text in args.parameter})
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


def _clean(project, html_only: bool) -> int:
    targets = [project.root / "_build"]
    if not html_only:
        targets += [project.generated, project.figures, project.state]
    for target in targets:
        if target.exists():
            shutil.rmtree(target)
            print(f"removed {target.relative_to(project.root)}")
    return 0


def _classroom(project, args) -> int:
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        raise PathbookError(
            "pathbook classroom needs nbgrader; install the classroom extra: "
            "pip install -e '.[classroom]'"
        ) from None
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        project = load_project(args.root)
        if args.command == "build":
            return build(project, args.profile, args.jobs, args.only, args.force, not args.no_html)
        if args.command == "status":
            return status(project, args.profile)
        if args.command == "run":
            return _run(project, args)
        if args.command == "classroom":
            return _classroom(project, args)
        return _clean(project, args.html_only)
    except PathbookError as error:
        print(f"pathbook: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
