"""A prospect added in marketing with the email of a CRM lead or contact that the sync
read already (and that did not change since) is linked to it at the next cycle, assigned
or not: identity is the email (docs/sync.md, "Inbound"). Adding the email by hand is one
of the ways a CRM record reaches marketing."""

from __future__ import annotations

from pathlib import Path

from tests.sync.world import T0, World, ev

NORA = {"Id": "c-nora", "LastName": "Lind", "Email": "nora@x.com", "Phone": "+1 555 0102"}
OTTO = {"Id": "l-otto", "LastName": "Berg", "Company": "Berg", "Email": "Otto@X.com"}
OTTO_CONTACT = {"Id": "c-otto", "LastName": "Berg", "Email": "otto@x.com"}
LATER = "2026-11-02T09:30:00Z"


def test_a_prospect_added_later_links_to_the_record_with_its_email(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [NORA], "Lead": [OTTO]})
    w.run(ev(T0, "ann@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)  # reads both records; no prospect has their email yet
    w.run(
        ev(LATER, "nora@x.com", "prospect_update", fields={"first_name": "Nora"}),
        ev(LATER, "otto@x.com", "prospect_update", fields={"first_name": "Otto"}),
    )
    plan = w.sync("plan", "--at", LATER, code=2).output
    link = next(line for line in plan.splitlines() if "link          nora@x.com" in line)
    assert "nora@x.com  contact " in link and "(same email (match by email))" in link, plan
    w.sync("run", "--until", "2026-11-02T09:40:00Z")
    got = w.prospects()
    assert got["nora@x.com"]["crm_status"] == "contact"
    assert got["nora@x.com"]["fields"]["phone"] == "+1 555 0102"  # the record's values come
    assert got["otto@x.com"]["crm_status"] == "lead"
    assert got["ann@x.com"]["crm_status"] == "none"  # nothing has her email: nothing made
    assert len(w.crm_rows("Lead")) == 1  # none created


def test_the_contact_first(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [OTTO_CONTACT], "Lead": [OTTO]})
    w.run(ev(T0, "ann@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    w.run(ev(LATER, "otto@x.com", "prospect_update", fields={"first_name": "Otto"}))
    w.sync("run", "--until", "2026-11-02T09:40:00Z")
    assert w.prospects()["otto@x.com"]["crm_status"] == "contact"
