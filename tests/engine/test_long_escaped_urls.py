"""A page view's URL made of many percent-escapes is read in memory that grows as the URL
does, a few bytes a character, and decodes exactly as before.

The pattern of a run of escapes (`(?:%XX)+`) repeated a group for each one, for which
Python's regex engine keeps a backtracking record: 45 bytes a character of the URL,
so one 15 MB URL in an event (lines may be 16 MB) took `mrules run` 750 MB. The memory
is counted here (tracemalloc sees the regex engine's stack), not timed."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import peak_bytes
from mrules import urls
from mrules.settings import EngineSettings
from mrules.urls import normalize_url

URLS = {
    "escapes": lambda n: "https://www.getcloudy.com/" + "%41" * (n // 3),
    "escaped UTF-8": lambda n: "https://getcloudy.com/caf" + "%C3%A9" * (n // 6),
    "escapes and a query": lambda n: "https://getcloudy.com/" + "%2f" * (n // 3) + "?q=%41",
}


def _peak_bytes(url: str) -> int:
    return peak_bytes(lambda: normalize_url(url, EngineSettings()))


@pytest.mark.parametrize("shape", URLS)
def test_a_long_escaped_url_takes_a_few_bytes_a_character(shape: str) -> None:
    normalize_url("https://x.example/%41", EngineSettings())  # caches made once: not counted
    small, large = (URLS[shape](n) for n in (250_000, 1_000_000))
    small_peak, large_peak = _peak_bytes(small), _peak_bytes(large)
    # the URL, its parts, the decoded path: a few copies, not 45 bytes a character
    assert large_peak <= 12 * len(large), (large_peak, len(large))
    assert large_peak - small_peak <= 12 * (len(large) - len(small)), (small_peak, large_peak)


# The pattern as it was, a backtracking record an escape.
_OLD_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")
_PATH = st.lists(
    st.sampled_from(["%", "%4", "%41", "%c3%a9", "%C3", "%2F", "%%", "%zz", "a", "/", "?", "é"]),
    max_size=30,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(_PATH)
def test_the_runs_of_escapes_are_found_as_before(path: str) -> None:
    before = [m.span() for m in _OLD_ESCAPES.finditer(path)]
    assert [m.span() for m in urls._ESCAPES.finditer(path)] == before


def _old_decoded(m: re.Match[str]) -> str:
    """`_decoded` as it was, a character at a time."""
    text = bytes.fromhex(m.group(0).replace("%", "")).decode("utf-8", "surrogateescape")
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"%{code - 0xDC00:02X}")
        elif ch in urls._KEPT:
            out.append(f"%{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


_BYTES = st.lists(st.integers(0, 255), max_size=12)


@settings(max_examples=500, deadline=None)
@given(_PATH, _BYTES, st.booleans())
def test_escapes_decode_as_before(path: str, raw: list[int], lower: bool) -> None:
    escaped = "".join(f"%{b:02x}" if lower else f"%{b:02X}" for b in raw)
    for text in (path, escaped, path + escaped + path):
        before = _OLD_ESCAPES.sub(_old_decoded, text)
        assert urls._ESCAPES.sub(urls._decoded, text) == before


def test_every_byte_and_pair_of_bytes_decodes_as_before() -> None:
    for first in range(256):
        for second in (None, *range(256)):
            text = f"/%{first:02X}" + ("" if second is None else f"%{second:02x}")
            assert urls._ESCAPES.sub(urls._decoded, text) == _OLD_ESCAPES.sub(_old_decoded, text)
