"""A hover or a completion finds the word at the cursor by regex, as it did one
character at a time.

`_word_at` (hover) and `complete` walked back from the cursor a character at a time in
Python to find where the word starts: 0.3 s at the end of a 5 MB word. It is found by
regex in windows that double now. The differential tests compare it with the walks it
replaced; the long word's tests count the characters read one at a time (none), not the
time."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mrules.lsp import analysis as lsp_analysis
from mrules.lsp.analysis import analyze, complete, hover


def _old_word_at(text: str, offset: int) -> tuple[int, int] | None:
    """`_word_at` as it was: back from the cursor a character at a time."""
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    m = lsp_analysis._WORD_RE.match(text, start)
    if m is None or m.end() < offset:
        return None
    return m.start(), m.end()


# Word characters of every kind (ASCII, accented, digits of other scripts, `_`) and
# characters that end a word (spaces, quotes, a line end, punctuation), in long runs too.
_CHARS = st.sampled_from(["a", "Z", "0", "_", "é", "٣", "ß", "\u0301", " ", '"', "\n", "-", "{"])
_TEXTS = st.lists(
    st.one_of(_CHARS, st.characters(), st.builds(str.__mul__, _CHARS, st.integers(60, 300))),
    max_size=12,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(_TEXTS, st.data())
def test_the_word_at_an_offset_is_found_as_before(text: str, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(text)))
    assert lsp_analysis._word_at(text, offset) == _old_word_at(text, offset)


def _old_completion_start(text: str, offset: int) -> int:
    """Where `complete` began the word before the cursor, as it was: a character at a time,
    back to the line's start at most."""
    line_start = text.rfind("\n", 0, offset) + 1
    start = offset
    while start > line_start and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    return start


@settings(max_examples=500, deadline=None)
@given(_TEXTS, st.data())
def test_the_start_of_a_completions_word_is_found_as_before(text: str, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(text)))
    assert lsp_analysis._word_start(text, offset) == _old_completion_start(text, offset)


def test_the_word_at_each_offset_of_a_text_is_found_as_before() -> None:
    text = "tag é_x9 " + "ab_1" * 100 + "é" + "z" * 70 + ' "q" ٣a _ \n' + "w" * 200
    for offset in range(len(text) + 1):
        assert lsp_analysis._word_at(text, offset) == _old_word_at(text, offset), offset
        assert lsp_analysis._word_start(text, offset) == _old_completion_start(text, offset)


class _Counted(str):
    """A text that counts the characters read from it one at a time (`text[i]`)."""

    reads = 0  # reset by each test that uses it

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        if isinstance(key, int):
            type(self).reads += 1
            assert type(self).reads <= 1000, "the text is read a character at a time"
        return str.__getitem__(self, key)


def test_a_hover_on_a_5_mb_word_finds_it_without_reading_each_character(tmp_path) -> None:
    _Counted.reads = 0
    word = "a" * 5_000_000
    text = _Counted('form "F"\non submit of form "F" { add tag ' + word + " }\n")
    start = text.index(word)
    end = start + len(word)
    for offset in (end, start + len(word) // 2, start + 1, start):
        assert lsp_analysis._word_at(text, offset) == (start, end), offset
    (tmp_path / "a.mr").write_text('form "F"\n', "utf-8")
    analysis = analyze([tmp_path])  # the buffer hovered is not saved yet
    assert hover(analysis, str(tmp_path / "b.mr"), text, end) is None  # no keyword, no field
    assert _Counted.reads <= 1000


def test_a_completion_after_a_5_mb_word_reads_no_character_at_a_time(tmp_path) -> None:
    (tmp_path / "a.mr").write_text('list "MQL"\nform "F"\n', "utf-8")
    analysis = analyze([tmp_path])
    head = 'on submit of form "F" {\n  '
    _Counted.reads = 0
    text = _Counted(head + "s" * 5_000_000)
    assert complete(analysis, text, len(text)) == []  # no keyword starts so
    assert _Counted.reads <= 1000
    # the same place with a word of its usual length: the actions that start with it
    short = head + "s"
    assert [c.label for c in complete(analysis, short, len(short))] == ["score", "send", "set"]
