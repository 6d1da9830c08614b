"""`mrules report rules` when a name the store keeps looks like the start of a rule's
reference (`["...`) but is no JSON: an asset named so is passed over, and the rules
after it are read (found by mutation testing of reports/_history.py: stopping the
reading of names there reported every rule as never matched, and passed)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import mrules


def test_an_asset_named_like_a_reference_hides_no_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules.mr"
    rules.write_text(
        'queue "Sales"\nform "[\\"Spring"\n'
        'on submit of form "[\\"Spring" { assign to queue "Sales" }\n',
        "utf-8",
    )
    events = tmp_path / "events.jsonl"
    event = {"id": "e1", "ts": "2026-10-01T10:00:00Z", "type": "form_submit",
             "prospect": "p1@x.example", "asset": '["Spring'}  # fmt: skip
    events.write_text(json.dumps(event) + "\n", "utf-8")
    store = tmp_path / "s.db"
    r = mrules("run", rules, events, "--store", store)
    assert r.exit_code == 0, r.output
    r = mrules("report", "rules", "--store", store, "--format", "json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert [(x["name"], x["matches"], x["went_mql"]) for x in body["rules"]] == [
        ('submit of form ["Spring', 1, 1)
    ]
    assert body["never_matched"] == []
