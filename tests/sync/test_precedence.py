"""`prefer contact over lead` / `prefer lead over contact`: which record a prospect with
none links to when a contact and a lead both have its email (docs/sync.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.sync.world import T0, World, ev

BOB_CONTACT = {"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com"}
BOB_LEAD = {"Id": "l-bob", "LastName": "Stone", "Company": "Ex", "Email": "Bob@X.com"}


@pytest.mark.parametrize(
    ("setting", "status"), [("contact over lead", "contact"), ("lead over contact", "lead")]
)
def test_an_assigned_prospect_links_to_the_preferred_record(
    tmp_path: Path, setting: str, status: str
) -> None:
    """The records were read by an earlier cycle: the assignment's match finds them."""
    w = World(tmp_path, settings=f"prefer {setting}")
    w.seed({"Contact": [BOB_CONTACT], "Lead": [BOB_LEAD]})
    w.run(ev(T0, "ann@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)  # reads both records; no prospect has their email yet
    w.run(ev("2026-11-02T09:30:00Z", "bob@x.com", asset="Demo"))  # created and assigned
    plan = w.sync("plan", code=2).output
    assert f"a {status} has this email: linked, no lead created" in plan
    w.sync("apply")
    assert w.prospects()["bob@x.com"]["crm_status"] == status
    assert len(w.crm_rows("Lead")) == 1  # none created


def test_a_lead_does_not_take_the_link_from_a_contact(tmp_path: Path) -> None:
    """With `prefer lead over contact`, a prospect linked to a contact keeps it when a
    lead with its email appears later (the precedence chooses a first link only)."""
    w = World(tmp_path, settings="prefer lead over contact")
    w.seed({"Contact": [BOB_CONTACT]})
    w.run(ev(T0, "bob@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    assert w.prospects()["bob@x.com"]["crm_status"] == "contact"
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "create",
            "object": "Lead",
            "fields": {"LastName": "Stone", "Company": "Ex", "Email": "bob@x.com"},
        },
        until="2026-11-02T09:05:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert w.prospects()["bob@x.com"]["crm_status"] == "contact"


def test_a_link_moved_in_its_own_cycle_counts_one_prospect(tmp_path: Path) -> None:
    """The first cycle reads the lead (linked), then the contact (the link moves): the
    cycle linked one prospect, and said 2."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB_CONTACT], "Lead": [BOB_LEAD]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    out = w.sync("apply").output
    assert "1 linked" in out, out
    assert w.prospects()["bob@x.com"]["crm_status"] == "contact"
