"""AST to canonical text: the inverse of the parser, used by `mrules fmt`.

One method per node type builds a small layout tree (entries made of lines and
nested bodies); `mrules.comments` hands the file's comments to those lines; a
renderer writes the text. The canonical layout:

* Two spaces a level; one statement a line, however long (statements are never
  wrapped); `;` is never written.
* Top-level blocks (`on`, `page action`, `automation rule`, `segmentation rule`,
  `dynamic list`, `scoring`, `grading profile`, `sync`, `settings`) are always
  multi-line, and exactly one blank line separates a top-level block from
  whatever is next to it. Between one-line declarations, and between statements
  inside any block, one blank line is kept where the author left one or more
  (as gofmt does); a block never starts or ends with a blank line.
* A block nested in a statement (a criteria group `all { }`/`any { }`, `then { }`,
  `if ... { }`) sits on one line, `when all { score > 10 }`, when it holds exactly
  one item that is not itself a block, no comment is inside it and the line
  fits in 100 columns; otherwise it is multi-line. Empty blocks are `{}`.
* Automation rule parts come in the order when, repeat, paused, then; sync
  options in the order objects, match, prefer, create, auto create, every,
  blank, then the mappings (the AST does not keep the author's order of these).
* Strings are re-quoted: `\\"`, `\\\\`, `\\n`, `\\t`, other control characters,
  bidirectional controls and line separators as `\\u001b`, `\\u202e`; everything
  else is written as itself. Names that the grammar takes
  bare (field names, setting names, sync objects) stay bare.
* Score changes carry their sign (`+25`, `-10`, `+0`); other numbers are plain
  (`10`, `-1`, `2.5`, never an exponent). Counts agree with their unit:
  `1 day`/`30 days`, `1 time`/`3 times`, `1 minute`/`10 minutes`.
* CRM task options are written in the order due, priority, status, owner, and
  the parentheses are left out when there are none.
* Comments keep their text (minus trailing blanks): a comment alone on its line
  stays above the statement it precedes, at that statement's indentation; one at
  the end of a line trails that statement's line after two spaces; comments at
  the end of a block stay before its `}`; comments at the end of the file stay
  there. A comment inside a one-line statement or a block's head that was
  spread over several lines moves above it (or to the end of its line);
  comments always keep their order.
* No trailing spaces; a non-empty file ends with exactly one newline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from mrules import ast
from mrules.comments import Comment, Owner, SourceIndex, attach, comment_texts
from mrules.diagnostics import Diagnostic
from mrules.parser import MAX_DECIMAL, parse_text

__all__ = ["WIDTH", "FormatError", "FormatterBug", "format_file", "format_text", "quote"]

WIDTH = 100
INDENT = "  "

# ----------------------------------------------------------------- leaf text

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}


_INVISIBLE = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)
"""Characters that reorder or break a line as an editor shows it (bidirectional
controls, line and paragraph separators): written as escapes, never raw."""


def quote(text: str) -> str:
    """A string literal for `text`, with the canonical escapes.

    >>> print(quote('say "hi"\\n'))
    "say \\"hi\\"\\n"
    """
    return '"' + _ESCAPED.sub(_escape, text) + '"'


# What `quote` escapes, found by one regex: a loop over the characters took 140 bytes and
# half a microsecond each (a 50 MB string: 7 GB).
_ESCAPED = re.compile('[\\\\"\x00-\x1f\x7f-\x9f\ud800-\udfff' + "".join(sorted(_INVISIBLE)) + "]")


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def _number(value: float) -> str:
    """A NUMBER token: plain digits, never an exponent (which the grammar cannot read)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the number {value}")
        text = format(Decimal(repr(value)), "f")
        if abs(value) >= MAX_DECIMAL:
            # 1e100, read from 100 nines and a fraction (the largest decimal in range):
            # written out it is 10^100, which is out of range; 100 nines read as it.
            text = ("-" if value < 0 else "") + "9" * len(str(MAX_DECIMAL - 1))
            if float(text) != value:
                raise ValueError(f"cannot write the number {value}")
        return text if "." in text else text + ".0"
    return str(value)


def _signed(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _strings(values: ast.StringList) -> str:
    return "[" + ", ".join(quote(v.text) for v in values.values) + "]"


def _value(
    v: ast.StringValue | ast.NumberValue | ast.TimestampValue | ast.BoolValue | ast.StringList,
) -> str:
    if isinstance(v, ast.StringValue):
        return quote(v.value)
    if isinstance(v, ast.NumberValue):
        return _number(v.value)
    if isinstance(v, ast.TimestampValue):
        return v.value
    if isinstance(v, ast.BoolValue):
        return "true" if v.value else "false"
    return _strings(v)


def _activity(c: ast.Activity) -> str:
    if c.asset_kind is None:
        obj = quote(c.name.text if c.name else "")
    elif c.name is None:
        obj = f"any {c.asset_kind}"
    else:
        obj = f"{c.asset_kind} {quote(c.name.text)}"
    within = f" within {_count(c.within_days, 'day')}" if c.within_days is not None else ""
    return f"{c.verb} {obj}{within}"


def _field_test(c: ast.FieldTest) -> str:
    text = f"{c.field.text} {c.op}"
    if c.value is not None:
        text += " " + _value(c.value)
    if c.value2 is not None:
        text += " and " + _value(c.value2)
    return text


_CRITERIA: dict[type[ast.Node], Callable[[Any], str]] = {
    ast.ScoreCompare: lambda c: f"score {c.op} {c.value}",
    ast.ScoreBetween: lambda c: f"score between {c.low} and {c.high}",
    ast.CategoryScoreCompare: lambda c: (
        f"score in category {quote(c.category.text)} {c.op} {c.value}"
    ),
    ast.GradeCompare: lambda c: f"grade {c.op} {c.grade}",
    ast.FieldTest: _field_test,
    ast.InList: lambda c: f"in list {quote(c.list.text)}",
    ast.Tagged: lambda c: f"tagged {quote(c.tag.text)}",
    ast.Assigned: lambda c: (
        f"assigned to {c.to} {quote(c.name.text)}" if c.to is not None and c.name else "assigned"
    ),
    ast.CrmStatus: lambda c: f"crm status is {c.status}",
    ast.ProfileIs: lambda c: f"profile is {quote(c.profile.text)}",
    ast.CampaignIs: lambda c: f"campaign is {quote(c.campaign.text)}",
    ast.OptedOut: lambda c: "opted out",
    ast.Activity: _activity,
    ast.DaysSince: lambda c: f"days since {c.anchor} {c.op} {c.days}",
}


def _task(a: ast.CreateCrmTask) -> str:
    opts = []
    if a.due_days is not None:
        opts.append(f"due in {_count(a.due_days, 'day')}")
    if a.priority is not None:
        opts.append(f"priority {quote(a.priority)}")
    if a.status is not None:
        opts.append(f"status {quote(a.status)}")
    if a.owner is not None:
        opts.append(f"owner {quote(a.owner.text)}")
    suffix = f" ({', '.join(opts)})" if opts else ""
    return f"create crm task {quote(a.subject)}{suffix}"


_ACTIONS: dict[type[ast.Node], Callable[[Any], str]] = {
    ast.AddToList: lambda a: f"add to list {quote(a.list.text)}",
    ast.RemoveFromList: lambda a: f"remove from list {quote(a.list.text)}",
    ast.AddTag: lambda a: f"add tag {quote(a.tag.text)}",
    ast.RemoveTag: lambda a: f"remove tag {quote(a.tag.text)}",
    ast.AdjustScore: lambda a: f"score {_signed(a.points)}",
    ast.AdjustCategoryScore: lambda a: (
        f"score {_signed(a.points)} in category {quote(a.category.text)}"
    ),
    ast.SetScore: lambda a: f"set score to {a.value}",
    ast.Assign: lambda a: f"assign to {a.to} {quote(a.name.text)}",
    ast.AssignByCrmRule: lambda a: "assign by crm rule",
    ast.SetField: lambda a: f"set {a.field.text} = {_value(a.value)}",
    ast.IncrementField: lambda a: f"increment {a.field.text} by {_number(a.by)}",
    ast.ChangeSourceCampaign: lambda a: f"change source campaign to {quote(a.campaign.text)}",
    ast.AddToCrmCampaign: lambda a: (
        f"add to crm campaign {quote(a.campaign.text)}"
        + (f" status {quote(a.status.text)}" if a.status is not None else "")
    ),
    ast.CreateCrmTask: _task,
    ast.NotifyUser: lambda a: f"notify user {quote(a.user.text)}",
    ast.NotifyAssignedUser: lambda a: "notify assigned user",
    ast.SendAutoresponder: lambda a: f"send autoresponder {quote(a.email.text)}",
    ast.ChangeProfile: lambda a: f"change profile to {quote(a.profile.text)}",
    ast.MarkProfileCriterion: lambda a: (
        f"mark {quote(a.criterion.text)} of profile {quote(a.profile.text)} as {a.state}"
    ),
    ast.DoNotSync: lambda a: "do not sync",
    ast.AllowCrmRecreate: lambda a: "allow crm recreate",
    ast.PriorityFlag: lambda a: "priority",
}


def _opt(prefix: str, name: ast.Name | None) -> str:
    return f" {prefix} {quote(name.text)}" if name is not None else ""


def _opt_list(prefix: str, values: ast.StringList | None) -> str:
    return f" {prefix}{_strings(values)}" if values is not None else ""


_DECLARATIONS: dict[type[ast.Node], Callable[[Any], str]] = {
    ast.Include: lambda d: f"include {quote(d.path.text)}",
    ast.FieldDecl: lambda d: f"field {d.name.text}: {d.type.text}" + _opt_list("", d.choices),
    ast.UserDecl: lambda d: f"user {quote(d.name.text)}",
    ast.GroupDecl: lambda d: f"group {quote(d.name.text)} {_strings(d.members)}",
    ast.QueueDecl: lambda d: f"queue {quote(d.name.text)}",
    ast.ListDecl: lambda d: f"list {quote(d.name.text)}",
    ast.TagDecl: lambda d: f"tag {quote(d.name.text)}",
    ast.AssetDecl: lambda d: f"{d.asset_kind} {quote(d.name.text)}" + _opt("folder", d.folder),
    ast.CampaignDecl: lambda d: (
        f"campaign {quote(d.name.text)}"
        + (f" cost {_number(d.cost)}" if d.cost is not None else "")
    ),
    ast.CrmCampaignDecl: lambda d: (
        f"crm campaign {quote(d.name.text)}" + _opt_list("statuses ", d.statuses)
    ),
    ast.ScoringCategory: lambda d: (
        f"scoring category {quote(d.name.text)} folders {_strings(d.folders)}"
    ),
}

# ------------------------------------------------------------------- layout


@dataclass(eq=False)
class _Line(Owner):
    """One printed line (without indentation); `closes` if it starts with `}`."""

    text: str = ""
    closes: bool = False


@dataclass(eq=False)
class _Entry:
    """A statement: lines at its own depth and bodies (lists of entries) one level deeper."""

    parts: list[_Line | list[_Entry]] = field(default_factory=list)
    block: bool = False  # a top-level block: blank lines around it
    braced: bool = False  # has braces, even on one line: never inlined into another block

    @property
    def one_line(self) -> _Line | None:
        first = self.parts[0]
        return first if len(self.parts) == 1 and isinstance(first, _Line) else None


def _lines(entries: Sequence[_Entry]) -> list[_Line]:
    out: list[_Line] = []
    for e in entries:
        for p in e.parts:
            if isinstance(p, _Line):
                out.append(p)
            else:
                out.extend(_lines(p))
    return out


_RULE_PARTS = ("when", "repeat", "paused", "then")
_SYNC_STARTS = {
    "objects": "objects",
    "match": "match_by",
    "prefer": "precedence",
    "create": "create_on_assignment",
    "auto": "auto_create",
    "every": "cadence",
    "blank": "blank_crm_values",
}


class _Layout:
    """Builds the layout tree; with source text, every line also learns its source ranges."""

    def __init__(self, src: SourceIndex | None) -> None:
        self.src = src

    def _range(self, start: int | None, end: int | None) -> tuple[tuple[int, int], ...]:
        if self.src is None or start is None or end is None:
            return ()
        return ((start, end),)

    def leaf(self, text: str, node: ast.Node | None) -> _Entry:
        ranges = self._range(node.span.start, node.span.end) if node is not None else ()
        return _Entry([_Line(ranges=ranges, text=text)])

    def block(
        self,
        head: str,
        start: int | None,
        open_after: int | None,
        body: Callable[[int], list[_Entry]],
        depth: int,
        *,
        inline: bool = False,
        top: bool = False,
    ) -> _Entry:
        """`head { body }`, one line or several (see the module docstring)."""
        entries = body(depth + 1)
        open_pos = close_pos = None
        has_comment = False
        if self.src is not None and start is not None and open_after is not None:
            open_pos = self.src.brace_after(open_after)
            close_pos = self.src.close_of(open_pos)
            has_comment = self.src.has_comment(open_pos, close_pos)
        close_end = close_pos + 1 if close_pos is not None else None
        if not entries and not has_comment:
            return _Entry(
                [_Line(ranges=self._range(start, close_end), text=f"{head} {{}}")],
                block=top,
                braced=True,
            )
        only = entries[0].one_line if len(entries) == 1 and not entries[0].braced else None
        if inline and only is not None and not has_comment:
            text = f"{head} {{ {only.text} }}"
            if len(INDENT * depth + text) <= WIDTH:
                return _Entry([_Line(ranges=self._range(start, close_end), text=text)], braced=True)
        opener = _Line(
            ranges=self._range(start, open_pos + 1 if open_pos is not None else None),
            text=f"{head} {{",
        )
        closer = _Line(ranges=self._range(close_pos, close_end), text="}", closes=True)
        return _Entry([opener, entries, closer], block=top, braced=True)

    # criteria
    def criterion(
        self, c: ast.Criterion, depth: int, prefix: str = "", start: int | None = None
    ) -> _Entry:
        start = c.span.start if start is None else start
        inner, nots = c, ""
        while isinstance(inner, ast.Not):
            inner, nots = inner.criterion, nots + "not "
        if isinstance(inner, ast.Group):
            g = inner
            return self.block(
                f"{prefix}{nots}{g.match}",
                start,
                g.span.start,
                lambda d: [self.criterion(i, d) for i in g.items],
                depth,
                inline=True,
            )
        text = _CRITERIA[type(inner)](inner)
        entry = self.leaf(f"{prefix}{nots}{text}", c)
        if self.src is not None:
            entry.parts[0].ranges = ((start, c.span.end),)  # type: ignore[union-attr]
        return entry

    # statements
    def statement(self, s: ast.Statement, depth: int) -> _Entry:
        if isinstance(s, ast.Conditional):
            return self.conditional(s, depth)
        return self.leaf(_ACTIONS[type(s)](s), s)

    def actions(self, actions: Sequence[ast.Statement]) -> Callable[[int], list[_Entry]]:
        return lambda d: [self.statement(a, d) for a in actions]

    def conditional(self, s: ast.Conditional, depth: int) -> _Entry:
        cond = self.criterion(s.condition, depth, prefix="if ", start=s.span.start)
        line = cond.one_line
        if line is not None:
            return self.block(
                line.text,
                s.span.start,
                s.condition.span.end,
                self.actions(s.actions),
                depth,
                inline=True,
            )
        # A condition spread over lines: `if all {` ... `} {` actions `}`.
        body = self.actions(s.actions)(depth + 1)
        parts = list(cond.parts)
        last = parts[-1]
        assert isinstance(last, _Line)
        if self.src is not None:
            open_pos = self.src.brace_after(s.condition.span.end)
            close_pos = self.src.close_of(open_pos)
            joint = _Line(ranges=((last.ranges[0][0], open_pos + 1),), text="} {", closes=True)
            closer = _Line(ranges=((close_pos, close_pos + 1),), text="}", closes=True)
        else:
            joint = _Line(text="} {", closes=True)
            closer = _Line(text="}", closes=True)
        return _Entry([*parts[:-1], joint, body, closer], braced=True)

    # top-level items
    def item(self, item: ast.Item) -> _Entry:
        kind = type(item)
        if kind in _DECLARATIONS:
            return self.leaf(_DECLARATIONS[kind](item), item)
        method = getattr(self, f"_{item.kind}")
        entry: _Entry = method(item)
        entry.block = True
        return entry

    def _top(self, head: str, node: ast.Node, body: Callable[[int], list[_Entry]]) -> _Entry:
        return self.block(head, node.span.start, node.span.start, body, 0, top=True)

    def _completion_actions(self, n: ast.CompletionActions) -> _Entry:
        t = n.trigger
        since = f" since {n.since.value}" if n.since is not None else ""
        head = f"on {t.verb} of {t.asset_kind} {quote(t.asset.text)}{since}"
        return self._top(head, n, self.actions(n.body))

    def _page_action(self, n: ast.PageAction) -> _Entry:
        since = f" since {n.since.value}" if n.since is not None else ""
        head = f"page action {quote(n.name.text)} on {quote(n.url.text)}{since}"
        return self._top(head, n, self.actions(n.body))

    def _part_positions(self, n: ast.Node) -> dict[str, tuple[int, int]]:
        if self.src is None:
            return {}
        toks = self.src.body_tokens(self.src.brace_after(n.span.start))
        return {t.text: (t.start, t.end) for t in toks if t.text in _RULE_PARTS}

    def _rule_parts(
        self, n: ast.AutomationRule | ast.SegmentationRule | ast.DynamicList, depth: int
    ) -> list[_Entry]:
        pos = self._part_positions(n)
        out: list[_Entry] = []
        when = n.when
        if when is not None:
            start = pos["when"][0] if "when" in pos else None
            out.append(self.criterion(when, depth, prefix="when ", start=start))
        if isinstance(n, ast.AutomationRule):
            if n.repeat is not None:
                r = n.repeat
                most = f" at most {_count(r.max_times, 'time')}" if r.max_times is not None else ""
                out.append(self.leaf(f"repeat every {_count(r.every_days, 'day')}{most}", r))
            if n.paused:
                p = pos.get("paused")
                out.append(_Entry([_Line(ranges=self._range(*(p or (None, None))), text="paused")]))
        if not isinstance(n, ast.DynamicList) and n.then:
            t = pos.get("then", (None, None))[0]
            out.append(self.block("then", t, t, self.actions(n.then), depth, inline=True))
        return out

    def _automation_rule(self, n: ast.AutomationRule) -> _Entry:
        head = f"automation rule {quote(n.name.text)} priority {n.priority}"
        return self._top(head, n, lambda d: self._rule_parts(n, d))

    def _segmentation_rule(self, n: ast.SegmentationRule) -> _Entry:
        return self._top(
            f"segmentation rule {quote(n.name.text)}", n, lambda d: self._rule_parts(n, d)
        )

    def _dynamic_list(self, n: ast.DynamicList) -> _Entry:
        return self._top(f"dynamic list {quote(n.name.text)}", n, lambda d: self._rule_parts(n, d))

    def _scoring(self, n: ast.Scoring) -> _Entry:
        return self._top(
            "scoring",
            n,
            lambda d: [self.leaf(f"{r.activity.text} {_signed(r.points)}", r) for r in n.rows],
        )

    def _grading_profile(self, n: ast.GradingProfile) -> _Entry:
        head = ("default " if n.default else "") + f"grading profile {quote(n.name.text)}"
        return self._top(
            head,
            n,
            lambda d: [
                self.leaf(f"criterion {quote(c.name.text)} {c.weight}/3", c) for c in n.criteria
            ],
        )

    def _settings(self, n: ast.Settings) -> _Entry:
        return self._top(
            "settings",
            n,
            lambda d: [self.leaf(f"{s.name.text} = {_value(s.value)}", s) for s in n.items],
        )

    def _sync_positions(self, n: ast.Sync) -> dict[str, list[int]]:
        """Source ranges of the sync options, which have no spans in the AST."""
        if self.src is None:
            return {}
        maps = [(m.span.start, m.span.end) for m in n.mappings]
        out: dict[str, list[int]] = {}
        current: str | None = None
        prev = ""
        for tok in self.src.body_tokens(self.src.brace_after(n.span.start)):
            if any(s <= tok.start < e for s, e in maps) or tok.text == ";":
                current, prev = None, tok.text
                continue
            key = _SYNC_STARTS.get(tok.text)
            if (
                key
                and prev not in (",", "objects")
                and not (key == "create_on_assignment" and prev == "auto")
            ):
                current = key
                out[key] = [tok.start, tok.end]
            elif current is not None:
                out[current][1] = tok.end
            prev = tok.text
        return out

    def _sync(self, n: ast.Sync) -> _Entry:
        def body(depth: int) -> list[_Entry]:
            pos = self._sync_positions(n)
            rows: list[tuple[str, str]] = []
            if n.objects is not None:
                rows.append(("objects", "objects " + ", ".join(o.text for o in n.objects)))
            if n.match_by is not None:
                rows.append(("match_by", f"match by {n.match_by}"))
            if n.precedence is not None:
                rows.append(("precedence", f"prefer {n.precedence[0]} over {n.precedence[1]}"))
            if n.create_on_assignment is not None:
                rows.append(
                    ("create_on_assignment", f"create {n.create_on_assignment} on assignment")
                )
            if n.auto_create is not None:
                rows.append(
                    ("auto_create", f"auto create prospects {'on' if n.auto_create else 'off'}")
                )
            if n.every_minutes is not None:
                batch = f" batch {n.batch}" if n.batch is not None else ""
                rows.append(("cadence", f"every {_count(n.every_minutes, 'minute')}{batch}"))
            if n.blank_crm_values is not None:
                rows.append(("blank_crm_values", f"blank crm values {n.blank_crm_values}"))
            out = [
                _Entry([_Line(ranges=self._range(*pos.get(key, (None, None))), text=text)])
                for key, text in rows
            ]
            for m in n.mappings:
                alias = f" as {m.crm_type.text}" if m.crm_type is not None else ""
                out.append(
                    self.leaf(
                        f"map {m.field.text} <-> {quote(m.crm_field.text)}{alias}"
                        f" prefer {m.prefer}",
                        m,
                    )
                )
            return out

        return self._top(f"sync {n.crm.text}", n, body)


# ------------------------------------------------------------------ rendering

_NEVER, _SOURCE, _FORCE = 0, 1, 2


class _Renderer:
    """Writes lines with indentation, comments and the blank-line rules."""

    def __init__(self, src: SourceIndex | None) -> None:
        self.src = src
        self.out: list[str] = []
        self.prev_end: int | None = None
        self.after_open = True

    def emit(
        self,
        text: str,
        depth: int,
        start: int | None,
        end: int | None,
        blank: int,
        opens: bool = False,
    ) -> None:
        if (
            self.out
            and not self.after_open
            and (
                blank == _FORCE
                or (
                    blank == _SOURCE
                    and self.src is not None
                    and self.prev_end is not None
                    and start is not None
                    and self.src.blank_between(self.prev_end, start)
                )
            )
        ):
            self.out.append("")
        self.out.append(INDENT * depth + text)
        if end is not None:
            self.prev_end = end if self.prev_end is None else max(self.prev_end, end)
        self.after_open = opens

    def line(self, line: _Line, depth: int, blank: int) -> None:
        for c in line.leading:
            self.emit(c.text, depth + 1 if line.closes else depth, c.start, c.end, blank)
            blank = _SOURCE
        if line.closes:
            blank = _NEVER
        text = line.text
        end = max((e for _, e in line.ranges), default=None)
        if line.trailing is not None:
            text += "  " + line.trailing.text
            end = line.trailing.end
        start = min((s for s, _ in line.ranges), default=None)
        self.emit(text, depth, start, end, blank, opens=line.text.endswith("{"))

    def body(self, entries: Sequence[_Entry], depth: int, top: bool = False) -> None:
        prev: _Entry | None = None
        for entry in entries:
            force = top and prev is not None and (prev.block or entry.block)
            blank = _FORCE if force else _SOURCE
            for part in entry.parts:
                if isinstance(part, _Line):
                    self.line(part, depth, blank)
                else:
                    self.body(part, depth + 1)
                blank = _SOURCE
            prev = entry

    def comments(self, comments: Sequence[Comment]) -> None:
        for c in comments:
            self.emit(c.text, 0, c.start, c.end, _SOURCE)


class FormatError(Exception):
    """The text cannot be formatted: it has syntax errors (see `diagnostics`)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


def format_file(
    file: ast.File, source_text: str | None = None, anchors: Mapping[int, int] | None = None
) -> str:
    """The canonical text of a parsed file.

    Args:
        file: the AST; its spans must index `source_text` when that is given.
        source_text: the text `file` was parsed from, for its comments and blank
            lines; without it, the AST alone is printed.
        anchors: comment offset -> the source offset whose printed line it must
            trail (`mrules.checker.suppression_anchors`).

    >>> from mrules.parser import parse_text
    >>> text = 'list "MQL" page action "p" on "x.com" {score +5;priority}'
    >>> print(format_file(parse_text(text)[0], text), end="")
    list "MQL"
    <BLANKLINE>
    page action "p" on "x.com" {
      score +5
      priority
    }
    """
    src = SourceIndex(source_text) if source_text is not None else None
    layout = _Layout(src)
    entries = [layout.item(item) for item in file.items]
    at_end: list[Comment] = []
    if src is not None:
        at_end = attach(_lines(entries), src.comments, anchors)
    renderer = _Renderer(src)
    renderer.body(entries, 0, top=True)
    renderer.comments(at_end)
    return "\n".join(renderer.out) + "\n" if renderer.out else ""


class FormatterBug(Exception):
    """The formatted text would not mean what the original meant (a bug in the printer)."""


def format_text(
    text: str,
    path: str = "<string>",
    *,
    verify: bool = False,
    anchors: Mapping[int, int] | None = None,
) -> str:
    """Parse and format one file's text.

    Args:
        text: the file's text.
        path: its path, for diagnostics.
        verify: parse the result again and check that it has the same AST and
            the same comments (what `mrules fmt` does before writing a file).
        anchors: where suppression comments must stay (`format_file`); `mrules
            fmt` passes `mrules.checker.suppression_anchors(text, path)`.

    Raises:
        FormatError: the text has syntax errors, or other errors from parsing
            (a rule part given twice) that formatting would silently drop.
        FormatterBug: `verify` found a difference.
    """
    file, diags = parse_text(text, path)
    errors = [d for d in diags if d.is_error]
    if file is None or errors:
        raise FormatError(errors or diags)
    out = format_file(file, text, anchors)
    if verify:
        again, _ = parse_text(out, path)
        if again is None or ast.dump(again, spans=False) != ast.dump(file, spans=False):
            raise FormatterBug("the formatted text does not parse to the same rules")
        if sorted(comment_texts(out)) != sorted(comment_texts(text)):
            raise FormatterBug("the formatted text does not keep the same comments")
    return out
