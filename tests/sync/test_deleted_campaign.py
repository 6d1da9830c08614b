"""A rule adds prospects to a CRM campaign that sales then delete in the CRM."""

from __future__ import annotations

import json
from pathlib import Path

from .org import Org
from .test_converted_between_read_and_write import MEMBER_RULES

T0 = "2026-11-02T09:00:00Z"


def test_a_membership_of_a_campaign_deleted_in_the_crm_is_expected_and_said_so(
    tmp_path: Path,
) -> None:
    # Campaign "C" is deleted in the CRM after a first member joined it. The plan of the
    # next membership said nothing; apply then refused it as `no CRM campaign named 'C'`,
    # though the sync file had read the campaign's deletion.
    org = Org(tmp_path, MEMBER_RULES)
    org.submit((T0, "ann@x.example", "F"), (T0, "ann@x.example", "G"))
    assert "members    1" in org.sync("run", "--until", T0).output
    changes = tmp_path / "delete.jsonl"
    changes.write_text(
        json.dumps({"at": "2026-11-02T09:05:00Z", "op": "delete", "id": "camp-c"}) + "\n",
        "utf-8",
    )
    org.ok("crm", "apply-changes", str(changes), "--store", str(org.store))
    org.submit(("2026-11-02T09:06:00Z", "bob@x.example", "F"))
    org.submit(("2026-11-02T09:06:00Z", "bob@x.example", "G"))
    said = "the CRM campaign 'C' was deleted in the CRM"
    text = org.sync("plan").output
    assert f"expected error INVALID_CROSS_REFERENCE_KEY on CampaignId: {said}" in text, text
    plan = json.loads(org.sync("plan", "--format", "json").output)
    assert plan["summary"]["expected_errors"] == 1, plan["summary"]
    out = org.sync("run", "--until", "2026-11-02T09:10:00Z").output
    assert "members    0" in out and "errors   1" in out, out
    (error,) = org.status()["error_queue"]  # type: ignore[misc]
    assert (error["prospect"], error["code"], error["message"]) == (
        "bob@x.example",
        "INVALID_CROSS_REFERENCE_KEY",
        said,
    )
