"""What the plan keeps on disk (mrules.sync.spool, docs/sync.md#memory) reads back as
what was kept: its lists of ops and facts (`Spool`), across the blocks they are read in,
after a read, after a close; the CRM records a plan keeps for the merge (`RecordMap`).

A first link's plan of 100,000 prospects has 83 MB of ops, read 64 KB at a time: an item
cut by a block's end, or larger than a block, is the item written; the hypothesis tests
of test_memory_bound.py spool a few small items, one block.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import json
import time
import tracemalloc
from typing import Any

import orjson
import pytest

from mrules.crm.port import Record
from mrules.sync.spool import (
    DUMP_OPTIONS,
    RecordMap,
    ScratchMap,
    SpillMap,
    Spool,
    dump_json,
    load_spooled,
)


def _item(n: int, size: int) -> dict[str, object]:
    return {"n": n, "op": "update", "value": "x" * size}


def test_items_across_many_blocks_read_back_whole() -> None:
    """Items of many sizes, some cut by a block's end, one larger than two blocks."""
    sizes = [10, 65_000, 536, 3, 200_000, 70_000, *range(0, 4000, 7), 65_531, 1]
    items = [_item(n, size) for n, size in enumerate(sizes)]
    spool = Spool(items)
    assert len(spool) == len(items)
    assert list(spool) == items
    assert list(spool.raw()) == [orjson.dumps(i, option=DUMP_OPTIONS) for i in items]
    assert list(spool) == items  # read again: the same


def _ending_at(offset: int) -> dict[str, object]:
    """An item whose 4-byte length and JSON end `offset` bytes past the first block."""
    base = len(orjson.dumps(_item(0, 0), option=DUMP_OPTIONS))
    return _item(0, 65_536 + offset - 4 - base)


@pytest.mark.parametrize("offset", range(-6, 7))
def test_an_item_ending_by_a_block_end_is_whole(offset: int) -> None:
    """The first item ends just before, at or just after the first block's end; its
    header or its JSON is cut there, or the next item's header is."""
    items = [_ending_at(offset), _item(1, 3), _item(2, 65_530), _item(3, 0)]
    assert list(Spool(items)) == items


def test_an_item_of_more_than_16_mb_is_whole() -> None:
    """Its length takes the 4th byte of its header."""
    items = [_item(0, 3), _item(1, (1 << 24) + 10), _item(2, 3)]
    assert list(Spool(items)) == items


def test_a_spool_is_read_a_block_at_a_time() -> None:
    """Reading 8 MB of items holds a block or two of them, not the file (83 MB for a
    first link of 100,000 prospects)."""
    spool = Spool(_item(n, 4000) for n in range(2000))
    tracemalloc.start()
    try:
        count = sum(1 for _ in spool.raw_spooled())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 2000
    assert peak < 1_000_000, peak


def test_an_item_appended_after_a_read_is_read_after_the_others() -> None:
    """A read leaves the file where it stopped: the next item goes at the end."""
    spool = Spool([_item(0, 5), _item(1, 70_000)])
    assert list(spool) == [_item(0, 5), _item(1, 70_000)]
    spool.append(_item(2, 5))
    first = next(iter(spool))  # a read stopped after the first item
    assert first == _item(0, 5)
    spool.append(_item(3, 9))
    assert list(spool) == [_item(n, s) for n, s in enumerate((5, 70_000, 5, 9))]


def test_an_item_changed_after_it_was_appended_is_the_item_appended() -> None:
    item = {"n": 1, "fields": {"Phone": "1"}}
    spool = Spool([item])
    item["fields"]["Phone"] = "2"
    assert list(spool) == [{"n": 1, "fields": {"Phone": "1"}}]


def test_the_prefix_comes_first_and_counts() -> None:
    spool = Spool([{"n": 2}])
    spool.prefix = [{"n": 0}, {"n": 1}]
    assert len(spool) == 3
    assert list(spool) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [orjson.loads(b) for b in spool.raw()] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [orjson.loads(b) for b in spool.raw_spooled()] == [{"n": 2}]
    assert spool[0] == {"n": 0} and spool[2] == {"n": 2} and spool[-1] == {"n": 2}
    assert spool[-3] == {"n": 0}
    for i in (3, -4):
        with pytest.raises(IndexError):
            spool[i]


def test_an_empty_spool_is_empty_and_false() -> None:
    for spool in (Spool(), Spool([])):
        assert len(spool) == 0 and not spool and list(spool) == [] and list(spool.raw()) == []
        assert spool == [] and repr(spool) == "[]"
    prefixed = Spool()
    prefixed.prefix = [{"n": 0}]
    assert prefixed and len(prefixed) == 1


def test_a_spool_equals_the_list_or_tuple_of_its_items_only() -> None:
    spool = Spool([{"n": 0}, {"n": 1}])
    assert spool == [{"n": 0}, {"n": 1}]
    assert spool == ({"n": 0}, {"n": 1})
    assert spool == Spool([{"n": 0}, {"n": 1}])
    assert spool != [{"n": 0}]
    assert spool != [{"n": 0}, {"n": 1}, {"n": 2}]
    assert spool != [{"n": 0}, {"n": 2}]
    assert spool != {"n": 0}
    assert (spool == {"n": 0}) is False and (spool == "[]") is False  # not None
    assert repr(spool) == "[{'n': 0}, {'n': 1}]"
    with pytest.raises(TypeError):
        hash(spool)


def test_a_closed_spool_is_empty_and_takes_items_again() -> None:
    spool = Spool([{"n": 0}, {"n": 1}])
    spool.close()
    assert len(spool) == 0 and list(spool) == []
    spool.close()  # twice: nothing to do
    spool.append({"n": 2})
    assert list(spool) == [{"n": 2}]


@pytest.mark.parametrize("indent", [1, 2, 4])
def test_a_document_with_spools_below_prints_as_json_dumps_prints_it(indent: int) -> None:
    """Spools at the top and a level down, a dict of number keys beside them, any indent: the text
    `json.dumps(sort_keys=True)` writes of the lists."""
    items = [{"n": 1, "f": {"a": [1, 2]}}, {"n": 2}]
    doc = {
        "top": Spool(items),
        "one": {"ops": Spool(items), "b": {"x": [{"y": 1}]}, "empty": Spool()},
        "numbers": {1: "a", 20: {"b": 2}},
        "z": 1.5,
    }
    whole = {
        "top": items,
        "one": {"ops": items, "b": {"x": [{"y": 1}]}, "empty": []},
        "numbers": {1: "a", 20: {"b": 2}},
        "z": 1.5,
    }
    out = io.StringIO()
    dump_json(doc, out, indent=indent)
    assert out.getvalue() == json.dumps(whole, indent=indent, sort_keys=True)


def test_a_saved_plan_keeps_only_its_ops_and_facts_on_disk() -> None:
    """The other lists (notes, sent, ...) are small: read whole, as lists."""
    text = (
        b'{"inbound": [{"n": 1}], "notes": ["a"], "ops": [{"n": 2}], "sent": [], "x": {"y": [1]}}'
    )
    got = load_spooled(io.BytesIO(text))
    assert type(got["ops"]) is Spool and type(got["inbound"]) is Spool
    assert list(got["ops"]) == [{"n": 2}] and list(got["inbound"]) == [{"n": 1}]
    assert type(got["notes"]) is list and type(got["sent"]) is list
    assert got["notes"] == ["a"] and got["sent"] == [] and got["x"] == {"y": [1]}
    mine = load_spooled(io.BytesIO(text), keys=("notes",))
    assert type(mine["notes"]) is Spool and type(mine["ops"]) is list


# -- the records a plan keeps on disk (RecordMap), its scratch maps (ScratchMap, SpillMap) --


def _record(rid: str, stamp: dt.datetime, **fields: Any) -> Record:
    return Record("Lead", rid, {"Email": f"{rid}@x.example", **fields}, stamp)


def test_a_record_kept_on_disk_is_the_record_kept() -> None:
    """To the microsecond and with its time zone (or none), far from 1970 too: a merge's
    time is the record's modstamp when the CRM gives no `LastModifiedDate`."""
    kept = RecordMap()
    stamps = [
        dt.datetime(2026, 11, 2, 9, 0, 0, 123000, tzinfo=dt.UTC),
        dt.datetime(9999, 6, 1, 12, 0, 0, 994000, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(1000, 3, 1, 8, 30, 0, 7000, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 2, 9, 0, 0),  # no time zone: as it was given
    ]
    records = [_record(f"00Q{n}", s, Phone=f"+1 555 {n}") for n, s in enumerate(stamps)]
    records.append(
        Record("Contact", "003d", {"Email": None, "N": 1.5, "Ok": True}, stamps[0], True)
    )
    for r in records:
        kept[r.id] = r
    for r in records:
        back = kept.get(r.id)
        assert back == r
        assert back.system_modstamp.tzinfo == r.system_modstamp.tzinfo
        assert back.system_modstamp.isoformat() == r.system_modstamp.isoformat()


def test_a_naive_modstamp_is_not_moved_by_the_local_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "EST5")  # POSIX: five hours behind UTC, no zone file
    time.tzset()
    try:
        kept = RecordMap()
        r = _record("00Q1", dt.datetime(2026, 11, 2, 9, 0, 0))
        kept["a"] = r
        assert kept.get("a") == r
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_record_of_other_values_is_kept_whole() -> None:
    """Fields that are not plain JSON values (a date, a mapping that is not a dict)."""
    kept = RecordMap()
    stamp = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    dated = _record("00Q1", stamp, CloseDate=dt.date(2026, 12, 1))
    ordered = Record("Lead", "00Q2", collections.OrderedDict(Email="b@x.example"), stamp)
    only_dated = Record("Lead", "00Q3", {"CloseDate": dt.date(2026, 12, 1)}, stamp)
    kept["a"], kept["b"], kept["c"] = dated, ordered, only_dated
    assert kept.get("c") == only_dated
    assert kept.get("a") == dated and type(kept.get("a").fields["CloseDate"]) is dt.date
    assert kept.get("b") == ordered and type(kept.get("b").fields) is collections.OrderedDict


def test_a_scratch_map_is_a_dict() -> None:
    """The merge's records on disk: set, replaced, looked up, popped, counted, cleared."""
    kept = ScratchMap()
    try:
        assert len(kept) == 0 and list(kept) == [] and "a" not in kept
        kept["a"], kept["b"] = {"v": 1}, [2]
        kept["a"] = {"v": 3}  # replaced, not a second row
        assert len(kept) == 2 and sorted(kept) == ["a", "b"] and sorted(kept.keys()) == ["a", "b"]
        assert "a" in kept and "c" not in kept
        assert kept.get("a") == {"v": 3} and kept.get("c") is None and kept.get("c", 0) == 0
        assert kept.pop("b") == [2] and "b" not in kept and len(kept) == 1
        assert kept.pop("b", None) is None and kept.pop("b", 7) == 7
        with pytest.raises(KeyError):
            kept.pop("b")
        kept.clear()
        assert len(kept) == 0 and kept.get("a") is None
    finally:
        kept.close()


def _spill(limit: int, keys: list[str]) -> SpillMap:
    m = SpillMap(limit)
    for n, k in enumerate(keys):
        m[k] = (n, k)
    return m


def test_a_spill_map_is_a_dict_in_memory_and_on_disk() -> None:
    """The plan's link changes: the same answers as a dict, whether they stayed in memory,
    went to disk, or wait to be written there; an update keeps the key's place."""
    keys = [f"p{n:05d}@x.example" for n in range(2600)]
    for limit in (5000, 3, 0):
        m = _spill(limit, keys)
        d = {k: (n, k) for n, k in enumerate(keys)}
        assert m.spilled is (limit < len(keys))
        for k in (keys[0], keys[2], keys[1500], keys[-1]):  # on disk, in the buffer, new
            m[k] = ("again", k)
            d[k] = ("again", k)
        m["late@x.example"] = ("late",)
        d["late@x.example"] = ("late",)
        for k in (keys[0], keys[1], keys[-1], "late@x.example"):
            assert k in m and m.get(k) == d[k]
        assert "nobody@x.example" not in m and 1 not in m
        assert m.get("nobody@x.example") is None and m.get("nobody@x.example", 5) == 5
        assert len(m) == len(d)
        assert list(m.items()) == list(d.items())  # in insertion order, past a block
        assert list(m) == list(d)
        m.close()
        assert len(m) == 0 and list(m.items()) == [] and m.get(keys[0]) is None


def test_a_spill_map_spills_past_its_limit_only() -> None:
    m = _spill(2, ["a", "b"])
    assert not m.spilled
    m["a"] = 0  # a key set again: no more keys than the limit
    assert not m.spilled
    m["c"] = 1
    assert m.spilled and list(m.items()) == [("a", 0), ("b", (1, "b")), ("c", 1)]


def test_a_spill_map_on_disk_reads_what_waits_in_its_buffer() -> None:
    m = _spill(0, ["a"])
    assert m.spilled
    m["b"] = 1  # in the buffer, not written yet
    assert "b" in m and m.get("b") == 1 and "a" in m and m.get("a") == (0, "a")
    assert list(m) == ["a", "b"] and len(m) == 2
