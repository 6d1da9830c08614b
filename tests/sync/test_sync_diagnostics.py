"""A sync cycle that changes a prospect drops its diagnostics report when its rules now
settle (docs/outputs.md): the report is kept with the prospect's state, in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.sync.test_sync_cli import _world
from tests.sync.world import T0, ev

from mrules.api import open_store

# Two dynamic lists that chase each other while the prospect has no CRM record.
UNSETTLED_UNTIL_LINKED = """
dynamic list "A" {
  when all {
    not in list "B"
    crm status is none
  }
}
dynamic list "B" {
  when all {
    in list "A"
  }
}
"""


def test_a_sync_cycle_that_lets_the_rules_settle_drops_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mrules.cli.run_cmd.check", lambda program: [])  # past the lint
    w = _world(tmp_path)
    w.rules.write_text(w.rules.read_text() + UNSETTLED_UNTIL_LINKED)
    w.run(ev(T0, "bob@x.com", asset="Demo"))
    diagnostics = tmp_path / "w.diagnostics.jsonl"
    reported = [json.loads(x)["prospect"] for x in diagnostics.read_text().splitlines()]
    assert reported == ["bob@x.com"]
    w.sync("apply")  # one cycle: bob is linked to his contact, his rules settle
    assert w.prospects()["bob@x.com"]["crm_status"] == "contact"
    assert not diagnostics.exists()
    with open_store(str(w.store)) as st:
        assert st.diagnostics() == []
