"""`mrules explain` after CRM syncs: each statement checked against `state export`,
`sync status` and the CRM itself, on a small history whose truth is known."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.sync.world import BOB, T0, World, ev


def explain(w: World, email: str) -> tuple[list[str], dict[str, Any]]:
    text = w.ok("explain", email, "--store", str(w.store)).output.splitlines()
    data = json.loads(w.ok("explain", email, "--store", str(w.store), "--format", "json").output)
    return text, data


def test_a_value_the_crm_gave_is_explained_as_the_sync_s_not_an_events_line(
    tmp_path: Path,
) -> None:
    """A field the CRM's value won, and the owner the CRM gave, were explained as coming
    from "event line 5" and "event line 1": lines of the sync cycle's own stream of facts,
    which a user reads as lines of their events file (there, line 1 is Bob's form)."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("apply")
    exported = w.prospects()["bob@x.com"]
    # The CRM's contact gave the phone and lead source (we had none) and the owner (sam).
    assert exported["fields"] == {"phone": "+1 555 0101", "lead_source": "Web"}
    assert exported["assigned"]["name"] == "sam@x.com"
    contact = w.crm_rows("Contact")[0]["Id"]
    assert (exported["crm_status"], exported["crm_id"]) == ("contact", contact)
    text, data = explain(w, "bob@x.com")
    fields = {f["args"]["field"]: f for f in data["fields"]}
    assert {k: f["after"] for k, f in fields.items()} == exported["fields"]
    field = fields["lead_source"]
    fact = field["event"]["id"]
    assert fact.startswith("crm-sync:") and field["event"]["source"] == fact.rsplit(":", 1)[0]
    owner = data["assignment"]["event"]["id"]
    assert owner.startswith(field["event"]["source"] + ":")
    at = w.status()["last_cycle"]
    sync = f"by the CRM sync (fact {fact}), {at}"
    assert f'  lead_source = "Web": event prospect_update, {sync}' in text
    assert f"  user sam@x.com: event crm_update, by the CRM sync (fact {owner}), {at}" in text
    # Bob's own event is still explained by its line.
    assert any(line.endswith(f"event line 1, {T0}") for line in text if "Quiet" in line)
    assert not any("event line" in line for line in text if "crm-sync:" in line)
