"""The canonical printer on the corpora: identity files, messy files, the example and library."""

from __future__ import annotations

import typing
from collections import Counter
from pathlib import Path

import pytest

from mrules import ast
from mrules.comments import comment_texts
from mrules.parser import parse_text
from mrules.printer import FormatError, format_file, format_text, quote

ROOT = Path(__file__).resolve().parent.parent
FMT = ROOT / "tests" / "fmt"
IDENTITY = sorted((FMT / "identity").glob("*.mr"))
MESSY = sorted((FMT / "messy").glob("*.mr"))
EXAMPLE = sorted((ROOT / "examples" / "getcloudy" / "rules").glob("*.mr"))
LIBRARY = sorted((ROOT / "rules").glob("*.mr"))
ALL = IDENTITY + MESSY + EXAMPLE + LIBRARY


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _parse(text: str, path: str) -> ast.File:
    file, diags = parse_text(text, path)
    assert file is not None and not diags, diags
    return file


@pytest.mark.parametrize("path", IDENTITY, ids=_id)
def test_identity_files_format_to_themselves(path: Path) -> None:
    text = path.read_text("utf-8")
    assert format_text(text, path.name) == text


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_format_is_idempotent_and_keeps_the_rules(path: Path) -> None:
    text = path.read_text("utf-8")
    once = format_text(text, path.name)
    assert format_text(once, path.name) == once
    assert ast.dump(_parse(once, path.name), spans=False) == ast.dump(
        _parse(text, path.name), spans=False
    )


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_every_comment_is_kept_once(path: Path) -> None:
    text = path.read_text("utf-8")
    assert Counter(comment_texts(format_text(text, path.name))) == Counter(
        c.rstrip() for c in comment_texts(text)
    )


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_the_ast_alone_prints_the_same_rules(path: Path) -> None:
    # Without the text (no comments, no blank lines kept) the rules still round-trip.
    file = _parse(path.read_text("utf-8"), path.name)
    bare = format_file(file)
    assert ast.dump(_parse(bare, path.name), spans=False) == ast.dump(file, spans=False)
    assert "#" not in "".join(line for line in bare.splitlines() if '"' not in line)


@pytest.mark.parametrize("path", MESSY, ids=lambda p: p.name)
def test_messy_files_format_to_their_snapshot(path: Path, snapshot) -> None:
    assert format_text(path.read_text("utf-8"), path.name) == snapshot


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_canonical_text_has_no_trailing_blanks_or_semicolons(path: Path) -> None:
    out = format_text(path.read_text("utf-8"), path.name)
    assert out.endswith("\n") and not out.endswith("\n\n")
    assert "\n\n\n" not in out
    for line in out.splitlines():
        assert line == line.rstrip()
        code = line.split("#", 1)[0] if '"' not in line else line
        assert not code.rstrip().endswith(";")


def _literal_choices(cls: type[ast.Node]) -> dict[str, set[object]]:
    """For each field typed with Literal[...] (optionally | None), the allowed values."""
    out: dict[str, set[object]] = {}
    hints = typing.get_type_hints(cls)
    for name in cls.model_fields:
        if name == "kind":
            continue
        args: list[object] = [hints[name]]
        choices: set[object] = set()
        while args:
            t = args.pop()
            if typing.get_origin(t) is typing.Literal:
                choices.update(typing.get_args(t))
            elif typing.get_origin(t) in (typing.Union, __import__("types").UnionType):
                args.extend(typing.get_args(t))
        if choices:
            out[name] = choices
    return out


def test_identity_corpus_covers_every_construct() -> None:
    seen_kinds: set[str] = set()
    seen_values: set[tuple[str, str, object]] = set()
    optional_seen: set[tuple[str, str, bool]] = set()
    for path in IDENTITY:
        for node in ast.walk(_parse(path.read_text("utf-8"), path.name)):
            seen_kinds.add(node.kind)
            for name in type(node).model_fields:
                value = getattr(node, name)
                seen_values.add((node.kind, name, value if not isinstance(value, tuple) else None))
                optional_seen.add((node.kind, name, value is None))
    classes = [
        c
        for c in vars(ast).values()
        if isinstance(c, type) and issubclass(c, ast.Node) and c not in (ast.Node, ast.Program)
    ]
    kinds = {c.model_fields["kind"].default for c in classes}
    assert kinds - seen_kinds == set()
    missing = []
    for cls in classes:
        kind = cls.model_fields["kind"].default
        for name, choices in _literal_choices(cls).items():
            missing += [(kind, name, v) for v in choices if (kind, name, v) not in seen_values]
        for name, info in cls.model_fields.items():
            if not info.is_required() and info.default is None:
                missing += [
                    (kind, name, f"None={flag}")
                    for flag in (True, False)
                    if (kind, name, flag) not in optional_seen
                ]
    assert sorted(missing, key=str) == [], missing


def test_strings_are_requoted_with_canonical_escapes() -> None:
    assert quote('a"b\\c\nd\te\x1b\x7f\x85é🎉') == '"a\\"b\\\\c\\nd\\te\\u001b\\u007f\\u0085é🎉"'
    file = _parse('list "\\u0041\\u00e9"', "x.mr")
    assert format_file(file) == 'list "Aé"\n'


def test_empty_and_comment_only_files() -> None:
    assert format_text("", "x.mr") == ""
    assert format_text("\n\n  \n", "x.mr") == ""
    assert format_text("  # only\n\n\n# two  \n", "x.mr") == "# only\n\n# two\n"


def test_short_groups_go_on_one_line_only_when_they_fit() -> None:
    short = 'automation rule "r" priority 1 { when all { tagged "t" } }'
    assert format_text(short) == (
        'automation rule "r" priority 1 {\n  when all { tagged "t" }\n}\n'
    )
    long_name = "x" * 90
    out = format_text(f'automation rule "r" priority 1 {{ when all {{ tagged "{long_name}" }} }}')
    assert out == (
        f'automation rule "r" priority 1 {{\n  when all {{\n    tagged "{long_name}"\n  }}\n}}\n'
    )


def test_comments_inside_an_item_head_keep_their_order() -> None:
    text = 'form "f"\non submit # a\n of # b\n form "f" { score +1 }\n'
    assert format_text(text, "x.mr", verify=True) == (
        'form "f"\n\n# a\non submit of form "f" {  # b\n  score +1\n}\n'
    )
    text = 'form "f"\non submit\n # a\n of # b\n form "f" # c\n{ score +1 }\n'
    assert format_text(text, "x.mr", verify=True) == (
        'form "f"\n\n# a\n# b\non submit of form "f" {  # c\n  score +1\n}\n'
    )
    # The last comment alone on its line: all go above, in order.
    text = 'list "t"\nautomation rule "r" # a\n# b\npriority 1 {}\n'
    assert format_text(text, "x.mr", verify=True) == (
        'list "t"\n\n# a\n# b\nautomation rule "r" priority 1 {}\n'
    )


def test_a_file_with_errors_is_refused() -> None:
    with pytest.raises(FormatError) as err:
        format_text('list "a" list', "x.mr")
    assert err.value.diagnostics[0].code == "MR003"
    # Parsed, but a duplicate part would be silently dropped: refused as well.
    with pytest.raises(FormatError) as err:
        format_text('automation rule "r" priority 1 { paused paused }', "x.mr")
    assert err.value.diagnostics[0].code == "MR010"


@pytest.mark.parametrize("sign", ["", "-"])
def test_the_largest_decimals_lint_accepts_format(sign: str) -> None:
    # 100 nines and a fraction are in range (below 10^100) but read as the double
    # 1e100, which the printer wrote as 1 and 100 zeros: out of range, so `mrules fmt`
    # refused a file `mrules lint` passed ("does not parse to the same rules").
    text = f"settings {{ x = {sign}{'9' * 100}.5 }}\n"
    out = format_text(text, "x.mr")
    assert out == f"settings {{\n  x = {sign}{'9' * 100}.0\n}}\n"
    value = _parse(out, "x.mr").items[0].items[0].value.value  # type: ignore[attr-defined]
    assert value == _parse(text, "x.mr").items[0].items[0].value.value  # type: ignore[attr-defined]
    assert format_text(out, "x.mr") == out
