"""What the plan keeps on disk (mrules.sync.spool, docs/sync.md#memory) reads back as
what was kept: the CRM records a plan keeps for the merge (`RecordMap`).
"""

from __future__ import annotations

import collections
import datetime as dt
import time
from typing import Any

import pytest

from mrules.crm.port import Record
from mrules.sync.spool import RecordMap

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
    kept["a"], kept["b"] = dated, ordered
    assert kept.get("a") == dated and type(kept.get("a").fields["CloseDate"]) is dt.date
    assert kept.get("b") == ordered and type(kept.get("b").fields) is collections.OrderedDict
