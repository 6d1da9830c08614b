"""The sync's shortcuts give the same plans as the long way (docs/sync.md#speed)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.sync.world import BOB, T0, World, ev

REACTS = """
automation rule "Linked to a contact" priority 1 {
  when all { crm status is contact }
  then { set title = "Customer" }
}
"""


def _ops(plan: dict) -> list:
    return sorted(json.dumps(o, sort_keys=True) for o in plan["ops"])


@pytest.mark.parametrize("commit_every", [None, 1])
def test_a_rule_reacting_to_a_synced_fact_is_seen_by_the_next_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, commit_every: int | None
) -> None:
    """Delivery marks the prospects whose rules reacted to the sync's facts and moves the
    sync's store position past its own facts; the next plan (not reading that ledger back)
    is the plan the whole ledger gives. With a commit per fact, the marks are made a
    committed batch at a time while the facts are still being read: the same result."""
    if commit_every is not None:
        import mrules.streamrun

        real_run = mrules.streamrun.run_opened
        commits: list[int] = []

        def run(*args: Any, **kwargs: Any) -> Any:
            kwargs["commit_every"] = commit_every
            seen = kwargs.get("on_commit")
            if seen is not None:
                kwargs["on_commit"] = lambda b: (commits.append(1), seen(b))
            return real_run(*args, **kwargs)

        monkeypatch.setattr(mrules.streamrun, "run_opened", run)
    w = World(tmp_path)
    w.rules.write_text(w.rules.read_text("utf-8") + REACTS, "utf-8")
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"), ev(T0, "cleo@x.com", asset="Quiet"))
    saved = tmp_path / "plan.json"
    w.sync("plan", "--out", str(saved), code=2)
    first = json.loads(saved.read_text("utf-8"))
    assert [i["op"] for i in first["inbound"]] == ["link"]
    w.sync("apply", str(saved))
    assert w.prospects()["bob@x.com"]["fields"]["title"] == "Customer"  # the rule reacted
    (seq,) = w.syncdb("SELECT value FROM meta WHERE key='store_seq'")[0]
    assert int(seq) > first["store_seq"]  # moved past the sync's own facts
    assert w.syncdb("SELECT prospect FROM dirty") == [("bob@x.com",)]
    assert w.syncdb("SELECT count(*) FROM inbound WHERE delivered = 0") == [(0,)]
    if commit_every is not None:
        assert len(commits) > 1  # the facts went through in more than one commit

    short = json.loads(w.sync("plan", "--format", "json", code=2).output)
    (op,) = [o for o in short["ops"] if o["op"] != "base"]
    assert (op["op"], op["prospect"], op["values"]) == (
        "update",
        "bob@x.com",
        {"Title": "Customer"},
    )
    # The long way: the sync's position where the apply left it, the ledger read back.
    conn = sqlite3.connect(tmp_path / "w.sync.db")
    with conn:
        conn.execute("UPDATE meta SET value=? WHERE key='store_seq'", (first["store_seq"],))
        conn.execute("DELETE FROM dirty")
    conn.close()
    long = json.loads(w.sync("plan", "--format", "json", code=2).output)
    assert _ops(long) == _ops(short)
    assert long["summary"] == short["summary"]

    w.sync("apply")
    (contact,) = w.crm_rows("Contact")
    assert contact["Title"] == "Customer"
    assert w.syncdb("SELECT prospect FROM dirty") == []  # looked at: unmarked
    assert "nothing to do" in w.sync("plan", code=0).output


def test_a_run_between_apply_and_delivery_keeps_the_long_way(tmp_path: Path) -> None:
    """When the engine ran between an apply and its delivery, the sync's store position
    stays where the apply put it: the next plan reads that run's ledger."""
    from mrules.api import compile_rules
    from mrules.store import Store
    from mrules.sync import SyncDb, default_sync_path
    from mrules.sync.apply import deliver

    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    db = SyncDb.open(default_sync_path(w.store))
    conn = sqlite3.connect(tmp_path / "w.sync.db")
    saved = tmp_path / "plan.json"
    w.sync("plan", "--out", str(saved), code=2)
    plan = json.loads(saved.read_text("utf-8"))
    # Apply without delivering: the CLI delivers at once, so mark the facts undelivered
    # again and move the store on (a run of the engine) before delivering them.
    w.sync("apply", str(saved))
    with conn:
        conn.execute("UPDATE inbound SET delivered = 0")
        (facts,) = conn.execute("SELECT count(*) FROM inbound").fetchone()
        conn.execute("UPDATE meta SET value=? WHERE key='store_seq'", (plan["store_seq"],))
    w.run(ev("2026-11-02T09:01:00Z", "bob@x.com", "prospect_update", fields={"title": "CTO"}))
    store = Store.open(w.store)
    try:
        assert deliver(db, store, compile_rules(w.rules.read_text("utf-8"))) == facts
    finally:
        store.close()
        db.close()
    (seq,) = conn.execute("SELECT value FROM meta WHERE key='store_seq'").fetchone()
    conn.close()
    assert int(seq) == plan["store_seq"]
    again = json.loads(w.sync("plan", "--format", "json", code=2).output)
    (op,) = [o for o in again["ops"] if o["op"] == "update"]
    assert op["values"] == {"Title": "CTO"}
