"""A sync whose times are before 1970 (negative POSIX times): new work and retried work
are due at once. They had `next_try = 0`, the first second of 1970, so every plan showed
them `backing off until 1970-01-01T00:00:00Z` and never wrote them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.sync.world import BOB, ORG, World, ev

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


def test_a_crm_edit_at_the_first_second_of_1970_is_its_fields_change_time(
    tmp_path: Path,
) -> None:
    """Bob's phone changed on both sides (`prefer most recent`): ours at noon on the last day
    of 1969, the CRM's at 1970-01-01T00:00:00Z, POSIX time 0. That time was taken for none
    (a zero read as no time), so the field kept the CRM's earlier edit's time (06:00) and
    ours won, though the CRM changed it last. The CRM's value wins now, timed at 0."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB]}, {**ORG, "clock": "1969-12-31T00:00:00Z"})
    w.run(ev("1969-12-31T01:00:00Z", "bob@x.com", asset="Demo"))
    w.sync("apply")  # Bob linked to his contact

    def crm_phone(at: str, phone: str) -> None:
        change = {"op": "update", "object": "Contact", "email": "bob@x.com"}
        w.changes({"at": at, **change, "fields": {"Phone": phone}}, until=at)

    crm_phone("1969-12-31T06:00:00Z", "+1 555 0202")
    w.sync("run", "--until", "1969-12-31T06:10:00Z")  # taken, timed 06:00
    w.run(ev("1969-12-31T12:00:00Z", "bob@x.com", "prospect_update", fields={"phone": "0303"}))
    crm_phone("1970-01-01T00:00:00Z", "+1 555 0404")
    plan = json.loads(w.sync("plan", "--format", "json", code=None).output)
    (row,) = [f for o in plan["ops"] for f in o.get("fields", []) if f["field"] == "phone"]
    assert (row["winner"], row["their_time"], row["our_time"]) == (
        "crm",
        "1970-01-01T00:00:00Z",
        "1969-12-31T12:00:00Z",
    ), row
    w.sync("apply")
    assert w.prospects()["bob@x.com"]["fields"]["phone"] == "+1 555 0404"
