"""A call the CRM refuses for good in the middle of an apply (an `INVALID_FIELD` on the
contacts' update after the leads were created): the command stops with exit 4 and
nothing of the cycle is in the sync file; the next run finds what was written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrules.crm.errors import CrmCallError

from .org import Refusal
from .world import BOB, T0, World, ev


def test_a_permanent_failure_after_the_creates_is_said_and_the_next_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [dict(BOB)]})
    w.run(
        ev(T0, "ann@x.com", asset="Demo"),
        ev(T0, "bob@x.com", asset="Demo"),
        ev(T0, "bob@x.com", "prospect_update", fields={"title": "CTO"}),
    )
    no_title = CrmCallError(
        "INVALID_FIELD",
        "No such column 'Title' on sobject of type Contact",
        transient=False,
        http_status=400,
    )
    refusal = Refusal(monkeypatch, "update", "Contact", no_title)
    failed = w.sync("run", "--until", T0, code=4).output
    assert refusal.calls
    assert "INVALID_FIELD" in failed
    # What was written before the failure, and what to do, are said.
    assert "1 record created" in failed, failed
    assert "the next cycle finds them" in failed, failed
    leads = [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]
    assert len(leads) == 1
    assert "run the command again" in failed, failed

    refusal.lift()  # the field fixed
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    leads = [r for r in w.crm_rows("Lead") if r["Email"] == "ann@x.com"]
    assert len(leads) == 1  # found again, not created twice
    people = w.prospects()
    assert (people["ann@x.com"]["crm_status"], people["ann@x.com"]["crm_id"]) == (
        "lead",
        leads[0]["Id"],
    )
    (bob,) = w.crm_rows("Contact")
    assert bob["Title"] == "CTO"
    assert people["bob@x.com"]["crm_id"] == bob["Id"]
    status = w.status()
    assert status["errors"] == 0 and status["queue"] == 0 and status["links"] == 2, status


def test_a_permanent_failure_on_the_first_write_says_nothing_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first write of the cycle (Ann's lead) refused for good: exit 4, one line saying
    nothing of the cycle was written and what to do, and the sync file records the
    failure; the cause fixed, the next run writes the lead."""
    w = World(tmp_path)
    w.seed({})
    w.run(ev(T0, "ann@x.com", asset="Demo"))
    no_company = CrmCallError(
        "INVALID_FIELD",
        "No such column 'Company' on sobject of type Lead",
        transient=False,
        http_status=400,
    )
    refusal = Refusal(monkeypatch, "create", "Lead", no_company)
    failed = w.sync("apply", code=4).output
    assert refusal.calls == [1]
    assert failed.startswith("mrules: error: the CRM refused the call: INVALID_FIELD"), failed
    assert failed.endswith(
        "; nothing of this cycle was written to the CRM. Fix the cause, then run the command"
        " again\n"
    ), failed
    assert w.crm_rows("Lead") == []
    failure = w.status()["failed_cycle"]
    assert (failure["created"], failure["error"]) == (0, f"INVALID_FIELD: {no_company.message}")
    refusal.lift()
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert [r["Email"] for r in w.crm_rows("Lead")] == ["ann@x.com"]
    assert w.status()["failed_cycle"] is None
