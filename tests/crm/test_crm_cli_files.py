"""`mrules crm` on files that are not a CRM, bad org files, and exports of a synced CRM.

Each test runs the commands as a user would (through the CLI) and checks the exit
code, the message and that nothing was written where it must not be.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getcloudy"
SEED = EXAMPLE / "crm"
RULES = EXAMPLE / "rules"
EVENTS = EXAMPLE / "events.jsonl"
CHANGES = EXAMPLE / "crm-changes.jsonl"
UNTIL = "2026-12-20T00:00:00Z"


def mrules(*args: str | Path) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    return result


def ok(*args: str | Path) -> Result:
    result = mrules(*args)
    assert result.exit_code == 0, result.output
    return result


def fingerprint(path: Path) -> tuple[str, list[str]]:
    """The file's bytes (hashed) and its tables: what a command must leave alone."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))
    finally:
        conn.close()
    return digest, tables


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store after a run and a sync: its CRM (gc.crm.db) and sync file (gc.sync.db)."""
    store = tmp_path_factory.mktemp("synced") / "gc.db"
    ok("crm", "load", SEED, "--store", store)
    ok("run", RULES, EVENTS, "--store", store)
    ok("sync", "run", "--rules", RULES, "--store", store, "--until", UNTIL)
    return store


def commands(target: Path) -> list[list[str | Path]]:
    """Every `crm` command (and the sync's plan) on `target` as the CRM."""
    return [
        ["crm", "export", "--crm", target],
        ["crm", "describe", "Lead", "--crm", target],
        ["crm", "load", SEED, "--crm", target],
        ["crm", "apply-changes", CHANGES, "--crm", target],
    ]


# -- 1: the store, the sync file, another database given as the CRM ----------------------------


@pytest.mark.parametrize("which", range(4))
def test_the_store_given_as_the_crm_is_refused_untouched(synced: Path, which: int) -> None:
    before = fingerprint(synced)
    result = mrules(*commands(synced)[which])
    assert result.exit_code == 4, result.output
    assert f"{synced}: this is the mrules state store, not a CRM file" in result.stderr
    assert "gc.crm.db" in result.stderr  # what to give instead
    assert fingerprint(synced) == before


@pytest.mark.parametrize("which", range(4))
def test_the_sync_file_given_as_the_crm_is_refused_untouched(synced: Path, which: int) -> None:
    sync_file = synced.with_name("gc.sync.db")
    before = fingerprint(sync_file)
    result = mrules(*commands(sync_file)[which])
    assert result.exit_code == 4, result.output
    assert f"{sync_file}: this is an mrules sync file, not a CRM file" in result.stderr
    assert "--crm (gc.crm.db beside it)" in result.stderr
    assert fingerprint(sync_file) == before


def test_sync_plan_refuses_the_store_as_its_crm(synced: Path, tmp_path: Path) -> None:
    before = fingerprint(synced)
    result = mrules(
        "sync", "plan", "--rules", RULES, "--store", synced, "--crm", synced,
        "--out", tmp_path / "p.json",
    )  # fmt: skip
    assert result.exit_code == 4, result.output
    assert "this is the mrules state store, not a CRM file" in result.stderr
    assert fingerprint(synced) == before


@pytest.mark.parametrize("which", range(4))
def test_another_sqlite_database_is_refused_untouched(tmp_path: Path, which: int) -> None:
    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")  # a meta table, not ours
    conn.execute("INSERT INTO meta VALUES ('owner', 'another app')")
    conn.commit()
    conn.close()
    before = fingerprint(other)
    result = mrules(*commands(other)[which])
    assert result.exit_code == 4, result.output
    assert "a SQLite database, not an mrules CRM file" in result.stderr
    assert fingerprint(other) == before


def test_the_store_mark_is_the_stores() -> None:
    from mrules import store
    from mrules.crm import emulator

    assert emulator._STORE_APPLICATION_ID == store.APPLICATION_ID


# -- 2: an empty file ------------------------------------------------------------------------


@pytest.mark.parametrize("which", range(4))
def test_an_empty_file_is_not_taken_for_a_crm(tmp_path: Path, which: int) -> None:
    empty = tmp_path / "e.db"
    empty.touch()
    result = mrules(*commands(empty)[which])
    assert result.exit_code == 4, result.output
    assert f"{empty}: an empty file (0 bytes), not an mrules CRM file" in result.stderr
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.db"]  # no -wal, no -shm


def test_load_still_creates_a_crm_where_no_file_is(tmp_path: Path) -> None:
    crm = tmp_path / "new.crm.db"
    ok("crm", "load", SEED, "--crm", crm)
    assert len(ok("crm", "export", "--crm", crm).stdout.splitlines()) > 10


# -- 3: bad org files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("org", "message"),
    [
        ({"api_daily_limit": "x"}, "api_daily_limit: must be a whole number of API calls a day"),
        ({"api_daily_limit": -1}, "api_daily_limit: must be a whole number"),
        ({"api_daily_limit": 1.5}, "api_daily_limit: must be a whole number"),
        ({"clock": 12}, "clock: must be a time with a zone"),
        ({"clock": "2026-11-01T08:00:00"}, "clock: must be a time with a zone"),
        ({"edition": 3}, "edition 3 is not one of"),
        (
            {"custom_fields": {"Lead": {"Size__c": {"type": "picklist", "values": "abc"}}}},
            "custom_fields.Lead.Size__c.values: must be a list of one or more picklist values",
        ),
        (
            {"custom_fields": {"Lead": {"Size__c": {"type": "string", "length": -5}}}},
            "custom_fields.Lead.Size__c.length: must be a whole number from 1 to 255",
        ),
        (
            {"custom_fields": {"Lead": {"Size__c": {"type": "string", "required": "yes"}}}},
            "custom_fields.Lead.Size__c.required: must be true or false",
        ),
        (
            {"custom_fields": {"Lead": {"Acct__c": {"type": "reference"}}}},
            "custom_fields.Lead.Acct__c.reference_to: must be a list",
        ),
        (
            {"custom_fields": {"Lead": {"Acct__c": {"type": "reference", "reference_to": ["X"]}}}},
            "custom_fields.Lead.Acct__c.reference_to: 'X' is not an object of the org",
        ),
        ({"custom_fields": {"Lead": "Size__c"}}, "custom_fields.Lead: must be an object"),
        (
            {"custom_objects": {"Invoice__c": {"key_prefix": 1}}},
            "custom_objects.Invoice__c.key_prefix: must be a free 3-character prefix",
        ),
        ({"duplicate_rules": {"object": "Lead"}}, "duplicate_rules: must be a list of rules"),
        (
            {"duplicate_rules": [{"object": "Account"}]},
            "duplicate_rules[0].fields: Account has no field 'Email'",
        ),
        ({"api_daily_limt": 5}, "api_daily_limt: not an org file key"),
        (
            {"custom_fields": {"Lead": {"S" * 41 + "__c": "string"}}},
            f"custom_fields.Lead.{'S' * 41}__c: 41 characters before its __c; a custom"
            " field's API name has at most 40 characters before its __c, after a package's"
            " namespace prefix of at most 15 if any (e.g. pi__Score__c)",
        ),
        (
            {"custom_objects": {"pi__" + "I" * 41 + "__c": {"key_prefix": "a05"}}},
            f"custom_objects.pi__{'I' * 41}__c: 41 characters before its __c; a custom"
            " object's API name has at most 40",
        ),
        (
            {"custom_fields": {"Lead": {"Size\nBig__c": "string"}}},
            "custom_fields.Lead.Size\\x0aBig__c: a custom field's API name is letters,",
        ),
        # a key refused is named on the message's one line, and not 10 MB long
        ({"custom_fields": {"Le\nad": {}}}, "custom_fields.Le\\x0aad: not a standard object"),
        ({"a\npi": 1}, "a\\x0api: not an org file key"),
        ({"x" * 10_000: 1}, "x" * 57 + "...: not an org file key"),
        (
            {"custom_objects": {"Inv__c": {"key_prefix": "a05", "fie\nlds": {}}}},
            "custom_objects.Inv__c.fie\\x0alds: not a key here",
        ),
        ({"edition": "x" * 10_000}, f"edition '{'x' * 57}...' is not one of"),
        (
            {
                "custom_fields": {
                    "Lead": {"A__c": {"type": "reference", "reference_to": ["X" * 10_000]}}
                }
            },
            f"custom_fields.Lead.A__c.reference_to: '{'X' * 57}...' is not an object of the org",
        ),
        (
            {"duplicate_rules": [{"object": "Lead", "match_objects": ["Y" * 10_000]}]},
            f"duplicate_rules[0].match_objects: '{'Y' * 57}...' is not an object of the org",
        ),
        (
            {"duplicate_rules": [{"object": "Lead", "fields": ["Z" * 10_000]}]},
            f"duplicate_rules[0].fields: Lead has no field '{'Z' * 57}...'",
        ),
    ],
)
def test_a_bad_org_file_stops_the_load_and_names_the_key(
    tmp_path: Path, org: dict, message: str
) -> None:
    store = tmp_path / "y.db"
    ok("crm", "load", SEED, "--store", store)
    crm = tmp_path / "y.crm.db"
    saved = fingerprint(crm)
    folder = tmp_path / "o1"
    folder.mkdir()
    (folder / "org.json").write_text(json.dumps(org))
    result = mrules("crm", "load", folder, "--store", store)
    assert result.exit_code == 2, result.output
    assert f"{folder / 'org.json'}: {message}" in result.stderr
    assert fingerprint(crm) == saved  # nothing saved
    # nor on a new CRM: no file is made
    result = mrules("crm", "load", folder, "--crm", tmp_path / "z.crm.db")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "z.crm.db").exists()


def test_a_custom_field_name_of_10_mb_is_refused_for_its_length_in_little_memory(
    tmp_path: Path,
) -> None:
    """Salesforce takes 40 characters before `__c` (and a prefix of 15): a longer name is
    refused by its length, in one short line. The pattern read it first, and kept about
    60 bytes a character: 650 MB for this one, which it then took."""
    from conftest import peak_bytes

    name = "Size_" * 2_000_000 + "_c"
    folder = tmp_path / "o1"
    folder.mkdir()
    (folder / "org.json").write_text(json.dumps({"custom_fields": {"Lead": {name: "string"}}}))
    crm = tmp_path / "y.crm.db"
    results = []
    peak = peak_bytes(lambda: results.append(mrules("crm", "load", folder, "--crm", crm)))
    [result] = results
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"mrules: error: {folder / 'org.json'}: custom_fields.Lead.{name[:57]}...: 10,000,002"
        " characters; a custom field's API name has at most 40 characters before its __c,"
        " after a package's namespace prefix of at most 15 if any (e.g. pi__Score__c)\n"
    )
    assert not crm.exists()
    # the file, its text and the parsed name: a few copies, not 60 bytes a character
    assert peak <= 8 * len(name), peak


def test_after_a_refused_org_file_the_sync_still_plans(tmp_path: Path) -> None:
    store = tmp_path / "y.db"
    ok("crm", "load", SEED, "--store", store)
    folder = tmp_path / "o1"
    folder.mkdir()
    (folder / "org.json").write_text('{"api_daily_limit":"x"}')
    assert mrules("crm", "load", folder, "--store", store).exit_code == 2
    ok("run", RULES, EVENTS, "--store", store)
    result = mrules("sync", "plan", "--rules", RULES, "--store", store)
    assert result.exit_code in (0, 2), result.output  # no internal error (70)
    assert "sync plan" in result.stdout


# -- 4: export -> load -> export of a CRM the sync wrote into -----------------------------------


def export_of(crm: Path, sobject: str) -> list[dict]:
    result = ok("crm", "export", "--crm", crm, "--object", sobject)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_a_merged_crm_exports_and_loads_back_the_same(tmp_path: Path) -> None:
    crm = tmp_path / "m.crm.db"
    ok("crm", "load", SEED, "--crm", crm)
    contacts = {c["Email"]: c["Id"] for c in export_of(crm, "Contact")}
    merge = {
        "at": "2026-11-10T00:00:00Z",
        "op": "merge",
        "master": contacts["bob@bigcorp.example"],
        "losers": [contacts["ivy@bigcorp.example"]],
    }
    (tmp_path / "m.jsonl").write_text(json.dumps(merge) + "\n")
    ok("crm", "apply-changes", tmp_path / "m.jsonl", "--crm", crm)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    ok("crm", "export", "--crm", crm, "--out", first)
    ok("crm", "load", first, "--crm", tmp_path / "copy.crm.db")
    ok("crm", "load", first, "--crm", tmp_path / "copy.crm.db")  # a reload changes nothing
    ok("crm", "export", "--crm", tmp_path / "copy.crm.db", "--out", second)
    for p in first.iterdir():
        assert p.read_text() == (second / p.name).read_text(), p.name
    ivy = next(
        c for c in export_of(tmp_path / "copy.crm.db", "Contact") if c["Id"] == merge["losers"][0]
    )
    assert ivy["MasterRecordId"] == merge["master"] and ivy["IsDeleted"]


def test_a_load_keeps_the_users_it_is_given(tmp_path: Path) -> None:
    crm = tmp_path / "u.crm.db"
    ok("crm", "load", SEED, "--crm", crm)
    folder = tmp_path / "more"
    folder.mkdir()
    rows = [
        {"Id": "lead-by-alan", "LastName": "A", "Company": "X", "CreatedById": "alan"},
        {"Id": "lead-by-nobody", "LastName": "B", "Company": "X", "CreatedById": "005000000000001"},
    ]
    (folder / "Lead.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ok("crm", "load", folder, "--crm", crm)
    users = {u["Username"]: u["Id"] for u in export_of(crm, "User")}
    leads = {lead["LastName"]: lead for lead in export_of(crm, "Lead")}
    alan = users["alan@getcloudy.com"]
    assert (leads["A"]["CreatedById"], leads["A"]["LastModifiedById"]) == (alan, alan)
    # a user the CRM does not have: the loading (admin) user, as before
    assert leads["B"]["CreatedById"] == users["admin@crm.local"]


# -- 5: a changes file that is not UTF-8 ----------------------------------------------------


def test_a_changes_file_not_utf8_says_the_line(tmp_path: Path) -> None:
    crm = tmp_path / "c.crm.db"
    ok("crm", "load", SEED, "--crm", crm)
    changes = tmp_path / "bad.jsonl"
    good = '{"at": "2026-11-02T00:00:00Z", "op": "update", "id": "contact-bob", "fields": {}}\n'
    changes.write_bytes(good.encode() + b"# a comment\n" + b'{"at": "caf\xe9"}\n')
    result = mrules("crm", "apply-changes", changes, "--crm", crm)
    assert result.exit_code == 3, result.output
    assert f"{changes}:3: not UTF-8 (invalid continuation byte at byte 12 of the line)" in (
        result.stderr
    )
    assert f"{changes}:0:" not in result.stderr
