"""One mapped field, both sides: who wins and why (docs/sync.md#who-wins-a-field).

Pure: the values in, the decision out. The base is the value both sides last
agreed on (what the last sync wrote or read); without a base (a record just
linked) the field's policy decides.

>>> decide("Acme", "Acme", "Acme", "ours").winner
'same'
>>> d = decide("Acme", "ACME", "Acme", "ours")   # only the CRM changed: it wins
>>> d.winner, d.why
('crm', 'one-sided change (CRM)')
>>> decide("Acme", "ACME", "Old", "ours").winner  # both changed: the policy
'ours'
>>> decide(None, "ACME", "Old", "ours").why       # a value beats a blank
'a value beats a blank'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from mrules.policy import blank, crm_value_wins

__all__ = ["Decision", "decide", "norm", "same"]


@dataclass(frozen=True)
class Decision:
    winner: str
    """same | ours | crm"""
    why: str
    value: Any
    """The value both sides end with."""


def norm(value: Any) -> Any:
    """A value as compared across the two sides: blank is None, numbers as floats, else text."""
    if blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):  # a multiselect: Salesforce's `a;b`
        return ";".join(str(v) for v in value)
    if isinstance(value, str):
        if _NOT_A_NUMBER(value):  # no digit, or a space: text (float() would say so slower)
            return value
        try:
            f = float(value)
        except ValueError:
            return value
        return f if math.isfinite(f) and value.strip() == value else value
    return str(value)


_NOT_A_NUMBER = re.compile(r"\A\D*\Z|\s").search


def same(a: Any, b: Any) -> bool:
    """Whether two values agree: a blank is a blank, two texts are equal as text
    ("007" is not "7", "+33 1" not "33 1": a text field of the CRM holds text),
    a number and a text as numbers (a number field read on one side, text on the
    other: 50 and "50").

    >>> same("007", "7"), same(7, "7.0"), same("", None)
    (False, True, True)
    """
    if a == b and type(a) is type(b):
        return True
    if isinstance(a, str) and isinstance(b, str) and not blank(a) and not blank(b):
        return False
    return norm(a) == norm(b)


def decide(
    ours: Any,
    theirs: Any,
    base: Any,
    prefer: str,
    *,
    has_base: bool = True,
    blanks: str = "never overwrite",
    our_time: float | None = None,
    their_time: float | None = None,
) -> Decision:
    """Who wins one field.

    - both sides equal: nothing to do;
    - one side changed since the base: that side wins (a one-sided change),
      except that a blank never erases a value (a value beats a blank; with
      `blank crm values overwrite`, the CRM emptying a field that prefers the
      CRM does erase ours);
    - both changed, or no base: the policy (`ours`, `crm`, `most recent` on
      the field-level change times; a tie, or a time unknown, goes to the CRM);
    - `always ours` (the score and the grade, §7.1): ours whenever we have one,
      whatever changed; the CRM's is never taken.
    """
    if same(ours, theirs):
        return Decision("same", "in sync", ours)
    if prefer == "always ours":  # the score and the grade: mrules' own, never the CRM's (§7.1)
        if blank(ours):
            return Decision("same", "always ours: nothing of ours to write", ours)
        return Decision("ours", "always ours (score and grade)", ours)
    # `blank crm values overwrite` lets a CRM blank erase ours only on a field that
    # prefers the CRM: `prefer ours` keeps ours, and `most recent` keeps a value
    # over a newer blank, as Pardot's sync behaviours do.
    overwrite = blanks == "overwrite" and prefer == "crm"
    if has_base and same(ours, base):  # only the CRM changed
        if blank(theirs) and not overwrite:
            return Decision("ours", "a value beats a blank", ours)
        return Decision("crm", "one-sided change (CRM)", theirs)
    if has_base and same(theirs, base):  # only ours changed
        if blank(ours):
            return Decision("crm", "a value beats a blank", theirs)
        return Decision("ours", "one-sided change (ours)", ours)
    if blank(ours):
        return Decision("crm", "a value beats a blank", theirs)
    if blank(theirs):
        if overwrite:
            return Decision("crm", "blank crm values overwrite", theirs)
        return Decision("ours", "a value beats a blank", ours)
    what = "both changed" if has_base else "first link"
    if prefer == "most recent" and (our_time is None or their_time is None):
        unknown = "ours, the CRM's is kept" if our_time is None else "the CRM's, which is kept"
        return Decision("crm", f"{what}; most recent: no time for {unknown}", theirs)
    wins = crm_value_wins(
        ours=ours, theirs=theirs, prefer=prefer, our_stamp=our_time, their_time=their_time
    )
    if prefer == "most recent":
        why = f"{what}; most recent: {'CRM' if wins else 'ours'} changed last"
    else:
        why = f"{what}; prefer {prefer}"
    return Decision("crm", why, theirs) if wins else Decision("ours", why, ours)
