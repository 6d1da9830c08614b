"""What a new user meets following docs/crm.md with wrong inputs: each mistake gets a
message that says what was given and what to give (CLI, on the bundled example)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getcloudy"


def _cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    r = _cli("crm", "load", str(EXAMPLE / "crm"), "--store", "g.db")
    assert r.exit_code == 0, r.output
    return tmp_path


def test_an_events_file_given_as_changes_is_said_to_be_one(seeded: Path) -> None:
    """`crm apply-changes events.jsonl` said `op None is not one of ...` for each line."""
    events = str(EXAMPLE / "events.jsonl")
    r = _cli("crm", "apply-changes", events, "--store", "g.db")
    assert r.exit_code == 3, r.output
    out = r.output
    assert "op None" not in out
    assert (
        f'{events}:1: a line of events (it has "type"), not a CRM change: a change has "op"'
        " (one of add_member, convert, create, delete, lose, merge, opportunity, owner,"
        ' undelete, update, win) and "at"; events go to `mrules run`'
    ) in out
    (seeded / "noop.jsonl").write_text('{"at": "2026-11-03T10:00:00Z"}\n', "utf-8")
    r = _cli("crm", "apply-changes", "noop.jsonl", "--store", "g.db")
    assert r.exit_code == 3
    assert 'noop.jsonl:1: no "op": a change has "op", one of add_member,' in r.output


def test_sync_run_with_an_events_file_as_changes_says_so_once(seeded: Path) -> None:
    rules = str(EXAMPLE / "rules")
    events = str(EXAMPLE / "events.jsonl")
    assert _cli("run", rules, events, "--store", "g.db").exit_code == 0
    r = _cli(
        "sync", "run", "--rules", rules, "--store", "g.db", "--changes", events,
        "--until", "2026-12-21T00:00:00Z",
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    last = r.output.strip().splitlines()[-1]
    assert last.startswith(f'mrules: error: {events}:1: a line of events (it has "type")')
    assert last.endswith("(and 27 more lines above); nothing was run")
    assert not (seeded / "g.sync.db").exists()


def test_export_format_csv_without_out_is_refused(seeded: Path) -> None:
    """`crm export --format csv` printed JSON Lines: the format is the files' of --out."""
    r = _cli("crm", "export", "--store", "g.db", "--format", "csv")
    assert r.exit_code == 2, r.output
    assert r.output == (
        "mrules: error: --format csv is the format of the files --out writes: give --out"
        " FOLDER (standard output is always JSONL)\n"
    )
    r = _cli("crm", "export", "--store", "g.db", "--format", "jsonl", "--object", "Lead")
    assert r.exit_code == 0 and r.output.startswith('{"attributes": {"type": "Lead"}')


def test_a_file_of_no_object_is_counted_as_a_file_not_a_row(seeded: Path) -> None:
    """`crm load events.jsonl` said `1 row refused` for a file of 28 rows not loaded."""
    events = str(EXAMPLE / "events.jsonl")
    r = _cli("crm", "load", events, "--store", "g.db")
    assert r.exit_code == 3, r.output
    assert r.stderr == (
        f"{events}: no object named 'events': a file is named after its object (Lead.jsonl,"
        " Contact.csv), or after a custom object org.json declares; none of its rows is"
        " loaded\n1 file not loaded; the others loaded\n"
    )
    (seeded / "Lead.jsonl").write_text('{"LastName": "X"}\n', "utf-8")  # no Company
    r = _cli("crm", "load", events, "Lead.jsonl", "--store", "g.db")
    assert r.exit_code == 3
    assert r.stderr.endswith("\n1 row refused, 1 file not loaded; the others loaded\n")


def test_apply_changes_says_each_change_at_a_utc_time_with_z(seeded: Path) -> None:
    """Its lines said `2026-11-03T10:00:00+00:00`, where the changes file, the plans and
    `sync run` write `2026-11-03T10:00:00Z`."""
    changes = str(EXAMPLE / "crm-changes.jsonl")
    r = _cli(
        "crm", "apply-changes", changes, "--store", "g.db", "--until", "2026-11-05T00:00:00Z"
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        f"{changes}:1: 2026-11-03T10:00:00Z Lead 00Q5e0000000001EAA now owned by"
        " 0055e0000000005AAA",
        f"{changes}:2: 2026-11-04T11:00:00Z updated Contact 0035e0000000001AAA",
        f"{changes}:3: 2026-11-04T16:00:00Z lead 00Q5e0000000001EAA converted to contact"
        " 0035e0000000005AAA",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("load", str(EXAMPLE / "crm")),
        ("export",),
        ("apply-changes", str(EXAMPLE / "crm-changes.jsonl")),
    ],
)
def test_crm_salesforce_is_refused_by_the_local_commands(
    seeded: Path, args: tuple[str, ...]
) -> None:
    """`crm load --crm salesforce` made a local CRM file named `salesforce` in the working
    folder; `crm export --crm salesforce` said `salesforce: no such CRM file`."""
    r = _cli("crm", *args, "--crm", "salesforce", "--store", "g.db")
    assert r.exit_code == 2, r.output
    assert r.output == (
        f"mrules: error: --crm salesforce: `mrules crm {args[0]}` works on a local CRM file"
        " (of the crm commands, only `crm describe` reads a real org; the sync commands"
        " write to one); give a local CRM file, or ./salesforce for a file of that name\n"
    )
    assert not (seeded / "salesforce").exists()


def test_crm_local_is_the_file_beside_the_store_as_for_the_sync(seeded: Path) -> None:
    r = _cli("crm", "export", "--crm", "local", "--store", "g.db", "--object", "Account")
    assert r.exit_code == 0, r.output
    assert r.output.count('"type": "Account"') == 3
    assert not (seeded / "local").exists()


def test_load_of_a_folder_with_nothing_to_load_says_why(seeded: Path) -> None:
    """`crm load RULES_FOLDER` said only `loaded nothing into g.crm.db`, exit 0."""
    rules = str(EXAMPLE / "rules")
    r = _cli("crm", "load", rules, "--store", "g.db")
    assert r.exit_code == 0, r.output
    assert r.stdout == "loaded nothing into g.crm.db\n"
    assert r.stderr == (
        f"mrules: warning: {rules}: no file to load in this folder (files named after their"
        " object, Lead.jsonl or Contact.csv, and org.json)\n"
    )
    r = _cli("crm", "load", str(EXAMPLE / "crm") + "/", "--store", "g.db")
    assert r.exit_code == 0 and r.stderr == "", r.output


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"LastName,Company,LastName\nA,B,C\n", 'the header names the field "LastName" twice'),
        (b"LastName,Company\n\xff,B\n", "not UTF-8 (invalid start byte at byte 1 of the line)"),
    ],
)
def test_a_file_refused_whole_is_counted_as_a_file(seeded: Path, content: bytes, said: str) -> None:
    """A CSV whose header names a field twice, or that is not UTF-8, loads none of its
    rows: the last line said `1 row refused`."""
    (seeded / "Lead.csv").write_bytes(content)
    r = _cli("crm", "load", "Lead.csv", "--store", "g.db")
    assert r.exit_code == 3, r.output
    assert said in r.stderr and "none of this file's rows is loaded\n" in r.stderr
    assert r.stderr.endswith("\n1 file not loaded; the others loaded\n"), r.stderr


@pytest.mark.parametrize("command", ["load", "export", "apply-changes"])
def test_the_local_commands_help_says_what_crm_takes(command: str) -> None:
    r = _cli("crm", command, "--help")
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "or `local`: the file beside the store, NAME.crm.db [default]" in text
    assert "(`salesforce`, a real org, is for `crm describe` and the sync)" in text


def test_describe_of_no_such_object_lists_the_crms_objects(seeded: Path) -> None:
    """`crm describe Leads` said only `sObject type 'Leads' is not supported.`"""
    r = _cli("crm", "describe", "Leads", "--store", "g.db")
    assert r.exit_code == 2, r.output
    assert r.output == (
        "mrules: error: INVALID_TYPE: sObject type 'Leads' is not supported. The CRM's"
        " objects: Account, Campaign, CampaignMember, Contact, Group, Lead, Opportunity,"
        " OpportunityContactRole, Task, User\n"
    )


def test_a_missing_crm_file_is_answered_with_the_command_that_makes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sync plan` before any `crm load` said `create one with mrules crm load`, and
    `crm load` wants a folder of exports and the file: the message now gives the command
    with the file's path, quoted for a shell, which works as typed (FOLDER filled in)."""
    import shlex

    monkeypatch.chdir(tmp_path)
    store = "my store.db"  # the CRM file beside it has a space too
    assert (
        _cli(
            "run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", store, "-q"
        ).exit_code
        == 0
    )
    r = _cli("sync", "plan", "--rules", str(EXAMPLE / "rules"), "--store", store)
    assert r.exit_code == 2, r.output
    said = r.output.split("`")[1]
    assert said == "mrules crm load FOLDER --crm 'my store.crm.db'"
    words = shlex.split(said.replace("FOLDER", shlex.quote(str(EXAMPLE / "crm"))))
    assert _cli(*words[1:]).exit_code == 0
    plan = _cli("sync", "plan", "--rules", str(EXAMPLE / "rules"), "--store", store)
    assert plan.exit_code == 2 and plan.output.startswith("sync plan "), plan.output
