"""One prospect a CRM record: a lead conversion never leaves two prospects linked to one
contact; the duplicate is a sync error (docs/sync.md#one-prospect-a-crm-record)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .world import World, ev

T0 = "2026-11-02T09:00:00Z"
T1 = "2026-11-02T09:10:00Z"
CONVERT = {"at": "2026-11-02T09:05:00Z", "op": "convert", "email": "henry@x.com"}
SEED: dict[str, list[dict[str, Any]]] = {
    "Account": [{"Id": "a-ex", "Name": "Ex"}],
    "Contact": [{"Id": "c-hb", "LastName": "Blanc", "Email": "h.blanc@x.com", "AccountId": "a-ex"}],
    "Lead": [{"Id": "l-hen", "LastName": "Blanc", "Company": "Ex", "Email": "henry@x.com"}],
}


def _world(tmp: Path) -> World:
    w = World(tmp)
    w.seed({k: [dict(r) for r in v] for k, v in SEED.items()})
    return w


def _henry_converted_then_h_blanc(w: World) -> None:
    """Henry is synced, sales convert his lead into the contact of h.blanc@x.com, a person
    marketing does not have yet, and then h.blanc@x.com comes to marketing."""
    w.run(ev(T0, "henry@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    w.changes(
        {**CONVERT, "opportunity": False, "account": "a-ex", "contact": "c-hb"},
        until="2026-11-02T09:05:00Z",
    )
    w.run(ev("2026-11-02T09:06:00Z", "h.blanc@x.com", asset="Demo"))


def _ids(w: World) -> dict[str, str]:
    c = w.crm()
    try:
        return {label: c.label_id(label) for label in ("c-hb", "l-hen")}
    finally:
        c.close()


def test_a_lead_converted_into_another_prospects_contact_is_not_linked_to_it(
    tmp_path: Path,
) -> None:
    # Henry's lead is converted into the contact h.blanc@x.com's prospect is linked to.
    # The link moved to the contact: two prospects linked to one contact, without a word.
    w = _world(tmp_path)
    ids = _ids(w)
    w.run(ev(T0, "henry@x.com", asset="Demo"), ev(T0, "h.blanc@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    w.changes(
        {**CONVERT, "opportunity": False, "account": "a-ex", "contact": "c-hb"},
        until="2026-11-02T09:05:00Z",
    )
    plan = w.sync("plan", code=2).output
    assert (
        f"< delete        henry@x.com  lead {ids['l-hen']}  (lead {ids['l-hen']} converted"
        f" into contact {ids['c-hb']}, which h.blanc@x.com is linked to" in plan
    ), plan
    out = w.sync("run", "--until", T1).output
    assert "errors   1" in out, out
    assert w.syncdb("SELECT prospect, crm_id, deleted FROM link ORDER BY prospect") == [
        ("h.blanc@x.com", ids["c-hb"], 0),
        ("henry@x.com", ids["l-hen"], 1),
    ]
    people = w.prospects()
    assert (people["h.blanc@x.com"]["crm_status"], people["h.blanc@x.com"]["crm_id"]) == (
        "contact",
        ids["c-hb"],
    )
    assert (people["henry@x.com"]["crm_status"], people["henry@x.com"]["crm_id"]) == (
        "deleted",
        None,
    )
    (error,) = w.status()["error_queue"]
    assert (error["prospect"], error["code"], error["field"]) == (
        "henry@x.com",
        "DUPLICATE_LINK",
        "*link",
    )
    assert "h.blanc@x.com is linked to: one prospect a CRM record" in error["message"]
    # and a later assignment of Henry creates no second record of the person
    w.run(ev("2026-11-02T09:12:00Z", "henry@x.com", asset="Demo"))
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    assert len(w.crm_rows("Lead")) == 1 and len(w.crm_rows("Contact")) == 1


def test_an_assigned_prospect_whose_email_finds_another_prospects_record_waits(
    tmp_path: Path,
) -> None:
    # Henry's lead is converted into the contact of h.blanc@x.com, a person marketing does
    # not have yet: the link moves to it. Then h.blanc@x.com is assigned: its search by
    # email found the contact and linked it too, a second prospect on one contact.
    w = _world(tmp_path)
    ids = _ids(w)
    _henry_converted_then_h_blanc(w)
    plan = w.sync("plan", code=2).output
    assert f"! hold          h.blanc@x.com  {ids['c-hb']}" in plan, plan
    assert "is linked to henry@x.com: one prospect a CRM record" in plan, plan
    w.sync("run", "--until", T1)
    assert w.syncdb("SELECT prospect, crm_id, deleted FROM link") == [
        ("henry@x.com", ids["c-hb"], 0)
    ]
    assert len(w.crm_rows("Lead")) == 1  # Henry's, converted: no lead made for h.blanc
    status = w.status()
    assert [(e["prospect"], e["code"]) for e in status["error_queue"]] == [
        ("h.blanc@x.com", "DUPLICATE_LINK")
    ]
    assert status["queue"] == 1  # the work waits
    w.sync("run", "--until", "2026-11-02T09:20:00Z")  # still the other's: still waiting
    assert w.status()["error_queue"][0]["attempts"] == 1
    # Sales give the contact Henry's address: the record is no longer h.blanc's by email,
    # and the next cycle does the work (a lead for h.blanc); the error leaves the queue.
    w.changes(
        {
            "at": "2026-11-02T09:25:00Z",
            "op": "update",
            "id": "c-hb",
            "fields": {"Email": "henry@x.com"},
        },
        until="2026-11-02T09:25:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    status = w.status()
    assert (status["error_queue"], status["queue"]) == ([], 0)
    leads = sorted(str(r["Email"]) for r in w.crm_rows("Lead"))
    assert leads == ["h.blanc@x.com", "henry@x.com"], leads
    people = w.prospects()
    assert people["h.blanc@x.com"]["crm_status"] == "lead"
    assert people["henry@x.com"]["crm_id"] == ids["c-hb"]


def test_of_two_contacts_with_the_email_the_one_no_prospect_has_is_linked(
    tmp_path: Path,
) -> None:
    # Two contacts have h.blanc@x.com; Henry's lead was converted into the first. When
    # h.blanc@x.com is assigned, its search by email takes the first one no other prospect
    # is linked to: the second, rather than waiting on the first.
    w = World(tmp_path)
    seed = {k: [dict(r) for r in v] for k, v in SEED.items()}
    seed["Contact"].append(
        {"Id": "c-hb2", "LastName": "Blanc", "Email": "h.blanc@x.com", "AccountId": "a-ex"}
    )
    w.seed(seed)
    c = w.crm()
    try:
        first, second = c.label_id("c-hb"), c.label_id("c-hb2")
    finally:
        c.close()
    _henry_converted_then_h_blanc(w)
    w.sync("run", "--until", T1)
    assert w.syncdb("SELECT prospect, crm_id FROM link ORDER BY prospect") == [
        ("h.blanc@x.com", second),
        ("henry@x.com", first),
    ]
    assert w.status()["error_queue"] == []
    assert len(w.crm_rows("Lead")) == 1  # Henry's, converted


def test_what_retry_send_and_run_say_of_a_duplicate_link_hold(tmp_path: Path) -> None:
    # h.blanc@x.com's work is held: the contact its email finds is henry@x.com's. `sync
    # retry` counted the hold among "held error(s) will be retried", which a retry cannot
    # clear; the cycles after, whose only work was the hold, printed as idle; and `sync
    # send` of the contact said it was sent, and changed nothing.
    w = _world(tmp_path)
    ids = _ids(w)
    _henry_converted_then_h_blanc(w)
    assert "errors   1" in w.sync("run", "--until", T1).output
    out = w.sync("run", "--until", "2026-11-02T09:30:00Z").output
    assert "idle" not in out, out
    assert (
        "2026-11-02T09:20:00Z to 2026-11-02T09:30:00Z  2 cycles wrote nothing: 1 prospect"
        " held, the CRM record their email finds being another prospect's (DUPLICATE_LINK"
    ) in out, out
    out = w.cli("sync", "retry", "--store", str(w.store)).output
    assert out.startswith("0 held errors will be retried at the next cycle\n"), out
    assert "1 DUPLICATE_LINK hold not retried" in out, out
    for who in ("h.blanc@x.com", ids["c-hb"]):
        out = w.sync("send", who).output
        assert out == (
            f"contact {ids['c-hb']} (h.blanc@x.com) is not sent: it is henry@x.com's CRM"
            " record, and a CRM record has one prospect; nothing to do\n"
        ), out
    assert w.syncdb("SELECT * FROM send") == []
    out = w.sync("apply").output
    assert "1 held (DUPLICATE_LINK: the CRM record their email finds is another" in out, out


def test_send_of_a_second_record_of_a_linked_prospect_says_it_changes_nothing(
    tmp_path: Path,
) -> None:
    # henry@x.com is linked to one of two leads with its email; `sync send` of the other
    # said "the next cycle creates or updates its prospect", and the cycle left it alone.
    w = World(tmp_path)
    w.seed(
        {
            "Lead": [
                {"Id": "l-1", "LastName": "Blanc", "Company": "Ex", "Email": "henry@x.com"},
                {"Id": "l-2", "LastName": "Blanc", "Company": "Ex", "Email": "henry@x.com"},
            ]
        }
    )
    w.run(ev(T0, "henry@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    ((linked,),) = w.syncdb("SELECT crm_id FROM link WHERE prospect = 'henry@x.com'")
    c = w.crm()
    try:
        other = next(c.label_id(x) for x in ("l-1", "l-2") if c.label_id(x) != linked)
    finally:
        c.close()
    out = w.sync("send", other).output
    assert out == (
        f"lead {other} (henry@x.com) is not sent: its prospect is linked to lead {linked},"
        " and a prospect has one CRM record; nothing to do\n"
    ), out
    assert w.syncdb("SELECT * FROM send") == []
