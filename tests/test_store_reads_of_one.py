"""A read-only read of one prospect's history asks only for the names its rows use.

`explain PROSPECT` on a store of 2 million events loaded every name and every
email first, a second of work for a few rows. The rows must read the same as
the same prospect's rows in a read of the whole history.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.batch import Batch
from mrules.cli import main
from mrules.store import Store, StoreError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "getcloudy"


@pytest.fixture(scope="module")
def example_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("one") / "example.db"
    args = ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", str(path)]
    assert CliRunner().invoke(main, [*args, "-q"]).exit_code == 0
    return path


def _emails(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    found = [e for (e,) in conn.execute("SELECT email FROM prospects ORDER BY id")]
    conn.close()
    return found


def test_one_prospect_reads_as_in_the_whole_history_without_loading_every_name(
    example_store: Path,
) -> None:
    emails = _emails(example_store)
    with Store.open(example_store, readonly=True) as s:
        whole_activities, whole_ledger = list(s.activities()), list(s.ledger())
        whole_crm = list(s.crm_pending())
        statements: list[str] = []
        s._connection().set_trace_callback(statements.append)
        for email in emails:
            assert list(s.activities(email)) == [a for a in whole_activities if a.prospect == email]
            assert list(s.ledger(email)) == [e for e in whole_ledger if e.prospect == email]
            assert list(s.crm_pending(email)) == [m for m in whole_crm if m.prospect == email]
        s._connection().set_trace_callback(None)
    assert any(a.prospect for a in whole_activities) and any(e.prospect for e in whole_ledger)
    assert not [q for q in statements if "FROM names ORDER BY" in q or "id, email FROM" in q]
    assert any("FROM names WHERE id = " in q for q in statements)


def test_a_name_that_is_not_text_is_still_damage(example_store: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(example_store.read_bytes())
    conn = sqlite3.connect(damaged)
    with conn:
        conn.execute("UPDATE names SET text = x'00ff'")
    conn.close()
    with (
        Store.open(damaged, readonly=True) as s,
        pytest.raises(StoreError, match=r"damaged \(name \d+"),
    ):
        for email in _emails(damaged):
            list(s.ledger(email))


def test_the_ledger_after_a_seq_is_the_whole_ledgers_tail_read_as_it_streams(
    example_store: Path,
) -> None:
    """Differential: `ledger(after_seq=k)` reads rows forward from the one holding k (the
    sync's plan reads a backfill that way), and must give what the sorted whole gives."""
    with Store.open(example_store, readonly=True) as s:
        whole = list(s.ledger())
        last = s.max_seq()
        assert len(whole) > 50 and last >= whole[-1].seq
        for k in range(1, last + 2):
            assert list(s.ledger(after_seq=k)) == [e for e in whole if e.seq > k], k


def test_crm_work_after_a_seq_is_the_whole_queues_tail_in_either_store(
    example_store: Path, tmp_path: Path
) -> None:
    """Differential: a sync cycle asks for the CRM work after its last seq
    (`crm_pending(after_seq=k)`); the SQLite store then reads the history from the row
    holding k. Both stores must give the tail of the whole queue, plain records too."""
    import mrules
    from mrules.storeapi import StateStore

    path = tmp_path / "crm.db"
    path.write_bytes(example_store.read_bytes())
    memory = mrules.run(EXAMPLE / "rules", EXAMPLE / "events.jsonl")
    stores: list[StateStore] = [Store.open(path), memory.store]
    try:
        last = stores[0].max_seq()
        assert memory.store.max_seq() == last
        plain = [(last + 2, 1.0, "z@x.com", "task", "{}"), (last + 4, 1.0, "z@x.com", "task", "{}")]
        for s in stores:
            s.commit(Batch("-", 1, 1.0, crm_pending=plain))
        answers = []
        for s in stores:
            whole = list(s.crm_pending())
            emails = sorted({m.prospect for m in whole})
            assert len(whole) > 5 and len(emails) > 2 and whole[-1].seq == last + 4
            for k in range(0, last + 6):
                assert list(s.crm_pending(after_seq=k)) == [m for m in whole if m.seq > k], k
                for email in emails:
                    tail = [m for m in whole if m.prospect == email and m.seq > k]
                    assert list(s.crm_pending(email, after_seq=k)) == tail, (k, email)
            answers.append([tuple(m) for m in whole])
        assert answers[0] == answers[1]
    finally:
        for s in stores:
            s.close()
