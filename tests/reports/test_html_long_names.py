"""The HTML page with a long title and long campaign names, in a real headless browser
(skipped without chromium or Playwright, as tests/reports/test_html_browser.py): nothing
runs off the page, a name wraps in its cell and a figure stays on one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.reports.test_html_browser import CHROMIUM, drawn

from mrules.cli import main

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium browser installed (apt-get install chromium)"
)

LONG = [f"utm_campaign={stem}_{'x' * 150}_{stem}" for stem in ("spring", "fall")]
TITLE = "Quarterly_marketing_report_" + "y" * 200

_OVERFLOW = """() => ({
  page: document.documentElement.scrollWidth - window.innerWidth,
  title: Array.from(document.querySelectorAll('header h1, header p'))
    .map(e => e.scrollWidth - e.clientWidth),
  tables: Array.from(document.querySelectorAll('section table')).map(t =>
    Math.round(t.getBoundingClientRect().right
               - t.closest('section').getBoundingClientRect().right)),
  figures: Array.from(document.querySelectorAll('#campaigns td.n'))
    .filter(td => td.getClientRects().length && td.textContent.trim())
    .map(td => { const r = document.createRange(); r.selectNodeContents(td);
                 return r.getClientRects().length; }),
  names: Array.from(document.querySelectorAll('#campaigns tbody tr td:first-child'))
    .map(td => td.textContent)})"""


def test_a_long_title_and_long_names_stay_on_the_page(store: str, tmp_path: Path) -> None:
    """A title or a campaign name without a space ran off the page: the header's title
    was 3,000 pixels wide in a 1,200 pixel window, the campaigns table 900 pixels past
    its section. They now wrap; the figures beside them keep one line each."""
    rules = tmp_path / "campaigns.mr"
    rules.write_text("".join(f'campaign "{n}" cost 100\n' for n in LONG))
    out = tmp_path / "report.html"
    r = CliRunner().invoke(
        main,
        ["report", "html", str(out), "--store", store, "--rules", str(rules), "--title", TITLE],
    )
    assert r.exit_code == 0, r.output
    with drawn(out) as tab:
        seen = tab.evaluate(_OVERFLOW)
    assert seen["page"] <= 0
    assert seen["title"] == [0, 0]
    assert seen["tables"] and all(over <= 0 for over in seen["tables"]), seen["tables"]
    assert seen["figures"] and set(seen["figures"]) == {1}  # one line each
    assert set(LONG) <= set(seen["names"])  # whole, not cut
