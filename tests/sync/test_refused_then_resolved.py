"""A write the CRM refused, then the two sides moved on (docs/sync.md#errors): the value
the CRM holds is not forgotten, and an error whose write is no longer wanted goes.

Both were wrong: the base snapshot kept a value the CRM no longer had, so a change of
ours back to it looked like no change and the sides stayed apart for good; and the
STRING_TOO_LONG error stayed in `sync status` after the CRM's value had won."""

from __future__ import annotations

from pathlib import Path

from tests.sync.world import T0, World, ev

BOB = {"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com", "Phone": "1"}
TOO_LONG = "+33 1 40 00 00 02 ext. 1234, ask for the IT desk"  # Phone holds 40 characters


def _refused(tmp_path: Path) -> World:
    """Linked at phone 1; the CRM sets 2 at 09:05; ours a value too long at 09:06: refused."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", "prospect_update", fields={"phone": "1"}))
    w.sync("run", "--until", T0)
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "update",
            "email": "bob@x.com",
            "fields": {"Phone": "2"},
        },
        until="2026-11-02T09:05:00Z",
    )
    w.run(ev("2026-11-02T09:06:00Z", "bob@x.com", "prospect_update", fields={"phone": TOO_LONG}))
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert [e["code"] for e in w.status()["error_queue"]] == ["STRING_TOO_LONG"]
    return w


def _phones(w: World) -> tuple[str, str]:
    (contact,) = w.crm_rows("Contact")
    return w.prospects()["bob@x.com"]["fields"]["phone"], contact["Phone"]


def test_ours_set_back_to_the_old_value_still_reaches_the_crm(tmp_path: Path) -> None:
    w = _refused(tmp_path)
    w.run(ev("2026-11-02T09:15:00Z", "bob@x.com", "prospect_update", fields={"phone": "1"}))
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert _phones(w) == ("1", "1")  # ours changed last (most recent): it is written
    assert w.status()["error_queue"] == []


def test_a_crm_value_that_wins_clears_the_error(tmp_path: Path) -> None:
    w = _refused(tmp_path)
    w.changes(
        {
            "at": "2026-11-02T09:12:00Z",
            "op": "update",
            "email": "bob@x.com",
            "fields": {"Phone": "3"},
        },
        until="2026-11-02T09:12:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:30:00Z")
    assert _phones(w) == ("3", "3")  # the CRM changed last: its value comes to us
    assert w.status()["error_queue"] == []
