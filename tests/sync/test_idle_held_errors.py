"""A held error is due only when its prospect or its record changes, or after `sync
retry`: a cycle in which nothing changed reads none of the prospects in error (an idle
cycle read every one of them from the store, 0.45 s a cycle with 6,188 held errors),
and still lists their errors, kept, as held."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from tests.sync.world import BOB, T0, World, ev

from mrules.store import Store

HELD = [f"p{i:02d}@x.com" for i in range(12)]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The store's reads of one prospect, by email, during the test."""
    seen: Counter[str] = Counter()
    real = Store.prospect

    def prospect(self: Store, email: str) -> bytes | None:
        seen[email] += 1
        return real(self, email)

    monkeypatch.setattr(Store, "prospect", prospect)
    return seen


def held_world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(
        *[ev(T0, e, "prospect_update", fields={"company_size": "huge"}) for e in HELD],
        *[ev(T0, e, asset="Demo") for e in HELD],
    )
    w.sync("apply")  # the leads are created; each one's Company_Size__c is refused
    assert sorted(e["prospect"] for e in w.status()["error_queue"]) == HELD
    # The cycle after: the engine took in the creations (the ledger moved), so it looks
    # at each prospect once more; the errors stay held.
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    return w


def test_an_idle_cycle_reads_no_prospect_in_error(tmp_path: Path, reads: Counter[str]) -> None:
    w = held_world(tmp_path)
    reads.clear()
    w.sync("run", "--until", "2026-11-02T09:30:00Z")  # two idle cycles
    plan = json.loads(
        w.sync("plan", "--format", "json", "--at", "2026-11-02T09:40:00Z", code=None).output
    )
    assert not set(reads) & set(HELD), reads
    # Kept and listed: the plan shows each as held, `sync status` lists every error.
    assert [(o["op"], o["prospect"]) for o in plan["ops"]] == [("hold", e) for e in HELD]
    assert plan["summary"]["held_errors"] == len(HELD)
    assert [h["code"] for h in plan["ops"][0]["held"]] == [
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    ]
    assert sorted(e["prospect"] for e in w.status()["error_queue"]) == HELD


def test_a_changed_prospect_is_retried_at_once(tmp_path: Path, reads: Counter[str]) -> None:
    w = held_world(tmp_path)
    w.sync("run", "--until", "2026-11-02T09:20:00Z")  # idle
    reads.clear()
    w.run(ev("2026-11-02T09:25:00Z", HELD[3], "prospect_update", fields={"company_size": "200+"}))
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert set(reads) & set(HELD) == {HELD[3]}
    (lead,) = [r for r in w.crm_rows("Lead") if r["Email"] == HELD[3]]
    assert lead["Company_Size__c"] == "200+"
    left = sorted(e["prospect"] for e in w.status()["error_queue"])
    assert left == [e for e in HELD if e != HELD[3]]


def test_sync_retry_makes_the_held_errors_due(tmp_path: Path, reads: Counter[str]) -> None:
    w = held_world(tmp_path)
    w.ok("sync", "retry", "--prospect", HELD[5], "--store", str(w.store))
    reads.clear()
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert set(reads) & set(HELD) == {HELD[5]}  # tried again (refused again: still held)
    assert sorted(e["prospect"] for e in w.status()["error_queue"]) == HELD
