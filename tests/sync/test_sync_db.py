"""The sync file's own state read back as it was kept (mrules.sync.db,
docs/sync.md#the-sync-file): what is queued and when it is due, what is held, what `sync
retry` marks, which facts wait for the engine, and the values a damaged file holds named.

Direct: a sync file made by `SyncDb.open`, rows written as a cycle writes them.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from mrules.storeapi import YEARS_1_TO_9999
from mrules.sync.db import (
    NOT_WAITING,
    PlanLinks,
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


# -- what the cycles left: held errors, cursors, facts for the engine --------------------------


def test_held_errors_are_read_oldest_first(db: SyncDb) -> None:
    _error(db, "b@x.example", "phone", at=AT + 60)
    _error(db, "b@x.example", "email", at=AT)
    _error(db, "a@x.example", "title", at=AT)
    got = db.errors()
    assert [(e["prospect"], e["field"]) for e in got] == [
        ("a@x.example", "title"),
        ("b@x.example", "email"),
        ("b@x.example", "phone"),
    ]
    assert got[0] == {
        "prospect": "a@x.example",
        "object": "lead",
        "crm_id": "00Q1",
        "field": "title",
        "code": "X",
        "message": "m",
        "value": None,
        "at": AT,
        "attempts": 1,
        "retry": 0,
    }
    _error(db, "c@x.example", "title", at=AT + 99, crm_id=None)  # refused before a record
    assert db.errors()[-1]["crm_id"] is None
    for column in ("prospect", "field"):  # a BLOB where text goes
        db.conn.execute(f"UPDATE error SET {column} = CAST({column} AS BLOB) WHERE at = ?", (AT,))
        with pytest.raises(SyncDbError, match=r"\(a held error of .*: not text: "):
            db.errors()
        db.conn.execute(f"UPDATE error SET {column} = CAST({column} AS TEXT)")
    db.conn.execute("UPDATE error SET at = 'today' WHERE field = 'phone'")
    with pytest.raises(SyncDbError, match=r"\(a held error of 'b@x.example': not a number: "):
        db.errors()


def test_cursors_and_the_facts_not_yet_delivered(db: SyncDb) -> None:
    db.conn.execute("INSERT INTO cursor VALUES ('Lead', '2026-11-02T09:00:00.000+0000', '00Q9')")
    assert db.cursors() == {"Lead": ("2026-11-02T09:00:00.000+0000", "00Q9")}
    facts = [("p2", {"n": 1}, 0), ("p1", {"n": 2}, 1), ("p1", {"n": 3}, 0), ("p2", {"n": 4}, 0)]
    for source, event, delivered in facts:
        db.conn.execute(
            "INSERT INTO inbound (source, event, delivered) VALUES (?, ?, ?)",
            (source, json.dumps(event), delivered),
        )
    assert db.undelivered() == [(1, "p2", {"n": 1}), (3, "p1", {"n": 3}), (4, "p2", {"n": 4})]
    assert db.undelivered_sources() == ["p2", "p1"]  # by their oldest fact not delivered
    assert list(db.undelivered_lines("p2")) == [(1, '{"n": 1}'), (4, '{"n": 4}')]
    assert list(db.undelivered_lines("p1")) == [(3, '{"n": 3}')]
    db.conn.execute("UPDATE inbound SET event = '[1]' WHERE n = 4")
    with pytest.raises(SyncDbError, match=r"\(inbound fact 4: not a JSON dict\)"):
        db.undelivered()


def test_the_failed_cycle_and_the_parts_not_done_for_want_of_access(db: SyncDb) -> None:
    assert db.failed_cycle is None and db.no_access == []
    failed = {
        "at": "2026-11-02T09:00:00Z",
        "error": "INVALID_FIELD: y",
        "created": 2,
        "updated": 0,
        "campaign_members": 1,
        "tasks": 0,
    }
    db.set_meta("failed_cycle", json.dumps(failed))
    assert db.failed_cycle == failed
    refused = [{"object": "Task", "code": "C", "message": "m", "said": "s"}]
    db.set_meta("no_access", json.dumps(refused))
    assert db.no_access == refused
    db.set_meta("no_access", json.dumps([{"object": "Task", "code": "C", "message": "m"}]))
    with pytest.raises(SyncDbError, match=r"\(meta no_access: 'said'\)"):
        _ = db.no_access
    db.set_meta("failed_cycle", json.dumps(failed | {"tasks": 1.5}))
    with pytest.raises(SyncDbError, match=r"\(meta failed_cycle: not a count: 1.5\)"):
        _ = db.failed_cycle


def test_the_crm_facts_kept_and_the_counts(db: SyncDb) -> None:
    """What the plan reads of opportunities and their contact roles, the records sent to
    marketing, the prospects to look at again, the plans applied and the live links."""
    db.conn.execute(
        "INSERT INTO opportunity (id, name, stage, amount, close_date, is_won, is_closed,"
        " deleted) VALUES ('006A', 'Big', 'Won', 10.5, '2026-12-01', 1, 1, 0)"
    )
    db.conn.execute("INSERT INTO opportunity_role VALUES ('00K1', '006A', '003A', 'B', 1, 1)")
    db.conn.execute("INSERT INTO opportunity_role VALUES ('00K2', '006A', '003B', 'B', 0, 0)")
    assert db.opportunities() == {
        "006A": {
            "id": "006A",
            "name": "Big",
            "stage": "Won",
            "amount": 10.5,
            "close_date": "2026-12-01",
            "is_won": 1,
            "is_closed": 1,
            "deleted": 0,
        }
    }
    assert db.roles() == {"00K1": ("006A", "003A", True), "00K2": ("006A", "003B", False)}
    assert db.sends() == {} and db.dirty() == set()
    db.conn.execute("INSERT INTO send VALUES ('00Q1', 'lead', ?), ('003A', 'contact', ?)", (AT, AT))
    db.conn.execute("INSERT INTO dirty VALUES ('a@x.example'), ('b@x.example')")
    db.conn.execute("INSERT INTO applied_plan VALUES ('p1', ?, '{}')", (AT,))
    assert db.sends() == {"00Q1": "lead", "003A": "contact"}
    assert db.dirty() == {"a@x.example", "b@x.example"}
    assert db.applied("p1") and not db.applied("p2")
    _link_row(db, "a@x.example")
    _link_row(db, "b@x.example", crm_id="003B", deleted=1)
    _link_row(db, "c@x.example", crm_id="003C")
    assert db.count("link") == 3 and db.live_links() == 2 and db.count("queue") == 0


def test_a_file_from_before_sends_read_only_has_none_sent(tmp_path: Path) -> None:
    """`sync status` and the reports open the file read-only: no table is made."""
    path = tmp_path / "s.sync.db"
    SyncDb.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE send")
    conn.commit()
    conn.close()
    ro = SyncDb.open(path, readonly=True)
    try:
        assert ro.sends() == {}
    finally:
        ro.close()


def test_a_cursor_that_cannot_be_read_is_named_by_its_object_cut(db: SyncDb) -> None:
    db.conn.execute("INSERT INTO cursor VALUES (?, 'yesterday', '00Q1')", ("O" * 50,))
    with pytest.raises(SyncDbError, match=rf"\(the cursor of '{'O' * 40}': "):
        db.cursors()


def test_a_held_error_that_cannot_be_read_is_named_by_its_prospect_cut(db: SyncDb) -> None:
    _error(db, LONG, "phone")
    db.conn.execute("UPDATE error SET at = 'today'")
    with pytest.raises(SyncDbError, match=rf"\(a held error of '{'a' * 40}': "):
        db.errors()


# -- the links a plan reads and changes (PlanLinks) --------------------------------------------


@pytest.mark.parametrize("limit", [5000, 0])
def test_a_plan_looks_links_up_as_a_dict_of_every_link_would(db: SyncDb, limit: int) -> None:
    """By prospect and by CRM id, a page at a time or one at a time, with this plan's own
    changes read first; in memory or on disk (a first link of thousands)."""
    _link_row(db, "a@x.example", crm_id="003A")
    _link_row(db, "b@x.example", crm_id="003B", deleted=1)
    _link_row(db, "c@x.example", crm_id="003B")  # a CRM id twice: the last row wins
    a = ("contact", "003A", {"Phone": "1"}, {"phone": AT}, False)
    for paged in (False, True):
        links = PlanLinks(db.conn, limit=limit)
        if paged:
            links.page(["003A", "003B", "003Z", "003A"], ["a@x.example", "new@x.example"])
        assert links.by_crm("003A") == "a@x.example" and links.by_crm("003B") == "c@x.example"
        assert links.by_crm("003Z") is None
        assert links.get("a@x.example") == a and links["a@x.example"] == a
        assert links.get("new@x.example") is None and links.get("new@x.example", 1) == 1
        assert "a@x.example" in links and "new@x.example" not in links and 3 not in links
        with pytest.raises(KeyError):
            links["new@x.example"]
        # This plan's changes: a CRM id taken, a link moved, a link made.
        links.take_crm("003B", "a@x.example")
        moved = ("contact", "003B", {}, {}, False)
        links.set("a@x.example", moved)
        made = ("lead", "00QN", {}, {}, False)
        links.set("new@x.example", made, new=True)
        links.set("new@x.example", made)  # set again: still new
        links.set("c@x.example", ("contact", "003C", {}, {}, False))
        links.set("c@x.example", ("contact", "003C", {}, {}, False), new=True)  # new now
        assert links.by_crm("003B") == "a@x.example" and links.get("a@x.example") == moved
        assert links.get("new@x.example") == made and "new@x.example" in links
        assert links.is_new("new@x.example") and not links.is_new("a@x.example")
        assert not links.is_new("nobody@x.example")
        assert list(links.new()) == ["new@x.example", "c@x.example"]
        assert [(p, link[1], fresh) for p, link, fresh in links.walk()] == [
            ("a@x.example", "003B", False),
            ("b@x.example", "003B", False),
            ("c@x.example", "003C", True),
            ("new@x.example", "00QN", True),
        ]
        links.close()


def test_the_prospect_of_a_contact_is_the_last_linked_to_it(db: SyncDb) -> None:
    """In the order of `walk`: the file's links, then this plan's; a link deleted or moved
    away by this plan is not the contact's any more."""
    _link_row(db, "a@x.example", crm_id="003A")
    _link_row(db, "b@x.example", crm_id="003A")
    _link_row(db, "d@x.example", crm_id="003D")
    links = PlanLinks(db.conn)
    assert links.contact_prospect("003A") == "b@x.example"
    assert links.contact_prospect("003Z") is None
    links.set("b@x.example", ("contact", "003Q", {}, {}, False))  # moved away
    assert links.contact_prospect("003A") == "a@x.example"
    links.take_crm("003A", "n@x.example")  # a prospect new to the file takes it
    links.set("n@x.example", ("contact", "003A", {}, {}, False), new=True)
    assert links.contact_prospect("003A") == "n@x.example"
    links.take_crm("003D", "a@x.example")  # one in the file: its place is its row's
    links.set("a@x.example", ("contact", "003D", {}, {}, False))
    assert links.contact_prospect("003D") == "d@x.example"
    links.set("d@x.example", ("lead", "003D", {}, {}, False))  # a lead's id is no contact's
    assert links.contact_prospect("003D") == "a@x.example"
    links.close()


# -- the file itself ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "sync"),
    [
        ("w.db", "w.sync.db"),
        ("mrules.db", "mrules.sync.db"),
        ("store", "store.sync.db"),
        ("a.b.db", "a.b.sync.db"),
        (".db", ".db.sync.db"),
    ],
)
def test_the_sync_file_is_beside_the_store(tmp_path: Path, store: str, sync: str) -> None:
    assert default_sync_path(tmp_path / store) == tmp_path / sync


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        ("4", "the sync file was written by a newer mrules (schema 4; this mrules"),
        ("10", "the sync file was written by a newer mrules (schema 10; this mrules"),
        ("0", "sync file schema 0 is not 3"),
        ("x", "sync file schema x is not 3"),
        ("-4", "sync file schema -4 is not 3"),
    ],
)
def test_a_sync_file_of_another_schema_is_refused_untouched(
    tmp_path: Path, schema: str, said: str
) -> None:
    path = tmp_path / "s.sync.db"
    SyncDb.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (schema,))
    conn.execute("DROP TABLE send")
    conn.commit()
    conn.close()
    with pytest.raises(SyncDbError) as e:
        SyncDb.open(path)
    assert str(e.value).startswith(f"{path}: {said}")
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "send" not in tables


def test_a_contact_taken_by_a_later_row_of_the_file_is_its_prospect(db: SyncDb) -> None:
    """The taker's place is its own row's: after the row of the contact's first prospect."""
    _link_row(db, "w@x.example", crm_id="003W")
    _link_row(db, "x@x.example", crm_id="003X")
    _link_row(db, "y@x.example", crm_id="003Y")
    links = PlanLinks(db.conn)
    links.take_crm("003X", "y@x.example")
    links.set("y@x.example", ("contact", "003X", {}, {}, False))
    assert links.contact_prospect("003X") == "y@x.example"
    # A contact no link of the file has, taken by a prospect new to the file.
    links.take_crm("003N", "n@x.example")
    links.set("n@x.example", ("contact", "003N", {}, {}, False), new=True)
    assert links.contact_prospect("003N") == "n@x.example"
    links.close()
