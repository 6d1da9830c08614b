"""The HTML report in a real headless browser: Debian's chromium, driven by Playwright.

Skipped, with the reason, where chromium or Playwright is not installed
(`.ci/run` installs chromium). Checks what a user would see: no console
error, no network request, and every chart drawn with marks. Screenshots go
to the temporary folder (their paths are printed) for a person to look at.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.reports import html_samples as samples
from tests.reports.test_example import history  # noqa: F401 (a fixture)
from tests.reports.test_html import example_store, page_with_replay_diff  # noqa: F401 (a fixture)

from mrules.cli import main
from mrules.cli.report_html_cmd import html as html_cmd
from mrules.reports import html as page

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium browser installed (apt-get install chromium)"
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Every drawn mark: vega's SVG renderer puts the items of a mark under `g.role-mark`.
_MARKS = """() => Array.from(document.querySelectorAll('.chart')).map(el => ({
  chart: el.dataset.chart, drawn: el.dataset.drawn || null,
  marks: el.querySelectorAll('svg .role-mark > *').length,
  svg: el.querySelectorAll('svg').length}))"""


@contextlib.contextmanager
def drawn(path: Path) -> Iterator[Any]:
    """The page at `path` in the browser (a tab 1200 wide), once every chart is drawn."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            tab.goto(path.as_uri())
            tab.wait_for_selector("body[data-charts=drawn]", state="attached", timeout=30_000)
            yield tab
        finally:
            browser.close()


def evaluate(path: Path, script: str, arg: Any = None) -> Any:
    """What `script` gives in the page at `path`, its charts drawn."""
    with drawn(path) as tab:
        return tab.evaluate(script, arg)


def open_page(path: Path, shot: str) -> dict[str, Any]:
    """Open `path`, wait for every chart, and report what the browser saw."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1200, "height": 900})
            console: list[str] = []
            requests: list[str] = []
            tab.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            tab.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            tab.on("request", lambda r: requests.append(r.url))
            tab.goto(path.as_uri())
            tab.wait_for_selector("body[data-charts=drawn]", state="attached", timeout=30_000)
            charts = tab.evaluate(_MARKS)
            png = Path(tempfile.gettempdir()) / f"mrules-report-{shot}.png"
            tab.screenshot(path=str(png), full_page=True)
            print(f"screenshot: {png}")
        finally:
            browser.close()
    return {"console": console, "requests": requests, "charts": charts}


def check(seen: dict[str, Any], path: Path, want: int) -> None:
    assert seen["console"] == []
    assert seen["requests"] == [path.as_uri()]  # the file itself, nothing else
    assert len(seen["charts"]) == want
    for c in seen["charts"]:
        assert c["drawn"] == "yes", c
        assert c["svg"] == 1 and c["marks"] > 0, c


def test_example_report_draws_every_chart_offline(example_store: Path, tmp_path: Path) -> None:  # noqa: F811
    out = page_with_replay_diff(tmp_path, example_store)
    seen = open_page(out, "example")
    check(seen, out, 12)
    marks = {c["chart"]: c["marks"] for c in seen["charts"]}
    assert marks["funnel"] >= 10  # five bars and five labels


def test_empty_report_draws_a_message_in_every_chart(tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    out.write_text(page.page(samples.empty()))
    seen = open_page(out, "empty")
    check(seen, out, 10)
    assert all(c["marks"] == 1 for c in seen["charts"])  # the one text mark saying why


def test_a_report_of_ten_thousand_campaigns_draws_its_top_campaigns(tmp_path: Path) -> None:
    """The page of 10,000 campaigns (8.5 MB, its ROI chart 280,000 pixels tall) draws
    the 25 campaigns that won the most in each campaign chart, offline, with no error."""
    data = samples.full()
    data["campaigns"] = samples.many_campaigns(10_000)
    out = tmp_path / "many.html"
    out.write_text(page.page(data))
    assert out.stat().st_size < 1_200_000  # the chart library is about 0.9 MB of it
    seen = open_page(out, "many-campaigns")
    check(seen, out, 10)
    marks = {c["chart"]: c["marks"] for c in seen["charts"]}
    assert marks["campaign-roi"] == 25
    assert marks["campaign-influence"] == 25 * 5


# What the tooltip shows over each point of the score line and each stage's rule.
_TOOLTIP = "() => { const e = document.getElementById('vg-tooltip-element');"
_TOOLTIP += " return e && e.className.includes('visible') ? e.innerText : null }"


_POINTS_AND_RULES = "svg .mark-symbol.role-mark > *, svg .mark-rule.role-mark > *"


def timeline_tooltips(path: Path, marks: str = _POINTS_AND_RULES) -> list[str]:
    """Hover every point and stage rule of the timeline chart; the tooltips' texts."""
    seen: list[str] = []
    with drawn(path) as tab:
        chart = tab.locator("#chart-timeline")
        chart.scroll_into_view_if_needed()
        items = chart.locator(marks)
        for i in range(items.count()):
            box = items.nth(i).bounding_box()
            assert box is not None
            tab.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            tab.wait_for_function(_TOOLTIP, timeout=5_000)
            seen.append(tab.evaluate(_TOOLTIP))
            tab.mouse.move(0, 0)
    return seen


def test_timeline_tooltips_show_the_utc_times(example_store: Path, tmp_path: Path) -> None:  # noqa: F811
    """Hovering bob's score points and stages said `time NaN`, `entered NaN`: the tooltip
    asked Vega-Lite for a format type "utc" it does not have."""
    out = tmp_path / "report.html"
    r = CliRunner().invoke(
        html_cmd, [str(out), "--store", str(example_store), "--timeline", "bob@bigcorp.example"]
    )
    assert r.exit_code == 0, r.output
    tips = " ".join(timeline_tooltips(out))
    assert "NaN" not in tips
    # `mrules explain bob@bigcorp.example --timeline`, in UTC: his score fell to -50 at the
    # decay (the points of 2 November lie under his stages' rules); prospect and MQL, SQL
    # and won (from the CRM).
    assert "score\t\n−50" in tips and "2026-12-20 00:00" in tips
    for when in ("2026-11-02 11:00", "2026-11-01 08:00", "2026-10-15 00:00"):
        assert when in tips


# The boxes of the labels a chart's x axis shows (vega hides an overlapping one: opacity 0).
_X_LABELS = """id => Array.from(document.querySelectorAll(
  '#' + id + ' svg g.role-axis[aria-label^="X-axis"] g.role-axis-label text'))
  .filter(t => getComputedStyle(t).opacity !== '0' && t.getAttribute('opacity') !== '0')
  .map(t => { const b = t.getBoundingClientRect();
    return {text: t.textContent, left: b.left, right: b.right}; })"""


def x_labels(path: Path, chart: str) -> list[dict[str, Any]]:
    labels: list[dict[str, Any]] = evaluate(path, _X_LABELS, f"chart-{chart}")
    return labels


def test_weekly_conversion_labels_do_not_overlap(history: str, tmp_path: Path) -> None:  # noqa: F811
    """`--by week` on the README's three months of history printed its 14 week labels on
    top of each other ("2026-W322026-W33..."): flat labels, each wider than its step."""
    out = tmp_path / "weeks.html"
    r = CliRunner().invoke(html_cmd, [str(out), "--store", history, "--by", "week"])
    assert r.exit_code == 0, r.output
    labels = sorted(x_labels(out, "conversion-over-time"), key=lambda b: b["left"])
    assert len(labels) >= 2  # the first and the last week at least
    assert labels[0]["text"] == "2026-W32"
    for a, b in itertools.pairwise(labels):
        assert a["right"] <= b["left"], (a, b)


_LEGEND = """id => Array.from(document.querySelectorAll(
  '#' + id + ' svg g.role-legend g.role-legend-label text')).map(t => t.textContent)"""


def test_conversion_legend_follows_the_funnel(history: str, tmp_path: Path) -> None:  # noqa: F811
    """The conversion-over-time legend (and so its colours) went alphabetically: "MQLs →
    SQLs" first, "Visitors → Prospects" last, unlike the funnel and the table above it."""
    out = tmp_path / "r.html"
    r = CliRunner().invoke(html_cmd, [str(out), "--store", history])
    assert r.exit_code == 0, r.output
    legend = evaluate(out, _LEGEND, "chart-conversion-over-time")
    assert legend == ["Visitors → Prospects", "Prospects → MQLs", "MQLs → SQLs", "SQLs → Won"]


def test_timeline_points_show_their_score(example_store: Path, tmp_path: Path) -> None:  # noqa: F811
    """Bob's score points of 2 November lie on the rule of the stages he entered then: the
    rules were drawn over them, and hovering his 60 points showed "stage MQL" instead."""
    out = tmp_path / "report.html"
    r = CliRunner().invoke(
        html_cmd, [str(out), "--store", str(example_store), "--timeline", "bob@bigcorp.example"]
    )
    assert r.exit_code == 0, r.output
    tips = timeline_tooltips(out, "svg .mark-symbol.role-mark > *")
    # `mrules explain bob@bigcorp.example --timeline`: 50, 55, 60 on 2 November, then -50.
    assert [t.split("score")[-1].split()[-1] for t in tips] == ["50", "55", "60", "−50"]


# Every axis of every chart: the labels it shows (vega hides an overlapping one: opacity 0).
_AXES = """() => Array.from(document.querySelectorAll('.chart')).flatMap(el =>
  Array.from(el.querySelectorAll('svg g.role-axis[aria-label]')).map(a => ({
    chart: el.dataset.chart, axis: a.getAttribute('aria-label').split(' ')[0],
    labels: Array.from(a.querySelectorAll('g.role-axis-label text'))
      .filter(t => t.getAttribute('opacity') !== '0').map(t => t.textContent)})))"""


def test_count_axes_do_not_repeat_a_number(example_store: Path, tmp_path: Path) -> None:  # noqa: F811
    """The example's score distribution (one prospect a bucket at most) read "0 1 1" up its
    prospects axis: ticks every half, written as whole numbers. A count of 2 read "0 1 1 2 2"."""
    out = tmp_path / "report.html"
    r = CliRunner().invoke(html_cmd, [str(out), "--store", str(example_store)])
    assert r.exit_code == 0, r.output
    small = tmp_path / "small.html"  # the largest count 1 or 2 in every chart
    data = samples.full()
    for b in data["scores"]["score_histogram"]:
        b["count"] = min(b["count"], 2)
    for g in data["scores"]["grade_distribution"]:
        g["count"] = min(g["count"], 1)
    for s in data["funnel"]["stages"]:
        s["count"] = min(s["count"], 2)
    for rule in data["rules"]["rules"]:
        rule.update(matches=1, prospects=1, went_mql=1, went_won=0)
    small.write_text(page.page(data))
    for path in (out, small):
        axes = evaluate(path, _AXES)
        assert {a["chart"] for a in axes} >= {"funnel", "score-distribution", "rules"}
        for a in axes:
            assert len(a["labels"]) == len(set(a["labels"])), (path.name, a)


_RULES = """list "MQL"
queue "Sales"
form "Demo" folder "Site"
on submit of form "Demo" {
  score +60
}
automation rule "MQL" priority 10 {
  when all { score >= 50 }
  then {
    add to list "MQL"
    assign to queue "Sales"
  }
}
"""


def test_one_score_histograms_read_whole_scores(tmp_path: Path) -> None:
    """Two prospects who both became MQLs at 60 points: both score charts had one bucket,
    60 to 61, and their score axis read "60.0 60.1 ... 61.0", scores no prospect can have."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.mr").write_text(_RULES)
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"e{i}",
                    "ts": f"2026-10-0{i}T10:00:00Z",
                    "type": "form_submit",
                    "prospect": f"p{i}@example.com",
                    "asset": "Demo",
                }
            )
            + "\n"
            for i in (1, 2)
        )
    )
    store = tmp_path / "s.db"
    r = CliRunner().invoke(
        main, ["run", str(tmp_path / "rules"), str(events), "--store", str(store)]
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "r.html"
    r = CliRunner().invoke(html_cmd, [str(out), "--store", str(store)])
    assert r.exit_code == 0, r.output
    axes = evaluate(out, _AXES)
    x = {a["chart"]: a["labels"] for a in axes if a["axis"] == "X-axis"}
    assert x["score-distribution"] == ["60", "61"]
    assert x["score-at-mql"] == ["60", "61"]
