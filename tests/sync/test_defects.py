"""The three CRM defects, fixed in the engine (docs/sync.md#what-the-engine-does-with-crm-facts)."""

from __future__ import annotations

import mrules

RULES = """
user "alan@x.com"
list "Deleted"
list "Gone"
form "F"
field lead_source: text
on submit of form "F" { assign to user "alan@x.com" }
automation rule "flag" priority 1 {
  when all { crm status is deleted }
  then { add to list "Deleted" }
}
sync salesforce {
  objects lead, contact
  auto create prospects on
  map lead_source <-> "LeadSource" prefer crm
}
"""


def ev(ts: str, **kw: object) -> dict[str, object]:
    return {"ts": f"2026-11-02T{ts}:00Z", "prospect": "a@x.com", **kw}


def _state(events: list[dict[str, object]], rules: str = RULES) -> dict[str, object]:
    with mrules.run(rules, events) as r:
        (row,) = r.export()
        row["_pending"] = [m.kind for m in r.store.crm_pending()]
        return row


def test_contact_beats_a_later_lead_for_id_owner_and_fields() -> None:
    row = _state(
        [
            ev(
                "09:00",
                type="crm_update",
                object="contact",
                crm_id="003C",
                user="alan@x.com",
                fields={"LeadSource": "Web"},
            ),
            ev(
                "09:05",
                type="crm_update",
                object="lead",
                crm_id="00QL",
                user="sam@x.com",
                fields={"LeadSource": "Phone"},
            ),
        ]
    )
    assert row["crm_status"] == "contact"
    assert row["crm_id"] == "003C"
    assert row["assigned"]["name"] == "alan@x.com"
    assert row["fields"]["lead_source"] == "Web"


def test_allow_recreate_after_do_not_sync_queues_the_record() -> None:
    rules = (
        RULES
        + """
form "Stop"
form "Go"
automation rule "stop" priority 2 { when all { submitted form "Stop" } then { do not sync } }
automation rule "go" priority 3 { when all { submitted form "Go" } then { allow crm recreate } }
"""
    )
    row = _state(
        [
            ev("09:00", type="form_submit", asset="Stop"),
            ev("09:01", type="form_submit", asset="F"),  # assigned, but not synced
            ev("09:02", type="form_submit", asset="Go"),
        ],
        rules,
    )
    assert row["do_not_sync"] is False
    assert row["_pending"] == ["create_record"]


def test_do_not_sync_alone_queues_nothing() -> None:
    rules = (
        RULES
        + """
form "Stop"
automation rule "stop" priority 2 { when all { submitted form "Stop" } then { do not sync } }
"""
    )
    row = _state(
        [ev("09:00", type="form_submit", asset="Stop"), ev("09:01", type="form_submit", asset="F")],
        rules,
    )
    assert row["_pending"] == []


def test_crm_deletion_makes_crm_status_deleted_reachable() -> None:
    row = _state(
        [
            ev("09:00", type="form_submit", asset="F"),
            ev("09:10", type="crm_update", object="lead", crm_id="00QL"),
            ev("09:20", type="crm_update", object="lead", crm_id="00QL", status="deleted"),
        ]
    )
    assert row["crm_status"] == "deleted"
    assert row["crm_id"] is None
    assert row["do_not_sync"] is True
    assert "Deleted" in row["lists"]
    # Created once (on assignment); the deletion queues no recreation.
    assert row["_pending"] == ["create_record"]


def test_a_deleted_lead_does_not_unlink_a_contact() -> None:
    row = _state(
        [
            ev("09:00", type="crm_update", object="contact", crm_id="003C"),
            ev("09:10", type="crm_update", object="lead", crm_id="00QL", status="deleted"),
        ]
    )
    assert row["crm_status"] == "contact" and row["crm_id"] == "003C"
