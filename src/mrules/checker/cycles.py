"""Dynamic lists that read each other through `not`: membership that can flip forever.

Rule (code MR313): the graph "dynamic list D reads list L" must have no cycle
that passes through a negated read (`not in list`). A dynamic list is
re-evaluated whenever a list it reads changes, so

    dynamic list "A" { when all { not in list "B" } }
    dynamic list "B" { when all { in list "A" } }

adds a prospect to A, hence to B, hence removes it from A, hence from B, and
so on: no order of evaluation settles, and the run stops at an arbitrary state
(the engine reports such prospects). Cycles of plain `in list` reads are
fine: membership only grows along them, so evaluation settles. This is the
stratified-negation rule of Datalog, applied to lists.

Automation rules are left out: they match once (or after a cooldown), so they
cannot flip a membership back and forth within one settlement.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from mrules import ast
from mrules.checker import report
from mrules.checker.visit import of_type
from mrules.diagnostics import Diagnostic
from mrules.symbols import Symbols

__all__ = ["check_list_cycles"]

# (list read, negated?, the criterion node that reads it)
_Read = tuple[str, bool, ast.InList]
# (list that reads, negated?, the criterion node that reads)
_Edge = tuple[str, bool, ast.InList]


def _reads(criterion: ast.Node) -> Iterator[_Read]:
    """Every `in list` under a criterion, with whether an odd number of `not`s wraps it."""
    stack: list[tuple[ast.Node, bool]] = [(criterion, False)]
    while stack:
        node, negated = stack.pop()
        if isinstance(node, ast.InList):
            yield node.list.text, negated, node
        elif isinstance(node, ast.Not):
            stack.append((node.criterion, not negated))
        elif isinstance(node, ast.Group):
            stack.extend((item, negated) for item in node.items)


def check_list_cycles(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR313: a cycle of dynamic-list reads with a `not` on it."""
    dynamic: dict[str, tuple[str, ast.DynamicList]] = {}
    for path, item in of_type(program, ast.DynamicList):
        dynamic.setdefault(item.name.text, (path, item))
    # edges: list read -> dynamic list that reads it
    edges: dict[str, list[_Edge]] = {}
    for name, (_path, item) in dynamic.items():
        if item.when is None:
            continue
        for read, negated, node in _reads(item.when):
            if read in dynamic:
                edges.setdefault(read, []).append((name, negated, node))
    components = _strongly_connected(
        list(dynamic), {k: [t for t, _, _ in v] for k, v in edges.items()}
    )
    component_of = {name: i for i, comp in enumerate(components) for name in comp}
    for comp in components:
        members = set(comp)
        for source in sorted(members):
            for target, negated, node in edges.get(source, ()):
                if not negated or component_of.get(target) != component_of[source]:
                    continue
                path, item = dynamic[target]
                on_cycle = _read_path(source, target, members, edges)
                cycle = " -> ".join(f"'{n}'" for n in [target, *on_cycle])
                related = [
                    report.note(dynamic[n][0], dynamic[n][1].name, f"'{n}' is on the cycle")
                    for n in on_cycle[:-1]
                ]
                yield report.error(
                    "MR313",
                    f"dynamic list '{target}' reads 'not in list \"{source}\"', which "
                    + (
                        f"is '{target}' itself"
                        if source == target
                        else f"depends on '{target}' itself ({cycle})"
                    )
                    + ": membership can flip forever",
                    path,
                    node,
                    hint="break the cycle: test a field, a tag or a static list "
                    + (
                        "instead of the list itself"
                        if source == target
                        else "that the other list does not derive from"
                    ),
                    related=related,
                )


def _read_path(
    source: str, target: str, members: set[str], edges: dict[str, list[_Edge]]
) -> list[str]:
    """The lists from `source` to `target` (both included), each reading the next: the
    shortest such path inside one strongly connected component.

    `edges` go from a list to the lists that read it, so the search runs from `target`
    back to `source` and the path is read out in reverse.
    """
    came_from: dict[str, str | None] = {target: None}
    queue = deque([target])
    while queue and source not in came_from:
        node = queue.popleft()
        for reader, _negated, _node in edges.get(node, ()):
            if reader in members and reader not in came_from:
                came_from[reader] = node
                queue.append(reader)
    if source == target:
        return [target]
    path = [source]
    while path[-1] != target:
        step = came_from[path[-1]]
        assert step is not None  # one component: target reaches source
        path.append(step)
    return path


def _strongly_connected(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (rule sets may hold thousands of lists)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges.get(node, [])
            if i < len(successors):
                work.append((node, i + 1))
                nxt = successors[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                found.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found
