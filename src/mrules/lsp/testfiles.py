"""Where a rule set's test files (`*.test.yaml`, docs/testing.md) name its declarations.

A test file belongs to a rule set when the rules it tests (its `rules` paths, or the
`rules/` folder beside its folder) are the rule set's folder, one of its files, or a
folder holding it. Only the YAML values that are names of a kind are found: the
`lists`, `dynamic_lists` and `tags` of a prospect, its `assigned`, `profile`,
`source_campaign`, the keys of its `fields` and `category_scores`, the keys of
`expect.rules`, an action's `list`, `tag` and `rule` (in `args` too), an event's
`asset` (of the kind its type names) and the keys of its `fields`. Free text (a
test's `name`, a `skip` reason) is never touched.

Rule text written in a test file of the rule set (a case's own `rules: |`, or the
file's when another of its cases tests the rule set) is read as rules: the names it
declares and uses are found too, each at its place in the YAML scalar (past the
block's indentation, quotes and escapes). A name the file does not write character
for character (an escape, a line folded inside it) is left out, and a rename edit of
rule text is made only when the scalar reads back as the renamed rule text
(`rule_text_edit`): else it is left alone, and the server's log says so.
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

__all__ = ["TestName", "find_names", "rule_text_edit", "yaml_scalar"]

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


class RuleTextName(TestName):
    """A name inside rule text written in a test file (`rules: |`): its span in the file,
    and where it is in the rule text (`at`: the YAML path of the scalar, `scalar`: its
    value, `span`: the name's offsets in it)."""

    __slots__ = ("at", "quoted", "scalar", "span")

    def __init__(
        self,
        namespace: str,
        key: str,
        start: int,
        end: int,
        quoted: bool,
        at: tuple[str | int, ...],
        scalar: str,
        span: tuple[int, int],
    ) -> None:
        self.namespaces = (namespace,)
        self.value = key
        self.start, self.end = start, end
        self.style = "rule"
        self.quoted = quoted
        self.at, self.scalar, self.span = at, scalar, span


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
    texts: dict[int, tuple[yaml.ScalarNode, tuple[str | int, ...]]] = {}
    chosen = []
    of_rule_set = False
    for i, case in enumerate(tests.value):
        own = _get(case, "rules")
        paths = _rules_paths(own, folder) if own is not None else default
        if _tests(paths, real_root):
            chosen.append(case)
            of_rule_set = True
            continue
        at: tuple[str | int, ...] = ("tests", i, "rules") if own is not None else ("rules",)
        node = own if own is not None else top
        if isinstance(node, yaml.ScalarNode) and _rule_text(node.value):
            texts.setdefault(node.start_mark.index, (node, at))
            chosen.append(case)
    if not of_rule_set:
        return []  # a test file of other rules (or of rule text only): not this rule set's
    for case in chosen:
        _case(case, add)
    names: list[TestName] = list(out.values())
    for node, where in texts.values():
        names.extend(_rule_text_names(text, node, where))
    return names


def _rule_text(value: str) -> bool:
    """Rule text rather than a path, as `mrules test` tells them apart."""
    from mrules.testing import _is_rule_text

    return _is_rule_text(value)


def _rule_text_names(
    text: str, node: yaml.ScalarNode, at: tuple[str | int, ...]
) -> Iterator[RuleTextName]:
    """The names rule text declares and uses, each where the file writes it."""
    from mrules.loader import LoadError, load_text
    from mrules.lsp.analysis import _index
    from mrules.symbols import collect
    from mrules.testing import _literal_spans, _Scalar, _scalar_spans

    value = node.value
    where = _Scalar(node.start_mark.index, node.end_mark.index, node.style)
    spans = _literal_spans(value, text, where) if node.style == "|" else None
    if spans is None:
        spans = _scalar_spans(value, text, where)
    if spans is None or len(spans) != len(value):
        log.warning("rule text at offset %d: its characters not found in the file", where.start)
        return
    try:
        result = load_text(value)
        refs, _ = _index(result, collect(result.program))
    except (LoadError, RecursionError, ValueError):
        return
    for ref in refs.get("<string>", ()):
        s, e = ref.start, ref.end
        if not 0 <= s < e <= len(value):
            continue
        start, end = spans[s][0], spans[e - 1][1]
        # written character for character: no escape, fold or line break inside it
        if end - start != e - s or text[start:end] != value[s:e]:
            log.warning(
                "rule text: %s '%s' at offset %d is not written as it reads (an escape or "
                "a folded line): left out",
                ref.namespace,
                ref.key,
                start,
            )
            continue
        yield RuleTextName(ref.namespace, ref.key, start, end, ref.quoted, at, value, (s, e))


def _node_at(doc: yaml.Node | None, at: tuple[str | int, ...]) -> yaml.Node | None:
    for step in at:
        if isinstance(step, int):
            if not isinstance(doc, yaml.SequenceNode) or step >= len(doc.value):
                return None
            doc = doc.value[step]
        else:
            doc = _get(doc, step)
    return doc


def rule_text_edit(text: str, name: RuleTextName, new: str) -> bool:
    """Whether writing `new` in place of the name keeps the test file's YAML what it was,
    with only the name changed in the rule text: not so when the scalar's style cannot
    hold it as written (a `"` in a double-quoted scalar, a `'` in a single-quoted one,
    a `: ` in a plain one). The server's log says why an edit is left out."""
    s, e = name.span
    expected = name.scalar[:s] + new + name.scalar[e:]
    edited = text[: name.start] + new + text[name.end :]
    try:
        node = _node_at(yaml.compose(edited, Loader=yaml.SafeLoader), name.at)
    except (yaml.YAMLError, ValueError, RecursionError):
        node = None
    if isinstance(node, yaml.ScalarNode) and node.value == expected:
        return True
    log.warning(
        "rename: %s '%s' at offset %d of rule text in a test file left as it is: its YAML "
        "scalar cannot hold %s as written (edit it by hand)",
        name.namespaces[0],
        name.value,
        name.start,
        new,
    )
    return False


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
