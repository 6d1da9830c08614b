"""`state export --prospect EMAIL` reads those prospects, not the whole store.

It read every prospect and all the pending CRM work of the store and kept the
ones asked for: at 2 million events (200,000 prospects), 6.3 s of CPU and
194 MB to print one line. Every query it makes now finds its rows through an
index (`EXPLAIN QUERY PLAN`: no scan of the prospects or the history).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import example_store, mrules
from mrules.outputs import export_records
from mrules.store import Store

WANTED = ["leung@example.com", "Henry@Example.org ", "nobody@example.com"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_store(tmp_path_factory.mktemp("export"))


def _plans(path: Path, emails: list[str]) -> tuple[list[dict], list[str]]:
    statements: list[str] = []
    with Store.open(path, readonly=True) as st:
        conn = st._connection()
        conn.set_trace_callback(statements.append)
        records = list(export_records(st, emails))
        conn.set_trace_callback(None)
        plans = []
        for sql in statements:
            if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                rows = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
                plans += [f"{r[-1]}  <- {sql[:120]}" for r in rows]
    return records, plans


def test_a_few_prospects_are_looked_up_through_indexes(store: Path) -> None:
    records, plans = _plans(store, WANTED)
    assert [r["email"] for r in records] == ["henry@example.org", "leung@example.com"]
    scans = [
        p for p in plans if p.startswith(("SCAN history", "SCAN prospects", "SCAN h ", "SCAN p "))
    ]
    assert scans == [], "\n".join(plans)


def test_the_records_are_those_of_the_whole_export(store: Path) -> None:
    records = _plans(store, WANTED)[0]
    with Store.open(store, readonly=True) as st:
        whole = {r["email"]: r for r in export_records(st)}
    assert records == [whole["henry@example.org"], whole["leung@example.com"]]
    assert any(r["pending_crm"] for r in records)  # the CRM work is read for them too


def test_the_command_prints_them_by_email(store: Path) -> None:
    result = mrules(
        "state", "export", "--store", store, "--prospect", WANTED[1], "--prospect", WANTED[0]
    )
    assert result.exit_code == 0, result.output
    assert [line.split('"')[3] for line in result.stdout.splitlines()] == [
        "henry@example.org",
        "leung@example.com",
    ]


def test_sqlite_reports_a_full_scan_as_scan(tmp_path: Path) -> None:
    # What the first test relies on: a table read whole shows as SCAN in the plan.
    conn = sqlite3.connect(tmp_path / "t.db")
    conn.execute("CREATE TABLE prospects (id INTEGER PRIMARY KEY, email TEXT, state BLOB)")
    plan = conn.execute("EXPLAIN QUERY PLAN SELECT email FROM prospects ORDER BY email").fetchall()
    assert plan[0][-1].startswith("SCAN prospects")
