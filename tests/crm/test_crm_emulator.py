"""The emulated CRM behaves like Salesforce: write rules, clock, recycle bin, conversion."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from crm_time import T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrules.crm.emulator import RECYCLE_DAYS, CrmFileError, EmulatedCrm, default_crm_path
from mrules.crm.errors import CrmCallError
from mrules.crm.model import SchemaError
from mrules.crm.port import Cursor, LeadConvert

LEAD = {"LastName": "Chan", "Company": "Example SA", "Email": "leung@example.com"}
FAR = T0 + dt.timedelta(days=365)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatedCrm]:
    crm = EmulatedCrm.open(tmp_path / "t.crm.db")
    crm.set_clock(T0)
    yield crm
    crm.close()


def code(result) -> str:
    assert not result.success, result
    return result.errors[0].status_code


def one(crm: EmulatedCrm, sobject: str, values: dict) -> str:
    [res] = crm.create(sobject, [values])
    assert res.success, res.errors
    return res.id


def at(crm: EmulatedCrm, minutes: float) -> None:
    crm.set_clock(T0 + dt.timedelta(minutes=minutes))


def test_default_path_is_beside_the_store() -> None:
    assert default_crm_path("x/getcloudy.db") == Path("x/getcloudy.crm.db")
    assert default_crm_path("store") == Path("store.crm.db")


def test_system_fields_follow_the_clock(emulator: EmulatedCrm) -> None:
    lead = one(emulator, "Lead", LEAD)
    at(emulator, 30)
    emulator.update("Lead", [{"Id": lead, "Phone": "1"}])
    r = emulator.get(lead)
    assert r.fields["CreatedDate"] == "2026-11-02T09:00:00.000+0000"
    assert r.fields["LastModifiedDate"] == "2026-11-02T09:30:00.000+0000"
    assert r.system_modstamp == T0 + dt.timedelta(minutes=30)
    assert r.fields["CreatedById"] == emulator.integration_user_id
    assert r.fields["Status"] == "Open - Not Contacted"  # defaulted
    assert r.fields["OwnerId"] == emulator.integration_user_id


def test_the_clock_never_goes_back(emulator: EmulatedCrm) -> None:
    at(emulator, 10)
    at(emulator, 5)
    assert emulator.now() == T0 + dt.timedelta(minutes=10)


@pytest.mark.parametrize(
    ("values", "status", "fields"),
    [
        ({"LastName": "X"}, "REQUIRED_FIELD_MISSING", ("Company",)),
        ({"Company": "X"}, "REQUIRED_FIELD_MISSING", ("LastName",)),
        ({**LEAD, "FirstName": "y" * 41}, "STRING_TOO_LONG", ("FirstName",)),
        ({**LEAD, "Status": "Hot"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ("Status",)),
        ({**LEAD, "Email": "not-an-email"}, "INVALID_EMAIL_ADDRESS", ("Email",)),
        ({**LEAD, "DoNotCall": "maybe"}, "INVALID_TYPE_ON_FIELD_IN_RECORD", ("DoNotCall",)),
        ({**LEAD, "IsConverted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ("IsConverted",)),
        ({**LEAD, "Shoe_Size__c": 4}, "INVALID_FIELD", ()),
        ({**LEAD, "OwnerId": "005xx"}, "MALFORMED_ID", ("OwnerId",)),
        ({**LEAD, "OwnerId": "0015e0000000009AAA"}, "FIELD_INTEGRITY_EXCEPTION", ("OwnerId",)),
        ({**LEAD, "OwnerId": "0055e0000000009AAA"}, "INVALID_CROSS_REFERENCE_KEY", ("OwnerId",)),
        ({**LEAD, "Id": "00Q5e0000000009EAA"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ("Id",)),
    ],
)
def test_writes_refused_like_salesforce(emulator: EmulatedCrm, values, status, fields) -> None:
    [res] = emulator.create("Lead", [values])
    assert code(res) == status
    assert res.errors[0].fields == fields
    assert list(emulator.records("Lead")) == []


def test_numbers_and_dates_are_typed(emulator: EmulatedCrm) -> None:
    opp = {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-01"}
    assert code(emulator.create("Opportunity", [{**opp, "Amount": "lots"}])[0]).startswith(
        "INVALID_TYPE"
    )
    assert code(emulator.create("Opportunity", [{**opp, "CloseDate": "01/12/2026"}])[0]) == (
        "INVALID_TYPE_ON_FIELD_IN_RECORD"
    )
    assert code(emulator.create("Opportunity", [{**opp, "Amount": 1e17}])[0]) == (
        "NUMBER_OUTSIDE_VALID_RANGE"
    )
    deal = one(emulator, "Opportunity", {**opp, "Amount": "1234.567"})
    assert emulator.get(deal).fields["Amount"] == 1234.57


def test_unknown_object_and_field_names_are_case_insensitive(emulator: EmulatedCrm) -> None:
    assert code(emulator.create("Prospect", [LEAD])[0]) == "INVALID_TYPE"
    lead = one(emulator, "lead", {"lastname": "Chan", "COMPANY": "E"})
    assert emulator.get(lead).fields["LastName"] == "Chan"


def test_update_rules(emulator: EmulatedCrm) -> None:
    lead = one(emulator, "Lead", LEAD)
    assert code(emulator.update("Lead", [{"Id": lead, "LastName": None}])[0]) == (
        "REQUIRED_FIELD_MISSING"
    )
    assert code(emulator.update("Lead", [{"Id": lead, "Status": None}])[0]) == (
        "REQUIRED_FIELD_MISSING"
    )
    assert code(emulator.update("Lead", [{"Phone": "1"}])[0]) == "MISSING_ARGUMENT"
    assert code(emulator.update("Lead", [{"Id": "bad", "Phone": "1"}])[0]) == "MALFORMED_ID"
    contact = one(emulator, "Contact", {"LastName": "Stone"})
    assert code(emulator.update("Lead", [{"Id": contact, "Phone": "1"}])[0]) == "MALFORMED_ID"
    # a 15-character id and a lower-case 18-character id both name the record
    assert emulator.update("Lead", [{"Id": lead[:15], "Phone": "2"}])[0].success
    assert emulator.update("Lead", [{"Id": lead.lower(), "Phone": "3"}])[0].id == lead
    assert emulator.get(lead).fields["Phone"] == "3"


def test_a_batch_is_partial(emulator: EmulatedCrm) -> None:
    results = emulator.create("Lead", [LEAD, {"LastName": "X"}, dict(LEAD, Email="b@x.example")])
    assert [r.success for r in results] == [True, False, True]
    assert len(list(emulator.records("Lead"))) == 2


def test_duplicate_rule_blocks_or_alerts(tmp_path: Path) -> None:
    org = {
        "duplicate_rules": [
            {"object": "Lead", "fields": ["Email"], "match_objects": ["Lead", "Contact"]},
            {"object": "Contact", "fields": ["Email"], "action": "alert"},
        ]
    }
    with EmulatedCrm.open(tmp_path / "d.crm.db", org=org) as crm:
        one(crm, "Contact", {"LastName": "Stone", "Email": "bob@bigcorp.example"})
        [res] = crm.create("Lead", [{**LEAD, "Email": "BOB@bigcorp.example"}])
        assert code(res) == "DUPLICATES_DETECTED"
        # alert rules give way to allowSave; block rules never do
        assert (
            crm.create("Lead", [{**LEAD, "Email": "bob@bigcorp.example"}], allow_duplicates=True)[0]
            .errors[0]
            .status_code
            == "DUPLICATES_DETECTED"
        )
        dup = {"LastName": "Stone", "Email": "bob@bigcorp.example"}
        assert code(crm.create("Contact", [dup])[0]) == "DUPLICATES_DETECTED"
        assert crm.create("Contact", [dup], allow_duplicates=True)[0].success


def test_custom_objects_refused_on_standard(tmp_path: Path) -> None:
    org = {"edition": "standard", "custom_objects": {"Invoice__c": {"key_prefix": "a01"}}}
    with EmulatedCrm.open(tmp_path / "s.crm.db", org=org) as crm:
        [res] = crm.create("Invoice__c", [{"Name": "INV-1"}])
        assert code(res) == "INVALID_TYPE"
        assert "not available on the Standard edition" in res.errors[0].message
        with pytest.raises(CrmCallError) as e:
            crm.describe("Invoice__c")
        assert e.value.code == "INVALID_TYPE"
    org["edition"] = "plus"
    with EmulatedCrm.open(tmp_path / "p.crm.db", org=org) as crm:
        inv = one(crm, "Invoice__c", {"Name": "INV-1"})
        assert inv.startswith("a01")


@pytest.mark.parametrize(
    "org",
    [
        {"edition": "platinum"},
        {"custom_fields": {"Prospect": {}}},
        {"custom_fields": {"Lead": {"Size": "string"}}},
        {"custom_fields": {"Lead": {"Size__c": {"type": "blob"}}}},
        {"custom_objects": {"Invoice": {"key_prefix": "a01"}}},
        {"custom_objects": {"Invoice__c": {"key_prefix": "00Q"}}},
        {"duplicate_rules": [{"object": "Lead", "action": "warn"}]},
    ],
)
def test_bad_org_files(tmp_path: Path, org) -> None:
    with pytest.raises(SchemaError):
        EmulatedCrm.open(tmp_path / "x.crm.db", org=org)


def test_not_a_crm_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CrmFileError):
        EmulatedCrm.open(junk)
    with pytest.raises(CrmFileError):
        EmulatedCrm.open(tmp_path / "missing.crm.db", create=False)


def test_opportunity_stage_sets_won_and_closed(emulator: EmulatedCrm) -> None:
    opp = one(
        emulator,
        "Opportunity",
        {"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2026-12-01", "Amount": 5000},
    )
    r = emulator.get(opp).fields
    assert (r["IsClosed"], r["IsWon"], r["Probability"], r["ForecastCategory"]) == (
        False,
        False,
        10.0,
        "Pipeline",
    )
    emulator.update("Opportunity", [{"Id": opp, "StageName": "Closed Won"}])
    r = emulator.get(opp).fields
    assert (r["IsClosed"], r["IsWon"], r["Probability"]) == (True, True, 100.0)
    [res] = emulator.update("Opportunity", [{"Id": opp, "IsWon": False}])
    assert code(res) == "INVALID_FIELD_FOR_INSERT_UPDATE"


def test_one_primary_contact_role(emulator: EmulatedCrm) -> None:
    opp = one(
        emulator,
        "Opportunity",
        {"Name": "D", "StageName": "Prospecting", "CloseDate": "2026-12-01"},
    )
    a = one(emulator, "Contact", {"LastName": "A"})
    b = one(emulator, "Contact", {"LastName": "B"})
    ra = one(
        emulator,
        "OpportunityContactRole",
        {"OpportunityId": opp, "ContactId": a, "IsPrimary": True},
    )
    rb = one(
        emulator,
        "OpportunityContactRole",
        {"OpportunityId": opp, "ContactId": b, "IsPrimary": True},
    )
    assert not emulator.get(ra).fields["IsPrimary"] and emulator.get(rb).fields["IsPrimary"]


def test_campaign_members(emulator: EmulatedCrm) -> None:
    camp = one(emulator, "Campaign", {"Name": "Webinar", "ActualCost": 1200, "BudgetedCost": 1500})
    assert emulator.member_statuses(camp) == [("Sent", False, True), ("Responded", True, False)]
    lead = one(emulator, "Lead", LEAD)
    m = one(emulator, "CampaignMember", {"CampaignId": camp, "LeadId": lead})
    assert emulator.get(m).fields["Status"] == "Sent"
    assert emulator.get(m).fields["HasResponded"] is False
    at(emulator, 60 * 24)
    emulator.update("CampaignMember", [{"Id": m, "Status": "Responded"}])
    f = emulator.get(m).fields
    assert f["HasResponded"] is True and f["FirstRespondedDate"] == "2026-11-03"
    again = emulator.create("CampaignMember", [{"CampaignId": camp, "LeadId": lead}])[0]
    assert code(again) == "DUPLICATE_VALUE"
    bad = emulator.create(
        "CampaignMember",
        [
            {
                "CampaignId": camp,
                "LeadId": one(emulator, "Lead", dict(LEAD, Email="z@z.example")),
                "Status": "Attended",
            }
        ],
    )[0]
    assert code(bad) == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert code(emulator.create("CampaignMember", [{"CampaignId": camp}])[0]) == (
        "REQUIRED_FIELD_MISSING"
    )
    assert code(emulator.update("CampaignMember", [{"Id": m, "LeadId": lead}])[0]) == (
        "INVALID_FIELD_FOR_INSERT_UPDATE"
    )


def test_task_rules(emulator: EmulatedCrm) -> None:
    lead = one(emulator, "Lead", LEAD)
    acc = one(emulator, "Account", {"Name": "Example SA"})
    [res] = emulator.create("Task", [{"WhoId": lead, "WhatId": acc, "Subject": "Call"}])
    assert code(res) == "FIELD_INTEGRITY_EXCEPTION"
    task = one(emulator, "Task", {"WhoId": lead, "Subject": "Call"})
    f = emulator.get(task).fields
    assert (f["Status"], f["Priority"], f["IsClosed"]) == ("Not Started", "Normal", False)
    emulator.update("Task", [{"Id": task, "Status": "Completed"}])
    assert emulator.get(task).fields["IsClosed"] is True


def test_inactive_owner(emulator: EmulatedCrm) -> None:
    user = one(
        emulator,
        "User",
        {
            "Username": "gone@getcloudy.com",
            "Email": "gone@getcloudy.com",
            "LastName": "Gone",
            "IsActive": False,
        },
    )
    assert code(emulator.create("Lead", [{**LEAD, "OwnerId": user}])[0]) == "INACTIVE_OWNER_OR_USER"
    dup = {"Username": "gone@getcloudy.com", "Email": "x@getcloudy.com", "LastName": "X"}
    assert code(emulator.create("User", [dup])[0]) == "DUPLICATE_USERNAME"


def test_recycle_bin(emulator: EmulatedCrm) -> None:
    acc = one(emulator, "Account", {"Name": "BigCorp"})
    contact = one(emulator, "Contact", {"LastName": "Stone", "AccountId": acc})
    other = one(emulator, "Contact", {"LastName": "Alone"})
    at(emulator, 10)
    assert emulator.delete([acc])[0].success
    assert emulator.get(contact).is_deleted  # deleted with its account
    assert not emulator.get(other).is_deleted
    assert code(emulator.update("Contact", [{"Id": contact, "Phone": "1"}])[0]) == (
        "ENTITY_IS_DELETED"
    )
    assert code(emulator.create("Contact", [{"LastName": "New", "AccountId": acc}])[0]) == (
        "ENTITY_IS_DELETED"
    )
    gone = emulator.get_deleted("Contact", T0, FAR)
    assert [d.id for d in gone.records] == [contact]
    at(emulator, 20)
    assert emulator.undelete([acc])[0].success
    assert not emulator.get(contact).is_deleted
    assert emulator.get(contact).system_modstamp == T0 + dt.timedelta(minutes=20)
    assert emulator.get_deleted("Contact", T0, FAR).records == []
    assert code(emulator.undelete([acc])[0]) == "UNDELETE_FAILED"


def test_the_bin_is_purged_after_15_days(emulator: EmulatedCrm) -> None:
    lead = one(emulator, "Lead", LEAD)
    emulator.delete([lead])
    emulator.set_clock(T0 + dt.timedelta(days=RECYCLE_DAYS, minutes=1))
    window = emulator.get_deleted("Lead", T0 - dt.timedelta(days=1), FAR)
    assert window.records == []
    assert window.earliest_date_available > T0
    assert emulator.get(lead) is None
    assert code(emulator.undelete([lead])[0]) == "INVALID_CROSS_REFERENCE_KEY"


def test_query_changed_sees_every_write_once(emulator: EmulatedCrm) -> None:
    ids = []
    for i in range(5):
        at(emulator, i // 2)  # two writes share a modstamp: the id breaks the tie
        ids.append(one(emulator, "Lead", dict(LEAD, Email=f"p{i}@example.com")))
    seen, cursor = [], None
    while True:
        page = emulator.query_changed("Lead", cursor, FAR, ["Email"], limit=2)
        seen += [r.id for r in page.records]
        cursor = page.cursor
        if page.done:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    at(emulator, 10)
    emulator.update("Lead", [{"Id": ids[0], "Phone": "9"}])
    page = emulator.query_changed("Lead", cursor, FAR)
    assert [r.id for r in page.records] == [ids[0]]
    assert page.records[0].fields["Phone"] == "9"
    with pytest.raises(CrmCallError):
        emulator.query_changed("Lead", None, FAR, ["NoSuchField"])
    later = emulator.query_changed("Lead", Cursor(T0 + dt.timedelta(minutes=10), ids[0]), FAR)
    assert later.records == [] and later.done


def test_find_by_email_any_case(emulator: EmulatedCrm) -> None:
    lead = one(emulator, "Lead", LEAD)
    found = emulator.find("Lead", "email", ["  LEUNG@example.COM"])
    assert [r.id for r in found] == [lead]
    assert [r.id for r in emulator.find("Lead", "Company", ["example sa"])] == [lead]


def test_conversion(emulator: EmulatedCrm) -> None:
    camp = one(emulator, "Campaign", {"Name": "Consult"})
    lead = one(emulator, "Lead", {**LEAD, "Phone": "+33 1", "LeadSource": "Web"})
    member = one(emulator, "CampaignMember", {"CampaignId": camp, "LeadId": lead})
    task = one(emulator, "Task", {"WhoId": lead, "Subject": "Call"})
    at(emulator, 60)
    [res] = emulator.convert_leads([LeadConvert(lead, opportunity_name="Example SA Pilot")])
    assert res.success
    contact = emulator.get(res.contact_id).fields
    assert (contact["LastName"], contact["Email"], contact["AccountId"]) == (
        "Chan",
        "leung@example.com",
        res.account_id,
    )
    assert emulator.get(res.account_id).fields["Name"] == "Example SA"
    opp = emulator.get(res.opportunity_id).fields
    assert opp["Name"] == "Example SA Pilot" and opp["StageName"] == "Prospecting"
    roles = list(emulator.records("OpportunityContactRole"))
    assert [(r.fields["ContactId"], r.fields["IsPrimary"]) for r in roles] == [
        (res.contact_id, True)
    ]
    converted = emulator.get(lead)
    assert converted.fields["IsConverted"] and converted.fields["Status"] == "Closed - Converted"
    assert converted.fields["ConvertedContactId"] == res.contact_id
    assert converted.fields["ConvertedDate"] == "2026-11-02"
    assert converted.system_modstamp == T0 + dt.timedelta(hours=1)
    assert converted.fields["LastModifiedDate"] == "2026-11-02T09:00:00.000+0000"
    assert emulator.get(member).fields["ContactId"] == res.contact_id
    assert emulator.get(member).fields["LeadId"] == lead  # the member keeps its LeadId
    assert emulator.get(task).fields["WhoId"] == res.contact_id
    assert code(emulator.update("Lead", [{"Id": lead, "Phone": "2"}])[0]) == (
        "CANNOT_UPDATE_CONVERTED_LEAD"
    )
    [twice] = emulator.convert_leads([LeadConvert(lead)])
    assert twice.errors[0].status_code == "CANNOT_UPDATE_CONVERTED_LEAD"
    other = one(emulator, "Lead", dict(LEAD, Email="x@x.example"))
    add = emulator.create("CampaignMember", [{"CampaignId": camp, "LeadId": lead}])[0]
    assert code(add) == "CANNOT_UPDATE_CONVERTED_LEAD"
    made = emulator.create("Task", [{"WhoId": lead, "Subject": "Call"}])[0]
    assert code(made) == "CANNOT_UPDATE_CONVERTED_LEAD" and made.errors[0].fields == ("WhoId",)
    [bad] = emulator.convert_leads([LeadConvert(other, converted_status="Working - Contacted")])
    assert bad.errors[0].status_code == "INVALID_STATUS"


def test_conversion_into_existing_records_fills_blanks_only(emulator: EmulatedCrm) -> None:
    acc = one(emulator, "Account", {"Name": "BigCorp", "Phone": "+1 000"})
    contact = one(emulator, "Contact", {"LastName": "Stone", "AccountId": acc, "Title": "CTO"})
    lead = one(
        emulator,
        "Lead",
        {
            "LastName": "Stone-Lead",
            "Company": "BigCorp Ltd",
            "Title": "CEO",
            "Phone": "+2 111",
            "Email": "bob@bigcorp.example",
        },
    )
    [res] = emulator.convert_leads(
        [LeadConvert(lead, account_id=acc, contact_id=contact, do_not_create_opportunity=True)]
    )
    assert res.success and res.opportunity_id is None
    c = emulator.get(contact).fields
    assert (c["LastName"], c["Title"], c["Email"], c["Phone"]) == (
        "Stone",
        "CTO",
        "bob@bigcorp.example",
        "+2 111",
    )
    assert emulator.get(acc).fields["Name"] == "BigCorp"
    stranger = one(emulator, "Contact", {"LastName": "Elsewhere"})
    lead2 = one(emulator, "Lead", dict(LEAD, Email="y@y.example"))
    [bad] = emulator.convert_leads([LeadConvert(lead2, account_id=acc, contact_id=stranger)])
    assert bad.errors[0].status_code == "INVALID_CROSS_REFERENCE_KEY"


def test_queue_owned_lead_needs_an_owner_to_convert(emulator: EmulatedCrm) -> None:
    queue = one(emulator, "Group", {"Name": "Inside Sales", "Type": "Queue"})
    lead = one(emulator, "Lead", {**LEAD, "OwnerId": queue})
    [res] = emulator.convert_leads([LeadConvert(lead)])
    assert res.errors[0].status_code == "REQUIRED_FIELD_MISSING"
    assert emulator.convert_leads([LeadConvert(lead, owner_id=emulator.admin_user_id)])[0].success


def test_api_usage_and_the_daily_limit(tmp_path: Path) -> None:
    with EmulatedCrm.open(tmp_path / "l.crm.db", org={"api_daily_limit": 3}) as crm:
        crm.set_clock(T0)
        for _ in range(3):
            crm.describe("Lead")
        assert crm.api_usage().used == 3
        with pytest.raises(CrmCallError) as e:
            crm.create("Lead", [LEAD])
        assert e.value.code == "REQUEST_LIMIT_EXCEEDED" and e.value.transient
        assert list(crm.records("Lead")) == []
        crm.set_clock(T0 + dt.timedelta(days=1))  # a new day
        assert crm.create("Lead", [LEAD])[0].success
        assert crm.api_usage().used == 1


def test_upsert_by_external_id(tmp_path: Path) -> None:
    org = {"custom_fields": {"Lead": {"Prospect_Id__c": {"type": "string", "external_id": True}}}}
    with EmulatedCrm.open(tmp_path / "u.crm.db", org=org) as crm:
        first = crm.upsert("Lead", "Prospect_Id__c", [{**LEAD, "Prospect_Id__c": "p-1"}])[0]
        assert first.success and first.created
        again = crm.upsert(
            "Lead", "Prospect_Id__c", [{**LEAD, "Prospect_Id__c": "p-1", "Phone": "1"}]
        )[0]
        assert again.success and not again.created and again.id == first.id
        assert len(list(crm.records("Lead"))) == 1
        with pytest.raises(CrmCallError):
            crm.upsert("Lead", "Email", [LEAD])


def test_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "r.crm.db"
    with EmulatedCrm.open(path) as crm:
        crm.set_clock(T0)
        lead = one(crm, "Lead", LEAD)
    with EmulatedCrm.open(path, create=False) as crm:
        assert crm.get(lead).fields["LastName"] == "Chan"
        assert crm.now() == T0
        assert one(crm, "Lead", dict(LEAD, Email="n@n.example")) != lead


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["create", "update", "delete", "undelete"]),
            st.integers(0, 7),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 4),
)
def test_cursor_paging_sees_every_change(tmp_path_factory, steps, page_size) -> None:
    """Changes read page by page between random writes: each seen, with its final state.

    Readers read up to just before the clock: a write can still come at the
    clock's own time (the port's contract).
    """
    with EmulatedCrm.open(tmp_path_factory.mktemp("p") / "p.crm.db") as crm:
        crm.set_clock(T0)
        ids: list[str] = []
        cursor, seen = None, {}
        minute = 0
        for op, pick, advance in steps:
            minute += advance  # writes often share a stamp
            crm.set_clock(T0 + dt.timedelta(minutes=minute))
            if op == "create" or not ids:
                ids.append(one(crm, "Lead", dict(LEAD, Email=f"p{len(ids)}@example.com")))
            elif op == "update":
                crm.update("Lead", [{"Id": ids[pick % len(ids)], "Phone": str(minute)}])
            elif op == "delete":
                crm.delete([ids[pick % len(ids)]])
            else:
                crm.undelete([ids[pick % len(ids)]])
            if pick % 3 == 0:  # read some of the way now and then
                until = crm.now() - dt.timedelta(milliseconds=1)
                page = crm.query_changed("Lead", cursor, until, ["Phone"], limit=page_size)
                seen.update({r.id: (r.fields["Phone"], r.is_deleted) for r in page.records})
                cursor = page.cursor
        crm.set_clock(T0 + dt.timedelta(days=1))  # the bin is not purged yet
        while True:
            until = crm.now() - dt.timedelta(milliseconds=1)
            page = crm.query_changed("Lead", cursor, until, ["Phone"], limit=page_size)
            seen.update({r.id: (r.fields["Phone"], r.is_deleted) for r in page.records})
            cursor = page.cursor
            if page.done:
                break
        final = {
            r.id: (r.fields.get("Phone"), r.is_deleted)
            for r in crm.records("Lead", include_deleted=True)
        }
        assert seen == final
