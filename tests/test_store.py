"""The SQLite state store: round trips, atomic commits, locking, errors, SIGKILL safety."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrules import __version__, api
from mrules.batch import Batch
from mrules.store import SCHEMA_VERSION, Store, StoreError, StoreLocked, StorePathError
from mrules.storeapi import NotAStore

SRC = Path(__file__).resolve().parent.parent / "src"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "mrules.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store.open(db) as s:
        yield s


def full_batch(line: int = 3, seq: int = 0) -> Batch:
    """A batch that fills every field, as the engine would after `line` lines."""
    src = "/data/events.jsonl"
    return Batch(
        source=src,
        line=line,
        clock=1_790_000_000.5,
        prospects={"a@x.com": b'{"score":5}', "b@x.com": b"\x00\xffraw"},
        visitors={"v-1": ("a@x.com", b"[1,2]"), "v-2": (None, b"[]")},
        applied_ids=["ev-1", "ev-2"],
        activities=[
            ("a@x.com", "v-1", 10.0, "form_submit", "form", "Demande", None, src, 1, "ev-1"),
            (None, "v-2", 11.0, "page_view", None, None, "https://x.com/p", src, 2, None),
        ],
        ledger=[
            (seq + 1, 10.0, "a@x.com", "completion", "Demande", "r.mr:3:1", src, 1, "ev-1",
             "adjust_score", '{"by":5}', '{"score":0}', '{"score":5}'),
        ],
        outbox=[(seq + 2, 10.0, "a@x.com", "notify", '{"user":"sales"}')],
        crm_pending=[(seq + 3, 10.0, "a@x.com", "campaign_member", '{"campaign":"Q4"}')],
        rejects=[(src, 3, "not JSON", "{oops")],
        shared={"rr:sales": '{"next":1}'},
        rules=[("completion:Demande", "completion", 10.0), ("score:opens", "scoring", None)],
        ruleset_version="sha256:abc",
        attach_visitor=[],
    )  # fmt: skip


def dump(s: Store) -> dict[str, Any]:
    """Everything the store's read API returns, for whole-state comparisons."""
    return {
        "streams": s.streams(),
        "clock": s.clock(),
        "ruleset_version": s.ruleset_version(),
        "rules": s.rules_first_seen(),
        "applied": s.applied_ids(),
        "prospects": list(s.prospects()),
        "visitors": list(s.visitors()),
        "shared": s.shared(),
        "activities": list(s.activities()),
        "ledger": list(s.ledger()),
        "outbox": list(s.outbox()),
        "crm_pending": list(s.crm_pending()),
        "rejects": list(s.rejects()),
        "max_seq": s.max_seq(),
    }


# -- round trips -----------------------------------------------------------------------------


def test_every_batch_field_round_trips_through_a_reopen(db: Path) -> None:
    batch = full_batch()
    with Store.open(db) as s:
        s.commit(batch)
    with Store.open(db, readonly=True) as s:
        assert s.stream_position(batch.source) == 3
        assert s.stream_position("/other.jsonl") == 0
        assert s.clock() == batch.clock
        assert s.ruleset_version() == "sha256:abc"
        assert s.rules_first_seen() == {k: t for k, _, t in batch.rules}
        assert list(s.rules()) == sorted(batch.rules)
        assert s.applied_ids() == {"ev-1", "ev-2"}
        assert s.has_applied("ev-2") and not s.has_applied("ev-3")
        assert s.prospect("b@x.com") == b"\x00\xffraw"
        assert s.prospect("c@x.com") is None
        assert list(s.prospects()) == sorted(batch.prospects.items())
        assert s.prospect_count() == 2
        assert list(s.visitors()) == [(v, p, h) for v, (p, h) in sorted(batch.visitors.items())]
        assert s.shared() == batch.shared
        assert list(s.activities()) == batch.activities
        assert list(s.activities("a@x.com")) == batch.activities[:1]
        assert list(s.ledger()) == batch.ledger
        assert list(s.outbox()) == batch.outbox
        assert list(s.crm_pending()) == batch.crm_pending
        assert list(s.rejects()) == batch.rejects
        assert s.max_seq() == 3
        meta = s.meta()
        assert meta["schema_version"] == str(SCHEMA_VERSION)
        assert meta["ruleset_version"] == "sha256:abc"
        assert float(meta["clock"]) == batch.clock
        assert {"created_at", "mrules_version"} <= meta.keys()


def test_a_new_store_is_empty(store: Store) -> None:
    assert dump(store) == {
        "streams": {},
        "clock": None,
        "ruleset_version": None,
        "rules": {},
        "applied": set(),
        "prospects": [],
        "visitors": [],
        "shared": {},
        "activities": [],
        "ledger": [],
        "outbox": [],
        "crm_pending": [],
        "rejects": [],
        "max_seq": 0,
    }
    assert store.prospect_count() == 0


def test_upserts_replace_and_first_seen_keeps_the_first(store: Store) -> None:
    store.commit(full_batch(line=3))
    second = Batch(
        source="/data/events.jsonl",
        line=7,
        clock=None,
        prospects={"a@x.com": b"new"},
        visitors={"v-2": ("b@x.com", b"[9]")},
        applied_ids=["ev-2", "ev-7"],
        rejects=[("/data/events.jsonl", 3, "still not JSON", "{oops!")],
        shared={"throttle": "3"},
        rules=[("completion:Demande", "completion", 99.0), ("new", "automation", 20.0)],
    )
    store.commit(second)
    assert store.stream_position("/data/events.jsonl") == 7
    assert store.clock() == 1_790_000_000.5, "clock None leaves the clock"
    assert store.ruleset_version() == "sha256:abc", "ruleset_version None leaves it"
    assert store.prospect("a@x.com") == b"new"
    assert store.prospect("b@x.com") == b"\x00\xffraw"
    assert dict((v, (p, h)) for v, p, h in store.visitors())["v-2"] == ("b@x.com", b"[9]")
    assert store.applied_ids() == {"ev-1", "ev-2", "ev-7"}
    assert list(store.rejects()) == [("/data/events.jsonl", 3, "still not JSON", "{oops!")]
    assert store.shared() == {"rr:sales": '{"next":1}', "throttle": "3"}
    assert store.rules_first_seen() == {
        "completion:Demande": 10.0,
        "score:opens": None,
        "new": 20.0,
    }


def _damaged(db: Path, sql: str) -> int:
    """A committed store, then `sql` run on its file as damage would; rows changed."""
    with Store.open(db) as s:
        s.commit(full_batch(line=3))
    with sqlite3.connect(db) as raw:
        changed = raw.execute(sql).rowcount
    raw.close()
    return changed


@pytest.mark.parametrize("value", ["'abc'", "X'FF'", "1e999"])
def test_a_rules_first_seen_time_of_another_type_is_damage(db: Path, value: str) -> None:
    _damaged(db, f"UPDATE rules SET first_seen = {value} WHERE key = 'completion:Demande'")
    with Store.open(db) as s:
        for read in (s.rules_first_seen, lambda: list(s.rules())):
            with pytest.raises(StoreError, match="when rule completion:Demande was first seen"):
                read()


def test_an_email_that_is_not_text_is_damage_where_history_names_its_prospect(db: Path) -> None:
    # History rows name their prospect by id, read back as its email: a blob there reached
    # the JSON writer of `state outbox` (the engine's messages are ledger steps) as bytes,
    # an internal error.
    assert (
        _damaged(
            db, "UPDATE prospects SET email = x'' WHERE id = (SELECT min(prospect) FROM history)"
        )
        == 1
    )
    with (
        Store.open(db) as s,
        pytest.raises(StoreError, match=r"damaged \(the email of prospect id 1 is"),
    ):
        list(s.ledger())


def test_a_names_id_far_past_the_table_is_damage_not_a_huge_list(db: Path) -> None:
    # Ids are given in turn from 1. One of 2**62 made the reader grow its list of names
    # to that size: a MemoryError (an internal error) where the store is damaged.
    _damaged(db, "UPDATE names SET id = 4611686018427387904 WHERE id = (SELECT max(id) FROM names)")
    with Store.open(db) as s, pytest.raises(StoreError, match=r"damaged \(a name's id"):
        list(s.ledger())


def test_a_prospect_id_at_the_top_is_damage_and_the_commit_keeps_nothing(db: Path) -> None:
    # Prospect ids are given in turn. After one of 2**63 - 1, a new prospect's id did not
    # fit an SQLite integer: an OverflowError out of the commit (exit 70, an internal error).
    _damaged(db, f"UPDATE prospects SET id = {2**63 - 1} WHERE email = 'b@x.com'")
    new = Batch("-", 9, 2.0, prospects={"c@x.com": b"{}", "a@x.com": b'{"score":6}'})
    with Store.open(db) as s:
        with pytest.raises(
            StoreError, match=rf"damaged \(the largest prospect id is '{2**63 - 1}'\)"
        ):
            s.commit(new)
        assert s.prospect("c@x.com") is None and s.prospect("a@x.com") == b'{"score":5}'


def test_the_largest_prospect_id_is_given_before_the_store_refuses_more(db: Path) -> None:
    # Ids go up by one to SQLite's largest integer: the prospect that gets it is kept, the
    # next one is refused.
    _damaged(db, f"UPDATE prospects SET id = {2**63 - 2} WHERE email = 'b@x.com'")
    with Store.open(db) as s:
        s.commit(Batch("-", 9, 2.0, prospects={"c@x.com": b"{}"}))
        with pytest.raises(
            StoreError, match=rf"damaged \(the largest prospect id is '{2**63 - 1}'\)"
        ):
            s.commit(Batch("-", 10, 3.0, prospects={"d@x.com": b"{}"}))
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT id FROM prospects WHERE email = 'c@x.com'").fetchone() == (
            2**63 - 1,
        )
    raw.close()


def test_a_history_seq_that_is_not_a_number_is_damage(db: Path) -> None:
    _damaged(db, "UPDATE history SET seq = x'00ff' WHERE seq IS NOT NULL")
    with Store.open(db) as s:
        for read in (lambda: list(s.ledger()), lambda: list(s.ledger(after_seq=1))):
            with pytest.raises(StoreError, match="a history row cannot be read: its seq is"):
                read()


@pytest.mark.parametrize(("column", "shown"), [("seq", "its seq is"), ("ts", "its time is")])
def test_a_history_value_of_another_type_is_shown_in_its_first_40_characters(
    db: Path, column: str, shown: str
) -> None:
    _damaged(db, f"UPDATE history SET {column} = '{'x' * 30}{'y' * 30}' WHERE seq IS NOT NULL")
    with Store.open(db) as s, pytest.raises(StoreError) as caught:
        list(s.ledger())
    assert f"{shown} '{'x' * 30}{'y' * 10}')" in str(caught.value)


def test_the_first_and_the_last_time_a_date_can_show_read_back(store: Store) -> None:
    """A history time is damage outside the years 1 to 9999 (no date shows it): the first
    and the last moment of that range are not."""
    from mrules.timetext import FIRST_TIME, LAST_TIME

    rows = [
        ("a@x.com", None, ts, "page_view", None, None, "https://x.com/p", "-", n, None)
        for n, ts in enumerate([FIRST_TIME, LAST_TIME], 1)
    ]
    store.commit(Batch("-", 2, None, activities=rows))
    assert [a[2] for a in store.activities()] == [FIRST_TIME, LAST_TIME]


def test_a_steps_args_that_are_not_an_object_are_damage(db: Path) -> None:
    # A step's args are a names id of their JSON text: a text changed to `-1` gave readers
    # an int where they read keys (explain's AttributeError, an internal error).
    assert _damaged(db, "UPDATE names SET text = '-1' WHERE text LIKE '{%'")
    with Store.open(db) as s, pytest.raises(StoreError, match="args are not a JSON object"):
        list(s.ledger())


def test_shared_none_leaves_shared_state(store: Store) -> None:
    store.commit(Batch("-", 1, 1.0, shared={"k": "1"}))
    store.commit(Batch("-", 2, 2.0, shared=None))
    store.commit(Batch("-", 3, 3.0, shared={}))
    assert store.shared() == {"k": "1"}


def test_attach_visitor_claims_only_that_visitors_anonymous_activities(store: Store) -> None:
    def view(visitor: str, prospect: str | None, ts: float) -> tuple[Any, ...]:
        return (prospect, visitor, ts, "page_view", None, None, "https://x.com", "-", int(ts), None)

    store.commit(Batch("-", 2, 2.0, activities=[view("v-1", None, 1.0), view("v-2", None, 2.0)]))
    store.commit(
        Batch(
            "-",
            5,
            5.0,
            activities=[view("v-1", None, 3.0), view("v-1", "old@x.com", 4.0)],
            attach_visitor=[("v-1", "new@x.com")],
        )
    )
    assert [(a[0], a[1], a[2]) for a in store.activities()] == [
        ("new@x.com", "v-1", 1.0),
        (None, "v-2", 2.0),
        ("new@x.com", "v-1", 3.0),
        ("old@x.com", "v-1", 4.0),
    ]
    assert [a[2] for a in store.activities("new@x.com")] == [1.0, 3.0]


def test_attach_visitor_uses_the_anonymous_index(store: Store) -> None:
    conn = sqlite3.connect(store.path)
    plan = conn.execute(
        "EXPLAIN QUERY PLAN UPDATE history SET prospect = ? WHERE visitor = ? AND prospect IS NULL",
        (1, "v"),
    ).fetchall()
    conn.close()
    assert any("history_anonymous" in row[-1] for row in plan), plan


def test_activities_are_ordered_by_ts_then_insertion(store: Store) -> None:
    rows = [
        ("p@x.com", None, ts, t, None, None, None, "-", i, None)
        for i, (ts, t) in enumerate([(5.0, "a"), (1.0, "b"), (5.0, "c"), (1.0, "d")])
    ]
    store.commit(Batch("-", 2, None, activities=rows[:2]))
    store.commit(Batch("-", 4, None, activities=rows[2:]))
    assert [a[3] for a in store.activities()] == ["b", "d", "a", "c"]


def test_ledger_filters_and_max_seq_spans_three_tables(store: Store) -> None:
    def entry(seq: int, prospect: str) -> tuple[Any, ...]:
        return (seq, 1.0, prospect, "automation", "r", None, "-", 1, None, "tag", "{}", "{}", "{}")

    store.commit(
        Batch(
            "-",
            1,
            1.0,
            ledger=[entry(1, "a@x.com"), entry(2, "b@x.com"), entry(4, "a@x.com")],
            outbox=[(3, 1.0, "a@x.com", "notify", "{}")],
            crm_pending=[(9, 1.0, "b@x.com", "task", "{}"), (5, 1.0, "a@x.com", "task", "{}")],
        )
    )
    assert [e[0] for e in store.ledger()] == [1, 2, 4]
    assert [e[0] for e in store.ledger("a@x.com")] == [1, 4]
    assert [e[0] for e in store.ledger(after_seq=1)] == [2, 4]
    assert [e[0] for e in store.ledger("a@x.com", after_seq=1)] == [4]
    assert [c[0] for c in store.crm_pending()] == [5, 9]
    assert [c[0] for c in store.crm_pending("b@x.com")] == [9]
    assert store.max_seq() == 9


def test_outbox_by_email_gives_each_prospects_messages_by_seq(store: Store) -> None:
    """What `mrules replay` compares a prospect at a time: the outbox in email order, each
    prospect's messages by seq, all of them (the engine's and plain records alike)."""
    store.commit(full_batch())
    store.commit(
        Batch(
            "-",
            4,
            2.0,
            outbox=[
                (7, 2.0, "b@x.com", "notify", '{"user":"b"}'),
                (5, 2.0, "a@x.com", "autoresponder", '{"email":"Hi"}'),
                (6, 2.0, "b@x.com", "notify", '{"user":"a"}'),
            ],
        )
    )
    grouped = list(store.outbox_by_email())
    assert [(e, [m.seq for m in ms]) for e, ms in grouped] == [
        ("a@x.com", [2, 5]),
        ("b@x.com", [6, 7]),
    ]
    assert sorted(m for _e, ms in grouped for m in ms) == sorted(store.outbox())


def test_rejects_filter_by_source(store: Store) -> None:
    store.commit(Batch("b", 1, None, rejects=[("b", 1, "r", "t"), ("a", 2, "r", "t")]))
    assert [r[:2] for r in store.rejects()] == [("a", 2), ("b", 1)]
    assert [r[:2] for r in store.rejects("b")] == [("b", 1)]


def test_snapshot_reads_one_committed_state_while_a_writer_commits(db: Path) -> None:
    with Store.open(db) as writer, Store.open(db, readonly=True) as reader:
        writer.commit(Batch("-", 1, 1.0, prospects={"a@x.com": b"1"}))
        with reader.snapshot():
            assert reader.prospect_count() == 1
            writer.commit(Batch("-", 2, 2.0, prospects={"b@x.com": b"2"}))
            assert reader.prospect_count() == 1
            assert reader.stream_position("-") == 1
        assert reader.prospect_count() == 2
        assert reader.stream_position("-") == 2


# -- a model-based property: any sequence of batches reads back as a plain model --------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=6)
_emails = st.sampled_from(["a@x.com", "b@x.com", "c@x.com"])
_batches = st.lists(
    st.fixed_dictionaries(
        {
            "prospects": st.dictionaries(_emails, st.binary(max_size=8), max_size=3),
            "visitors": st.dictionaries(
                st.sampled_from(["v1", "v2"]),
                st.tuples(st.none() | _emails, st.binary(max_size=4)),
                max_size=2,
            ),
            "applied": st.lists(st.sampled_from(["e1", "e2", "e3", "e4"]), max_size=3),
            "shared": st.none() | st.dictionaries(st.sampled_from(["k1", "k2"]), _text),
            "rules": st.lists(
                st.tuples(
                    st.sampled_from(["r1", "r2", "r3"]),
                    st.just("automation"),
                    st.none() | st.floats(0, 1e10),
                ),
                max_size=3,
            ),
            "rejects": st.lists(st.tuples(st.integers(1, 4), _text), max_size=3),
            # (visitor, prospect or None, ts): ties in ts exercise insertion order
            "activities": st.lists(
                st.tuples(st.sampled_from(["v1", "v2"]), st.none() | _emails, st.integers(0, 3)),
                max_size=4,
            ),
            "attach": st.lists(st.tuples(st.sampled_from(["v1", "v2"]), _emails), max_size=2),
            "clock": st.none() | st.floats(0, 1e10),
            "version": st.none() | _text,
        }
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None)
@given(_batches)
def test_any_sequence_of_batches_matches_a_dict_model(batches: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _run_against_model(Path(tmp) / "mrules.db", batches)


def _run_against_model(path: Path, batches: list[dict]) -> None:
    model: dict[str, Any] = {
        "prospects": {},
        "visitors": {},
        "applied": set(),
        "shared": {},
        "rules": {},
        "rejects": {},
        "activities": [],
        "clock": None,
        "version": None,
    }
    with Store.open(path) as s:
        for n, b in enumerate(batches, start=1):
            s.commit(
                Batch(
                    "-",
                    n,
                    b["clock"],
                    prospects=b["prospects"],
                    visitors=b["visitors"],
                    applied_ids=b["applied"],
                    shared=b["shared"],
                    rules=b["rules"],
                    rejects=[("-", line, reason, "x") for line, reason in b["rejects"]],
                    activities=[(p, v, float(ts), "page_view", None, None, None, "-", n, None)
                                for v, p, ts in b["activities"]],
                    attach_visitor=b["attach"],
                    ruleset_version=b["version"],
                )
            )  # fmt: skip
            model["activities"] += [[p, v, float(ts)] for v, p, ts in b["activities"]]
            for visitor, prospect in b["attach"]:
                for a in model["activities"]:
                    if a[1] == visitor and a[0] is None:
                        a[0] = prospect
            model["prospects"].update(b["prospects"])
            model["visitors"].update(b["visitors"])
            model["applied"].update(b["applied"])
            model["shared"].update(b["shared"] or {})
            for key, _, first in b["rules"]:
                model["rules"].setdefault(key, first)
            model["rejects"].update({line: reason for line, reason in b["rejects"]})
            model["clock"] = model["clock"] if b["clock"] is None else b["clock"]
            model["version"] = model["version"] if b["version"] is None else b["version"]
        assert list(s.prospects()) == sorted(model["prospects"].items())
        assert list(s.visitors()) == [(v, p, h) for v, (p, h) in sorted(model["visitors"].items())]
        assert s.applied_ids() == model["applied"]
        assert s.shared() == model["shared"]
        assert s.rules_first_seen() == model["rules"]
        assert [(r[1], r[2]) for r in s.rejects()] == sorted(model["rejects"].items())
        in_order = sorted(model["activities"], key=lambda a: a[2])  # stable: ties keep insertion
        assert [[a[0], a[1], a[2]] for a in s.activities()] == in_order
        for email in ("a@x.com", "b@x.com"):
            assert [list(a[:3]) for a in s.activities(email)] == [
                a for a in in_order if a[0] == email
            ]
        assert s.clock() == model["clock"]
        assert s.ruleset_version() == model["version"]
        assert s.stream_position("-") == len(batches)


# -- atomicity ------------------------------------------------------------------------------

BAD_ROW = ("too", "short")

BAD_PARTS = {
    "prospects": {"prospects": {"z@x.com": b"ok", "y@x.com": {"not": "bytes"}}},
    "prospects-null-email": {"prospects": {None: b"no email"}},
    "visitors": {"visitors": {"v-9": ("z@x.com",)}},
    "applied_ids": {"applied_ids": ["ev-50", None]},
    "activities": {"activities": [full_batch().activities[0], BAD_ROW]},
    "ledger": {"ledger": [(50, 1.0, "z", "k", "n", None, "-", 1, None, "a", "{}", "{}", "{}"),
                          BAD_ROW]},
    "outbox": {"outbox": [(60, 1.0, "z", "notify", "{}"), (1, 1.0, "dup seq", "notify", "{}")]},
    "crm_pending": {"crm_pending": [BAD_ROW]},
    "rejects": {"rejects": [("-", 9, "r", "t"), ("-", 10, None, "reason is NOT NULL")]},
    "shared": {"shared": {"k": None}},
    "rules": {"rules": [("r", None, 1.0)]},
    "attach_visitor": {"attach_visitor": [("v-1",)]},
}  # fmt: skip


@pytest.mark.parametrize("part", BAD_PARTS)
def test_a_failing_commit_leaves_nothing_of_the_batch(store: Store, part: str) -> None:
    store.commit(Batch("/data/events.jsonl", 2, 1.0, outbox=[(1, 1.0, "a", "notify", "{}")]))
    before = dump(store)
    batch = full_batch(line=10, seq=100)  # every part valid, then one part spoilt
    for name, value in BAD_PARTS[part].items():
        setattr(batch, name, value)
    field = part.split("-")[0]
    with pytest.raises(StoreError, match=rf"cannot commit to store .*\({field} of the batch"):
        store.commit(batch)
    assert dump(store) == before
    store.commit(full_batch(line=10, seq=100))  # still usable, nothing left half-open
    assert store.stream_position("/data/events.jsonl") == 10


def test_a_readonly_store_refuses_to_commit(db: Path) -> None:
    Store.open(db).close()
    with Store.open(db, readonly=True) as s, pytest.raises(StoreError, match="read-only"):
        s.commit(Batch("-", 1, None))


def test_a_readonly_store_leaves_no_wal_files_and_no_change(db: Path) -> None:
    """`state export` and `explain` read a store: nothing of it may change, and no
    `-wal`/`-shm` file may stay beside it once they close."""
    with Store.open(db) as s:
        s.commit(full_batch(line=5, seq=10))
    before = db.read_bytes()
    assert sorted(p.name for p in db.parent.iterdir()) == ["mrules.db", "mrules.db.lock"]
    with Store.open(db, readonly=True) as s:
        assert s.stream_position("/data/events.jsonl") == 5
        assert s.prospect_count() > 0
    assert sorted(p.name for p in db.parent.iterdir()) == ["mrules.db", "mrules.db.lock"]
    assert db.read_bytes() == before


def test_a_readonly_store_connection_refuses_writes_but_not_temp_tables(db: Path) -> None:
    Store.open(db).close()
    with Store.open(db, readonly=True) as s:
        conn = s._connection()
        for sql in (
            "DELETE FROM meta",
            "INSERT INTO names (id, text) VALUES (999, 'x')",
            "CREATE TABLE main.extra (x)",
            "DROP TABLE names",
        ):
            with pytest.raises(sqlite3.DatabaseError):
                conn.execute(sql)
        conn.execute("CREATE TEMP TABLE scratch (x)")  # the reports build these
        conn.execute("INSERT INTO scratch VALUES (1)")
        assert conn.execute("SELECT count(*) FROM names WHERE id = 999").fetchone() == (0,)


def test_a_closed_store_refuses_reads_and_writes(db: Path) -> None:
    s = Store.open(db)
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.prospect_count()
    with pytest.raises(StoreError, match="closed"):
        s.commit(Batch("-", 1, None))


# -- locking (other processes) ----------------------------------------------------------------

HOLDER = """
import sys, time
from mrules import __version__
from mrules.batch import Batch
from mrules.store import Store
path, release_after = sys.argv[1], float(sys.argv[2])
store = Store.open(path)
store.commit(Batch("-", 1, 1.0, prospects={"held@x.com": b"1"}))
print("ready", flush=True)
if release_after >= 0:
    time.sleep(release_after)
    store.close()
    print("released", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def holder(db: Path, tmp_path: Path) -> Iterator[Any]:
    """Start a process that opens the store for writing; release_after < 0 keeps it."""
    procs: list[subprocess.Popen[str]] = []

    def start(release_after: float = -1) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        p = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db), str(release_after)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait(timeout=10)


def test_a_second_writer_is_refused_naming_the_holders_pid(db: Path, holder: Any) -> None:
    p = holder()
    t = time.monotonic()
    with pytest.raises(StoreLocked) as info:
        Store.open(db)
    assert time.monotonic() - t < 1, "refusing must not wait"
    assert info.value.pid == p.pid
    assert f"pid {p.pid}" in str(info.value)
    assert str(db) in str(info.value)


def test_waiting_writer_gives_up_after_its_timeout(db: Path, holder: Any) -> None:
    p = holder()
    t = time.monotonic()
    with pytest.raises(StoreLocked, match=rf"pid {p.pid}\) after waiting 0.3 s"):
        Store.open(db, wait=True, timeout=0.3)
    assert 0.25 <= time.monotonic() - t < 3


@pytest.mark.parametrize("timeout", [None, 10.0])
def test_waiting_writer_gets_the_store_when_the_holder_closes(
    db: Path, holder: Any, timeout: float | None
) -> None:
    t = time.monotonic()
    holder(release_after=0.5)
    with Store.open(db, wait=True, timeout=timeout) as s:
        waited = time.monotonic() - t
        assert s.prospect("held@x.com") == b"1"
    assert 0.4 <= waited < 8


def test_readonly_open_reads_while_a_run_holds_the_store(db: Path, holder: Any) -> None:
    holder()
    with Store.open(db, readonly=True) as s:
        assert s.prospect("held@x.com") == b"1"
        assert s.stream_position("-") == 1


def test_the_same_process_cannot_open_the_store_twice_for_writing(db: Path) -> None:
    with Store.open(db), pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
        Store.open(db)
    Store.open(db).close()  # released on close


# -- opening errors -------------------------------------------------------------------------


def _newer_schema(db: Path) -> None:
    Store.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()


def _foreign_sqlite(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER)")
    conn.commit()
    conn.close()


def _empty_sqlite(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 7")  # a valid database file with no table
    conn.close()


BAD_STORES = {
    "not-sqlite": lambda db: db.write_text("email,score\na@x.com,5\n" * 50),
    "directory": lambda db: db.mkdir(),
    "newer-schema": _newer_schema,
    "other-sqlite-database": _foreign_sqlite,
    "missing-folder": lambda db: None,
    "empty-file": lambda db: db.touch(),
    "empty-sqlite-database": _empty_sqlite,
}
# A wrong path is a usage error (exit 2); a file that is not a usable store, a store error (4),
# and another program's file or database a `NotAStore` (a store error: exit 4 too).
PATH_ERRORS = {"directory", "missing-folder"}
NOT_STORES = {"not-sqlite", "other-sqlite-database"}


@pytest.mark.parametrize("readonly", [False, True], ids=["write", "read"])
@pytest.mark.parametrize("case", BAD_STORES)
def test_unusable_stores_give_a_clear_store_error(
    tmp_path: Path, case: str, readonly: bool, snapshot: Any
) -> None:
    db = tmp_path / ("no-such-folder/mrules.db" if case == "missing-folder" else "mrules.db")
    BAD_STORES[case](db)
    before = db.read_bytes() if db.is_file() else None
    with pytest.raises(StoreError) as info:
        Store.open(db, readonly=readonly)
    want = (
        StorePathError if case in PATH_ERRORS else NotAStore if case in NOT_STORES else StoreError
    )
    assert type(info.value) is want
    message = str(info.value).replace(str(tmp_path), "<tmp>")
    assert message.replace(f"mrules {__version__} ", "mrules <version> ") == snapshot
    if before is not None:
        assert db.read_bytes() == before, "a refused file is left as it was"


def test_readonly_open_of_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Store.open(tmp_path / "mrules.db", readonly=True)
    assert list(tmp_path.iterdir()) == []


def test_readonly_open_of_an_empty_database_says_so(db: Path) -> None:
    _empty_sqlite(db)
    with pytest.raises(StoreError, match="empty: no run has written to it yet"):
        Store.open(db, readonly=True)


@pytest.mark.parametrize("readonly", [False, True], ids=["write", "read"])
def test_a_zero_byte_store_is_refused_not_taken_as_new(db: Path, readonly: bool) -> None:
    db.touch()
    with pytest.raises(StoreError, match=r"empty file \(0 bytes\).*delete it \(rm "):
        Store.open(db, readonly=readonly)
    assert db.stat().st_size == 0
    assert not db.with_name(db.name + "-wal").exists()


def test_a_new_store_is_created_whole(tmp_path: Path) -> None:
    """The store file appears with its schema in one rename: never a 0-byte store file."""
    db = tmp_path / "new.db"
    with Store.open(db) as s:
        assert s.meta()["schema_version"] == str(SCHEMA_VERSION)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.db", "new.db.lock"]
    # A creation killed half-way leaves at most the hidden temporary file, which the next
    # creation replaces.
    (tmp_path / ".again.db.new").write_bytes(b"half a schema")
    with Store.open(tmp_path / "again.db") as s:
        assert s.prospect_count() == 0
    assert not (tmp_path / ".again.db.new").exists()


def test_the_schema_is_as_documented(store: Store, snapshot: Any) -> None:
    conn = sqlite3.connect(store.path)
    sql = [
        r[0]
        for r in conn.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type DESC, name"
        )
    ]
    columns = {
        t: [c[1] for c in conn.execute(f"PRAGMA table_info({t})")]
        for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    conn.close()
    assert "\n".join(sql) == snapshot
    doc = (Path(__file__).resolve().parent.parent / "docs" / "store.md").read_text()
    for table, cols in columns.items():
        assert f"### `{table}`" in doc, f"docs/store.md does not describe table {table}"
        for col in cols:
            assert f"| `{col}` |" in doc, f"docs/store.md does not describe {table}.{col}"


def test_the_queries_of_looking_inside_run(tmp_path: Path) -> None:
    """docs/store.md's `sqlite3` session names tables and columns: each query runs on a
    store of the bundled example, read-only as the page says to open it."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "store.md").read_text()
    block = doc.split("## Looking inside", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    text = "\n".join(line for line in block.splitlines() if not line.startswith(("sqlite3", ".")))
    queries = [q.strip() for q in re.sub(r"--[^\n]*", "", text).split(";") if q.strip()]
    assert len(queries) == 7, queries
    example = Path(__file__).resolve().parent.parent / "examples" / "getcloudy"
    db = tmp_path / "mrules.db"
    api.run(str(example / "rules"), str(example / "events.jsonl"), store=str(db)).close()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        answers = [conn.execute(q).fetchall() for q in queries]
    finally:
        conn.close()
    assert answers[2] == [(6,)]  # SELECT count(*) FROM prospects
    assert answers[4], "leung@example.com's history rows"


# -- SIGKILL in the middle of commits ---------------------------------------------------------

BATCH = 1000

COMMITTER = f"""
import sys
from mrules import __version__
from mrules.batch import Batch
from mrules.store import Store
B = {BATCH}
store = Store.open(sys.argv[1], wait=True, timeout=10)
line = store.stream_position("ev")
while True:
    n = line // B  # batches already committed
    first, line = line + 1, line + B
    lines = range(first, line + 1)
    store.commit(Batch(
        "ev", line, float(line),
        prospects={{"all@x.com": str(n).encode(), **{{f"p{{i}}@x.com": b"s" for i in lines}}}},
        applied_ids=[f"e{{i}}" for i in lines],
        activities=[(f"p{{i}}@x.com", None, float(i), "email_open", None, None, None, "ev", i,
                     f"e{{i}}") for i in lines],
        ledger=[(i, float(i), f"p{{i}}@x.com", "automation", "r", None, "ev", i, f"e{{i}}", "tag",
                 "{{}}", "{{}}", "{{}}") for i in lines],
        rejects=[("ev", i, "bad", "x") for i in lines if i % 100 == 0],
        shared={{"batches": str(n + 1)}},
    ))
    print(line, flush=True)
"""


def _check_consistent(db: Path) -> int:
    with Store.open(db) as s:
        line = s.stream_position("ev")
        n = line // BATCH
        assert line % BATCH == 0
        assert s.applied_ids() == {f"e{i}" for i in range(1, line + 1)}
        assert s.prospect_count() == line + (1 if line else 0)
        if line:
            assert s.prospect("all@x.com") == str(n - 1).encode()
            assert s.shared() == {"batches": str(n)}
            assert s.clock() == float(line)
        assert s.max_seq() == line
        assert [e[0] for e in s.ledger()] == list(range(1, line + 1))
        assert [a[8] for a in s.activities()] == list(range(1, line + 1))
        assert len(list(s.rejects())) == line // 100
        return line


def test_sigkill_during_commits_leaves_a_committed_prefix(db: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    rng = random.Random()
    last = 0
    for _ in range(4):
        p = subprocess.Popen(
            [sys.executable, "-c", COMMITTER, str(db)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert p.stdout is not None
        reported = int(p.stdout.readline())  # the child committed at least once
        time.sleep(rng.uniform(0.0, 0.4))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate(timeout=10)
        reported = max([reported, *map(int, out.split())])
        line = _check_consistent(db)
        # Every reported commit survives; at most the one in flight when killed is lost
        # (or kept: it may have committed after its last report).
        assert reported <= line <= reported + BATCH
        assert line > last
        last = line


def test_bytes_and_none_bind_through_the_registered_identity_adapters() -> None:
    """The store registers identity adapters so sqlite3 skips its failing protocol
    lookups for bytes and None (bench/README.md); what is stored must not change."""
    import sqlite3

    import mrules.store  # noqa: F401  # registers the adapters

    proto = sqlite3.PrepareProtocol
    assert (bytes, proto) in sqlite3.adapters
    assert (type(None), proto) in sqlite3.adapters
    conn = sqlite3.connect(":memory:")
    row = conn.execute(
        "SELECT ?, typeof(?), ?, typeof(?)", (b"\x00ab", b"\x00ab", None, None)
    ).fetchone()
    assert row == (b"\x00ab", "blob", None, "null")


@pytest.mark.parametrize("readonly", [False, True])
def test_a_named_pipe_is_refused_as_a_store_before_any_lock(tmp_path: Path, readonly: bool) -> None:
    """A FIFO reads as 0 bytes: it was called "an empty file" with advice to rm it."""
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    with pytest.raises(StorePathError, match="is a named pipe, not a file"):
        Store.open(fifo, readonly=readonly)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.db"]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_has_prospects_is_whether_any_prospect_has_a_state(kind: str, db: Path) -> None:
    """A run asks `has_prospects()` as it starts, not `prospect_count()` (which reads
    every row). It must answer as the count does: a prospect known only by its id (a
    history row's, before any state) does not count."""
    from mrules.memstore import MemoryStore

    s: Any = Store.open(db) if kind == "sqlite" else MemoryStore()
    try:
        assert s.has_prospects() is False and s.prospect_count() == 0
        ledger = [(1, 1.0, "a@x.com", "rule", "r", None, "-", 1, None, "tag", "{}", None, None)]
        s.commit(Batch("-", 1, 1.0, ledger=ledger))
        assert list(s.ledger()) and s.prospect_count() == 0
        assert s.has_prospects() is False
        s.commit(Batch("-", 2, 2.0, prospects={"b@x.com": b"{}"}))
        assert s.has_prospects() is True and s.prospect_count() == 1
    finally:
        s.close()


@pytest.mark.parametrize("case", ["other-sqlite-database", "no-schema-version"])
def test_another_programs_database_is_refused_with_no_lock_file_left(
    tmp_path: Path, case: str
) -> None:
    # The lock file was made before the database was found not to be a store, and stayed
    # beside it for good (`invoices.db.lock` beside a database no mrules run will write).
    db = tmp_path / "mrules.db"
    if case == "other-sqlite-database":
        _foreign_sqlite(db)
    else:  # a `meta` table of another program's (the local CRM file's has one)
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        conn.commit()
        conn.close()
    before = db.read_bytes()
    with pytest.raises(NotAStore, match="not an mrules store"):
        Store.open(db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mrules.db"]
    assert db.read_bytes() == before
    # A lock file that was there before is left alone: another process may hold it.
    lock = tmp_path / "mrules.db.lock"
    lock.write_text("")
    with pytest.raises(StoreError, match="not an mrules store"):
        Store.open(db)
    assert lock.exists()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_batch_keeps_its_reports_and_drops_those_of_the_prospects_it_changed(
    kind: str, db: Path
) -> None:
    """The diagnostics a commit keeps: its own reports, whether or not the batch changed
    any prospect's state, after the standing reports of the prospects it did not change;
    a prospect it changed loses its report (it was about a state no longer there)."""
    from mrules.memstore import MemoryStore

    def report(who: str, line: int) -> dict[str, Any]:
        return {"prospect": who, "source": "-", "line": line, "reason": "unsettled"}

    s: Any = Store.open(db) if kind == "sqlite" else MemoryStore()
    try:
        s.commit(Batch("-", 1, 1.0, unsettled=[report("a@x.com", 1), report("b@x.com", 1)]))
        s.commit(Batch("-", 2, 2.0, unsettled=[report("c@x.com", 2)]))
        kept = [orjson.loads(r) for r in s.diagnostics()]
        assert [(r["prospect"], r["line"]) for r in kept] == [
            ("a@x.com", 1), ("b@x.com", 1), ("c@x.com", 2)
        ]  # fmt: skip
        s.commit(Batch("-", 3, 3.0, prospects={"a@x.com": b"{}", "z@x.com": b"{}"}))
        kept = [orjson.loads(r) for r in s.diagnostics()]
        assert [(r["prospect"], r["line"]) for r in kept] == [("b@x.com", 1), ("c@x.com", 2)]
        s.commit(Batch("-", 4, 4.0, prospects={"b@x.com": b"{}"}, unsettled=[report("b@x.com", 4)]))
        kept = [orjson.loads(r) for r in s.diagnostics()]
        assert [(r["prospect"], r["line"]) for r in kept] == [("c@x.com", 2), ("b@x.com", 4)]
    finally:
        s.close()


def test_a_reopened_store_gives_a_known_prospects_new_history_its_id(db: Path) -> None:
    """A writer that has not yet met a prospect this session (a store reopened) looks its
    id up for history rows of a batch that does not change its state: the rows are the
    prospect's, under the one id it has."""

    def entry(seq: int, prospect: str) -> tuple[Any, ...]:
        step = ("automation", "r", None, "-", seq, None, "tag", "{}", "{}", "{}")
        return (seq, 1.0, prospect, *step)

    with Store.open(db) as s:
        s.commit(Batch("-", 1, 1.0, prospects={"a@x.com": b"{}"}, ledger=[entry(1, "a@x.com")]))
    with Store.open(db) as s:
        s.commit(Batch("-", 2, 2.0, ledger=[entry(2, "a@x.com"), entry(3, "b@x.com")]))
        s.commit(Batch("-", 3, 3.0, ledger=[entry(4, "b@x.com")]))
    with Store.open(db, readonly=True) as s:
        assert [e[0] for e in s.ledger("a@x.com")] == [1, 2]
        assert [e[0] for e in s.ledger("b@x.com")] == [3, 4]
        assert list(s.prospects()) == [("a@x.com", b"{}")]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_a_visitors_anonymous_views_are_its_page_views_only(kind: str, db: Path) -> None:
    """What a visitor's tie to a prospect carries over: its anonymous page views (with
    their times), not its other anonymous activities, asked for one visitor or many."""
    from mrules.memstore import MemoryStore

    s: Any = Store.open(db) if kind == "sqlite" else MemoryStore()
    try:
        rows = [
            (None, "v-1", 1.0, "page_view", None, None, "https://x.com/a", "-", 1, None),
            (None, "v-1", 2.0, "form_view", "form", "Demande", None, "-", 2, None),
            (None, "v-2", 2.5, "file_download", None, None, "https://x.com/f", "-", 3, None),
            (None, "v-1", 3.0, "page_view", None, None, "https://x.com/b", "-", 4, None),
            (None, "v-1", 4.0, "page_view", None, None, None, "-", 5, None),  # no url
            (None, "v-2", None, "page_view", None, None, "https://x.com/t", "-", 5, None),
        ]
        many = [f"w-{n:03d}" for n in range(520)]  # more than a query asks for (500)
        rows += [(None, w, 5.0, "page_view", None, None, w, "-", 6, None) for w in many]
        s.commit(Batch("-", 6, 5.0, activities=rows))
        views = [(1.0, "https://x.com/a"), (3.0, "https://x.com/b"), (4.0, "")]
        assert s.anonymous_views("v-1") == views
        assert s.anonymous_views("v-2") == []
        assert s.anonymous_views_among(["v-1", "v-2"]) == {"v-1": views}
        among = s.anonymous_views_among(["v-2", *many])
        assert among == {w: [(5.0, w)] for w in many}
    finally:
        s.close()


@pytest.mark.parametrize("part", ["outbox", "crm_pending"])
def test_the_first_seq_of_the_store_is_in_the_outbox_and_the_crm_work(
    store: Store, part: str
) -> None:
    """Seqs count from 1: a message (a ledger step) or CRM work at seq 1 is read back."""
    if part == "outbox":
        notify = (1, 1.0, "a@x.com", "automation", "r", None, "-", 1, None, "notify",
                  '{"user":"sales"}', None, None)  # fmt: skip
        store.commit(Batch("-", 1, 1.0, ledger=[notify]))
        assert [m.seq for m in store.outbox()] == [1]
    else:
        store.commit(Batch("-", 1, 1.0, crm_pending=[(1, 1.0, "a@x.com", "task", "{}")]))
        assert [m.seq for m in store.crm_pending()] == [1]
