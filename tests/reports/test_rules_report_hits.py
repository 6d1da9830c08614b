"""`mrules report rules` on a range: a hit counts when its time is in [since, until), and
the time of a late event's hit is when the engine applied it, its clock, not the
older time the event gives (docs/reports.md, rules). Found by mutation testing of
reports/_history.py: the range's ends, stopping at the first row out of range, and
reading a late event's row from the wrong places each passed the suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import mrules


def _view(event_id: str, ts: str, who: str) -> dict[str, str]:
    return {"id": event_id, "ts": ts, "type": "page_view", "prospect": who,
            "url": "https://acme.example/pricing"}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("hits")
    rules = work / "rules.mr"
    rules.write_text(
        'page action "Home" on "acme.example/home" { score +1 }\n'
        'page action "Pricing" on "acme.example/pricing" { score +5 }\n',
        "utf-8",
    )
    events = [
        # Home, stored first, hit before every range below but the last: a rule without
        # hits in the range does not end the reading of the rules after it
        {**_view("e0", "2026-09-29T00:00:00Z", "p0@x.example"), "url": "https://acme.example/home"},
        _view("e1", "2026-10-01T10:00:00Z", "p1@x.example"),
        _view("e2", "2026-10-02T00:00:00Z", "p2@x.example"),  # at --since 2026-10-02
        _view("e3", "2026-10-03T00:00:00Z", "p3@x.example"),  # at --until 2026-10-03
        _view("e4", "2026-09-30T12:00:00Z", "p4@x.example"),  # late: applied at 10-03
    ]
    path = work / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    store = work / "s.db"
    r = mrules("run", rules, path, "--store", store)
    assert r.exit_code == 0, r.output
    return store


@pytest.mark.parametrize(
    ("range_", "expected"),
    [
        (("--since", "2026-10-02", "--until", "2026-10-03"), (1, 1)),  # e2: since is in
        (("--since", "2026-10-03"), (2, 2)),  # e3, and e4 at its clock
        (("--until", "2026-10-01"), None),  # e4 is not of September: nothing
        ((), (4, 4)),
    ],
)
def test_the_hits_of_a_range(
    store: Path, range_: tuple[str, ...], expected: tuple[int, int] | None
) -> None:
    r = mrules("report", "rules", "--store", store, "--format", "json", *range_)
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    got = [(x["matches"], x["prospects"]) for x in body["rules"] if x["name"] == "Pricing"]
    assert got == ([] if expected is None else [expected])
