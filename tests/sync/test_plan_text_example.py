"""The text plan of the README's CRM sync walk: what it says of each prospect is true."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _example(tmp_path: Path) -> tuple[str, str]:
    shutil.copytree(ROOT / "examples" / "getcloudy", tmp_path / "getcloudy")
    ex = tmp_path / "getcloudy"
    store, rules = str(tmp_path / "getcloudy.db"), str(ex / "rules")
    _cli("crm", "load", str(ex / "crm"), "--store", store)
    _cli("run", rules, str(ex / "events.jsonl"), "--store", store)
    return rules, store


def _cli(*args: str, code: int = 0) -> Result:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert r.exit_code == code, (args, r.output)
    return r


def test_a_prospect_the_plan_links_is_not_already_linked(tmp_path: Path) -> None:
    rules, store = _example(tmp_path)
    text = _cli("sync", "plan", "--rules", rules, "--store", store, code=2).output
    lines = text.splitlines()
    assert "(already linked)" not in text
    # Bob's rule asked for a CRM record; the plan links him to the contact with his email,
    # which does that work: the creation is skipped, and says why.
    assert (
        "  - skip          bob@bigcorp.example  0035e0000000001AAA  (linked by this plan to"
        " the contact with its email: no record created)"
    ) in lines
    assert (
        "  - skip          henry@example.org  00Q5e0000000001EAA  (linked by this plan to"
        " the lead with its email: no record created)"
    ) in lines
    # Applied, the creation the rules asked for leaves the queue: no lead is created for
    # Bob or Henry, at this cycle or later.
    applied = _cli("sync", "apply", "--rules", rules, "--store", store).output
    assert "1 created, 4 linked" in applied
    status = json.loads(_cli("sync", "status", "--store", store, "--format", "json").output)
    assert status["queue"] == 0, status


def test_the_summary_counts_members_and_tasks_as_listed(tmp_path: Path) -> None:
    rules, store = _example(tmp_path)
    text = _cli("sync", "plan", "--rules", rules, "--store", store, code=2).output
    listed = [ln for ln in text.splitlines() if ln.startswith(("  + campaign_member", "  + task"))]
    assert len(listed) == 3
    # Two of them are writes of their own (Bob's record is linked), one rides with Leung's
    # lead, created in this cycle. Henry's lead is a member of the campaign already (the
    # CRM's seed says so): apply writes nothing for it, and the plan says so.
    assert text.splitlines()[-1] == (
        "2 records and 2 campaign members or tasks to write: 4 this cycle, 0 waiting"
        " (and 1 campaign member or task with the records created); 10 CRM facts for the engine"
    )
    assert (
        "  - skip          henry@example.org  00Q5e0000000001EAA  (already a member of the"
        " CRM campaign 'Get Cloudy Consult 2026': nothing to write)"
    ) in text.splitlines()
    applied = json.loads(
        _cli("sync", "apply", "--rules", rules, "--store", store, "--format", "json").output
    )
    assert applied["campaign_members"] + applied["tasks"] == len(listed), applied
