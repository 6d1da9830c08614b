"""The Pardot package's fields (`pi__Score__c`, `pi__Grade__c`) in the local CRM's org file."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from tests.sync.world import ORG, T0, World, ev


def test_the_org_file_takes_the_pardot_packages_fields_and_the_sync_fills_the_score(
    tmp_path: Path,
) -> None:
    """docs/sync.md: the package's score and grade fields, when the org has them, get the
    score and the grade. The org file refused their namespaced names (`pi__`)."""
    org = copy.deepcopy(ORG)
    for obj in ("Lead", "Contact"):
        org["custom_fields"][obj]["pi__Score__c"] = "double"
        org["custom_fields"][obj]["pi__Grade__c"] = "string"
    w = World(tmp_path)
    w.seed({}, org=org)
    w.run(ev(T0, "ann@x.com", asset="Quiet"), ev(T0, "ann@x.com", asset="Demo"))  # score 1
    w.sync("apply")
    (lead,) = w.crm_rows("Lead")
    assert lead["Email"] == "ann@x.com" and lead["pi__Score__c"] == 1


def test_a_namespace_prefix_is_letters_and_digits_before_the_name(tmp_path: Path) -> None:
    w = World(tmp_path)
    for bad in ("pi___Score__c", "__Score__c", "p-i__Score__c", "abcdefghijklmnop__Score__c"):
        folder = tmp_path / bad
        folder.mkdir()
        org = {"custom_fields": {"Lead": {bad: "double"}}}
        (folder / "org.json").write_text(json.dumps(org), "utf-8")
        r = w.cli("crm", "load", str(folder), "--store", str(tmp_path / f"{bad}.db"))
        assert r.exit_code == 2, (bad, r.output)
        assert "namespace prefix" in r.output
