"""The counts in `mrules sync plan`, `apply` and `status` agree with their number: `1
record to write`, `2 records to write` (they said `N record(s)` for every count)."""

from __future__ import annotations

from pathlib import Path

from tests.sync.world import BOB, T0, World, ev, held_world, stop


def test_plan_apply_and_status_say_one_and_two_in_words(tmp_path: Path) -> None:
    w = World(tmp_path, batch=1)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "ann@x.com", asset="Demo"), ev(T0, "cat@x.com", asset="Demo"))

    def status() -> list[str]:
        return w.ok("sync", "status", "--store", str(w.store)).output.splitlines()

    assert w.sync("plan", code=None).output.splitlines()[-1] == (
        "2 records to write: 1 this cycle, 1 waiting; 1 CRM fact for the engine;"
        " backlog clear after 2 cycles, at 2026-11-02T09:10:00Z"
    )
    assert w.sync("apply").output.splitlines()[-1] == (
        "sync at 2026-11-02T09:00:00Z: 1 created, 0 linked, 0 updated, 0 campaign members,"
        " 0 tasks, 1 CRM fact to the engine, 0 errors, 11 API calls, 1 waiting"
    )
    assert status()[:2] == [
        "last cycle: 2026-11-02T09:00:00Z; 1 linked record; 11 API calls used",
        "queue: 1 prospect waiting, oldest since 2026-11-02T09:00:00Z",
    ]
    assert w.sync("plan", code=None).output.splitlines()[-1] == (
        "1 record to write: 1 this cycle, 0 waiting; 1 CRM fact for the engine"
    )
    w.sync("apply")
    assert status()[:2] == [
        "last cycle: 2026-11-02T09:10:00Z; 2 linked records; 22 API calls used",
        "queue: 0 prospects waiting",
    ]


LONG = "+1 555 0101 extension 1234, ask for the IT desk"  # Phone takes 40 characters


def test_the_held_errors_a_skip_takes_out_of_the_queue_are_counted_in_words(
    tmp_path: Path,
) -> None:
    """`its 1 held error leaves the queue`, `its 2 held errors leave the queue` (it said
    `its held error(s) leave the queue` whatever their number)."""
    # ann's size is refused on her lead (one error held); cat's size and phone (two).
    refused = {"company_size": "huge"}
    w = held_world(tmp_path, {"ann@x.com": refused, "cat@x.com": {**refused, "phone": LONG}})
    held = sorted((e["prospect"], e["field"]) for e in w.status()["error_queue"])
    assert held == [
        ("ann@x.com", "Company_Size__c"),
        ("cat@x.com", "Company_Size__c"),
        ("cat@x.com", "Phone"),
    ]
    stop(w, "ann@x.com", "cat@x.com")
    plan = w.sync("plan", code=2).output
    assert "ann@x.com    (do not sync: its 1 held error leaves the queue)" in plan, plan
    assert "cat@x.com    (do not sync: its 2 held errors leave the queue)" in plan, plan
    assert "(s)" not in plan
