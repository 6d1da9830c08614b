"""A create on assignment writes the person's email, names and company whatever the
mappings; one of those the CRM refuses refuses the create whole, which waits for the
prospect to change (docs/sync.md#errors). Before, a first name too long was set aside
as a mapped field is: the lead was created without it, the error stayed in the queue for
good, and the first name, fixed in marketing, never reached the CRM (no cycle writes an
unmapped field); nor did the plan expect the error."""

from __future__ import annotations

from pathlib import Path

from .world import T0, World, ev

LONG = "Maximiliana-Theodora-Evangelina-Wilhelmina"  # 42 characters: FirstName takes 40


def test_a_first_name_the_crm_refuses_holds_the_create_until_it_changes(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({})
    w.run(
        ev(T0, "max@x.com", "prospect_update", fields={"first_name": LONG, "phone": "+1 555 0101"}),
        ev(T0, "max@x.com", asset="Demo"),
    )
    plan = w.sync("plan", code=2).output
    assert "expected error STRING_TOO_LONG on FirstName" in plan, plan
    w.sync("run", "--until", T0)
    assert w.crm_rows("Lead") == []  # not created without the first name
    (error,) = w.status()["error_queue"]
    assert (error["field"], error["code"]) == ("*record", "STRING_TOO_LONG"), error
    assert w.prospects()["max@x.com"]["pending_crm"], "the create stays queued"
    # Nothing changed: held, not tried again.
    out = w.sync("run", "--until", "2026-11-02T09:20:00Z").output
    assert "idle" in out and w.crm_rows("Lead") == [], out
    # Marketing fixes the first name: the lead is created with it, the error leaves.
    w.run(ev("2026-11-02T09:25:00Z", "max@x.com", "prospect_update", fields={"first_name": "Max"}))
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    (lead,) = w.crm_rows("Lead")
    assert (lead["FirstName"], lead["Phone"], lead["Email"]) == ("Max", "+1 555 0101", "max@x.com")
    assert w.status()["error_queue"] == []
    assert w.prospects()["max@x.com"]["crm_status"] == "lead"


def test_the_plan_expects_an_email_the_crm_refuses(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({})
    w.run(ev(T0, "ann@localhost", asset="Demo"))
    plan = w.sync("plan", code=2).output
    assert "expected error INVALID_EMAIL_ADDRESS on Email" in plan, plan
    out = w.sync("apply").output
    assert "1 error" in out and w.crm_rows("Lead") == [], out
