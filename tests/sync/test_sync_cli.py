"""`mrules sync plan / apply / run / status / retry` on small worlds (docs/sync.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.sync.world import BOB, T0, World, ev

HENRY = {
    "Id": "lead-henry",
    "LastName": "Blanc",
    "Company": "Example",
    "Email": "henry@x.com",
    "Phone": "+1 555 0202",
    "OwnerId": "sam",
}


def _world(tmp_path: Path, batch: int = 800) -> World:
    w = World(tmp_path, batch)
    w.seed({"Contact": [BOB], "Lead": [HENRY]})
    return w


def test_plan_shows_create_link_and_exit_codes(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(
        ev(
            T0,
            "ann@x.com",
            asset="Demo",
        ),
        ev(T0, "bob@x.com", asset="Demo"),
        ev(T0, "cleo@x.com", asset="Quiet"),
    )
    r = w.sync("plan", "--format", "json", code=2)
    plan = json.loads(r.output)
    ops = {(o["op"], o["prospect"]) for o in plan["ops"]}
    assert ("create", "ann@x.com") in ops  # assigned, nobody has the email: a lead
    assert not any(p == "cleo@x.com" and op == "create" for op, p in ops)  # not assigned
    links = {i["prospect"]: i for i in plan["inbound"] if i["op"] == "link"}
    assert links["bob@x.com"]["object"] == "contact"  # an existing contact, no lead
    text = w.sync("plan", code=2).output
    assert "create" in text and "ann@x.com" in text and "no contact or lead" in text
    w.sync("apply")
    leads = [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]
    assert len(leads) == 1 and leads[0]["LastName"] == "[[unknown]]"
    assert leads[0]["OwnerId"] == w.crm().label_id("alan")
    assert not [r for r in w.crm_rows("Lead") if r["Email"] == "bob@x.com"]
    p = w.prospects()
    assert p["ann@x.com"]["crm_status"] == "lead" and p["ann@x.com"]["crm_id"] == leads[0]["Id"]
    assert p["bob@x.com"]["crm_status"] == "contact"
    assert p["bob@x.com"]["fields"]["phone"] == "+1 555 0101"  # a value beats a blank
    # Nothing more to do: exit 0.
    assert "nothing to do" in w.sync("plan", code=0).output


def test_saved_plan_applies_once_and_a_stale_one_is_refused(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    out = tmp_path / "plan.json"
    w.sync("plan", "--out", str(out), code=2)
    w.sync("apply", str(out))
    before = w.crm_rows("Lead")
    again = w.sync("apply", str(out))
    assert "already applied" in again.output
    assert w.crm_rows("Lead") == before
    # A plan made, then the CRM changes: refused.
    w.run(ev("2026-11-02T09:05:00Z", "dora@x.com", asset="Demo"))
    w.sync("plan", "--out", str(out), code=2)
    w.changes(
        {
            "at": "2026-11-02T09:06:00Z",
            "op": "update",
            "email": "henry@x.com",
            "fields": {"Title": "CEO"},
        },
        until="2026-11-02T09:06:00Z",
    )
    r = w.sync("apply", str(out), code=1)
    assert "stale" in r.output and "the CRM changed" in r.output
    assert not [r for r in w.crm_rows("Lead") if r["Email"] == "dora@x.com"]


def test_backlog_drains_by_batch(tmp_path: Path) -> None:
    w = _world(tmp_path, batch=800)
    w.run(*(ev(T0, f"p{i:04d}@x.com", asset="Demo") for i in range(2000)))
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    s = plan["summary"]
    assert (s["records"], s["this_cycle"], s["waiting"], s["cycles_to_clear"]) == (
        2000,
        800,
        1200,
        3,
    )
    assert s["clear_at"] == "2026-11-02T09:20:00Z"
    r = w.sync("run", "--until", "2026-11-02T09:30:00Z")
    lines = r.output.splitlines()
    created = [int(line.split("created")[1].split()[0]) for line in lines if "created" in line]
    assert created == [800, 800, 400]
    assert lines[-1] == "2026-11-02T09:30:00Z  1 idle cycle: nothing to do"
    assert len(w.crm_rows("Lead")) == 2001
    assert w.status()["queue"] == 0


def test_rejected_write_goes_to_the_error_queue_and_is_retried(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(
        ev(
            T0,
            "ann@x.com",
            "prospect_update",
            fields={"company_size": "huge", "phone": "+1 555 0303"},
        ),
        ev(T0, "ann@x.com", asset="Demo"),
    )
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    (create,) = [o for o in plan["ops"] if o["op"] == "create"]
    assert create["expected_errors"][0]["code"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    w.sync("apply")
    (lead,) = [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]
    assert lead["Phone"] == "+1 555 0303"  # the other fields went through
    st = w.status()
    assert st["errors_by_code"] == {"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": 1}
    (err,) = st["error_queue"]
    assert (err["prospect"], err["field"]) == ("ann@x.com", "Company_Size__c")
    # Held while nothing changes: the next plan does not write it again.
    plan = json.loads(
        w.sync("plan", "--format", "json", "--at", "2026-11-02T09:10:00Z", code=2).output
    )
    assert [o["op"] for o in plan["ops"]] == ["hold"]
    # The prospect changes: retried, and it goes through.
    w.run(
        ev("2026-11-02T09:15:00Z", "ann@x.com", "prospect_update", fields={"company_size": "200+"})
    )
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    (lead,) = [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]
    assert lead["Company_Size__c"] == "200+"
    assert w.status()["errors"] == 0


def test_sync_retry_tries_held_errors_again(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(
        ev(T0, "ann@x.com", "prospect_update", fields={"company_size": "huge"}),
        ev(T0, "ann@x.com", asset="Demo"),
    )
    w.sync("apply")
    assert w.status()["errors"] == 1
    r = w.ok("sync", "retry", "--store", str(w.store))
    assert "1 held error" in r.output
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    assert [o["op"] for o in plan["ops"]] == ["update"]
    w.sync("apply")
    st = w.status()
    assert st["errors"] == 1 and st["error_queue"][0]["attempts"] == 2


def test_crm_delete_honoured_and_not_recreated(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "ann@x.com"},
        until="2026-11-02T09:05:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    p = w.prospects()["ann@x.com"]
    assert (p["crm_status"], p["crm_id"], p["do_not_sync"]) == ("deleted", None, True)
    # A later assignment does not recreate it.
    w.run(ev("2026-11-02T09:12:00Z", "ann@x.com", asset="Demo"))
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert not [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]


def test_conversion_moves_the_link_to_the_contact(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "henry@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    assert w.prospects()["henry@x.com"]["crm_status"] == "lead"
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "convert",
            "email": "henry@x.com",
            "opportunity": "Henry pilot",
            "opportunity_label": "opp-h",
        },
        {"at": "2026-11-02T09:06:00Z", "op": "win", "id": "opp-h", "amount": 1500},
        until="2026-11-02T09:06:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    p = w.prospects()["henry@x.com"]
    assert p["crm_status"] == "contact" and p["crm_id"].startswith("003")
    (hist,) = w.syncdb("SELECT history FROM link WHERE prospect='henry@x.com'")[0]
    assert json.loads(hist)[0].startswith("lead:00Q")
    opps = w.syncdb("SELECT name, stage, amount, is_won FROM opportunity")
    assert ("Henry pilot", "Closed Won", 1500.0, 1) in opps


def test_fields_follow_base_and_policy(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "bob@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    # One-sided: the CRM changes Title (prefer ours): it still wins, nothing of ours moved.
    # Two-sided: both change lead_source (prefer crm) and phone (most recent: ours later).
    w.changes(
        {
            "at": "2026-11-02T09:03:00Z",
            "op": "update",
            "email": "bob@x.com",
            "fields": {"Title": "CTO", "LeadSource": "Phone", "Phone": "+1 555 0999"},
        },
        until="2026-11-02T09:03:00Z",
    )
    w.run(
        ev(
            "2026-11-02T09:04:00Z",
            "bob@x.com",
            "prospect_update",
            fields={"lead_source": "Webinar", "phone": "+1 555 0777"},
        )
    )
    plan = json.loads(
        w.sync("plan", "--format", "json", "--at", "2026-11-02T09:10:00Z", code=2).output
    )
    rows = {f["crm_field"]: f for o in plan["ops"] for f in o.get("fields", ())}
    assert (rows["Title"]["winner"], rows["Title"]["why"]) == ("crm", "one-sided change (CRM)")
    assert rows["LeadSource"]["winner"] == "crm"
    assert rows["Phone"]["winner"] == "ours" and "most recent" in rows["Phone"]["why"]
    w.sync("apply")
    f = w.prospects()["bob@x.com"]["fields"]
    assert (f["title"], f["lead_source"], f["phone"]) == ("CTO", "Phone", "+1 555 0777")
    (bob,) = [r for r in w.crm_rows("Contact") if r["Email"] == "bob@x.com"]
    assert (bob["Title"], bob["LeadSource"], bob["Phone"]) == ("CTO", "Phone", "+1 555 0777")


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", "utf-8")
    r = w.sync("apply", str(bad), code=2)
    assert r.output.startswith("mrules: error:") and "not a sync plan" in r.output
    bad.write_text('{"format": "mrules-sync-plan/1", "id": "x", "at": "never"}', "utf-8")
    assert "damaged" in w.sync("apply", str(bad), code=2).output
    good = tmp_path / "good.json"
    w.sync("plan", "--out", str(good), code=2)
    edited = json.loads(good.read_text("utf-8"))
    edited["ops"][0]["values"]["Email"] = "someone@else.com"
    bad.write_text(json.dumps(edited), "utf-8")
    assert "changed after it was made" in w.sync("apply", str(bad), code=1).output
    r = w.sync("run", "--until", "tomorrow", code=2)
    assert "not a time" in r.output
    r = w.cli("sync", "status", "--store", str(tmp_path / "none.db"))
    assert r.exit_code == 2 and "none.db: no such store" in r.output  # was: no sync yet


def test_readme_sync_transcript_is_real_output(tmp_path: Path) -> None:
    import re
    import shutil

    from click.testing import CliRunner

    from mrules.cli import main

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text("utf-8")
    section = readme.split("## The CRM sync on the example", 1)[1].split("\n## ", 1)[0]
    (excerpt,) = re.findall(r"```text\n(.*?)```", section, re.S)
    shutil.copytree(root / "examples", tmp_path / "examples")
    store = str(tmp_path / "getcloudy.db")
    rules = str(tmp_path / "examples/getcloudy/rules")
    run = CliRunner().invoke
    assert (
        run(
            main, ["crm", "load", str(tmp_path / "examples/getcloudy/crm"), "--store", store]
        ).exit_code
        == 0
    )
    assert (
        run(
            main,
            ["run", rules, str(tmp_path / "examples/getcloudy/events.jsonl"), "--store", store],
        ).exit_code
        == 0
    )
    plan = run(main, ["sync", "plan", "--rules", rules, "--store", store])
    assert plan.exit_code == 2
    for line in excerpt.splitlines():
        assert line in plan.output.splitlines(), line
    assert run(main, ["sync", "apply", "--rules", rules, "--store", store]).exit_code == 0
    assert run(main, ["sync", "status", "--store", store]).exit_code == 0


def test_a_sync_refuses_a_store_a_run_holds(tmp_path: Path) -> None:
    from mrules.store import Store

    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    held = Store.open(w.store)  # a run in progress holds the writer lock
    try:
        r = w.sync("apply", code=5)
        assert "mrules: error:" in r.output and "--wait" in r.output
    finally:
        held.close()
    # And a run refuses a store a sync holds: the sync holds the lock from start to end.
    from mrules.api import open_store

    st = open_store(str(w.store))
    try:
        r = w.cli("run", str(w.rules), str(w.events), "--store", str(w.store))
        assert r.exit_code == 5
    finally:
        st.close()
    w.sync("apply")
    assert [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]


def test_a_plan_file_that_cannot_be_finished_leaves_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sync plan --out` writes the plan a piece at a time into a temporary file that
    replaces the target only once whole: a disk that fills half-way leaves the plan
    saved before, and no temporary file."""
    import errno

    from mrules.sync import spool

    w = _world(tmp_path)
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    out = tmp_path / "plan.json"
    w.sync("plan", "--out", str(out), code=2)
    saved = out.read_bytes()
    real = spool.dump_json

    def full_disk(value: Any, fh: Any, indent: int = 1) -> None:
        fh.write('{\n "api_calls": ')  # some of it written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "dump_json", full_disk)
    w.run(ev("2026-11-02T09:05:00Z", "dora@x.com", asset="Demo"))
    res = w.sync("plan", "--out", str(out), code=4)
    assert "cannot write the plan: No space left on device" in res.output
    assert out.read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".plan.json")) == []
    monkeypatch.setattr(spool, "dump_json", real)
    w.sync("plan", "--out", str(out), code=2)
    assert out.read_bytes() != saved  # the next plan is written whole


def test_a_mapped_field_the_crm_lacks_is_said_by_apply_and_run(tmp_path: Path) -> None:
    """Pardot maps a custom field only to one created in Salesforce first: a mapping to a
    field the CRM lacks syncs nothing, and `sync apply` and `sync run` say so, as `sync
    plan` does, once a command (not once a cycle)."""
    w = World(tmp_path, settings='map title <-> "Titel__c" prefer ours')
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "ann@x.com", asset="Demo", fields={"title": "CTO"}))
    note = "note: Lead has no field Titel__c: not synced on Leads"
    assert note in w.sync("plan", code=2).output
    applied = w.sync("apply")
    assert note in applied.stdout, applied.output
    assert json.loads(w.sync("apply", "--format", "json").stdout)["notes"] == [
        "Lead has no field Titel__c: not synced on Leads",
        "Contact has no field Titel__c: not synced on Contacts",
    ]
    ran = w.sync("run", "--until", "2026-11-02T10:00:00Z")
    assert ran.stderr.count(note) == 1, ran.output
    assert "Contact has no field Titel__c: not synced on Contacts" in ran.stderr
    assert note not in ran.stdout  # the cycles' lines stay one a cycle
