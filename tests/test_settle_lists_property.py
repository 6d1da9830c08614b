"""Dynamic lists that read lists: the engine ends where an exhaustive settle ends.

The engine re-evaluates only the dynamic lists and rules that read what
changed. The reference here tries every dynamic list (until they stop
changing) and every rule after every change. Over generated chains of lists
(each `in list` the one before, declared in any order) and a once-only rule
that reads the last of them, both must give the same prospects: a list that
followed its list only in the next round let the rule read it stale, and its
match stuck. (Rules that enable each other are left out: there the engine
tries a rule enabled mid-round in the next round, after later priorities.)
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mrules
from mrules.engine.run import Engine


def _rules(thresholds: list[int], order: list[int], negate: bool, points: int) -> str:
    n = len(thresholds)
    reads = [f'in list "L{i - 1}"; ' if i else "" for i in range(n)]
    lists = [
        f'dynamic list "L{i}" {{ when all {{ {reads[i]}score >= {thresholds[i]} }} }}'
        for i in range(n)
    ]
    last = f'{"not " if negate else ""}in list "L{n - 1}"'
    return "\n".join(
        [
            'form "F"',
            'form "G"',
            'tag "t"',
            f'on submit of form "F" {{ score +{points} }}',
            'on submit of form "G" { score -15 }',
            *(lists[i] for i in order),
            'automation rule "R" priority 1 {',
            f'  when all {{ submitted form "F"; {last} }}',
            '  then { add tag "t" }',
            "}",
        ]
    )


def _exhaustive(self: Engine, key: frozenset[str]) -> tuple[Any, Any]:
    return tuple(self.cs.rules), tuple(self.cs.dynamic_lists) * len(self.cs.dynamic_lists)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    n = draw(st.integers(2, 4))
    thresholds = draw(st.lists(st.sampled_from([0, 10, 20, 30]), min_size=n, max_size=n))
    order = draw(st.permutations(range(n)))
    rules = _rules(thresholds, order, draw(st.booleans()), draw(st.sampled_from([10, 20, 30])))
    kinds = draw(st.lists(st.sampled_from(["F", "G", "p"]), min_size=1, max_size=6))
    events = []
    for k, kind in enumerate(kinds):
        ts = f"2026-11-02T09:{k:02d}:00Z"
        who = draw(st.sampled_from(["a@x.com", "b@x.com"]))
        if kind == "p":
            events.append({"ts": ts, "type": "prospect_update", "prospect": who})
        else:
            events.append({"ts": ts, "type": "form_submit", "prospect": who, "asset": kind})
    return rules, events


def _export(rules: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = [orjson.dumps(e) for e in events]
    return mrules.run(rules, lines).export()


@settings(max_examples=60, deadline=None)
@given(_cases())
def test_chained_lists_settle_as_an_exhaustive_settle(
    case: tuple[str, list[dict[str, Any]]],
) -> None:
    rules, events = case
    fast = _export(rules, events)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Engine, "_candidates_for", _exhaustive, raising=False)
        slow = _export(rules, events)
    assert fast == slow, rules
