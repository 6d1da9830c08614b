"""The history indexes by prospect and by event hash lead with the row's generation.

Schema 4 keys `history_prospect` and `history_event` by `(id >> 16, ...)`, so a
commit appends to them; a lookup asks every generation. These tests hold the
lookups to the rows a plain scan finds when the history spans several
generations (some empty), check that the lookups really use the indexes, and
that a schema 3 store reads as it is and upgrades its indexes on the next run.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.store import SCHEMA_VERSION, Store

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "getcloudy"
RULES = str(EXAMPLE / "rules")
GENERATION = 1 << 16


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def example_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "example.db"
    res = cli("run", RULES, str(EXAMPLE / "events.jsonl"), "--store", str(path), "-q")
    assert res.exit_code == 0, res.output
    return path


def _sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    with conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def _prospect_reads(s: Store, email: str) -> tuple[Any, ...]:
    return (
        list(s.activities(email)),
        list(s.ledger(email)),
        list(s.crm_pending(email)),
    )


def _emails(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    emails = [e for (e,) in conn.execute("SELECT email FROM prospects ORDER BY id")]
    conn.close()
    return emails


def test_lookups_find_every_generation(example_store: Path, tmp_path: Path) -> None:
    """Rows spread over generations 0, 3 and 7 (1, 2, 4-6 empty) read as before."""
    spread = tmp_path / "spread.db"
    shutil.copy(example_store, spread)
    conn = sqlite3.connect(spread)
    top = conn.execute("SELECT max(id) FROM history").fetchone()[0]
    conn.close()
    assert top >= 12  # the example has a history worth spreading
    # Move the last two thirds up by 3 generations, then the last third by 4 more:
    # ids stay in the same order, so every read must give the same answer.
    _sql(
        spread,
        f"UPDATE history SET id = id + {3 * GENERATION} WHERE id > {top // 3}",
        f"UPDATE history SET id = id + {4 * GENERATION} WHERE id > {3 * GENERATION + 2 * top // 3}",
    )
    conn = sqlite3.connect(spread)
    generations = {g for (g,) in conn.execute("SELECT DISTINCT id >> 16 FROM history")}
    event_ids = [
        e for (e,) in conn.execute("SELECT event_id FROM history WHERE event_id IS NOT NULL")
    ]
    conn.close()
    assert generations == {0, 3, 7}
    emails = _emails(example_store)
    with Store.open(example_store, readonly=True) as a, Store.open(spread, readonly=True) as b:
        for email in emails:
            assert _prospect_reads(a, email) == _prospect_reads(b, email)
        assert b.applied_among([*event_ids, "never-sent"]) == set(event_ids)
        assert all(b.has_applied(e) for e in (event_ids[0], event_ids[-1]))
        assert not b.has_applied("never-sent")
    for email in emails[:5] + emails[-5:]:
        spread_text = cli("explain", email, "--store", str(spread)).output
        assert spread_text == cli("explain", email, "--store", str(example_store)).output


def test_ids_far_apart_are_read_at_once_and_in_order(example_store: Path, tmp_path: Path) -> None:
    """A history id of 2**62 (damage, or a hand edit) made every lookup count through
    2**46 generations: `explain` ran for ever (the damage fuzzer's long run hung on it).
    The generations are now found one seek each; the order of the ids is kept, so every
    read gives the store's answers, and a run can go on writing after them."""
    far = tmp_path / "far.db"
    shutil.copy(example_store, far)
    conn = sqlite3.connect(far)
    low, top = conn.execute("SELECT min(id), max(id) FROM history").fetchone()
    event_ids = [e for (e,) in conn.execute(
        "SELECT event_id FROM history WHERE event_id IS NOT NULL ORDER BY id")]  # fmt: skip
    conn.close()
    _sql(far, f"UPDATE history SET id = {2**62} WHERE id = {top}",
         f"UPDATE history SET id = -5 WHERE id = {low}")  # fmt: skip
    emails = _emails(example_store)
    # In a process with a time limit first: before the fix, this failed rather than hung.
    for email in emails[:2] + emails[-2:]:
        argv = [sys.executable, "-m", "mrules", "explain", email, "--store", str(far)]
        shown = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == cli("explain", email, "--store", str(example_store)).output
    with Store.open(example_store, readonly=True) as a, Store.open(far, readonly=True) as b:
        for email in emails:
            assert _prospect_reads(a, email) == _prospect_reads(b, email)
        assert b.applied_among([*event_ids, "never-sent"]) == set(event_ids)
        assert b.has_applied(event_ids[0]) and b.has_applied(event_ids[-1])
    more = tmp_path / "more.jsonl"
    more.write_text(
        '{"ts": "2026-12-21T09:00:00Z", "id": "m01", "type": "page_view",'
        ' "prospect": "leung@example.com", "url": "https://www.getcloudy.com/consult"}\n'
    )
    argv = [sys.executable, "-m", "mrules", "run", RULES, str(more), "--store", str(far), "-q"]
    ran = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    with Store.open(far, readonly=True) as b:
        assert b.has_applied("m01") and b.has_applied(event_ids[-1])


def _history_plans(s: Store, calls: list[Callable[[], object]]) -> list[str]:
    """The query plan of every history query the calls ran, as one text each."""
    conn = s._connection()
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        for call in calls:
            call()
    finally:
        conn.set_trace_callback(None)
    plans = []
    for sql in seen:
        if "FROM history WHERE" in sql and ("prospect =" in sql or "event" in sql):
            plan = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            plans.append(" | ".join(row[-1] for row in plan))
    return plans


def test_lookups_by_prospect_and_event_use_the_generation_indexes(example_store: Path) -> None:
    email = _emails(example_store)[0]
    with Store.open(example_store, readonly=True) as s:
        plans = _history_plans(
            s,
            [
                lambda: list(s.activities(email)),
                lambda: list(s.ledger(email)),
                lambda: list(s.crm_pending(email)),
                lambda: s.applied_among(["e-1", "e-2"]),
                lambda: s.has_applied("e-1"),
            ],
        )
    assert len(plans) == 5, plans
    for plan in plans:
        assert "USING INDEX history_prospect (<expr>=? AND prospect=?)" in plan or (
            "USING INDEX history_event (<expr>=? AND event=?)" in plan
        ), plan
        assert "SCAN history" not in plan, plan


def _as_schema_3(path: Path) -> None:
    """Make a store what schema 3 wrote: the two history indexes keyed without generation."""
    _sql(
        path,
        "DROP INDEX history_prospect",
        "DROP INDEX history_event",
        "CREATE INDEX history_prospect ON history (prospect) WHERE prospect IS NOT NULL",
        "CREATE INDEX history_event ON history (event) WHERE event IS NOT NULL",
        "UPDATE meta SET value = 3 WHERE key = 'schema_version'",
    )


def _index_sql(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    )
    out = {name: sql for name, sql in rows}
    conn.close()
    return out


def test_a_schema_3_store_reads_as_it_is_and_upgrades_its_indexes(tmp_path: Path) -> None:
    events = (EXAMPLE / "events.jsonl").read_text().splitlines(keepends=True)
    half, whole = tmp_path / "half.jsonl", tmp_path / "whole.jsonl"
    half.write_text("".join(events[: len(events) // 2]))
    whole.write_text("".join(events))
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    assert cli("run", RULES, str(half), "--store", str(old), "-q").exit_code == 0
    assert cli("run", RULES, str(whole), "--store", str(fresh), "-q").exit_code == 0
    _as_schema_3(old)
    email = "leung@example.com"
    # Read-only: the same queries, on the plain indexes, and no upgrade.
    with Store.open(old, readonly=True) as s:
        assert s.meta()["schema_version"] == "3"
        plans = _history_plans(s, [lambda: list(s.activities(email)), lambda: s.has_applied("x")])
        assert any("USING INDEX history_prospect (prospect=?)" in p for p in plans), plans
        assert any("USING INDEX history_event (event=?)" in p for p in plans), plans
        assert list(s.activities(email))
    assert "score" in cli("explain", email, "--store", str(old)).output
    # A run upgrades the indexes, resumes where the half stopped and ends as a fresh run.
    assert cli("run", RULES, str(whole), "--store", str(old), "-q").exit_code == 0
    with Store.open(old, readonly=True) as s:
        assert s.meta()["schema_version"] == str(SCHEMA_VERSION) == "6"
    assert _index_sql(old) == _index_sql(fresh)
    assert "id >> 16" in _index_sql(old)["history_prospect"]
    for args in (("state", "export"), ("state", "outbox"), ("explain", email)):
        assert cli(*args, "--store", str(old)).output == cli(*args, "--store", str(fresh)).output
