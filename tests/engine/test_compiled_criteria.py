"""What each criterion holds for, as the compiler turns it into a predicate.

Every test runs a small rule set over events with `mrules.run` (the in-memory
store) and reads back the tags or lists the rules gave: a criterion compiled
wrong is a wrong tag for every prospect it reads.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

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


def members(
    head: str, criteria: dict[str, str], events: list[dict[str, Any]]
) -> dict[str, list[str]]:
    """Each prospect's dynamic lists after the run (email -> lists), a list of each
    (name, criterion) after `head`.

    A list changes only when its criterion's outcome does: in the ledger each
    prospect's steps of a list alternate, `add to list` first, and end with its
    membership (a criterion that said None, not False, removed a prospect that
    never joined).
    """
    lists = [f'dynamic list "{n}" {{ when all {{ {c} }} }}' for n, c in criteria.items()]
    with mrules.run("\n".join([head, *lists]) + "\n", events) as result:
        got = {r["email"]: r["dynamic_lists"] for r in result.export()}
        steps: dict[tuple[str, str], list[str]] = {}
        for e in result.store.ledger():
            args = orjson.loads(e.args or "{}")
            if e.prospect and args.get("dynamic"):
                steps.setdefault((e.prospect, args["list"]), []).append(str(e.action))
    for (email, name), actions in steps.items():
        want = ["add to list", "remove from list"] * len(actions)
        assert actions == want[: len(actions)], (email, name, actions)
        assert (actions[-1] == "add to list") == (name in got[email]), (email, name, actions)
    assert {(m, n) for m, ns in got.items() for n in ns} <= set(steps)
    return got


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


def test_is_empty_and_is_not_empty() -> None:
    # A field never given and a blank are empty; a checkbox never given reads false.
    criteria = {
        "No company": "company is empty",
        "Company": "company is not empty",
        "No dne": "do_not_email is empty",
        "Dne known": "do_not_email is not empty",
    }
    got = tagged(
        tagging("", criteria),
        updates({"first_name": "A"}, {"company": ""}, {"company": "Acme", "do_not_email": True}),
    )
    assert got == {
        "p0@x.example": ["Dne known", "No company"],
        "p1@x.example": ["Dne known", "No company"],
        "p2@x.example": ["Company", "Dne known"],
    }


def test_is_on_a_number_field_compares_numbers() -> None:
    head = "field employees: number"
    criteria = {"Ten": "employees is 10", "Not ten": "employees is not 10"}
    values = (10, "10.0", 11, "")
    got = members(head, criteria, updates(*({"employees": v} for v in values)))
    assert got == {
        "p0@x.example": ["Ten"],
        "p1@x.example": ["Ten"],
        "p2@x.example": ["Not ten"],
        "p3@x.example": ["Not ten"],
    }


def test_is_on_a_multiselect_field_holds_when_one_value_is_there() -> None:
    head = 'field interests: multiselect ["cloud", "data", "ai"]'
    criteria = {"Cloud": 'interests is "CLOUD"', "No cloud": 'interests is not "cloud"'}
    criteria |= {"Any": 'interests is ["ai", "data"]', "None of": 'interests is not ["ai", "data"]'}
    criteria["AI"] = 'interests is "ai"'
    values = ("data;cloud", "ai", "cloud", "")
    got = members(head, criteria, updates(*({"interests": v} for v in values)))
    assert got == {
        "p0@x.example": ["Any", "Cloud"],
        "p1@x.example": ["AI", "Any", "No cloud"],
        "p2@x.example": ["Cloud", "None of"],
        "p3@x.example": ["No cloud", "None of"],
    }


def test_text_operators_read_text_case_insensitively() -> None:
    head = "field company: text"
    criteria = {
        "Has": 'company contains "CME"',
        "Has not": 'company does not contain "cme"',
        "Starts": 'company starts with "ac"',
        "Ends": 'company ends with "ME"',
    }
    values = ("Acme", "Bacme Inc", "", None)
    got = members(head, criteria, updates(*({"company": v} for v in values)))
    assert got == {
        "p0@x.example": ["Ends", "Has", "Starts"],
        "p1@x.example": ["Has"],
        "p2@x.example": ["Has not"],
        "p3@x.example": ["Has not"],
    }


def test_contains_on_a_multiselect_reads_each_value() -> None:
    head = 'field interests: multiselect ["cloud", "data", "ai"]'
    criteria = {
        "Has": 'interests contains "Cloud"',
        "Has not": 'interests does not contain "cloud"',
    }
    values = ("data;cloud", "ai", "")
    got = members(head, criteria, updates(*({"interests": v} for v in values)))
    assert got == {
        "p0@x.example": ["Has"],
        "p1@x.example": ["Has not"],
        "p2@x.example": ["Has not"],
    }


def test_comparisons_and_between_on_numbers_include_their_bounds() -> None:
    head = "field employees: number"
    criteria = {
        "Over": "employees > 10",
        "From": "employees >= 10",
        "Under": "employees < 10",
        "Up to": "employees <= 10",
        "Mid": "employees between 10 and 500",
    }
    values = (9, 10, "11", 500, 501, "")
    got = members(head, criteria, updates(*({"employees": v} for v in values)))
    assert got == {
        "p0@x.example": ["Under", "Up to"],
        "p1@x.example": ["From", "Mid", "Up to"],
        "p2@x.example": ["From", "Mid", "Over"],
        "p3@x.example": ["From", "Mid", "Over"],
        "p4@x.example": ["From", "Over"],
        "p5@x.example": [],
    }


def test_comparisons_and_between_on_dates_compare_moments() -> None:
    head = "field renewal: date"
    criteria = {
        "Late": "renewal > 2026-06-30T23:59:59Z",
        "H2": "renewal between 2026-07-01 and 2026-12-31",
        "H1": "renewal <= 2026-06-30T23:59:59Z",
    }
    values = ("2026-06-30T23:59:59Z", "2026-07-01", "2026-12-31T00:00:00Z", "2027-01-01", "")
    got = members(head, criteria, updates(*({"renewal": v} for v in values)))
    assert got == {
        "p0@x.example": ["H1"],
        "p1@x.example": ["H2", "Late"],
        "p2@x.example": ["H2", "Late"],
        "p3@x.example": ["Late"],
        "p4@x.example": [],
    }


SCORING = """
settings { throttle_minutes = 0 }
scoring category "Web" folders ["Web"]
form "One"
form "Ten"
form "Minus"
form "Web"
on submit of form "One" { score +1 }
on submit of form "Ten" { score +10 }
on submit of form "Minus" { score -1 }
on submit of form "Web" { score +5 in category "Web" }
"""


def submits(*forms: tuple[str, ...]) -> list[dict[str, Any]]:
    """A prospect, `p0@x.example`, `p1@x.example`..., for each tuple: its submits of these forms."""
    return [
        {"ts": TS, "type": "form_submit", "prospect": f"p{i}@x.example", "asset": form}
        for i, names in enumerate(forms)
        for form in names
    ]


def test_score_criteria() -> None:
    criteria = {
        "Over 9": "score > 9",
        "10 to 20": "score between 10 and 20",
        "Negative": "score < 0",
        "Web": 'score in category "Web" >= 5',
        "No web": 'score in category "Web" < 1',
    }
    forms = (("Ten", "Minus"), ("Ten",), ("Ten", "Ten"), ("Ten", "Ten", "One"), ("Minus", "Web"))
    got = members(SCORING, criteria, submits(*forms))
    assert got == {
        "p0@x.example": ["No web"],
        "p1@x.example": ["10 to 20", "No web", "Over 9"],
        "p2@x.example": ["10 to 20", "No web", "Over 9"],
        "p3@x.example": ["No web", "Over 9"],
        "p4@x.example": ["Negative", "Web"],
    }


def test_all_any_and_not() -> None:
    a, b, c = 'company is "A"', 'city is "B"', 'state is "C"'
    criteria = {
        "A and B": f"{a} {b}",
        "A B and C": f"{a} {b} {c}",
        "A or B": f"any {{ {a} {b} }}",
        "A B or C": f"any {{ {a} {b} {c} }}",
        "Not A": f"not {a}",
        "Not A or B": f"not any {{ {a} {b} }}",
    }
    values = (
        {"company": "A", "city": "B", "state": "C"},
        {"company": "A", "city": "B"},
        {"city": "B"},
        {"state": "C"},
        {"company": "Z"},
    )
    got = members("", criteria, updates(*values))
    assert got == {
        "p0@x.example": ["A B and C", "A B or C", "A and B", "A or B"],
        "p1@x.example": ["A B or C", "A and B", "A or B"],
        "p2@x.example": ["A B or C", "A or B", "Not A"],
        "p3@x.example": ["A B or C", "Not A", "Not A or B"],
        "p4@x.example": ["Not A", "Not A or B"],
    }


FACTS = """
list "S"
tag "T"
user "ann"
user "cy"
queue "ann"
group "Sales" ["ann"]
campaign "Web"
default grading profile "Default" { criterion "Size" 2/3 }
grading profile "Big" { criterion "Size" 3/3 }
form "Static"
form "Ann"
form "Cy"
form "Queue"
form "Web"
form "Big"
on submit of form "Static" { add to list "S"  add tag "T" }
on submit of form "Ann" { assign to user "ann" }
on submit of form "Cy" { assign to user "cy" }
on submit of form "Queue" { assign to queue "ann" }
on submit of form "Web" { change source campaign to "Web" }
automation rule "Big" priority 1 {
  when all { submitted form "Big" }
  then { change profile to "Big" }
}
dynamic list "Company A" { when all { company is "A" } }
"""


def test_lists_tags_assignment_campaign_and_profile() -> None:
    criteria = {
        "In S": 'in list "S"',
        "In A": 'in list "Company A"',
        "Tagged": 'tagged "T"',
        "Assigned": "assigned",
        "User ann": 'assigned to user "ann"',
        "Queue ann": 'assigned to queue "ann"',
        "Sales": 'assigned to group "Sales"',
        "Web": 'campaign is "Web"',
        "Default": 'profile is "Default"',
        "Big": 'profile is "Big"',
        "No CRM": "crm status is none",
    }
    events = submits(("Static",), ("Ann", "Web"), ("Cy", "Big"), ("Queue",))
    events.append(
        {
            "ts": TS,
            "type": "prospect_update",
            "prospect": "p4@x.example",
            "fields": {"company": "A"},
        }
    )
    got = members(FACTS, criteria, events)
    assert got == {
        "p0@x.example": ["Default", "In S", "No CRM", "Tagged"],
        "p1@x.example": ["Assigned", "Default", "No CRM", "Sales", "User ann", "Web"],
        "p2@x.example": ["Assigned", "Big", "No CRM"],
        "p3@x.example": ["Assigned", "Default", "No CRM", "Queue ann"],
        "p4@x.example": ["Company A", "Default", "In A", "No CRM"],
    }


def tick(ts: str) -> dict[str, Any]:
    return {"ts": ts, "type": "tick"}


ASSIGNING = SCORING + 'user "cy"\nform "Cy"\non submit of form "Cy" { assign to user "cy" }'


def test_days_since_at_least_holds_at_its_threshold() -> None:
    # A tick at the very threshold finds what crossed it: the wake-ups the criteria
    # ask for, not a look at every prospect (`>=` starts and `<` stops right then).
    criteria = {
        "30+": "days since created >= 30",
        "Under 30": "days since created < 30",
        "Active": "days since last activity >= 30",
        "Assigned": "days since assigned >= 30",
    }
    events = [*updates({"first_name": "A"}), *submits((), ("One",), ("Cy",))]
    events += [tick("2026-09-30T00:00:00Z"), tick("2026-10-01T00:00:00Z")]
    got = members(ASSIGNING, criteria, events)
    assert got == {
        "p0@x.example": ["30+"],
        "p1@x.example": ["30+", "Active"],
        "p2@x.example": ["30+", "Active", "Assigned"],
    }


def test_days_since_more_than_holds_just_after_its_threshold() -> None:
    criteria = {"Over 30": "days since created > 30", "Up to 30": "days since created <= 30"}
    events = [*updates({"first_name": "A"}), tick("2026-10-01T00:00:00Z")]
    events.append(tick("2026-10-01T00:00:01Z"))
    assert members("", criteria, events) == {"p0@x.example": ["Over 30"]}


def test_within_holds_until_the_window_ends() -> None:
    # p0's window ends at the second tick, p1's at the third, when an update of p1
    # makes it read the criterion again: at the very end of its window, it holds.
    criteria = {"Recent": 'submitted form "One" within 7 days', "Ever": 'submitted form "One"'}
    events = submits(("One",), ("One",), ("Ten",))
    events[1]["ts"] = "2026-09-01T00:00:01Z"
    events += [tick("2026-09-03T00:00:00Z"), tick(TS.replace("09-01", "09-08"))]
    events += [tick("2026-09-08T00:00:01Z"), *updates({"first_name": "A"})]
    events[-1] |= {"ts": "2026-09-08T00:00:01Z", "prospect": "p1@x.example"}
    got = members(SCORING, criteria, events)
    assert got == {"p0@x.example": ["Ever"], "p1@x.example": ["Ever", "Recent"], "p2@x.example": []}


def _marking(priority: int, form: str, marks: list[str]) -> str:
    """An automation rule: a submit of `form` marks these grading criteria."""
    when = f'when all {{ submitted form "{form}" }}'
    return f'automation rule "{form}" priority {priority} {{ {when} then {{ {" ".join(marks)} }} }}'


def test_grade_criteria_read_the_profile_s_marks_from_d_within_f_to_a_plus() -> None:
    # D (the default start) moves a third of a letter a mark's weight: 5 criteria
    # of 3/3 go past A+ and below F, which the grade stops at.
    names = "ABCDE"
    yes = [f'mark "{c}" of profile "Default" as matches' for c in names]
    no = [f'mark "{c}" of profile "Default" as does not match' for c in names]
    profile = " ".join(f'criterion "{c}" 3/3' for c in names)
    forms = {
        "All": yes,
        "None": no,
        "One": yes[:1],
        "Two": yes[:2],
        "Minus": no[:1],
        "Other": ['mark "A" of profile "Other" as matches'],
        "Unknown": ['mark "A" of profile "Default" as not known'],
    }
    head = "\n".join(
        [
            f'default grading profile "Default" {{ {profile} }}',
            'grading profile "Other" { criterion "A" 3/3 }',
            *(f'form "{f}"' for f in forms),
            *(_marking(i, f, m) for i, (f, m) in enumerate(forms.items(), start=1)),
        ]
    )
    criteria = {
        "Graded": "grade >= F",
        "Top": "grade >= A+",
        "At most A+": "grade <= A+",
        "Good": "grade >= B-",
        "Below C": "grade < C",
        "Ungraded": "not grade >= F",
    }
    got = members(head, criteria, submits(*((f,) for f in forms)))
    assert got == {
        "p0@x.example": ["At most A+", "Good", "Graded", "Top"],
        "p1@x.example": ["At most A+", "Below C", "Graded"],
        "p2@x.example": ["At most A+", "Graded"],
        "p3@x.example": ["At most A+", "Good", "Graded"],
        "p4@x.example": ["At most A+", "Below C", "Graded"],
        "p5@x.example": ["Ungraded"],
        "p6@x.example": ["Ungraded"],
    }


def test_email_and_opted_out_are_read_from_the_prospect() -> None:
    criteria = {
        "Ours": 'email ends with "0@x.example"',
        "Opted out": "opted out",
        "Field says out": "opted_out is true",
        "May call": "do_not_call is false",
    }
    events = updates({"first_name": "A"}, {"do_not_call": True})
    events.append({"ts": TS, "type": "unsubscribe", "prospect": "p1@x.example"})
    got = members("", criteria, events)
    assert got == {
        "p0@x.example": ["May call", "Ours"],
        "p1@x.example": ["Field says out", "Opted out"],
    }


def test_a_condition_reading_a_dynamic_list_through_not_sees_the_submission() -> None:
    # The lists follow the submitted fields before the condition is read, as they do
    # for `in list` (completion/conditional.yaml).
    rules = """
    field size: picklist ["small", "big"]
    dynamic list "Big" { when all { size is "big" } }
    tag "small"
    form "A"
    on submit of form "A" {
      if not in list "Big" { add tag "small" }
    }
    """
    events = updates({"size": "small"}, {"size": "big"})
    sizes = ("big", "small")
    events += [
        {**e, "type": "form_submit", "asset": "A", "fields": {"size": s}}
        for e, s in zip(events, sizes, strict=True)
    ]
    assert tagged(rules, events) == {"p0@x.example": [], "p1@x.example": ["small"]}


def test_a_prospect_with_no_profile_is_ungraded_whatever_its_marks() -> None:
    # No default profile: the marks of a profile the prospect was not given grade nothing.
    head = 'grading profile "Other" { criterion "A" 3/3 }\nform "F"\n'
    head += _marking(1, "F", ['mark "A" of profile "Other" as matches'])
    criteria = {"Graded": "grade >= F", "Ungraded": "not grade >= F"}
    assert members(head, criteria, submits(("F",))) == {"p0@x.example": ["Ungraded"]}
