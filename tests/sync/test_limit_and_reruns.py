"""Campaign members and tasks across the API limit and a killed apply, and plans that write
nothing (docs/sync.md#errors, #nothing-lost, #plan-and-apply), run as a user would."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from mrules.cli import main
from mrules.crm.emulator import EmulatedCrm

RULES = """
user "alan@x.example"
crm campaign "C" statuses ["Sent", "Responded"]
form "F"
on submit of form "F" {
  assign to user "alan@x.example"
  add to crm campaign "C" status "Responded"
  create crm task "Call" (due in 2 days, priority "High")
}
sync salesforce {
  objects lead, contact, campaign
  every 10 minutes batch BATCH
}
"""


class Org:
    """A store with N assigned prospects, each asking for a lead, a membership and a task."""

    def __init__(self, tmp: Path, people: int, limit: int = 15000, batch: int = 800) -> None:
        self.tmp = tmp
        self.rules = tmp / "rules.mr"
        self.rules.write_text(RULES.replace("BATCH", str(batch)), "utf-8")
        self.store = tmp / "s.db"
        seed = tmp / "seed"
        seed.mkdir()
        (seed / "Campaign.csv").write_text("Id,Name\ncamp-c,C\n", "utf-8")
        (seed / "CampaignMemberStatus.csv").write_text(
            "CampaignId,Label,HasResponded,IsDefault\n"
            "camp-c,Sent,false,true\ncamp-c,Responded,true,false\n",
            "utf-8",
        )
        (seed / "User.csv").write_text(
            "Id,Username,Email,LastName\nalan,alan@x.example,alan@x.example,Alan\n", "utf-8"
        )
        self.org({"clock": "2026-11-01T00:00:00Z", "api_daily_limit": limit}, seed)
        events = tmp / "ev.jsonl"
        events.write_text(
            "".join(
                json.dumps(
                    {
                        "ts": f"2026-11-02T09:{i // 60:02d}:{i % 60:02d}Z",
                        "type": "form_submit",
                        "prospect": f"p{i}@ex.org",
                        "asset": "F",
                        "fields": {"company": "Co"},
                    }
                )
                + "\n"
                for i in range(people)
            ),
            "utf-8",
        )
        self.ok("run", str(self.rules), str(events), "--store", str(self.store))

    def org(self, org: dict[str, Any], folder: Path | None = None) -> None:
        """Load an org file (and the folder's other files) into the local CRM."""
        if folder is None:
            folder = self.tmp / f"org-{len(list(self.tmp.glob('org-*')))}"
            folder.mkdir()
        (folder / "org.json").write_text(json.dumps(org), "utf-8")
        self.ok("crm", "load", str(folder), "--store", str(self.store))

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        r = self.cli(*args)
        assert r.exit_code == 0, (args, r.output)
        return r

    def sync(self, *args: str, code: int = 0) -> Result:
        r = self.cli("sync", *args, "--rules", str(self.rules), "--store", str(self.store))
        assert r.exit_code == code, (args, r.output)
        return r

    def rows(self, sobject: str) -> list[dict[str, Any]]:
        crm = EmulatedCrm.open(self.tmp / "s.crm.db", create=False)
        try:
            return [dict(r.fields) for r in crm.records(sobject)]
        finally:
            crm.close()

    def status(self) -> dict[str, Any]:
        r = self.ok("sync", "status", "--store", str(self.store), "--format", "json")
        return json.loads(r.output)

    def crm_clock(self) -> str:
        conn = sqlite3.connect(self.tmp / "s.crm.db")
        try:
            return str(conn.execute("SELECT value FROM meta WHERE key='clock'").fetchone()[0])
        finally:
            conn.close()


def _members_and_tasks(org: Org) -> tuple[list[str], list[str]]:
    members = sorted(m["LeadId"] for m in org.rows("CampaignMember"))
    tasks = sorted(t["WhoId"] for t in org.rows("Task"))
    return members, tasks


AFTER_THE_LEADS = 12
"""A daily API limit the first cycle of `Org` reaches after its leads are created: its plan's
reads (10 calls), the leads (1 call), the campaign's lookup (1 call) fit; its members (1
call: 200 a call), its tasks' lookup and its tasks do not."""


def test_work_stopped_by_the_api_limit_waits_and_is_done_later(tmp_path: Path) -> None:
    """A limit reached after the leads were created: their members and tasks stay queued."""
    org = Org(tmp_path, people=20, limit=AFTER_THE_LEADS)
    r = org.sync("apply")
    assert "20 created" in r.output and "REQUEST_LIMIT_EXCEEDED" in r.output
    members, tasks = _members_and_tasks(org)
    assert len(members) < 20 and tasks == []
    waiting = org.status()["queue"]
    assert waiting == 20  # every prospect still has its membership and its task
    org.org({"api_daily_limit": 15000})
    org.sync("run", "--until", "2026-11-02T10:00:00Z")
    leads = sorted(lead["Id"] for lead in org.rows("Lead"))
    assert len(leads) == 20
    members, tasks = _members_and_tasks(org)
    assert members == leads  # each once: none lost, none made twice
    assert tasks == leads
    assert org.status()["queue"] == 0
    assert "nothing to do" in org.sync("plan").output


def test_sync_run_goes_on_past_the_api_limit_to_the_next_day(tmp_path: Path) -> None:
    org = Org(tmp_path, people=20, limit=AFTER_THE_LEADS)
    org.sync("apply")
    r = org.sync("run", "--until", "2026-11-03T12:00:00Z")  # was: exit 4, every time
    lines = r.output.splitlines()
    # The rest of the day's cycles, as one line (the first apply ran at 09:00:19).
    assert lines[0].startswith("2026-11-02T09:10:19Z to 2026-11-02T23:50:19Z  89 cycles not run")
    assert "REQUEST_LIMIT_EXCEEDED" in lines[0] and lines[0].endswith("retried later")
    assert lines[1].startswith("2026-11-03T00:00:19Z  created")  # the limit reset: done
    leads = sorted(lead["Id"] for lead in org.rows("Lead"))
    assert _members_and_tasks(org) == (leads, leads)
    status = org.status()
    assert status["queue"] == 0 and status["last_cycle"] == "2026-11-03T11:50:19Z"
    # The next run starts after the cycles that ran, failed ones included.
    assert "no cycle due" in org.sync("run", "--until", "2026-11-03T12:00:00Z").output


def test_a_plan_failing_for_now_ends_sync_apply_as_a_write_failing_does(tmp_path: Path) -> None:
    org = Org(tmp_path, people=3, limit=5)
    r = org.sync("apply")
    assert "the CRM failed for now (REQUEST_LIMIT_EXCEEDED" in r.output
    assert org.rows("Lead") == []


def test_a_cycle_whose_plan_failed_for_now_counts_the_calls_it_made(tmp_path: Path) -> None:
    """One `sync run` of two cycles under a day's limit of 18 calls: the first writes its 3
    people (15 calls), the second's plan reaches the limit after 3. That cycle's row
    counted the calls the run had made before it as its own too (15 + 18 more): `sync
    status` said 48 API calls used, where the CRM counts 18."""
    org = Org(tmp_path, people=3, limit=18)
    r = org.sync("run", "--until", "2026-11-02T09:15:00Z")
    assert "created     3" in r.output and "1 cycle not run: the CRM failed for now" in r.output
    crm = EmulatedCrm.open(tmp_path / "s.crm.db", create=False)
    try:
        used = crm.api_usage().used
    finally:
        crm.close()
    assert used == 18
    shown = org.ok("sync", "status", "--store", str(org.store)).output
    assert "; 18 API calls used\n" in shown, shown
    # The failed cycle's own row in the sync file: no plan, nothing done, its 3 calls.
    conn = sqlite3.connect(tmp_path / "s.sync.db")
    try:
        rows = conn.execute("SELECT * FROM cycle ORDER BY at").fetchall()
    finally:
        conn.close()
    assert [row[1:] for row in rows[1:]] == [(None, 0, 0, 0, 0, 0, None, 3)], rows


KILLER = r"""
import os, signal, sys
from mrules.crm.emulator import EmulatedCrm

orig = EmulatedCrm.create

def create(self, sobject, records, **kw):
    out = orig(self, sobject, records, **kw)
    if sobject == "Task":  # after the first call that created tasks: the sync file knows nothing
        os.kill(os.getpid(), signal.SIGKILL)
    return out

EmulatedCrm.create = create
from mrules.cli import main
main(sys.argv[1:])
"""


def test_tasks_are_not_created_twice_after_a_killed_apply(tmp_path: Path) -> None:
    org = Org(tmp_path, people=230)
    script = tmp_path / "killer.py"
    script.write_text(KILLER, "utf-8")
    args = ["sync", "apply", "--rules", str(org.rules), "--store", str(org.store)]
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    before = org.rows("Task")
    assert 0 < len(before) < 230  # killed after some of the tasks were created
    r = org.sync("apply")
    assert "230 linked" in r.output  # the leads the killed apply created, found by email
    leads = sorted(lead["Id"] for lead in org.rows("Lead"))
    members, tasks = _members_and_tasks(org)
    assert len(leads) == 230 and members == leads
    assert tasks == leads  # one task each: those created before the kill not made again
    made = {t["Id"]: t for t in org.rows("Task")}
    assert all(made[t["Id"]] == t for t in before)
    assert len({t["Description"] for t in made.values()}) == 230  # each with its own key
    assert org.status()["queue"] == 0


def test_a_plan_writes_no_clock_and_no_sync_file(tmp_path: Path) -> None:
    org = Org(tmp_path, people=2)
    clock = org.crm_clock()
    out = tmp_path / "plan.json"
    org.sync("plan", "--at", "2030-01-01T00:00:00Z", code=2)
    org.sync("plan", "--out", str(out), code=2)
    assert org.crm_clock() == clock  # the CRM's clock did not move
    assert not (tmp_path / "s.sync.db").exists()
    r = org.cli("sync", "status", "--store", str(org.store))
    assert r.exit_code == 2 and "no sync yet" in r.output
    # Applied, the saved plan stamps its writes with its own time, not 2030.
    org.sync("apply", str(out))
    plan = json.loads(out.read_text("utf-8"))
    stamp = plan["at"].replace("Z", ".000+0000")
    assert {lead["CreatedDate"] for lead in org.rows("Lead")} == {stamp}
    assert org.crm_clock() == stamp


def test_tasks_over_the_salesforce_adapter_are_looked_for_by_record_and_key() -> None:
    """The same lookup through the Salesforce adapter: one SOQL query by WhoId (Description
    read, not filtered: a long text area cannot be), then only the missing task created."""
    import pytest

    responses = pytest.importorskip("responses")
    pytest.importorskip("simple_salesforce")
    from responses import matchers
    from simple_salesforce import Salesforce

    from mrules.crm.salesforce import SalesforceCrm
    from mrules.sync.apply import TASK_KEY, ApplyReport, _Counted, _tasks, task_key

    base = "https://getcloudy.my.salesforce.com/services/data/v59.0/"
    ann, bob = "00QDn000000001fMAA", "003Dn000000001AAAA"
    ops = [
        {"prospect": "ann@x.com", "seqs": [7], "payload": {"subject": "Call", "due_days": 2}},
        {"prospect": "bob@x.com", "seqs": [9], "payload": {"subject": "Call"}},
    ]
    done: list[str] = []
    with responses.RequestsMock(assert_all_requests_are_fired=True) as http:
        http.add(
            "GET",
            base + "query/",
            json={
                "totalSize": 1,
                "done": True,
                "records": [
                    {
                        "attributes": {"type": "Task"},
                        "Id": "00TDn000000001AAAA",
                        "WhoId": ann,
                        "Description": TASK_KEY + task_key("ann@x.com", 7),
                        "IsDeleted": False,
                        "SystemModstamp": "2026-11-02T09:00:00.000+0000",
                    }
                ],
            },
            match=[
                matchers.query_param_matcher(
                    {
                        "q": "SELECT WhoId, Description, Id, SystemModstamp, IsDeleted FROM Task"
                        f" WHERE WhoId IN ('{bob}','{ann}') ORDER BY CreatedDate, Id"
                    }
                )
            ],
        )
        http.add(
            "POST",
            base + "composite/sobjects",
            json=[{"id": "00TDn000000002AAAA", "success": True, "errors": []}],
            match=[
                matchers.json_params_matcher(
                    {
                        "allOrNone": False,
                        "records": [
                            {
                                "attributes": {"type": "Task"},
                                "WhoId": bob,
                                "Subject": "Call",
                                "Description": TASK_KEY + task_key("bob@x.com", 9),
                            }
                        ],
                    }
                )
            ],
        )
        crm = SalesforceCrm(
            Salesforce(session_id="00D!token", instance_url="https://getcloudy.my.salesforce.com")
        )
        errors: list[tuple[Any, ...]] = []
        report = ApplyReport("plan")
        _tasks(
            _Counted(crm, report),  # counts the tasks the CRM takes
            [(ops[0], ann), (ops[1], bob)],
            0.0,
            errors,
            "2026-11-02T09:00:00Z",
            lambda o: done.append(o["prospect"]),
            {},
        )
    assert report.tasks == 1 and errors == []
    assert sorted(done) == ["ann@x.com", "bob@x.com"]  # ann's task existed: done, not made again
