"""Walks the checks share: top-level items, the actions of each item, the criteria trees.

Each action is seen with the item that holds it (its context decides which
actions are allowed) and the conditional group around it, if any.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, TypeVar, cast

from mrules import ast

__all__ = [
    "ActionSite",
    "actions",
    "context_of",
    "criteria",
    "items",
    "nodes",
    "nodes_of",
    "of_type",
]

Holder = ast.CompletionActions | ast.PageAction | ast.AutomationRule | ast.SegmentationRule


class ActionSite(NamedTuple):
    path: str
    item: Holder
    action: ast.Node  # an ast.Action, or an ast.PriorityFlag in a page-action body
    conditional: ast.Conditional | None


def items(program: ast.Program) -> Iterator[tuple[str, ast.Node]]:
    """Every top-level item with the path of its file, in load order."""
    for file in program.files:
        for item in file.items:
            yield file.path, item


Pairs = list[tuple[str, ast.Node]]
N = TypeVar("N", bound=ast.Node)


def _walk(node: ast.Node, path: str, out: Pairs, by_kind: dict[str, Pairs]) -> None:
    """Append `node` and everything below it, parents first, children in field order.

    A node's fields are its `__dict__`; the span is a `Span` (a tuple subclass,
    not a tuple) and the kind a string, so neither is taken for a child.
    """
    pair = (path, node)
    out.append(pair)
    same = by_kind.get(node.kind)
    if same is None:
        by_kind[node.kind] = [pair]
    else:
        same.append(pair)
    for value in node.__dict__.values():
        if isinstance(value, ast.Node):
            _walk(value, path, out, by_kind)
        elif type(value) is tuple:
            for v in value:
                if isinstance(v, ast.Node):
                    _walk(v, path, out, by_kind)


class _Walked(NamedTuple):
    """The nodes of one file or program: all of them, and by kind."""

    all: Pairs
    by_kind: dict[str, Pairs]


class _NodeCache:
    """The walks of the last program and of each file, for as long as they live.

    Entries hold their program or file weakly and go when it does: a strong
    reference here kept a whole rule set alive until the interpreter exited,
    and its teardown then rescanned every node (1.9 s of a 5 s `mrules lint`
    of 50,000 rules).
    """

    def __init__(self) -> None:
        self.last: tuple[weakref.ref[ast.Program], _Walked] | None = None
        self.by_file: dict[int, tuple[weakref.ref[ast.File], _Walked]] = {}

    def walked(self, program: ast.Program) -> _Walked:
        if self.last is not None and self.last[0]() is program:
            return self.last[1]
        out: Pairs = []
        by_kind: dict[str, Pairs] = {}
        for file in program.files:
            entry = self.by_file.get(id(file))
            if entry is None or entry[0]() is not file:
                part = _Walked([], {})
                for item in file.items:
                    _walk(item, file.path, part.all, part.by_kind)
                entry = (weakref.ref(file, self._file_gone(id(file))), part)
                self.by_file[id(file)] = entry
            out.extend(entry[1].all)
            for kind, pairs in entry[1].by_kind.items():
                by_kind.setdefault(kind, []).extend(pairs)
        walked = _Walked(out, by_kind)
        self.last = (weakref.ref(program, self._program_gone), walked)
        return walked

    def _file_gone(self, key: int) -> Callable[[weakref.ref[ast.File]], None]:
        def forget(ref: weakref.ref[ast.File]) -> None:
            entry = self.by_file.get(key)
            if entry is not None and entry[0] is ref:
                del self.by_file[key]

        return forget

    def _program_gone(self, ref: weakref.ref[ast.Program]) -> None:
        if self.last is not None and self.last[0] is ref:
            self.last = None


_cache = _NodeCache()


def nodes(program: ast.Program) -> Pairs:
    """(path, node) for every node below the top-level items, parents first.

    Several checks scan every node; the list is built once per program (the
    last program asked for is remembered while it lives), which keeps `check`
    one walk deep. Each live file's part is remembered too, so a program that
    shares most of its files with the last one (the language server after one
    file changed) walks only the files that are new.
    """
    return _cache.walked(program).all


def nodes_of(program: ast.Program, kinds: Iterable[str]) -> Iterator[tuple[str, ast.Node]]:
    """(path, node) for the nodes of these kinds, kind by kind, each in load order.

    Indexed by the same walk as `nodes`: a check that looks at a few kinds of
    node touches those alone, not every node of a large rule set again.
    """
    by_kind = _cache.walked(program).by_kind
    for kind in kinds:
        yield from by_kind.get(kind, ())


def of_type(program: ast.Program, cls: type[N]) -> Iterator[tuple[str, N]]:
    """(path, node) for every node of class `cls` (a concrete node class), in load order."""
    kind = cls.model_fields["kind"].default
    for path, node in _cache.walked(program).by_kind.get(kind, ()):
        yield path, cast(N, node)


def context_of(item: ast.Node) -> str:
    """How diagnostics name the place an action sits in."""
    return {
        "completion_actions": "completion actions",
        "page_action": "a page action",
        "automation_rule": "an automation rule",
        "segmentation_rule": "a segmentation rule",
    }.get(item.kind, item.kind)


def actions(program: ast.Program) -> Iterator[ActionSite]:
    """Every action (and `priority` flag) of every item, conditionals included."""
    for path, item in items(program):
        if isinstance(item, ast.CompletionActions | ast.PageAction):
            for stmt in item.body:
                if isinstance(stmt, ast.Conditional):
                    for action in stmt.actions:
                        yield ActionSite(path, item, action, stmt)
                else:
                    yield ActionSite(path, item, stmt, None)
        elif isinstance(item, ast.AutomationRule | ast.SegmentationRule):
            for action in item.then:
                yield ActionSite(path, item, action, None)


def criteria(program: ast.Program) -> Iterator[tuple[str, ast.Node, ast.Node]]:
    """(path, item, root criterion) for every `when` and every conditional's condition."""
    for path, item in items(program):
        if isinstance(item, ast.AutomationRule | ast.SegmentationRule | ast.DynamicList):
            if item.when is not None:
                yield path, item, item.when
        elif isinstance(item, ast.CompletionActions | ast.PageAction):
            for stmt in item.body:
                if isinstance(stmt, ast.Conditional):
                    yield path, item, stmt.condition
