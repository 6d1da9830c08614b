"""`mrules explain` after CRM syncs: each statement checked against `state export`,
`sync status` and the CRM itself, on a small history whose truth is known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.sync.world import BOB, T0, World, ev


def explain(w: World, email: str) -> tuple[list[str], dict[str, Any]]:
    text = w.ok("explain", email, "--store", str(w.store)).output.splitlines()
    data = json.loads(w.ok("explain", email, "--store", str(w.store), "--format", "json").output)
    return text, data


def test_a_value_the_crm_gave_is_explained_as_the_sync_s_not_an_events_line(
    tmp_path: Path,
) -> None:
    """A field the CRM's value won, and the owner the CRM gave, were explained as coming
    from "event line 5" and "event line 1": lines of the sync cycle's own stream of facts,
    which a user reads as lines of their events file (there, line 1 is Bob's form)."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("apply")
    exported = w.prospects()["bob@x.com"]
    # The CRM's contact gave the phone and lead source (we had none) and the owner (sam).
    assert exported["fields"] == {"phone": "+1 555 0101", "lead_source": "Web"}
    assert exported["assigned"]["name"] == "sam@x.com"
    contact = w.crm_rows("Contact")[0]["Id"]
    assert (exported["crm_status"], exported["crm_id"]) == ("contact", contact)
    text, data = explain(w, "bob@x.com")
    fields = {f["args"]["field"]: f for f in data["fields"]}
    assert {k: f["after"] for k, f in fields.items()} == exported["fields"]
    field = fields["lead_source"]
    fact = field["event"]["id"]
    assert fact.startswith("crm-sync:") and field["event"]["source"] == fact.rsplit(":", 1)[0]
    owner = data["assignment"]["event"]["id"]
    assert owner.startswith(field["event"]["source"] + ":")
    at = w.status()["last_cycle"]
    sync = f"by the CRM sync (fact {fact}), {at}"
    assert f'  lead_source = "Web": event prospect_update, {sync}' in text
    assert f"  user sam@x.com: event crm_update, by the CRM sync (fact {owner}), {at}" in text
    # Bob's own event is still explained by its line.
    assert any(line.endswith(f"event line 1, {T0}") for line in text if "Quiet" in line)
    assert not any("event line" in line for line in text if "crm-sync:" in line)


def changes(w: World, *rows: dict[str, Any]) -> str:
    path = w.tmp / "changes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return str(path)


def test_the_crm_status_and_do_not_sync_are_explained(tmp_path: Path) -> None:
    """`explain` printed `CRM deleted` and said nothing of why, nor that the prospect was
    marked do not sync (the export's `do_not_sync`), the reason no record is ever written
    for it again; a lead converted to a contact was `CRM contact` with no cause either."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"), ev(T0, "ann@x.com", asset="Demo"))
    w.sync("apply")  # Bob linked to his contact, a lead created for Ann
    w.sync(
        "run",
        "--until",
        "2026-11-02T09:20:00Z",
        "--changes",
        changes(
            w,
            {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "bob@x.com"},
            {"at": "2026-11-02T09:06:00Z", "op": "convert", "email": "ann@x.com"},
        ),
    )
    exported = w.prospects()
    bob, ann = exported["bob@x.com"], exported["ann@x.com"]
    assert (bob["crm_status"], bob["crm_id"], bob["do_not_sync"]) == ("deleted", None, True)
    (contact,) = [r for r in w.crm_rows("Contact") if r["Email"] == "ann@x.com"]
    assert (ann["crm_status"], ann["crm_id"], ann["do_not_sync"]) == (
        "contact",
        contact["Id"],
        False,
    )
    out = w.ok("crm", "export", "--store", str(w.store), "--object", "Contact").output
    crm_export = [json.loads(line) for line in out.splitlines()]
    assert [r["IsDeleted"] for r in crm_export if r["Email"] == "bob@x.com"] == [True]

    text, data = explain(w, "bob@x.com")
    status, flag = data["crm"]["status"], data["crm"]["do_not_sync"]
    assert (status["before"], status["after"], flag["after"]) == ("contact", "deleted", True)
    fact, at = status["event"]["id"], status["time"]
    assert fact.startswith("crm-sync:") and flag["event"]["id"] == fact
    assert at == "2026-11-02T09:10:00Z"  # the cycle that read the deletion
    cause = f"event crm_update, by the CRM sync (fact {fact}), {at}"
    crm = text[text.index("CRM:") : text.index("CRM:") + 3]
    assert crm == [
        "CRM:",
        f"  deleted: {cause}",
        f"  do not sync (the sync writes nothing for it until `allow crm recreate`): {cause}",
    ]

    text, data = explain(w, "ann@x.com")
    status = data["crm"]["status"]
    assert (status["before"], status["after"], data["crm"]["do_not_sync"]) == (
        "lead",
        "contact",
        None,
    )
    cause = f"event crm_update, by the CRM sync (fact {status['event']['id']}), {status['time']}"
    crm = text[text.index("CRM:") : text.index("CRM:") + 3]
    assert crm == ["CRM:", f"  contact: {cause}", f"  record {contact['Id']}"]
    assert not any("do not sync" in line for line in text)


def test_a_record_undeleted_in_the_crm_is_no_longer_do_not_sync(tmp_path: Path) -> None:
    """The undelete clears the mark with no ledger step of its own: `explain` must read the
    mark from the prospect, not from the last `do not sync` step."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("apply")
    w.sync(
        "run",
        "--until",
        "2026-11-02T09:20:00Z",
        "--changes",
        changes(
            w,
            {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "bob@x.com"},
            {"at": "2026-11-02T09:15:00Z", "op": "undelete", "id": "contact-bob"},
        ),
    )
    bob = w.prospects()["bob@x.com"]
    assert (bob["crm_status"], bob["do_not_sync"]) == ("contact", False)
    text, data = explain(w, "bob@x.com")
    assert data["crm"]["do_not_sync"] is None
    assert (data["crm"]["status"]["before"], data["crm"]["status"]["after"]) == (
        "deleted",
        "contact",
    )
    assert text[text.index("CRM:") + 1].startswith("  contact: event crm_update")
    assert text[text.index("CRM:") + 2] == f"  record {bob['crm_id']}"
    assert not any("do not sync" in line for line in text)


def test_a_prospect_a_rule_marked_do_not_sync_says_so(tmp_path: Path) -> None:
    """The rules' `do not sync` took the prospect's CRM work out of the sync (the plan's
    `skip`), yet `explain` listed that work with no word of the mark."""
    w = World(tmp_path)
    w.rules.write_text(
        w.rules.read_text().replace(
            'form "Quiet"\n',
            'form "Quiet"\nform "Stop"\nautomation rule "Stopper" priority 1 {\n'
            '  when all { submitted form "Stop" }\n  then { do not sync }\n}\n',
        )
    )
    w.seed({})
    w.run(ev(T0, "ann@x.com", asset="Demo"), ev("2026-11-02T09:01:00Z", "ann@x.com", asset="Stop"))
    assert "skip          ann@x.com    (do not sync)" in w.sync("plan", code=2).output
    w.sync("apply")
    ann = w.prospects()["ann@x.com"]
    assert (ann["crm_status"], ann["do_not_sync"], ann["pending_crm"]) == ("none", True, [])
    assert w.crm_rows("Lead") == []
    text, data = explain(w, "ann@x.com")
    flag = data["crm"]["do_not_sync"]
    assert (flag["rule"]["name"], flag["event"]["line"], data["crm"]["status"]) == (
        "Stopper",
        2,
        None,
    )
    crm = text[text.index("CRM:") : text.index("CRM:") + 3]
    assert crm[:2] == ["CRM:", "  no CRM record"]
    assert crm[2].startswith(
        "  do not sync (the sync writes nothing for it until `allow crm recreate`):"
        " automation rule 'Stopper' ("
    )
    assert crm[2].endswith("event line 2, 2026-11-02T09:01:00Z")
