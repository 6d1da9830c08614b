"""The parser on its own: the example loads, errors are diagnostics, no grammar conflicts."""

from __future__ import annotations

import pytest
from lark import Lark

from mrules.loader import load
from mrules.parser import grammar_text, parse_text, parse_text_with_lark


def test_grammar_has_no_conflicts_in_strict_mode() -> None:
    # strict=True turns shift/reduce conflicts and terminal collisions into errors.
    Lark(grammar_text(), parser="lalr", strict=True)


def test_example_rule_set_parses_without_diagnostics(example_rules) -> None:
    result = load([example_rules])
    assert result.diagnostics == []
    paths = [f.path for f in result.program.files]
    assert paths[0] == "library/pardot-default-scoring.mr"
    assert any(p.endswith("10-completion-actions.mr") for p in paths)


def test_syntax_error_is_a_diagnostic_with_position() -> None:
    file, diags = parse_text('page action "p" on "x.com" { score 25 }', "p.mr")
    assert file is None
    [d] = diags
    assert (d.code, d.start, d.end) == ("MR001", 35, 37)
    assert "score +25" in (d.hint or "")


def test_keywords_are_only_keywords_where_the_grammar_wants_them() -> None:
    file, diags = parse_text('field status: text\non submit of form "f" { set status = "x" }')
    assert diags == []
    assert file is not None and file.items[1].body[0].field.text == "status"


@pytest.mark.parametrize("value", ['["VP", "CEO"]', "[]", '"D"', "10", "true", "2026-01-01"])
@pytest.mark.parametrize("name", ["score", "tag", "grade", "list", "field", "email", "page"])
def test_a_setting_may_spell_a_keyword_after_any_setting(value: str, name: str) -> None:
    """A setting's name is a name wherever it stands. LALR shares the state that closes a
    value (or a `[...]` list) with the places a keyword follows one, so a setting named
    `tag` after `a = []` was read as the keyword `tag` (found by the fmt properties)."""
    text = f'settings {{\n  a = {value}\n  {name} = "x"\n}}\n'
    for parse in (parse_text, parse_text_with_lark):
        file, diags = parse(text, "s.mr")
        assert diags == [], (parse.__name__, diags)
        assert file is not None
        assert [s.name.text for s in file.items[0].items] == ["a", name]


def test_every_error_example_still_fails() -> None:
    from mrules.parser import ERROR_EXAMPLES

    for snippets in ERROR_EXAMPLES.values():
        for snippet in snippets:
            assert parse_text(snippet)[0] is None, snippet


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tag "a\ud800b"', "lone surrogate \\ud800"),  # raw: only a str can hold it
        ('tag "\\udc00"', "lone surrogate \\udc00"),
        ('tag "caf\u00e9\udfff"', "lone surrogate \\udfff"),
        ('tag "a\x00b"', "NUL"),
        ('tag "a\\u0000b"', "NUL"),
    ],
)
def test_strings_never_hold_nul_or_a_lone_surrogate(text: str, message: str) -> None:
    file, diags = parse_text(text, "x.mr")
    assert [d.code for d in diags] == ["MR015"] and message in diags[0].message
    assert file is not None and "\ufffd" in file.items[0].name.text
    file.items[0].name.text.encode("utf-8")  # what reaches the checker always encodes


def test_a_pair_of_escapes_is_one_character() -> None:
    file, diags = parse_text('tag "\\ud83c\\udf89 \U0001f389"', "x.mr")
    assert diags == [] and file is not None
    assert file.items[0].name.text == "\U0001f389 \U0001f389"
