"""What each criterion holds for, as the compiler turns it into a predicate.

Every test runs a small rule set over events with `mrules.run` (the in-memory
store) and reads back the tags or lists the rules gave: a criterion compiled
wrong is a wrong tag for every prospect it reads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mrules

TS = "2026-09-01T00:00:00Z"


def updates(*fields: dict[str, Any]) -> list[dict[str, Any]]:
    """One `prospect_update` a prospect, `p0@x.example`, `p1@x.example`..., with these fields."""
    return [
        {"ts": TS, "type": "prospect_update", "prospect": f"p{i}@x.example", "fields": f}
        for i, f in enumerate(fields)
    ]


def tagging(head: str, criteria: dict[str, str]) -> str:
    """Rules after `head`: a tag and an automation rule giving it, for each (tag, criterion)."""
    lines = [head, *(f'tag "{t}"' for t in criteria)]
    for i, (t, c) in enumerate(criteria.items(), start=1):
        lines.append(
            f'automation rule "{t}" priority {i} {{ when all {{ {c} }} then {{ add tag "{t}" }} }}'
        )
    return "\n".join(lines) + "\n"


def tagged(
    rules: str, events: list[dict[str, Any]], now: str | None = None
) -> dict[str, list[str]]:
    """Each prospect's tags after the run (email -> tags)."""
    at = None if now is None else dt.datetime.fromisoformat(now).timestamp()
    with mrules.run(rules, events, now=at) as result:
        return {r["email"]: r["tags"] for r in result.export()}


def test_a_number_kept_in_a_date_field_is_no_date() -> None:
    # `bad_field_values = "keep"` stores what the screening calls "not a date": no
    # date criterion holds for it (it was read as seconds since 1970), `is not` aside.
    head = 'settings { bad_field_values = "keep" }\nfield webinar: date'
    criteria = {
        "Before": "webinar < 2026-01-01",
        "After": "webinar >= 1970-01-01",
        "On": "webinar is 1970-01-01",
        "Not on": "webinar is not 1970-01-01",
        "Range": "webinar between 1960-01-01 and 2030-01-01",
    }
    kept = ({"webinar": 1000}, {"webinar": 0}, {"webinar": True}, {"webinar": "soon"})
    got = tagged(tagging(head, criteria), updates(*kept, {"webinar": "1970-01-01"}))
    assert got == {
        **{f"p{i}@x.example": ["Not on"] for i in range(4)},
        "p4@x.example": ["After", "Before", "On", "Range"],
    }


def test_a_date_time_with_a_lowercase_t_or_a_space_keeps_its_offset() -> None:
    # RFC 3339 allows `t` and a space before the time; the offset still counts, so
    # 02:00+02:00 on 2026-08-01 is midnight UTC, that day, and 01:00+02:00 the day before.
    head = "field webinar: date"
    values = ("2026-08-01t02:00:00+02:00", "2026-08-01 02:00:00+02:00", "2026-08-01 01:00:00+02:00")
    got = tagged(
        tagging(head, {"On": "webinar is 2026-08-01"}),
        updates(*({"webinar": v} for v in values)),
    )
    assert got == {"p0@x.example": ["On"], "p1@x.example": ["On"], "p2@x.example": []}


def test_a_boolean_kept_in_a_number_field_is_no_number() -> None:
    # true is not 1 and false is not 0 (`bad_field_values = "keep"` stores them as
    # given); a number written as text, spaces around it, is that number.
    head = 'settings { bad_field_values = "keep" }\nfield employees: number'
    criteria = {"One": "employees is 1", "Few": "employees < 1", "Some": "employees >= 1"}
    got = tagged(
        tagging(head, criteria),
        updates({"employees": True}, {"employees": False}, {"employees": " 1 "}),
    )
    assert got == {"p0@x.example": [], "p1@x.example": [], "p2@x.example": ["One", "Some"]}
