"""A mapped field the CRM will not let the sync write (a system or formula field, or one the
integration user may not edit: its describe says `updateable` or `createable` false)."""

from __future__ import annotations

import json
from pathlib import Path

from .world import World, ev

T0 = "2026-11-02T09:00:00Z"


def test_the_plan_expects_the_refusal_of_a_read_only_field_as_apply_meets_it(
    tmp_path: Path,
) -> None:
    # `title` mapped to the lead's ConvertedDate, which only a conversion sets. The plan
    # said "ours wins" and nothing more; apply then had the create and the update
    # refused for it (INVALID_FIELD_FOR_INSERT_UPDATE, each written again without it):
    # 2 errors where the plan expected none.
    w = World(tmp_path)
    w.rules.write_text(
        w.rules.read_text("utf-8").replace('"Title" prefer ours', '"ConvertedDate" prefer ours'),
        "utf-8",
    )
    w.seed({"Lead": [{"Id": "l-dee", "LastName": "Dee", "Company": "D", "Email": "dee@x.com"}]})
    w.run(ev(T0, "dee@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    title = {"title": "2026-01-01", "phone": "+1 555 0100"}
    w.run(
        ev("2026-11-02T09:05:00Z", "ann@x.com", asset="Demo"),
        ev("2026-11-02T09:05:00Z", "ann@x.com", "prospect_update", fields=title),
        ev("2026-11-02T09:05:00Z", "dee@x.com", "prospect_update", fields=title),
    )
    text = w.sync("plan", code=2).output
    assert text.count("expected error INVALID_FIELD_FOR_INSERT_UPDATE on ConvertedDate") == 2
    assert "Unable to create fields: ConvertedDate." in text, text
    assert "Unable to update fields: ConvertedDate." in text, text
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    assert plan["summary"]["expected_errors"] == 2, plan["summary"]
    expected = sorted(
        (o["prospect"], e["field"], e["code"], e["message"])
        for o in plan["ops"]
        for e in o.get("expected_errors", ())
    )
    report = json.loads(w.sync("apply", "--format", "json").output)
    got = sorted((e["prospect"], e["field"], e["code"], e["message"]) for e in report["errors"])
    assert got == expected, (got, expected)
    # the other fields went through
    assert sorted(str(r["Phone"]) for r in w.crm_rows("Lead")) == ["+1 555 0100"] * 2
