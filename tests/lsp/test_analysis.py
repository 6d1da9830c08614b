"""The language server's knowledge on offsets, without the protocol: hover docs link to real
sections, completion in broken or unusual places, quick fixes, rename rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mrules.diagnostics import Diagnostic, Severity
from mrules.lsp.analysis import KEYWORD_DOCS, analyze, complete, hover, quick_fix

ROOT = Path(__file__).resolve().parents[2]


def anchors(doc: str) -> set[str]:
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", doc, re.MULTILINE)
    }


def test_keyword_docs_link_to_sections_of_the_language_reference() -> None:
    known = anchors((ROOT / "docs" / "language.md").read_text("utf-8"))
    missing = {k: a for k, (_, a) in KEYWORD_DOCS.items() if a not in known}
    assert not missing


@pytest.fixture
def analysis(tmp_path: Path):
    (tmp_path / "a.mr").write_text(
        'field size: picklist ["S", "M"]\nlist "MQL"\nform "F"\ntag "T"\n', "utf-8"
    )
    return analyze([tmp_path])


def test_completion_at_the_start_of_a_file_offers_items(analysis) -> None:
    labels = [c.label for c in complete(analysis, "", 0)]
    assert {"list", "automation", "on", "field", "include"} <= set(labels)


def test_completion_after_a_broken_item_still_works(analysis) -> None:
    text = 'list "A" @\non submit of form "F" { add to list '
    assert [c.label for c in complete(analysis, text, len(text))] == ["MQL"]


def test_completion_of_a_partial_keyword_and_field(analysis) -> None:
    text = 'automation rule "R" priority 1 { when all { si'
    got = complete(analysis, text, len(text))
    assert [c.label for c in got] == ["size"]
    assert got[0].start == len(text) - 2


def test_no_names_offered_where_a_name_is_declared(analysis) -> None:
    assert complete(analysis, 'list "', 6) == []


def test_completion_inside_a_comment_offers_nothing_odd(analysis) -> None:
    text = '# add to list "'
    assert [c for c in complete(analysis, text, len(text)) if c.kind == "list"] == []


@pytest.mark.parametrize(
    "text", ["# the sc", 'list "MQL"  # email and sc', '# a "quoted" sc', 'tag "#T" # sc']
)
def test_a_word_typed_in_a_comment_is_neither_completed_nor_explained(analysis, text: str) -> None:
    # Prose in a comment was taken for code: `sc` offered `scoring`, and hover on `email`
    # or `score` in a comment showed a field's type or a keyword's documentation.
    assert complete(analysis, text, len(text)) == []
    path = "other.mr"  # no names of it indexed: only keywords and default fields
    assert hover(analysis, path, text, len(text) - 1) is None
    assert hover(analysis, path, "# the score", 8) is None
    assert hover(analysis, path, "# email", 3) is None
    assert hover(analysis, path, "email", 1) is not None  # outside a comment, as before
    assert hover(analysis, path, 'tag "#T" score', 10) is not None  # `#` in a string


def test_a_word_in_a_string_is_not_explained_as_a_keyword_or_field(tmp_path: Path) -> None:
    # A URL is text: hover on `all` or `score` in `"x.com/score/all*"` showed the
    # documentation of the keyword, and `size` that of the field.
    text = (
        'field size: number\npage action "P" on "x.com/score/all*" { score +5 }\n'
        'automation rule "R" priority 1 { when all { visited "x.com/size" } then { score +1 } }\n'
    )
    (tmp_path / "a.mr").write_text(text, "utf-8")
    analysis = analyze([tmp_path])
    [path] = analysis.result.sources
    for word in ("score/", "all*", 'size"'):
        assert hover(analysis, path, text, text.index(word) + 1) is None, word
    assert "Every criterion" in hover(analysis, path, text, text.index("all {") + 1)[0]
    assert "**score**" in hover(analysis, path, text, text.index("score +5") + 1)[0]
    assert "number" in hover(analysis, path, text, text.index("size:") + 1)[0]


def diag(hint: str, start: int, end: int) -> Diagnostic:
    return Diagnostic(
        code="MR103",
        severity=Severity.ERROR,
        message="m",
        path="x",
        start=start,
        end=end,
        hint=hint,
    )


def test_quick_fix_quotes_names_and_leaves_words_bare() -> None:
    text = 'add to list "MQl"\ncompnay is "x"'
    assert quick_fix(diag("did you mean 'MQL'?", 12, 17), text) == '"MQL"'
    assert quick_fix(diag("did you mean 'company'?", 18, 25), text) == "company"
    assert quick_fix(diag('declare it: list "x"', 12, 17), text) is None


def test_rename_rules(analysis) -> None:
    path = next(iter(analysis.refs))
    field = next(r for r in analysis.refs[path] if r.namespace == "field")
    with pytest.raises(ValueError, match="not a field name"):
        analysis.rename_edits(field, "Size")
    lst = next(r for r in analysis.refs[path] if r.namespace == "list")
    assert analysis.rename_edits(lst, 'A "B"') == {path: [(lst.start, lst.end, '"A \\"B\\""')]}


def test_quick_fix_trims_an_unused_suppression() -> None:
    def mr030(message: str, comment: str) -> str | None:
        d = Diagnostic(
            code="MR030",
            severity=Severity.WARNING,
            message=message,
            path="x",
            start=0,
            end=len(comment),
        )
        return quick_fix(d, comment)

    assert (
        mr030("unused suppression of MR101: not reported on this line", "# mrules: ignore[MR101]")
        == ""
    )
    assert (
        mr030(
            "unused suppression of MR312: not reported on this line",
            "# mrules: ignore[MR109, MR312] why",
        )
        == "# mrules: ignore[MR109] why"
    )
    assert mr030("unused suppression: nothing is reported on this line", "# mrules: ignore") == ""
    assert mr030("'312' in a suppression is not a code", "# mrules: ignore[312]") is None


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        ('automation rule "r" priority 1 { when all { visted "x.com" } }', None),
        ('LIST "A"', 'list "A"'),
        ('lst "A"', 'list "A"'),
        (
            'automation rule "r" priority 1 { when all { Company is "x" } }',
            'automation rule "r" priority 1 { when all { company is "x" } }',
        ),
    ],
)
def test_a_syntax_error_quick_fix_replaces_the_word_it_names(text: str, fixed: str | None) -> None:
    # The hint of `visted "x.com"` names 'visited', but the error is at the string: a fix
    # from it would write `visted "visited"`. A fix is offered only where its word goes.
    from mrules.parser import parse_recovering

    [d] = parse_recovering(text, "x.mr").diagnostics
    fix = quick_fix(d, text)
    assert (None if fix is None else text[: d.start] + fix + text[d.end :]) == fixed
