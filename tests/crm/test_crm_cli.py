"""`mrules crm` end to end: load, export, apply-changes and describe through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "getcloudy" / "crm"
CHANGES = ROOT / "examples" / "getcloudy" / "crm-changes.jsonl"
EVENTS = ROOT / "examples" / "getcloudy" / "events.jsonl"
RULES = ROOT / "examples" / "getcloudy" / "rules"
DATA = Path(__file__).parent / "data"


def mrules(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "getcloudy.db"


def export(store: Path, *objects: str) -> list[dict]:
    args: list[str | Path] = ["crm", "export", "--store", store]
    for o in objects:
        args += ["--object", o]
    result = mrules(*args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def loaded(store: Path) -> None:
    result = mrules("crm", "load", SEED, "--store", store)
    assert result.exit_code == 0, result.output


def test_load_the_example(store: Path) -> None:
    result = mrules("crm", "load", SEED, "--store", store)
    assert result.exit_code == 0, result.output
    assert "loaded 3 User, 1 Group, 3 Account, 2 Campaign, 4 CampaignMemberStatus, 4 Contact" in (
        result.stdout
    )
    assert (store.parent / "getcloudy.crm.db").is_file()  # beside the store
    people = export(store, "Contact", "Lead")
    by_email = {(p["attributes"]["type"], p.get("Email")) for p in people}
    assert ("Contact", "bob@bigcorp.example") in by_email
    assert ("Lead", "henry@example.org") in by_email
    # identity by email will be visible: prospects of the example's events are in the CRM
    prospects = {
        json.loads(line).get("prospect", "").strip().lower()
        for line in EVENTS.read_text().splitlines()
    }
    crm_emails = {p.get("Email") for p in people}
    assert {"bob@bigcorp.example", "ivy@bigcorp.example", "carol@startup.example"} <= (
        prospects & crm_emails
    )
    assert "leung@example.com" not in crm_emails  # she will be created on assignment


def test_the_seed_links_records_by_label(store: Path) -> None:
    loaded(store)
    records = [r for r in export(store) if r["attributes"]["type"] != "CampaignMemberStatus"]
    ids = {r["Id"]: r for r in records}
    roles = [r for r in records if r["attributes"]["type"] == "OpportunityContactRole"]
    won = [
        ids[r["OpportunityId"]]
        for r in roles
        if ids[r["ContactId"]].get("Email") == "bob@bigcorp.example" and r["IsPrimary"]
    ]
    assert [(o["Name"], o["Amount"], o["IsWon"]) for o in won] == [
        ("BigCorp Cloud Migration", 48000.0, True)
    ]
    campaigns = {r["Name"]: r for r in records if r["attributes"]["type"] == "Campaign"}
    assert campaigns["Get Cloudy Consult 2026"]["ActualCost"] == 4200.0
    henry = next(r for r in records if r.get("Email") == "henry@example.org")
    queue = ids[henry["OwnerId"]]
    assert queue["attributes"]["type"] == "Group" and queue["Name"] == "Inside Sales"
    assert henry["CreatedDate"] == "2026-10-20T10:00:00.000+0000"
    assert henry["Company_Size__c"] == "51-200"
    for r in records:
        assert len(r["Id"]) == 18


def test_bad_rows_are_reported_and_the_rest_loads(store: Path) -> None:
    result = mrules("crm", "load", DATA / "bad", "--store", store)
    assert result.exit_code == 3
    err = result.stderr
    lead, contact, account = (
        str(DATA / "bad" / f) for f in ("Lead.csv", "Contact.jsonl", "Account.csv")
    )
    for expected in (
        f"{lead}:3: REQUIRED_FIELD_MISSING: Required fields are missing: [Company]",
        f"{lead}:4: more values than the header has columns",
        f"{lead}:5: INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        f"{contact}:2: not JSON",
        f"{contact}:3: a line holds one JSON object",
        f"{contact}:5: INVALID_EMAIL_ADDRESS",
        f"{contact}:6: MALFORMED_ID",
        f"{account}:3: not UTF-8 (invalid start byte at byte 1 of the line)",
        "Prospect.csv: no object named 'Prospect'",
    ):
        assert expected in err, (expected, err)
    # Salesforce's message names the missing fields; they were given a second time after it
    assert f"{lead}:3: REQUIRED_FIELD_MISSING: Required fields are missing: [Company]\n" in err
    assert "loaded" in result.stdout
    people = export(store, "Lead", "Contact")
    assert sorted(p["LastName"] for p in people) == ["Chan", "Moreau", "Stone"]


def test_standard_edition_refuses_custom_objects(store: Path) -> None:
    result = mrules("crm", "load", DATA / "standard", "--store", store)
    assert result.exit_code == 3
    assert "Invoice__c.jsonl:1: INVALID_TYPE" in result.stderr
    assert "custom objects are not available on the Standard edition" in result.stderr
    assert [r["Name"] for r in export(store, "Account")] == ["Acme"]
    described = mrules("crm", "describe", "Invoice__c", "--store", store)
    assert described.exit_code == 2 and "INVALID_TYPE" in described.stderr
    # the same files load on an edition that has custom objects
    other = store.with_name("plus.db")
    result = mrules("crm", "load", DATA / "standard", "--store", other, "--edition", "plus")
    assert result.exit_code == 0, result.output
    assert [r["Amount__c"] for r in export(other, "Invoice__c")] == [1200.0]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("how", ["changes", "sync"])
def test_export_loads_back_the_same(tmp_path: Path, store: Path, fmt: str, how: str) -> None:
    loaded(store)
    if how == "changes":
        mrules("crm", "apply-changes", CHANGES, "--store", store)
    else:  # a CRM the sync wrote into: the integration user's records, custom fields
        assert mrules("run", RULES, EVENTS, "--store", store).exit_code == 0
        result = mrules(
            "sync", "run", "--rules", RULES, "--store", store, "--changes", CHANGES,
            "--until", "2026-12-20T00:00:00Z",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    result = mrules("crm", "export", "--store", store, "--out", first, "--format", fmt)
    assert result.exit_code == 0, result.output
    copy = tmp_path / "copy.db"
    result = mrules("crm", "load", first, "--store", copy)  # the export's own org.json
    assert result.exit_code == 0, result.output
    mrules("crm", "export", "--store", copy, "--out", second, "--format", fmt)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert f"Lead.{fmt}" in names and f"CampaignMemberStatus.{fmt}" in names
    assert "org.json" in names
    for name in names:
        assert (first / name).read_text() == (second / name).read_text(), name
    if how == "sync":  # the sync's writes are still the integration user's
        users = {u["Username"]: u["Id"] for u in export(copy, "User")}
        people = export(copy, "Lead", "Contact")
        integration = users["integration@crm.local"]
        assert any(p["LastModifiedById"] == integration for p in people)
        assert any(p["CreatedById"] == integration for p in people)  # Leung's lead


def test_reloading_updates_instead_of_duplicating(store: Path) -> None:
    loaded(store)
    loaded(store)
    assert len(export(store, "Lead")) == 3


def test_changes_apply_on_the_clock_once(store: Path) -> None:
    loaded(store)
    result = mrules(
        "crm", "apply-changes", CHANGES, "--store", store, "--until", "2026-11-05T00:00:00Z"
    )
    assert result.exit_code == 0, result.output
    assert "3 applied, 0 refused, 0 applied before, 6 still to come" in result.stderr
    again = mrules(
        "crm", "apply-changes", CHANGES, "--store", store, "--until", "2026-11-05T00:00:00Z"
    )
    assert "0 applied, 0 refused, 3 applied before, 6 still to come" in again.stderr
    henry = next(r for r in export(store, "Lead") if r["Email"] == "henry@example.org")
    assert henry["IsConverted"] and henry["SystemModstamp"] == "2026-11-04T16:00:00.000+0000"
    bob = next(r for r in export(store, "Contact") if r.get("Email") == "bob@bigcorp.example")
    assert (bob["Phone"], bob["Title"]) == ("+33 1 40 00 00 99", "CIO")
    assert bob["LastModifiedDate"] == "2026-11-04T11:00:00.000+0000"
    rest = mrules("crm", "apply-changes", CHANGES, "--store", store)
    assert "6 applied, 0 refused, 3 applied before, 0 still to come" in rest.stderr
    opps = {o["Name"]: o for o in export(store, "Opportunity")}
    assert (
        opps["Example Org Cloud Pilot"]["StageName"],
        opps["Example Org Cloud Pilot"]["Amount"],
    ) == (
        "Closed Won",
        15000.0,
    )
    assert opps["BigCorp Security Review"]["StageName"] == "Closed Lost"
    assert opps["BigCorp Data Platform"]["Amount"] == 32000.0
    carol = next(r for r in export(store, "Contact") if r.get("Email") == "carol@startup.example")
    assert carol["IsDeleted"] is True
    members = [m for m in export(store, "CampaignMember") if m["ContactId"] == bob["Id"]]
    assert sorted(m["Status"] for m in members) == ["Attended", "Responded"]


def test_refused_and_unreadable_changes(store: Path) -> None:
    loaded(store)
    changes = DATA / "bad-changes.jsonl"
    result = mrules("crm", "apply-changes", changes, "--store", store)
    assert result.exit_code == 3
    err = result.stderr
    for expected in (
        f"{changes}:2: not JSON",
        f"{changes}:3: op 'teleport' is not one of",
        f"{changes}:4: at None is not a time",
        f"{changes}:5: refused: INVALID_CROSS_REFERENCE_KEY",
        f"{changes}:6: refused: STRING_TOO_LONG",
        f"{changes}:7: refused: MALFORMED_ID",
    ):
        assert expected in err, (expected, err)
    assert "1 applied, 3 refused" in err
    bob = next(r for r in export(store, "Contact") if r.get("Email") == "bob@bigcorp.example")
    assert bob["Title"] == "CIO"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["crm", "load", "no/such/folder"], 2, "no such file or folder"),
        (["crm", "load", "README.md"], 2, "ends in .jsonl or .csv"),
        (["crm", "export"], 2, "no such CRM file"),
        (["crm", "apply-changes", "nope.jsonl"], 2, "no such file"),
        (["crm", "describe", "Lead", "--crm", "x/y/z.crm.db"], 2, "does not exist"),
        (["crm", "apply-changes", "README.md", "--until", "tomorrow"], 2, "not a time"),
    ],
)
def test_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args, code, message) -> None:
    monkeypatch.chdir(ROOT)
    result = mrules(*args, "--store", str(tmp_path / "s.db"))
    assert result.exit_code == code, result.output
    assert message in result.stderr


def test_bad_org_file(tmp_path: Path, store: Path) -> None:
    (tmp_path / "org.json").write_text('{"edition": "platinum"}')
    result = mrules("crm", "load", tmp_path / "org.json", "--store", store)
    assert result.exit_code == 2 and "edition 'platinum'" in result.stderr
    (tmp_path / "org.json").write_text("{nope")
    result = mrules("crm", "load", tmp_path / "org.json", "--store", store)
    assert result.exit_code == 2 and "org.json:1: the org file is not JSON" in result.stderr


def test_not_a_crm_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.crm.db"
    junk.write_bytes(b"garbage" * 1000)
    result = mrules("crm", "export", "--crm", junk)
    assert result.exit_code == 4 and "junk.crm.db" in result.stderr


def test_describe(store: Path) -> None:
    loaded(store)
    result = mrules("crm", "describe", "Lead", "--store", store)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    fields = {f["name"]: f for f in body["fields"]}
    assert body["keyPrefix"] == "00Q"
    assert body["createable"] is True  # the local CRM's integration user may create all
    assert fields["Company_Size__c"]["picklistValues"] == ["1-10", "11-50", "51-200", "200+"]
    assert fields["LastName"]["required"] and not fields["IsConverted"]["createable"]


def test_a_failing_crm_file(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fails mid-load ends in one line and exit 4, not a traceback."""
    import sqlite3

    from mrules.crm.emulator import EmulatedCrm

    def full(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(EmulatedCrm, "load_rows", full)
    result = mrules("crm", "load", SEED, "--store", store)
    assert result.exit_code == 4
    assert "the CRM file failed: database or disk is full" in result.stderr


def test_an_earlier_until_counts_the_changes_applied_before(store: Path) -> None:
    """`applied before` is what an earlier run did, whatever its time: after all 9
    changes were applied, an earlier `--until` said `0 applied before, 9 still to come`."""
    loaded(store)
    done = mrules("crm", "apply-changes", CHANGES, "--store", store)
    assert "9 applied, 0 refused, 0 applied before, 0 still to come" in done.stderr
    early = mrules(
        "crm", "apply-changes", CHANGES, "--store", store, "--until", "2026-11-03T00:00:00Z"
    )
    assert early.exit_code == 0, early.output
    assert "0 applied, 0 refused, 9 applied before, 0 still to come" in early.stderr
