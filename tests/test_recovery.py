"""Error recovery: one file reports every broken item, the checker checks every other one,
and the hints for common mistakes say what to write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.checker import check_loaded
from mrules.cli import main
from mrules.loader import load_text
from mrules.parser import ERROR_EXAMPLES, WORD_HINTS, parse_recovering, parse_text

HERE = Path(__file__).parent / "recovery"


def lint_json(*args: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(main, ["lint", "--format", "json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_three_syntax_errors_and_two_name_errors_are_all_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(HERE)
    code, diags = lint_json("five-errors")
    got = [(d["path"], d["line"], d["code"]) for d in diags]
    assert got == [
        ("five-errors/declarations.mr", 4, "MR002"),
        ("five-errors/rules.mr", 3, "MR001"),
        ("five-errors/rules.mr", 7, "MR103"),
        ("five-errors/rules.mr", 12, "MR001"),
        ("five-errors/rules.mr", 17, "MR102"),
    ], got
    assert code == 1
    by_line = {(d["path"], d["line"]): d for d in diags}
    assert "did you mean 'MQL'" in by_line["five-errors/rules.mr", 7]["hint"]
    assert "not with `and`" in by_line["five-errors/rules.mr", 12]["hint"]
    assert "did you mean 'score'" in by_line["five-errors/rules.mr", 17]["hint"]


def test_text_summary_counts_all_five(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)
    result = CliRunner().invoke(main, ["lint", "five-errors"])
    assert result.exit_code == 1
    assert "5 errors in 2 files" in result.stderr


def test_a_valid_file_takes_the_plain_path() -> None:
    text = 'list "A"\ntag "B"\n'
    parsed = parse_recovering(text, "x.mr")
    file, diags = parse_text(text, "x.mr")
    assert parsed.file == file and parsed.diagnostics == diags and parsed.unparsed == ()


def test_items_after_a_broken_one_are_kept_with_their_offsets() -> None:
    text = 'list "A"\nlist B\nlist "C"\n'
    parsed = parse_recovering(text, "x.mr")
    assert [(i.name.text, i.span.start) for i in parsed.file.items] == [("A", 0), ("C", 16)]
    assert [(s.start, s.end) for s in parsed.unparsed] == [(9, 16)]


def test_a_missing_brace_is_reported_once_at_the_next_item() -> None:
    text = 'automation rule "R" priority 1 {\n  when all { score > 1 }\nlist "A"\ntag "T"\n'
    parsed = parse_recovering(text, "x.mr")
    assert [d.code for d in parsed.diagnostics] == ["MR001"]
    assert [i.kind for i in parsed.file.items] == ["list_decl", "tag_decl"]


def test_names_written_in_a_broken_item_do_not_cascade() -> None:
    text = 'list "MQL" @\nform "F"\non submit of form "F" { add to list "MQL" }\n'
    assert [d.code for d in check_loaded(load_text(text, "x.mr"))] == ["MR002"]


def test_a_broken_include_turns_whole_program_checks_off() -> None:
    text = 'include "library/pardot-default-scoring" @\non submit of form "F" { score +1 }\n'
    assert [d.code for d in check_loaded(load_text(text, "x.mr"))] == ["MR002"]


def test_a_file_of_noise_stops_at_the_error_limit() -> None:
    from mrules.parser import MAX_SYNTAX_ERRORS

    text = "list @\n" * (MAX_SYNTAX_ERRORS + 20)
    parsed = parse_recovering(text, "x.mr")
    assert len(parsed.diagnostics) == MAX_SYNTAX_ERRORS


@pytest.mark.parametrize(
    ("label", "snippet"), [(label, s) for label, ss in ERROR_EXAMPLES.items() for s in ss]
)
def test_every_known_mistake_gets_its_hint(label: str, snippet: str) -> None:
    file, diags = parse_text(snippet)
    assert file is None
    assert diags[0].hint == label


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        (
            'form "F"\non submit of form "F" { if employees > 500 and score > 10 { score +1 } }',
            "not with `and`",
        ),
        (
            'automation rule "r" priority 1 { when all { scor >= 1 } then { score +1 } }',
            "did you mean 'score'?",
        ),
        # `and`/`or` before a criterion that starts with a keyword or a field: the
        # parser reads the word as a field name and stops at the next one
        (
            'automation rule "r" priority 1 { when all { score > 5 and employees > 10 } }',
            "not with `and`",
        ),
        (
            'automation rule "r" priority 1 {\n  when all { tagged "a" or\n  tagged "b" } }',
            "not `or`",
        ),
        ('form "F"\non submit of form "F" { if score > 3 then { score +1 } }', "has no `then`"),
        (
            'form "F"\non submit of form "F" since 2026-01-01 then { score +1 }',
            "`on`, `page action` and `if` blocks hold their actions directly",
        ),
        (
            'automation rule "r" priority 1 { when all { visited "x.com" in the last 7 days } }',
            "within 7 days",
        ),
        (
            'field sourse: text\nautomation rule "r" priority 1 {\n'
            '  when all { soure is "x" } then { score +1 } }',
            "did you mean 'sourse'?",
        ),
    ],
)
def test_hints_for_mistakes_seen_in_the_wild(text: str, hint: str) -> None:
    diags = check_loaded(load_text(text, "x.mr"))
    assert diags and hint in (diags[0].hint or ""), [(d.message, d.hint) for d in diags]
    assert "'any'" not in (diags[0].hint or "")


@pytest.mark.parametrize("stray", ["@", "Score", "Tagged"])
def test_a_stray_character_in_criteria_lists_the_criteria_it_could_start(stray: str) -> None:
    # The lexer folds the keywords a field name could spell into NAME: `@` or a
    # capitalised `Score` in a criteria group "expected '}' or a field name".
    text = f'automation rule "r" priority 1 {{ when all {{ {stray} > 1 }} then {{ score +1 }} }}'
    diags = check_loaded(load_text(text, "x.mr"))
    assert diags and diags[0].code == "MR002", [(d.message, d.hint) for d in diags]
    assert "expected 'all', 'any', 'assigned'" in diags[0].message, diags[0].message
    if stray != "@":
        assert diags[0].hint == f"keywords are lowercase: '{stray.lower()}'"


@pytest.mark.parametrize("word", ["then", "foo", "unless"])
def test_a_word_after_a_condition_is_not_taken_for_or(word: str) -> None:
    # The `or` example's parser state is the one after any `if` condition, where every
    # word lexes as a name: `if score > 3 then {` was told "not `or`".
    text = f'form "F"\non submit of form "F" {{ if score > 3 {word} {{ score +1 }} }}'
    diags = check_loaded(load_text(text, "x.mr"))
    assert diags and diags[0].code == "MR001", [(d.message, d.hint) for d in diags]
    assert "`or`" not in (diags[0].hint or ""), diags[0].hint


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("list \u201cMQL\u201d", 'straight double quotes: "MQL"'),
        ("tag \u2018hot\u2019", "straight double quotes"),
        ('list "A" \uff02B\uff02', "straight double quotes"),
        ('form "F"\non submit of form "F" { score \u22125 }', "ASCII minus sign '-'"),
        ('list\u00a0"A"', "ordinary space (this is U+00A0)"),
        ('// lists\nlist "A"', "comments start with `#`"),
        ('list "A"\n/* tags */', "comments start with `#`"),
        ('LIST "A"', "keywords are lowercase: 'list'"),
        ('automation rule "r" priority 1 { when all { Tagged "x" } }', "lowercase: 'tagged'"),
        ("settings { send_autoresponders = True }", "keywords are lowercase: 'true'"),
        (
            'automation rule "r" priority 1 { when all { score != 5 } then { score +1 } }',
            "there is no `!=`",
        ),
        (
            'automation rule "r" priority 1 { when all { score = 5 } then { score +1 } }',
            "`score between 50 and 100`",
        ),
        (
            'automation rule "r" priority 1 { when all { company: "A" } then { score +1 } }',
            'compare a field with `is`: `company is "Acme"`',
        ),
        ("include library/pardot-default-scoring", '"library/pardot-default-scoring"'),
        ('list "A" @', "delete it"),
        ('list "A" {', "this `{` opens no block"),
        ('form "F" folder "x" oops', "a top-level item starts with a keyword"),
        ('automation rule "r" priority -1 { }', "without a sign: 1"),
        ('form "F"\non submit of form "F" since 2026-3-1 { score +1 }', "YYYY-MM-DD"),
        ('form "F"\non submit of form "F" { score +2.5 }', "without a decimal point"),
        ('group "G" ["a@b.c" "d@e.f"]', "separate the items with ','"),
        ('group "G" ["a@b.c", , "d@e.f"]', "nothing before this ','"),
        ('form "F"\non submit of form "F" { add tag "t";; }', "delete it"),
        ('form "F"\non submit of form "F" add tag "t" }', "a block starts with '{'"),
        ('form "F"\non submit of form "F" { create task "C" }', '`create crm task "Call back"'),
        ('form "F"\non submit of form "F" { add "MQL" }', '`add to list "MQL"`'),
        ('form "F"\non submit of form "F" { create crm task "C" (due in 2) }', "`3 days`"),
        ('automation rule "r" priority 1 { when all { visted "x.com" } }', "to test `visited`"),
        ('automation rule "r" priority 1 { when all { score > = 1 } }', "`score > 100`"),
        ('automation rule "r" priority 1 { when all { score > } }', "`score > 100`"),
        ('tag "a\\qb"', "write a backslash as \\\\"),
        ('tag "caf\\u0e9"', "four hex digits"),
        ('file "C:\\Guides\\"', "write a backslash as \\\\"),
        ('tag "trailing\\"', 'the \\" at the end is a quote inside the string'),
        ('form "F"\non submit of form "F" { +10 }', "an action starts with a verb"),
        ('dynamic list "E" { when all { "F" >= 50 } }', "a criterion starts with what it tests"),
        ('automation rule "r" priority 1 { "x" }', "a rule holds `when all { … }`"),
        ('settings { a = 1\n "x" }', "a setting is a name, `=` and a value"),
        ('scoring { "x" +1 }', "a scoring row is an activity and a signed number"),
        ("sync salesforce { 5 minutes }", "a sync block holds `objects lead, contact`"),
        ('form "F"\non submit of form "F" { create crm task "C" ( in 1 day) }', "`due in 3 days`"),
        ('form "F"\non submit of form "F" { create crm task "C" (due 1 day) }', "`due in 3 days`"),
        ('grading profile "P" { "Location" 3/3 }', '`criterion "Industry" 2/3`'),
        ('group "G" ["a@b.c", "d@e.f"] ]', "this `]` closes no list: delete it"),
        ('form "F"\non submit of form "F" { score +1 ) }', "this `)` closes no `(`"),
        ('field f: picklist ["a", "b" field g: text', "closed with ']'"),
        ('field f: picklist ["a", "b"\nfield g: text', "close its list with ']'"),
        ('field f: picklist ["a"] "b"', "put it inside the brackets"),
        (
            'automation rule "r" priority 1 { when all { title is ["a"] "b" } }',
            "inside the brackets",
        ),
        ('on submit of form "F" { set f = ["a"] ( }', "ends the statement before this"),
        ("sync s { objects lead, contact, account, }", "a name follows each ','"),
        ('sync s { objects lead, contact, "Account" }', "without quotes: account"),
        ("sync s { objects lead, contact, , account }", "nothing before this ','"),
    ],
)
def test_hints_for_ordinary_mistakes(text: str, hint: str) -> None:
    diags = load_text(text, "x.mr").diagnostics
    assert diags and hint in (diags[0].hint or ""), [(d.message, d.hint) for d in diags]


@pytest.mark.parametrize(
    "text",
    ['tag "abc\\\nlist "x"', 'tag "abc\\', 'tag "abc\\  \r\nlist "x"', 'tag "C:\\\\x\\\rlist "x"'],
)
def test_a_backslash_at_a_line_end_in_a_string_is_an_unclosed_string(text: str) -> None:
    """Not an "unknown escape '\\'": a string stays on one line, and a backslash at
    its end does not continue it."""
    d = load_text(text, "x.mr").diagnostics[0]
    assert d.code == "MR004"
    assert d.message == "string not closed on its line"
    assert d.start == text.index('"')  # the string, from its opening quote
    assert text[d.end - 1] != " " and text[d.start : d.end].rstrip().endswith("\\")
    assert 'close it with "' in (d.hint or "")
    assert "\\\\" in (d.hint or "")


def test_word_hints_are_for_words_the_language_never_uses() -> None:
    from mrules.parser import lark_parser

    keywords = {t.pattern.value for t in lark_parser().terminals if t.pattern.type == "str"}
    assert not set(WORD_HINTS) & keywords - {"and", "then"}


def _reference(text: str) -> tuple[list, list, list]:
    """Recovery with Lark deciding every piece: slower, and the reference for the fast one."""
    from mrules.parser import _ITEM_START_RE, _recover_with_lark

    items: list = []
    found: list = []
    unparsed: list = []
    starts = [m.start() for m in _ITEM_START_RE.finditer(text)]
    _recover_with_lark(text, 0, len(text), "x.mr", starts, items, found, unparsed)
    return items, found, unparsed


def _mutants(count: int) -> list[str]:
    import random

    from conftest import EXAMPLE

    rng = random.Random(11)
    bases = [p.read_text("utf-8") for p in sorted((EXAMPLE / "rules").glob("*.mr"))]
    out = []
    while len(out) < count:
        text = rng.choice(bases)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(text))
            op = rng.randrange(4)
            if op == 0:
                text = text[:i] + text[i + 1 :]
            elif op == 1:
                text = text[:i] + rng.choice(["@", "}", "{", '"', "and ", "\n", "list "]) + text[i:]
            elif op == 2:
                j = text.find("}", i)
                text = text if j < 0 else text[:j] + text[j + 1 :]
            else:
                j = text.find("\n", i)
                word = rng.choice(["list", "form", "tag", "on"])
                text = text if j < 0 else text[: j + 1] + word + " " + text[j + 1 :]
        out.append(text)
    return out


def test_fast_recovery_agrees_with_lark_recovery() -> None:
    """The fast path finds where a piece breaks and Lark parses only that item; the result
    (items kept, items skipped, where each error is) is what Lark finds reading it all."""
    from mrules import ast

    compared = 0
    for text in _mutants(150):
        parsed = parse_recovering(text, "x.mr")
        if not parsed.unparsed:
            continue
        compared += 1
        items, found, unparsed = _reference(text)
        assert [ast.dump(i) for i in parsed.file.items] == [ast.dump(i) for i in items], text
        assert list(parsed.unparsed) == unparsed, text
        assert sorted((d.code, d.start) for d in parsed.diagnostics) == sorted(
            (d.code, d.start) for d in found
        ), text
    assert compared > 50


def test_one_file_with_three_syntax_errors_and_two_name_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(HERE)
    code, diags = lint_json("one-file.mr")
    assert [(d["line"], d["code"]) for d in diags] == [
        (5, "MR002"),
        (8, "MR001"),
        (12, "MR103"),
        (17, "MR001"),
        (22, "MR102"),
    ]
    assert code == 1
    assert "did you mean 'company_size'?" in diags[-1]["hint"]


def test_a_capitalised_item_keyword_still_starts_an_item() -> None:
    # `Settings {` at the start of a line was part of the broken item above it, skipped
    # with no word: the user fixed `LIST` and only then learnt of `Settings`.
    text = 'LIST "MQL"\nSettings { grade_start = "D" }\nlist "Customers"\n'
    parsed = parse_recovering(text, "x.mr")
    assert [(d.code, d.start, d.hint) for d in parsed.diagnostics] == [
        ("MR002", 0, "keywords are lowercase: 'list'"),
        ("MR002", 11, "keywords are lowercase: 'settings'"),
    ]
    assert [type(i).__name__ for i in parsed.file.items] == ["ListDecl"]
