"""The HTML page at a phone's width and a desktop's, in a real headless browser (skipped
without chromium or Playwright, as tests/reports/test_html_browser.py): every chart is as
wide as the page's column and nothing runs past the window's edge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.reports import html_samples as samples
from tests.reports.test_html import example_store, page_with_replay_diff  # noqa: F401 (a fixture)
from tests.reports.test_html_browser import ARGS, CHROMIUM, playwright_api

from mrules.reports import html as page

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium browser installed (apt-get install chromium)"
)

# The page's width against the window's, and each chart's drawing against its box.
_FIT = """() => ({
  scroll: document.documentElement.scrollWidth,
  client: document.documentElement.clientWidth,
  charts: Array.from(document.querySelectorAll('.chart')).map(el => {
    const box = el.getBoundingClientRect();
    const svg = el.querySelector('svg');
    const drawn = svg ? svg.getBoundingClientRect() : {left: 0, right: 0, width: 0, height: 0};
    return {chart: el.dataset.chart, box_left: box.left, box_right: box.right,
            box_width: box.width, left: drawn.left, right: drawn.right,
            width: drawn.width, height: drawn.height};
  })})"""


def measure(path: Path, width: int) -> dict[str, Any]:
    """What the browser lays out of the page at `path` in a window `width` pixels wide."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = browser.new_page(viewport={"width": width, "height": 800})
            tab.goto(path.as_uri())
            tab.wait_for_selector("body[data-charts=drawn]", state="attached", timeout=30_000)
            seen: dict[str, Any] = tab.evaluate(_FIT)
            tab.screenshot(path=str(path.with_name(f"{path.stem}-{width}.png")), full_page=True)
        finally:
            browser.close()
    return seen


def check_fits(seen: dict[str, Any], width: int, charts: int) -> None:
    assert seen["client"] == width
    assert seen["scroll"] <= seen["client"], seen["scroll"]  # no sideways scrolling
    assert len(seen["charts"]) == charts
    for c in seen["charts"]:
        assert c["height"] > 0 and c["width"] > 0, c
        assert c["box_right"] <= width, c  # the chart's box is on the page
        assert c["left"] >= c["box_left"] - 0.5 and c["right"] <= c["box_right"] + 0.5, c
        assert c["width"] >= c["box_width"] - 2, c  # and drawn as wide as its box


@pytest.fixture(scope="module")
def example_page(example_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    return page_with_replay_diff(tmp_path_factory.mktemp("widths"), example_store)


@pytest.mark.parametrize("width", [360, 375, 1280])
def test_the_charts_fit_a_phone_and_a_desktop(example_page: Path, width: int) -> None:
    """The charts were 560 pixels wide (plus their axes and legends: up to 860), whatever
    the window: below about 800 pixels the page scrolled sideways, a phone saw half of each
    chart. Each now takes its column's width, from a 360-pixel phone to a desktop."""
    seen = measure(example_page, width)
    check_fits(seen, width, 12)
    widths = [c["width"] for c in seen["charts"]]
    if width >= 1280:
        assert min(widths) > 900  # the desktop's width is used, not 560 pixels of it
    else:
        assert max(widths) < width


@pytest.mark.parametrize("width", [360, 1280])
def test_the_messages_of_empty_charts_fit_a_phone(tmp_path: Path, width: int) -> None:
    out = tmp_path / "empty.html"
    out.write_text(page.page(samples.empty()))
    check_fits(measure(out, width), width, 10)
