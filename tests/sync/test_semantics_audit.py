"""Sync results checked against Salesforce's and Pardot's connector (docs/sync.md)."""

from __future__ import annotations

import copy
from pathlib import Path

from tests.sync.world import ORG, T0, World, ev


def test_a_text_that_reads_as_the_same_number_is_still_a_change(tmp_path: Path) -> None:
    # Text fields are text in Salesforce: "+33140000001" and "0033140000001" are two
    # phone numbers, "007" and "7" two titles. Compared as numbers, they were "the
    # same": the prospect's new value never reached the CRM, the two sides differed
    # for good, and the plan said nothing.
    w = World(tmp_path)
    w.seed(
        {
            "Contact": [
                {
                    "Id": "c-bob",
                    "LastName": "Stone",
                    "Email": "bob@x.com",
                    "OwnerId": "sam",
                    "Phone": "+33140000001",
                    "Title": "007",
                }
            ]
        }
    )
    w.run(ev("2026-11-02T09:00:00Z", "bob@x.com", asset="Demo"))
    w.sync("run", "--until", "2026-11-02T09:00:00Z")
    w.run(
        ev(
            "2026-11-02T09:03:00Z",
            "bob@x.com",
            type_="prospect_update",
            fields={"phone": "0033140000001", "title": "7"},
        )
    )
    plan = w.sync("plan", code=2).output
    assert 'Phone: ours "0033140000001" -> CRM "+33140000001"' in plan
    assert 'Title: ours "7" -> CRM "007"' in plan
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    (bob,) = w.crm_rows("Contact")
    assert (bob["Phone"], bob["Title"]) == ("0033140000001", "7")
    # and the other way: a CRM edit that reads as the same number comes to us
    w.changes(
        {
            "at": "2026-11-02T09:15:00Z",
            "op": "update",
            "email": "bob@x.com",
            "fields": {"Title": "7.0"},
        },
        until="2026-11-02T09:15:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    assert w.prospects()["bob@x.com"]["fields"]["title"] == "7.0"


def test_a_record_with_two_refused_fields_is_written_without_both(tmp_path: Path) -> None:
    # The local CRM, like an org's validation, names one refused field a call. The
    # record was written again without the first one only: refused again for the
    # second, a new lead was never created (its create held until the prospect
    # changed), and an update wrote none of the good fields that cycle.
    w = World(tmp_path)
    w.seed({"Contact": [{"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com"}]})
    bad = {"title": "x" * 200, "company_size": "bad", "phone": "123"}
    w.run(
        ev("2026-11-02T08:59:00Z", "ann@x.com", type_="prospect_update", fields=bad),
        ev("2026-11-02T09:00:00Z", "ann@x.com", asset="Demo"),
        ev("2026-11-02T09:00:00Z", "bob@x.com", asset="Demo"),
    )
    out = w.sync("run", "--until", "2026-11-02T09:00:00Z").output
    assert "created     1" in out, out
    w.run(ev("2026-11-02T09:01:00Z", "bob@x.com", type_="prospect_update", fields=bad))
    out = w.sync("run", "--until", "2026-11-02T09:10:00Z").output
    assert "updated     1" in out, out
    (ann,) = w.crm_rows("Lead")
    (bob,) = w.crm_rows("Contact")
    for row in (ann, bob):
        assert (row["Phone"], row["Title"], row.get("Company_Size__c")) == ("123", None, None)
    assert sorted((e["prospect"], e["field"], e["code"]) for e in w.status()["error_queue"]) == [
        ("ann@x.com", "Company_Size__c", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ("ann@x.com", "Title", "STRING_TOO_LONG"),
        ("bob@x.com", "Company_Size__c", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ("bob@x.com", "Title", "STRING_TOO_LONG"),
    ]
    assert w.prospects()["ann@x.com"]["crm_status"] == "lead"


def test_a_lead_converted_into_an_existing_contact_takes_the_contacts_values(
    tmp_path: Path,
) -> None:
    # Sales convert Henry's lead into the contact they already had for him (another
    # address, another phone). The link moved to the contact but kept comparing with
    # the lead's values: the contact's phone and title never came to the prospect,
    # the plan saying nothing to do, until someone edited the contact.
    w = World(tmp_path)
    w.seed(
        {
            "Account": [{"Id": "a-ex", "Name": "Ex"}],
            "Contact": [
                {
                    "Id": "c-hb",
                    "LastName": "Blanc",
                    "Email": "h.blanc@x.com",
                    "AccountId": "a-ex",
                    "OwnerId": "sam",
                    "Phone": "+33 9",
                    "Title": "CEO",
                }
            ],
            "Lead": [
                {
                    "Id": "l-hen",
                    "LastName": "Blanc",
                    "Company": "Ex",
                    "Email": "henry@x.com",
                    "Phone": "+33 1",
                    "OwnerId": "sam",
                }
            ],
        }
    )
    w.run(ev("2026-11-02T09:00:00Z", "henry@x.com", asset="Demo"))
    w.sync("run", "--until", "2026-11-02T09:00:00Z")
    convert = {"op": "convert", "email": "henry@x.com", "opportunity": False}
    w.changes(
        {"at": "2026-11-02T09:05:00Z", **convert, "account": "a-ex", "contact": "c-hb"},
        until="2026-11-02T09:05:00Z",
    )
    plan = w.sync("plan", code=2).output
    assert 'Phone: ours "+33 1" <- CRM "+33 9"' in plan, plan
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    henry = w.prospects()["henry@x.com"]
    assert (henry["crm_status"], henry["crm_id"][:3]) == ("contact", "003")
    assert (henry["fields"]["phone"], henry["fields"]["title"]) == ("+33 9", "CEO")
    (contact,) = w.crm_rows("Contact")
    assert (contact["Phone"], contact["Title"]) == ("+33 9", "CEO")


def test_an_inactive_crm_user_leaves_the_record_with_the_integration_user(
    tmp_path: Path,
) -> None:
    # An owner that is not a mapped, active user falls back to the connector user,
    # as an unknown one does. The create was sent with the inactive user as owner:
    # refused for it, written again without it, and an INACTIVE_OWNER_OR_USER error
    # stayed in the queue for good (no write of OwnerId is ever tried again).
    w = World(tmp_path)
    w.seed({})
    w.changes(
        {"at": "2026-11-01T09:00:00Z", "op": "update", "id": "alan", "fields": {"IsActive": False}},
        until="2026-11-01T09:00:00Z",
    )
    w.run(ev("2026-11-02T09:00:00Z", "ann@x.com", asset="Demo"))
    plan = w.sync("plan", code=2).output
    assert "'alan@x.com' is not an active CRM user: the integration user owns it" in plan
    out = w.sync("run", "--until", "2026-11-02T09:10:00Z").output
    assert "errors   0" in out, out
    (ann,) = w.crm_rows("Lead")
    c = w.crm()
    try:
        assert ann["OwnerId"] == c.integration_user_id
    finally:
        c.close()
    assert w.status()["error_queue"] == []


def test_a_linked_record_gone_from_the_crm_counts_as_deleted(tmp_path: Path) -> None:
    # Sales delete Bob's contact; the run's clock then moves a month on before a cycle
    # reads it, and the cycle (setting the CRM's clock) finds the recycle bin purged
    # (15 days). `sync plan` said "deleted in the CRM"; the cycle wrote to the record
    # instead, refused (INVALID_CROSS_REFERENCE_KEY on Id) every cycle, the prospect
    # linked to a record that no longer is. A write refused because the record itself
    # is gone is now what it says: the record was deleted (Pardot: crm deleted).
    w = World(tmp_path)
    w.seed({"Contact": [{"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com"}]})
    w.run(ev("2026-11-02T09:00:00Z", "bob@x.com", asset="Demo"))
    w.sync("run", "--until", "2026-11-02T09:00:00Z")
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "bob@x.com"},
        until="2026-11-02T09:05:00Z",
    )
    w.run(ev("2026-12-05T09:00:00Z", "bob@x.com", type_="prospect_update", fields={"title": "X"}))
    assert "deleted in the CRM" in w.sync("plan", code=2).output
    w.sync("run", "--until", "2026-12-05T09:10:00Z")
    bob = w.prospects()["bob@x.com"]
    assert (bob["crm_status"], bob["crm_id"]) == ("deleted", None)
    assert w.status()["error_queue"] == []
    assert w.syncdb("SELECT deleted FROM link WHERE prospect='bob@x.com'") == [(1,)]
    # and, as for a deletion read from the CRM, a new assignment creates nothing
    w.run(ev("2026-12-05T09:15:00Z", "bob@x.com", asset="Demo"))
    w.sync("run", "--until", "2026-12-05T09:30:00Z")
    assert w.crm_rows("Lead") == []


def test_the_score_in_the_crm_is_always_ours(tmp_path: Path) -> None:
    # The package's pi__Score__c gets mrules' score, "ours always" (Pardot-only fields
    # are always Pardot's). A CRM edit of it was a one-sided change, so the CRM's
    # value "won": the CRM kept 99 for good while the prospect's score stayed 1.
    org = copy.deepcopy(ORG)
    for obj in ("Lead", "Contact"):
        org["custom_fields"][obj]["pi__Score__c"] = "double"
    w = World(tmp_path)
    w.seed({"Contact": [{"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com"}]}, org=org)
    w.run(ev(T0, "bob@x.com", asset="Quiet"), ev(T0, "bob@x.com", asset="Demo"))  # score 1
    w.sync("run", "--until", T0)
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "update",
            "email": "bob@x.com",
            "fields": {"pi__Score__c": 99},
        },
        until="2026-11-02T09:05:00Z",
    )
    assert "pi__Score__c: ours 1 -> CRM 99.0: ours wins" in w.sync("plan", code=2).output
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    (bob,) = w.crm_rows("Contact")
    assert bob["pi__Score__c"] == 1
    assert w.prospects()["bob@x.com"]["score"] == 1


def test_a_contact_created_for_a_queue_is_the_integration_users(tmp_path: Path) -> None:
    # Contacts are owned by users only (a queue owns leads). With `create contact on
    # assignment`, a prospect assigned to a queue had its contact sent with the queue
    # as owner: refused (FIELD_INTEGRITY_EXCEPTION), written again without an owner,
    # and the error stayed in the queue for good.
    w = World(tmp_path, settings="create contact on assignment")
    queue = (
        'queue "Inside Sales"\nform "Q"\non submit of form "Q" { assign to queue "Inside Sales" }\n'
    )
    w.rules.write_text(w.rules.read_text().replace('form "Quiet"\n', f'form "Quiet"\n{queue}', 1))
    w.seed({"Group": [{"Id": "queue-is", "Name": "Inside Sales", "Type": "Queue"}]})
    w.run(ev(T0, "ann@x.com", asset="Q"))
    plan = w.sync("plan", code=2).output
    assert "'Inside Sales' is a queue, and a contact is a user's: the integration user owns it" in (
        plan
    )
    out = w.sync("run", "--until", "2026-11-02T09:10:00Z").output
    assert "created     1" in out and "errors   0" in out, out
    (ann,) = w.crm_rows("Contact")
    c = w.crm()
    try:
        assert ann["OwnerId"] == c.integration_user_id
    finally:
        c.close()
    assert w.status()["error_queue"] == []


def test_a_public_group_named_as_a_queue_does_not_own_the_lead(tmp_path: Path) -> None:
    # The plan read every Group by name, queues or not: a public group named as a queue,
    # read after it, took its place, and the lead was sent with the group's id as owner.
    w = World(tmp_path)
    queue = (
        'queue "Inside Sales"\nform "Q"\non submit of form "Q" { assign to queue "Inside Sales" }\n'
    )
    w.rules.write_text(w.rules.read_text().replace('form "Quiet"\n', f'form "Quiet"\n{queue}', 1))
    w.seed(
        {
            "Group": [
                {"Id": "queue-is", "Name": "Inside Sales", "Type": "Queue"},
                {"Id": "group-is", "Name": "Inside Sales", "Type": "Regular"},
            ]
        }
    )
    w.run(ev(T0, "ann@x.com", asset="Q"))
    out = w.sync("run", "--until", "2026-11-02T09:10:00Z").output
    assert "created     1" in out and "errors   0" in out, out
    (ann,) = w.crm_rows("Lead")
    (queue_row,) = [g for g in w.crm_rows("Group") if g["Type"] == "Queue"]
    assert ann["OwnerId"] == queue_row["Id"]
