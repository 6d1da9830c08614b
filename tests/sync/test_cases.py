"""Data-file cases: CRM seed + events + CRM changes + clock -> CRM, prospects, errors, plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.sync.world import World

CASES = [
    c
    for c in yaml.safe_load_all(
        (Path(__file__).parent / "cases" / "behaviours.yaml").read_text("utf-8")
    )
    if c
]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(tmp_path: Path, case: dict[str, Any]) -> None:
    w = World(tmp_path, settings=case.get("settings", ""))
    w.seed({k: [dict(r) for r in v] for k, v in (case.get("crm") or {}).items()})
    w.run(*case.get("events", ()))
    w.sync("run", "--until", case["events"][0]["ts"])
    if case.get("changes"):
        w.changes(*case["changes"], until=case["until"])
    w.sync("run", "--until", case["until"])
    want = case["want"]
    for sobject, people in (want.get("crm") or {}).items():
        rows = {r["Email"]: r for r in w.crm_rows(sobject) if r.get("Email")}
        if not people:
            assert not rows, rows  # none created
        for email, fields in people.items():
            assert email in rows, (sobject, email, list(rows))
            for k, v in fields.items():
                assert rows[email].get(k) == v, (sobject, email, k, rows[email].get(k))
    got = w.prospects()
    for email, fields in (want.get("prospects") or {}).items():
        p = got[email]
        for k, v in fields.items():
            have = (
                (p["assigned"] or {}).get("name")
                if k == "assigned"
                else p[k]
                if k in p
                else p["fields"].get(k)
            )
            assert have == v, (email, k, have)
    if "errors" in want:
        st = w.status()
        assert [[e["prospect"], e["field"], e["code"]] for e in st["error_queue"]] == want["errors"]
    if "plan" in want:
        plan = json.loads(w.sync("plan", "--format", "json", code=None).output)
        assert [[o["op"], o["prospect"]] for o in plan["ops"]] == want["plan"]
    if "opportunities" in want:
        rows = w.syncdb("SELECT name, stage, amount, is_won FROM opportunity")
        assert [list(r) for r in rows] == want["opportunities"]
