"""`auto create prospects on` is not retroactive (docs/sync.md, Pardot §7.4): records that
were in the CRM before the connector's first cycle come to marketing once they change, or
are sent by hand; records created later come at once."""

from __future__ import annotations

from pathlib import Path

from tests.sync.world import T0, World, ev

OLD = {"Id": "l-old", "LastName": "Old", "Company": "Ex", "Email": "old@x.com"}
IDLE = {"Id": "l-idle", "LastName": "Idle", "Company": "Ex", "Email": "idle@x.com"}


def test_records_there_before_the_first_cycle_wait_for_a_change(tmp_path: Path) -> None:
    w = World(tmp_path, settings="auto create prospects on")
    w.seed({"Lead": [OLD, IDLE]})
    w.run(ev(T0, "ann@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    assert set(w.prospects()) == {"ann@x.com"}  # was: every lead of the CRM, at once
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "update",
            "email": "old@x.com",
            "fields": {"Title": "CTO"},
        },
        {
            "at": "2026-11-02T09:06:00Z",
            "op": "create",
            "object": "Lead",
            "fields": {"LastName": "New", "Company": "Ex", "Email": "new@x.com"},
        },
        until="2026-11-02T09:06:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    got = w.prospects()
    assert set(got) == {"ann@x.com", "old@x.com", "new@x.com"}
    assert got["old@x.com"]["crm_status"] == got["new@x.com"]["crm_status"] == "lead"
    # Sent by hand, an unchanged record comes too.
    w.sync("send", "idle@x.com")
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    assert "idle@x.com" in w.prospects()


def test_records_created_after_a_first_cycle_that_found_none_come_at_once(
    tmp_path: Path,
) -> None:
    """A new org: no lead at the first cycle. The first read of `Lead` found nothing, and
    the leads sales create after it are new to the connector: their prospects come at the
    next cycle, as a lead created after a first read that found some does."""
    w = World(tmp_path, settings="auto create prospects on")
    w.seed({})
    w.run(ev(T0, "ann@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    w.changes(
        {
            "at": "2026-11-02T09:06:00Z",
            "op": "create",
            "object": "Lead",
            "fields": {"LastName": "New", "Company": "Ex", "Email": "new@x.com"},
        },
        until="2026-11-02T09:06:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    got = w.prospects()
    # Was: only ann@x.com; the second cycle took itself for the first read of `Lead` and
    # treated new@x.com as a lead there before the connector (until it changed again).
    assert set(got) == {"ann@x.com", "new@x.com"}
    assert got["new@x.com"]["crm_status"] == "lead"
