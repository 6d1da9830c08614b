"""Checked AST to a `CompiledRuleSet`: closures and indexes, so `mrules run` never walks the AST.

Everything the event loop would otherwise look up is decided here, once:
- completion actions are keyed by (event type, asset name), every `on` block
  for one asset in file order, their actions pre-sorted into the seed's phases;
- page actions sit in a `PageIndex` (exact URLs in a dict, wildcards by
  longest prefix);
- default scoring becomes a dict from event type to points;
- every criterion becomes a closure `(prospect, now) -> bool`, and every rule
  (automation rule, dynamic list) records the *facts* it reads (`score`,
  `list`, `f:company_size`, `act`, `time`…) so that after an event the engine
  re-evaluates only the rules whose facts changed (`RuleIndex`);
- actions become closures `(engine, prospect, ref, asset_key)`, with names
  resolved and values converted.
Each compiled piece keeps a `RuleRef` (kind, name, file:line) for the ledger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Final

import orjson

from mrules import ast
from mrules.settings import BETWEEN_SETTINGS, URL_SETTINGS, EngineSettings, changed_settings
from mrules.source import Source
from mrules.state import GRADES, Codecs, Prospect, grade_rank
from mrules.symbols import ACTIVITY_TYPES, Symbols, collect
from mrules.urls import PageIndex, is_wildcard, normalize_url, wildcard_prefix, with_slash
from mrules.vocab import ASSET_EVENTS as _ASSET_EVENTS
from mrules.vocab import TRIGGER_EVENTS as _TRIGGER_EVENTS
from mrules.vocab import TRIGGERS

__all__ = [
    "ASSET_EVENTS",
    "LINK_MARK",
    "NEW_PROSPECT",
    "TRIGGER_EVENTS",
    "CompiledAction",
    "CompiledBlock",
    "CompiledPageAction",
    "CompiledRule",
    "CompiledRuleSet",
    "RuleRef",
    "compile_program",
]

Pred = Callable[[Prospect, float], bool]
DAY: Final = 86400.0

# Event types that fire completion actions, and that are activities on an asset: the
# vocabulary's tables (`mrules.vocab`).
TRIGGER_EVENTS: dict[str, tuple[str, str]] = _TRIGGER_EVENTS  # type: ignore[assignment]
ASSET_EVENTS: dict[str, tuple[str, str]] = _ASSET_EVENTS  # type: ignore[assignment]

PHASE_ASSIGN, PHASE_DATA, PHASE_SIDE = 0, 1, 2

# A prospect's clicked email links are "EMAIL|URL" for the first `on click of email`
# block of EMAIL and "EMAIL|URL" LINK_MARK "N" for its N-th: each block's actions fire
# once per prospect and link (§2.3). No URL holds this control character.
LINK_MARK: Final = "\x1f"


@dataclass(frozen=True, slots=True)
class RuleRef:
    """Which rule did it: kind, name and `file:line`, as the ledger shows it."""

    kind: str
    name: str
    loc: str

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled by mypyc, a frozen dataclass cannot be unpickled field by field.
        return (RuleRef, (self.kind, self.name, self.loc))


@dataclass(frozen=True, slots=True)
class CompiledAction:
    """An action as data: which effect (`mrules.effects.EFFECTS`) runs, with what, when.

    `op` names the effect; `operands` are its arguments after the prospect, the
    rule and the asset key (names resolved, values converted); `phase` is the
    seed's order on one asset (assignment, data, side effects); `loc` is where
    the action is written (file:line).
    """

    kind: str
    phase: int
    op: str
    operands: tuple[Any, ...] = ()
    loc: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled by mypyc, a frozen dataclass cannot be unpickled field by field.
        return (CompiledAction, (self.kind, self.phase, self.op, self.operands, self.loc))


@dataclass(frozen=True, slots=True)
class CompiledBlock:
    """One `on ... { }` block (or a page action body): standard and conditional actions."""

    key: str  # identity in the store (first appearance, for `since`)
    ref: RuleRef
    since: float | None
    actions: tuple[CompiledAction, ...]
    conditionals: tuple[tuple[Pred, tuple[CompiledAction, ...]], ...]
    # A condition reads a dynamic list: the lists follow the event's own changes first.
    lists_first: bool = False
    # What tells this block's clicked email links from its email's other blocks'
    # ("" for the first block, so one block per email keeps the links as they are).
    link_mark: str = ""


@dataclass(frozen=True, slots=True)
class CompiledPageAction:
    key: str
    ref: RuleRef
    priority: bool
    block: CompiledBlock


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """An automation rule, segmentation rule or dynamic list."""

    key: str
    ref: RuleRef
    order: int
    when: Pred
    reads: frozenset[str]
    actions: tuple[CompiledAction, ...] = ()
    repeat_seconds: float | None = None  # None: fires once per prospect
    max_times: int | None = None
    name: str = ""
    bit: int = 0  # automation rule: its latch bit; dynamic list: its list bit
    # When the outcome could next change with no event: one function per time-based
    # criterion, giving the moment its threshold is crossed (or None).
    timers: tuple[Callable[[Prospect], float | None], ...] = ()
    # A hash of the criteria as written (positions aside): an edit makes the rule or
    # list look at every stored prospect again, as a new one does (§4.2, §6.2).
    criteria: str = ""
    # A hash of the declarations the criteria read (group members): the same.
    declared: str = ""


@dataclass
class CompiledRuleSet:
    version: str
    settings: EngineSettings
    symbols: Symbols
    blocks: dict[tuple[str, str], tuple[CompiledBlock, ...]]  # (event type, asset) -> blocks
    pages: PageIndex[CompiledPageAction]
    page_actions: tuple[CompiledPageAction, ...]
    scoring: dict[str, tuple[int, RuleRef]]  # event type -> default points and their row
    crm_scoring: dict[str, tuple[int, RuleRef]]  # opportunity created / won / lost
    categories: dict[tuple[str, str], str]  # (asset kind, asset) -> scoring category
    visited: tuple[
        tuple[str, Callable[[str], bool]], ...
    ]  # (activity key, matcher on normalised url)
    rules: tuple[CompiledRule, ...]  # automation rules, priority order, paused left out
    rules_by_fact: dict[str, tuple[int, ...]]  # fact -> indexes into rules
    time_rules: tuple[int, ...]  # rules to re-check when only the clock moves
    dynamic_lists: tuple[CompiledRule, ...]
    dynamic_by_fact: dict[str, tuple[int, ...]]
    segmentation: tuple[CompiledRule, ...]
    profiles: dict[str, dict[str, int]]  # profile -> criterion -> weight
    default_profile: str | None
    grade_start: int
    crm_fields: dict[str, tuple[str, str]]  # CRM field (casefolded) -> (field, prefer)
    most_recent: frozenset[str]  # fields mapped `prefer most recent`: their changes are stamped
    auto_create: bool
    create_on_assignment: str
    grade_of: Callable[[Prospect], int | None]  # grade rank, None while ungraded
    codecs: Codecs  # names of lists, tags and rules to the bits prospects keep
    activity_keys: dict[str, str]  # the activity keys some criterion reads (shared strs)
    rule_keys: dict[str, str] = field(default_factory=dict)  # key -> kind, every keyed piece
    # A hash of the grading profiles' weights, the default profile and grade_start: a
    # change regrades the stored prospects (§5.4). Each profile's declaration, for the ledger.
    grading_version: str = ""
    profile_refs: dict[str, RuleRef] = field(default_factory=dict)
    # What it was compiled from: a compiled rule set pickles as these and is compiled
    # again where it is unpickled (predicates are closures), e.g. in a worker process.
    program: ast.Program | None = field(default=None, repr=False, compare=False)
    sources: dict[str, Source] | None = field(default=None, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.program is None:
            raise TypeError("this compiled rule set does not know its program: cannot pickle")
        return (compile_program, (self.program, self.sources))

    def candidates(self, facts: Iterable[str]) -> list[int]:
        """Automation rules that read any of these facts, in priority order."""
        found: set[int] = set()
        by = self.rules_by_fact
        for f in facts:
            idx = by.get(f)
            if idx:
                found.update(idx)
        return sorted(found)


# --------------------------------------------------------------------- values


def _epoch(text: str) -> float:
    # A date alone is midnight UTC; a time (`T`, `t` or a space before it, as RFC 3339
    # allows) keeps its zone.
    if "T" not in text and "t" not in text and " " not in text:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def value_of(node: Any) -> Any:
    """The Python value of an AST value node (dates stay ISO text, as fields hold them)."""
    if isinstance(node, ast.StringList):
        return [n.text for n in node.values]
    return node.value


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def _as_epoch(v: Any) -> float | None:
    """The moment a date text names; a number is none (the screening says it is not a date)."""
    if isinstance(v, str) and v:
        try:
            return _epoch(v.strip())
        except ValueError:
            return None
    return None


def _fold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def _as_text(v: Any) -> str | None:
    """A number or boolean a text field holds (a form sent `42`), as text: `42`, `true`."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return None


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == [] or v == ()


_CMP: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

# ------------------------------------------------------------------- criteria


class _CriterionCompiler:
    """Criterion nodes to predicates, collecting the facts each one reads."""

    def __init__(self, rs: _Builder) -> None:
        self.rs = rs
        self.timers: list[Callable[[Prospect], float | None]] = []

    def compile_rule(self, node: Any) -> tuple[Pred, frozenset[str], tuple[Any, ...]]:
        """A rule's predicate, the facts it reads, and its timers."""
        reads: set[str] = set()
        self.timers = []
        pred = self.compile(node, reads)
        return pred, frozenset(reads), tuple(self.timers)

    def compile(self, node: Any, reads: set[str]) -> Pred:
        match node:
            case ast.Group(match=mode, items=items):
                return _group(mode, tuple(self.compile(i, reads) for i in items))
            case ast.Not(criterion=inner):
                f = self.compile(inner, reads)
                return lambda p, now: not f(p, now)
            case ast.ScoreCompare(op=op, value=value):
                reads.add("score")
                cmp = _CMP[op]
                return lambda p, now: cmp(p.score, value)
            case ast.ScoreBetween(low=low, high=high):
                reads.add("score")
                return lambda p, now: low <= p.score <= high
            case ast.CategoryScoreCompare(category=cat, op=op, value=value):
                reads.add("score")
                cmp, category = _CMP[op], cat.text
                return lambda p, now: cmp((p.categories or {}).get(category, 0), value)
            case ast.GradeCompare(op=op, grade=grade):
                reads.add("grade")
                cmp, rank, grade_of = _CMP[op], grade_rank(grade), self.rs.grade_rank_of
                return lambda p, now: (g := grade_of(p)) is not None and cmp(g, rank)
            case ast.FieldTest():
                reads.add("f:" + node.field.text)
                return self.field_test(node)
            case ast.InList(list=name):
                reads.add("list")
                bit = self.rs.codecs.lists.bit(name.text)
                if name.text in self.rs.symbols.dynamic_lists:
                    return lambda p, now: bool(p.dynamic & bit)
                return lambda p, now: bool(p.lists & bit)
            case ast.Tagged(tag=name):
                reads.add("tag")
                bit = self.rs.codecs.tags.bit(name.text)
                return lambda p, now: bool(p.tags & bit)
            case ast.Assigned(to=to, name=name):
                reads.add("assigned")
                if to is None:
                    return lambda p, now: p.assigned_kind is not None
                target = name.text if name else None
                if to == "group":
                    members = set(self.rs.symbols.group_members(target or ""))
                    return lambda p, now: p.assigned_kind == "user" and p.assigned_to in members
                return lambda p, now: p.assigned_kind == to and p.assigned_to == target
            case ast.CrmStatus(status=status):
                reads.add("crm")
                return lambda p, now: p.crm_status == status
            case ast.ProfileIs(profile=name):
                reads.add("grade")
                n, default = name.text, self.rs.default_profile
                return lambda p, now: (p.profile or default) == n
            case ast.CampaignIs(campaign=name):
                reads.add("campaign")
                n = name.text
                return lambda p, now: p.campaign == n
            case ast.OptedOut():
                reads.add("opted_out")
                return lambda p, now: p.opted_out
            case ast.Activity():
                return self.activity(node, reads)
            case ast.DaysSince(anchor=anchor, op=op, days=days):
                reads.update(("time", "act", "assigned"))
                cmp, limit = _CMP[op], float(days)
                attr = {
                    "created": "created",
                    "last activity": "last_activity",
                    "assigned": "assigned_at",
                }[anchor]

                def days_since(p: Prospect, now: float) -> bool:
                    t = getattr(p, attr)
                    return t is not None and cmp((now - t) / DAY, limit)

                # When the criterion can change: `>=` starts to hold and `<` stops at the
                # threshold itself, `>` and `<=` just after it. A wake-up after the
                # threshold made a tick at that very time miss `>=` and `<`.
                after = limit * DAY + (0.0 if op in (">=", "<") else _EPSILON)

                def crossing(p: Prospect) -> float | None:
                    t = getattr(p, attr)
                    return None if t is None else t + after

                self.timers.append(crossing)
                return days_since
        raise AssertionError(f"criterion {type(node).__name__} has no compiler")

    def activity(self, node: ast.Activity, reads: set[str]) -> Pred:
        reads.add("act")
        if node.asset_kind is None:  # visited "url pattern"
            pattern = node.name.text if node.name else ""
            key = self.rs.visited_key(pattern)
        else:
            verb = node.verb
            if verb == "visited":  # `visited landing page "P"` is its view (`landing_page_view`)
                verb = "viewed"
            key = f"{verb}|{node.asset_kind}|{node.name.text if node.name else ''}"
        key = self.rs.activity_keys.setdefault(key, key)  # one shared str per key
        if node.within_days is None:
            return lambda p, now: p.act(key) is not None
        reads.add("time")
        window = node.within_days * DAY

        def within(p: Prospect, now: float) -> bool:
            t = p.act(key)
            return t is not None and now - t <= window

        def window_ends(p: Prospect) -> float | None:
            t = p.act(key)
            return None if t is None else t + window + _EPSILON

        self.timers.append(window_ends)
        return within

    def field_test(self, node: ast.FieldTest) -> Pred:
        name, op = node.field.text, node.op
        ftype = self.rs.symbols.field_type(name) or "text"
        raw = value_of(node.value) if node.value is not None else None
        values = raw if isinstance(raw, list) else [raw]
        get = _field_getter(name)
        if op == "is empty":
            return lambda p, now: _empty(get(p))
        if op == "is not empty":
            return lambda p, now: not _empty(get(p))
        if op in ("is", "is not"):
            if ftype == "date":
                # The moment the date names, as `<`, `>=` and `between` read it: a date
                # field may hold `2026-08-01` or an RFC 3339 time of that moment.
                wanted_t = {t for t in map(_as_epoch, values) if t is not None}

                def is_date(p: Prospect, now: float) -> bool:
                    return _as_epoch(get(p)) in wanted_t

                f: Pred = is_date
            elif ftype == "number" or any(
                isinstance(v, int | float) and not isinstance(v, bool) for v in values
            ):
                wanted_n = {_as_number(v) for v in values}

                def is_num(p: Prospect, now: float) -> bool:
                    return _as_number(get(p)) in wanted_n

                f = is_num
            else:
                wanted = {_fold(v) for v in values}

                def is_value(p: Prospect, now: float) -> bool:
                    v = get(p)
                    if isinstance(v, list):
                        return any(_fold(x) in wanted for x in v)
                    if isinstance(v, str):
                        return v.casefold() in wanted
                    if v is None:
                        return False
                    # A text field given a JSON number (`42`) is the text `42`, as
                    # `contains` and `starts with` read it.
                    return v in wanted or _as_text(v) in wanted

                f = is_value
            if op == "is not":
                return lambda p, now: not f(p, now)
            return f
        if op in ("contains", "does not contain", "starts with", "ends with"):
            needles = [str(v).casefold() for v in values]
            test = {
                "contains": lambda s, n: n in s,
                "does not contain": lambda s, n: n in s,
                "starts with": lambda s, n: s.startswith(n),
                "ends with": lambda s, n: s.endswith(n),
            }[op]

            def text_test(p: Prospect, now: float) -> bool:
                v = get(p)
                items = v if isinstance(v, list) else ([] if v is None else [v])
                return any(test(str(x).casefold(), n) for x in items for n in needles)

            if op == "does not contain":
                return lambda p, now: not text_test(p, now)
            return text_test
        conv = _converter(ftype, raw)
        if op == "between":
            low = conv(raw)
            high = conv(value_of(node.value2) if node.value2 is not None else None)
            empty_ok = self.rs.settings.between_matches_empty

            def between(p: Prospect, now: float) -> bool:
                held = get(p)
                v = conv(held)
                if v is None:  # only a blank is in range by the setting, not "many" kept
                    return empty_ok and _empty(held)
                return low is not None and high is not None and low <= v <= high

            return between
        cmp, bound = _CMP[op], conv(raw)

        def compare(p: Prospect, now: float) -> bool:
            v = conv(get(p))
            return v is not None and bound is not None and cmp(v, bound)

        return compare


_EPSILON: Final = 1e-6  # a threshold crossed at t is seen by the first tick after t


def _group(mode: str, preds: tuple[Pred, ...]) -> Pred:
    """`all`/`any` without generator overhead: this runs for every candidate rule."""
    if len(preds) == 1:
        return preds[0]
    if mode == "all":
        if len(preds) == 2:
            a, b = preds
            return lambda p, now: a(p, now) and b(p, now)

        def all_of(p: Prospect, now: float) -> bool:
            for f in preds:  # noqa: SIM110 - a plain loop is faster than all(generator)
                if not f(p, now):
                    return False
            return True

        return all_of
    if len(preds) == 2:
        a, b = preds
        return lambda p, now: a(p, now) or b(p, now)

    def any_of(p: Prospect, now: float) -> bool:
        for f in preds:  # noqa: SIM110 - a plain loop is faster than any(generator)
            if f(p, now):
                return True
        return False

    return any_of


def _field_getter(name: str) -> Callable[[Prospect], Any]:
    if name == "email":
        return lambda p: p.email
    if name == "opted_out":
        return lambda p: p.opted_out
    if name in _CHECKBOXES:

        def checkbox(p: Prospect) -> Any:
            value = p.field(name)
            return False if value is None or value == "" else value

        return checkbox
    return lambda p: p.field(name)


# Pardot's default checkbox fields: never blank there, so a prospect never given one
# reads false, as the autoresponder reads `do_not_email` (§1, prospect email status).
_CHECKBOXES: Final = frozenset({"do_not_email", "do_not_call"})


def _converter(ftype: str, sample: Any) -> Callable[[Any], Any]:
    """How `<`, `>=` and `between` read a field's values and the rule's bounds.

    For a checked program the field type decides alone: these operators apply to
    number and date fields only (MR212), whose values in a rule fit them (MR210).
    The sample and the text fallback serve a program compiled unchecked.
    """
    if ftype == "date" or (isinstance(sample, str) and sample[:4].isdigit() and "-" in sample):
        return _as_epoch
    if ftype == "number" or isinstance(sample, int | float):
        return _as_number
    return lambda v: None if v is None else str(v).casefold()


# -------------------------------------------------------------------- actions


def _compile_action(node: Any, b: _Builder) -> CompiledAction:
    """An action node to data: the effect to run (`mrules.effects.EFFECTS`) and its operands."""
    act = CompiledAction
    loc = b.loc(node)
    match node:
        case ast.AddToList(list=name):
            ops: tuple[Any, ...] = (name.text, b.codecs.lists.bit(name.text))
            return act("add to list", PHASE_DATA, "add_to_list", ops, loc)
        case ast.RemoveFromList(list=name):
            ops = (name.text, b.codecs.lists.bit(name.text))
            return act("remove from list", PHASE_DATA, "remove_from_list", ops, loc)
        case ast.AddTag(tag=name):
            return act(
                "add tag", PHASE_DATA, "add_tag", (name.text, b.codecs.tags.bit(name.text)), loc
            )
        case ast.RemoveTag(tag=name):
            ops = (name.text, b.codecs.tags.bit(name.text))
            return act("remove tag", PHASE_DATA, "remove_tag", ops, loc)
        case ast.AdjustScore(points=pts):
            return act("score", PHASE_DATA, "adjust_score", (pts,), loc)
        case ast.AdjustCategoryScore(points=pts, category=cat):
            return act("category score", PHASE_DATA, "adjust_category", (cat.text, pts), loc)
        case ast.SetScore(value=value):
            return act("set score", PHASE_DATA, "set_score", (value,), loc)
        case ast.Assign(to=to, name=name):
            if to == "group":
                ops = (name.text, b.symbols.group_members(name.text))
                return act("assign", PHASE_ASSIGN, "assign_group", ops, loc)
            return act("assign", PHASE_ASSIGN, "assign", (to, name.text), loc)
        case ast.AssignByCrmRule():
            return act("assign", PHASE_ASSIGN, "assign_by_crm_rule", (), loc)
        case ast.SetField(field=f, value=v):
            return act("set field", PHASE_DATA, "set_field", (f.text, value_of(v)), loc)
        case ast.IncrementField(field=f, by=by):
            return act("increment field", PHASE_DATA, "increment_field", (f.text, by), loc)
        case ast.ChangeSourceCampaign(campaign=c):
            return act("source campaign", PHASE_DATA, "set_campaign", (c.text,), loc)
        case ast.AddToCrmCampaign(campaign=c, status=st):
            payload: dict[str, Any] = {"campaign": c.text, "status": st.text if st else None}
            return act("crm campaign", PHASE_DATA, "crm_work", ("campaign_member", payload), loc)
        case ast.CreateCrmTask():
            payload = {
                "subject": node.subject,
                "due_days": node.due_days,
                "priority": node.priority,
                "status": node.status,
                "owner": node.owner.text if node.owner else None,
            }
            return act("crm task", PHASE_SIDE, "crm_work", ("task", payload), loc)
        case ast.NotifyUser(user=u):
            return act("notify", PHASE_SIDE, "notify", (u.text,), loc)
        case ast.NotifyAssignedUser():
            return act("notify", PHASE_SIDE, "notify", (None,), loc)
        case ast.SendAutoresponder(email=em):
            return act("autoresponder", PHASE_SIDE, "autoresponder", (em.text,), loc)
        case ast.ChangeProfile(profile=pr):
            return act("change profile", PHASE_DATA, "change_profile", (pr.text,), loc)
        case ast.MarkProfileCriterion(criterion=c, profile=pr, state=state):
            sign = {"matches": 1, "does not match": -1, "not known": 0}[state]
            ops = (f"{pr.text}|{c.text}", sign)
            return act("grading", PHASE_DATA, "mark_criterion", ops, loc)
        case ast.DoNotSync():
            return act("do not sync", PHASE_DATA, "set_sync_flag", (True,), loc)
        case ast.AllowCrmRecreate():
            return act("allow crm recreate", PHASE_DATA, "set_sync_flag", (False,), loc)
    raise AssertionError(f"action {type(node).__name__} has no compiler")


# -------------------------------------------------------------------- builder


class _Builder:
    def __init__(self, program: ast.Program, sources: dict[str, Source] | None) -> None:
        self.program = program
        self.sources = sources or {}
        self.symbols = collect(program)
        values: dict[str, Any] = {}
        for _, item in self._items():
            if isinstance(item, ast.Settings):
                for s in item.items:
                    values[s.name.text] = value_of(s.value)
        self.settings = EngineSettings.from_values(values)
        self.default_profile = self.symbols.default_profile()
        self.profiles: dict[str, dict[str, int]] = {}
        self.profile_refs: dict[str, RuleRef] = {}
        for name, decl in self.symbols.profiles.items():
            node = decl.node
            assert isinstance(node, ast.GradingProfile)
            self.profiles[name] = {c.name.text: c.weight for c in node.criteria}
            self.profile_refs[name] = self.ref("grading profile", name, decl.path, node)
        self.grade_start = grade_rank(
            self.settings.grade_start if self.settings.grade_start in GRADES else "D"
        )
        self.visited_keys: dict[str, str] = {}
        self.activity_keys: dict[str, str] = {}  # every activity key a criterion reads
        self.codecs = Codecs()
        self.criteria = _CriterionCompiler(self)
        self.path = ""  # the file of the item being compiled

    def _items(self) -> Iterable[tuple[str, Any]]:
        for file in self.program.files:
            for item in file.items:
                yield file.path, item

    def loc(self, node: ast.Node) -> str:
        """`file:line` of a node of the item being compiled (its source span)."""
        src = self.sources.get(self.path)
        return f"{self.path}:{src.position(node.span.start)[0]}" if src else ""

    def ref(self, kind: str, name: str, path: str, node: ast.Node) -> RuleRef:
        src = self.sources.get(path)
        line = src.position(node.span.start)[0] if src else 0
        return RuleRef(kind, name, f"{path}:{line}")

    def visited_key(self, pattern: str) -> str:
        # The URL settings that differ from the default name the key too: a key
        # kept under other settings is learned again from the history (§3).
        url = changed_settings(self.settings, URL_SETTINGS)
        key = "visited|" + pattern
        if url:
            key += "|" + ",".join(f"{k}={v}" for k, v in url.items())
        self.visited_keys[key] = pattern
        return self.activity_keys.setdefault(key, key)

    def grade_rank_of(self, p: Prospect) -> int | None:
        """The prospect's grade rank, or None while no criterion of its profile is known."""
        profile = p.profile or self.default_profile
        if profile is None or not p.criteria:
            return None
        weights = self.profiles.get(profile, {})
        total, known = self.grade_start, False
        prefix = profile + "|"
        for key, sign in p.criteria.items():
            if sign and key.startswith(prefix):
                known = True
                total += weights.get(key[len(prefix) :], 0) * sign
        return max(0, min(12, total)) if known else None

    def block(
        self, key: str, ref: RuleRef, since: ast.TimestampValue | None, body: Iterable[Any]
    ) -> CompiledBlock:
        actions: list[CompiledAction] = []
        conditionals: list[tuple[Pred, tuple[CompiledAction, ...]]] = []
        lists_first = False
        for stmt in body:
            if isinstance(stmt, ast.Conditional):
                pred = self.criteria.compile(stmt.condition, set())
                conditionals.append((pred, tuple(_compile_action(a, self) for a in stmt.actions)))
                lists_first = lists_first or self._reads_dynamic_list(stmt.condition)
            elif not isinstance(stmt, ast.PriorityFlag):
                actions.append(_compile_action(stmt, self))
        return CompiledBlock(
            key,
            ref,
            _epoch(since.value) if since else None,
            tuple(actions),
            tuple(conditionals),
            lists_first,
        )

    def _reads_dynamic_list(self, node: Any) -> bool:
        """Whether a criterion tests a dynamic list (`in list "D"`, within groups and `not`)."""
        match node:
            case ast.Group(items=items):
                return any(self._reads_dynamic_list(i) for i in items)
            case ast.Not(criterion=inner):
                return self._reads_dynamic_list(inner)
            case ast.InList(list=name):
                return name.text in self.symbols.dynamic_lists
        return False

    def build(self) -> CompiledRuleSet:
        blocks: dict[tuple[str, str], list[CompiledBlock]] = {}
        pages: list[CompiledPageAction] = []
        scoring: dict[str, tuple[int, RuleRef]] = {}
        crm_scoring: dict[str, tuple[int, RuleRef]] = {}
        rules: list[CompiledRule] = []
        dynamic: list[CompiledRule] = []
        segmentation: list[CompiledRule] = []
        crm_fields: dict[str, tuple[str, str]] = {}
        auto_create, create_on = False, "lead"
        keys: dict[str, str] = {}
        event_for = TRIGGERS
        for order, (path, item) in enumerate(self._items(), start=1):
            self.path = path
            match item:
                case ast.CompletionActions(trigger=t):
                    etype = event_for[(t.verb, t.asset_kind)]
                    same = blocks.setdefault((etype, t.asset.text), [])
                    name = f"{t.verb} of {t.asset_kind} {t.asset.text}"
                    key = f"on:{etype}:{t.asset.text}#{len(same) + 1}"
                    ref = self.ref("completion action", name, path, item)
                    block = self.block(key, ref, item.since, item.body)
                    if same:
                        block = replace(block, link_mark=f"{LINK_MARK}{len(same) + 1}")
                    same.append(block)
                    keys[key] = "completion action"
                case ast.PageAction(name=n, url=url):
                    key = f"page:{n.text}"
                    ref = self.ref("page action", n.text, path, item)
                    block = self.block(key, ref, item.since, item.body)
                    prio = any(isinstance(s, ast.PriorityFlag) for s in item.body)
                    pages.append(CompiledPageAction(url.text, ref, prio, block))
                    keys[key] = "page action"
                case ast.Scoring(rows=rows):
                    for row in rows:
                        activity = row.activity.text
                        entry = (row.points, self.ref("scoring", activity, path, row))
                        if activity.startswith("opportunity "):
                            crm_scoring[activity.removeprefix("opportunity ")] = entry
                        for etype in ACTIVITY_TYPES.get(activity, ()):
                            if etype != "crm_update":
                                scoring[etype] = entry
                case ast.AutomationRule(name=n) if not item.paused and item.when is not None:
                    pred, reads, timers = self.criteria.compile_rule(item.when)
                    rep = item.repeat
                    if rep is not None:
                        # Eligible again once the cooldown ends: any later change re-checks it.
                        reads = reads | {"time"}
                    rules.append(
                        CompiledRule(
                            key=f"rule:{n.text}",
                            bit=self.codecs.rules.bit(f"rule:{n.text}"),
                            ref=self.ref("automation rule", n.text, path, item),
                            order=item.priority * 1_000_000 + order,
                            when=pred,
                            reads=reads,
                            timers=timers,
                            actions=tuple(_compile_action(a, self) for a in item.then),
                            repeat_seconds=rep.every_days * DAY if rep else None,
                            max_times=rep.max_times if rep else None,
                            name=n.text,
                            criteria=criteria_version(item.when, self.settings),
                            declared=declared_version(item.when, self.symbols),
                        )
                    )
                    keys[f"rule:{n.text}"] = "automation rule"
                case ast.DynamicList(name=n) if item.when is not None:
                    pred, reads, timers = self.criteria.compile_rule(item.when)
                    dynamic.append(
                        CompiledRule(
                            key=f"dynamic:{n.text}",
                            bit=self.codecs.lists.bit(n.text),
                            ref=self.ref("dynamic list", n.text, path, item),
                            order=order,
                            when=pred,
                            reads=reads,
                            timers=timers,
                            name=n.text,
                            criteria=criteria_version(item.when, self.settings),
                            declared=declared_version(item.when, self.symbols),
                        )
                    )
                    keys[f"dynamic:{n.text}"] = "dynamic list"
                case ast.SegmentationRule(name=n) if item.when is not None:
                    pred, reads, _ = self.criteria.compile_rule(item.when)
                    segmentation.append(
                        CompiledRule(
                            key=f"segment:{n.text}",
                            ref=self.ref("segmentation rule", n.text, path, item),
                            order=order,
                            when=pred,
                            reads=reads,
                            actions=tuple(_compile_action(a, self) for a in item.then),
                            name=n.text,
                        )
                    )
                case ast.Sync():
                    auto_create = bool(item.auto_create)
                    create_on = item.create_on_assignment or "lead"
                    for m in item.mappings:
                        crm_fields[m.crm_field.text.casefold()] = (m.field.text, m.prefer)
                case _:
                    pass
        rules.sort(key=lambda r: r.order)
        settings = self.settings
        visited = tuple(
            (key, _url_matcher(pattern, settings)) for key, pattern in self.visited_keys.items()
        )
        categories: dict[tuple[str, str], str] = {}
        folder_category: dict[str, str] = {}
        for cname, decl in self.symbols.categories.items():
            assert isinstance(decl.node, ast.ScoringCategory)
            for folder in decl.node.folders.values:
                folder_category[folder.text] = cname
        for (kind, aname), decl in self.symbols.assets.items():
            assert isinstance(decl.node, ast.AssetDecl)
            folder_path: str | None = decl.node.folder.text if decl.node.folder else None
            while folder_path:
                if folder_path in folder_category:
                    categories[(kind, aname)] = folder_category[folder_path]
                    break
                folder_path = folder_path.rpartition("/")[0]  # subfolders inherit (§5.2)
        return CompiledRuleSet(
            version=ruleset_version(self.program),
            settings=settings,
            symbols=self.symbols,
            blocks={k: tuple(v) for k, v in blocks.items()},
            pages=PageIndex(((p.key, p) for p in pages), settings),
            page_actions=tuple(pages),
            scoring=scoring,
            crm_scoring=crm_scoring,
            categories=categories,
            visited=visited,
            rules=tuple(rules),
            rules_by_fact=_by_fact(rules),
            time_rules=tuple(
                i for i, r in enumerate(rules) if "time" in r.reads or r.repeat_seconds is not None
            ),
            dynamic_lists=tuple(dynamic),
            dynamic_by_fact=_by_fact(dynamic),
            segmentation=tuple(segmentation),
            profiles=self.profiles,
            default_profile=self.default_profile,
            grade_start=self.grade_start,
            crm_fields=crm_fields,
            most_recent=frozenset(
                f for f, prefer in crm_fields.values() if prefer == "most recent"
            ),
            auto_create=auto_create,
            create_on_assignment=create_on,
            grade_of=self.grade_rank_of,
            codecs=self.codecs,
            activity_keys=self.activity_keys,
            rule_keys=keys,
            grading_version=hashlib.sha256(
                orjson.dumps([self.profiles, self.default_profile, self.grade_start])
            ).hexdigest()[:16],
            profile_refs=self.profile_refs,
            program=self.program,
            sources=self.sources or None,
        )


NEW_PROSPECT: Final = "*"  # the fact a new prospect changes: every rule reads it


def _by_fact(rules: list[CompiledRule]) -> dict[str, tuple[int, ...]]:
    out: dict[str, list[int]] = {NEW_PROSPECT: list(range(len(rules)))}
    for i, r in enumerate(rules):
        for f in r.reads:
            out.setdefault(f, []).append(i)
    return {k: tuple(v) for k, v in out.items()}


def _url_matcher(pattern: str, settings: EngineSettings) -> Callable[[str], bool]:
    """A matcher on normalised URLs for a `visited` criterion (same rules as page actions)."""
    if is_wildcard(pattern):
        prefix = wildcard_prefix(pattern, settings)
        return lambda u: u.startswith(prefix) or with_slash(u).startswith(prefix)
    exact = normalize_url(pattern, settings)
    return lambda u: u == exact


def ruleset_version(program: ast.Program) -> str:
    """A short hash of the rule set's structure (positions and comments do not count)."""
    return hashlib.sha256(orjson.dumps(ast.dump(program, spans=False))).hexdigest()[:16]


def criteria_version(when: ast.Node, settings: EngineSettings | None = None) -> str:
    """A short hash of a rule's criteria (positions and comments do not count).

    It counts the settings that change what these criteria mean (the URL ones
    for `visited "…"`, `between_matches_empty` for `between`) where they differ
    from the default: with default settings it is the hash of the criteria alone.
    """
    dumped = ast.dump(when, spans=False)
    read: dict[str, Any] = {}
    if settings is not None:
        for node in ast.walk(when):
            if isinstance(node, ast.Activity) and node.asset_kind is None:
                read |= changed_settings(settings, URL_SETTINGS)
            elif isinstance(node, ast.FieldTest) and node.op == "between":
                read |= changed_settings(settings, BETWEEN_SETTINGS)
    if read:
        dumped = [dumped, dict(sorted(read.items()))]
    return hashlib.sha256(orjson.dumps(dumped)).hexdigest()[:16]


def declared_version(when: ast.Node, symbols: Symbols) -> str:
    """A short hash of the declarations a rule's criteria read ("" when none).

    The members of each group an `assigned to group "G"` criterion names,
    whether each list an `in list "L"` criterion names is dynamic (its members
    then come from its criteria, not from actions), and the default grading
    profile for `profile is "P"` (the profile of a prospect none was given):
    editing them changes what the criteria mean, as editing the criteria does.
    (A field's type needs no place here: the checker makes a criterion's value
    fit it.)
    """
    read: dict[str, Any] = {}
    for node in ast.walk(when):
        if isinstance(node, ast.Assigned) and node.to == "group" and node.name is not None:
            read["group:" + node.name.text] = sorted(symbols.group_members(node.name.text))
        elif isinstance(node, ast.InList) and node.list.text in symbols.dynamic_lists:
            read["dynamic:" + node.list.text] = True
        elif isinstance(node, ast.ProfileIs):
            read["default profile"] = symbols.default_profile()
    if not read:
        return ""
    return hashlib.sha256(orjson.dumps(dict(sorted(read.items())))).hexdigest()[:16]


def compile_program(
    program: ast.Program, sources: dict[str, Source] | None = None
) -> CompiledRuleSet:
    """Compile a checked program. `sources` gives the ledger its file:line references."""
    return _Builder(program, sources).build()
