"""The real book built from a clean checkout: every chapter, figure and provenance note."""

import json
import re

import pytest

from pathbook.project import load_project

# every test here reads the book built once per session from a clean copy (minutes)
pytestmark = pytest.mark.slow


def test_every_chapter_has_a_page_with_its_figures_and_their_provenance(built_book):
    project = load_project(built_book)
    html_root = built_book / "_build" / "html"
    for name in project.chapters:
        page = (html_root / "book" / "generated" / f"{name}.html").read_text()
        figures = sorted((built_book / "book" / "figures" / name).glob("*.png"))
        notes = re.findall(r'class="pathbook-provenance"', page)
        assert len(notes) == len(figures), f"{name}: {len(figures)} figures, {len(notes)} notes"
        for png in figures:
            record = json.loads(png.with_suffix(".json").read_text())
            assert record["notebook"] == f"notebooks/{name}.ipynb"
            assert record["profile"] == "quick"
            assert f"Figure {record['figure']}." in page
        assert "_downloads/" in page and f"{name}.ipynb" in page, "no download of the source"


def test_the_introduction_says_which_edition_this_is(built_book):
    project = load_project(built_book)
    page = (built_book / "_build" / "html" / "book" / "intro.html").read_text()
    lead = page.index("You are reading the quick edition.")
    assert lead < page.index('id="the-idea-in-one-paragraph"'), "the lead comes first"
    rows = re.findall(r"<tr.*?</tr>", page[page.index('id="which-edition-this-is"') :], re.S)
    for name in project.chapters:  # one linked row per chapter, each the quick profile
        mine = [r for r in rows if f'href="generated/{name}.html"' in r]
        assert len(mine) == 1 and "<code" in mine[0] and "quick" in mine[0], name


def test_mathjax_is_served_from_the_book(built_book):
    html_root = built_book / "_build" / "html"
    page = (html_root / "book" / "intro.html").read_text()
    assert "_static/mathjax/es5/tex-chtml.js" in page
    assert (html_root / "_static" / "mathjax" / "es5" / "tex-chtml.js").is_file()
    assert "cdn.jsdelivr" not in page and "mathjax@3" not in page


def test_noop_rebuild_executes_nothing(built_book, capsys):
    from pathbook.build import build

    assert build(load_project(built_book), "quick", html=False) == 0
    assert "executed 0 notebook(s)" in capsys.readouterr().err


def test_the_full_edition_says_so_and_every_chapter_is_the_full_profile(built_edition):
    project = load_project(built_edition)
    html_root = built_edition / "_build" / "html"
    intro = (html_root / "book" / "intro.html").read_text()
    assert intro.index("You are reading the full edition.") < intro.index(
        'id="the-idea-in-one-paragraph"'
    )
    assert "without executing a notebook" in intro
    for name in project.chapters:
        page = (html_root / "book" / "generated" / f"{name}.html").read_text()
        assert "committed <code" in page and "full</span></code> edition" in page, name
        assert "Older than the code" not in page, f"{name}: its entry is older than the code"
