"""Pure decisions the engine (and the future CRM sync) take: field merges, status, assignment.

No state, no I/O: each function takes the values and returns the decision,
so the sync engine can apply the same policy in the other direction, and
tests can read the table of cases directly (docs/semantics.md, §7).

>>> crm_value_wins(ours="Acme", theirs="", prefer="crm")  # a value beats a blank
False
>>> crm_value_wins(ours="Acme", theirs="ACME", prefer="ours")
False
>>> crm_value_wins(ours="a", theirs="b", prefer="most recent", our_stamp=10.0, their_time=5.0)
False
>>> crm_status_after("contact", "lead"), crm_status_after("none", "lead")
(None, 'lead')
>>> round_robin(("ann", "bob"), 3)
('bob', 4)
"""

from __future__ import annotations

from typing import Any

__all__ = ["blank", "can_assign", "crm_status_after", "crm_value_wins", "round_robin"]


def blank(value: Any) -> bool:
    """No value: None or the empty string."""
    return value is None or value == ""


def crm_value_wins(
    *,
    ours: Any,
    theirs: Any,
    prefer: str,
    our_stamp: float | None = None,
    their_time: float | None = None,
) -> bool:
    """Whether a CRM value replaces ours for a mapped field (§7.6).

    A value always beats a blank (a blank from the CRM never erases ours);
    `prefer ours` keeps any value of ours; `prefer crm` takes the CRM's;
    `prefer most recent` takes the CRM's unless ours changed after the CRM's
    update (`our_stamp`, when we set it, later than `their_time`).
    """
    if blank(ours):
        return True
    if blank(theirs):
        return False
    if prefer == "ours":
        return False
    if prefer == "most recent" and our_stamp is not None and their_time is not None:
        return not our_stamp > their_time
    return True


def crm_status_after(current: str, crm_object: str) -> str | None:
    """The CRM status a lead/contact update gives, or None to keep it (§7.2).

    A contact outranks a lead: a lead update never demotes a contact; a lead
    is taken only by a prospect with no record (or a deleted one).
    """
    if current == crm_object:
        return None
    if crm_object == "contact" or current in ("none", "deleted"):
        return crm_object
    return None


def can_assign(assigned_kind: str | None) -> bool:
    """Assignment never reassigns (§2.3): only an unassigned prospect is assigned."""
    return assigned_kind is None


def round_robin(members: tuple[str, ...], turn: int) -> tuple[str, int]:
    """The member whose turn it is, and the next turn (the counter is shared by prospects)."""
    return members[turn % len(members)], turn + 1
