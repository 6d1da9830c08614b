"""`norm`'s shortcut for text gives what float() gives (differential, hypothesis)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from mrules.policy import blank
from mrules.sync.merge import norm


def reference(value: Any) -> Any:
    """norm as first written: float() tried on every text."""
    if blank(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        return f if math.isfinite(f) and value.strip() == value else value
    return str(value)


numberish = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    st.sampled_from(
        [
            "1_000",
            " 12",
            "12 ",
            "1e5",
            "-0",
            "+3",
            ".5",
            "٣",
            "inf",
            "NaN",
            "Infinity",
            "1 2",
            "\u00a012",
            "12\n",
            "0x10",
            "+1 555 0101",
        ]
    ),
)


@given(
    st.one_of(
        st.text(),
        numberish,
        st.lists(st.text(max_size=3), max_size=3),
        st.floats(),
        st.integers(),
        st.booleans(),
        st.none(),
    )
)
# Values 100 random draws rarely hold, each a branch of `norm` of its own: digits that
# float() reads as an infinity (kept as text, not a number), and a value of no other
# kind (a date), compared as its text.
@example("1e999")
@example("-1e400")
@example(dt.date(2026, 3, 1))
def test_norm_equals_the_reference(value: Any) -> None:
    got, want = norm(value), reference(value)
    assert type(got) is type(want)
    assert got == want or (isinstance(got, float) and math.isnan(got) and math.isnan(want))
