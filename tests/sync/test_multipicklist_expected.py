"""A restricted multi-select picklist takes several of its values joined by `;`: the plan
must not predict a refusal of such a value (docs/sync.md#errors)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from .world import ORG, T0, World, ev


def test_several_values_of_a_restricted_multipicklist_are_no_expected_error(
    tmp_path: Path,
) -> None:
    org = copy.deepcopy(ORG)
    org["custom_fields"]["Lead"]["Company_Size__c"]["type"] = "multipicklist"
    w = World(tmp_path)
    w.seed({}, org)
    w.run(ev(T0, "ann@x.com", asset="Demo", fields={"company_size": "1-10;11-50"}))
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    assert plan["summary"]["expected_errors"] == 0, plan["ops"]
    w.run(ev(T0, "bob@x.com", asset="Demo", fields={"company_size": "1-10;huge"}))
    plan = json.loads(w.sync("plan", "--format", "json", code=2).output)
    (bad,) = [e for o in plan["ops"] for e in o.get("expected_errors", ())]
    assert bad["code"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    w.sync("apply")
    (ann,) = [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]
    assert ann["Company_Size__c"] == "1-10;11-50"
