"""`batch` caps the writes to the CRM, not what comes from it (docs/sync.md#what-differs-
from-pardot): a linked record's CRM values are taken in the cycle that reads them, also
when that record's own update waits for a later batch."""

from __future__ import annotations

from pathlib import Path

from tests.sync.world import BOB, T0, World, ev


def _bob(w: World) -> dict[str, object]:
    return w.prospects()["bob@x.com"]["fields"]  # type: ignore[no-any-return]


def test_the_crm_value_comes_while_our_update_waits_behind_creations(tmp_path: Path) -> None:
    w = World(tmp_path, batch=1)
    w.seed({"Contact": [BOB]})
    w.run(ev(T0, "bob@x.com", asset="Demo"))
    w.sync("apply")
    assert _bob(w)["phone"] == "+1 555 0101"
    # Sales change Bob's phone; we change his title, and a new assignment's creation
    # takes the cycle's one write: Bob's update waits for the next batch.
    w.changes(
        {
            "at": "2026-11-02T09:05:00Z",
            "op": "update",
            "email": "bob@x.com",
            "fields": {"Phone": "+1 555 0199"},
        },
        until="2026-11-02T09:06:00Z",
    )
    w.run(
        ev("2026-11-02T09:07:00Z", "bob@x.com", "prospect_update", fields={"title": "CTO"}),
        ev("2026-11-02T09:07:00Z", "zed@x.com", asset="Demo"),
    )
    plan = w.sync("plan", code=2).output
    assert "~ update        bob@x.com  0035e0000000001AAA  [batch 2]" in plan
    assert 'Phone: ours "+1 555 0101" <- CRM "+1 555 0199": crm wins' in plan
    w.sync("apply")
    # Was: "+1 555 0101" until the cycle after Bob's update was written and read back.
    assert _bob(w)["phone"] == "+1 555 0199"
    assert [c.get("Title") for c in w.crm_rows("Contact")] == [None]  # our write waited
    w.sync("apply")  # the next batch: our title goes, the phone stays the CRM's
    assert [(c["Phone"], c["Title"]) for c in w.crm_rows("Contact")] == [("+1 555 0199", "CTO")]
    fields = _bob(w)
    assert (fields["phone"], fields["title"]) == ("+1 555 0199", "CTO")
    assert w.sync("plan").output.rstrip().endswith("nothing to do")


def test_a_first_link_takes_the_crm_values_while_our_values_wait(tmp_path: Path) -> None:
    """The prospect is linked by its email in the first cycle; its values for the CRM wait
    behind the assignments' creations, the CRM's come at once."""
    w = World(tmp_path, batch=1)
    w.seed({"Contact": [BOB]})
    w.run(
        ev(T0, "ann@x.com", asset="Demo"),
        ev(T0, "bob@x.com", "prospect_update", fields={"title": "CTO"}),
    )
    w.sync("apply")
    assert w.prospects()["bob@x.com"]["crm_status"] == "contact"
    # Was: {"title": "CTO"} only, the CRM's phone and lead source two cycles later.
    assert _bob(w) == {"title": "CTO", "phone": "+1 555 0101", "lead_source": "Web"}
    assert [c.get("Title") for c in w.crm_rows("Contact")] == [None]
    w.sync("apply")
    assert [c.get("Title") for c in w.crm_rows("Contact")] == ["CTO"]
