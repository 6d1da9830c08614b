"""A value the mapped field's type does not take (text in a number field, a malformed address
in an email field): the plan expects the CRM's refusal, as apply then meets it."""

from __future__ import annotations

import json
from pathlib import Path

from .world import ORG, World, ev

T0 = "2026-11-02T09:00:00Z"


def test_the_plan_expects_a_value_of_the_wrong_type_to_be_refused(tmp_path: Path) -> None:
    # The plan said "ours wins (new record)" and nothing more; apply then had the lead
    # refused for both fields (INVALID_TYPE_ON_FIELD_IN_RECORD, INVALID_EMAIL_ADDRESS) and
    # wrote it again without them: 2 errors where the plan expected none.
    w = World(tmp_path)
    w.rules.write_text(
        w.rules.read_text("utf-8")
        .replace('"Title" prefer ours', '"Seats__c" prefer ours')
        .replace('"LeadSource" prefer crm', '"Alt_Email__c" prefer crm'),
        "utf-8",
    )
    org = json.loads(json.dumps(ORG))
    for obj in ("Lead", "Contact"):
        org["custom_fields"][obj].update(
            {"Seats__c": {"type": "double"}, "Alt_Email__c": {"type": "email"}}
        )
    w.seed({}, org)
    fields = {"title": "about twelve", "lead_source": "ann at x.com", "phone": "+1 555 0100"}
    w.run(
        ev(T0, "ann@x.com", asset="Demo"),
        ev(T0, "ann@x.com", "prospect_update", fields=fields),
        ev(T0, "bob@x.com", asset="Demo"),
        ev(T0, "bob@x.com", "prospect_update", fields={"title": "12", "lead_source": "b@x.com"}),
    )
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    expected = sorted(
        (o["prospect"], e["field"], e["code"], e["message"])
        for o in plan["ops"]
        for e in o.get("expected_errors", ())
    )
    assert [x[:3] for x in expected] == [
        ("ann@x.com", "Alt_Email__c", "INVALID_EMAIL_ADDRESS"),
        ("ann@x.com", "Seats__c", "INVALID_TYPE_ON_FIELD_IN_RECORD"),
    ], expected
    assert plan["summary"]["expected_errors"] == 2
    report = json.loads(w.sync("apply", "--format", "json").output)
    got = sorted((e["prospect"], e["field"], e["code"], e["message"]) for e in report["errors"])
    assert got == expected, (got, expected)
    assert report["created"] == 2
    leads = {r["Email"]: r for r in w.crm_rows("Lead")}
    assert leads["bob@x.com"]["Seats__c"] == 12.0 and leads["ann@x.com"]["Phone"] == "+1 555 0100"
