"""A store written before clicked email links named their block reads as it promised.

Such a store kept one entry per email and link ("EMAIL|URL") for all the
email's `on click of email` blocks: a link fired them at its first click and
never again. Now each block fires once per prospect and link, and the entries
of the second and later blocks carry a mark. A store without the
`clicks_by_block` shared key has its old entries count for every block the
rule set gives the email: a link clicked before fires nothing again, a new
link fires every block once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from mrules.cli import main

RULES = """
field early: number
field late: number
email "News"
on click of email "News" { increment early by 1 }
on click of email "News" { increment late by 1 }
"""


def _click(ts: str, url: str) -> str:
    return orjson.dumps(
        {
            "ts": ts,
            "type": "email_click",
            "prospect": "ann@example.com",
            "asset": "News",
            "url": url,
        }
    ).decode()


def _run(tmp: Path, store: Path, name: str, lines: list[str]) -> None:
    events = tmp / name
    events.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(
        main, ["run", str(tmp / "rules"), str(events), "--store", str(store), "-q"]
    )
    assert result.exit_code == 0, result.output


def _ann(store: Path) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["state", "export", "--store", str(store)])
    assert result.exit_code == 0, result.output
    records = [orjson.loads(x) for x in result.output.splitlines() if x.strip()]
    return next(r for r in records if r["email"] == "ann@example.com")


def _as_written_before(store: Path) -> None:
    """What mrules kept before: one unmarked entry per link, no `clicks_by_block`."""
    conn = sqlite3.connect(store)
    with conn:
        assert conn.execute("DELETE FROM shared WHERE key = 'clicks_by_block'").rowcount == 1
        for pid, state in conn.execute("SELECT id, state FROM prospects").fetchall():
            data = orjson.loads(state)
            if "ck" in data:
                assert len(data["ck"]) == 2  # the link, once per block
                data["ck"] = [x for x in data["ck"] if "\x1f" not in x]
                conn.execute(
                    "UPDATE prospects SET state = ? WHERE id = ?", (orjson.dumps(data), pid)
                )
    conn.close()


def test_links_clicked_before_fire_no_block_again(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.mr").write_text(RULES)
    store = tmp_path / "old.db"
    _run(tmp_path, store, "one.jsonl", [_click("2026-11-02T09:00:00Z", "https://x.example/1")])
    assert _ann(store)["fields"] == {"early": 1, "late": 1}
    _as_written_before(store)
    _run(
        tmp_path,
        store,
        "two.jsonl",
        [
            _click("2026-11-03T09:00:00Z", "https://x.example/1"),
            _click("2026-11-03T10:00:00Z", "https://x.example/2"),
            _click("2026-11-03T11:00:00Z", "https://x.example/2"),
        ],
    )
    # Link 1 fired both blocks in run 1 and fires nothing again; link 2 each block once.
    assert _ann(store)["fields"] == {"early": 2, "late": 2}
    conn = sqlite3.connect(store)
    kept = conn.execute("SELECT value FROM shared WHERE key = 'clicks_by_block'").fetchone()
    conn.close()
    assert kept is not None and orjson.loads(kept[0]) is True


def test_a_prospect_with_no_click_stops_no_one_after_it(tmp_path: Path) -> None:
    """The store is read in email order: aaron, who clicked nothing, comes before ann, and
    ann's old entries are still given the email's later block (found by mutation testing
    of engine/run.py: stopping at the first prospect with no click passed)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.mr").write_text(RULES)
    store = tmp_path / "old.db"
    view = orjson.dumps(
        {
            "ts": "2026-11-02T08:00:00Z",
            "type": "page_view",
            "prospect": "aaron@example.com",
            "url": "https://x.example/",
        }
    ).decode()
    _run(
        tmp_path, store, "one.jsonl", [view, _click("2026-11-02T09:00:00Z", "https://x.example/1")]
    )
    _as_written_before(store)
    _run(tmp_path, store, "two.jsonl", [_click("2026-11-03T09:00:00Z", "https://x.example/1")])
    # link 1 fired both blocks in run 1: clicked again, it fires neither
    assert _ann(store)["fields"] == {"early": 1, "late": 1}
