"""CRM merges (Salesforce's merge of leads or contacts): the emulator and the sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.sync.world import T0, World, ev

from mrules.crm.errors import CrmError

BOB = {"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com", "Phone": "+1 555 0101"}
ROB = {"Id": "c-rob", "LastName": "Stone", "Email": "robert.stone@x.com", "Phone": "+1 555 0202"}
CAMPAIGN = {"Id": "cmp-1", "Name": "Webinar", "IsActive": True}


def test_the_emulator_merges_like_salesforce(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed(
        {
            "Contact": [BOB, ROB],
            "Campaign": [CAMPAIGN],
            "CampaignMember": [
                {"Id": "m-bob", "CampaignId": "cmp-1", "ContactId": "c-bob"},
                {"Id": "m-rob", "CampaignId": "cmp-1", "ContactId": "c-rob"},
            ],
        }
    )
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "merge", "master": "c-rob", "losers": ["c-bob"]},
        until="2026-11-02T09:05:00Z",
    )
    crm = w.crm()
    try:
        bob, rob = crm.label_id("c-bob"), crm.label_id("c-rob")
        assert bob and rob
        gone = crm.get(bob)
        assert gone is not None and gone.is_deleted and gone.fields["MasterRecordId"] == rob
        kept = crm.get(rob)
        assert kept is not None and not kept.is_deleted
        assert kept.fields["Phone"] == "+1 555 0202"  # the master keeps its values
        assert kept.system_modstamp.isoformat().startswith("2026-11-02T09:05")
        # Bob's membership of a campaign Rob is in already: deleted, not doubled.
        members = [m for m in crm.records("CampaignMember")]
        assert [m.fields["ContactId"] for m in members] == [rob]
        with pytest.raises(CrmError, match="merged into itself"):
            crm.merge(rob, [rob], crm.admin_user_id)
        with pytest.raises(CrmError, match=r"entity is deleted"):
            crm.merge(rob, [bob], crm.admin_user_id)
    finally:
        crm.close()


def test_a_merge_moves_the_link_and_keeps_its_history(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [BOB, ROB]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    crm = w.crm()
    bob, rob = crm.label_id("c-bob"), crm.label_id("c-rob")
    crm.close()
    assert w.prospects()["bob@x.com"]["crm_id"] == bob
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "merge", "master": "c-rob", "losers": ["c-bob"]},
        until="2026-11-02T09:05:00Z",
    )
    text = w.sync("plan", "--at", "2026-11-02T09:10:00Z", code=2).output
    assert f"< merge         bob@x.com  contact {rob}" in text
    assert f"merged in the CRM into {rob}: the link moves to it" in text
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    p = w.prospects()["bob@x.com"]
    assert (p["crm_status"], p["crm_id"], p["fields"]["phone"]) == ("contact", rob, "+1 555 0202")
    ((history,),) = w.syncdb("SELECT history FROM link WHERE prospect='bob@x.com'")
    assert history == f'["contact:{bob}"]'
    assert [r["Email"] for r in w.crm_rows("Contact")] == ["robert.stone@x.com"]  # none created
    assert "nothing to do" in w.sync("plan", "--at", "2026-11-02T09:20:00Z").output
