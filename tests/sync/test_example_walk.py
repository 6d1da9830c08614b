"""The issue's "Done when", walked on the bundled example as a new user would (CLI only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from mrules.cli import main
from mrules.crm.emulator import EmulatedCrm

ROOT = Path(__file__).resolve().parents[2]


def test_done_when_on_the_example(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ex = tmp_path / "examples" / "getcloudy"
    store = str(tmp_path / "getcloudy.db")
    rules = str(ex / "rules")

    def cli(*args: str, code: int = 0) -> Result:
        r = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert r.exit_code == code, (args, r.output)
        return r

    def sync(*args: str, code: int = 0) -> Result:
        return cli("sync", *args, "--rules", rules, "--store", store, code=code)

    cli("crm", "load", str(ex / "crm"), "--store", store)
    cli("run", rules, str(ex / "events.jsonl"), "--store", store)
    plan = json.loads(sync("plan", "--format", "json", code=2).output)
    # A lead only for the assigned prospect nobody in the CRM has; contacts linked.
    assert [o["prospect"] for o in plan["ops"] if o["op"] == "create"] == ["leung@example.com"]
    links = {i["prospect"]: i["object"] for i in plan["inbound"] if i["op"] == "link"}
    assert links == {
        "bob@bigcorp.example": "contact",
        "ivy@bigcorp.example": "contact",
        "carol@startup.example": "contact",
        "henry@example.org": "lead",
    }
    # Leung's form asked twice for one campaign membership: one write.
    members = [
        o
        for o in plan["ops"]
        if o["op"] == "campaign_member" and o["prospect"] == "leung@example.com"
    ]
    assert len(members) == 1
    text = sync("plan", code=2).output
    assert "campaign 'Get Cloudy Consult 2026', status 'Responded'" in text
    assert "task 'Call enterprise lead', due in 2 days, priority High" in text

    def used() -> int:
        crm = EmulatedCrm.open(tmp_path / "getcloudy.crm.db", create=False)
        try:
            crm.set_clock(crm.now().replace(year=2026, month=12, day=20, hour=0, minute=0))
            return crm.api_usage().used  # today's calls (the day of the sync's clock)
        finally:
            crm.close()

    before = used()
    applied = sync("apply").output
    assert "1 created, 4 linked" in applied and "0 errors" in applied
    crm = EmulatedCrm.open(tmp_path / "getcloudy.crm.db", create=False)
    try:
        (leung,) = [r for r in crm.records("Lead") if r.fields["Email"] == "leung@example.com"]
        ours = [m for m in crm.records("CampaignMember") if m.fields.get("LeadId") == leung.id]
        assert len(ours) == 1
        calls_so_far = used() - before
    finally:
        crm.close()
    # Every call the applied cycle made, its plan's reads too, is counted.
    status = json.loads(cli("sync", "status", "--store", store, "--format", "json").output)
    assert status["api_calls"] == calls_so_far > 0

    # The next plan only reads back what the sync wrote (kept for reports): it says so.
    r = sync("plan", code=2)
    assert r.output.splitlines()[-1].startswith("nothing to write; CRM records read for reports")
    sync("apply")
    assert sync("plan").output.splitlines()[-1] == "nothing to do"

    # CRM changes on the clock; a contact deleted in the CRM is honoured.
    r = sync("run", "--changes", str(ex / "crm-changes.jsonl"), "--until", "2026-12-20T02:00:00Z")
    assert r.output.splitlines()[-1].endswith("  10 idle cycles: nothing to do")
    people = {
        json.loads(line)["email"]: json.loads(line)
        for line in cli("state", "export", "--store", store).output.splitlines()
    }
    assert people["carol@startup.example"]["crm_status"] == "deleted"
    assert people["henry@example.org"]["crm_status"] == "contact"  # converted in the CRM
    assert all(p["pending_crm"] == [] for p in people.values())

    # A value the CRM refuses: the error queue keeps it, with the field and the code.
    long_phone = "+33 1 40 00 00 02 ext. 1234, ask for the IT desk, mornings only"
    (tmp_path / "ivy.jsonl").write_text(
        json.dumps(
            {
                "ts": "2026-12-21T09:00:00Z",
                "type": "prospect_update",
                "prospect": "ivy@bigcorp.example",
                "fields": {"phone": long_phone},
            }
        )
        + "\n"
    )
    cli("run", rules, str(tmp_path / "ivy.jsonl"), "--store", store)
    assert "1 error" in sync("apply").output
    status = json.loads(cli("sync", "status", "--store", store, "--format", "json").output)
    (err,) = status["error_queue"]
    assert (err["prospect"], err["field"], err["code"]) == (
        "ivy@bigcorp.example",
        "Phone",
        "STRING_TOO_LONG",
    )
    assert json.loads(err["value"]) == long_phone  # the value is kept, not dropped


def test_a_backlog_drains_by_batch_on_the_example(tmp_path: Path) -> None:
    """2,000 form submissions a day after the last cycle: each asks for a lead and a
    campaign membership; 800 leads a cycle (members ride with their lead), and no cycle
    runs before the assignments it carries out."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ex = tmp_path / "examples" / "getcloudy"
    store = str(tmp_path / "getcloudy.db")
    rules = str(ex / "rules")

    def cli(*args: str, code: int = 0) -> Result:
        r = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert r.exit_code == code, (args, r.output)
        return r

    cli("crm", "load", str(ex / "crm"), "--store", store)
    cli("run", rules, str(ex / "events.jsonl"), "--store", store)
    cli("sync", "apply", "--rules", rules, "--store", store)  # the cycle at 2026-12-20T00:00
    many = tmp_path / "many.jsonl"
    many.write_text(
        "".join(
            json.dumps(
                {
                    "ts": "2026-12-21T10:00:00Z",
                    "type": "form_submit",
                    "prospect": f"p{i:04d}@example.net",
                    "asset": "Demande Get Cloudy",
                }
            )
            + "\n"
            for i in range(2000)
        )
    )
    cli("run", rules, str(many), "--store", store)
    r = cli("sync", "plan", "--rules", rules, "--store", store, "--format", "json", code=2)
    plan = json.loads(r.output)
    assert plan["at"] == "2026-12-21T10:00:00Z"  # not 2026-12-20T00:10: the store is further on
    s = plan["summary"]
    assert (s["records"], s["this_cycle"], s["waiting"], s["with_records"]) == (
        2000,
        800,
        1200,
        2000,
    )
    assert (s["cycles_to_clear"], s["clear_at"]) == (3, "2026-12-21T10:20:00Z")
    text = cli("sync", "plan", "--rules", rules, "--store", store, code=2).output
    assert (
        "2,000 records to write: 800 this cycle, 1,200 waiting (and 2,000 campaign members"
        " or tasks with the records created)" in text
    )
    r = cli("sync", "run", "--rules", rules, "--store", store, "--until", "2026-12-21T10:30:00Z")
    lines = r.output.splitlines()
    assert [line.split()[0] for line in lines[:3]] == [
        "2026-12-21T10:00:00Z",
        "2026-12-21T10:10:00Z",
        "2026-12-21T10:20:00Z",
    ]
    assert [int(line.split("created")[1].split()[0]) for line in lines[:3]] == [800, 800, 400]
