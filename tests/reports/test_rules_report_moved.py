"""`mrules report rules` on a rule that moved and moved back between runs (a line added
to its file, then reverted): its hits are under two references in the store, and a
prospect's first touch is its earliest hit under either (docs/reports.md, rules).
Found by mutation testing of reports/_history.py: taking the hit of the reference
stored first, not the earliest, passed the suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import mrules

RULES = (
    'queue "Sales"\nform "F"\non submit of form "F" { assign to queue "Sales" }\n'
    'page action "Pricing" on "acme.example/pricing" { score +5 }\n'
)
MOVED = RULES.replace("page action", "# moved down a line\npage action")


def _view(event_id: str, ts: str, who: str) -> dict[str, str]:
    return {"id": event_id, "ts": ts, "type": "page_view", "prospect": who,
            "url": "https://acme.example/pricing"}  # fmt: skip


def _pricing_after(tmp_path: Path, runs: Any) -> dict[str, Any]:
    """Run each (rules, events) in turn on one store; Pricing's row of `report rules`."""
    folder, store = tmp_path / "rules", tmp_path / "s.db"
    folder.mkdir()
    for n, (rules, events) in enumerate(runs):
        (folder / "rules.mr").write_text(rules, "utf-8")
        stream = tmp_path / f"events{n}.jsonl"
        stream.write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
        r = mrules("run", folder, stream, "--store", store)
        assert r.exit_code == 0, r.output
    r = mrules("report", "rules", "--store", store, "--format", "json")
    assert r.exit_code == 0, r.output
    [pricing] = [x for x in json.loads(r.stdout)["rules"] if x["name"] == "Pricing"]
    return pricing  # type: ignore[no-any-return]


def test_the_first_touch_is_the_earliest_hit_of_a_rule_that_moved_back(tmp_path: Path) -> None:
    """Pricing at line 4 touches p0 (09:00); moved to line 5, it touches p1 at 10:00;
    back at line 4, it touches p1 again at 11:00, and p1's form assigns it at 12:00.
    p1's first touch is 10:00: two hours to MQL (0.0833 days), not one."""
    runs = (
        (RULES, [_view("a1", "2026-10-01T09:00:00Z", "p0@x.example")]),
        (MOVED, [_view("b1", "2026-10-01T10:00:00Z", "p1@x.example")]),
        (RULES, [_view("c1", "2026-10-01T11:00:00Z", "p1@x.example"),
                 {"id": "c2", "ts": "2026-10-01T12:00:00Z", "type": "form_submit",
                  "prospect": "p1@x.example", "asset": "F"}]),
    )  # fmt: skip
    pricing = _pricing_after(tmp_path, runs)
    assert (pricing["matches"], pricing["prospects"], pricing["went_mql"]) == (3, 2, 1)
    assert pricing["median_days_to_mql"] == round(2 / 24, 4)


def test_a_first_touch_in_the_mqls_second_is_the_earliest_row(tmp_path: Path) -> None:
    """All at 10:00: Pricing at line 4 touches p0; moved to line 5, it touches p1, whose
    form then assigns it; back at line 4, it touches p1 again. The first touch is the
    view before the assignment, so p1 went MQL after it (found by mutation testing:
    comparing the two hits by their second only took the later view, after the MQL)."""
    ts = "2026-10-01T10:00:00Z"
    runs = (
        (RULES, [_view("a1", ts, "p0@x.example")]),
        (MOVED, [_view("b1", ts, "p1@x.example"),
                 {"id": "b2", "ts": ts, "type": "form_submit", "prospect": "p1@x.example",
                  "asset": "F"}]),
        (RULES, [_view("c1", ts, "p1@x.example")]),
    )  # fmt: skip
    pricing = _pricing_after(tmp_path, runs)
    assert (pricing["matches"], pricing["prospects"], pricing["went_mql"]) == (3, 2, 1)
    assert pricing["median_days_to_mql"] == 0.0
