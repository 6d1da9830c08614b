"""Two tasks of one prospect held at once are two rows of the error queue (keyed by
prospect, field and the write held), each with its own reason: a write of one of them
clears its own row, not the other's (docs/sync.md#errors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmError
from mrules.crm.port import WriteResult

from .org import Org

T0 = "2026-11-02T09:00:00Z"

RULES = """
user "alan@x.example"
form "F"
on submit of form "F" {
  assign to user "alan@x.example"
  create crm task "Call" (due in 2 days)
  create crm task "Email" (due in 3 days)
}
sync salesforce {
  objects lead, contact
  every 10 minutes batch 800
}
"""

VALIDATION = CrmError(
    "FIELD_CUSTOM_VALIDATION_EXCEPTION", "an email task needs a template", ("Subject",)
)
PICKLIST = CrmError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "bad value for Call")


def _refuse(
    monkeypatch: pytest.MonkeyPatch, sobject: str, key: str, refused: dict[str, CrmError]
) -> None:
    """The local CRM refuses each `sobject` record whose `key` field `refused` names, with
    its error, as an org's validation rules refuse records one at a time; the others are
    created."""
    original = EmulatedCrm.create

    def create(crm: EmulatedCrm, name: str, records: Any, **kw: Any) -> Any:
        if name != sobject:
            return original(crm, name, records, **kw)
        return [
            WriteResult(None, False, (refused[rec[key]],))
            if rec[key] in refused
            else original(crm, name, [rec], **kw)[0]
            for rec in records
        ]

    monkeypatch.setattr(EmulatedCrm, "create", create)


def _refuse_by_subject(monkeypatch: pytest.MonkeyPatch, refused: dict[str, CrmError]) -> None:
    """Tasks refused by their subject (see `_refuse`)."""
    _refuse(monkeypatch, "Task", "Subject", refused)


def _held(org: Org) -> list[tuple[str, str]]:
    return sorted((e["field"], e["code"]) for e in org.status()["error_queue"])  # type: ignore[attr-defined]


def test_a_task_written_does_not_clear_the_row_of_another_still_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's two tasks are refused (Call for a picklist, Email for a validation rule): two
    `*task` rows, each with its reason. Call's refusal lifted and `sync retry` run with a
    batch of 1, Call was written and cleared the row, though Email, waiting in the next
    batch, was still held: `sync status` said no error. Email's row stays now, and its
    retry mark too, so the next cycle tries Email; once fixed, it is written."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0  # the lead and its first two tasks
    org.submit(("2026-11-02T09:05:00Z", "ann@ex.org", "F"))
    refused = {"Call": PICKLIST, "Email": VALIDATION}
    _refuse_by_subject(monkeypatch, refused)
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert "errors   2" in r.output, r.output
    assert _held(org) == [
        ("*task", "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        ("*task", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ]

    del refused["Call"]  # the picklist fixed; the validation rule not yet
    org.rules.write_text(RULES.replace("batch 800", "batch 1"), "utf-8")
    org.ok("sync", "retry", "--store", str(org.store))
    r = org.sync("run", "--until", "2026-11-02T09:20:00Z")
    assert "tasks    1" in r.output and "waiting     1" in r.output, r.output  # Call written
    assert _held(org) == [("*task", "FIELD_CUSTOM_VALIDATION_EXCEPTION")]  # Email still held
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert "*task: FIELD_CUSTOM_VALIDATION_EXCEPTION an email task needs a template" in shown

    # The next cycle tries Email (the retry asked for it), refused again: still held.
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert "errors   1" in r.output, r.output
    assert _held(org) == [("*task", "FIELD_CUSTOM_VALIDATION_EXCEPTION")]

    refused.clear()  # the validation rule fixed
    org.ok("sync", "retry", "--store", str(org.store))
    assert org.sync("run", "--until", "2026-11-02T09:40:00Z").exit_code == 0
    subjects = sorted(str(t["Subject"]) for t in org.crm_rows("Task"))
    assert subjects == ["Call", "Call", "Email", "Email"]
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status


def test_two_tasks_refused_in_one_cycle_count_one_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's two tasks refused in one cycle shared the `*task` row; each refusal counted an
    attempt, so `sync status` said 2 attempts after a single try (and 4 after a retry).
    Each is a row of its own now, one attempt a cycle."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    _refuse_by_subject(monkeypatch, {"Call": PICKLIST, "Email": VALIDATION})
    r = org.sync("run", "--until", T0)
    assert "errors   2" in r.output, r.output  # the cycle's two refusals
    held = sorted((e["code"], e["attempts"]) for e in org.status()["error_queue"])  # type: ignore[attr-defined]
    assert held == [
        ("FIELD_CUSTOM_VALIDATION_EXCEPTION", 1),
        ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", 1),
    ]
    org.ok("sync", "retry", "--store", str(org.store))
    org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert [e["attempts"] for e in org.status()["error_queue"]] == [2, 2]  # type: ignore[attr-defined]


def test_each_held_task_is_shown_with_its_reason_and_counted_by_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's two tasks are refused for two reasons. `sync status` said `errors: 1` and
    showed Email's reason only (Call's was not shown until it was tried again), `sync plan`
    held both for Email's reason, and `sync retry` said `1 held error`. Each held task is
    now a row: both shown, each with its reason and which task it is, and counted as two."""
    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    _refuse_by_subject(monkeypatch, {"Call": PICKLIST, "Email": VALIDATION})
    assert org.sync("run", "--until", T0).exit_code == 0
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert "errors: 2\n" in shown, shown
    assert (
        "ann@ex.org task *task: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST bad value for Call"
        " (task 'Call')\n" in shown
    ), shown
    assert (
        "ann@ex.org task *task: FIELD_CUSTOM_VALIDATION_EXCEPTION an email task needs a"
        " template (task 'Email')\n" in shown
    ), shown
    status = org.status()
    assert status["errors"] == 2 and len(status["error_queue"]) == 2, status  # type: ignore[arg-type]
    plan = org.sync("plan", "--at", "2026-11-02T09:10:00Z").output  # each hold its own
    held = sorted(
        line.split(":")[1].split()[0] for line in plan.splitlines() if "held *task" in line
    )
    assert held == ["FIELD_CUSTOM_VALIDATION_EXCEPTION", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"]
    retried = org.ok("sync", "retry", "--store", str(org.store))
    assert retried.startswith("2 held errors will be retried"), retried


# The error table of a version 2 sync file, as mrules wrote it before: one row a prospect
# and field, so a prospect's two tasks held shared the `*task` row.
_V2_ERROR = """
CREATE TABLE error (
  prospect TEXT NOT NULL, object TEXT NOT NULL, crm_id TEXT, field TEXT NOT NULL,
  code TEXT NOT NULL, message TEXT NOT NULL, value TEXT, at REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 1, retry INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (prospect, field));
CREATE INDEX error_due ON error (prospect)
  WHERE retry != 0 OR code = 'DUPLICATE_LINK';
"""


def test_a_version_2_sync_file_is_migrated_and_its_held_task_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync file of version 2 (its error table keyed by prospect and field) holding
    Email's row, the last refused of Ann's two tasks: `sync status` reads it as it is; the
    first command that writes (`sync retry`) migrates it to version 3, the row kept and
    known as Email's; the next cycle holds both tasks, a row each, and once the org is
    fixed both are written and both rows go."""
    import sqlite3

    org = Org(tmp_path, RULES)
    org.submit((T0, "ann@ex.org", "F"))
    refused = {"Call": PICKLIST, "Email": VALIDATION}
    _refuse_by_subject(monkeypatch, refused)
    assert org.sync("run", "--until", T0).exit_code == 0
    path = tmp_path / "s.sync.db"
    conn = sqlite3.connect(path)
    with conn:  # the file as the version 2 mrules left it: Email's row only
        rows = conn.execute(
            "SELECT prospect, object, crm_id, field, code, message, value, at, attempts, retry"
            " FROM error WHERE code = 'FIELD_CUSTOM_VALIDATION_EXCEPTION'"
        ).fetchall()
        conn.execute("DROP TABLE error")
        conn.executescript(_V2_ERROR)
        conn.executemany("INSERT INTO error VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    conn.close()

    assert _held(org) == [("*task", "FIELD_CUSTOM_VALIDATION_EXCEPTION")]  # read as it is
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
    conn.close()
    assert org.ok("sync", "retry", "--store", str(org.store)).startswith("1 held error ")
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
    ((item, retry),) = conn.execute("SELECT item, retry FROM error").fetchall()
    conn.close()
    assert item.startswith("mrules sync key: ") and retry > 0, item

    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")  # both tried, both refused
    assert "errors   2" in r.output, r.output
    assert _held(org) == [
        ("*task", "FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        ("*task", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ]
    refused.clear()
    org.ok("sync", "retry", "--store", str(org.store))
    assert org.sync("run", "--until", "2026-11-02T09:20:00Z").exit_code == 0
    assert sorted(str(t["Subject"]) for t in org.crm_rows("Task")) == ["Call", "Email"]
    status = org.status()
    assert status["errors"] == 0 and status["queue"] == 0, status


MEMBER_RULES = """
user "alan@x.example"
crm campaign "C"
crm campaign "D"
form "F"
on submit of form "F" {
  assign to user "alan@x.example"
  add to crm campaign "C"
  add to crm campaign "D"
}
sync salesforce {
  objects lead, contact
  every 10 minutes batch 800
}
"""


def test_two_memberships_held_are_two_errors_and_one_written_clears_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's memberships of campaigns C and D are refused for two reasons: two `*member`
    errors, each naming its campaign (it was one row, D's, and `errors: 1`). C's cause
    fixed and retried, C is written and its error goes; D's stays, with its reason."""
    org = Org(tmp_path, MEMBER_RULES)
    crm = EmulatedCrm.open(tmp_path / "s.crm.db", create=False)
    try:
        (d,) = crm.create("Campaign", [{"Name": "D"}])
        (c,) = crm.find("Campaign", "Name", ["C"], ["Id"])
    finally:
        crm.close()
    org.submit((T0, "ann@ex.org", "F"))
    refused = {c.id: PICKLIST, str(d.id): VALIDATION}
    _refuse(monkeypatch, "CampaignMember", "CampaignId", refused)
    assert org.sync("run", "--until", T0).exit_code == 0
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert "errors: 2\n" in shown, shown
    assert "bad value for Call (campaign 'C')\n" in shown, shown
    assert "an email task needs a template (campaign 'D')\n" in shown, shown

    del refused[c.id]
    assert org.ok("sync", "retry", "--store", str(org.store)).startswith("2 held errors ")
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert "members    1" in r.output and "errors   1" in r.output, r.output
    ((campaign, code),) = [
        (json.loads(e["value"])["CampaignId"], e["code"])
        for e in org.status()["error_queue"]  # type: ignore[attr-defined]
    ]
    assert (campaign, code) == (d.id, "FIELD_CUSTOM_VALIDATION_EXCEPTION")


# Ann's memberships of C and D, each asked with a status its campaign has not: the local CRM
# refuses each for its own value (a restricted picklist), as an org does. Aaron, on form G,
# only gets a lead.
STATUS_RULES = """
user "alan@x.example"
crm campaign "C"
crm campaign "D"
form "F"
form "G"
on submit of form "F" {
  assign to user "alan@x.example"
  add to crm campaign "C" status "Registered"
  add to crm campaign "D" status "Joined"
}
on submit of form "G" {
  assign to user "alan@x.example"
}
sync salesforce {
  objects lead, contact
  every 10 minutes batch 1
}
"""


def _bad_status(status: str) -> str:
    """The local CRM's message for a member status its campaign has not."""
    return f"Status: bad value for restricted picklist field: {status} (this campaign's"


def _campaign_d(org: Org) -> None:
    """Campaign D in the local CRM, made by a CRM user (its statuses the default ones)."""
    changes = org.tmp / "campaign-d.jsonl"
    line = {"at": "2026-11-01T00:00:00Z", "op": "create", "object": "Campaign"}
    changes.write_text(json.dumps({**line, "fields": {"Name": "D"}}) + "\n", "utf-8")
    org.ok("crm", "apply-changes", str(changes), "--store", str(org.store))


READONLY = CrmError("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on C")


@pytest.mark.parametrize(
    ("refuse_c", "c_held"),
    [
        (None, "*member: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST " + _bad_status("Registered")),
        (READONLY, "*member-permission: INSUFFICIENT_ACCESS_OR_READONLY insufficient access"),
    ],
    ids=["data-and-data", "permission-and-data"],
)
def test_each_held_membership_is_held_in_the_plan_for_its_own_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refuse_c: CrmError | None, c_held: str
) -> None:
    """Ann's memberships of C and D are refused for two reasons (C's status, or the
    integration user's permissions on C; D's status): `sync status` listed each with its
    own, but `sync plan` held both for one of them (the last refused of the first field
    held: D's, or C's permission refusal). Each hold gives its own row's reason now."""
    org = Org(tmp_path, STATUS_RULES)
    _campaign_d(org)
    if refuse_c is not None:
        (c,) = [r["Id"] for r in org.crm_rows("Campaign") if r["Name"] == "C"]
        _refuse(monkeypatch, "CampaignMember", "CampaignId", {str(c): refuse_c})
    org.submit((T0, "ann@ex.org", "F"))
    org.sync("run", "--until", T0)
    assert org.status()["errors"] == 2
    d_held = "*member: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST " + _bad_status("Joined")
    r = org.sync("plan", "--at", "2026-11-02T09:10:00Z")
    held = [line.split("held ", 1)[1] for line in r.output.splitlines() if "  held *" in line]
    assert sorted(next(w for w in (c_held, d_held) if h.startswith(w)) for h in held) == sorted(
        [c_held, d_held]
    ), r.output


TASK_RULES = STATUS_RULES.replace(
    """  add to crm campaign "C" status "Registered"
  add to crm campaign "D" status "Joined"
""",
    """  create crm task "Call" (due in 2 days)
  create crm task "Email" (due in 3 days)
""",
)


@pytest.mark.parametrize("kind", ["campaign_member", "task"])
def test_a_held_write_found_in_the_crm_clears_its_own_row_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Ann's two memberships (C, D) or tasks (Call, Email) are held, each for its reason.
    A CRM user writes the first (the membership by hand, the task as the sync would have,
    its sync key in the description): the next cycle finds it and has nothing to write,
    but its skip cleared every held row of the kind, the second's too, while the second
    waited in the next batch (batch 1, Aaron's lead first): `sync status` said `errors: 0`
    with the second still refused, and its attempts began again at 1. Only the first's
    row goes now; the second's stays, listed, and is tried at the next cycle."""
    org = Org(tmp_path, STATUS_RULES if kind == "campaign_member" else TASK_RULES)
    if kind == "campaign_member":
        _campaign_d(org)  # the local CRM refuses each status for itself
        second = _bad_status("Joined")
    else:
        _refuse_by_subject(monkeypatch, {"Call": PICKLIST, "Email": VALIDATION})
        second = VALIDATION.message
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    rows = org.status()["error_queue"]
    assert len(rows) == 2, rows  # type: ignore[arg-type]
    if kind == "campaign_member":
        found = {"op": "add_member", "campaign": "C", "email": "ann@ex.org", "status": "Sent"}
    else:
        (call,) = [json.loads(e["value"]) for e in rows if e["code"] == PICKLIST.status_code]  # type: ignore[union-attr]
        found = {"op": "create", "object": "Task", "fields": call}
    changes = tmp_path / "changes.jsonl"
    changes.write_text(json.dumps({"at": "2026-11-02T09:02:00Z", **found}) + "\n", "utf-8")
    org.submit(("2026-11-02T09:05:00Z", "aaron@ex.org", "G"))
    org.ok("sync", "retry", "--store", str(org.store))

    r = org.sync("run", "--until", "2026-11-02T09:10:00Z", "--changes", str(changes))
    assert r.exit_code == 0 and "waiting     1" in r.output, r.output
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert "errors: 1\n" in shown and second in shown, shown
    ((held, attempts),) = [(e["message"], e["attempts"]) for e in org.status()["error_queue"]]  # type: ignore[attr-defined]
    assert (held.startswith(second), attempts) == (True, 1)

    r = org.sync("run", "--until", "2026-11-02T09:20:00Z")  # the second tried: refused again
    assert "errors   1" in r.output, r.output
    ((held, attempts),) = [(e["message"], e["attempts"]) for e in org.status()["error_queue"]]  # type: ignore[attr-defined]
    assert (held.startswith(second), attempts) == (True, 2)
    sobject = "CampaignMember" if kind == "campaign_member" else "Task"
    assert len(org.crm_rows(sobject)) == 1  # the first, written once (by the CRM user)


def test_a_membership_held_before_rows_kept_its_name_is_known_by_its_campaign_id(
    tmp_path: Path,
) -> None:
    """A membership's row kept by an mrules from before rows kept the campaign's name (a
    version 2 file migrated: its value the record only) is known by the campaign's id,
    which the plan looks up by name: found in the CRM already, it leaves the queue as a
    row naming its campaign does; D's row stays."""
    import sqlite3

    org = Org(tmp_path, STATUS_RULES)
    _campaign_d(org)
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    conn = sqlite3.connect(tmp_path / "s.sync.db")
    with conn:  # the rows as the mrules before kept them: no campaign name
        conn.execute("UPDATE error SET value = json_remove(value, '$.campaign')")
    conn.close()
    assert all("campaign" not in json.loads(e["value"]) for e in org.status()["error_queue"])  # type: ignore[attr-defined]
    changes = tmp_path / "changes.jsonl"
    line = {"op": "add_member", "campaign": "C", "email": "ann@ex.org", "status": "Sent"}
    changes.write_text(json.dumps({"at": "2026-11-02T09:02:00Z", **line}) + "\n", "utf-8")
    org.ok("sync", "retry", "--store", str(org.store))
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z", "--changes", str(changes))
    assert "errors   1" in r.output, r.output  # D, tried again
    ((held, attempts),) = [(e["message"], e["attempts"]) for e in org.status()["error_queue"]]  # type: ignore[attr-defined]
    assert (held.startswith(_bad_status("Joined")), attempts) == (True, 2)


@pytest.mark.parametrize("kind", ["campaign_member", "task"])
def test_each_hold_in_the_plan_names_its_campaign_or_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Ann's memberships of C and D (or tasks Call and Email) are refused for one reason:
    `sync plan` showed two holds alike, each the reason and the lead, and none said
    which write it held. Each hold names its campaign as the rule gave it, or its task
    by its subject, in the text and in the JSON op (its `payload`, as a write's), and a
    plan saved so is applied."""
    org = Org(tmp_path, MEMBER_RULES if kind == "campaign_member" else TASK_RULES)
    if kind == "campaign_member":
        _campaign_d(org)
        ids = {str(r["Id"]) for r in org.crm_rows("Campaign")}
        _refuse(monkeypatch, "CampaignMember", "CampaignId", dict.fromkeys(ids, VALIDATION))
        named, key = ["campaign 'C'", "campaign 'D'"], "campaign"
    else:
        _refuse_by_subject(monkeypatch, {"Call": VALIDATION, "Email": VALIDATION})
        named, key = ["task 'Call'", "task 'Email'"], "subject"
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    assert org.status()["errors"] == 2

    at = "2026-11-02T09:10:00Z"
    plan = org.sync("plan", "--at", at).output
    holds = [line for line in plan.splitlines() if line.startswith("  ! hold ")]
    assert len(holds) == 2, plan
    assert sorted(n for h in holds for n in named if f"  {n}  (refused" in h) == named, plan

    saved = tmp_path / "plan.json"
    org.sync("plan", "--at", at, "--out", str(saved))
    ops = json.loads(saved.read_text("utf-8"))["ops"]
    assert sorted(o["payload"][key] for o in ops if o["op"] == "hold") == [
        n.split("'")[1] for n in named
    ]
    r = org.sync("apply", str(saved))
    assert r.exit_code == 0, r.output
    assert org.status()["errors"] == 2  # still held, each its row


def test_status_names_a_held_membership_by_the_campaign_the_rule_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's memberships of C and D are refused for one reason: `sync status` named each
    by its campaign's id (`(campaign 701…)`), though the row keeps the name the rule gave,
    which the rules and the plan say. It names the campaign now; a row kept by an mrules
    from before rows kept the name (no `campaign` in its value) is still named by id."""
    import sqlite3

    org = Org(tmp_path, MEMBER_RULES)
    _campaign_d(org)
    ids = {str(r["Name"]): str(r["Id"]) for r in org.crm_rows("Campaign")}
    _refuse(monkeypatch, "CampaignMember", "CampaignId", dict.fromkeys(ids.values(), VALIDATION))
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    line = "ann@ex.org campaign_member *member: FIELD_CUSTOM_VALIDATION_EXCEPTION an email task"
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert f"{line} needs a template (campaign 'C')\n" in shown, shown
    assert f"{line} needs a template (campaign 'D')\n" in shown, shown

    conn = sqlite3.connect(tmp_path / "s.sync.db")
    with conn:  # C's row as the mrules before kept it: the record only
        conn.execute(
            "UPDATE error SET value = json_remove(value, '$.campaign')"
            " WHERE json_extract(value, '$.campaign') = 'C'"
        )
    conn.close()
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert f"{line} needs a template (campaign {ids['C']})\n" in shown, shown
    assert f"{line} needs a template (campaign 'D')\n" in shown, shown


def _attempts(org: Org) -> list[tuple[str, int]]:
    """Each held row's message (its start) and attempts, by message."""
    return sorted((e["message"][:40], e["attempts"]) for e in org.status()["error_queue"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["campaign_member", "task"])
def test_after_a_retry_each_held_write_is_tried_once_in_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Ann's two memberships (C, D) or tasks (Call, Email) are held, and `sync retry` is
    asked with a batch of 1: the first is tried and refused again, the second waits for the
    next batch. The retry mark was cleared for both, and Ann marked as changed: each cycle
    after tried the first again (its attempts climbing) and the second never. The second
    keeps its mark and is tried at the next cycle, the first held; then neither is tried
    until the prospect or its record changes, or another retry."""
    if kind == "campaign_member":
        org = Org(tmp_path, STATUS_RULES)
        _campaign_d(org)  # the local CRM refuses each status for itself
        first, second = _bad_status("Registered")[:40], _bad_status("Joined")[:40]
    else:
        org = Org(tmp_path, TASK_RULES)
        _refuse_by_subject(monkeypatch, {"Call": PICKLIST, "Email": VALIDATION})
        first, second = PICKLIST.message, VALIDATION.message
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0  # both ride with the lead: refused
    assert _attempts(org) == sorted([(first, 1), (second, 1)])
    org.ok("sync", "retry", "--store", str(org.store))

    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert "errors   1" in r.output and "waiting     1" in r.output, r.output
    assert _attempts(org) == sorted([(first, 2), (second, 1)])
    r = org.sync("run", "--until", "2026-11-02T09:20:00Z")  # the second, as the retry asked
    assert "errors   1" in r.output and "waiting     0" in r.output, r.output
    assert _attempts(org) == sorted([(first, 2), (second, 2)])
    r = org.sync("run", "--until", "2026-11-02T09:40:00Z")  # both held: nothing tried
    assert r.output.endswith("  2 idle cycles: nothing to do\n"), r.output
    assert _attempts(org) == sorted([(first, 2), (second, 2)])


def test_a_held_task_refused_on_a_lead_since_converted_is_tried_on_its_contact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's tasks Call and Email are refused on her lead, which a sales rep converts; with
    a batch of 1, the next cycle tries Call on the contact (refused again) and Email waits.
    The cycle after tried Call again and left Email waiting, every cycle. Each task is
    decided by its own row now: Call's row is of the contact, held; Email's is still of
    the lead, which the write no longer goes to: due, tried on the contact."""
    org = Org(tmp_path, TASK_RULES)
    _refuse_by_subject(monkeypatch, {"Call": PICKLIST, "Email": VALIDATION})
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0  # both ride with the lead: refused
    (lead,) = [str(r["Id"]) for r in org.crm_rows("Lead")]
    changes = tmp_path / "changes.jsonl"
    line = {"at": "2026-11-02T09:02:00Z", "op": "convert", "email": "ann@ex.org"}
    changes.write_text(json.dumps({**line, "opportunity": False}) + "\n", "utf-8")

    def rows() -> list[tuple[str, int, bool]]:  # each row's message, attempts, on the lead
        return sorted(
            (e["message"][:20], e["attempts"], e["crm_id"] == lead)
            for e in org.status()["error_queue"]  # type: ignore[attr-defined]
        )

    r = org.sync("run", "--until", "2026-11-02T09:10:00Z", "--changes", str(changes))
    assert "errors   1" in r.output and "waiting     1" in r.output, r.output
    call, email = PICKLIST.message[:20], VALIDATION.message[:20]
    assert rows() == sorted([(call, 2, False), (email, 1, True)])
    r = org.sync("run", "--until", "2026-11-02T09:20:00Z")  # Email, on the contact
    assert "errors   1" in r.output and "waiting     0" in r.output, r.output
    assert rows() == sorted([(call, 2, False), (email, 2, False)])
    r = org.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert r.output.endswith("  1 idle cycle: nothing to do\n"), r.output
    assert rows() == sorted([(call, 2, False), (email, 2, False)])


def test_a_task_refused_for_permission_then_for_data_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's task Call is refused for the integration user's permissions; once they are
    given (and `sync retry` run), a validation rule refuses it. The permission refusal
    stayed beside the new one: `sync status` said `errors: 2` for one task, still asking
    the admin for the permission given. The new refusal replaces it, its attempts counted
    on: one error, the validation rule's, at 2 attempts."""
    org = Org(tmp_path, TASK_RULES.replace('  create crm task "Email" (due in 3 days)\n', ""))
    refused = {"Call": READONLY}
    _refuse_by_subject(monkeypatch, refused)
    org.submit((T0, "ann@ex.org", "F"))
    org.sync("run", "--until", T0)
    assert _held(org) == [("*task-permission", "INSUFFICIENT_ACCESS_OR_READONLY")]

    refused["Call"] = VALIDATION  # the permission given; a validation rule refuses the task
    org.ok("sync", "retry", "--store", str(org.store))
    assert org.sync("run", "--until", "2026-11-02T09:10:00Z").exit_code == 0
    shown = org.ok("sync", "status", "--store", str(org.store))
    assert "errors: 1\n" in shown and "give the integration user" not in shown, shown
    ((field, code, attempts),) = [
        (e["field"], e["code"], e["attempts"])
        for e in org.status()["error_queue"]  # type: ignore[attr-defined]
    ]
    assert (field, code, attempts) == ("*task", VALIDATION.status_code, 2)


def test_a_held_row_that_does_not_say_its_task_holds_each_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ann's tasks Call and Email are held; Email's row is as an mrules from before sync
    keys kept it (no key in its value: it does not say which task it holds). The next
    cycle, nothing having changed, holds both tasks, that row holding each task of its
    kind: Call for its own row's reason, Email for that row's; neither is tried."""
    import sqlite3

    org = Org(tmp_path, TASK_RULES)
    _refuse_by_subject(monkeypatch, {"Call": PICKLIST, "Email": VALIDATION})
    org.submit((T0, "ann@ex.org", "F"))
    assert org.sync("run", "--until", T0).exit_code == 0
    conn = sqlite3.connect(tmp_path / "s.sync.db")
    with conn:
        conn.execute(
            "UPDATE error SET value = json_remove(value, '$.Description'), item = ''"
            " WHERE code = ?",
            (VALIDATION.status_code,),
        )
    conn.close()
    plan = org.sync("plan", "--at", "2026-11-02T09:10:00Z").output
    lines = plan.splitlines()
    holds = [  # each hold's task and the reason it gives: Call's own row, Email's the other
        (line.split("task '")[1].split("'")[0], lines[n + 1].split(": ", 1)[1].split()[0])
        for n, line in enumerate(lines)
        if line.startswith("  ! hold ")
    ]
    assert sorted(holds) == [
        ("Call", PICKLIST.status_code),
        ("Email", VALIDATION.status_code),
    ], plan
    r = org.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert r.output.endswith("  1 idle cycle: nothing to do\n"), r.output
    assert _attempts(org) == sorted([(PICKLIST.message, 1), (VALIDATION.message, 1)])
