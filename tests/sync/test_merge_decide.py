"""`decide` against the rules of docs/sync.md ("Who wins a field"), written out plainly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mrules.sync.merge import decide

VALUES = st.sampled_from([None, "", "a", "b", "c"])
TIMES = st.sampled_from([None, 1.0, 2.0])


def reference(
    ours: Any,
    theirs: Any,
    base: Any,
    prefer: str,
    has_base: bool,
    blanks: str,
    our_time: float | None,
    their_time: float | None,
) -> str:
    """The winner, from the table and the bullets of docs/sync.md, in their order."""
    empty = (None, "")
    if ours == theirs or (ours in empty and theirs in empty):
        return "same"
    if prefer == "always ours":  # the score and the grade: ours whenever we have one
        return "same" if ours in empty else "ours"
    # A value beats a blank first, whatever the policy; a blank never erases a value,
    # except that with `blank crm values overwrite` the CRM emptying a field that
    # prefers the CRM erases ours (a blank the CRM already had, the base, is no change).
    if ours in empty:
        return "crm"
    if theirs in empty:
        emptied = not (has_base and base in empty)
        return "crm" if blanks == "overwrite" and prefer == "crm" and emptied else "ours"
    if has_base and ours == base:
        return "crm"  # only the CRM changed
    if has_base and theirs == base:
        return "ours"  # only ours changed
    if prefer == "ours":
        return "ours"
    if prefer == "crm" or our_time is None or their_time is None:
        return "crm"
    return "ours" if our_time > their_time else "crm"  # a tie goes to the CRM


CASES = st.fixed_dictionaries(
    {
        "ours": VALUES,
        "theirs": VALUES,
        "base": VALUES,
        "prefer": st.sampled_from(["ours", "crm", "most recent", "always ours"]),
        "has_base": st.booleans(),
        "blanks": st.sampled_from(["never overwrite", "overwrite"]),
        "our_time": TIMES,
        "their_time": TIMES,
    }
)


# Both changed, each to a value, under `most recent`: a tie of times goes to the CRM
# (random cases reach it about once in a hundred), a later one of ours to ours.
BOTH_CHANGED = {
    "ours": "a",
    "theirs": "b",
    "base": "c",
    "prefer": "most recent",
    "has_base": True,
    "blanks": "never overwrite",
}
NO_TIMES = {"our_time": None, "their_time": None}


@example(case=BOTH_CHANGED | {"our_time": 2.0, "their_time": 2.0})
@example(case=BOTH_CHANGED | {"our_time": 2.0, "their_time": 1.0})
# Only the CRM emptied a field that prefers the CRM, with `blank crm values overwrite`:
# ours is erased (random cases reach it about once in two hundred).
@example(
    case=BOTH_CHANGED
    | NO_TIMES
    | {"theirs": None, "base": "a", "prefer": "crm", "blanks": "overwrite"}
)
# No base, and ours equal to the value passed as base: the policy decides, not a change.
@example(case=BOTH_CHANGED | NO_TIMES | {"base": "a", "prefer": "ours", "has_base": False})
@given(case=CASES)
def test_decide_follows_the_documented_rules(case: dict[str, Any]) -> None:
    c = dict(case)
    d = decide(c.pop("ours"), c.pop("theirs"), c.pop("base"), c.pop("prefer"), **c)
    want = reference(**case)
    assert d.winner == want, (case, d)
    assert d.value == {"same": case["ours"], "ours": case["ours"], "crm": case["theirs"]}[want]


# The reason each decision gives, as the plan shows it beside the winner ("fields with
# the winner and why", docs/sync.md): (ours, theirs, base, prefer, keywords) -> winner, why.
WHY = [
    (("a", "a", "b", "ours", {}), ("same", "in sync")),
    (("a", "b", "a", "ours", {}), ("crm", "one-sided change (CRM)")),
    (("a", "b", "b", "crm", {}), ("ours", "one-sided change (ours)")),
    (("a", None, "a", "ours", {}), ("ours", "a value beats a blank")),
    (("a", None, "a", "crm", {"blanks": "overwrite"}), ("crm", "one-sided change (CRM)")),
    (("a", None, "b", "crm", {"blanks": "overwrite"}), ("crm", "blank crm values overwrite")),
    # Just linked (no base), ours blank: the CRM's fills it, a value beating a blank.
    ((None, "b", None, "ours", {"has_base": False}), ("crm", "a value beats a blank")),
    (("a", "b", None, "ours", {"has_base": False}), ("ours", "first link; prefer ours")),
    (("a", "b", "c", "crm", {}), ("crm", "both changed; prefer crm")),
    (("a", "b", "c", "ours", {}), ("ours", "both changed; prefer ours")),
    (
        ("a", "b", "c", "most recent", {"our_time": 2.0, "their_time": 1.0}),
        ("ours", "both changed; most recent: ours changed last"),
    ),
    (
        ("a", "b", "c", "most recent", {"our_time": 1.0, "their_time": 2.0}),
        ("crm", "both changed; most recent: CRM changed last"),
    ),
    (("a", "b", "c", "always ours", {}), ("ours", "always ours (score and grade)")),
    ((None, "b", "c", "always ours", {}), ("same", "always ours: nothing of ours to write")),
    (
        ("a", "b", "c", "most recent", {"our_time": None, "their_time": 1.0}),
        ("crm", "both changed; most recent: no time for ours, the CRM's is kept"),
    ),
    # The CRM's change time unknown (ours known): it said "no time for ours".
    (
        ("a", "b", "c", "most recent", {"our_time": 2.0, "their_time": None}),
        ("crm", "both changed; most recent: no time for the CRM's, which is kept"),
    ),
]


@pytest.mark.parametrize(("args", "want"), WHY)
def test_each_decision_says_why(args: tuple[Any, ...], want: tuple[str, str]) -> None:
    *values, keywords = args
    d = decide(*values, **keywords)
    assert (d.winner, d.why) == want
