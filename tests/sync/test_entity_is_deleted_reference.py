"""ENTITY_IS_DELETED without fields: Salesforce gives it for an update whose record is in
the recycle bin and, alike, for one that refers to a deleted record (a lookup value). Only
the first is the linked record's deletion (docs/sync.md#inbound-what-comes-from-the-crm)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mrules.crm.emulator import EmulatedCrm
from mrules.crm.errors import CrmError
from mrules.crm.port import WriteResult

from .world import World, ev


def test_a_live_record_refused_as_entity_is_deleted_is_not_a_deletion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [{"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com"}]})
    w.run(ev("2026-11-02T09:00:00Z", "bob@x.com", asset="Demo"))
    w.sync("run", "--until", "2026-11-02T09:00:00Z")
    w.run(ev("2026-11-02T09:04:00Z", "bob@x.com", type_="prospect_update", fields={"title": "X"}))

    def update(self: EmulatedCrm, sobject: str, records: Any, **kw: Any) -> Any:
        # what a real org answers when a value of the update refers to a deleted record
        err = CrmError("ENTITY_IS_DELETED", "entity is deleted", ())
        return [WriteResult(None, False, (err,)) for _ in records]

    monkeypatch.setattr(EmulatedCrm, "update", update)
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    bob = w.prospects()["bob@x.com"]
    assert bob["crm_status"] == "contact" and bob["crm_id"], bob
    assert not bob.get("do_not_sync")
    assert w.syncdb("SELECT deleted FROM link WHERE prospect='bob@x.com'") == [(0,)]
    assert [e["code"] for e in w.status()["error_queue"]] == ["ENTITY_IS_DELETED"]
