"""Walks the checks share: top-level items, the actions of each item, the criteria trees.

Each action is seen with the item that holds it (its context decides which
actions are allowed) and the conditional group around it, if any.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from mrules import ast

__all__ = ["ActionSite", "actions", "context_of", "criteria", "items", "nodes"]

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


_FIELDS: dict[type, tuple[str, ...]] = {}
_last: tuple[ast.Program, list[tuple[str, ast.Node]]] | None = None


def _walk(item: ast.Node, path: str, out: list[tuple[str, ast.Node]]) -> None:
    stack = [item]
    while stack:
        node = stack.pop()
        out.append((path, node))
        cls = type(node)
        names = _FIELDS.get(cls)
        if names is None:
            names = _FIELDS[cls] = tuple(n for n in cls.model_fields if n != "span")
        kids: list[ast.Node] = []
        for name in names:
            value = getattr(node, name)
            if isinstance(value, ast.Node):
                kids.append(value)
            elif isinstance(value, tuple):
                kids.extend(v for v in value if isinstance(v, ast.Node))
        stack.extend(reversed(kids))


def nodes(program: ast.Program) -> list[tuple[str, ast.Node]]:
    """(path, node) for every node below the top-level items, parents first.

    Several checks scan every node; the list is built once per program (the
    last program asked for is remembered), which keeps `check` one walk deep.
    Each file's part is remembered too, so a program that shares most of its
    files with the last one (the language server after one file changed) walks
    only the files that are new.
    """
    global _last, _by_file
    if _last is None or _last[0] is not program:
        out: list[tuple[str, ast.Node]] = []
        kept: dict[int, tuple[ast.File, list[tuple[str, ast.Node]]]] = {}
        for file in program.files:
            entry = _by_file.get(id(file))
            if entry is None or entry[0] is not file:
                part: list[tuple[str, ast.Node]] = []
                for item in file.items:
                    _walk(item, file.path, part)
                entry = (file, part)
            kept[id(file)] = entry
            out.extend(entry[1])
        _by_file = kept
        _last = (program, out)
    return _last[1]


_by_file: dict[int, tuple[ast.File, list[tuple[str, ast.Node]]]] = {}


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
