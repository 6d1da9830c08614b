"""A sync whose times are before 1970 (negative POSIX times): new work and retried work
are due at once. They had `next_try = 0`, the first second of 1970, so every plan showed
them `backing off until 1970-01-01T00:00:00Z` and never wrote them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.sync.world import BOB, World, ev

T1969 = "1969-11-02T09:00:00Z"


def _ops(w: World) -> list[dict[str, object]]:
    plan = json.loads(w.sync("plan", "--format", "json", code=None).output)
    return [o for o in plan["ops"] if o["prospect"] == "ann@x.com"]


def test_new_work_before_1970_is_planned_and_written(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T1969, "ann@x.com", asset="Demo"), ev(T1969, "bob@x.com", asset="Demo"))
    text = w.sync("plan", code=2).output
    assert "backing off" not in text
    assert [o["op"] for o in _ops(w)] == ["create"]
    w.sync("apply")
    assert [r["Email"] for r in w.crm_rows("Lead")] == ["ann@x.com"]
    assert w.status()["queue"] == 0


def test_sync_retry_before_1970_makes_backed_off_work_due(tmp_path: Path) -> None:
    w = World(tmp_path, batch=1)
    w.seed({"Contact": [BOB]})
    w.run(ev(T1969, "cy@x.com", asset="Demo"), ev(T1969, "ann@x.com", asset="Demo"))
    w.sync("apply")  # creates Cy's lead; Ann waits for the next batch
    assert w.syncdb("SELECT prospect, attempts FROM queue") == [("ann@x.com", 0)]
    # Ann's write failed for now four times: she backs off for an hour after the last cycle.
    with sqlite3.connect(tmp_path / "w.sync.db") as conn:
        conn.execute("UPDATE queue SET attempts = 4, next_try = (SELECT max(at) FROM cycle) + 3600")
    conn.close()
    assert [o["op"] for o in _ops(w)] == ["wait"]
    w.ok("sync", "retry", "--store", str(w.store))
    assert [o["op"] for o in _ops(w)] == ["create"]
