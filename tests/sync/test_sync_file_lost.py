"""A copy of the store and the CRM file without the sync file: the plan says what the
apply does (docs/sync.md#the-sync-file), through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result
from tests.sync.test_converted_between_read_and_write import TASK_RULES
from tests.sync.world import T0, World, ev

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getcloudy"


def _cli(*args: str, code: int = 0) -> Result:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == code, (args, r.output)
    return r


def test_a_plan_without_the_sync_file_promises_no_member_or_task_the_crm_has(
    tmp_path: Path,
) -> None:
    """After a first sync, the store and the CRM file copied without the sync's own
    file: the next plan links every prospect again by email, and listed the campaign
    members and the task of the first sync as 4 writes, which `sync apply` found in the
    CRM (a member twice is DUPLICATE_VALUE, a task has its key) and did not write: 0
    members, 0 tasks. The plan looks them up as apply does, and shows each as a `skip`:
    the plan's counts are the apply's."""
    rules = str(EXAMPLE / "rules")
    store = str(tmp_path / "g.db")
    _cli("crm", "load", str(EXAMPLE / "crm"), "--store", store)
    _cli("run", rules, str(EXAMPLE / "events.jsonl"), "--store", store)
    first = json.loads(
        _cli("sync", "apply", "--rules", rules, "--store", store, "--format", "json").output
    )
    assert (first["campaign_members"], first["tasks"]) == (2, 1), first
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("g.db", "g.crm.db"):
        shutil.copy(tmp_path / name, copy / name)
    again = ["--rules", rules, "--store", str(copy / "g.db")]
    plan = json.loads(_cli("sync", "plan", *again, "--format", "json", code=2).output)
    text = _cli("sync", "plan", *again, code=2).output
    applied = json.loads(_cli("sync", "apply", *again, "--format", "json").output)
    by_op = plan["summary"]["by_op"]
    assert (by_op.get("campaign_member", 0), by_op.get("task", 0)) == (
        applied["campaign_members"],
        applied["tasks"],
    ), (by_op, applied)
    assert (applied["campaign_members"], applied["tasks"], applied["linked"]) == (0, 0, 5)
    assert plan["summary"]["records"] == 0 and "0 records to write" in text, text
    assert text.count("already a member of the CRM campaign 'Get Cloudy Consult 2026'") == 3
    assert "the CRM has the task 'Call enterprise lead' already (its sync key)" in text
    # Nothing is left queued: the next cycle has nothing to write either.
    status = json.loads(
        _cli("sync", "status", "--store", str(copy / "g.db"), "--format", "json").output
    )
    assert status["queue"] == 0 and status["errors"] == 0, status


def test_a_record_asked_only_a_task_is_looked_up_too(tmp_path: Path) -> None:
    """A prospect whose rules asked its record a task and no campaign membership: the plan
    looked up tasks only for the records asked a membership too, and promised a write that
    `sync apply` then found in the CRM and did not make."""
    w = World(tmp_path)
    w.rules.write_text(TASK_RULES, "utf-8")
    w.seed({"Contact": [{"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com"}]})
    w.run(ev(T0, "bob@x.com", asset="G"))
    assert json.loads(w.sync("apply", "--format", "json").output)["tasks"] == 1
    for lost in tmp_path.glob("w.sync.db*"):
        lost.unlink()
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    applied = json.loads(w.sync("apply", "--format", "json").output)
    assert plan["summary"]["by_op"].get("task", 0) == applied["tasks"] == 0, plan["summary"]
    assert len(w.crm_rows("Task")) == 1


def test_each_task_the_crm_has_is_named_by_its_subject(tmp_path: Path) -> None:
    """Bob's rules asked two tasks (Call, Email), written by a first sync: without the sync
    file, the next plan found both in the CRM and showed two skips alike, `the CRM has
    this task already`, where a membership's skip names its campaign. Each names its task
    by its subject now."""
    w = World(tmp_path)
    w.rules.write_text(
        TASK_RULES.replace(
            'create crm task "Call" (due in 2 days)',
            'create crm task "Call" (due in 2 days)\n  create crm task "Email" (due in 3 days)',
        ),
        "utf-8",
    )
    w.seed({"Contact": [{"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com"}]})
    w.run(ev(T0, "bob@x.com", asset="G"))
    assert json.loads(w.sync("apply", "--format", "json").output)["tasks"] == 2
    for lost in tmp_path.glob("w.sync.db*"):
        lost.unlink()
    text = w.sync("plan", code=2).output
    skips = sorted(line.split("(", 1)[1] for line in text.splitlines() if "- skip" in line)
    assert skips == [
        "the CRM has the task 'Call' already (its sync key): nothing to write)",
        "the CRM has the task 'Email' already (its sync key): nothing to write)",
    ], text
