"""An update whose every field the CRM refuses holds each of them in the error queue
(docs/sync.md#errors: a CRM that names one field a call is answered field by field).
Before, only the field of the last call was kept: the others, set aside in the calls
before, were neither reported nor held, so every cycle wrote them again, refused."""

from __future__ import annotations

from pathlib import Path

from .world import BOB, T0, World, ev

T1 = "2026-11-02T09:05:00Z"
LONG = "+1 555 0101 extension 1234, ask for the IT desk"  # Phone takes 40 characters


def test_both_refused_fields_of_an_update_are_held(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [dict(BOB)]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)  # linked to his contact
    # Two values the CRM refuses, and nothing else to write.
    w.run(
        ev(
            T1,
            "bob@x.com",
            "prospect_update",
            fields={"phone": LONG, "company_size": "7"},
        )
    )
    out = w.sync("apply").output
    assert "2 errors" in out, out
    held = {(e["field"], e["code"]) for e in w.status()["error_queue"]}
    assert held == {
        ("Phone", "STRING_TOO_LONG"),
        ("Company_Size__c", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    }, held
    # Held, both: the next cycle does not write them again.
    plan = w.sync("plan", "--at", "2026-11-02T09:20:00Z", "--format", "json", code=None).output
    assert '"op": "update"' not in plan, plan
    out = w.sync("run", "--until", "2026-11-02T09:20:00Z").output
    assert "idle" in out, out
    assert w.crm_rows("Contact")[0]["Phone"] == BOB["Phone"]
