"""Every page of the built book in headless Chromium, every request outside the book blocked."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

# The book theme reports this once on a first visit (no stored theme preference); it is harmless.
BENIGN_CONSOLE = ("Got invalid theme mode",)
SKIP_FOLDERS = {"_static", "_sources", "_downloads", "_images"}


# every test here reads the book built once per session from a clean copy (minutes)
pytestmark = pytest.mark.slow


def chromium_path() -> str:
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not path:
        pytest.fail(
            "headless Chromium is needed: `apt-get install chromium` (scripts/test.sh does "
            "this as root) or set CHROMIUM=/path/to/chrome"
        )
    return path


@pytest.fixture(scope="module", params=["quick", "full edition"])
def served(request):
    """The HTML served on a free localhost port, as GitHub Pages would serve it: the quick build
    that CI executes, and the committed full edition built with nothing executed (the one the
    Pages workflow publishes)."""
    built = request.getfixturevalue("built_book" if request.param == "quick" else "built_edition")
    root = built / "_build" / "html"
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def pages(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.html")):
        relative = path.relative_to(root)
        if not SKIP_FOLDERS & set(relative.parts):
            found.append(relative.as_posix())
    return found


WAIT_FOR_IMAGES_AND_MATH = """async () => {
  for (const img of document.images) { img.loading = 'eager'; }
  await Promise.all(Array.from(document.images).map(img => img.decode().catch(() => null)));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  return {
    broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
                 .map(i => i.getAttribute('src')),
    images: document.images.length,
    hasMath: document.querySelectorAll('.math').length > 0,
    rendered: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
  };
}"""


@contextlib.contextmanager
def offline_browser(base: str):
    """A headless Chromium context that lets only requests into the book (``base``) and data:
    URLs through; every other URL is aborted and recorded in the yielded list."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context()
        outside: list[str] = []

        def only_the_book(route):
            if route.request.url.startswith(base) or route.request.url.startswith("data:"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_book)
        try:
            yield context, outside
        finally:
            browser.close()


@pytest.mark.browser
def test_every_page_loads_offline_without_errors(served):
    root, base = served
    urls = pages(root)
    assert len(urls) >= 5, f"too few pages: {urls}"
    problems: list[str] = []
    math_pages = 0
    with offline_browser(base) as (context, outside):
        for url in urls:
            errors, failed = [], []
            outside.clear()
            page = context.new_page()
            page.on("console", lambda m, e=errors: m.type == "error" and e.append(m.text))
            page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
            page.on("requestfailed", lambda r, f=failed: f.append(f"{r.url} ({r.failure})"))
            page.on(
                "response",
                lambda r, f=failed: r.status >= 400 and f.append(f"{r.url} (HTTP {r.status})"),
            )
            response = page.goto(base + url, wait_until="load")
            if (
                'http-equiv="refresh"' in (root / url).read_text().lower()
            ):  # index.html -> first page
                page.wait_for_url(lambda u, start=base + url: u != start)
                page.wait_for_load_state("load")
            report = page.evaluate(WAIT_FOR_IMAGES_AND_MATH)
            page.wait_for_timeout(200)
            page.close()
            errors = [e for e in errors if not any(b in e for b in BENIGN_CONSOLE)]
            if response is None or not response.ok:
                problems.append(f"{url}: HTTP {response and response.status}")
            for kind, items in (
                ("request outside the book", outside),
                ("failed request", failed),
                ("console error", errors),
                ("image not loaded", report["broken"]),
            ):
                problems += [f"{url}: {kind}: {item}" for item in items]
            if report["hasMath"]:
                math_pages += 1
                if report["rendered"] == 0 or report["mathErrors"]:
                    problems.append(f"{url}: math not rendered ({report})")
    print(f"browser test: {len(urls)} pages checked, {math_pages} with math")
    assert not problems, "\n".join(problems)
    assert math_pages >= 2, "the intro and the first chapter have math; MathJax was not seen"


EXPLORER_PAGE = "book/generated/explorer.html"


@pytest.mark.browser
def test_explorer_slider_moves_the_picture(served):
    """The explorer's precomputed sliders (plotting.scrubber) work in the static page: dragging
    one shows another frame, and its step button moves it on, with no Python behind the page."""
    root, base = served
    assert (root / EXPLORER_PAGE).is_file(), f"{EXPLORER_PAGE} was not built"
    with offline_browser(base) as (context, outside):
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(base + EXPLORER_PAGE, wait_until="load")
        players = page.locator("div.animation")
        assert players.count() >= 4, "the explorer page should hold a slider per input and method"
        player = players.first
        slider, picture = player.locator("input.anim-slider"), player.locator("img")
        last = int(slider.get_attribute("max"))
        assert last >= 5, f"the slider has {last + 1} frames; expected a sparsity sweep"
        first = picture.get_attribute("src")
        assert first.startswith("data:image/")
        slider.fill(str(last))  # sets the value and fires 'input', as dragging does
        moved = picture.get_attribute("src")
        assert moved.startswith("data:image/") and moved != first
        player.get_by_title("First frame").click()
        assert picture.get_attribute("src") == first and slider.input_value() == "0"
        player.get_by_title("Next frame").click()
        assert slider.input_value() == "1" and picture.get_attribute("src") not in (first, moved)
        page.close()
    assert not errors and not outside, errors + outside
