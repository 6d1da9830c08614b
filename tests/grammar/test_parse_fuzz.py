"""Any text or bytes as a rule file yields diagnostics, never a traceback.

Three sources of input: texts generated from the grammar itself (`from_lark`),
mutations of the corpus files (deleted, inserted, duplicated and swapped ranges),
and arbitrary bytes run through `mrules parse`. Example counts are small by
default; `MRULES_HYPOTHESIS_PROFILE=long` runs many more.
"""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

from mrules import ast
from mrules.cli import main
from mrules.parser import grammar_text, parse_text

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CORPUS = [
    p.read_text(encoding="utf-8")
    for p in sorted(
        [*HERE.glob("valid/*.mr"), *HERE.glob("invalid/*.mr"), *(ROOT / "examples").rglob("*.mr")]
    )
]

LONG = os.environ.get("MRULES_HYPOTHESIS_PROFILE") == "long"


def _settings(default: int, long: int) -> settings:
    return settings(
        max_examples=long if LONG else default,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


def _assert_reports(text: str) -> None:
    """The parser's contract: a tree, or at least one well-placed diagnostic."""
    file, diags = parse_text(text, "fuzz.mr")
    assert file is not None or diags
    if file is not None:
        assert isinstance(file, ast.File)
    for d in diags:
        assert 0 <= d.start <= d.end <= len(text), (d, len(text))
        assert d.message and "Token(" not in d.message and "$END" not in d.message


# Terminals whose regexes hypothesis cannot generate well (lookaheads, escapes),
# given as explicit strategies that produce mostly valid and sometimes invalid text.
_WORDS = st.sampled_from(["company", "score", "status", "x", "_a1", "email", "A", "on"])
EXPLICIT = {
    "STRING": st.one_of(
        st.sampled_from(['"MQL"', '""', '"a\\"b"', '"\\u00e9"', '"\\n\\t\\\\"', '"x*"']),
        st.text(st.characters(blacklist_characters='"\\\n'), max_size=8).map(lambda s: f'"{s}"'),
    ),
    "NAME": _WORDS,
    "TIMESTAMP": st.sampled_from(
        [
            "2026-01-02",
            "2026-02-30",
            "2026-01-02T09:30Z",
            "2026-01-02T09:30:00+01:00",
            "9999-99-99T99:99",
        ]
    ),
    "WEIGHT": st.sampled_from(["1/3", "2/3", "3/3"]),
    "GRADE": st.sampled_from(["F", "D-", "C", "B+", "A+"]),
    "COMMENT": st.sampled_from(["# note", "#", "# é ☁"]),
}


# from_lark needs the grammar object, which a parser loaded from Lark's cache lacks.
_GRAMMAR = Lark(grammar_text(), parser="lalr", lexer="contextual")


@_settings(default=60, long=3000)
@given(from_lark(_GRAMMAR, start="start", explicit=EXPLICIT))
def test_grammar_generated_text_never_raises(text: str) -> None:
    _assert_reports(text)


_INSERTS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(
        [
            '"',
            "{",
            "}",
            ";",
            "\n",
            "\\",
            "#",
            "*",
            "<->",
            "\x00",
            "\ufeff",
            "é",
            "all {",
            "not",
            "priority",
            "2026-13-40",
            "+",
            "-",
            "/",
        ]
    ),
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A corpus file with a few random edits: delete, insert, duplicate, swap."""
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 4))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 40)))
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "swap"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + draw(_INSERTS) + text[i:]
        elif op == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif n >= 2:
            k = draw(st.integers(0, n - 1))
            a, b = sorted((min(i, n - 1), k))
            text = text[:a] + text[b] + text[a + 1 : b] + text[a] + text[b + 1 :]
    return text


@_settings(default=150, long=5000)
@given(mutated())
def test_mutated_corpus_never_raises(text: str) -> None:
    _assert_reports(text)


def test_mutation_inputs_include_valid_and_invalid_files() -> None:
    # The corpus feeding the mutator is not empty and contains both outcomes.
    outcomes = {parse_text(t)[0] is not None for t in CORPUS}
    assert outcomes == {True, False}


_BYTES = st.one_of(
    st.binary(max_size=200),
    mutated().map(lambda t: t.encode("utf-8")),
    mutated().map(lambda t: b"\xef\xbb\xbf" + t.replace("\n", "\r\n").encode("utf-8")),
    st.builds(lambda t, b: t.encode("utf-8") + b, mutated(), st.binary(min_size=1, max_size=4)),
)


@_settings(default=40, long=1500)
@given(data=_BYTES)
def test_any_bytes_through_the_cli_give_an_exit_code_not_a_traceback(
    data: bytes, tmp_path_factory
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "rules.mr"
    path.write_bytes(data)
    result = CliRunner().invoke(main, ["parse", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
