"""`pending_crm` in `mrules state export` lists only the CRM work the sync has not done."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.sync.world import T0, World, ev


def _pending(w: World) -> dict[str, list[str]]:
    return {email: [x["kind"] for x in p["pending_crm"]] for email, p in w.prospects().items()}


def test_pending_crm_drops_what_the_sync_did(tmp_path: Path) -> None:
    w = World(tmp_path, batch=1)
    w.seed({})
    w.run(ev(T0, "ann@x.com", asset="Demo"), ev(T0, "dora@x.com", asset="Demo"))
    # No sync yet: all the work the engine asked for is pending.
    assert _pending(w) == {"ann@x.com": ["create_record"], "dora@x.com": ["create_record"]}
    w.sync("apply")  # batch 1: one record this cycle, the other waits in the queue
    pending = _pending(w)
    assert sorted(pending.values()) == [[], ["create_record"]]
    (waiting,) = [e for e, kinds in pending.items() if kinds]
    assert w.status()["queue"] == 1
    assert [r[0] for r in w.syncdb("SELECT prospect FROM queue")] == [waiting]
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert _pending(w) == {"ann@x.com": [], "dora@x.com": []}
    # New work after the sync's last cycle is pending until a cycle takes and does it.
    w.run(ev("2026-11-02T09:20:00Z", "eve@x.com", asset="Demo"))
    assert _pending(w)["eve@x.com"] == ["create_record"]


def test_a_damaged_sync_file_is_one_line_exit_4(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({})
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    (tmp_path / "w.sync.db").write_bytes(b"not a database at all" * 100)
    r = w.cli("state", "export", "--store", str(w.store))
    assert r.exit_code == 4, r.output
    assert r.output.count("\n") == 1 and "mrules: error:" in r.output
    assert "w.sync.db" in r.output
    json.dumps(r.output)  # plain text


def test_explain_json_gives_the_pending_work_as_state_export_does(tmp_path: Path) -> None:
    """`explain --format json` gave the prospect's `pending_crm` with the work the sync had
    done still in it: the create the sync made was pending there and not in the export."""
    w = World(tmp_path, batch=1)
    w.seed({})
    w.run(ev(T0, "ann@x.com", asset="Demo"), ev(T0, "dora@x.com", asset="Demo"))
    w.sync("apply")  # one record this cycle, the other waits in the queue
    exported = w.prospects()
    assert sorted(len(p["pending_crm"]) for p in exported.values()) == [0, 1]
    for email, record in exported.items():
        r = w.ok("explain", email, "--store", str(w.store), "--format", "json")
        assert json.loads(r.output)["prospect"] == record


def test_a_sync_file_with_no_table_yet_is_no_sync_for_export_and_explain(tmp_path: Path) -> None:
    """docs/sync.md: the file a first sync killed as it made it leaves (SQLite, no table)
    reads as no sync yet: all the work is pending, for `state export` and `explain` alike."""
    w = World(tmp_path)
    w.seed({})
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    before = w.prospects()
    sqlite3.connect(tmp_path / "w.sync.db").execute("PRAGMA user_version = 0").connection.close()
    assert (tmp_path / "w.sync.db").stat().st_size > 0
    assert w.prospects() == before
    assert [x["kind"] for x in before["ann@x.com"]["pending_crm"]] == ["create_record"]
    r = w.ok("explain", "ann@x.com", "--store", str(w.store), "--format", "json")
    assert json.loads(r.output)["prospect"] == before["ann@x.com"]
