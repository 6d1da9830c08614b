"""`sync plan` says exactly what `sync apply` of that plan then does (docs/sync.md#plan-and-apply).

Random worlds (people with or without a prospect, assigned or not, with no CRM record, a
contact, a lead, both, or two contacts; values the CRM takes and values it refuses: too
long, outside a restricted picklist, a malformed email; a first cycle or none before;
edits on both sides; a batch of 1 to 3 or 800), then `sync plan --out plan.json` and
`sync apply plan.json`, as a user runs them. The plan's first batch is what the CRM
receives, field by field; its expected errors are the errors apply reports, no more and
no fewer; its counts are apply's counts.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .world import T0, World, ev

T1 = "2026-11-02T09:05:00Z"
T2 = "2026-11-02T09:10:00Z"
PHONES = (None, "+1 555 0101", "+1 555 0199", "9" * 45)  # the last: longer than Phone's 40
SIZES = (None, "1-10", "51-200", "about 7")  # the last: not in the restricted picklist
FIRST = (None, "Al", "F" * 45)  # the last: longer than FirstName's 40

person = st.fixed_dictionaries(
    {
        "crm": st.sampled_from(["none", "contact", "lead", "both", "two contacts"]),
        "upper": st.booleans(),  # the CRM's record has the email in capitals
        "prospect": st.sampled_from(["absent", "present", "assigned"]),
        "bad_email": st.booleans(),  # an address the CRM refuses (no record can have it)
        "phone": st.sampled_from(PHONES),
        "crm_phone": st.sampled_from(PHONES[:3]),
        "size": st.sampled_from(SIZES),
        "first": st.sampled_from(FIRST),
        "later_phone": st.sampled_from(PHONES),
        "later_crm_phone": st.sampled_from((None, "+1 555 0177")),
        "assigned_later": st.booleans(),
    }
)
world = st.fixed_dictionaries(
    {
        "people": st.lists(person, min_size=1, max_size=5),
        "batch": st.sampled_from([1, 2, 3, 800]),
        "first_cycle": st.booleans(),
    }
)

# The fields without which the CRM takes no record: refused, the create is held whole.
WHOLE = {"Email", "LastName", "Company", "FirstName"}


def _email(i: int, p: dict[str, Any]) -> str:
    if p["bad_email"] and p["crm"] == "none":
        return f"p{i}@localhost"  # no dot in the domain: INVALID_EMAIL_ADDRESS
    return f"p{i}@x.com"


def _seed(people: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    contacts: list[dict[str, Any]] = []
    leads: list[dict[str, Any]] = []
    for i, p in enumerate(people):
        email = _email(i, p).upper() if p["upper"] else _email(i, p)
        row = {"LastName": f"L{i}", "Email": email, "Phone": p["crm_phone"]}
        if p["crm"] in ("contact", "both", "two contacts"):
            contacts.append({"Id": f"c{i}", **row})
        if p["crm"] == "two contacts":
            contacts.append({"Id": f"c{i}b", **row, "Phone": "+1 555 0142"})
        if p["crm"] in ("lead", "both"):
            leads.append({"Id": f"l{i}", **row, "Company": f"Co{i}"})
    return {"Contact": contacts, "Lead": leads}


def _events(people: list[dict[str, Any]], ts: str, later: bool) -> list[dict[str, Any]]:
    out = []
    for i, p in enumerate(people):
        email = _email(i, p)
        if p["prospect"] == "absent":
            continue
        if later:
            if p["later_phone"] is not None:
                out.append(ev(ts, email, "prospect_update", fields={"phone": p["later_phone"]}))
            if p["assigned_later"]:
                out.append(ev(ts, email, asset="Demo"))
            continue
        fields = {
            k: v
            for k, v in (
                ("phone", p["phone"]),
                ("company_size", p["size"]),
                ("first_name", p["first"]),
            )
            if v is not None
        }
        out.append(ev(ts, email, "prospect_update", fields=fields or {"title": "t"}))
        if p["prospect"] == "assigned":
            out.append(ev(ts, email, asset="Demo"))
    return out


def _records(w: World) -> dict[str, dict[str, Any]]:
    out = {}
    for sobject in ("Lead", "Contact"):
        for fields in w.crm_rows(sobject):
            out[fields["Id"]] = fields
    return out


def _expected_errors(op: dict[str, Any]) -> set[tuple[str, str, str]]:
    """The errors apply reports for `op`: a create refused whole gets one, on `*record`,
    with the code of the first field the CRM names (any of them)."""
    out = set()
    for e in op.get("expected_errors", ()):
        field = e["field"]
        if op["op"] == "create" and field in WHOLE:
            field = "*record"  # the record is not created: its create is held
        out.add((op["prospect"], field, e["code"]))
    return out


def _refused_whole(op: dict[str, Any]) -> bool:
    return any(f == "*record" for _p, f, _c in _expected_errors(op))


def _check(tmp: Path, case: dict[str, Any]) -> None:
    people = case["people"]
    w = World(tmp, batch=case["batch"])
    w.seed(_seed(people))
    w.run(*_events(people, T0, later=False))
    at = T0
    if case["first_cycle"]:
        w.sync("run", "--until", T0)
        edits = [
            {
                "at": T1,
                "op": "update",
                "email": _email(i, p),
                "fields": {"Phone": p["later_crm_phone"]},
            }
            for i, p in enumerate(people)
            if p["later_crm_phone"] is not None and p["crm"] != "none"
        ]
        if edits:
            w.changes(*edits, until=T1)
        later = _events(people, T1, later=True)
        if later:
            w.run(*later)
        at = T2
    before = _records(w)
    plan_path = tmp / "plan.json"
    r = w.sync("plan", "--at", at, "--out", str(plan_path), code=None)
    assert r.exit_code in (0, 2), r.output
    plan = json.loads(plan_path.read_text("utf-8"))
    r = w.sync("apply", str(plan_path), "--format", "json", code=0)
    report = json.loads(r.output)
    after = _records(w)
    now = [o for o in plan["ops"] if o.get("batch", 0) == 0]

    # The errors apply reports are the errors the plan expected.
    got = sorted((e["prospect"], e["field"], e["code"]) for e in report["errors"])
    expected: list[tuple[str, str, str]] = []
    for o in now:
        errors = _expected_errors(o)
        if _refused_whole(o):
            (one,) = [e for e in got if e[0] == o["prospect"]]
            assert one in errors, (one, errors)
            expected.append(one)
        else:
            expected += errors
    assert got == sorted(expected), (got, expected, plan["ops"])

    # What the CRM received is the first batch's values, less the fields expected to fail.
    created = [o for o in now if o["op"] == "create"]
    new = {i: f for i, f in after.items() if i not in before}
    made = [o for o in created if not _refused_whole(o)]
    assert len(new) == len(made) == report["created"], (new, made, report)
    for o in made:
        (rec,) = [f for f in new.values() if f["Email"] == o["values"]["Email"]]
        refused = {e["field"] for e in o.get("expected_errors", ())}
        for k, v in o["values"].items():
            assert rec.get(k) == (None if k in refused else v), (k, rec, o)
    updates = [o for o in now if o["op"] in ("update", "link") and o.get("values")]
    took = 0
    for o in updates:
        refused = {e["field"] for e in o.get("expected_errors", ())}
        rec = after[o["crm_id"]]
        for k, v in o["values"].items():
            want = before[o["crm_id"]].get(k) if k in refused else v
            assert rec.get(k) == want, (k, rec, o)
        took += bool(set(o["values"]) - refused)
    assert report["updated"] == took, (report, updates)
    # Records no op of the first batch names are untouched.
    named = {o.get("crm_id") for o in now}
    for i, fields in before.items():
        if i not in named:
            assert after[i] == fields, (i, fields, after[i])
    assert report["linked"] == sum(o["op"] == "link" for o in now) + sum(
        i["op"] == "link" and not i.get("again") for i in plan["inbound"]
    )
    assert report["waiting"] == plan["summary"]["waiting"]
    if not report["errors"]:
        assert report["facts_for_engine"] == plan["summary"]["inbound_facts"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=world)
def test_apply_does_what_the_plan_says(case: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _check(Path(tmp), case)
