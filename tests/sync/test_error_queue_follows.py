"""`mrules sync status` after the CRM moves or deletes a record, or a prospect stops
syncing (docs/sync.md#errors): its figures are what is really linked and held."""

from __future__ import annotations

from pathlib import Path

from tests.sync.world import BOB, T0, World, ev, held_world, stop


def _ann_held(w: World) -> None:
    """ann@x.com's company size goes to her new lead, which refuses it: held."""
    w.run(
        ev(T0, "ann@x.com", "prospect_update", fields={"company_size": "huge"}),
        ev(T0, "ann@x.com", asset="Demo"),
    )
    w.sync("apply")
    (err,) = w.status()["error_queue"]
    assert (err["object"], err["crm_id"][:3]) == ("lead", "00Q")


def test_a_write_refused_again_on_the_converted_contact_names_the_contact(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    _ann_held(w)
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "convert", "email": "ann@x.com", "opportunity": False},
        until="2026-11-02T09:06:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    # The link moved to the contact; the held value was tried there, and refused again.
    link = w.syncdb("SELECT object, crm_id FROM link WHERE prospect='ann@x.com'")
    assert link[0][0] == "contact"
    (err,) = w.status()["error_queue"]
    assert err["attempts"] == 2
    # Was: "lead" with the contact's id, and `sync status` said `ann@x.com lead ...`.
    assert (err["object"], err["crm_id"]) == link[0]
    text = w.ok("sync", "status", "--store", str(w.store)).output
    assert "ann@x.com contact Company_Size__c: INVALID_OR_NULL" in text


def test_a_prospect_marked_do_not_sync_takes_its_held_errors_out_of_the_queue(
    tmp_path: Path,
) -> None:
    # ann's value is refused on her lead (held); zed's create is refused whole (held).
    w = held_world(
        tmp_path, {"ann@x.com": {"company_size": "huge"}, "zed@x.com": {"first_name": "Z" * 50}}
    )
    held = {(e["prospect"], e["field"]) for e in w.status()["error_queue"]}
    assert held == {("ann@x.com", "Company_Size__c"), ("zed@x.com", "*record")}
    stop(w, "ann@x.com", "zed@x.com")
    plan = w.sync("plan", code=2).output
    assert "ann@x.com    (do not sync: its 1 held error leaves the queue)" in plan
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    # Was: both errors stayed, `sync status` counted them for good, and `sync retry`
    # said it would retry writes no cycle makes for a prospect that does not sync.
    status = w.status()
    assert (status["errors"], status["error_queue"], status["queue"]) == (0, [], 0)
    retry = w.ok("sync", "retry", "--store", str(w.store)).output
    assert retry.startswith("0 held errors")
    assert w.sync("plan").output.rstrip().endswith("nothing to do")


def test_status_does_not_count_a_record_deleted_in_the_crm_as_linked(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Demo"), ev(T0, "ann@x.com", asset="Demo"))
    w.sync("apply")
    assert w.status()["links"] == 2
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "bob@x.com"},
        until="2026-11-02T09:06:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    people = w.prospects()
    assert (people["bob@x.com"]["crm_status"], people["bob@x.com"]["crm_id"]) == ("deleted", None)
    # Was: 2, bob's link row (kept for its history) counted as a linked record.
    assert w.status()["links"] == 1
    text = w.ok("sync", "status", "--store", str(w.store)).output
    assert text.startswith("last cycle: 2026-11-02T09:10:00Z; 1 linked record;")
