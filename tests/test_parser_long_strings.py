"""A rule file holding one long string is read, linted and formatted in memory that grows
as the file does, a few bytes a character, and reads exactly as before.

The grammar's STRING (`"(...)*"`, read by Lark and by the fast lexer) and the
formatter's scan of strings matched one character a repetition of a group, for which
Python's regex engine keeps a backtracking record: about 150 bytes a character (300 on
the way of a syntax error), a 50 MB string 7 GB, and minutes in the kernel growing it;
`printer.quote` took as much in its loop over the characters. The memory is counted
here (tracemalloc sees the regex engine's stack), not timed. The possessive patterns
now used match the same strings: the differential tests compare them with the old
ones, and the fast path with Lark."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import peak_bytes
from mrules import comments
from mrules.checker import check_loaded
from mrules.comments import scan
from mrules.loader import load_text
from mrules.parser import _KNOWN_PATTERNS, lark_parser, parse_recovering, parse_text
from mrules.printer import _ESCAPES, _INVISIBLE, FormatError, format_text, quote
from test_parser_speed_equivalence import _assert_same

BODIES: dict[str, Callable[[int], str]] = {
    "plain": lambda n: "a" * n,
    "escapes": lambda n: 'a\\"' * (n // 3),
    "unicode escapes": lambda n: "\\u00e9" * (n // 6),
    "words": lambda n: "ab cd " * (n // 6),
}


def _format(text: str) -> object:
    try:
        return format_text(text, "long.mr")
    except FormatError as e:  # a file with a syntax error: what `mrules fmt` says of it
        return e


STEPS: dict[str, Callable[[str], object]] = {
    "parse": lambda text: parse_text(text, "long.mr"),
    "parse with recovery": lambda text: parse_recovering(text, "long.mr"),
    "format": lambda text: _format(text),
    "scan for comments": scan,
    "lint": lambda text: check_loaded(load_text(text, "long.mr")),
}


# A string closed, and one left open (a syntax error: Lark reads the item).
SHAPES = {"closed": 'list "{}"\n', "unclosed": 'list "{}\ntag "T"\n'}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("step", STEPS)
def test_a_long_string_takes_a_few_bytes_a_character(step: str, body: str, shape: str) -> None:
    STEPS[step]('list "warm up"\n')  # the parser's tables, built once, are not counted
    texts = [SHAPES[shape].format(BODIES[body](n)) for n in (250_000, 1_000_000)]
    small, large = (peak_bytes(lambda t=t: STEPS[step](t)) for t in texts)  # type: ignore[misc]
    # the text, the token and its value, the output: a few copies, not 150 bytes a character
    # (lint also compares names with their blanks folded: a list of a string's words)
    per_char = 32 if step == "lint" else 12
    assert large <= per_char * len(texts[1]), (large, len(texts[1]))
    # each character more costs as much: the growth from the small text to the large one.
    # (Not their ratio: the small text's peak moves between 1.0 and 2.1 MB with what ran
    # before in the process, caches and free lists, which made a ratio of 4.5 flaky.)
    assert large - small <= per_char * (len(texts[1]) - len(texts[0])), (small, large)


_STRING_CHARS = st.sampled_from(["a", " ", '"', "\\", "n", "t", "u", "0", "F", "g", "\r", "\n"])
_STRINGS = st.lists(st.one_of(_STRING_CHARS, st.characters()), max_size=40).map("".join)


# The grammar's STRING as it was, one character a repetition of a capturing group.
_OLD_STRING = r'"([^"\\\r\n]|\\["\\nt]|\\u[0-9a-fA-F]{4})*"'


def test_lark_and_the_fast_lexer_read_strings_with_the_same_pattern() -> None:
    [lark] = [t.pattern.value for t in lark_parser().terminals if t.name == "STRING"]
    assert lark == _KNOWN_PATTERNS["STRING"]


@settings(max_examples=500, deadline=None)
@given(_STRINGS)
def test_the_string_pattern_matches_what_it_matched(tail: str) -> None:
    text = '"' + tail
    before = re.match(_OLD_STRING, text)
    now = re.match(_KNOWN_PATTERNS["STRING"], text)
    assert (before and before.group()) == (now and now.group())


@settings(max_examples=200, deadline=None)
@given(_STRINGS)
def test_a_file_with_any_string_parses_as_lark_parses_it(tail: str) -> None:
    _assert_same(f'list "{tail}\ntag "T"\n')
    _assert_same(f'list "x" tag "{tail}"\n')


# The formatter's scan as it was, one character of a string a repetition.
_OLD_LEXEME = re.compile(
    r'(?P<string>"(?:[^"\\\r\n]|\\.)*"?)'
    r"|(?P<comment>#[^\r\n]*)"
    r"|(?P<punct>[{}\[\](),;])"
    r'|(?P<word>[^\s{}\[\](),;"#]+)'
    r"|(?P<space>\s+)"
)


@settings(max_examples=300, deadline=None)
@given(_STRINGS, _STRINGS)
def test_the_formatters_scan_reads_as_before(tail: str, more: str) -> None:
    text = f'list "{tail}" # {more}\ntag "{more}\n'
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(comments, "_LEXEME", _OLD_LEXEME)
        before = scan(text)
    assert scan(text) == before


def _quote_char_by_char(text: str) -> str:
    """`quote` as it was, one character at a time."""
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif (
            ord(ch) < 0x20
            or 0x7F <= ord(ch) <= 0x9F
            or ch in _INVISIBLE
            or 0xD800 <= ord(ch) <= 0xDFFF
        ):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def test_quote_writes_every_character_as_before() -> None:
    every = "".join(map(chr, range(0x110000)))
    assert quote(every) == _quote_char_by_char(every)
