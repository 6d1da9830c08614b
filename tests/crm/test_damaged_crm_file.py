"""A local CRM file damaged in its values (a record's fields that are not a JSON object,
a system field of the wrong kind, a SystemModstamp or the clock that is no time, a count
that is no number, a member status that is no text): the command that reads the value
says the CRM file is damaged, which value, exit 4. They were internal errors (exit 70)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getcloudy"


def mrules(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The example's CRM loaded and its events run: a store with its CRM file."""
    store = tmp_path / "g.db"
    assert mrules("crm", "load", EXAMPLE / "crm", "--store", store).exit_code == 0
    r = mrules("run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", store, "-q")
    assert r.exit_code == 0, r.output
    return store


def _damage(store: Path, sql: str) -> str:
    """Run `sql` on the CRM file; the id of the first Contact (what the damage names)."""
    with sqlite3.connect(store.with_name("g.crm.db")) as conn:
        (contact,) = conn.execute(
            "SELECT id FROM record WHERE sobject = 'Contact' ORDER BY id LIMIT 1"
        ).fetchone()
        conn.execute(sql.format(id=contact))
    conn.close()
    return str(contact)


def _damaged(r: Result, what: str) -> None:
    assert r.exit_code == 4, r.output
    assert f"g.crm.db: the CRM file is damaged ({what}" in r.output, r.output
    assert "restore it from a backup" in r.output
    assert "internal error" not in r.output
    assert isinstance(r.exception, SystemExit)  # an exit, not an exception out of main


@pytest.mark.parametrize("fields", ["[]", "not json", "x'00'"])
def test_fields_that_are_not_an_object(store: Path, fields: str) -> None:
    value = fields if fields.startswith("x'") else f"'{fields}'"
    contact = _damage(store, f"UPDATE record SET fields = {value} WHERE id = '{{id}}'")
    _damaged(mrules("crm", "export", "--store", store), f"the fields of record {contact}: ")
    # Loading more records reads the existing ones (duplicates): the same answer.
    _damaged(
        mrules("crm", "load", EXAMPLE / "crm", "--store", store),
        f"the fields of record {contact}: ",
    )


def test_a_modstamp_that_is_no_time(store: Path) -> None:
    contact = _damage(store, "UPDATE record SET system_modstamp = 'later' WHERE id = '{id}'")
    _damaged(mrules("crm", "export", "--store", store), f"the SystemModstamp of record {contact}: ")


@pytest.mark.parametrize(
    ("column", "value", "what"),
    [
        ("created_by", "x'00ff'", "the CreatedById of record"),
        ("last_modified_date", "'tuesday'", "the LastModifiedDate of record"),
        ("created_date", "12", "the CreatedDate of record"),
    ],
)
def test_a_system_field_of_the_wrong_kind(store: Path, column: str, value: str, what: str) -> None:
    # Exported as they are: a blob was a TypeError in the JSON writer (an internal error).
    contact = _damage(store, f"UPDATE record SET {column} = {value} WHERE id = '{{id}}'")
    _damaged(mrules("crm", "export", "--store", store), f"{what} {contact}: ")


def test_a_clock_that_is_no_time(store: Path) -> None:
    _damage(store, "INSERT OR REPLACE INTO meta VALUES ('clock', 'teatime')")
    rules = EXAMPLE / "rules"
    _damaged(mrules("sync", "plan", "--rules", rules, "--store", store), "its clock: ")
    _damaged(
        mrules(
            "sync", "run", "--rules", rules, "--store", store, "--until", "2027-01-01T00:00:00Z"
        ),
        "its clock: ",
    )


def test_a_count_that_is_no_number(store: Path) -> None:
    # The API calls of the CRM's day, counted in its meta table.
    with sqlite3.connect(store.with_name("g.crm.db")) as conn:
        (clock,) = conn.execute("SELECT value FROM meta WHERE key = 'clock'").fetchone()
        day = f"api:{clock[:10]}"
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, '[1]')", (day,))
    conn.close()
    _damaged(mrules("sync", "plan", "--rules", EXAMPLE / "rules", "--store", store), f"its {day}: ")


def test_a_member_status_label_that_is_not_text(store: Path) -> None:
    # Exported with its campaign: a blob was the JSON writer's TypeError.
    with sqlite3.connect(store.with_name("g.crm.db")) as conn:
        campaign, label = conn.execute(
            "SELECT campaign_id, label FROM member_status LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE member_status SET label = x'' WHERE campaign_id = ? AND label = ?",
            (campaign, label),
        )
    conn.close()
    _damaged(mrules("crm", "export", "--store", store), f"a member status of campaign {campaign}: ")


def test_an_undamaged_file_exports(store: Path) -> None:
    r = mrules("crm", "export", "--store", store)
    assert r.exit_code == 0, r.output
    assert '"Contact"' in r.output
