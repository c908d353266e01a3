"""A first build starts the longest chapters first (profiles.yml `seconds:`), later builds use
the recorded run times."""

from __future__ import annotations

import json

import pytest

from pathbook.build import _estimate, longest_first, plan, run_notebooks
from pathbook.project import PathbookError, load_project

CHAPTERS = {"short": "n = 1", "long": "n = 1", "unknown": "n = 1", "middle": "n = 1"}
ENTRIES = {
    "short": {"quick": {}, "seconds": {"quick": 5}},
    "long": {"quick": {}, "seconds": {"quick": 300}},
    "unknown": {"quick": {}},
    "middle": {"quick": {}, "seconds": {"quick": 60, "full": 4000}},
}


def test_a_first_build_runs_the_longest_chapters_first(make_project, executed):
    project = load_project(make_project(CHAPTERS, ENTRIES))
    plans = plan(project, "quick")
    assert [p.chapter.name for p in longest_first(project, plans, "quick")] == [
        "long",
        "middle",
        "short",
        "unknown",
    ]
    run_notebooks(project, plans, "quick", jobs=1)
    assert [call["chapter"] for call in executed] == ["long", "middle", "short", "unknown"]


def test_recorded_run_times_of_the_same_profile_win(make_project, executed):
    project = load_project(make_project(CHAPTERS, ENTRIES))
    run_notebooks(project, plan(project, "quick"), "quick", jobs=1)
    stamp = project.stamp_of(project.chapter("short"))
    record = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**record, "seconds": 1000}))
    order = longest_first(project, plan(project, "quick", force=True), "quick")
    assert [p.chapter.name for p in order][:2] == ["short", "long"]
    # a run of another profile says nothing about this one: profiles.yml's 5 s again
    stamp.write_text(json.dumps({**record, "profile": "full", "seconds": 1000}))
    short = next(p for p in plan(project, "quick", force=True) if p.chapter.name == "short")
    assert _estimate(project, short, "quick") == 5


def test_seconds_must_name_profiles_and_positive_times(make_project):
    bad = {**ENTRIES, "short": {"quick": {}, "seconds": {"fast": 5}}}
    with pytest.raises(PathbookError, match="seconds must map profiles"):
        load_project(make_project(CHAPTERS, bad))
