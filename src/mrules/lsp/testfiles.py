"""Where a rule set's test files (`*.test.yaml`, docs/testing.md) name its declarations.

A test file belongs to a rule set when the rules it tests (its `rules` paths, or the
`rules/` folder beside its folder) are the rule set's folder, one of its files, or a
folder holding it. Only the YAML values that are names of a kind are found: the
`lists`, `dynamic_lists` and `tags` of a prospect, its `assigned`, `profile`,
`source_campaign`, the keys of its `fields` and `category_scores`, the keys of
`expect.rules`, an action's `list`, `tag` and `rule` (in `args` too), an event's
`asset` (of the kind its type names) and the keys of its `fields`. Free text (a
test's `name`, a `skip` reason, rule text) is never touched.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from mrules.events import ASSET_KINDS

__all__ = ["TestName", "find_names", "yaml_scalar"]

log = logging.getLogger(__name__)

RULE_NAMESPACES = ("automation rule", "page action", "segmentation rule", "list")
"""What an action's `rule` may name (a dynamic list is in the `list` namespace)."""


class TestName:
    """A name written in a test file: its namespace(s), value and span (quotes included)."""

    __slots__ = ("end", "namespaces", "start", "style", "value")

    def __init__(self, namespaces: tuple[str, ...], node: yaml.ScalarNode) -> None:
        self.namespaces = namespaces
        self.value = node.value
        self.start = node.start_mark.index
        self.end = node.end_mark.index
        self.style = node.style or ""


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _scalars(node: yaml.Node | None) -> Iterator[yaml.ScalarNode]:
    """The scalars of a list of names (`[A, B]`, `{include: [A], exclude: [B]}`)."""
    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.ScalarNode):
                yield item
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value in ("include", "exclude"):
                yield from _scalars(v)


def _keys(node: yaml.Node | None) -> Iterator[yaml.ScalarNode]:
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode):
                yield k


def _prospect(node: yaml.Node | None, add: Callable[..., None]) -> None:
    for key, namespace in (
        ("lists", "list"),
        ("dynamic_lists", "list"),
        ("tags", "tag"),
    ):
        for s in _scalars(_get(node, key)):
            add((namespace,), s)
    for key, namespace in (("profile", "grading profile"), ("source_campaign", "campaign")):
        value = _get(node, key)
        if isinstance(value, yaml.ScalarNode):
            add((namespace,), value)
    for s in _keys(_get(node, "fields")):
        add(("field",), s)
    for s in _keys(_get(node, "category_scores")):
        add(("scoring category",), s)
    assigned = _get(node, "assigned")
    if isinstance(assigned, yaml.ScalarNode):
        add(("user",), assigned)
    for kind in ("user", "group", "queue"):
        value = _get(assigned, kind)
        if isinstance(value, yaml.ScalarNode):
            add((kind,), value)


def _prospects(node: yaml.Node | None, add: Callable[..., None]) -> None:
    if isinstance(node, yaml.MappingNode):
        for _, prospect in node.value:
            _prospect(prospect, add)


def _action(node: yaml.Node, add: Callable[..., None]) -> None:
    for where in (node, _get(node, "args")):
        for key, namespaces in (("list", ("list",)), ("tag", ("tag",)), ("rule", RULE_NAMESPACES)):
            value = _get(where, key)
            if isinstance(value, yaml.ScalarNode):
                add(namespaces, value)


def _case(node: yaml.Node, add: Callable[..., None]) -> None:
    _prospects(_get(_get(node, "given"), "prospects"), add)
    events = _get(node, "events")
    if isinstance(events, yaml.SequenceNode):
        for event in events.value:
            kind = _get(event, "type")
            asset = _get(event, "asset")
            if isinstance(kind, yaml.ScalarNode) and isinstance(asset, yaml.ScalarNode):
                asset_kind = ASSET_KINDS.get(kind.value)
                if asset_kind is not None:
                    add((asset_kind,), asset)
            for s in _keys(_get(event, "fields")):
                add(("field",), s)
    expect = _get(node, "expect")
    _prospects(_get(expect, "prospects"), add)
    for s in _keys(_get(expect, "rules")):
        add(("automation rule",), s)
    for key in ("actions", "no_actions"):
        actions = _get(expect, key)
        if isinstance(actions, yaml.SequenceNode):
            for action in actions.value:
                _action(action, add)


def _rules_paths(node: yaml.Node | None, folder: Path) -> list[Path] | None:
    """The rule paths a `rules` value names (None: rule text, or not a path)."""
    values = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out = []
    for v in values:
        if not isinstance(v, yaml.ScalarNode) or "\n" in v.value.strip() or not v.value:
            return None
        out.append(folder / v.value)
    return out


def _tests(paths: list[Path] | None, root: str) -> bool:
    for p in paths or ():
        real = os.path.realpath(p)
        if real == root or real.startswith(root + os.sep) or root.startswith(real + os.sep):
            return True
    return False


def find_names(root: Path, text: str, path: Path) -> list[TestName]:
    """The names a test file writes in the cases that test the rule set `root` (none when
    the file is not YAML a test file can be, or tests other rules)."""
    try:
        doc = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, ValueError):
        return []  # not YAML (yet: a file being edited), as `mrules test` would say
    except RecursionError:
        # nested past what the YAML reader follows: skipped, said in the server's log
        # (it was skipped silently: a rename left its names, with no word of why)
        log.warning(
            "%s: skipped for rename and references: nested too deeply to read as YAML", path
        )
        return []
    if not isinstance(doc, yaml.MappingNode):
        return []
    folder = path.parent
    real_root = os.path.realpath(root).rstrip(os.sep) or os.sep
    top = _get(doc, "rules")
    default = _rules_paths(top, folder) if top is not None else [folder.parent / "rules"]
    out: dict[int, TestName] = {}

    def add(namespaces: tuple[str, ...], node: yaml.ScalarNode) -> None:
        if node.style in ("|", ">") or node.end_mark.index <= node.start_mark.index:
            return
        # an alias (`*mql`) is its anchor's node, span included: one name, not one per use
        # (two edits of one range, which editors refuse as overlapping)
        seen = out.get(node.start_mark.index)
        if seen is not None:
            seen.namespaces = tuple(dict.fromkeys((*seen.namespaces, *namespaces)))
        else:
            out[node.start_mark.index] = TestName(namespaces, node)

    tests = _get(doc, "tests")
    if not isinstance(tests, yaml.SequenceNode):
        return []
    for case in tests.value:
        own = _get(case, "rules")
        paths = _rules_paths(own, folder) if own is not None else default
        if _tests(paths, real_root):
            _case(case, add)
    return list(out.values())


_PLAIN = re.compile(r"[A-Za-z0-9_@][A-Za-z0-9 _.@+/-]*")
_NOT_PRINTABLE = re.compile(
    # what YAML does not take as it is in a quoted scalar: not printable, or a line
    # break of YAML 1.1 (NEL, U+2028, U+2029) that reading would fold into a space
    "[^\t\n\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)


def yaml_scalar(new: str, style: str) -> str:
    """`new` written as the YAML scalar it replaces was: plain when it reads back as the
    same text (not `true`, `1`, a date, nor a `: ` or ` #`), else quoted."""
    if not style and _PLAIN.fullmatch(new) and not new.endswith(" "):
        try:
            if yaml.safe_load(new) == new:
                return new
        except yaml.YAMLError:
            pass
    if style == "'" and not _NOT_PRINTABLE.search(new):
        return "'" + new.replace("'", "''") + "'"
    quoted = json.dumps(new, ensure_ascii=False)
    return _NOT_PRINTABLE.sub(
        lambda m: f"\\u{ord(m[0]):04x}" if ord(m[0]) < 0x10000 else f"\\U{ord(m[0]):08x}",
        quoted,
    )
