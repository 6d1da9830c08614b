"""The checker's shared walks: the node list, its index by kind, and their cache.

The walk reads a node's children from its `__dict__`; a reference walk over
each class's declared fields must give the same nodes in the same order on
every rule set the repository holds. The cache must never keep a rule set
alive: it used to, and the interpreter's teardown then rescanned every node.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from mrules import ast
from mrules.checker import check, visit
from mrules.loader import load, load_text

ROOT = Path(__file__).resolve().parents[2]
RULE_SETS = [
    ROOT / "examples" / "getcloudy" / "rules",
    ROOT / "tests" / "grammar" / "valid",
    *sorted((ROOT / "tests" / "checker").glob("*.mr")),
]


def _reference_walk(node: ast.Node, path: str, out: list[tuple[str, ast.Node]]) -> None:
    out.append((path, node))
    for name in type(node).model_fields:
        if name == "span":
            continue
        value = getattr(node, name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if isinstance(child, ast.Node):
                _reference_walk(child, path, out)


@pytest.mark.parametrize("rules", RULE_SETS, ids=lambda p: p.name)
def test_the_walk_matches_a_walk_over_declared_fields(rules: Path) -> None:
    program = load([rules]).program
    expected: list[tuple[str, ast.Node]] = []
    for file in program.files:
        for item in file.items:
            _reference_walk(item, file.path, expected)
    got = visit.nodes(program)
    assert len(expected) > 20
    assert [(p, id(n)) for p, n in got] == [(p, id(n)) for p, n in expected]


@pytest.mark.parametrize("rules", RULE_SETS, ids=lambda p: p.name)
def test_nodes_of_a_kind_are_the_walk_filtered(rules: Path) -> None:
    program = load([rules]).program
    every = visit.nodes(program)
    kinds = sorted({n.kind for _, n in every})
    for kind in kinds:
        want = [(p, id(n)) for p, n in every if n.kind == kind]
        assert [(p, id(n)) for p, n in visit.nodes_of(program, (kind,))] == want
    both = [(p, id(n)) for p, n in visit.nodes_of(program, kinds)]
    assert sorted(both) == sorted((p, id(n)) for p, n in every)
    assert [id(n) for _, n in visit.of_type(program, ast.FieldDecl)] == [
        id(n) for _, n in every if isinstance(n, ast.FieldDecl)
    ]


def test_the_cache_lets_a_checked_program_go() -> None:
    result = load_text('field budget: number\nlist "A"\non submit of form "F" { score +5 }')
    check(result.program)
    program, file = weakref.ref(result.program), weakref.ref(result.program.files[0])
    del result
    gc.collect()
    assert program() is None
    assert file() is None


def test_a_file_kept_by_a_new_program_keeps_its_walk() -> None:
    """The language server's case: one file changed, the other's walk is reused."""
    first = load_text('list "A"', "a.mr").program.files[0]
    second = load_text('list "B"', "b.mr").program.files[0]
    old = ast.Program(files=(first, second))
    walked = visit.nodes(old)
    replaced = load_text('list "C"', "b.mr").program.files[0]
    new = ast.Program(files=(first, replaced))
    del old
    got = visit.nodes(new)
    assert [n.name.text for _, n in got if isinstance(n, ast.ListDecl)] == ["A", "C"]
    assert got[0] is walked[0]  # the same (path, node) pair: first.mr was not walked again
