"""`NaN`, `Infinity` and `-Infinity` in a CRM export row or a timed change: Python's `json`
reads them, JSON has no such value. A loaded row stored `NaN` as the text "nan" in the
field (`AnnualRevenue` "nan"); a change wrote it. Now the line is refused, with its number,
and the others are done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import mrules

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_row_holding_no_json_value_is_refused(tmp_path: Path, constant: str) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "Lead.jsonl").write_text(
        '{"LastName": "Blanc", "Company": "X", "Email": "a@x.example"}\n'
        '{"LastName": "Gris", "Company": "Y", "Email": "b@x.example",'
        f' "AnnualRevenue": {constant}}}\n',
        "utf-8",
    )
    crm = tmp_path / "c.crm.db"
    r = mrules("crm", "load", folder, "--crm", crm)
    assert r.exit_code == 3, r.output
    assert (
        f"Lead.jsonl:2: not JSON: {constant} is no JSON value (write a number, or null for"
        " none): the row is refused"
    ) in r.stderr
    assert "loaded 1 Lead" in r.stdout
    r = mrules("crm", "export", "--crm", crm, "--object", "Lead")
    assert [json.loads(line)["LastName"] for line in r.stdout.splitlines()] == ["Blanc"]


def test_a_change_holding_no_json_value_is_refused_and_the_others_apply(tmp_path: Path) -> None:
    store = tmp_path / "g.db"
    assert mrules("crm", "load", SEED, "--store", store).exit_code == 0
    changes = tmp_path / "ch.jsonl"
    changes.write_text(
        '{"at": "2026-11-04T11:00:00Z", "op": "update", "email": "bob@bigcorp.example",'
        ' "fields": {"AnnualRevenue": NaN}}\n'
        '{"at": "2026-11-04T12:00:00Z", "op": "update", "email": "bob@bigcorp.example",'
        ' "fields": {"Title": "CIO"}}\n',
        "utf-8",
    )
    r = mrules("crm", "apply-changes", changes, "--store", store)
    assert r.exit_code == 3, r.output
    assert "ch.jsonl:1: not JSON: NaN is no JSON value" in r.stderr
    assert "1 applied" in r.stderr and "updated Contact" in r.stdout
