"""A store damaged where the reports read it themselves: a prospect's stored state (its
creation or assignment time, its score) and the name table. Every report says what is
damaged, exit 4, as `state export` and `explain` do. The reports read the states in SQL
(`json_extract`), where a state without its creation time gave NULL and failed later as
an internal error; a name that was a blob was a TypeError."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import mrules

REPORTS = [("funnel",), ("campaigns",), ("rules",), ("scores",), ("html", "out.html")]


def _damage(store: Path, state: str) -> str:
    with sqlite3.connect(store) as db:
        email = db.execute("SELECT email FROM prospects ORDER BY id LIMIT 1").fetchone()[0]
        db.execute("UPDATE prospects SET state = ? WHERE email = ?", (state, email))
    return str(email)


@pytest.mark.parametrize(
    ("state", "what"),
    [
        ("{}", "no creation time"),
        ('{"c": "yesterday", "s": 0}', "creation time 'yesterday'"),
        ('{"c": 1e999, "s": 0}', "creation time Inf"),
        ('{"c": 1.7e9, "s": "high"}', "score 'high'"),
        ('{"c": 1.7e9, "s": 0, "aa": [1]}', "assignment time '[1]'"),
    ],
)
@pytest.mark.parametrize("report", REPORTS, ids=lambda r: r[0])
def test_a_damaged_state_is_named_with_exit_4(
    copy: Path, report: tuple[str, ...], state: str, what: str
) -> None:
    email = _damage(copy, state)
    r = mrules("report", *report, "--store", str(copy))
    assert r.exit_code == 4, r.output
    assert (
        f"the store is damaged: the stored state of prospect {email} cannot be read ({what})"
    ) in r.output
    assert "internal error" not in r.output
    assert not Path("out.html").exists()


def test_an_undamaged_store_still_reports(copy: Path) -> None:
    r = mrules("report", "funnel", "--store", str(copy), "--format", "json")
    assert r.exit_code == 0, r.output
    assert '"mqls"' in r.output


@pytest.mark.parametrize(
    "report", [("rules",), ("scores",), ("html", "out.html")], ids=lambda r: r[0]
)
def test_a_name_that_is_not_text_is_named_with_exit_4(copy: Path, report: tuple[str, ...]) -> None:
    # The reports that walk the history read the store's name table themselves: a blob
    # there was a TypeError (an internal error) where `explain` says the store is damaged.
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE names SET text = x'00ff' WHERE id = (SELECT min(id) FROM names)")
    r = mrules("report", *report, "--store", str(copy))
    assert r.exit_code == 4, r.output
    assert "is damaged (name " in r.output and "internal error" not in r.output
    assert not Path("out.html").exists()


@pytest.mark.parametrize(
    ("column", "what"), [("key", "a rule's key"), ("kind", "the kind of rule rule:")]
)
@pytest.mark.parametrize("report", [("rules",), ("html", "out.html")], ids=lambda r: r[0])
def test_a_rule_of_the_store_that_is_not_text_is_named_with_exit_4(
    copy: Path, report: tuple[str, ...], column: str, what: str
) -> None:
    # Without the rule files, the rules report lists the rules the store's runs have seen:
    # a key or kind that was a blob was a TypeError there (an internal error, exit 70).
    with sqlite3.connect(copy) as db:
        db.execute(
            f"UPDATE rules SET {column} = x'00ff'"
            " WHERE key = (SELECT min(key) FROM rules WHERE key LIKE 'rule:%')"
        )
    r = mrules("report", *report, "--store", str(copy))
    assert r.exit_code == 4, r.output
    assert f"is damaged ({what}" in r.output and "internal error" not in r.output
    assert not Path("out.html").exists()


@pytest.mark.parametrize(
    ("table", "column", "value", "what"),
    [
        ("campaign", "actual_cost", "null", "campaign row 1: actual_cost is not a finite number"),
        ("campaign", "name", b"\x00\xff", "campaign row 1: name is not text"),
        ("campaign_member", "campaign", b"\x00\xff", "campaign_member row 1: campaign is not text"),
        ("campaign_member", "created", "soon", "campaign_member row 1: created is not a time"),
        ("opportunity", "amount", "1e999", "opportunity row 1: amount is not a finite number"),
        # finite, but beyond the CRM's 18 digits: it read "not a finite number, 1.5e+308"
        ("opportunity", "amount", 1.5e308, "opportunity row 1: amount is more than 18 digits"),
        ("campaign", "actual_cost", 10**18, "campaign row 1: actual_cost is more than 18 digits"),
        ("opportunity", "is_won", 2, "opportunity row 1: is_won is not 0 or 1"),
        ("opportunity", "close_date", "2026-13-45", "opportunity row 1: close_date is not a time"),
        ("opportunity_role", "contact", b"\x01", "opportunity_role row 1: contact is not text"),
        ("link", "crm_id", b"", "link row 1: crm_id is not text"),
    ],
)
@pytest.mark.parametrize("report", REPORTS, ids=lambda r: r[0])
def test_a_damaged_sync_file_is_named_with_exit_4(
    copy: Path, report: tuple[str, ...], table: str, column: str, value: object, what: str
) -> None:
    # The reports read the sync file's copy of the CRM in SQL: text in a campaign's cost
    # reached float() and a blob in its name the sort (internal errors); a junk amount or
    # time was silently counted as nothing.
    sync = copy.with_name("fx.sync.db")
    with sqlite3.connect(sync) as db:
        assert db.execute(f"SELECT count(*) FROM {table} WHERE rowid = 1").fetchone()[0] == 1
        db.execute(f'UPDATE {table} SET "{column}" = ? WHERE rowid = 1', (value,))
    db.close()
    r = mrules("report", *report, "--store", str(copy))
    assert r.exit_code == 4, r.output
    assert f"fx.sync.db: the sync file is damaged ({what}, " in r.output, r.output
    assert "restore it from a backup" in r.output and "internal error" not in r.output
    assert not Path("out.html").exists()
