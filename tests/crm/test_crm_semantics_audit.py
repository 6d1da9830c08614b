"""The local CRM checked against Salesforce's data model (docs/crm.md)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mrules.cli import main


def test_a_multipicklist_custom_field_takes_its_values(tmp_path: Path) -> None:
    # A multipicklist declared in org.json had no length (only string and textarea
    # take one), so its length was 0: every value, "a;b" as much as "a", was refused
    # with STRING_TOO_LONG (max length=0). Salesforce's multipicklist holds 4,099
    # characters.
    seed = tmp_path / "seed"
    seed.mkdir()
    org = {
        "custom_fields": {
            "Contact": {"Interests__c": {"type": "multipicklist", "values": ["a", "b", "c"]}}
        }
    }
    (seed / "org.json").write_text(json.dumps(org), "utf-8")
    rows = [
        {"Id": "c-bob", "LastName": "Stone", "Interests__c": "a;b"},
        {"Id": "c-ivy", "LastName": "Moreau", "Interests__c": "a;z"},
    ]
    (seed / "Contact.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    store = str(tmp_path / "m.db")
    r = CliRunner().invoke(main, ["crm", "load", str(seed), "--store", store])
    # the bad value is refused for its value, not for its length
    assert r.exit_code == 3, r.output
    assert "Contact.jsonl:2: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in r.output, r.output
    assert "STRING_TOO_LONG" not in r.output, r.output
    r = CliRunner().invoke(main, ["crm", "export", "--store", store, "--object", "Contact"])
    (bob,) = [json.loads(line) for line in r.output.splitlines()]
    assert bob["Interests__c"] == "a;b"
    r = CliRunner().invoke(main, ["crm", "describe", "Contact", "--store", store])
    assert r.exit_code == 0, r.output
    (field,) = [f for f in json.loads(r.output)["fields"] if f["name"] == "Interests__c"]
    assert field["length"] == 4099, field
