"""A rule's `do not sync` and the CRM's deletion are two causes of one mark: an undelete in
the CRM lifts the deletion's, never the rule's (the local CRM, delete, undelete, cycles)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.sync.world import BOB, T0, World, ev

from mrules.store import SCHEMA_VERSION

STOPPER = (
    'form "Quiet"\nform "Stop"\nautomation rule "Stopper" priority 1 {\n'
    '  when all { submitted form "Stop" }\n  then { do not sync }\n}\n'
)
CAROL = {**BOB, "Id": "contact-carol", "FirstName": "Carol", "Email": "carol@x.com"}


def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.rules.write_text(w.rules.read_text().replace('form "Quiet"\n', STOPPER))
    w.seed({"Contact": [BOB, CAROL]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"), ev(T0, "carol@x.com", asset="Quiet"))
    w.sync("apply")  # both linked to their contacts
    w.run(ev("2026-11-02T09:01:00Z", "bob@x.com", asset="Stop"))  # Bob: do not sync
    return w


def changes(w: World, name: str, *rows: dict[str, Any]) -> str:
    path = w.tmp / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return str(path)


def delete_then_undelete(w: World) -> None:
    w.sync(
        "run",
        "--until",
        "2026-11-02T09:40:00Z",
        "--changes",
        changes(
            w,
            "changes.jsonl",
            {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "bob@x.com"},
            {"at": "2026-11-02T09:06:00Z", "op": "delete", "email": "carol@x.com"},
            {"at": "2026-11-02T09:25:00Z", "op": "undelete", "id": "contact-bob"},
            {"at": "2026-11-02T09:26:00Z", "op": "undelete", "id": "contact-carol"},
        ),
    )


def check_after_undelete(w: World) -> None:
    exported = w.prospects()
    bob, carol = exported["bob@x.com"], exported["carol@x.com"]
    # Both relinked to their undeleted contacts.
    ids = {r["Email"]: r["Id"] for r in w.crm_rows("Contact") if not r["IsDeleted"]}
    assert (bob["crm_status"], bob["crm_id"]) == ("contact", ids["bob@x.com"])
    assert (carol["crm_status"], carol["crm_id"]) == ("contact", ids["carol@x.com"])
    # Carol was marked by the deletion only: the undelete restores her sync. Bob's rule
    # said do not sync: it still holds, and `explain` names the rule.
    assert carol["do_not_sync"] is False
    assert bob["do_not_sync"] is True
    data = json.loads(
        w.ok("explain", "bob@x.com", "--store", str(w.store), "--format", "json").output
    )
    assert data["crm"]["do_not_sync"]["rule"]["name"] == "Stopper"
    # Later cycles keep it so; the CRM's contact of Bob is never written again.
    before = [r for r in w.crm_rows("Contact") if r["Email"] == "bob@x.com"]
    w.sync("run", "--until", "2026-11-02T10:30:00Z")
    assert w.prospects()["bob@x.com"]["do_not_sync"] is True
    assert [r for r in w.crm_rows("Contact") if r["Email"] == "bob@x.com"] == before


def test_an_undelete_keeps_a_rule_s_do_not_sync(tmp_path: Path) -> None:
    """One flag served both causes: the undelete cleared it, and Bob, whom a rule had marked
    do not sync, was synced again."""
    w = world(tmp_path)
    delete_then_undelete(w)
    check_after_undelete(w)


def test_a_rule_s_do_not_sync_while_deleted_survives_the_undelete(tmp_path: Path) -> None:
    """The rule marks Bob while his contact is in the recycle bin (the mark already held
    for the deletion): the undelete must still leave the rule's mark."""
    w = World(tmp_path)
    w.rules.write_text(w.rules.read_text().replace('form "Quiet"\n', STOPPER))
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("apply")
    w.sync(
        "run",
        "--until",
        "2026-11-02T09:20:00Z",
        "--changes",
        changes(
            w, "c1.jsonl", {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "bob@x.com"}
        ),
    )
    assert w.prospects()["bob@x.com"]["crm_status"] == "deleted"
    w.run(ev("2026-11-02T09:21:00Z", "bob@x.com", asset="Stop"))
    w.sync(
        "run",
        "--until",
        "2026-11-02T09:40:00Z",
        "--changes",
        changes(
            w, "c2.jsonl", {"at": "2026-11-02T09:25:00Z", "op": "undelete", "id": "contact-bob"}
        ),
    )
    bob = w.prospects()["bob@x.com"]
    assert (bob["crm_status"], bob["do_not_sync"]) == ("contact", True)


def test_a_schema_4_store_is_migrated_with_each_cause(tmp_path: Path) -> None:
    """A store written before the causes were kept apart: its states have no `dr`. The
    migration gives it to Bob (marked by a rule, then deleted in the CRM: the history says
    the rule's step came last), not to Carol (marked by the deletion alone)."""
    assert SCHEMA_VERSION >= 5  # the step under test is 4 -> 5; later ones follow it
    w = world(tmp_path)
    w.sync(
        "run",
        "--until",
        "2026-11-02T09:20:00Z",
        "--changes",
        changes(
            w,
            "c1.jsonl",
            {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "bob@x.com"},
            {"at": "2026-11-02T09:06:00Z", "op": "delete", "email": "carol@x.com"},
        ),
    )
    conn = sqlite3.connect(w.store)
    with conn:
        for pid, state in conn.execute("SELECT id, state FROM prospects").fetchall():
            raw = json.loads(state)
            assert raw.get("ds") is True and raw.get("st") == "deleted"
            raw.pop("dr", None)
            conn.execute("UPDATE prospects SET state = ? WHERE id = ?", (json.dumps(raw), pid))
        conn.execute("UPDATE meta SET value = 4 WHERE key = 'schema_version'")
    conn.close()
    w.sync(
        "run",
        "--until",
        "2026-11-02T09:40:00Z",
        "--changes",
        changes(
            w,
            "c2.jsonl",
            {"at": "2026-11-02T09:25:00Z", "op": "undelete", "id": "contact-bob"},
            {"at": "2026-11-02T09:26:00Z", "op": "undelete", "id": "contact-carol"},
        ),
    )
    check_after_undelete(w)
