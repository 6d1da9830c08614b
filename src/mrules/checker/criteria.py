"""Criteria that cannot be met or name activities Pardot does not record.

Rules (codes MR220-MR224):

* an `all` group whose criteria can never hold together (MR220):
  `all { score > 100; score < 50 }`, `all { size is "a"; size is "b" }`,
  `all { in list "X"; not in list "X" }`. Numeric ranges (score, grade,
  category scores, days since, number fields) are intersected; by Helly's
  theorem in one dimension a set of ranges is empty exactly when two of them
  are disjoint, so comparing pairs finds every case. Equalities on a
  single-valued field (text, picklist, boolean, CRM status, profile, source
  campaign) conflict when their value sets are disjoint, compared
  case-insensitively; any criterion and its own negation conflict.
* an activity Pardot has no record of (MR221): `submitted email "X"`,
  `opened form "X"`, `downloaded` anything but a file, `visited` anything but
  a URL or a landing page;
* a conditional completion-action group gated by a group of criteria rather
  than exactly one condition (MR222): `if all { a; b } { ... }`;
* a file trigger or `downloaded` criterion on an image file, which never fires
  (MR223, a warning): `on download of file "logo.png"`;
* a conditional group with no action in it (MR224, a warning): `if x is "a" { }`
  does nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from mrules import ast
from mrules.checker import report
from mrules.checker.pages import program_settings
from mrules.checker.values import GRADES, describe_value
from mrules.checker.visit import criteria, items, nodes_of
from mrules.diagnostics import Diagnostic
from mrules.symbols import Symbols
from mrules.vocab import ASSET_ACTIVITIES

__all__ = [
    "ACTIVITIES",
    "IMAGE_SUFFIXES",
    "check_activities",
    "check_conditions",
    "check_satisfiable",
    "describe",
]

# Which asset kinds each activity verb exists for (§4.4); None is a URL.
ACTIVITIES: dict[str, tuple[str | None, ...]] = dict(ASSET_ACTIVITIES)  # type: ignore[arg-type]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp", ".ico")


def describe(crit: ast.Node) -> str:
    """A criterion in the language's words, for messages."""
    match crit:
        case ast.ScoreCompare(op=op, value=v):
            return f"score {op} {v}"
        case ast.ScoreBetween(low=lo, high=hi):
            return f"score between {lo} and {hi}"
        case ast.CategoryScoreCompare(category=c, op=op, value=v):
            return f'score in category "{c.text}" {op} {v}'
        case ast.GradeCompare(op=op, grade=g):
            return f"grade {op} {g}"
        case ast.DaysSince(anchor=a, op=op, days=d):
            return f"days since {a} {op} {d}"
        case ast.FieldTest(field=f, op=op, value=v, value2=v2):
            text = f"{f.text} {op}"
            if v is not None:
                text += " " + describe_value(v)
            if v2 is not None:
                text += " and " + describe_value(v2)
            return text
        case ast.InList(list=n):
            return f'in list "{n.text}"'
        case ast.Tagged(tag=n):
            return f'tagged "{n.text}"'
        case ast.CrmStatus(status=s):
            return f"crm status is {s}"
        case ast.ProfileIs(profile=n):
            return f'profile is "{n.text}"'
        case ast.CampaignIs(campaign=n):
            return f'campaign is "{n.text}"'
        case ast.Not(criterion=c):
            return "not " + describe(c)
        case ast.Group(match=m):
            return f"{m} {{ ... }}"
        case ast.Activity(verb=verb, asset_kind=kind, name=name):
            what = " ".join(x for x in (kind, f'"{name.text}"' if name else None) if x)
            return f"{verb} {what if name or not kind else 'any ' + kind}"
        case ast.Assigned(to=to, name=name):
            return f'assigned to {to} "{name.text}"' if to and name else "assigned"
    return crit.kind.replace("_", " ")


# ------------------------------------------------------------ satisfiability


@dataclass(frozen=True)
class _Range:
    """A range of numbers; open ends when the bound itself is excluded."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def disjoint(self, other: _Range) -> bool:
        """Whether no number lies in both ranges."""
        # The tighter end wins; at equal bounds an open end is the tighter one.
        lo, lo_open = max((self.low, self.low_open), (other.low, other.low_open))
        hi, hi_closed = min((self.high, not self.high_open), (other.high, not other.high_open))
        return lo > hi or (lo == hi and (lo_open or not hi_closed))


def _compare(op: str, v: float, integer: bool) -> _Range:
    inf = math.inf
    if integer:  # whole numbers: > 5 is >= 6
        return {
            "<": _Range(-inf, v - 1),
            "<=": _Range(-inf, v),
            ">": _Range(v + 1, inf),
            ">=": _Range(v, inf),
        }[op]
    return {
        "<": _Range(-inf, v, high_open=True),
        "<=": _Range(-inf, v),
        ">": _Range(v, inf, low_open=True),
        ">=": _Range(v, inf),
    }[op]


def _range(crit: ast.Node, sym: Symbols) -> tuple[object, _Range] | None:
    match crit:
        case ast.ScoreCompare(op=op, value=v):
            return "score", _compare(op, v, True)
        case ast.ScoreBetween(low=lo, high=hi):
            return "score", _Range(lo, hi)
        case ast.CategoryScoreCompare(category=c, op=op, value=v):
            return ("category", c.text), _compare(op, v, True)
        case ast.GradeCompare(op=op, grade=g) if g in GRADES:
            return "grade", _compare(op, GRADES.index(g), True)
        case ast.DaysSince(anchor=a, op=op, days=d):
            # days run on with the clock: 5.5 days since is both > 5 and < 6
            return ("days", a), _compare(op, d, False)
        case ast.FieldTest(field=f, op=op, value=ast.NumberValue(value=v), value2=v2) if (
            sym.field_type(f.text) == "number"
        ):
            if op == "is":
                return ("field", f.text), _Range(v, v)
            if op == "between" and isinstance(v2, ast.NumberValue):
                return ("field", f.text), _Range(v, v2.value)
            if op in ("<", "<=", ">", ">="):
                return ("field", f.text), _compare(op, v, False)
    return None


_SINGLE_VALUED = ("text", "picklist", "boolean")


def _equality(crit: ast.Node, sym: Symbols) -> tuple[object, bool, frozenset[str]] | None:
    """(key, positive, values) for `is`/`is not`/empty tests on single-valued things."""
    match crit:
        case ast.FieldTest(field=f, op=op, value=v) if sym.field_type(f.text) in _SINGLE_VALUED:
            key = ("field", f.text)
            if op in ("is empty", "is not empty"):
                return key, op == "is empty", frozenset({""})
            if op in ("is", "is not") and v is not None:
                if isinstance(v, ast.StringList):
                    values = frozenset(n.text.casefold() for n in v.values)
                else:
                    values = frozenset({describe_value(v).strip('"').casefold()})
                return key, op == "is", values
        case ast.CrmStatus(status=s):
            return "crm status", True, frozenset({s})
        case ast.ProfileIs(profile=p):
            return "profile", True, frozenset({p.text})
        case ast.CampaignIs(campaign=c):
            return "campaign", True, frozenset({c.text})
    return None


def _is_between(crit: ast.Node) -> bool:
    return isinstance(crit, ast.FieldTest) and crit.op == "between"


def _conflict(a: ast.Node, b: ast.Node, sym: Symbols, empty_between: bool = False) -> bool:
    """Whether two criteria of one `all` group can never hold at once. With the setting
    `between_matches_empty`, a blank field is inside every `between` of it."""
    ra, rb = _range(a, sym), _range(b, sym)
    if (
        ra
        and rb
        and ra[0] == rb[0]
        and ra[1].disjoint(rb[1])
        and not (empty_between and _is_between(a) and _is_between(b))
    ):
        return True
    ea, eb = _equality(a, sym), _equality(b, sym)
    if ea and eb and ea[0] == eb[0]:
        (_, pa, va), (_, pb, vb) = ea, eb
        if pa and pb:
            return not (va & vb)
        if pa != pb:
            pos, neg = (va, vb) if pa else (vb, va)
            return pos <= neg
    for x, y in ((a, b), (b, a)):
        if isinstance(y, ast.Not) and ast.dump(x, spans=False) == ast.dump(
            y.criterion, spans=False
        ):
            return True
    return False


def _flatten_all(group: ast.Group) -> list[ast.Node]:
    out: list[ast.Node] = []
    for crit in group.items:
        if isinstance(crit, ast.Group) and crit.match == "all":
            out.extend(_flatten_all(crit))
        else:
            out.append(crit)
    return out


def _all_groups(crit: ast.Node, inside_all: bool = False) -> Iterator[ast.Group]:
    """The outermost `all` groups of a tree (nested `all`s are flattened into them)."""
    if isinstance(crit, ast.Group):
        is_all = crit.match == "all"
        if is_all and not inside_all:
            yield crit
        for c in crit.items:
            yield from _all_groups(c, is_all)
    elif isinstance(crit, ast.Not):
        yield from _all_groups(crit.criterion)


def check_satisfiable(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR220: the criteria of an `all` group can hold at the same time."""
    empty_between = program_settings(program).between_matches_empty
    for path, _item, root in criteria(program):
        for group in _all_groups(root):
            flat = _flatten_all(group)
            for i, later in enumerate(flat):
                for earlier in flat[:i]:
                    if _conflict(earlier, later, sym, empty_between):
                        yield report.error(
                            "MR220",
                            f"'{describe(later)}' can never hold together with "
                            f"'{describe(earlier)}'",
                            path,
                            later,
                            hint="every criterion of an `all` group must hold at once",
                            related=[report.note(path, earlier, "the other criterion")],
                        )
                        break


# --------------------------------------------------------- activities, conditions


def _is_image(name: str) -> bool:
    return name.casefold().endswith(IMAGE_SUFFIXES)


def check_activities(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR221 and MR223: activity criteria and file triggers Pardot records."""
    for path, node in nodes_of(program, ("activity", "trigger")):
        if isinstance(node, ast.Activity):
            allowed = ACTIVITIES[node.verb]
            if node.asset_kind not in allowed:
                what = report.a_or_an(node.asset_kind) if node.asset_kind else "a URL"
                can = ", ".join(k or "URLs" for k in allowed)
                yield report.error(
                    "MR221",
                    f"Pardot records no '{node.verb}' activity for {what}",
                    path,
                    node,
                    hint=f"'{node.verb}' applies to: {can}",
                )
            elif node.verb == "downloaded" and node.name and _is_image(node.name.text):
                yield _image(path, node.name)
        elif (
            isinstance(node, ast.Trigger) and node.verb == "download" and _is_image(node.asset.text)
        ):
            yield _image(path, node.asset)


def _image(path: str, name: ast.Name) -> Diagnostic:
    return report.warning(
        "MR223",
        f"'{name.text}' is an image; image files never trigger completion actions "
        "or download activities",
        path,
        name,
        hint="track a page or a custom redirect instead",
    )


def check_conditions(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR222: a conditional group is gated by exactly one condition; MR224: it holds
    at least one action."""
    for path, item in items(program):
        if not isinstance(item, ast.CompletionActions | ast.PageAction):
            continue
        for stmt in item.body:
            if not isinstance(stmt, ast.Conditional):
                continue
            cond = stmt.condition
            inner = cond.criterion if isinstance(cond, ast.Not) else cond
            if isinstance(inner, ast.Group):
                yield report.error(
                    "MR222",
                    "a conditional group takes exactly one condition, not a group",
                    path,
                    cond,
                    hint="write one `if` per condition, or use an automation rule to combine them",
                )
            if not stmt.actions:
                yield report.warning(
                    "MR224",
                    "conditional group with no action: it does nothing when its condition holds",
                    path,
                    ast.Span(cond.span.end, stmt.span.end),  # narrowed to the braces on output
                    hint="add the actions to run when the condition holds, or remove the `if`",
                )
