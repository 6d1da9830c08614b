"""An update whose every field the CRM refuses holds each of them in the error queue
(docs/sync.md#errors: a CRM that names one field a call is answered field by field).
Before, only the field of the last call was kept: the others, set aside in the calls
before, were neither reported nor held, so every cycle wrote them again, refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrules.crm.errors import CrmError

from .org import Refusal
from .world import BOB, T0, World, ev

T1 = "2026-11-02T09:05:00Z"
LONG = "+1 555 0101 extension 1234, ask for the IT desk"  # Phone takes 40 characters


def test_both_refused_fields_of_an_update_are_held(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [dict(BOB)]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)  # linked to his contact
    # Two values the CRM refuses, and nothing else to write.
    w.run(
        ev(
            T1,
            "bob@x.com",
            "prospect_update",
            fields={"phone": LONG, "company_size": "7"},
        )
    )
    out = w.sync("apply").output
    assert "2 errors" in out, out
    assert "0 updated" in out, out  # was: 1, the contact sent again with no field but its Id
    held = {(e["field"], e["code"]) for e in w.status()["error_queue"]}
    assert held == {
        ("Phone", "STRING_TOO_LONG"),
        ("Company_Size__c", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    }, held
    # Held, both: the next cycle does not write them again.
    plan = w.sync("plan", "--at", "2026-11-02T09:20:00Z", "--format", "json", code=None).output
    assert '"op": "update"' not in plan, plan
    out = w.sync("run", "--until", "2026-11-02T09:20:00Z").output
    assert "idle" in out, out
    assert w.crm_rows("Contact")[0]["Phone"] == BOB["Phone"]


def _bob_updates(w: World, monkeypatch: pytest.MonkeyPatch, *errors: CrmError) -> Refusal:
    """Bob's contact linked, then his phone and title changed; every update of a contact
    from now on is refused with `errors`, record by record: the update calls are counted."""
    w.seed({"Contact": [dict(BOB)]})
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    w.run(ev(T1, "bob@x.com", "prospect_update", fields={"phone": "+1 555 0199", "title": "CTO"}))
    return Refusal(monkeypatch, "update", "Contact", errors)


VALIDATION = CrmError("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Industry is required for this change")


def test_a_refusal_naming_a_field_not_sent_is_held_after_one_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validation rule shown at a field the update did not send (Industry): there is no
    field to set aside, so the record is held as refused, after one call; sending it again
    as it was would be refused again, call after call."""
    w = World(tmp_path)
    at_industry = CrmError(VALIDATION.status_code, VALIDATION.message, ("Industry",))
    refusal = _bob_updates(w, monkeypatch, at_industry)
    out = w.sync("apply").output
    assert refusal.calls == [1], out
    assert "0 updated" in out and "1 error" in out, out
    held = [(e["field"], e["code"]) for e in w.status()["error_queue"]]
    assert held == [("Industry", "FIELD_CUSTOM_VALIDATION_EXCEPTION")], held


@pytest.mark.parametrize(
    "why",
    [VALIDATION, CrmError("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access")],
    ids=["no-field", "for-now"],
)
def test_a_record_refused_for_a_field_and_a_reason_of_its_own_is_sent_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: CrmError
) -> None:
    """A record refused for its phone and also for a reason no field carries (a validation
    rule on the record, or the record locked for now) is not sent again with its title
    only in the same cycle: that reason refuses it whole again (a record locked waits for
    a later cycle)."""
    w = World(tmp_path)
    too_long = CrmError("STRING_TOO_LONG", "Phone: data value too large", ("Phone",))
    refusal = _bob_updates(w, monkeypatch, too_long, why)
    out = w.sync("apply").output
    assert refusal.calls == [1], out  # was: [1, 1], sent again without the phone
    assert "0 updated" in out, out


def test_an_update_refused_without_a_reason_is_held_and_written_after_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CRM answers Bob's update as not written, with no error at all: it was dropped,
    no error held and no cycle trying it again, his new phone never written. Each field is
    held, refused without a reason; once the CRM is fixed, `sync retry` writes them."""
    w = World(tmp_path)
    refusal = _bob_updates(w, monkeypatch)
    out = w.sync("apply").output
    assert refusal.calls == [1], out
    assert "0 updated" in out and "2 errors" in out, out
    held = sorted((e["field"], e["code"], e["message"]) for e in w.status()["error_queue"])
    assert held == [
        (f, "UNKNOWN_EXCEPTION", "refused by the CRM without a reason") for f in ("Phone", "Title")
    ], held
    refusal.lift()
    w.ok("sync", "retry", "--store", str(w.store))
    w.sync("run", "--until", "2026-11-02T09:20:00Z")
    (bob,) = w.crm_rows("Contact")
    assert (bob["Phone"], bob["Title"]) == ("+1 555 0199", "CTO")
    assert w.status()["errors"] == 0


def test_the_same_refusal_of_two_fields_and_of_two_prospects_is_held_for_each(
    tmp_path: Path,
) -> None:
    """Ann's and Zed's new leads, each with a phone and a title too long: four refusals of
    one code, on two fields of two prospects, in one cycle. Each is a row of the error
    queue, the leads created without them."""
    w = World(tmp_path)
    w.seed({"Contact": [dict(BOB)]})
    fields = {"phone": LONG, "title": "Head of " + "Information Technology " * 10}
    w.run(
        *(
            e
            for who in ("ann@x.com", "zed@x.com")
            for e in (ev(T0, who, "prospect_update", fields=fields), ev(T0, who, asset="Demo"))
        )
    )
    out = w.sync("apply").output
    assert "2 created" in out and "4 errors" in out, out
    held = sorted((e["prospect"], e["field"], e["code"]) for e in w.status()["error_queue"])
    assert held == [
        (who, field, "STRING_TOO_LONG")
        for who in ("ann@x.com", "zed@x.com")
        for field in ("Phone", "Title")
    ], held
