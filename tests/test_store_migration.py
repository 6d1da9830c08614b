"""A schema 1 store (written by mrules before the compact history) is migrated, losing nothing.

`tests/fixtures/v1-getcloudy.db` is the bundled example run by the schema 1
mrules (commit 6fb9f6a). Opened for writing, it becomes a current store whose
export, explanation and ledger equal those of a fresh run. A schema 2 store
(history rows as JSON) reads as it is and upgrades in place.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.history import load_data
from mrules.records import LedgerEntry
from mrules.store import SCHEMA_VERSION, Store, StoreError

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "getcloudy"
V1 = Path(__file__).resolve().parent / "fixtures" / "v1-getcloudy.db"


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Path, Path]:
    old = tmp_path / "old.db"
    shutil.copy(V1, old)
    fresh = tmp_path / "fresh.db"
    cli("run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", str(fresh), "-q")
    return old, fresh


def test_the_fixture_is_a_schema_1_store() -> None:
    conn = sqlite3.connect(f"file:{V1}?mode=ro", uri=True)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    conn.close()
    assert version == 1 and {"activities", "ledger", "applied"} <= tables


def test_a_reader_asks_for_a_writer_first(stores: tuple[Path, Path]) -> None:
    old, _ = stores
    with pytest.raises(StoreError, match="open it once for writing"):
        Store.open(old, readonly=True)
    res = CliRunner().invoke(main, ["state", "export", "--store", str(old)])
    assert res.exit_code == 4 and "mrules run" in res.output  # a store problem (exit-codes.md)


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _entry(e: LedgerEntry) -> tuple[Any, ...]:
    """A ledger entry without its event's path, its JSON texts read."""
    return (*e[:6], *e[7:10], _json(e.args), _json(e.before), _json(e.after))


def _change(e: LedgerEntry) -> tuple[Any, ...]:
    """What an entry did, whatever its place in the sequence."""
    return tuple(repr(x) for x in _entry(e)[1:])


def test_migration_keeps_every_state_entry_and_id(stores: tuple[Path, Path]) -> None:
    old, fresh = stores
    conn = sqlite3.connect(old)
    v1_rows = conn.execute("SELECT * FROM ledger ORDER BY seq").fetchall()
    v1_ledger = len(v1_rows)
    v1_applied = {r[0] for r in conn.execute("SELECT id FROM applied")}
    conn.close()
    Store.open(old).close()  # the writer's open migrates
    with Store.open(old, readonly=True) as a, Store.open(fresh, readonly=True) as b:
        assert a.meta()["schema_version"] == str(SCHEMA_VERSION)
        assert list(a.prospects()) == list(b.prospects())
        assert a.applied_ids() == v1_applied == b.applied_ids()
        assert a.max_seq() == b.max_seq() > 0
        ledger_a, ledger_b = list(a.ledger()), list(b.ledger())
        assert len(ledger_a) == v1_ledger
        # Every v1 entry, with its seq, as the v1 store holds it (its events' path aside).
        assert [_entry(e) for e in ledger_a] == [_entry(LedgerEntry(*r)) for r in v1_rows]
        # And the same changes as a fresh run of today's engine. Its order within an
        # event's settling may differ: dynamic lists now update before the rules of each
        # round read them (docs/semantics.md), so seqs are compared above only.
        assert sorted(_change(e) for e in ledger_a) == sorted(_change(e) for e in ledger_b)
        assert [x[:6] for x in a.activities()] == [x[:6] for x in b.activities()]
        assert list(a.outbox()) == list(b.outbox())
        assert list(a.crm_pending()) == list(b.crm_pending())


def test_migrated_store_reads_and_resumes_like_a_fresh_one(stores: tuple[Path, Path]) -> None:
    old, fresh = stores
    Store.open(old).close()
    for args in (("state", "export"), ("state", "outbox"), ("explain", "leung@example.com")):
        assert cli(*args, "--store", str(old)).output == cli(*args, "--store", str(fresh)).output
    # The same events again (another path, so ids decide): nothing is applied twice.
    copy = old.parent / "again.jsonl"
    shutil.copy(EXAMPLE / "events.jsonl", copy)
    res = cli("run", str(EXAMPLE / "rules"), str(copy), "--store", str(old), "-q")
    assert res.exit_code == 0
    assert (
        cli("state", "export", "--store", str(old)).output
        == cli("state", "export", "--store", str(fresh)).output
    )


def _as_schema_2(path: Path) -> int:
    """Make a store what schema 2 wrote: history `data` as JSON arrays. Returns the rows."""
    conn = sqlite3.connect(path)
    with conn:
        rows = conn.execute("SELECT id, data FROM history").fetchall()
        conn.executemany(
            "UPDATE history SET data = ? WHERE id = ?",
            [(orjson.dumps(load_data(data)), i) for i, data in rows],
        )
        conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
    conn.close()
    return len(rows)


def test_a_schema_2_store_reads_as_it_is_and_upgrades_in_place(tmp_path: Path) -> None:
    """Schema 3 only changed how new history rows are encoded: old rows stay and read."""
    events = (EXAMPLE / "events.jsonl").read_text().splitlines(keepends=True)
    half = tmp_path / "half.jsonl"
    half.write_text("".join(events[: len(events) // 2]))
    whole = tmp_path / "whole.jsonl"
    whole.write_text("".join(events))
    fresh, old = tmp_path / "fresh.db", tmp_path / "old.db"
    rules = str(EXAMPLE / "rules")
    assert cli("run", rules, str(whole), "--store", str(fresh), "-q").exit_code == 0
    assert cli("run", rules, str(half), "--store", str(old), "-q").exit_code == 0
    assert _as_schema_2(old) > 0
    # Read-only commands read it without upgrading it.
    with Store.open(old, readonly=True) as s:
        assert s.meta()["schema_version"] == "2"
        assert len(list(s.ledger())) > 0
    assert "score" in cli("explain", "leung@example.com", "--store", str(old)).output
    # A run upgrades it and appends rows in the new encoding after the JSON ones.
    assert cli("run", rules, str(whole), "--store", str(old), "-q").exit_code == 0
    conn = sqlite3.connect(old)
    first_bytes = {d[:1] for (d,) in conn.execute("SELECT data FROM history")}
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    conn.close()
    assert version == SCHEMA_VERSION and b"[" in first_bytes and len(first_bytes) > 1
    for args in (("state", "export"), ("state", "outbox"), ("explain", "leung@example.com")):
        assert cli(*args, "--store", str(old)).output == cli(*args, "--store", str(fresh)).output
    with Store.open(old, readonly=True) as a, Store.open(fresh, readonly=True) as b:
        # The stream's path differs (half.jsonl, whole.jsonl); every other value is equal.
        def steps(s: Store) -> list[tuple[Any, ...]]:
            return [(*e[:5], *e[7:]) for e in s.ledger() if e.rule_kind != "event"]

        assert steps(a) == steps(b) != []
        assert [x[:6] for x in a.activities()] == [x[:6] for x in b.activities()]
