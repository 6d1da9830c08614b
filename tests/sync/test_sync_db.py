"""The sync file's own state read back as it was kept (mrules.sync.db,
docs/sync.md#the-sync-file): what is queued and when it is due, what is held, what `sync
retry` marks, which facts wait for the engine, and the values a damaged file holds named.

Direct: a sync file made by `SyncDb.open`, rows written as a cycle writes them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from mrules.storeapi import YEARS_1_TO_9999
from mrules.sync.db import (
    NOT_WAITING,
    SyncDb,
    SyncDbError,
    default_sync_path,
    held_campaign,
    held_item,
    pending_beside,
    store_identity,
)

AT = 1793610000.0  # 2026-11-02T09:00:00Z


@pytest.fixture
def db(tmp_path: Path) -> Any:
    d = SyncDb.open(tmp_path / "s.sync.db")
    yield d
    d.close()


def _queue(
    db: SyncDb, prospect: str, work: list[Any], since: float, attempts: int, nxt: Any
) -> None:
    db.conn.execute(
        "INSERT INTO queue VALUES (?, ?, ?, ?, ?)",
        (prospect, json.dumps(work), since, attempts, nxt),
    )


def _error(
    db: SyncDb, prospect: str, field: str, code: str = "X", at: float = AT, **kw: Any
) -> None:
    row = {"object": "lead", "crm_id": "00Q1", "message": "m", "value": None, "item": ""} | kw
    db.conn.execute(
        "INSERT INTO error (prospect, object, crm_id, field, code, message, value, at, item)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            prospect,
            row["object"],
            row["crm_id"],
            field,
            code,
            row["message"],
            row["value"],
            at,
            row["item"],
        ),
    )


# -- the queue: what waits, and when it is due ------------------------------------------------


def test_queued_work_is_read_in_the_order_it_waits_with_its_back_off(db: SyncDb) -> None:
    """Work never tried is due at any time of any clock, whatever its next_try says (a
    file written before NOT_WAITING has 0 there: 1970); tried work waits for its next_try."""
    _queue(db, "b@x.example", [{"seq": 2}], AT, 0, 0)
    _queue(db, "a@x.example", [{"seq": 1}], AT, 3, AT + 600)
    _queue(db, "c@x.example", [], AT - 60, 1, NOT_WAITING)
    q = db.queue()
    assert list(q) == ["c@x.example", "a@x.example", "b@x.example"]  # by since, then prospect
    assert q["b@x.example"] == ([{"seq": 2}], AT, 0, NOT_WAITING)
    assert q["a@x.example"] == ([{"seq": 1}], AT, 3, AT + 600)
    assert q["c@x.example"] == ([], AT - 60, 1, NOT_WAITING)
    assert type(q["a@x.example"][2]) is int


def test_work_is_pending_until_the_queue_lets_it_go(tmp_path: Path) -> None:
    """`state export`'s pending CRM work: a seq above the last taken into the queue, or
    one still queued."""
    store = tmp_path / "s.db"
    assert pending_beside(store) is None  # no sync file: all of it is pending
    db = SyncDb.open(default_sync_path(store))
    db.set_meta("work_seq", 10)
    _queue(db, "a@x.example", [{"seq": 4}, {"seq": 7}, {"kind": "task"}], AT, 0, 0)
    _queue(db, "b@x.example", [{"seq": 9}], AT, 0, 0)
    assert db.still_pending() == (10, {4, 7, 9})
    db.close()
    pending = pending_beside(store)
    assert pending is not None
    assert [s for s in range(1, 14) if pending(s)] == [4, 7, 9, 11, 12, 13]


def test_a_sync_file_with_no_table_yet_has_everything_pending(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    default_sync_path(store).write_bytes(b"")  # what a sync killed as it made the file left
    assert pending_beside(store) is None


LONG = "a" * 50 + "@x.example"


def test_a_sync_file_that_cannot_be_read_for_pending_work_is_named(tmp_path: Path) -> None:
    """The prospect's first 40 characters name the work."""
    store = tmp_path / "s.db"
    db = SyncDb.open(default_sync_path(store))
    _queue(db, LONG, [{"seq": "x"}], AT, 0, 0)
    db.close()
    with pytest.raises(SyncDbError) as e:
        pending_beside(store)
    assert f"damaged (the queued work of '{'a' * 40}': invalid literal" in str(e.value)


def test_queued_work_that_cannot_be_read_is_named(db: SyncDb) -> None:
    _queue(db, LONG, [{"seq": 1}], AT, 0, 0)
    db.conn.execute("UPDATE queue SET since = 'soon'")
    with pytest.raises(SyncDbError) as e:
        db.queue()
    assert f"damaged (the queued work of '{'a' * 40}': not a number: 'soon')" in str(e.value)


# -- sync retry's marks -------------------------------------------------------------------------


def test_a_retry_marks_the_held_errors_above_every_mark_before(db: SyncDb) -> None:
    _error(db, "a@x.example", "phone")
    _error(db, "a@x.example", "title")
    _error(db, "b@x.example", "phone")
    _error(db, "d@x.example", "lead", code="DUPLICATE_LINK")
    _queue(db, "a@x.example", [], AT, 2, AT + 900)
    _queue(db, "b@x.example", [], AT, 2, AT + 900)
    assert db.retry_mark() == 0 and db.due_errors() == {"d@x.example"}
    with db.tx() as conn:
        assert db.mark_retry(conn, ["a@x.example"]) == (2, 0)
    assert db.retry_mark() == 1
    marks = dict(db.conn.execute("SELECT prospect || field, retry FROM error").fetchall())
    assert marks == {
        "a@x.examplephone": 1,
        "a@x.exampletitle": 1,
        "b@x.examplephone": 0,
        "d@x.examplelead": 0,
    }
    q = db.queue()
    assert q["a@x.example"][3] == NOT_WAITING and q["b@x.example"][3] == AT + 900
    assert db.due_errors() == {"a@x.example", "d@x.example"}
    with db.tx() as conn:
        assert db.mark_retry(conn, None) == (3, 1)  # every one but the DUPLICATE_LINK
    assert db.retry_mark() == 2
    assert db.queue()["b@x.example"][3] == NOT_WAITING
    assert db.due_errors() == {"a@x.example", "b@x.example", "d@x.example"}
    with db.tx() as conn:
        assert db.mark_retry(conn, ["d@x.example"]) == (0, 1)
    assert db.retry_mark() == 3


def test_the_retry_mark_is_above_the_marks_still_held(db: SyncDb) -> None:
    """A mark kept on an error but gone from meta (a file of before the meta key), or a
    meta mark above every error's: the next mark is above both."""
    _error(db, "a@x.example", "phone")
    _error(db, "b@x.example", "phone")
    db.conn.execute("UPDATE error SET retry = 5 WHERE prospect = 'a@x.example'")
    assert db.retry_mark() == 5
    db.set_meta("retry_mark", 7)
    assert db.retry_mark() == 7
    db.set_meta("retry_mark", 2)
    assert db.retry_mark() == 5


# -- what a held error holds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "value", "item"),
    [
        ("task", '{"Description": "mrules:k1", "Subject": "Call"}', "mrules:k1"),
        ("task", '{"Subject": "Call"}', ""),
        ("campaign_member", '{"CampaignId": "701A", "Status": "Sent"}', "701A"),
        ("campaign_member", '"Spring"', "Spring"),  # held before its campaign was found
        ("campaign_member", "[1]", ""),
        ("campaign_member", "not json", ""),
        ("campaign_member", None, ""),
        ("lead", '{"Description": "d"}', ""),  # one value a field
        ("contact", '"x"', ""),
    ],
)
def test_which_write_a_held_error_holds(obj: str, value: str | None, item: str) -> None:
    assert held_item(obj, value) == item


@pytest.mark.parametrize(
    ("obj", "value", "name"),
    [
        ("campaign_member", '{"CampaignId": "701A", "campaign": "Spring"}', "Spring"),
        ("campaign_member", '"Spring"', "Spring"),
        ("campaign_member", '{"CampaignId": "701A"}', None),
        ("campaign_member", '{"campaign": 3}', None),
        ("campaign_member", "[]", None),
        ("campaign_member", "{", None),
        ("task", '{"campaign": "Spring"}', None),
    ],
)
def test_the_campaign_a_held_membership_names(obj: str, value: str, name: str | None) -> None:
    assert held_campaign(obj, value) == name


# -- values of a damaged file are named ------------------------------------------------------------


def test_counts_kept_in_meta_are_whole_numbers_up_to_2_53(db: SyncDb) -> None:
    assert (db.generation, db.work_seq, db.store_seq, db.api_calls()) == (0, 0, None, 0)
    for value, kept in (("0", 0), ("12", 12), ("3.0", 3), (str(2**53), 2**53)):
        db.set_meta("generation", value)
        db.set_meta("store_seq", value)
        assert db.generation == kept and db.store_seq == kept
    db.set_meta("store_seq", "")
    assert db.store_seq is None
    for bad in ("-1", "1.5", str(2**53 + 2), "inf", "nan", "x"):
        db.set_meta("work_seq", bad)
        with pytest.raises(SyncDbError, match=r"damaged \(meta work_seq: "):
            _ = db.work_seq


def test_the_last_cycle_is_a_time_of_the_years_1_to_9999(db: SyncDb) -> None:
    first, last = YEARS_1_TO_9999
    assert db.last_cycle is None
    for good in (first, last, AT, -1.5):
        db.set_meta("last_cycle", repr(good))
        assert db.last_cycle == good
    for bad in (first - 1, last + 1, math.inf, -math.inf):
        db.set_meta("last_cycle", repr(bad))
        with pytest.raises(SyncDbError, match=r"damaged \(meta last_cycle: not a "):
            _ = db.last_cycle


def test_a_damaged_value_names_the_file_and_the_value(db: SyncDb, tmp_path: Path) -> None:
    db.conn.execute(
        "INSERT INTO link (prospect, object, crm_id, times) VALUES ('a', 'lead', '1', ?)",
        ('{"phone": "x"}',),
    )
    with pytest.raises(SyncDbError) as e:
        db.link("a")
    assert str(e.value) == (
        f"{tmp_path / 's.sync.db'}: the sync file is damaged (a link: not a number: 'x');"
        " restore it from a backup"
    )


def _link_row(db: SyncDb, prospect: str, crm_id: Any = "003A", deleted: int = 0) -> None:
    db.conn.execute(
        "INSERT INTO link (prospect, object, crm_id, base, times, deleted)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (prospect, "contact", crm_id, '{"Phone": "1"}', f'{{"phone": {AT}}}', deleted),
    )


def test_a_link_is_read_back_as_it_was_kept(db: SyncDb) -> None:
    _link_row(db, "a@x.example", deleted=1)
    _link_row(db, "b@x.example", crm_id="003B")
    a = ("contact", "003A", {"Phone": "1"}, {"phone": AT}, True)
    b = ("contact", "003B", {"Phone": "1"}, {"phone": AT}, False)
    assert db.link("a@x.example") == a and db.link("b@x.example") == b
    assert db.link("c@x.example") is None
    assert db.links() == {"a@x.example": a, "b@x.example": b}
    assert type(db.link("a@x.example")[4]) is bool  # type: ignore[index]


def test_values_that_are_not_what_mrules_wrote_are_named_cut(db: SyncDb) -> None:
    """A value is quoted by its first 40 characters, a reason by its first 80."""
    _link_row(db, "a@x.example", crm_id=b"x" * 60)  # a BLOB where text goes
    with pytest.raises(SyncDbError, match=r"\(a link: not text: \"b'x{38}\"\)"):
        db.link("a@x.example")
    _queue(db, "q@x.example", [], AT, 0, 0)
    db.conn.execute("UPDATE queue SET since = ?", ("soon" * 20,))
    with pytest.raises(SyncDbError, match=r"not a number: '(soon){10}'\)"):
        db.queue()
    db.conn.execute("INSERT INTO cursor VALUES ('Lead', ?, '00Q1')", ("x" * 100,))
    with pytest.raises(SyncDbError) as e:
        db.cursors()
    reason = f"Invalid isoformat string: '{'x' * 100}'"[:80]
    assert f"(the cursor of 'Lead': {reason});" in str(e.value)


def test_a_damaged_value_of_a_sync_file_in_memory_is_named(tmp_path: Path) -> None:
    db = SyncDb.open(":memory:")
    try:
        db.set_meta("generation", "x")
        with pytest.raises(SyncDbError) as e:
            _ = db.generation
        assert str(e.value).startswith(":memory:: the sync file is damaged (meta generation: ")
    finally:
        db.close()


def test_the_api_calls_are_their_running_total(db: SyncDb) -> None:
    db.set_meta("api_calls", 7)
    assert db.api_calls() == 7


class _Store:
    def __init__(self, meta: dict[str, Any]) -> None:
        self._meta = meta

    def meta(self) -> dict[str, Any]:
        return self._meta


def test_a_store_is_known_by_its_id() -> None:
    assert store_identity(_Store({"store_id": "abc"})) == "abc"
    assert store_identity(_Store({"store_id": 12})) == "12"
    assert store_identity(_Store({})) is None and store_identity(_Store({"store_id": ""})) is None
    assert store_identity(object()) is None  # in memory, PostgreSQL: no meta
