"""The fast parse path reads every text exactly as Lark's contextual lexer and tree do.

`parse_text` lexes with one master regex and builds the AST while reducing with
Lark's LALR tables; `parse_text_with_lark` is the reference (Lark's own lexer,
parse tree and the same AST methods). Both must give the same AST, spans
included, and the same diagnostics on: every corpus file, the examples, the
bundled library, the docs' examples, the benchmark's generated rules, texts
printed from generated ASTs, texts generated from the grammar, and valid files
with tokens jammed together or swapped. Where the fast path cannot vouch for a
text it hands it to Lark; the tests also check that it does not do so for
ordinary valid files, so a silent fallback cannot hide a slowdown, and that the
per-state answers it caches agree with Lark's lexer in every parser state.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark
from lark.exceptions import UnexpectedCharacters
from lark.lexer import LexerState
from lark.utils import TextSlice

from mrules import ast
from mrules.parser import (
    _Fallback,
    _fast_parser,
    _FastParser,
    _ToAst,
    grammar_text,
    lark_parser,
    parse_text,
    parse_text_with_lark,
)
from mrules.printer import format_file
from strategies import SETTINGS, files

ROOT = Path(__file__).resolve().parent.parent
GRAMMAR_DIR = ROOT / "tests" / "grammar"
CORPUS_PATHS = sorted(
    [
        *GRAMMAR_DIR.glob("valid/*.mr"),
        *GRAMMAR_DIR.glob("invalid/*.mr"),
        *(ROOT / "examples").rglob("*.mr"),
        *(ROOT / "rules").glob("*.mr"),
    ]
)
_FENCE = re.compile(r"^```(mrules(?:-error)?)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
DOC_BLOCKS = [
    m.group(2) for m in _FENCE.finditer((ROOT / "docs" / "language.md").read_text(encoding="utf-8"))
]


def _bench_text(n: int) -> str:
    spec = importlib.util.spec_from_file_location("bench_parse", ROOT / "bench" / "bench_parse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate(n)  # type: ignore[no-any-return]


def _outcome(text: str, parse: Any) -> tuple[Any, list[Any]]:
    file, diags = parse(text, "t.mr")
    return (None if file is None else ast.dump(file), [d.model_dump() for d in diags])


def _assert_same(text: str) -> None:
    assert _outcome(text, parse_text) == _outcome(text, parse_text_with_lark), text


def _fast_handles(text: str) -> bool:
    fast = _fast_parser()
    assert fast is not None
    try:
        fast.parse(text, _ToAst("t.mr"))
    except _Fallback:
        return False
    return True


def test_the_fast_path_is_on_for_the_shipped_grammar() -> None:
    # If this fails, the grammar gained a terminal the fast lexer does not know:
    # everything still parses (through Lark), only slower. Teach `_KNOWN_PATTERNS`.
    assert _fast_parser() is not None


@pytest.mark.parametrize("path", CORPUS_PATHS, ids=lambda p: str(p.relative_to(ROOT)))
def test_corpus_file_gives_the_same_ast_and_diagnostics(path: Path) -> None:
    _assert_same(path.read_text(encoding="utf-8"))


def test_valid_files_never_fall_back_to_lark() -> None:
    valid = [p for p in CORPUS_PATHS if "invalid" not in p.parts]
    assert len(valid) >= 15
    for path in valid:
        assert _fast_handles(path.read_text(encoding="utf-8")), path


def test_docs_examples_give_the_same_results() -> None:
    assert len(DOC_BLOCKS) >= 25
    for block in DOC_BLOCKS:
        _assert_same(block)


def test_generated_benchmark_rules_are_handled_fast_and_the_same() -> None:
    text = _bench_text(400)
    assert _fast_handles(text)
    _assert_same(text)


# Texts Lark reads in ways no one would write on purpose. The fast path declines the
# first group (Lark splits a word the master regex keeps whole) and must still agree.
QUIRKS_LARK_SPLITS = [
    'on submit of formhandler "f" { score +1 }',  # "form" "handler"
    'automation rule "r" priority 1 { repeat every 3 daysat most 2 times }',
    'automation rule "r" priority 1 { when all { visited "x" within 3 dayscompany is 1 } }',
]
QUIRKS_OTHER = [
    'automation rule "r" priority 1 { repeat every 3days then { } }',
    'automation rule "r" priority 1 { when all { score >= 10and } }',
    "field days: number\nfield default: text\nfield status: text",
    'automation rule "r" priority 1 { when all { days since created >= 3 } }',
    'automation rule "r" priority 1 { when all { days is 3; status is "x" } }',
    'automation rule "r" priority 1 { when all { grade >= B+ grade < F } }',
    'automation rule "r" priority 1 { when all { grade >= B-5 } }',
    'on submit of form "f" { set n = -2.50 set d = 2026-01-02T09:30:00+01:00 }',
    'on submit of form "f" { set d = 2026-01-0 }',
    'on submit of form "f" { set d = 2026-01-02Tx }',
    'on submit of form "f" { increment n by +1.5; increment n by 7 }',
    'on submit of form "f" { score+5 score-5 }',
    'grading profile "g" { criterion "c" 2/3; criterion "d" 1/34 }',
    'default grading profile "g" { }',
    'sync salesforce { map company<->"Company" prefer crm }',
    'sync salesforce { map company <= "Company" prefer crm }',
    'on submit of form "f" { if company<"x"{ add tag "t" } }',
    "scoring { form submission +50; email open +1 }",
    'list "a" # comment\n#another\n\n',
    'list "a"\r\n\tlist "b"\x0c',
    'list "a"\u00a0list "b"',
    'list "a" list \u00e9',
    'list "a";',
    'list "unterminated',
    'on submit of Form "f" { }',
    'on submit of form "f" { set Company = "x" }',
    'automation rule "r" priority 1 { when all { company is "a\\u00e9\\"" } }',
    "",
    "   \n# only a comment",
]


@pytest.mark.parametrize("text", QUIRKS_LARK_SPLITS + QUIRKS_OTHER)
def test_lexical_corner_cases_give_the_same_results(text: str) -> None:
    _assert_same(text)


@pytest.mark.parametrize("text", QUIRKS_LARK_SPLITS)
def test_texts_where_lark_splits_a_word_are_left_to_lark(text: str) -> None:
    assert parse_text_with_lark(text, "t.mr")[0] is not None  # Lark accepts them...
    assert not _fast_handles(text)  # ...and the fast path does not guess


# ------------------------------------------------------------- generated texts

_HYPOTHESIS = settings(
    SETTINGS,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@_HYPOTHESIS
@given(files)
def test_printed_trees_are_handled_fast_and_the_same(file: ast.File) -> None:
    text = format_file(file)
    assert _fast_handles(text), text
    _assert_same(text)


_KEYWORDS = sorted(
    t.pattern.value
    for t in lark_parser().terminals
    if t.pattern.type == "str" and t.pattern.value.isalpha()
)
_WORDS = st.one_of(st.sampled_from(_KEYWORDS), st.sampled_from(["x", "_a1", "days", "minute"]))
_EXPLICIT = {
    "STRING": st.sampled_from(['"MQL"', '""', '"a\\"b"', '"\\u00e9"', '"\\n\\t\\\\"', '"x*"']),
    "NAME": _WORDS,
    "TIMESTAMP": st.sampled_from(["2026-01-02", "2026-01-02T09:30Z", "2026-01-02T09:30:00+01:00"]),
    "WEIGHT": st.sampled_from(["1/3", "2/3", "3/3"]),
    "GRADE": st.sampled_from(["F", "D-", "C", "B+", "A+"]),
    "COMMENT": st.sampled_from(["# note", "#", "# é ☁"]),
}
# from_lark needs the grammar object, which a parser loaded from Lark's cache lacks.
_GRAMMAR = Lark(grammar_text(), parser="lalr", lexer="contextual")


@_HYPOTHESIS
@given(from_lark(_GRAMMAR, start="start", explicit=_EXPLICIT))
def test_grammar_generated_texts_give_the_same_results(text: str) -> None:
    _assert_same(text)


_VALID_TEXTS = [p.read_text(encoding="utf-8") for p in CORPUS_PATHS if "invalid" not in p.parts]
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9./:T+-]*|[+-][0-9.]+|\S')
_SWAPS = st.one_of(
    st.sampled_from(_KEYWORDS),
    st.sampled_from(
        [
            "x",
            "B+",
            "F",
            "10",
            "10.5",
            "+3",
            "-2.5",
            "2026-01-02",
            "1/3",
            "<->",
            "<=",
            ">",
            "=",
            ";",
            "{",
            "}",
            '"s"',
            "formhandler",
            "daysx",
            "Acme",
        ]
    ),
)


@st.composite
def jammed(draw: st.DrawFn) -> str:
    """A valid file with a few edits at token boundaries: glue, swap, or comment."""
    text = draw(st.sampled_from(_VALID_TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        tokens = list(_TOKEN.finditer(text))
        if len(tokens) < 2:
            break
        i = draw(st.integers(0, len(tokens) - 2))
        a, b = tokens[i], tokens[i + 1]
        op = draw(st.sampled_from(["glue", "swap", "comment", "semicolon"]))
        if op == "glue":
            text = text[: a.end()] + text[b.start() :]
        elif op == "swap":
            text = text[: a.start()] + draw(_SWAPS) + text[a.end() :]
        elif op == "comment":
            text = text[: a.end()] + " #" + draw(_SWAPS) + "\n" + text[a.end() :]
        else:
            text = text[: a.end()] + ";" + text[a.end() :]
    return text


@_HYPOTHESIS
@given(jammed())
def test_jammed_and_swapped_tokens_give_the_same_results(text: str) -> None:
    _assert_same(text)


# ------------------------------------------------------- per-state lexer answers

_FOLLOWERS = [" ", "\n", ";", "{", "}", "x", "1", "+", "-", ".", "/", ":", "<", "=", '"', "#"]
_SAMPLES = {
    "STRING": ['""', '"a b"', '"\\u00e9\\""'],
    "GRADE": ["A", "B+", "C-", "F"],
    "TIMESTAMP": ["2026-01-02", "2026-01-02T09:30", "2026-01-02T09:30:00Z"],
    "WEIGHT": ["1/3", "3/3"],
    "DEC": ["1.5", "10.25"],
    "INT": ["1", "7", "2026", "30"],
    "SDEC": ["+1.5", "-0.25"],
    "SINT": ["+1", "-20"],
}


def _lark_reads(fast: _FastParser, state: int, text: str) -> tuple[str, int] | None:
    try:
        token = fast._lexers[state].next_token(LexerState(TextSlice(text, 0, len(text))))
    except (UnexpectedCharacters, EOFError):
        return None
    return token.type, token.end_pos


def _master_reads(fast: _FastParser, text: str) -> tuple[str, str] | None:
    m = fast._master.match(text)
    if m is None or m.lastindex is None:
        return None  # nothing the fast lexer knows: it hands the text to Lark
    kind = fast._kinds[m.lastindex]
    lexeme = m.group(m.lastindex)
    if kind == "word":
        return (lexeme if lexeme in fast._words else "NAME"), lexeme
    return (lexeme if kind == "punct" else str(kind)), lexeme


def test_every_state_reads_each_kind_of_lexeme_as_lark_does() -> None:
    """What the fast path caches per (state, key) is what Lark reads, whatever follows.

    For every parser state (one per distinct contextual lexer) and lexemes of every
    kind (keywords, words made of keywords, names, numbers, strings, punctuation)
    followed by various characters: when the fast path accepts the lexeme as
    terminal T, Lark's lexer for that state reads exactly that text as T. (When it
    declines, Lark decides.) Words end where the master regex ends them, so they
    are tried with non-word followers only.
    """
    fast = _FastParser(lark_parser())
    words = sorted(fast._words)
    word_lexemes = [
        *words,
        *(w + "x" for w in words),
        *(w[:-1] for w in words if len(w) > 1),
        "zq",
        "x",
        "_",
        "a1",
        "day1",
    ]
    other_lexemes = [
        *(s for samples in _SAMPLES.values() for s in samples),
        "<->",
        "<=",
        ">=",
        "<",
        ">",
        "=",
        ":",
        ";",
        ",",
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
    ]
    cases = [(w, f) for w in word_lexemes for f in (" ", "{", '"')]
    cases += [(o, f) for o in other_lexemes for f in _FOLLOWERS]
    states = {id(lexer): state for state, lexer in fast._lexers.items()}.values()
    accepted = 0
    for state in states:
        for lexeme, follower in cases:
            text = lexeme + follower
            master = _master_reads(fast, text)
            if master is None:
                continue
            key, read = master
            row = fast._table[state]
            term = row[key] if key in row else fast._resolve(state, key)
            if term is None:
                continue
            accepted += 1
            assert _lark_reads(fast, state, text) == (term, len(read)), (state, text, term)
    assert accepted > 2_000  # the check is not vacuous
