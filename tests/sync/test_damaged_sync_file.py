"""A sync file damaged in its values (a row of the right shape holding text where a time
goes, JSON that is not what mrules wrote, a fact that differs from the one the store
applied): every command that reads the value says the sync file is damaged and which
value, exit 4. They were internal errors (exit 70) further on."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from tests.sync.world import BOB, T0, World, ev


def _synced(tmp_path: Path) -> World:
    """A world after one cycle: links, a cursor, a held error, facts delivered."""
    w = World(tmp_path)
    w.seed({"Contact": [BOB]})
    w.run(
        ev(T0, "ann@x.com", asset="Demo"),
        ev(T0, "bob@x.com", "prospect_update", fields={"company_size": "huge"}),
    )
    w.sync("apply")
    return w


ALL = ("status", "plan", "run")
DAMAGE = [  # (SQL, the value named, the commands that read it)
    ("UPDATE meta SET value = 'x' WHERE key = 'generation'", "meta generation", ("plan", "run")),
    ("UPDATE meta SET value = x'00' WHERE key = 'work_seq'", "meta work_seq", ("plan", "run")),
    ("INSERT OR REPLACE INTO meta VALUES ('last_cycle', 'inf')", "meta last_cycle", ALL),
    ("INSERT OR REPLACE INTO meta VALUES ('last_cycle', '1e308')", "meta last_cycle", ALL),
    (
        "UPDATE meta SET value = '1e300' WHERE key = 'generation'",
        "meta generation",
        ("plan", "run"),
    ),
    (
        "UPDATE cursor SET modstamp = 'yesterday' WHERE object = 'Contact'",
        "the cursor of 'Contact'",
        ALL,
    ),
    (
        "INSERT INTO queue VALUES ('ann@x.com', 'not json', 0, 0, 0)",
        "the queued work of 'ann@x.com'",
        ALL,
    ),
    (
        "INSERT INTO queue VALUES ('ann@x.com', '[1]', 0, 0, 0)",
        "the queued work of 'ann@x.com'",
        ALL,
    ),
    (
        "INSERT INTO queue VALUES ('ann@x.com', '[]', 'soon', 0, 0)",
        "the queued work of 'ann@x.com'",
        ALL,
    ),
    ("UPDATE error SET at = 'today'", "a held error of 'bob@x.com'", ALL),
    ("INSERT OR REPLACE INTO meta VALUES ('store_seq', '[1]')", "meta store_seq", ("plan", "run")),
    ("INSERT OR REPLACE INTO meta VALUES ('failed_cycle', '[]')", "meta failed_cycle", ("status",)),
    (
        'INSERT OR REPLACE INTO meta VALUES (\'failed_cycle\', \'{"at": "2026-11-02T09:00:00Z",'
        ' "error": "X: y", "created": -1, "updated": 0,'
        ' "campaign_members": 0, "tasks": 0}\')',
        "meta failed_cycle",
        ("status",),
    ),
]
CASES = [(sql, what, command) for sql, what, commands in DAMAGE for command in commands]


def _damage(w: World, sql: str) -> None:
    with sqlite3.connect(w.tmp / "w.sync.db") as conn:  # committed on leaving
        conn.execute(sql)
    conn.close()


def _command(w: World, command: str) -> Any:
    """`sync status`, `sync plan` or `sync run` on the world's files, whatever its exit."""
    if command == "status":
        return w.cli("sync", "status", "--store", str(w.store))
    if command == "plan":
        return w.sync("plan", code=None)
    return w.sync("run", "--until", "2026-11-02T10:00:00Z", code=None)


@pytest.mark.parametrize(("sql", "what", "command"), CASES, ids=[f"{c}-{w}" for _, w, c in CASES])
def test_a_damaged_value_is_named_with_exit_4(
    tmp_path: Path, sql: str, what: str, command: str
) -> None:
    w = _synced(tmp_path)
    _damage(w, sql)
    r = _command(w, command)
    assert r.exit_code == 4, r.output
    assert f"w.sync.db: the sync file is damaged ({what}: " in r.output
    assert "restore it from a backup" in r.output and "internal error" not in r.output


def test_a_fact_that_differs_from_the_one_applied_is_damage(tmp_path: Path) -> None:
    # The store applied the cycle's facts; marked undelivered again (a kill between the
    # two files looks so) and changed, they are not what the store read.
    w = _synced(tmp_path)
    _damage(w, "UPDATE inbound SET event = '{}', delivered = 0")
    r = w.sync("run", "--until", "2026-11-02T10:00:00Z", code=4)
    assert "the sync file is damaged (its facts of crm-sync:" in r.output
    assert "are not those the store applied from it" in r.output
    assert "internal error" not in r.output


def test_facts_redelivered_unchanged_are_skipped(tmp_path: Path) -> None:
    # The same without the change: a redelivery after a kill, which the store skips.
    w = _synced(tmp_path)
    before = w.prospects()
    _damage(w, "UPDATE inbound SET delivered = 0")
    w.sync("run", "--until", "2026-11-02T10:00:00Z")
    assert w.prospects() == before
    assert w.syncdb("SELECT count(*) FROM inbound WHERE delivered = 0") == [(0,)]


def test_a_damaged_prospect_state_read_by_a_plan_is_named(tmp_path: Path) -> None:
    # A plan reads prospect states itself (their JSON, not decoded prospects).
    w = _synced(tmp_path)
    with sqlite3.connect(w.store) as conn:
        conn.execute("UPDATE prospects SET state = x'00ff' WHERE email = 'ann@x.com'")
    conn.close()
    for command in (("plan",), ("run", "--until", "2026-11-02T10:00:00Z")):
        r = w.sync(*command, code=4)
        assert "the store is damaged: the stored state of prospect ann@x.com cannot be read" in (
            r.output
        )
        assert "internal error" not in r.output


@pytest.mark.parametrize("command", ALL)
def test_a_meta_table_sqlite_cannot_read_is_an_error_not_an_empty_sync(
    tmp_path: Path, command: str
) -> None:
    """Its `value` column renamed: `sync status` said "last cycle: never; 0 API calls
    used" of a synced file and exited 0 (every meta read was taken for an unset one)."""
    w = _synced(tmp_path)
    _damage(w, "ALTER TABLE meta RENAME COLUMN value TO v")
    r = _command(w, command)
    assert r.exit_code == 4, r.output
    assert "w.sync.db: " in r.output and "no such column: value" in r.output, r.output
    assert "last cycle: never" not in r.output and "internal error" not in r.output
