"""The event stream reader against its contract (docs/events.md)."""

from __future__ import annotations

import gc
import gzip
import io
import re
import unicodedata
import warnings
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrules.events import (
    ASSET_KINDS,
    EVENT_TYPES,
    MAX_LINE_BYTES,
    MAX_REJECT_TEXT,
    Event,
    EventSourceError,
    Reject,
    StreamReplacedError,
    line_check,
    owner_since,
    parse_line,
    parse_timestamp,
    read_events,
    resume_after,
)

TS = "2026-11-02T09:00:00Z"
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _line(**obj: object) -> str:
    return orjson.dumps({"ts": TS, **obj}).decode()


def _read(data: bytes, **kwargs: Any) -> list[Event | Reject]:
    return list(read_events(io.BytesIO(data), **kwargs))


# ------------------------------------------------------------------ good lines

GOOD = [
    (  # the contract's own example lines
        '{"ts":"2026-11-02T09:00:00Z","type":"page_view","visitor":"v-81",'
        '"url":"https://www.getcloudy.com/pricing"}',
        {
            "type": "page_view",
            "visitor": "v-81",
            "url": "https://www.getcloudy.com/pricing",
            "prospect": None,
            "fields": {},
            "ts": T0,
        },
    ),
    (
        '{"ts":"2026-11-02T09:02:10Z","type":"form_submit","visitor":"v-81",'
        '"prospect":"leung@example.com","asset":"Demande Get Cloudy",'
        '"fields":{"first_name":"Leung","company":"Example SA"}}',
        {
            "type": "form_submit",
            "prospect": "leung@example.com",
            "asset": "Demande Get Cloudy",
            "fields": {"first_name": "Leung", "company": "Example SA"},
            "ts": T0 + timedelta(minutes=2, seconds=10),
        },
    ),
    (
        '{"ts":"2026-11-03T14:00:00Z","type":"crm_update","prospect":"leung@example.com",'
        '"object":"lead","fields":{"Phone":"+33 1 23 45 67 89"}}',
        {"type": "crm_update", "object": "lead", "fields": {"Phone": "+33 1 23 45 67 89"}},
    ),
    # prospect: stripped and lowercased
    (
        _line(type="email_open", prospect="  Leung@Example.COM ", asset="News"),
        {"prospect": "leung@example.com", "asset": "News", "visitor": None},
    ),
    # timestamps: offsets become UTC, fractions, lowercase, space, leap second, -00:00
    (_line(type="tick").replace(TS, "2026-11-02T10:00:00+01:00"), {"ts": T0}),
    (
        _line(type="tick").replace(TS, "2026-11-02T04:30:00.25-04:30"),
        {"ts": T0 + timedelta(milliseconds=250)},
    ),
    (_line(type="tick").replace(TS, "2026-11-02t09:00:00z"), {"ts": T0}),
    (_line(type="tick").replace(TS, "2026-11-02 09:00:00Z"), {"ts": T0}),
    (_line(type="tick").replace(TS, "2026-11-02T09:00:00-00:00"), {"ts": T0}),
    # the widest offsets RFC 3339 allows
    (_line(type="tick").replace(TS, "2026-11-03T08:59:00+23:59"), {"ts": T0}),
    (_line(type="tick").replace(TS, "2026-11-01T09:01:00-23:59"), {"ts": T0}),
    (
        _line(type="tick").replace(TS, "2026-11-02T09:00:00.123456789Z"),
        {"ts": T0 + timedelta(microseconds=123456)},
    ),
    (
        _line(type="tick").replace(TS, "2026-12-31T23:59:60Z"),
        {"ts": datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)},
    ),
    # a leap second with a fraction, or in another zone: the same last microsecond
    (
        _line(type="tick").replace(TS, "2026-12-31T23:59:60.5Z"),
        {"ts": datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)},
    ),
    (
        _line(type="tick").replace(TS, "2027-01-01T00:59:60+01:00"),
        {"ts": datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)},
    ),
    # null is absent; unknown keys are ignored; scalars of every JSON kind in fields
    (
        _line(type="page_view", visitor="v1", url="u", prospect=None, fields=None, extra=[1]),
        {"prospect": None, "fields": {}},
    ),
    (
        _line(
            type="prospect_update",
            prospect="a@b",
            fields={"s": "x", "i": 3, "f": 1.5, "b": True, "n": None},
        ),
        {"fields": {"s": "x", "i": 3, "f": 1.5, "b": True, "n": None}},
    ),
    # each type with its minimum keys
    (_line(type="page_view", prospect="a@b", url="u"), {"visitor": None, "prospect": "a@b"}),
    (_line(type="form_handler_submit", prospect="a@b", asset="H"), {"asset": "H"}),
    (_line(type="landing_page_submit", prospect="a@b", asset="L"), {"asset": "L"}),
    (
        _line(type="email_click", prospect="a@b", asset="E", url="https://x.example/l"),
        {"url": "https://x.example/l"},
    ),
    (_line(type="file_download", prospect="a@b", asset="F.pdf"), {"asset": "F.pdf"}),
    (_line(type="custom_redirect_click", prospect="a@b", asset="R"), {"url": None}),
    (_line(type="identify", prospect="a@b", visitor="v"), {"visitor": "v"}),
    (_line(type="unsubscribe", prospect="a@b"), {"asset": None}),
    (
        _line(
            type="crm_update",
            prospect="a@b",
            object="opportunity",
            status="won",
            crm_id="006X",
            user="alan@getcloudy.com",
            id="e-1",
        ),
        {
            "object": "opportunity",
            "status": "won",
            "crm_id": "006X",
            "user": "alan@getcloudy.com",
            "id": "e-1",
        },
    ),
    (_line(type="tick", id="t-9"), {"id": "t-9", "prospect": None}),
]


@pytest.mark.parametrize(("text", "want"), GOOD)
def test_good_line(text: str, want: dict[str, object]) -> None:
    event = parse_line(text, 5)
    assert isinstance(event, Event), event
    assert event.line == 5
    assert {key: getattr(event, key) for key in want} == want
    assert event.ts.tzinfo is UTC
    assert event.ts_epoch == event.ts.timestamp()


def test_asset_kinds_cover_the_asset_events() -> None:
    assert set(ASSET_KINDS) <= set(EVENT_TYPES)
    event = parse_line(_line(type="custom_redirect_click", prospect="a@b", asset="R"))
    assert isinstance(event, Event)
    assert event.asset_kind == "custom redirect"
    assert parse_line(_line(type="tick")).asset_kind is None  # type: ignore[union-attr]


# ------------------------------------------------------------------- bad lines

BAD = [
    (
        '{"ts":"2026-11-02T09:00:00Z" "type":"tick"}',
        r"^not JSON: unexpected character, expected ',' or '}' at column 30$",
    ),
    ("[1, 2]", r"^not a JSON object: the line holds an array$"),
    ('"tick"', r"^not a JSON object: the line holds a string$"),
    ('{"type":"tick"}', r"^missing required key 'ts'$"),
    ('{"ts":null,"type":"tick"}', r"^missing required key 'ts'$"),
    ('{"ts":1793610000,"type":"tick"}', r"^'ts' must be a string .* not a number$"),
    (f'{{"ts":"{TS}"}}', r"^missing required key 'type'$"),
    (_line(type=7), r"^'type' must be a string, not a number$"),
    (
        _line(type="page_veiw", visitor="v", url="u"),
        r"^unknown type 'page_veiw' \(did you mean 'page_view'\?\)$",
    ),
    (_line(type="purchase"), r"^unknown type 'purchase'$"),
    (_line(type="FORM_SUBMIT"), r"^unknown type 'FORM_SUBMIT' \(did you mean 'form_submit'\?\)$"),
    (_line(type=""), r"^unknown type ''$"),
    (
        _line(type="tick").replace(TS, "2026-13-01"),
        r"^'ts' is not an RFC 3339 timestamp: '2026-13-01' \(a date alone",
    ),
    (_line(type="tick").replace(TS, "2026-11-02"), r"RFC 3339 .*a date alone is not enough"),
    (_line(type="tick").replace(TS, "2026-11-02T09:00:00"), r"RFC 3339 .*no time zone"),
    (_line(type="tick").replace(TS, "2026-11-02T09:00Z"), r"RFC 3339 .*seconds are required"),
    (_line(type="tick").replace(TS, "2026-13-02T09:00:00Z"), r"RFC 3339 .*month must be in"),
    (_line(type="tick").replace(TS, "2026-11-02T24:00:00Z"), r"RFC 3339 .*hour must be in"),
    (_line(type="tick").replace(TS, "2026-W44-1T09:00:00Z"), r"RFC 3339 .*expected e\.g\."),
    (_line(type="tick").replace(TS, "20261102T090000Z"), r"RFC 3339"),
    (_line(type="tick").replace(TS, "2026-11-02T09:00:00.Z"), r"RFC 3339"),
    (_line(type="tick").replace(TS, "2026-11-02T09:00:00.1234567xZ"), r"RFC 3339"),
    (_line(type="tick").replace(TS, "2026-11-02T09:00:00+0100"), r"RFC 3339"),
    (_line(type="tick").replace(TS, "2026-11-02T09:00:00+25:00"), r"RFC 3339"),
    (
        _line(type="tick").replace(TS, "2026-11-02T09:00:00+24:00"),
        r"^'ts' is not an RFC 3339 timestamp: '2026-11-02T09:00:00\+24:00' \(the zone offset"
        r" must be -23:59 to \+23:59\)$",
    ),
    (
        _line(type="tick").replace(TS, "2026-11-02T09:00:00-00:60"),
        r"^'ts' is not an RFC 3339 timestamp: .* \(the zone offset must be -23:59 to \+23:59\)$",
    ),
    (_line(type="tick").replace(TS, "2026-11-02T09:00:00\u0663Z"), r"RFC 3339"),
    (_line(type="tick").replace(TS, "0001-01-01T00:30:00+01:00"), r"out of range in UTC"),
    (_line(type="page_view", visitor="v"), r"^'url' is required for page_view$"),
    (_line(type="page_view", url="u"), r"^page_view needs 'visitor' or 'prospect'$"),
    (_line(type="form_submit", visitor="v", asset="F"), r"^'prospect' is required for form_sub"),
    (_line(type="email_open", prospect="a@b"), r"^'asset' is required for email_open \(the email"),
    (_line(type="file_download", prospect="a@b"), r"^'asset' is required for file_download"),
    (_line(type="identify", prospect="a@b"), r"^'visitor' is required for identify$"),
    (_line(type="crm_update", prospect="a@b"), r"^'object' is required for crm_update \(lead, "),
    (
        _line(type="crm_update", prospect="a@b", object="invoice"),
        r"^'object' must be one of lead, .*, not 'invoice'$",
    ),
    (
        _line(type="crm_update", prospect="a@b", object="opportunity", status="open"),
        r"^'status' must be won, lost or deleted, not 'open'$",
    ),
    (
        _line(type="email_open", prospect="leung", asset="E"),
        r"^'prospect' must be an email address$",
    ),
    (_line(type="email_open", prospect="le ung@example.com", asset="E"), r"email address$"),
    (_line(type="email_open", prospect="a@b@c", asset="E"), r"email address$"),
    (_line(type="email_open", prospect="@example.com", asset="E"), r"email address$"),
    (_line(type="email_open", prospect="   ", asset="E"), r"email address$"),
    (_line(type="email_open", prospect=["a@b"], asset="E"), r"email address, not an array$"),
    (_line(type="tick", id=12), r"^'id' must be a string, not a number$"),
    (_line(type="tick", id=""), r"^'id' must not be empty$"),
    (_line(type="page_view", visitor=True, url="u"), r"^'visitor' must be a string, not a bool"),
    (
        _line(type="prospect_update", prospect="a@b", fields=["x"]),
        r"^'fields' must be an object of scalars, not an array$",
    ),
    (
        _line(type="prospect_update", prospect="a@b", fields={"tags": ["a"]}),
        r"^'fields' must be an object of scalars: 'tags' is an array$",
    ),
    (_line(type="prospect_update", prospect="a@b", fields={"o": {}}), r"'o' is an object$"),
    (
        _line(type="crm_update", prospect="a@b", object="lead", user="u", owner_since=5),
        r"^'owner_since' must be a string holding an RFC 3339 timestamp, not a number$",
    ),
    (
        _line(type="crm_update", prospect="a@b", object="lead", owner_since="2026-11-02"),
        r"^'owner_since' is not an RFC 3339 timestamp: '2026-11-02' \(a date alone",
    ),
]


@pytest.mark.parametrize(("text", "reason"), BAD)
def test_bad_line(text: str, reason: str) -> None:
    reject = parse_line(text, 3)
    assert isinstance(reject, Reject), reject
    assert re.search(reason, reject.reason), reject.reason
    assert reject.line == 3
    assert reject.text == text


def test_owner_since_is_read_only_from_a_crm_update_that_has_it() -> None:
    """`owner_since` (a CRM owner change's time, as the sync gives it) is no slot of
    `Event`: read from the line when an owner changes; other types ignore the key."""
    since = "2026-11-02T08:00:00+01:00"
    e = parse_line(_line(type="crm_update", prospect="a@b", object="lead", owner_since=since), 1)
    assert (
        isinstance(e, Event) and owner_since(e) == datetime(2026, 11, 2, 7, tzinfo=UTC).timestamp()
    )
    e = parse_line(_line(type="crm_update", prospect="a@b", object="lead"), 1)
    assert isinstance(e, Event) and owner_since(e) is None
    e = parse_line(_line(type="prospect_update", prospect="a@b", owner_since=5), 1)
    assert isinstance(e, Event)  # unknown keys of other types are ignored, as before


def test_timestamp_function_agrees_with_the_reader() -> None:
    assert parse_timestamp("2026-11-02T10:00:00+01:00") == T0
    with pytest.raises(ValueError, match="a date alone"):
        parse_timestamp("2026-11-02")


def test_reject_text_is_cut() -> None:
    long = _line(type="nope", note="x" * 3000)
    reject = parse_line(long)
    assert isinstance(reject, Reject)
    assert reject.text == long[:MAX_REJECT_TEXT]


# ---------------------------------------------------------------- the stream

GOOD_PV = _line(type="page_view", visitor="v1", url="https://site.example/a")
MIXED = (
    b"\n".join(
        [
            GOOD_PV.encode(),
            b"",
            b"   \t",
            b'{"ts": "2026-11-02T09:00:00Z", "type": "page_veiw", "visitor": "v1", "url": "u"}',
            b'{"ts": "2026-11-02", "type": "tick"}',
            b"\xff\xfe not text",
            _line(type="form_submit", prospect="A@B.example", visitor="v1", asset="F").encode(),
            b'{"type": "tick"',
            b"null",
            b'{"ts": "2026-11-02T09:00:00Z", "type": "email_open", "prospect": "x", "asset": "E"}',
            b'{"ts": "2026-11-02T09:00:00Z", "type": "tick", "id": 5}',
            _line(type="tick").encode(),
        ]
    )
    + b"\n"
)


def test_mixed_stream_rejects(snapshot: object) -> None:
    items = _read(MIXED)
    assert [(i.line, type(i).__name__) for i in items if isinstance(i, Event)] == [
        (1, "Event"),
        (7, "Event"),
        (12, "Event"),
    ]
    assert [tuple(r) for r in items if isinstance(r, Reject)] == snapshot


def test_blank_lines_count_and_crlf_endings() -> None:
    data = b"\r\n  \r\n" + GOOD_PV.encode() + b"\r\n\n" + GOOD_PV.encode()  # no final newline
    assert [i.line for i in _read(data)] == [3, 5]


def test_non_utf8_line_is_rejected_and_reading_goes_on() -> None:
    data = b'{"ts":"' + TS.encode() + b'","type":"tick","id":"caf\xe9"}\n' + GOOD_PV.encode()
    first, second = _read(data)
    assert isinstance(first, Reject)
    assert first.reason == "not UTF-8 text: byte 0xe9 at column 53"
    assert first.text.endswith('"caf\\xe9"}')
    assert isinstance(second, Event)
    assert second.line == 2


def test_byte_order_mark_on_the_first_line_only() -> None:
    bom = b"\xef\xbb\xbf"
    first, second = _read(bom + GOOD_PV.encode() + b"\n" + bom + GOOD_PV.encode())
    assert isinstance(first, Event)
    assert isinstance(second, Reject)


def test_a_line_parsed_alone_is_line_1_and_may_start_with_a_byte_order_mark() -> None:
    event = parse_line(b"\xef\xbb\xbf" + GOOD_PV.encode())
    assert isinstance(event, Event) and event.line == 1
    assert isinstance(parse_line(b"\xef\xbb\xbf" + GOOD_PV.encode(), 2), Reject)


def test_line_separators_inside_a_line_do_not_split_it() -> None:
    text = _line(type="page_view", visitor="v\u2028\r1", url="u\x85")
    (event,) = _read(text.encode())
    assert isinstance(event, Event)
    assert event.visitor == "v\u2028\r1"


def test_start_line_resumes_after_the_committed_line() -> None:
    lines = [_line(type="tick", id=f"e{n}") for n in range(1, 6)]
    lines[2] = "not json"
    data = "\n".join(lines).encode()
    assert [(i.line, getattr(i, "id", None)) for i in _read(data, start_line=2)] == [
        (3, None),
        (4, "e4"),
        (5, "e5"),
    ]
    assert _read(data, start_line=5) == []
    with pytest.raises(StreamReplacedError, match="has 5 lines, fewer than the 99 already read"):
        _read(data, start_line=99)  # the file was replaced by a shorter one
    assert [i.line for i in _read(data, start_line=0)] == [1, 2, 3, 4, 5]


def _anchor_of(data: bytes, line: int) -> tuple[int, int]:
    """The anchor a store keeps after applying `line` of `data` (the engine's `_anchor`)."""
    (event,) = [i for i in _read(data) if i.line == line]
    assert isinstance(event, Event)
    return line, line_check(event.raw)


def test_a_resumed_file_is_checked_at_the_last_event_applied_from_it() -> None:
    """A file replaced at the same path by a longer one had its first lines skipped, silently.
    The store keeps the last applied event's line and check; reading checks that line."""
    lines = [_line(type="tick", id=f"e{n}") for n in range(1, 7)]
    data = "\n".join(lines[:4]).encode() + b"\n"
    anchor = _anchor_of(data, 4)
    grown = "\n".join(lines).encode()  # appended to: the same first lines, read on
    assert [i.line for i in _read(grown, start_line=4, anchor=anchor)] == [5, 6]
    other = "\n".join([*lines[:3], _line(type="tick", id="x"), *lines[4:]]).encode()
    with pytest.raises(StreamReplacedError, match="its line 4 is not the event applied"):
        _read(other, start_line=4, anchor=anchor)
    # Only a line the position covers is checked (a stale anchor past it is not).
    assert [i.line for i in _read(other, start_line=3, anchor=anchor)] == [4, 5, 6]
    # A shorter file says so first.
    with pytest.raises(StreamReplacedError, match="has 3 lines, fewer than the 4"):
        _read("\n".join(lines[:3]).encode(), start_line=4, anchor=anchor)


def test_lines_already_parsed_are_checked_as_the_file_is() -> None:
    """`resume_after` (the API's iterables of lines) resumes and refuses as reading the
    file does: a changed or blank anchor line is refused, a stale anchor past the
    position is not checked."""
    lines = [_line(type="tick", id=f"e{n}") for n in range(1, 7)]
    anchor = _anchor_of("\n".join(lines[:4]).encode(), 4)

    def resumed(text: list[str], start_line: int, at: tuple[int, int] | None = anchor) -> list[int]:
        items = [parse_line(t, n) for n, t in enumerate(text, start=1)]
        parsed = [i for i in items if i is not None]
        return [i.line for i in resume_after(parsed, start_line, at, "feed")]

    assert resumed(lines, 4) == [5, 6]
    assert resumed(lines, 4, None) == [5, 6]  # a store written before anchors: none to check
    for changed in (_line(type="tick", id="x"), ""):
        other = [*lines[:3], changed, *lines[4:]]
        with pytest.raises(StreamReplacedError, match="its line 4 is not the event applied"):
            resumed(other, 4)
        assert resumed(other, 3) == ([4, 5, 6] if changed else [5, 6])


def test_the_check_ignores_the_line_end_and_a_byte_order_mark() -> None:
    """A last line applied before its newline was written, a file saved again with CRLF
    endings or a BOM: the same events, so the same file."""
    first = _line(type="tick", id="a").encode()
    anchor = _anchor_of(first, 1)  # no newline yet: whole JSON, applied
    later = b"\xef\xbb\xbf" + first + b"\r\n" + _line(type="tick", id="b").encode() + b"\r\n"
    assert [i.line for i in _read(later, start_line=1, anchor=anchor)] == [2]
    gz = gzip.compress(later)
    assert [i.line for i in _read(gz, start_line=1, anchor=anchor)] == [2]


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    ids=st.lists(st.text("abcdef", min_size=1, max_size=4), min_size=1, max_size=8),
    data=st.data(),
)
def test_appending_never_trips_the_check_and_changing_the_anchor_line_always_does(
    ids: list[str], data: st.DataObject
) -> None:
    lines = [_line(type="tick", id=i) for i in ids]
    k = data.draw(st.integers(1, len(lines)), label="lines applied")
    anchor = _anchor_of("\n".join(lines[:k]).encode(), k)
    more = data.draw(st.lists(st.sampled_from(["tick", "tock"]), max_size=3), label="appended")
    grown = [*lines, *(_line(type="tick", id=m) for m in more)]
    resumed = _read("\n".join(grown).encode(), start_line=k, anchor=anchor)
    assert [i.line for i in resumed] == list(range(k + 1, len(grown) + 1))
    changed = list(grown)
    changed[k - 1] = _line(type="tick", id=ids[k - 1] + "!")
    with pytest.raises(StreamReplacedError):
        _read("\n".join(changed).encode(), start_line=k, anchor=anchor)


def test_gzip_file_by_suffix_and_by_magic_bytes(tmp_path: Path) -> None:
    data = MIXED
    plain = [tuple(i) for i in _read(data)]
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    assert [tuple(i) for i in read_events(gz)] == plain
    disguised = tmp_path / "events.jsonl"
    disguised.write_bytes(gzip.compress(data))
    assert [tuple(i) for i in read_events(str(disguised))] == plain
    assert [tuple(i) for i in read_events(io.BytesIO(gzip.compress(data)))] == plain
    assert [i.line for i in read_events(gz, start_line=6)] == [7, 8, 9, 10, 11, 12]


def test_plain_file_path(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(MIXED)
    assert [tuple(i) for i in read_events(path)] == [tuple(i) for i in _read(MIXED)]


def test_broken_gzip_is_a_source_error_after_the_good_lines(tmp_path: Path) -> None:
    packed = gzip.compress((GOOD_PV + "\n").encode() * 2000)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) - 20])
    seen = []
    with pytest.raises(EventSourceError, match=r"cut\.jsonl\.gz: broken gzip data"):
        seen.extend(read_events(path))
    assert seen  # the lines before the break were read
    fake = tmp_path / "fake.jsonl.gz"
    fake.write_bytes(GOOD_PV.encode())
    with pytest.raises(EventSourceError, match=r"not gzip data, though its name ends in \.gz"):
        list(read_events(fake))


def _whole_lines_before(cut: bytes) -> int:
    """How many whole lines a cut gzip file holds: zlib decodes what it can, independently."""
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut).count(b"\n")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.integers(1, 3000),
    keep=st.floats(0.05, 0.999),
    level=st.sampled_from([1, 6, 9]),
)
def test_a_cut_gzip_file_yields_every_whole_line_before_the_cut(
    lines: int, keep: float, level: int
) -> None:
    """Every line the damaged file still holds whole is read before the error: a run
    commits them. (A 64 KiB buffer over the gzip reader lost those of its last fill.)"""
    data = "".join(_line(type="tick", id=f"e{n}") + "\n" for n in range(1, lines + 1)).encode()
    packed = gzip.compress(data, compresslevel=level)
    cut = packed[: max(10, int(len(packed) * keep))]
    whole = _whole_lines_before(cut)
    seen: list[Event | Reject] = []
    with pytest.raises(EventSourceError, match="broken gzip data"):
        seen.extend(read_events(io.BytesIO(cut)))
    assert [i.line for i in seen] == list(range(1, whole + 1))
    assert all(isinstance(i, Event) and i.id == f"e{i.line}" for i in seen)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.sampled_from([GOOD_PV, "", "   ", "not json", GOOD_PV + "\r"]),
            st.integers(0, 150_000).map(lambda n: _line(type="tick", pad="x" * n)),
        ),
        max_size=12,
    ),
    st.booleans(),
)
def test_gzip_and_plain_give_the_same_lines(parts: list[str], final_newline: bool) -> None:
    """Lines longer than a read (64 KiB), blank lines, CRs and a missing last newline
    come out of a .gz file byte for byte as out of the plain file."""
    data = "\n".join(parts).encode() + (b"\n" if final_newline and parts else b"")
    plain = [tuple(i) for i in read_events(io.BytesIO(data))]
    assert [tuple(i) for i in read_events(io.BytesIO(gzip.compress(data)))] == plain


def test_an_unterminated_last_line_that_is_not_json_is_unfinished() -> None:
    """A file still being written ends mid-line: the reader says so, so that a run on
    the file leaves the line for the next run instead of rejecting it for good."""
    whole = _line(type="tick", id="e1")
    *_, cut = _read((whole + "\n" + whole[:25]).encode())
    assert isinstance(cut, Reject) and cut.unfinished and cut.line == 2
    *_, bad = _read((whole + "\n" + whole[:25] + "\n").encode())  # a newline: it is done
    assert isinstance(bad, Reject) and not bad.unfinished
    *_, last = _read((whole + "\n" + whole).encode())  # no newline, but whole JSON
    assert isinstance(last, Event) and last.id == "e1"
    *_, cut_utf8 = _read(b'{"ts":"2026-11-02T09:00:00Z","type":"tick","id":"\xc3')
    assert isinstance(cut_utf8, Reject) and cut_utf8.unfinished


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_line_longer_than_the_limit_is_rejected_unread(tmp_path: Path, gz: bool) -> None:
    """An endless line (`mrules run R /dev/zero`) filled 24 GB before the kernel killed the
    run; a line over MAX_LINE_BYTES is now read past without being kept, and rejected."""
    at_limit = _line(type="tick", id="a", pad="x" * (MAX_LINE_BYTES - 200))
    at_limit = at_limit[:-2] + " " * (MAX_LINE_BYTES - len(at_limit)) + at_limit[-2:]
    assert len(at_limit) == MAX_LINE_BYTES
    over = "x" * (MAX_LINE_BYTES + 1)
    data = "\n".join([_line(type="tick", id="1"), over, at_limit, _line(type="tick", id="4"), over])
    path = tmp_path / ("e.jsonl.gz" if gz else "e.jsonl")
    path.write_bytes(gzip.compress(data.encode(), 1) if gz else data.encode())
    items = list(read_events(path))
    assert [(i.line, type(i).__name__) for i in items] == [
        (1, "Event"), (2, "Reject"), (3, "Event"), (4, "Event"), (5, "Reject"),
    ]  # fmt: skip
    assert items[1].reason == f"line longer than {MAX_LINE_BYTES:,} bytes: not read"
    assert [i.id for i in items if isinstance(i, Event)] == ["1", "a", "4"]


@pytest.mark.parametrize("name", ["e.jsonl", "e.jsonl.gz"])
def test_a_file_the_reader_opens_is_closed_once_read(tmp_path: Path, name: str) -> None:
    """A path is opened by the reader, so closed by it: a long-lived process reading
    file after file (the API, the language server) keeps no descriptor open."""
    path = tmp_path / name
    path.write_bytes(gzip.compress(MIXED) if name.endswith(".gz") else MIXED)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list(map(tuple, read_events(path))) == list(map(tuple, _read(MIXED)))
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_first_line_at_the_limit_and_one_far_over_it(tmp_path: Path, gz: bool) -> None:
    """The first line, exactly MAX_LINE_BYTES long, is read; a line 200,000 bytes over the
    limit (more than a read of 64 KiB) is skipped to its own newline, not past the lines
    after it."""
    at_limit = _line(type="tick", id="a", pad="x" * (MAX_LINE_BYTES - 200))
    at_limit = at_limit[:-2] + " " * (MAX_LINE_BYTES - len(at_limit)) + at_limit[-2:]
    data = "\n".join([at_limit, "x" * (MAX_LINE_BYTES + 200_000), _line(type="tick", id="3")])
    path = tmp_path / ("e.jsonl.gz" if gz else "e.jsonl")
    path.write_bytes(gzip.compress(data.encode(), 1) if gz else data.encode())
    items = list(read_events(path))
    assert [(i.line, type(i).__name__) for i in items] == [
        (1, "Event"), (2, "Reject"), (3, "Event"),
    ]  # fmt: skip
    assert [i.id for i in items if isinstance(i, Event)] == ["a", "3"]


def test_a_gzip_read_that_starts_with_a_newline_ends_the_line_before_it() -> None:
    """Blank lines only, then an event: every read of the unzipped data (64 KiB) starts
    with a newline, and each still ends a line, so the event keeps its line number."""
    data = b"\n" * 200_000 + GOOD_PV.encode() + b"\n"
    (event,) = read_events(io.BytesIO(gzip.compress(data)))
    assert isinstance(event, Event) and event.line == 200_001


def test_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(EventSourceError, match=r"nope\.jsonl: cannot read: No such file"):
        read_events(tmp_path / "nope.jsonl")


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BufferedReader(io.BytesIO(MIXED)))
    monkeypatch.setattr("sys.stdin", fake)
    assert [tuple(i) for i in read_events("-")] == [tuple(i) for i in _read(MIXED)]


def test_unpeekable_stream() -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            chunk = self.data.read(min(len(buffer), 7))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    assert [tuple(i) for i in read_events(Pipe(MIXED))] == [tuple(i) for i in _read(MIXED)]


def test_text_stream_is_refused() -> None:
    with pytest.raises(TypeError, match="binary"):
        read_events(io.StringIO(GOOD_PV))


# ------------------------------------------------------------------ properties

_names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_emails = st.builds(
    lambda a, b: f"{a}@{b}.example",
    st.from_regex(r"[A-Za-z0-9._+-]{1,10}", fullmatch=True),
    st.from_regex(r"[a-z0-9-]{1,10}", fullmatch=True),
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _names
)
_offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)


@st.composite
def _timestamps(draw: st.DrawFn) -> str:
    moment = draw(
        st.datetimes(
            min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=_offsets
        )
    )
    text = moment.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds", "auto"])))
    if text.endswith("+00:00") and draw(st.booleans()):
        text = text[:-6] + draw(st.sampled_from(["Z", "z"]))
    return text


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(EVENT_TYPES))
    event: dict[str, object] = {"ts": draw(_timestamps()), "type": kind}
    if draw(st.booleans()):
        event["id"] = draw(_names)
    if kind == "page_view":
        event["url"] = draw(_names)
        who = draw(st.sampled_from(["visitor", "prospect", "both"]))
        if who != "prospect":
            event["visitor"] = draw(_names)
        if who != "visitor":
            event["prospect"] = draw(_emails)
    elif kind != "tick":
        event["prospect"] = draw(_emails)
    if kind in ASSET_KINDS and (kind != "unsubscribe" or draw(st.booleans())):
        event["asset"] = draw(_names)
    if kind == "identify" or (kind in ASSET_KINDS and draw(st.booleans())):
        event["visitor"] = draw(_names)
    if kind == "crm_update":
        event["object"] = draw(st.sampled_from(["lead", "contact", "opportunity"]))
        if draw(st.booleans()):
            event["status"] = draw(st.sampled_from(["won", "lost"]))
    if draw(st.booleans()):
        event["fields"] = draw(st.dictionaries(_names, _scalars, max_size=3))
    if draw(st.booleans()):
        event["x_extension"] = draw(st.lists(_scalars, max_size=2))  # unknown keys: ignored
    return event


def _mutations(event: dict[str, object]) -> list[dict[str, object]]:
    """Ways to spoil a valid event, each of which the contract rejects."""
    out: list[dict[str, object]] = [
        {k: v for k, v in event.items() if k != "ts"},
        {k: v for k, v in event.items() if k != "type"},
        {**event, "type": str(event["type"]).upper()},
        {**event, "ts": str(event["ts"])[:10]},
        {**event, "id": 1},
        {**event, "fields": {"a": [1]}},
    ]
    if "prospect" in event:
        out.append({**event, "prospect": "no-at-sign"})
    return out


@st.composite
def bad_lines(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:  # not JSON: an object that never closes
        body = draw(
            st.text(
                st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\n}"),
                max_size=20,
            )
        )
        return ("{" + body).encode()
    if choice == 1:
        return draw(st.sampled_from([b"[]", b"1", b'"x"', b"null", b"true"]))
    if choice == 2:  # not UTF-8
        return draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80"])) + b'{"ts":"x"}'
    return orjson.dumps(draw(st.sampled_from(_mutations(draw(valid_events())))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    good=st.lists(valid_events(), max_size=12),
    extra=st.lists(
        st.tuples(
            st.integers(0, 12),
            st.one_of(
                bad_lines().map(lambda b: (True, b)),
                st.sampled_from([b"", b"  ", b"\t\r"]).map(lambda b: (False, b)),
            ),
        ),
        max_size=8,
    ),
)
def test_bad_lines_never_change_the_good_events(
    good: list[dict[str, object]], extra: list[tuple[int, tuple[bool, bytes]]]
) -> None:
    clean = [orjson.dumps(e) for e in good]
    lines = list(clean)
    for position, item in sorted(extra, key=lambda x: x[0], reverse=True):
        lines.insert(min(position, len(lines)), item)  # type: ignore[arg-type]
    tagged = [(False, x) if isinstance(x, bytes) else x for x in lines]
    bad_numbers = [n for n, (bad, _) in enumerate(tagged, start=1) if bad]
    data = b"\n".join(x for _, x in tagged)

    want = _read(b"\n".join(clean))
    assert all(isinstance(e, Event) for e in want)
    assert [e.type for e in want] == [e["type"] for e in good]  # type: ignore[union-attr]
    got = _read(data)
    events = [e for e in got if isinstance(e, Event)]
    rejects = [r for r in got if isinstance(r, Reject)]
    # The same events; each keeps its own line (`raw`), which differs in its newline only.
    assert [e._replace(line=0, raw=b"") for e in events] == [
        e._replace(line=0, raw=b"") for e in want
    ]
    assert [e.raw.rstrip(b"\n") for e in events] == [e.raw.rstrip(b"\n") for e in want]
    assert [r.line for r in rejects] == bad_numbers
    assert [i.line for i in got] == sorted(i.line for i in got)


@given(_timestamps())
def test_timestamps_round_trip(text: str) -> None:
    assert parse_timestamp(text) == datetime.fromisoformat(text.upper())


@settings(max_examples=300)
@given(st.text(st.sampled_from("0123456789-:TtZz+. ,W\u0663"), max_size=30))
def test_timestamp_fast_path_accepts_nothing_the_grammar_refuses(text: str) -> None:
    strict = re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
        r"([Zz]|[+-][0-9]{2}:[0-9]{2})",
        text,
    )
    try:
        parse_timestamp(text)
    except ValueError:
        return
    assert strict is not None, text


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _one_character_off(text: str) -> set[str]:
    """Every text one character replaced, inserted or deleted away from `text`."""
    chars = "0159-:.,Tt zZx+/\u0663"
    out = {text[:at] + text[at + 1 :] for at in range(len(text))}
    for at in range(len(text) + 1):
        out.update(text[:at] + c + text[at:] for c in chars)
        out.update(text[:at] + c + text[at + 1 :] for c in chars if at < len(text))
    return out


@pytest.mark.parametrize(
    "valid",
    [
        "2026-11-02T09:15:30Z",
        "2026-11-02T09:15:30.5Z",
        "2026-11-02T09:15:30.123456Z",
        "2026-11-02T09:15:30+01:00",
    ],
)
def test_a_timestamp_one_character_off_is_read_only_if_rfc_3339_allows_it(valid: str) -> None:
    """The common shape (`...:SS[.f]Z`) is read by Python's `fromisoformat`, which takes
    more than RFC 3339 (any separator for `T`, a comma before the fraction, a dot with no
    digit): every timestamp one character from a valid one is read only if RFC 3339
    allows it, and then as the time it says."""
    wrong = []
    for text in sorted(_one_character_off(valid)):
        try:
            got: datetime | None = parse_timestamp(text)
        except ValueError:
            got = None
        want: datetime | None = None
        if _RFC3339.fullmatch(text) and not (text[-3] == ":" and text[-2:] > "59"):
            # (fromisoformat takes +01:90 for +02:30)
            try:
                want = datetime.fromisoformat(text.upper()).astimezone(UTC)
            except ValueError:  # a month 19, an hour 29...
                want = None
        if got != want:
            wrong.append((text, got, want))
    assert not wrong


def test_prospect_normalisation_is_the_same_the_second_time() -> None:
    for _ in range(2):
        event = parse_line(_line(type="email_open", prospect=" Ana@X.example", asset="E"))
        assert isinstance(event, Event)
        assert event.prospect == "ana@x.example"
        reject = parse_line(_line(type="email_open", prospect="ana at x", asset="E"))
        assert isinstance(reject, Reject)
        assert reject.reason == "'prospect' must be an email address"


def test_negative_start_line_is_refused() -> None:
    with pytest.raises(ValueError, match="start_line"):
        read_events(io.BytesIO(b""), start_line=-1)


# ------------------------------------------- every key of every type, wrong JSON type

# The smallest valid event of each type.
MINIMAL: dict[str, dict[str, object]] = {
    kind: {
        "ts": TS,
        "type": kind,
        **({"url": "https://x.example/", "visitor": "v1"} if kind == "page_view" else {}),
        **({"prospect": "a@b.example"} if kind not in ("page_view", "tick") else {}),
        **({"asset": "A"} if kind in ASSET_KINDS else {}),
        **({"visitor": "v1"} if kind == "identify" else {}),
        **({"object": "lead"} if kind == "crm_update" else {}),
    }
    for kind in EVENT_TYPES
}
# Every key the reader reads, and the JSON types it takes (null counts as absent).
KEYS = (
    "ts",
    "type",
    "id",
    "prospect",
    "visitor",
    "url",
    "asset",
    "fields",
    "user",
    "object",
    "crm_id",
    "status",
)
WRONG: list[object] = [["x"], {"k": "v"}, 7, 2.5, True, False, 18446744073709551615, -1e308]


def test_minimal_events_are_valid() -> None:
    for obj in MINIMAL.values():
        assert isinstance(parse_line(orjson.dumps(obj)), Event), obj


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_every_key_of_every_type_is_type_checked(kind: str) -> None:
    """A key of the wrong JSON type is a Reject naming the key, never an exception (issue 6.1)."""
    misses = []
    for key in KEYS:
        wrong = list(WRONG) + ([] if key == "fields" else [{}, []])
        if key == "fields":
            wrong = [v for v in wrong if not isinstance(v, dict)] + [
                {"f": ["x"]},
                {"f": {"k": 1}},
                {"f": []},
                {"f": {}},
            ]
        for value in wrong:
            line = orjson.dumps({**MINIMAL[kind], key: value})
            item = parse_line(line, 9)
            if not (isinstance(item, Reject) and item.line == 9 and f"'{key}'" in item.reason):
                misses.append((key, value, item))
    assert not misses


def test_type_of_the_wrong_json_type_is_a_reject_and_the_stream_goes_on() -> None:
    """The line of issue 6.1: `"type":["tick"]` after a valid line no longer stops the stream."""
    data = b"\n".join(
        [
            GOOD_PV.encode(),
            b'{"ts":"2026-09-03T10:00:01Z","type":["tick"]}',
            b'{"ts":"2026-09-03T10:00:01Z","type":{"tick":1}}',
            GOOD_PV.encode(),
        ]
    )
    items = _read(data)
    assert [(i.line, type(i).__name__) for i in items] == [
        (1, "Event"),
        (2, "Reject"),
        (3, "Reject"),
        (4, "Event"),
    ]
    assert items[1].reason == "'type' must be a string, not an array"  # type: ignore[union-attr]
    assert items[2].reason == "'type' must be a string, not an object"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"ts":"' + TS.encode() + b'","type":"tick","id":"\\ud800"}', r"^not JSON: no low surr"),
        (b'{"ts":"' + TS.encode() + b'","type":"tick","id":"\\udc00x"}', r"^not JSON: .*surrogate"),
        (
            b'{"ts":"' + TS.encode() + b'","type":"tick","fields":{"n":1e400}}',
            r"^not JSON: .*infin",
        ),
        (b'{"ts":"' + TS.encode() + b'","type":"tick","fields":{"n":NaN}}', r"^not JSON: unexp"),
        (
            b'{"ts":"' + TS.encode() + b'","type":"tick","x":' + b"[" * 2000 + b"]" * 2000 + b"}",
            r"^not JSON: depth limit exceeded",
        ),
        (b'{"ts":"' + TS.encode() + b'","type":"tick","id":"a\xed\xa0\x80"}', r"^not UTF-8 text"),
        (
            b'{"ts":"' + TS.encode() + b'","type":"email_open","prospect":"a\\u0000b@x.example",'
            b'"asset":"E"}',
            r"^'prospect' must be an email address$",
        ),
        (
            b'{"ts":"' + TS.encode() + b'","type":"email_open","prospect":"a\\u007fb@x.example",'
            b'"asset":"E"}',
            r"^'prospect' must be an email address$",
        ),
        (b'{"ts":"' + TS.encode() + b'\\u0000","type":"tick"}', r"^'ts' is not an RFC 3339"),
        (b'{"ts":"' + TS.encode() + b'","type":"tick\\u0000"}', r"^unknown type 'tick\\x00'"),
    ],
)
def test_surrogates_nul_huge_numbers_and_depth(line: bytes, reason: str) -> None:
    item = parse_line(line, 4)
    assert isinstance(item, Reject), item
    assert re.search(reason, item.reason), item.reason
    assert item.line == 4


def test_a_text_line_with_a_lone_surrogate_is_a_reject() -> None:
    """parse_line(str) takes any str: a lone surrogate is not UTF-8, not an exception."""
    item = parse_line('{"ts":"' + TS + '","type":"tick","id":"\ud800"}', 2)
    assert isinstance(item, Reject)
    assert item.reason.startswith("not UTF-8 text: byte 0xed at column ")
    # bytes decoded with surrogateescape still come back as the bytes they were
    item = parse_line(b'{"id":"\xff"}'.decode("utf-8", "surrogateescape"))
    assert isinstance(item, Reject)
    assert item.reason == "not UTF-8 text: byte 0xff at column 8"


def test_nul_and_huge_integers_in_values_are_kept_as_given() -> None:
    event = parse_line(
        orjson.dumps(
            {
                **MINIMAL["prospect_update"],
                "fields": {"n": 18446744073709551615, "s": "a\x00b"},
                "id": "x\x00y",
            }
        )
    )
    assert isinstance(event, Event)
    assert event.fields == {"n": 18446744073709551615, "s": "a\x00b"}
    assert event.id == "x\x00y"


def test_emails_are_unicode_normalised_before_lowercasing() -> None:
    """josé in NFC and in NFD (e + combining acute) is one prospect (issue 6.9)."""
    nfc, nfd = "jos\u00e9@x.example", "jose\u0301@x.example"
    got = {
        parse_line(_line(type="email_open", prospect=p, asset="E")).prospect  # type: ignore[union-attr]
        for p in (nfc, nfd, nfd.upper(), " " + nfc.upper())
    }
    assert got == {nfc}


def test_an_event_keeps_its_line_for_a_later_reject() -> None:
    text = _line(type="email_open", prospect="a@b.example", asset="E")
    (event,) = _read(text.encode() + b"\r\n")
    assert isinstance(event, Event)
    reject = event.reject("unknown email 'E'")
    assert reject == Reject(1, "unknown email 'E'", text)


@settings(max_examples=400, deadline=None)
@given(
    st.binary(max_size=200)
    | st.builds(
        lambda h, t: h + t,
        st.sampled_from(
            [
                b'{"ts":"2026-11-02T09:00:00Z","type":"',
                b'{"ts":"2026-11-02T09:00:00Z","type":"tick",',
                b'{"ts":"2026-11-02T09:00:00Z","type":"form_submit","prospect":"a@b","asset":',
            ]
        ),
        st.binary(max_size=60),
    )
)
def test_any_bytes_are_an_event_a_reject_or_blank(data: bytes) -> None:
    """The reader alone, on any bytes: an Event, a Reject or None, never an exception."""
    item = parse_line(data, 5)
    assert item is None or isinstance(item, Event | Reject)
    if item is None:
        assert not data.strip()
    else:
        assert item.line == 5
    if isinstance(item, Reject):
        assert item.reason and len(item.text) <= MAX_REJECT_TEXT


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters(categories=("Cs", "Ll", "Lu", "Nd", "Po", "Ps", "Zs", "Cc")), max_size=80)
    | st.builds(
        lambda v: _line(type="tick", id=v, fields={"f": v}), st.text(min_size=1, max_size=20)
    )
)
def test_any_text_is_an_event_a_reject_or_blank(text: str) -> None:
    """Also for text lines (lone surrogates included): never an exception."""
    item = parse_line(text, 1)
    assert item is None or isinstance(item, Event | Reject)


# ------------------------------------------- the engine's policies, seen from the CLI

POLICY_RULES = """\
include "library/pardot-default-scoring"
field company_size: picklist ["1-10", "11-50", "51-200", "200+"]
list "Demo"
form "Book a Demo"
on submit of form "Book a Demo" {
  add to list "Demo"
}
"""


def _run_cli(tmp_path: Path, rules: str, events: list[dict[str, object]]) -> tuple[int, str]:
    from click.testing import CliRunner

    from mrules.cli import main

    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.mr").write_text(rules, encoding="utf-8")
    (tmp_path / "ev.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    res = CliRunner().invoke(
        main,
        [
            "run",
            str(tmp_path / "rules"),
            str(tmp_path / "ev.jsonl"),
            "--store",
            str(tmp_path / "db"),
        ],
    )
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.stderr


def _rows(summary: str) -> dict[str, int]:
    """The summary table's rows with a count, by label."""
    found = re.findall(r"│ (.+?)\s*│\s*([\d,]+) │", summary)
    return {label.strip(): int(n.replace(",", "")) for label, n in found}


def _submit(asset: str, **fields: object) -> dict[str, object]:
    return {
        "ts": TS,
        "type": "form_submit",
        "prospect": "ann@x.example",
        "asset": asset,
        "fields": fields,
    }


def test_summary_reports_unknown_assets_with_a_did_you_mean(tmp_path: Path) -> None:
    """Issue 6.9: "Book a demo" for form "Book a Demo" is applied but visible (exit 0)."""
    code, err = _run_cli(
        tmp_path,
        POLICY_RULES,
        [_submit("Book a demo")] * 3
        + [
            _submit("Book a Demo"),
            _submit("Pricing"),
        ],
    )
    assert code == 0
    rows = _rows(err)
    assert rows["events naming an unknown asset"] == 4
    assert rows["unknown form 'Book a demo' (did you mean 'Book a Demo'?)"] == 3
    assert rows["unknown form 'Pricing'"] == 1
    assert rows["events applied"] == 5


def test_summary_reports_skipped_field_values(tmp_path: Path) -> None:
    code, err = _run_cli(
        tmp_path,
        POLICY_RULES,
        [
            _submit("Book a Demo", company_size="huge", employees="many"),
            _submit("Book a Demo", company_size="huge"),
        ],
    )
    assert code == 0
    rows = _rows(err)
    assert rows["field values skipped (do not fit)"] == 3
    assert (
        rows["'huge' is not a value of picklist 'company_size' (values: 1-10, 11-50, 51-200, 200+)"]
        == 2
    )
    assert rows["'many' is not a number (number field 'employees')"] == 1
    assert "unknown asset" not in err


def test_summary_shows_names_as_text_not_markup_or_escape_sequences(tmp_path: Path) -> None:
    """Asset names are data: rich markup in them is printed, control characters escaped."""
    code, err = _run_cli(
        tmp_path,
        POLICY_RULES,
        [
            _submit("[bold red]x[/]"),
            _submit("\x1b[2Jwiped"),
            _submit("[/]"),
        ],
    )
    assert code == 0
    assert "unknown form '[bold red]x[/]'" in err
    assert "unknown form '\\x1b[2Jwiped'" in err
    assert "\x1b" not in err


def test_summary_caps_the_distinct_warnings(tmp_path: Path) -> None:
    code, err = _run_cli(tmp_path, POLICY_RULES, [_submit(f"Form {n}") for n in range(130)])
    assert code == 0
    rows = _rows(err)
    assert rows["events naming an unknown asset"] == 130
    # 100 distinct names kept (10 shown, 90 more), the other 30 counted together
    assert rows["and 90+ more"] == 130 - 10
    assert sum(1 for k in rows if k.startswith("unknown form 'Form ")) == 10


def test_a_setting_word_the_setting_does_not_take_is_a_lint_error(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mrules.cli import main

    (tmp_path / "r.mr").write_text(
        'settings {\n  unknown_assets = "rejct"\n  bad_field_values = "drop"\n}\n', encoding="utf-8"
    )
    res = CliRunner().invoke(main, ["lint", str(tmp_path / "r.mr")])
    assert res.exit_code == 1
    assert (
        'error[MR611]: setting \'unknown_assets\' takes one of "warn", "reject", '
        '"ignore", not "rejct"'
    ) in res.output
    assert "did you mean 'reject'?" in res.output
    assert (
        'error[MR611]: setting \'bad_field_values\' takes one of "skip", "reject", '
        '"keep", not "drop"'
    ) in res.output


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_events_of_one_type_hold_one_type_string(kind: str) -> None:
    """Not a copy per line: a store that keeps events in memory keeps one per type."""
    lines = [_line(type=kind, prospect=f"p{i}@x.example", visitor="v", url="http://x/",
                   asset="A", object="lead") for i in range(2)]  # fmt: skip
    first, second = (parse_line(line) for line in lines)
    assert isinstance(first, Event) and isinstance(second, Event)
    assert first.type == kind and type(first.type) is str  # the plain text, not the enum
    assert first.type is second.type


@given(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.sampled_from(["NFC", "NFD", "NFKD"]),
)
def test_text_field_values_are_read_in_nfc(text: str, form: str) -> None:
    """Whatever form a text value is sent in, the reader yields it in NFC, canonically
    equal to what was sent: `Cafe\\u0301` is the `Café` a rule names."""
    sent = unicodedata.normalize(form, text)
    got = parse_line(_line(type="prospect_update", prospect="ann@example.com", fields={"f": sent}))
    assert isinstance(got, Event), got
    value = got.fields["f"]
    assert unicodedata.is_normalized("NFC", value)
    assert value == unicodedata.normalize("NFC", sent)


def test_an_asset_and_a_user_in_decomposed_unicode_are_read_in_nfc() -> None:
    """The names the rules declare are NFC: `Démo` sent as `De` + a combining accent is
    the form `Démo`, `josé@` the user `josé@`."""
    form, user = "D\u00e9mo", "jos\u00e9@getcloudy.example"
    got = parse_line(
        _line(
            type="crm_update",
            prospect="ann@example.com",
            object="lead",
            asset=unicodedata.normalize("NFD", form),
            user=unicodedata.normalize("NFD", user),
        )
    )
    assert isinstance(got, Event)
    assert (got.asset, got.user) == (form, user)


def test_a_decomposed_field_value_is_composed_and_other_scalars_are_kept() -> None:
    got = parse_line(
        _line(
            type="prospect_update",
            prospect="ann@example.com",
            fields={"city": "Cafe\u0301", "ascii": "Cafe", "n": 3, "b": True, "z": None},
        )
    )
    assert isinstance(got, Event)
    assert got.fields == {"city": "Caf\u00e9", "ascii": "Cafe", "n": 3, "b": True, "z": None}
