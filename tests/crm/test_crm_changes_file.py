"""How `mrules crm apply-changes` reads a changes file: comments, blank lines, lines that
are not changes, and which lines a later run counts as applied before."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"
TITLE = {"at": "2026-11-03T10:00:00Z", "op": "update", "email": "bob@bigcorp.example"}


def mrules(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def loaded(tmp_path: Path) -> Path:
    store = tmp_path / "g.db"
    assert mrules("crm", "load", SEED, "--store", store).exit_code == 0
    return store


def apply_lines(
    tmp_path: Path, store: Path, lines: list[dict], *options: str
) -> tuple[Path, Result, list[str]]:
    """The changes file written from `lines`, `crm apply-changes` on it (exit 3 asked:
    each of these files has a line refused), and the lines of standard error it says of
    the file."""
    changes = tmp_path / "ch.jsonl"
    changes.write_text("".join(json.dumps(x) + "\n" for x in lines), "utf-8")
    result = mrules("crm", "apply-changes", changes, "--store", store, *options)
    assert result.exit_code == 3, result.output
    said = [line for line in result.stderr.splitlines() if line.startswith(f"{changes}:")]
    return changes, result, said


def bob_title(store: Path) -> str:
    result = mrules("crm", "export", "--store", store, "--object", "Contact")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return next(r for r in rows if r.get("Email") == "bob@bigcorp.example")["Title"]


def test_comments_and_blank_lines_are_skipped_and_a_line_not_an_object_is_said(
    tmp_path: Path,
) -> None:
    store = loaded(tmp_path)
    changes = tmp_path / "ch.jsonl"
    changes.write_text(
        "# sales' changes for the week\n"
        "\n"
        "   \n"
        '  # {"at": "2026-11-03T09:00:00Z", "op": "update"} an indented comment\n'
        "[1, 2]\n"
        '{"at": "2026-11-03T10:00:00Z", "op": "teleport"}\n'
        '{"at": "2026-11-03T10:00:00Z", "type": "delete", "op": null}\n'
        f"{json.dumps({**TITLE, 'fields': {'Title': 'CTO'}})}\n",
        "utf-8",
    )
    result = mrules("crm", "apply-changes", changes, "--store", store)
    assert result.exit_code == 3, result.output  # one line is not a change
    said = [line for line in result.stderr.splitlines() if line.startswith(f"{changes}:")]
    ops = "add_member, convert, create, delete, lose, merge, opportunity, owner, undelete,"
    ops += " update, win"  # sorted: the same message from run to run (a set has no order)
    assert said == [
        f"{changes}:5: a line holds one JSON object",
        f"{changes}:6: op 'teleport' is not one of {ops}",
        # an "op" given, null: not taken for a line of events for its "type"
        f'{changes}:7: no "op": a change has "op", one of {ops}',
    ]
    assert "1 applied, 0 refused" in result.stderr
    assert bob_title(store) == "CTO"  # the line after the one not an object applied


def test_a_change_written_again_with_its_keys_in_another_order_was_applied_before(
    tmp_path: Path,
) -> None:
    store = loaded(tmp_path)
    change = {**TITLE, "fields": {"Title": "CTO", "Phone": "+33 1 40 00 00 98"}}
    changes = tmp_path / "ch.jsonl"
    changes.write_text(json.dumps(change) + "\n", "utf-8")
    first = mrules("crm", "apply-changes", changes, "--store", store)
    assert "1 applied, 0 refused, 0 applied before" in first.stderr, first.output
    # the file reformatted: the same change, its keys (and its fields') in reverse order
    backwards = {k: change[k] for k in reversed(change)}
    backwards["fields"] = dict(reversed(change["fields"].items()))
    assert json.dumps(backwards) != json.dumps(change)
    changes.write_text(json.dumps(backwards) + "\n", "utf-8")
    again = mrules("crm", "apply-changes", changes, "--store", store)
    assert "0 applied, 0 refused, 1 applied before" in again.stderr, again.output


def test_the_same_change_on_two_lines_is_two_changes(tmp_path: Path) -> None:
    store = loaded(tmp_path)
    line = json.dumps({**TITLE, "fields": {"Title": "CTO"}})
    changes = tmp_path / "ch.jsonl"
    changes.write_text(line + "\n", "utf-8")
    assert "1 applied" in mrules("crm", "apply-changes", changes, "--store", store).stderr
    # a second copy of the line appended: it is a change of its own, applied now
    changes.write_text(line + "\n" + line + "\n", "utf-8")
    again = mrules("crm", "apply-changes", changes, "--store", store)
    assert "1 applied, 0 refused, 1 applied before" in again.stderr, again.output


def test_converts_with_and_without_an_opportunity_and_a_change_at_until(tmp_path: Path) -> None:
    store = loaded(tmp_path)
    at = "2026-11-03T{}:00:00Z".format
    lines = [
        # no opportunity: the label given for one names nothing (line 6 finds no 'opp-x')
        {"at": at(10), "op": "convert", "email": "henry@example.org", "opportunity": False,
         "opportunity_label": "opp-x", "contact_label": "c-henry", "owner": "sam@getcloudy.com"},
        {"at": at(11), "op": "create", "object": "Lead", "label": "lead-z",
         "fields": {"LastName": "Z", "Company": "Zed", "Email": "z@zed.example"}},
        # no "opportunity" key: Salesforce's default, an opportunity is made
        {"at": at(12), "op": "convert", "id": "lead-z", "opportunity_label": "opp-z"},
        {"at": at(13), "op": "win", "id": "opp-z"},
        {"at": at(14), "op": "opportunity", "contact": "c-henry", "name": "Henry Renewal"},
        {"at": at(15), "op": "win", "id": "opp-x"},  # at --until: due, so tried
    ]  # fmt: skip
    changes, result, refused = apply_lines(tmp_path, store, lines, "--until", at(15))
    assert result.stdout.splitlines() == [
        f"{changes}:1: {at(10)} lead 00Q5e0000000001EAA converted to contact 0035e0000000005AAA",
        f"{changes}:2: {at(11)} created Lead 00Q5e0000000004EAA",
        f"{changes}:3: {at(12)} lead 00Q5e0000000004EAA converted to contact 0035e0000000006AAA",
        f"{changes}:4: {at(13)} opportunity 0065e0000000004AAA Closed Won",
        f"{changes}:5: {at(14)} opportunity 0065e0000000005AAA for contact 0035e0000000005AAA",
    ]
    assert refused == [
        f"{changes}:6: refused: INVALID_CROSS_REFERENCE_KEY: no record or label 'opp-x'"
    ]
    assert "5 applied, 1 refused, 0 applied before, 0 still to come" in result.stderr
    export = mrules("crm", "export", "--store", store, "--object", "OpportunityContactRole")
    roles = {r["OpportunityId"]: r for r in map(json.loads, export.stdout.splitlines())}
    # the opportunity a change makes has its contact as the primary contact role
    assert roles["0065e0000000005AAA"]["ContactId"] == "0035e0000000005AAA"
    assert roles["0065e0000000005AAA"]["IsPrimary"] is True


def test_merge_undelete_and_ids_as_a_changes_file_gives_them(tmp_path: Path) -> None:
    store = loaded(tmp_path)
    at = "2026-11-03T{}:00:00Z".format
    ivy, henry, otto = "00Q5e0000000002EAA", "00Q5e0000000001EAA", "00Q5e0000000003EAA"
    lines = [
        {"at": at(10), "op": "merge", "master": ivy, "losers": ["lead-henry"]},  # a label
        {"at": at(11), "op": "merge", "master": ivy, "losers": []},
        {"at": at(11), "op": "merge", "master": ivy, "losers": "lead-henry"},  # not a list
        {"at": at(12), "op": "undelete", "id": henry[:15]},  # a 15-character id
        {"at": at(13), "op": "create", "object": 5, "fields": {}},
        {"at": at(14), "op": "delete", "id": "00Q5e0000000009EAA"},  # an id of no record
        {"at": at(15), "op": "delete", "id": otto[:15]},
    ]
    changes, result, refused = apply_lines(tmp_path, store, lines)
    assert result.stdout.splitlines() == [
        f"{changes}:1: {at(10)} {henry} merged into {ivy}",
        f"{changes}:4: {at(12)} {henry} undeleted",
        f"{changes}:7: {at(15)} Lead {otto} deleted",
    ]
    assert refused == [
        f"{changes}:2: refused: MISSING_ARGUMENT: the change needs 'losers': ids or labels",
        f"{changes}:3: refused: MISSING_ARGUMENT: the change needs 'losers': ids or labels",
        f"{changes}:5: refused: INVALID_TYPE: 'object' must be a text, not 5",
        f"{changes}:6: refused: INVALID_CROSS_REFERENCE_KEY: no record '00Q5e0000000009EAA'",
    ]
    export = mrules("crm", "export", "--store", store, "--object", "Lead")
    leads = {r["Id"]: r for r in map(json.loads, export.stdout.splitlines())}
    assert (leads[henry]["IsDeleted"], leads[henry]["MasterRecordId"]) == (False, ivy)
    assert (leads[otto]["IsDeleted"], leads[ivy]["IsDeleted"]) == (True, False)


def test_a_change_by_email_finds_the_live_contact_else_the_live_unconverted_lead(
    tmp_path: Path,
) -> None:
    store = loaded(tmp_path)
    at = "2026-11-03T{}Z".format
    henry, carol, bob = "henry@example.org", "carol@startup.example", "0035e0000000001AAA"
    lines = [
        {"at": at("10:00:00"), "op": "convert", "email": henry, "owner": "sam@getcloudy.com"},
        # converted: the lead is no longer found by its email, its contact is
        {"at": at("11:00:00"), "op": "update", "email": henry, "object": "Lead", "fields": {}},
        {"at": at("11:30:00"), "op": "update", "email": henry, "fields": {"Title": "CEO"}},
        {"at": at("12:00:00"), "op": "update", "email": "nobody@nowhere.example", "fields": {}},
        {"at": at("13:00:00"), "op": "delete", "email": carol},
        {"at": at("14:00:00"), "op": "update", "email": carol, "object": "Contact", "fields": {}},
        {"at": at("15:00:00"), "op": "update", "id": "contact-bob", "object": "Contact",
         "fields": {"Title": "CFO"}},
        {"at": at("16:00:00"), "op": "update", "id": "contact-bob", "object": "Lead", "fields": {}},
    ]  # fmt: skip
    changes, result, refused = apply_lines(tmp_path, store, lines)
    assert result.stdout.splitlines() == [
        f"{changes}:1: {at('10:00:00')} lead 00Q5e0000000001EAA converted to contact"
        " 0035e0000000005AAA",
        f"{changes}:3: {at('11:30:00')} updated Contact 0035e0000000005AAA",
        f"{changes}:5: {at('13:00:00')} Contact 0035e0000000003AAA deleted",
        f"{changes}:7: {at('15:00:00')} updated Contact {bob}",
    ]
    assert refused == [
        f"{changes}:2: refused: INVALID_CROSS_REFERENCE_KEY: no live Lead '{henry}'",
        f"{changes}:4: refused: INVALID_CROSS_REFERENCE_KEY: no live contact or lead"
        " 'nobody@nowhere.example'",
        f"{changes}:6: refused: INVALID_CROSS_REFERENCE_KEY: no live Contact '{carol}'",
        f"{changes}:8: refused: MALFORMED_ID: Lead ID: id value of incorrect type: {bob}",
    ]


def test_owners_and_references_by_name_label_or_username(tmp_path: Path) -> None:
    store = loaded(tmp_path)
    at = "2026-11-03T{}:00:00Z".format
    lines = [
        {"at": at(10), "op": "owner", "email": "ivy.moreau@bigcorp.example",
         "owner": "Inside Sales"},  # a queue, by its name
        {"at": at(11), "op": "create", "object": "Contact",
         "fields": {"LastName": "Roe", "AccountId": "acc-bigcorp",  # a label
                    "OwnerId": "leung@getcloudy.com"}},  # a user, by username
        {"at": at(12), "op": "create", "object": "Contact",
         "fields": {"LastName": "Poe", "OwnerId": "nobody-at-all"}},
        # only an owner is looked for among users: an account is not one
        {"at": at(13), "op": "create", "object": "Contact",
         "fields": {"LastName": "Doe", "AccountId": "sam@getcloudy.com"}},
        {"at": at(14), "op": "owner", "id": "lead-henry", "owner": "sam"},  # a user's label
        # a text field holding a label stays text
        {"at": at(15), "op": "create", "object": "Contact",
         "fields": {"LastName": "acc-bigcorp", "Title": "lead-henry"}},
    ]  # fmt: skip
    changes, result, refused = apply_lines(tmp_path, store, lines)
    queue = "00G5e0000000001EAA"  # the seed's Group queue-inside-sales
    assert result.stdout.splitlines() == [
        f"{changes}:1: {at(10)} Lead 00Q5e0000000002EAA now owned by {queue}",
        f"{changes}:2: {at(11)} created Contact 0035e0000000005AAA",
        f"{changes}:5: {at(14)} Lead 00Q5e0000000001EAA now owned by 0055e0000000005AAA",
        f"{changes}:6: {at(15)} created Contact 0035e0000000006AAA",
    ]
    assert refused == [
        f"{changes}:3: refused: MALFORMED_ID: Owner ID: id value of incorrect type:"
        " nobody-at-all [OwnerId]",
        f"{changes}:4: refused: MALFORMED_ID: Account ID: id value of incorrect type:"
        " sam@getcloudy.com [AccountId]",
    ]
    export = mrules("crm", "export", "--store", store, "--object", "Contact")
    contacts = {r["LastName"]: r for r in map(json.loads, export.stdout.splitlines())}
    assert contacts["acc-bigcorp"]["Title"] == "lead-henry"
    roe = contacts["Roe"]
    # BigCorp's account and leung@getcloudy.com's user, as ids
    assert (roe["AccountId"], roe["OwnerId"]) == ("0015e0000000001AAA", "0055e0000000004AAA")
