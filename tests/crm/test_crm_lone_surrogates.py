"""A JSON string escape that is half a character (`"\\ud800"`, a lone surrogate) in a CRM
export row or a timed change: that line is refused, with its number, and the others are
done. A loaded row was stored and every later read of the CRM file called it damaged
(exit 4); a change was an internal error (exit 70) that applied none of the file."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import mrules

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"

HALF = "not text: \\ud800 is half a character (a lone surrogate)"


def test_a_row_holding_a_lone_surrogate_is_refused_and_the_crm_stays_readable(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Lead.jsonl").write_text(
        '{"LastName": "Blanc", "Company": "X", "Email": "a@x.example"}\n'
        '{"LastName": "\\ud800", "Company": "Y", "Email": "b@x.example"}\n'
        '{"LastName": "Noir", "Company": "Z", "Email": "c@x.example", "\\udfff": "v"}\n',
        "utf-8",
    )
    crm = tmp_path / "c.crm.db"
    r = mrules("crm", "load", folder, "--crm", crm)
    assert r.exit_code == 3, r.output
    assert f"Lead.jsonl:2: {HALF}: the row is refused" in r.stderr
    assert "Lead.jsonl:3: not text: \\udfff is half a character" in r.stderr
    assert "loaded 1 Lead" in r.stdout
    r = mrules("crm", "export", "--crm", crm, "--object", "Lead")
    assert r.exit_code == 0, r.output  # was: exit 4, "the CRM file is damaged"
    assert [json.loads(line)["LastName"] for line in r.stdout.splitlines()] == ["Blanc"]


def test_a_change_holding_a_lone_surrogate_is_refused_and_the_others_apply(
    tmp_path: Path,
) -> None:
    store = tmp_path / "g.db"
    assert mrules("crm", "load", SEED, "--store", store).exit_code == 0
    changes = tmp_path / "ch.jsonl"
    changes.write_text(
        '{"at": "2026-11-04T11:00:00Z", "op": "update", "email": "bob@bigcorp.example",'
        ' "fields": {"Phone": "\\ud800"}}\n'
        '{"at": "2026-11-04T12:00:00Z", "op": "update", "email": "bob@bigcorp.example",'
        ' "fields": {"Title": "CIO"}}\n',
        "utf-8",
    )
    r = mrules("crm", "apply-changes", changes, "--store", store)
    assert r.exit_code == 3, r.output  # was: an internal error, nothing applied
    assert f"ch.jsonl:1: {HALF}" in r.stderr
    assert "1 applied" in r.stderr and "updated Contact" in r.stdout
    r = mrules("crm", "export", "--store", store, "--object", "Contact")
    assert r.exit_code == 0, r.output
    bob = next(c for c in map(json.loads, r.stdout.splitlines()) if c["Email"].startswith("bob"))
    assert bob["Title"] == "CIO" and bob["Phone"] == "+33 1 40 00 00 01"
