"""History rows pack into one compact MessagePack array and back, losing nothing."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from mrules.history import (
    _IMPLIED,
    STEP,
    Interner,
    Ref,
    Row,
    load_data,
    pack,
    packed,
    unpack,
)
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


def _reference_pack(row: Row, names: Interner) -> bytes:
    """The packer as first written, step by step (the differential test's reference)."""

    def implied(action: Any, args: Any, before: Any, after: Any, email: str | None) -> bool:
        fixed = _IMPLIED.get(action)
        if fixed is not None:
            return before is fixed[0] and after is fixed[1]
        if action == Action.SCORE:
            return (
                type(before) is int
                and type(after) is int
                and type(args) is dict
                and type(args.get("points")) is int
                and after == before + args["points"]
            )
        return (action == Action.CREATE_PROSPECT and before is None and after == email
                and email is not None)  # fmt: skip

    etype = names.get(row.etype) if row.etype is not None else 0
    out: list[Any] = [names.get(row.source) if row.source is not None else 0, row.line, etype,
                      names.maybe(row.asset) if row.asset is not None else 0,
                      names.maybe(row.url) if row.url is not None else 0]  # fmt: skip
    if row.kind is not None or row.clock != row.ts:
        out[2] = -etype
        out += (row.kind or 0, row.clock)
    steps, email = row.steps, row.prospect
    for i in range(0, len(steps), STEP):
        seq, ref, action, args, before, after = steps[i : i + STEP]
        text = orjson.dumps(args)
        packed_args: Any = names.args.get(text)
        if packed_args is None:
            if email and email.encode() in text:
                packed_args = [args]
            else:
                packed_args = names.maybe_args(text)
                if packed_args is None:
                    packed_args = [args]
        if i:
            out.append(seq - steps[i - STEP])
        if implied(action, args, before, after, email):
            out += (names.ref(ref), -names.get(action), packed_args)
            if action == Action.SCORE:
                out.append(before)
        else:
            out += (names.ref(ref), names.get(action), packed_args, before, after)
    return names.pack_data(out)  # type: ignore[no-any-return]


@settings(max_examples=200, deadline=None)
@given(st.lists(_rows(), min_size=1, max_size=6), st.integers(0, 3))
def test_the_packer_writes_what_the_reference_writes(rows: list[Row], cap: int) -> None:
    """`packed` works each action out once per store (`Interner.plan`) and gets the message
    bits in the same pass: the bytes, the names it adds and the bits must not change."""
    mine, theirs = Interner(cap=10 + cap * 20), Interner(cap=10 + cap * 20)
    for row in rows:
        data, bits = packed(row, mine)
        assert data == _reference_pack(row, theirs)
        assert bits == row.message_bits()
        assert mine.added == theirs.added and pack(row, mine) == data


def test_a_rolled_back_batch_forgets_the_plans_of_the_names_it_added() -> None:
    names = Interner()
    row = Row("a@x.com", 1.0, "/e.jsonl", 1, None)
    row.steps += (1, Ref("rule", "r", None), Action.ADD_TAG, {"tag": "t"}, False, True)
    first = pack(row, names)
    names.rollback()  # the commit failed: every name of it is gone, its plans with them
    assert names.plans == {} and names.texts == [None]
    assert pack(row, names) == first  # named again, with the same ids


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
