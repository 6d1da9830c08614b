"""The action log's fast line writer says exactly what `action_record` says."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from mrules.outputs import ActionLog, action_record

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=6,
)
texts = st.text(max_size=20)
rows = st.tuples(
    st.integers(1, 2**40),
    st.floats(0, 4e9, allow_nan=False),
    texts,
    texts,
    texts,
    texts,
    texts,
    st.integers(0, 10**6),
    st.none() | texts,
    texts,
    json_values.map(lambda v: orjson.dumps(v).decode()),
    st.none() | json_values.map(lambda v: orjson.dumps(v).decode()),
    json_values.map(lambda v: orjson.dumps(v).decode()),
)


@given(st.lists(rows, min_size=1, max_size=5))
def test_fast_line_equals_the_record(batch) -> None:
    log = ActionLog.__new__(ActionLog)  # only the formatter: no file, no store
    for row in batch:
        assert orjson.loads(log._line(row)) == action_record(row)
