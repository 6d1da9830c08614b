"""A membership the CRM has already is one of the campaign `sync apply` writes to, the first
created of that name (docs/sync.md, "Campaign membership and tasks"): a prospect linked to a
record sales made, a member of another campaign of that name, is not a member of that one,
and the plan writes the membership."""

from __future__ import annotations

from pathlib import Path

from tests.sync.world import T0, World, ev

RULES = """
user "alan@x.com"
crm campaign "C" statuses ["Sent", "Responded"]
form "G"
on submit of form "G" { add to crm campaign "C" status "Responded" }
sync salesforce {
  objects lead, contact, campaign
  every 10 minutes batch 800
}
"""


def _statuses(campaign: str) -> list[dict[str, object]]:
    return [
        {"CampaignId": campaign, "Label": "Sent", "HasResponded": False, "IsDefault": True},
        {"CampaignId": campaign, "Label": "Responded", "HasResponded": True, "IsDefault": False},
    ]


def test_a_member_of_the_second_campaign_of_a_name_joins_the_first(tmp_path: Path) -> None:
    # Two CRM campaigns named "C"; Bob's contact is a member of the newer one only. The
    # plan looked his membership up among every campaign of the name, called it there
    # already and wrote nothing, though apply writes to the first: Bob never joined it.
    w = World(tmp_path)
    w.rules.write_text(RULES, "utf-8")
    w.seed(
        {
            "Contact": [{"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com"}],
            "Campaign": [
                {"Id": "camp-old", "Name": "C", "CreatedDate": "2026-10-01T00:00:00Z"},
                {"Id": "camp-new", "Name": "C", "CreatedDate": "2026-10-02T00:00:00Z"},
            ],
            "CampaignMemberStatus": _statuses("camp-old") + _statuses("camp-new"),
            "CampaignMember": [
                {"Id": "m-new", "CampaignId": "camp-new", "ContactId": "c-bob", "Status": "Sent"}
            ],
        }
    )
    w.run(ev(T0, "bob@x.com", asset="G"))
    plan = w.sync("plan", code=2).output
    assert "already a member" not in plan, plan
    w.sync("run", "--until", T0)
    members = [m["CampaignId"] for m in w.crm_rows("CampaignMember")]
    both = [c["Id"] for c in w.crm_rows("Campaign")]  # the load gives them ids of its own
    assert sorted(members) == sorted(both), (members, both)
