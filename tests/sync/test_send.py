"""`mrules sync send`: one CRM record sent to marketing (Pardot's "Send to Pardot")."""

from __future__ import annotations

import json
from pathlib import Path

from tests.sync.world import T0, World, ev

SEED = {
    "Contact": [
        {
            "Id": "c-kim",
            "FirstName": "Kim",
            "LastName": "Lee",
            "Email": "kim@x.com",
            "Phone": "+1 555 0404",
            "LeadSource": "Web",
        }
    ],
    "Lead": [
        {
            "Id": "l-max",
            "LastName": "Max",
            "Company": "Max Co",
            "Email": "max@x.com",
            "Title": "CEO",
        },
        {"Id": "l-nomail", "LastName": "Nomail", "Company": "N"},
    ],
}


def _world(tmp: Path) -> World:
    w = World(tmp)  # auto create prospects off
    w.seed({k: [dict(r) for r in v] for k, v in SEED.items()})
    w.run(ev(T0, "ann@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    return w


def test_without_send_no_prospect_is_created(tmp_path: Path) -> None:
    w = _world(tmp_path)
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert set(w.prospects()) == {"ann@x.com"}


def test_send_by_email_creates_the_prospect_at_the_next_cycle(tmp_path: Path) -> None:
    w = _world(tmp_path)
    r = w.sync("send", "KIM@x.com")
    assert "contact 003" in r.output and "sent to marketing" in r.output
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    (op,) = [i for i in plan["inbound"] if i["op"] == "new prospect"]
    assert (op["prospect"], op["why"]) == ("kim@x.com", "sent to marketing (sync send)")
    w.sync("apply")
    kim = w.prospects()["kim@x.com"]
    assert kim["crm_status"] == "contact" and kim["crm_id"].startswith("003")
    assert (kim["fields"]["phone"], kim["fields"]["lead_source"]) == ("+1 555 0404", "Web")
    assert w.syncdb("SELECT count(*) FROM send") == [(0,)]
    # Done once: the next plan has nothing to do for Kim, and Max was never sent.
    plan = json.loads(w.sync("plan", "--format", "json", code=None).output)
    assert not [i for i in plan["inbound"] if i["op"] == "new prospect"]
    assert "max@x.com" not in w.prospects()


def test_send_by_a_15_character_id_creates_from_a_lead(tmp_path: Path) -> None:
    w = _world(tmp_path)
    c = w.crm()
    try:
        max_id = c.label_id("l-max")
    finally:
        c.close()
    assert max_id is not None
    w.sync("send", max_id[:15])  # a 15-character id works too
    w.sync("apply")
    p = w.prospects()["max@x.com"]
    assert (p["crm_status"], p["crm_id"], p["fields"]["title"]) == ("lead", max_id, "CEO")


def test_send_refuses_what_it_cannot_send(tmp_path: Path) -> None:
    w = _world(tmp_path)
    r = w.sync("send", "nobody@x.com", code=2)
    assert "nobody@x.com: no live lead or contact in the CRM" in r.output
    r = w.sync("send", "not-an-id", code=2)
    assert "not an email nor a CRM id" in r.output
    c = w.crm()
    try:
        nomail = c.label_id("l-nomail")
    finally:
        c.close()
    r = w.sync("send", str(nomail), code=2)
    assert "has no email" in r.output
    assert w.syncdb("SELECT count(*) FROM send") == [(0,)]


def test_a_lead_whose_prospect_has_a_contact_is_not_sent(tmp_path: Path) -> None:
    """A lead with the email of a prospect linked to a contact: the cycle keeps the
    contact (contact over lead) and the lead changes nothing, but `send` said "the next
    cycle creates or updates its prospect"."""
    w = World(tmp_path)
    seed = {k: [dict(r) for r in v] for k, v in SEED.items()}
    seed["Lead"].append({"Id": "l-kim", "LastName": "Lee", "Company": "K", "Email": "kim@x.com"})
    w.seed(seed)
    w.run(ev(T0, "ann@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    w.sync("send", "kim@x.com")  # the contact, first
    w.sync("apply")
    kim = w.prospects()["kim@x.com"]
    assert kim["crm_status"] == "contact"
    c = w.crm()
    try:
        lead = c.label_id("l-kim")
    finally:
        c.close()
    r = w.sync("send", str(lead))
    assert f"lead {lead} (kim@x.com) is not sent: its prospect is linked to contact" in r.output
    assert "sent to marketing" not in r.output
    assert w.syncdb("SELECT count(*) FROM send") == [(0,)]
    assert w.prospects()["kim@x.com"]["crm_id"] == kim["crm_id"]


def test_the_plan_counts_the_facts_a_send_delivers(tmp_path: Path) -> None:
    """A record sent with auto create off is two facts for the engine: the prospect made,
    then the record's values; the plan's count is what apply delivers."""
    w = _world(tmp_path)
    w.sync("send", "kim@x.com")
    plan = json.loads(w.sync("plan", "--format", "json", code=None).output)
    applied = json.loads(w.sync("apply", "--format", "json").output)
    assert plan["summary"]["inbound_facts"] == applied["facts_for_engine"] == 2
    assert w.prospects()["kim@x.com"]["fields"]["phone"] == "+1 555 0404"
