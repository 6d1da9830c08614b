"""History rows pack into one compact MessagePack array and back, losing nothing."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from mrules.history import Interner, Ref, Row, load_data, pack, unpack
from mrules.vocab import Action, EventType

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_emails = st.sampled_from(["a@x.com", "b@x.com"])


@st.composite
def _rows(draw: Any) -> Row:
    prospect = draw(st.none() | _emails)
    ts = draw(st.floats(0, 2e9, allow_nan=False))
    row = Row(prospect, ts, draw(st.none() | _text), draw(st.integers(0, 10**7)),
              draw(st.none() | _text))  # fmt: skip
    if draw(st.booleans()):
        row.etype = draw(st.sampled_from(list(EventType)))
        row.asset, row.url = draw(st.none() | _text), draw(st.none() | _text)
        row.kind = draw(st.none() | st.sampled_from(["form", "odd kind"]))
        row.visitor = draw(st.none() | _text)
        if draw(st.booleans()):
            row.clock = draw(st.floats(0, 2e9, allow_nan=False))
    seq = draw(st.integers(1, 10**6))
    for _ in range(draw(st.integers(0, 5))):
        action = draw(st.sampled_from([*Action, "free text action"]))
        args = draw(st.none() | st.dictionaries(_text, _json, max_size=3))
        before, after = draw(_json), draw(_json)
        if draw(st.booleans()):  # the shapes the packer shortens
            if action == Action.SCORE:
                points = draw(st.integers(-50, 50))
                args, before = {"points": points}, draw(st.integers(-100, 100))
                after = before + points
            elif action == Action.ADD_TO_LIST:
                before, after = False, True
            elif action == Action.CREATE_PROSPECT:
                before, after = None, prospect
        ref = Ref(draw(_text), draw(_text), draw(st.none() | _text))
        row.steps += (seq, ref, action, args, before, after)
        seq += draw(st.integers(1, 3))
    return row


def _view(row: Row) -> tuple[Any, ...]:
    return (row.activity(), list(row.entries()))


@settings(max_examples=200, deadline=None)
@given(st.lists(_rows(), min_size=1, max_size=4), st.integers(0, 3))
def test_rows_round_trip_through_pack(rows: list[Row], cap: int) -> None:
    names = Interner(cap=10 + cap * 20)  # a small table: some texts stay inline
    for row in rows:
        data = pack(row, names)
        back = unpack(data, names, row.prospect, row.visitor, row.ts, row.first_seq, row.event_id)
        assert _view(back) == _view(row)
        if row.etype is None:
            assert back.activity() is None


def test_a_page_view_with_a_default_score_is_small() -> None:
    names = Interner()
    row = Row("a@x.com", 1.5, "/data/events.jsonl", 1234, "e-0001234")
    row.etype, row.url, row.visitor = "page_view", "https://site.example/products/3", "v1"
    ref = Ref("scoring", "page view", "library/pardot-default-scoring.mr:4")
    row.steps += (77, ref, Action.SCORE, {"points": 1, "activity": "page view"}, 10, 11)
    pack(row, names)  # the first one names everything
    data = pack(row, names)
    # [source, line, type, asset, url, rule, -score, args, before]: one byte a value, but
    # the line (3): 12 bytes, half of the same array as JSON text.
    assert len(data) <= 12 < len(orjson.dumps(load_data(data))) == 24


def test_rows_of_schema_2_are_json_and_still_read() -> None:
    names = Interner()
    row = Row("a@x.com", 1.5, "s.jsonl", 7, "e-7")
    row.etype, row.url = "page_view", "https://site.example/x"
    ref = Ref("scoring", "page view", "x.mr:4")
    row.steps += (3, ref, Action.ADD_TAG, {"tag": "t"}, False, True)
    data = pack(row, names)
    as_json = orjson.dumps(load_data(data))
    assert as_json[:1] == b"[" and data[:1] != b"["
    back = unpack(as_json, names, row.prospect, None, row.ts, row.first_seq, row.event_id)
    assert _view(back) == _view(row)
