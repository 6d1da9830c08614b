"""A lead converted between the cycle's read and its write (a real org's race: the plan
reads up to two minutes ago, a sales rep converts the lead while the cycle runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.port import LeadConvert

from .world import T0, World, ev


def test_an_update_refused_as_converted_lead_goes_to_the_contact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    w.seed({})
    w.run(ev(T0, "henry@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    p = w.prospects()["henry@x.com"]
    assert p["crm_status"] == "lead"
    lead_id = p["crm_id"]
    w.run(
        ev(
            "2026-11-02T09:04:00Z",
            "henry@x.com",
            "prospect_update",
            fields={"phone": "+1 555 0777"},
        )
    )
    original = EmulatedCrm.update
    raced: list[str] = []

    def update(self: EmulatedCrm, sobject: str, records: Any, **kw: Any) -> Any:
        if sobject == "Lead" and not raced:
            raced.append(sobject)  # sales convert the lead as the write is sent
            [res] = self.convert_leads([LeadConvert(lead_id, do_not_create_opportunity=True)])
            assert res.success, res.errors
        return original(self, sobject, records, **kw)

    monkeypatch.setattr(EmulatedCrm, "update", update)
    first = w.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert raced
    monkeypatch.setattr(EmulatedCrm, "update", original)
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    p = w.prospects()["henry@x.com"]
    assert p["crm_status"] == "contact", first.output
    (contact,) = [r for r in w.crm_rows("Contact") if r["Email"] == "henry@x.com"]
    assert contact["Phone"] == "+1 555 0777", first.output
    status = w.status()
    assert status["errors"] == 0, json.dumps(status)
