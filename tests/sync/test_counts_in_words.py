"""The counts in `mrules sync plan`, `apply` and `status` agree with their number: `1
record to write`, `2 records to write` (they said `N record(s)` for every count)."""

from __future__ import annotations

from pathlib import Path

from tests.sync.world import BOB, T0, World, ev


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
