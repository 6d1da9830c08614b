"""The grammar corpora (STYLE R12): valid files parse to a snapshot AST, invalid ones to
snapshot diagnostics, and the valid corpus exercises every rule and alias of the grammar.

New construct in the grammar -> add it to a file in valid/; new bug -> add a file to
invalid/ first. Update snapshots with `pytest tests/grammar --snapshot-update` and read
the diff.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from mrules import ast
from mrules.comments import scan
from mrules.diagnostics import render_text
from mrules.parser import lark_parser, parse_recovering, parse_text
from mrules.source import Source

HERE = Path(__file__).parent
VALID = sorted((HERE / "valid").glob("*.mr"))
INVALID = sorted((HERE / "invalid").glob("*.mr"))


class TextSnapshot(SingleFileSnapshotExtension):
    """One readable .txt file a snapshot, so diagnostics are reviewed as text."""

    _write_mode = WriteMode.TEXT
    file_extension = "txt"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _shown(path: Path) -> str:
    return path.relative_to(HERE).as_posix()


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_file_parses_to_snapshot_ast(path: Path, snapshot) -> None:
    file, diags = parse_text(_read(path), _shown(path))
    assert diags == []
    assert file is not None
    assert ast.dump(file) == snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_parser_builds_what_validation_would_build(path: Path) -> None:
    # The transformer may skip pydantic validation for speed; rebuilding the tree
    # through validation must give the same tree (types, tuples, spans).
    file, _ = parse_text(_read(path), _shown(path))
    assert file is not None
    rebuilt = ast.File.model_validate(ast.dump(file))
    assert rebuilt == file
    assert ast.dump(rebuilt) == ast.dump(file)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_file_gives_snapshot_diagnostics(path: Path, snapshot) -> None:
    text = _read(path)
    shown = _shown(path)
    _, diags = parse_text(text, shown)
    assert diags, f"{shown} should not parse cleanly"
    for d in diags:
        assert 0 <= d.start <= d.end <= len(text)
        assert d.path == shown
    rendered = render_text(diags, {shown: Source(text, shown)})
    assert rendered.startswith(f"{shown}:")
    for word in ("Token", "Expected one of", "$END", "Traceback", "Lark"):
        assert word not in rendered
    for d in diags:  # no grammar-internal name such as `_days` in what was expected
        assert not re.search(r"(?:expected|,|or) _[a-z]", d.message), d.message
    assert rendered == snapshot.use_extension(TextSnapshot)


SYNTAX_CODES = ("MR001", "MR002", "MR003", "MR004")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_every_syntax_error_has_a_hint_of_its_own(path: Path) -> None:
    # "a bad rule file gets file:line:col, a caret and a hint": a hint that only says
    # again what the message said ("expected a whole number") does not count.
    # every broken item of the file, as `mrules lint` reports them
    diags = parse_recovering(_read(path), _shown(path)).diagnostics
    assert diags
    for d in diags:
        if d.code in SYNTAX_CODES:
            assert d.hint, f"{d.path}: no hint for {d.message}"
            assert not d.hint.startswith("expected "), f"{d.path}: {d.hint}"


def _damaged(text: str, rng: random.Random) -> str:
    """The text with one token deleted, doubled, swapped with the next, or replaced by
    (or preceded by) another token of the file."""
    tokens, _ = scan(text)
    i = rng.randrange(len(tokens))
    t, other = tokens[i], rng.choice(tokens)
    op = rng.choice(["delete", "double", "swap", "insert", "replace"])
    if op == "delete":
        return text[: t.start] + text[t.end :]
    if op == "double":
        return text[: t.end] + " " + t.text + text[t.end :]
    if op == "swap" and i + 1 < len(tokens):
        u = tokens[i + 1]
        return text[: t.start] + u.text + text[t.end : u.start] + t.text + text[u.end :]
    if op == "insert":
        return text[: t.start] + other.text + " " + text[t.start :]
    return text[: t.start] + other.text + text[t.end :]


def test_every_syntax_error_in_damaged_valid_files_has_a_hint() -> None:
    """The valid corpus with one token damaged, seeded: every syntax error `mrules
    lint` reports has a hint (before, about 1.5% of such files had one without)."""
    rng = random.Random(20261203)
    texts = [t for t in map(_read, VALID) if len(scan(t)[0]) > 2]
    missing = []
    for _ in range(600):
        text = _damaged(rng.choice(texts), rng)
        for d in parse_recovering(text, "damaged.mr").diagnostics:
            if d.code in SYNTAX_CODES and (not d.hint or d.hint.startswith("expected ")):
                line = text[text.rfind("\n", 0, d.start) + 1 : d.start + 20]
                missing.append((d.message, line))
    assert not missing, missing


def _named_rules() -> set[str]:
    """Every name a parse-tree node can carry: rule names and aliases, minus inlined ones."""
    names = set()
    for rule in lark_parser().rules:
        name = str(rule.alias or rule.origin.name)
        if name.startswith("_") or (rule.options.expand1 and not rule.alias):
            continue
        names.add(name)
    return names


def test_valid_corpus_covers_every_grammar_rule_and_alias() -> None:
    seen: set[str] = set()
    for path in VALID:
        tree = lark_parser().parse(_read(path))
        seen.update(str(t.data) for t in tree.iter_subtrees())
    missing = sorted(_named_rules() - seen)
    assert not missing, f"no valid corpus file uses: {', '.join(missing)}"


def test_coverage_check_can_fail() -> None:
    # Guard against a vacuous coverage test: the grammar has many named rules, and
    # the empty file alone covers only `start`.
    assert len(_named_rules()) > 100
    tree = lark_parser().parse("")
    assert {str(t.data) for t in tree.iter_subtrees()} == {"start"}
