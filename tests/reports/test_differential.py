"""The reports' fast reads against the store's plain, typed reads, on the benchmark's rules.

The rules report walks packed history rows itself, and the scores report
reads them newest first; both must agree with what `Store.ledger()` (the
typed records `mrules explain` uses) and `mrules.rulestats` say, on a
generated run with 200 page actions, 100 assets and 20 automation rules.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import mrules
from mrules.reports import rules_report, scores
from mrules.rulestats import rule_counts
from mrules.store import Store

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"automation rule": "automation", "page action": "page_action",
         "completion action": "completion_action"}  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("gen")
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    assert generate.main([str(work), "--prospects", "1500", "--events", "15000"]) == 0
    store = work / "gen.db"
    mrules.run(work / "rules", work / "events.jsonl", store=str(store))
    return store


def test_rule_hits_match_rulestats(generated: Path) -> None:
    report = rules_report(generated)
    with Store.open(generated, readonly=True) as store:
        counts, _where = rule_counts(store, fast=False)
        ledger = list(store.ledger())
    expected = {(KINDS[kind], name): n for (kind, name), n in counts.items() if kind in KINDS}
    got = {(r["kind"], r["name"]): r["matches"] for r in report["rules"]}
    assert got == expected
    assert len(got) > 50  # the run exercised many rules
    # prospects touched, from the typed ledger
    touched: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in ledger:
        kind, name, action = e[3], e[4], e[9]
        if kind in KINDS and (kind != "automation rule" or action == "rule matched"):
            touched[(KINDS[kind], name)].add(e[2])
    assert {(r["kind"], r["name"]): r["prospects"] for r in report["rules"]} == {
        k: len(v) for k, v in touched.items()
    }


def test_score_at_mql_matches_the_ledger(generated: Path) -> None:
    with Store.open(generated, readonly=True) as store:
        assert store._conn is not None
        mql = {
            email: json.loads(state).get("aa")
            for email, state in store._conn.execute("SELECT email, state FROM prospects")
        }
        ledger = list(store.ledger())
    at_mql: dict[str, int] = {e: 0 for e, t in mql.items() if t is not None}
    # In seq order: the running score, frozen after the last step of the event that first
    # assigned the prospect (its steps are the prospect's consecutive entries of that event).
    assigned_by: dict[str, tuple[object, ...]] = {}
    frozen: set[str] = set()
    for e in ledger:
        prospect, action, event = e.prospect, e.action, (e.ts, e.source, e.line)
        if prospect not in at_mql or prospect in frozen:
            continue
        if prospect in assigned_by and assigned_by[prospect] != event:
            frozen.add(prospect)
            continue
        if action == "assign":
            assigned_by.setdefault(prospect, event)
        elif action == "score" or action == "set score":
            at_mql[prospect] = json.loads(e.after or "0")
    assert set(assigned_by) == set(at_mql)  # every MQL was assigned by a ledger step
    expected = sorted(at_mql.values())
    r = scores(generated)
    assert r["score_at_mql"]["n"] == len(expected) > 100
    hist = {b["low"]: b["count"] for b in r["score_at_mql"]["histogram"]}
    width = r["score_at_mql"]["histogram"][0]["high"] - r["score_at_mql"]["histogram"][0]["low"]
    want: dict[int, int] = defaultdict(int)
    for s in expected:
        want[(s // width) * width] += 1
    assert {k: v for k, v in hist.items() if v} == dict(want)
    import statistics

    assert r["score_at_mql"]["median"] == float(statistics.median(expected))
