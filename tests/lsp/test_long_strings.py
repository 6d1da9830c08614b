"""Completion next to one long string takes memory that grows as the text does, a few
bytes a character, and finds the same strings and words as before.

The language server's patterns for the rest of a string (`_STRING_REST`) and for the
words of an item before the cursor (`_TOKEN_RE`) matched one character a repetition of a
group, for which Python's regex engine keeps a backtracking record: about 120 bytes a
character, so a completion in or after a 5 MB string took 500 MB more. The memory is
counted here (tracemalloc sees the regex engine's stack), not timed. The possessive
patterns now used match the same text: the differential tests compare them with the old
ones, and the scan of a line for strings and comments with the loop it replaced.

A position far into a long line (a hover at the end of a 5 MB line) was turned into an
offset by measuring each character before it, 2.7 s; it is found by halves now."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from conftest import peak_bytes
from mrules.lsp import analysis as lsp_analysis
from mrules.lsp import server as lsp_server
from mrules.lsp.analysis import Analysis, analyze, complete
from mrules.lsp.server import Lines

BODIES: dict[str, Callable[[int], str]] = {
    "plain": lambda n: "a" * n,
    "escapes": lambda n: 'a\\"' * (n // 3),
    "words": lambda n: "ab cd " * (n // 6),
}

# (the text before the cursor, the text after it), the long string written as {}
PLACES = {
    # `add to list "|aaaa…"`: the rest of the string is replaced by the name picked
    "inside the string": ('on submit of form "F" {{ add to list "', '{}" }}\n'),
    # `set lead_source = "aaaa…"` then `add to list "|`: the item's words are read
    "after the string": (
        'on submit of form "F" {{ set lead_source = "{}"\n  add to list "',
        '" }}\n',
    ),
}


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Analysis:
    root = tmp_path_factory.mktemp("rules")
    (root / "a.mr").write_text('list "MQL"\nform "F"\nfield lead_source: text\n', "utf-8")
    return analyze([root])


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("body", BODIES)
def test_completion_by_a_long_string_takes_a_few_bytes_a_character(
    rules: Analysis, body: str, place: str
) -> None:
    before, after = PLACES[place]
    texts = []
    for n in (250_000, 1_000_000):
        head, tail = before.format(BODIES[body](n)), after.format(BODIES[body](n))
        texts.append((head + tail, len(head)))
    for text, offset in texts:  # what is offered is the list: the string was read whole
        assert [c.label for c in complete(rules, text, offset)] == ["MQL"]
    small, large = (peak_bytes(lambda t=t: complete(rules, *t)) for t in texts)  # type: ignore[misc]
    size = len(texts[1][0])
    # the item's text and its words: a copy or two, not 120 bytes a character
    assert large <= 12 * size, (large, size)
    assert large - small <= 12 * (size - len(texts[0][0])), (small, large)


_CHARS = st.sampled_from(["a", " ", '"', "\\", "#", "n", "_", "<", ">", "-", "=", "\r", "\n"])
_TEXTS = st.lists(st.one_of(_CHARS, st.characters()), max_size=40).map("".join)

# The patterns as they were, one character a repetition of a group.
_OLD_STRING_REST = re.compile(r'(?:[^"\\\r\n]|\\.)*"')
_OLD_TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|<->|[<>]=?|[^\s]')


def _old_scan(line: str) -> tuple[int | None, bool]:
    """`_scan` as it was, one character at a time."""
    pos, open_at = 0, None
    while pos < len(line):
        ch = line[pos]
        if open_at is None:
            if ch == "#":
                return None, True
            if ch == '"':
                open_at = pos
        elif ch == "\\":
            pos += 1
        elif ch == '"':
            open_at = None
        pos += 1
    return open_at, False


@settings(max_examples=500, deadline=None)
@given(_TEXTS)
def test_the_rest_of_a_string_is_found_as_before(text: str) -> None:
    before = _OLD_STRING_REST.match(text)
    now = lsp_analysis._STRING_REST.match(text)
    assert (before and before.group()) == (now and now.group())


@settings(max_examples=500, deadline=None)
@given(_TEXTS)
def test_an_items_words_are_read_as_before(text: str) -> None:
    assert lsp_analysis._TOKEN_RE.findall(text) == _OLD_TOKEN_RE.findall(text)


@settings(max_examples=500, deadline=None)
@given(_TEXTS)
def test_strings_and_comments_of_a_line_are_found_as_before(text: str) -> None:
    line = text.replace("\n", " ")  # the text of one line before the cursor
    assert lsp_analysis._scan(line) == _old_scan(line)


def test_a_line_with_many_strings_is_scanned_as_before() -> None:
    line = 'tag "a\\"b" # not a comment "x\\\\" list "o' * 50
    for end in range(len(line) + 1):
        assert lsp_analysis._scan(line[:end]) == _old_scan(line[:end]), end


def test_the_rest_of_a_long_string_is_replaced_whole(rules: Analysis) -> None:
    head = 'on submit of form "F" { add to list "'
    text = head + "a" * 1_000_000 + '" }\n'
    [got] = complete(rules, text, len(head))
    assert (got.start, got.end, got.insert) == (len(head) - 1, len(text) - 3, '"MQL"')


# ------------------------------------------------------------------ positions to offsets

_ENCODINGS = ("utf-8", "utf-16", "utf-32")


def _old_offset(lines: Lines, pos: types.Position) -> int:
    """`Lines.offset` as it was: the units of each character of the line, one at a time."""
    if pos.line >= len(lines.starts):
        return len(lines.text)
    start = lines.starts[max(0, pos.line)]
    end = lines._end(max(0, pos.line))
    units = 0
    for i in range(start, end):
        if units >= pos.character:
            return i
        units += lsp_server._units(lines.text[i], lines.encoding)
    return end


_LINE_CHARS = st.sampled_from(["a", "é", "\U0001f389", "\ud800", "\r", "\n", "\r\n", '"'])
_DOCUMENTS = st.lists(st.one_of(_LINE_CHARS, st.characters()), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS, st.sampled_from(_ENCODINGS), st.integers(0, 4), st.integers(0, 80))
def test_a_position_is_the_offset_it_was(text: str, encoding: str, line: int, col: int) -> None:
    lines = Lines(text, encoding)
    pos = types.Position(line, col)
    assert lines.offset(pos) == _old_offset(lines, pos)


@pytest.mark.parametrize("encoding", _ENCODINGS)
def test_a_position_far_into_a_long_line_is_found_without_a_look_at_each_character(
    encoding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hover or a completion at the end of a 5 MB line took 2.7 s, most of it here."""
    text = 'tag "' + "é\U0001f389a " * 250_000 + 'b"\n'
    lines = Lines(text, encoding)
    at = text.index('b"')
    pos = lines.position(at)
    measured: list[int] = []
    units = lsp_server._units

    def counted(part: str, encoding: str) -> int:
        measured.append(len(part))
        return units(part, encoding)

    monkeypatch.setattr(lsp_server, "_units", counted)
    assert lines.offset(pos) == at
    # the line measured a few dozen times by halves, not each of its characters once
    assert len(measured) <= 2 * len(text).bit_length(), len(measured)
