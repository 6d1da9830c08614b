"""The Pardot package's fields (`pi__Score__c`, `pi__Grade__c`) in the local CRM's org file."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from tests.sync.world import ORG, T0, World, ev


def _package_org() -> dict:
    """The test org with the Pardot package's score and grade fields on leads and contacts."""
    org = copy.deepcopy(ORG)
    for obj in ("Lead", "Contact"):
        org["custom_fields"][obj]["pi__Score__c"] = "double"
        org["custom_fields"][obj]["pi__Grade__c"] = "string"
    return org


def test_the_org_file_takes_the_pardot_packages_fields_and_the_sync_fills_the_score(
    tmp_path: Path,
) -> None:
    """docs/sync.md: the package's score and grade fields, when the org has them, get the
    score and the grade. The org file refused their namespaced names (`pi__`)."""
    w = World(tmp_path)
    w.seed({}, org=_package_org())
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


def _package_world(tmp_path: Path) -> World:
    """Ann's lead created with the package's fields: score 1, no grade."""
    w = World(tmp_path)
    w.seed({}, org=_package_org())
    w.run(ev(T0, "ann@x.com", asset="Quiet"), ev(T0, "ann@x.com", asset="Demo"))
    w.sync("run", "--until", T0)
    (lead,) = w.crm_rows("Lead")
    assert lead["pi__Score__c"] == 1 and lead["pi__Grade__c"] is None
    return w


def test_a_crm_edit_of_the_packages_score_is_written_over_at_the_next_cycle(
    tmp_path: Path,
) -> None:
    """docs/sync.md: the score is ours always: a CRM edit of it is written over at the next
    cycle, never taken, even when ours did not change."""
    w = _package_world(tmp_path)
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "update",
            "email": "ann@x.com",
            "fields": {"pi__Score__c": 99},
        },
        until="2026-11-02T09:05:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    (lead,) = w.crm_rows("Lead")
    assert lead["pi__Score__c"] == 1
    assert w.prospects()["ann@x.com"]["score"] == 1


def test_a_score_that_changes_after_the_link_is_written_to_the_package_field(
    tmp_path: Path,
) -> None:
    w = _package_world(tmp_path)
    w.run(ev("2026-11-02T09:30:00Z", "ann@x.com", asset="Quiet"))  # score 2 (no throttle)
    w.sync("run", "--until", "2026-11-02T09:40:00Z")
    (lead,) = w.crm_rows("Lead")
    assert lead["pi__Score__c"] == 2


def test_a_crm_grade_is_never_taken_nor_erased_while_ours_is_blank(tmp_path: Path) -> None:
    """Ours always, but a blank of ours is nothing to write: the CRM keeps its grade, and
    the prospect stays without one."""
    w = _package_world(tmp_path)
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "update",
            "email": "ann@x.com",
            "fields": {"pi__Grade__c": "A"},
        },
        until="2026-11-02T09:05:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    (lead,) = w.crm_rows("Lead")
    assert lead["pi__Grade__c"] == "A" and lead["pi__Score__c"] == 1
    assert w.prospects()["ann@x.com"].get("grade") is None
