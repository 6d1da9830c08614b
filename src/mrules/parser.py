"""Text to AST: the cached LALR parser, the tree-to-AST transformer, and parse errors.

The grammar (`grammar/mrules.lark`, shipped as `mrules/grammar/mrules.lark`) is
built into a Lark LALR parser once per process. `parse_text` turns one file's
text into an `ast.File` plus diagnostics. Nothing from Lark reaches the user:
syntax errors are translated here into `Diagnostic`s that name what was
expected in the language's own words, with a hint for common mistakes found by
matching the parser state against `ERROR_EXAMPLES`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import importlib.resources
import re
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from mrules import ast
from mrules.diagnostics import Diagnostic, Severity

__all__ = ["ERROR_EXAMPLES", "grammar_text", "lark_parser", "parse_text"]


def grammar_text() -> str:
    """The grammar, read from the installed package (never from the checkout)."""
    return importlib.resources.files("mrules").joinpath("grammar/mrules.lark").read_text("utf-8")


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser, built once per process.

    `cache=True` keeps the built tables in the temp folder (keyed by the grammar's
    hash and Lark's version), so a CLI run loads them instead of rebuilding them;
    an unwritable or stale cache only costs the rebuild.
    """
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=True,
    )


# ------------------------------------------------------------------ transformer

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")


def unquote(token: str) -> str:
    """The value of a STRING token: strip the quotes, resolve escapes."""
    body = token[1:-1]
    if "\\" not in body:
        return body

    def sub(m: re.Match[str]) -> str:
        esc = m.group(1)
        return chr(int(esc[1:], 16)) if esc[0] == "u" else _ESCAPES.get(esc, esc)

    return _ESCAPE_RE.sub(sub, body)


def _span(meta: Any) -> ast.Span:
    if getattr(meta, "empty", True):
        return ast.NO_SPAN
    return ast.Span(meta.start_pos, meta.end_pos)


def _tspan(tok: Token) -> ast.Span:
    return ast.Span(tok.start_pos or 0, tok.end_pos or 0)


def _name(tok: Token) -> ast.Name:
    text = unquote(tok) if tok.type == "STRING" else str(tok)
    return ast.Name(text=text, span=_tspan(tok))


def _number(tok: Token) -> int | float:
    text = str(tok)
    return float(text) if "." in text else int(text)


_KIND_ALIASES = {
    "kind_form": "form",
    "kind_form_handler": "form handler",
    "kind_landing_page": "landing page",
    "kind_file": "file",
    "kind_custom_redirect": "custom redirect",
    "kind_email": "email",
}
_WORD_ALIASES = {
    "assignee_user": "user",
    "assignee_group": "group",
    "assignee_queue": "queue",
    "crm_lead": "lead",
    "crm_contact": "contact",
    "crm_deleted": "deleted",
    "crm_none": "none",
    "verb_submitted": "submitted",
    "verb_opened": "opened",
    "verb_clicked": "clicked",
    "verb_downloaded": "downloaded",
    "verb_visited": "visited",
    "verb_viewed": "viewed",
    "anchor_created": "created",
    "anchor_last_activity": "last activity",
    "anchor_assigned": "assigned",
    "state_matches": "matches",
    "state_does_not_match": "does not match",
    "state_not_known": "not known",
    "switch_on": "on",
    "switch_off": "off",
    "prefer_ours": "ours",
    "prefer_crm": "crm",
    "prefer_most_recent": "most recent",
    **_KIND_ALIASES,
}


class _Word:
    """A keyword choice (an alias rule with no children) on its way up the tree."""

    __slots__ = ("span", "word")

    def __init__(self, word: str, span: ast.Span) -> None:
        self.word = word
        self.span = span


class _ToAst:
    """Builds AST nodes, one short method per grammar rule; no logic beyond unquoting.

    Each method takes the rule's `meta` (positions) and its children, already built.
    `build` walks the tree bottom-up without recursion (deep `not not ...` chains are
    fine) and dispatches through a table made once per rule name, which is cheaper
    than Lark's `Transformer` with `v_args` wrappers on every node.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self._methods: dict[str, Any] = {}

    def _method(self, data: str) -> Any:
        method = getattr(self, data, None) if not data.startswith("_") else None
        if method is None:
            if data not in _WORD_ALIASES:
                raise AssertionError(f"grammar rule {data!r} has no transformer method")
            word = _WORD_ALIASES[data]

            def method(meta: Any, c: list[Any]) -> _Word:
                return _Word(word, _span(meta))

        self._methods[data] = method
        return method

    def build(self, tree: Tree[Token]) -> Any:
        """The AST of a parse tree; children are built before their parents."""
        built: dict[int, Any] = {}
        methods = self._methods
        result = None
        for sub in tree.iter_subtrees():
            children = [
                built.pop(id(c)) if type(c) is Tree else c for c in sub.children
            ]
            method = methods.get(sub.data) or self._method(sub.data)
            result = built[id(sub)] = method(sub.meta, children)
        return result

    def _error(self, code: str, message: str, span: ast.Span, hint: str | None = None) -> None:
        self.diagnostics.append(
            Diagnostic(
                code=code,
                severity=Severity.ERROR,
                message=message,
                path=self.path,
                start=span.start,
                end=span.end,
                hint=hint,
            )
        )

    def start(self, meta: Any, items: list[Any]) -> ast.File:
        return ast.File(path=self.path, items=tuple(items), span=_span(meta))

    # values
    def string_value(self, meta: Any, c: list[Token]) -> ast.StringValue:
        return ast.StringValue(value=unquote(c[0]), span=_span(meta))

    def number_value(self, meta: Any, c: list[Token]) -> ast.NumberValue:
        return ast.NumberValue(value=_number(c[0]), span=_span(meta))

    def timestamp_value(self, meta: Any, c: list[Token]) -> ast.TimestampValue:
        return self._timestamp(c[0])

    def true_value(self, meta: Any, c: list[Any]) -> ast.BoolValue:
        return ast.BoolValue(value=True, span=_span(meta))

    def false_value(self, meta: Any, c: list[Any]) -> ast.BoolValue:
        return ast.BoolValue(value=False, span=_span(meta))

    def string_list(self, meta: Any, c: list[Token | None]) -> ast.StringList:
        return ast.StringList(values=tuple(_name(t) for t in c if t is not None), span=_span(meta))

    def _timestamp(self, tok: Token) -> ast.TimestampValue:
        text = str(tok)
        try:
            if "T" in text:
                dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            else:
                dt.date.fromisoformat(text)
        except ValueError:
            self._error(
                "MR012",
                f"'{text}' is not a valid date or time",
                _tspan(tok),
                "write a date as YYYY-MM-DD or a time as YYYY-MM-DDTHH:MM:SSZ",
            )
        return ast.TimestampValue(value=text, span=_tspan(tok))

    # declarations
    def include(self, meta: Any, c: list[Token]) -> ast.Include:
        return ast.Include(path=_name(c[0]), span=_span(meta))

    def field_decl(self, meta: Any, c: list[Any]) -> ast.FieldDecl:
        return ast.FieldDecl(name=_name(c[0]), type=_name(c[1]), choices=c[2], span=_span(meta))

    def user_decl(self, meta: Any, c: list[Token]) -> ast.UserDecl:
        return ast.UserDecl(name=_name(c[0]), span=_span(meta))

    def group_decl(self, meta: Any, c: list[Any]) -> ast.GroupDecl:
        return ast.GroupDecl(name=_name(c[0]), members=c[1], span=_span(meta))

    def queue_decl(self, meta: Any, c: list[Token]) -> ast.QueueDecl:
        return ast.QueueDecl(name=_name(c[0]), span=_span(meta))

    def list_decl(self, meta: Any, c: list[Token]) -> ast.ListDecl:
        return ast.ListDecl(name=_name(c[0]), span=_span(meta))

    def tag_decl(self, meta: Any, c: list[Token]) -> ast.TagDecl:
        return ast.TagDecl(name=_name(c[0]), span=_span(meta))

    def asset_decl(self, meta: Any, c: list[Any]) -> ast.AssetDecl:
        folder = _name(c[2]) if c[2] is not None else None
        return ast.AssetDecl(
            asset_kind=c[0].word, name=_name(c[1]), folder=folder, span=_span(meta)
        )

    def campaign_decl(self, meta: Any, c: list[Token]) -> ast.CampaignDecl:
        return ast.CampaignDecl(name=_name(c[0]), span=_span(meta))

    def crm_campaign_decl(self, meta: Any, c: list[Any]) -> ast.CrmCampaignDecl:
        return ast.CrmCampaignDecl(name=_name(c[0]), statuses=c[1], span=_span(meta))

    # completion and page actions
    def _trigger(self, verb: str, kind: str, tok: Token, meta: Any) -> ast.Trigger:
        return ast.Trigger(verb=verb, asset_kind=kind, asset=_name(tok), span=_span(meta))  # type: ignore[arg-type]

    def submit_trigger(self, meta: Any, c: list[Any]) -> ast.Trigger:
        return self._trigger("submit", c[0].word, c[1], meta)

    def download_trigger(self, meta: Any, c: list[Any]) -> ast.Trigger:
        return self._trigger("download", "file", c[0], meta)

    def click_trigger(self, meta: Any, c: list[Any]) -> ast.Trigger:
        return self._trigger("click", c[0].word, c[1], meta)

    def since(self, meta: Any, c: list[Token]) -> ast.TimestampValue:
        return self._timestamp(c[0])

    def completion_actions(self, meta: Any, c: list[Any]) -> ast.CompletionActions:
        return ast.CompletionActions(trigger=c[0], since=c[1], body=tuple(c[2:]), span=_span(meta))

    def page_action(self, meta: Any, c: list[Any]) -> ast.PageAction:
        return ast.PageAction(
            name=_name(c[0]), url=_name(c[1]), since=c[2], body=tuple(c[3:]), span=_span(meta)
        )

    def conditional(self, meta: Any, c: list[Any]) -> ast.Conditional:
        return ast.Conditional(condition=c[0], actions=tuple(c[1:]), span=_span(meta))

    def priority_flag(self, meta: Any, c: list[Any]) -> ast.PriorityFlag:
        return ast.PriorityFlag(span=_span(meta))

    # rules
    def _parts(self, parts: list[Any], allowed: set[str], what: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for kind, value, span in parts:
            if kind not in allowed:
                self._error("MR011", f"{what} cannot have `{kind}`", span, _PART_HINTS.get(kind))
            elif kind in found:
                self._error("MR010", f"{what} has more than one `{kind}`", span, "keep only one")
            else:
                found[kind] = value
        return found

    def match(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("when", c[0], _span(meta))

    def repeat(self, meta: Any, c: list[Token | None]) -> tuple[str, Any, ast.Span]:
        every, most = c
        node = ast.Repeat(
            every_days=int(every),  # type: ignore[arg-type]
            max_times=int(most) if most is not None else None,
            span=_span(meta),
        )
        return ("repeat", node, _span(meta))

    def paused(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("paused", True, _span(meta))

    def then(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("then", tuple(c), _span(meta))

    def automation_rule(self, meta: Any, c: list[Any]) -> ast.AutomationRule:
        parts = self._parts(c[2:], {"when", "repeat", "paused", "then"}, "an automation rule")
        return ast.AutomationRule(name=_name(c[0]), priority=int(c[1]), span=_span(meta), **parts)

    def segmentation_rule(self, meta: Any, c: list[Any]) -> ast.SegmentationRule:
        parts = self._parts(c[1:], {"when", "then"}, "a segmentation rule")
        return ast.SegmentationRule(name=_name(c[0]), span=_span(meta), **parts)

    def dynamic_list(self, meta: Any, c: list[Any]) -> ast.DynamicList:
        parts = self._parts(c[1:], {"when"}, "a dynamic list")
        return ast.DynamicList(name=_name(c[0]), span=_span(meta), **parts)

    # criteria
    def all_group(self, meta: Any, c: list[Any]) -> ast.Group:
        return ast.Group(match="all", items=tuple(c), span=_span(meta))

    def any_group(self, meta: Any, c: list[Any]) -> ast.Group:
        return ast.Group(match="any", items=tuple(c), span=_span(meta))

    def negation(self, meta: Any, c: list[Any]) -> ast.Not:
        return ast.Not(criterion=c[0], span=_span(meta))

    def score_criterion(self, meta: Any, c: list[Token]) -> ast.ScoreCompare:
        return ast.ScoreCompare(op=str(c[0]), value=int(c[1]), span=_span(meta))  # type: ignore[arg-type]

    def score_between(self, meta: Any, c: list[Token]) -> ast.ScoreBetween:
        return ast.ScoreBetween(low=int(c[0]), high=int(c[1]), span=_span(meta))

    def category_score_criterion(self, meta: Any, c: list[Token]) -> ast.CategoryScoreCompare:
        return ast.CategoryScoreCompare(
            category=_name(c[0]), op=str(c[1]), value=int(c[2]), span=_span(meta)  # type: ignore[arg-type]
        )

    def grade_criterion(self, meta: Any, c: list[Token]) -> ast.GradeCompare:
        return ast.GradeCompare(op=str(c[0]), grade=str(c[1]), span=_span(meta))  # type: ignore[arg-type]

    def field_criterion(self, meta: Any, c: list[Any]) -> ast.FieldTest:
        op, value, value2 = c[1]
        return ast.FieldTest(field=_name(c[0]), op=op, value=value, value2=value2, span=_span(meta))

    def compare_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return (str(c[0]), c[1], None)

    def is_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("is", c[0], None)

    def is_not_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("is not", c[0], None)

    def empty_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("is empty", None, None)

    def not_empty_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("is not empty", None, None)

    def contains_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("contains", c[0], None)

    def not_contains_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("does not contain", c[0], None)

    def starts_with_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("starts with", c[0], None)

    def ends_with_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("ends with", c[0], None)

    def between_test(self, meta: Any, c: list[Any]) -> tuple[str, Any, Any]:
        return ("between", c[0], c[1])

    def list_criterion(self, meta: Any, c: list[Token]) -> ast.InList:
        return ast.InList(list=_name(c[0]), span=_span(meta))

    def tag_criterion(self, meta: Any, c: list[Token]) -> ast.Tagged:
        return ast.Tagged(tag=_name(c[0]), span=_span(meta))

    def assigned_criterion(self, meta: Any, c: list[Any]) -> ast.Assigned:
        return ast.Assigned(span=_span(meta))

    def assigned_to_criterion(self, meta: Any, c: list[Any]) -> ast.Assigned:
        return ast.Assigned(to=c[0].word, name=_name(c[1]), span=_span(meta))

    def crm_status_criterion(self, meta: Any, c: list[Any]) -> ast.CrmStatus:
        return ast.CrmStatus(status=c[0].word, span=_span(meta))

    def profile_criterion(self, meta: Any, c: list[Token]) -> ast.ProfileIs:
        return ast.ProfileIs(profile=_name(c[0]), span=_span(meta))

    def campaign_criterion(self, meta: Any, c: list[Token]) -> ast.CampaignIs:
        return ast.CampaignIs(campaign=_name(c[0]), span=_span(meta))

    def opted_out_criterion(self, meta: Any, c: list[Any]) -> ast.OptedOut:
        return ast.OptedOut(span=_span(meta))

    def activity_criterion(self, meta: Any, c: list[Any]) -> ast.Activity:
        kind, name = c[1]
        return ast.Activity(
            verb=c[0].word, asset_kind=kind, name=name, within_days=c[2], span=_span(meta)
        )

    def asset_object(self, meta: Any, c: list[Any]) -> tuple[str | None, ast.Name | None]:
        return (c[0].word, _name(c[1]))

    def any_asset_object(self, meta: Any, c: list[Any]) -> tuple[str | None, ast.Name | None]:
        return (c[0].word, None)

    def url_object(self, meta: Any, c: list[Token]) -> tuple[str | None, ast.Name | None]:
        return (None, _name(c[0]))

    def within(self, meta: Any, c: list[Token]) -> int:
        return int(c[0])

    def days_since_criterion(self, meta: Any, c: list[Any]) -> ast.DaysSince:
        return ast.DaysSince(anchor=c[0].word, op=str(c[1]), days=int(c[2]), span=_span(meta))

    # actions
    def add_to_list(self, meta: Any, c: list[Token]) -> ast.AddToList:
        return ast.AddToList(list=_name(c[0]), span=_span(meta))

    def remove_from_list(self, meta: Any, c: list[Token]) -> ast.RemoveFromList:
        return ast.RemoveFromList(list=_name(c[0]), span=_span(meta))

    def add_tag(self, meta: Any, c: list[Token]) -> ast.AddTag:
        return ast.AddTag(tag=_name(c[0]), span=_span(meta))

    def remove_tag(self, meta: Any, c: list[Token]) -> ast.RemoveTag:
        return ast.RemoveTag(tag=_name(c[0]), span=_span(meta))

    def adjust_score(self, meta: Any, c: list[Token]) -> ast.AdjustScore:
        return ast.AdjustScore(points=int(c[0]), span=_span(meta))

    def adjust_category_score(self, meta: Any, c: list[Token]) -> ast.AdjustCategoryScore:
        return ast.AdjustCategoryScore(points=int(c[0]), category=_name(c[1]), span=_span(meta))

    def set_score(self, meta: Any, c: list[Token]) -> ast.SetScore:
        return ast.SetScore(value=int(c[0]), span=_span(meta))

    def assign(self, meta: Any, c: list[Any]) -> ast.Assign:
        return ast.Assign(to=c[0].word, name=_name(c[1]), span=_span(meta))

    def assign_by_crm_rule(self, meta: Any, c: list[Any]) -> ast.AssignByCrmRule:
        return ast.AssignByCrmRule(span=_span(meta))

    def set_field(self, meta: Any, c: list[Any]) -> ast.SetField:
        return ast.SetField(field=_name(c[0]), value=c[1], span=_span(meta))

    def increment_field(self, meta: Any, c: list[Token]) -> ast.IncrementField:
        return ast.IncrementField(field=_name(c[0]), by=_number(c[1]), span=_span(meta))

    def change_source_campaign(self, meta: Any, c: list[Token]) -> ast.ChangeSourceCampaign:
        return ast.ChangeSourceCampaign(campaign=_name(c[0]), span=_span(meta))

    def add_to_crm_campaign(self, meta: Any, c: list[Token | None]) -> ast.AddToCrmCampaign:
        status = _name(c[1]) if c[1] is not None else None
        return ast.AddToCrmCampaign(campaign=_name(c[0]), status=status, span=_span(meta))  # type: ignore[arg-type]

    def create_crm_task(self, meta: Any, c: list[Any]) -> ast.CreateCrmTask:
        options: dict[str, Any] = {}
        for key, value, span in c[1] or ():
            if key in options:
                self._error("MR010", f"a CRM task has more than one `{key}`", span, "keep only one")
            options[key] = value
        return ast.CreateCrmTask(subject=unquote(c[0]), span=_span(meta), **options)

    def task_options(self, meta: Any, c: list[Any]) -> list[Any]:
        return [x for x in c if x is not None]

    def task_due(self, meta: Any, c: list[Token]) -> tuple[str, Any, ast.Span]:
        return ("due_days", int(c[0]), _span(meta))

    def task_priority(self, meta: Any, c: list[Token]) -> tuple[str, Any, ast.Span]:
        return ("priority", unquote(c[0]), _span(meta))

    def task_status(self, meta: Any, c: list[Token]) -> tuple[str, Any, ast.Span]:
        return ("status", unquote(c[0]), _span(meta))

    def task_owner(self, meta: Any, c: list[Token]) -> tuple[str, Any, ast.Span]:
        return ("owner", _name(c[0]), _span(meta))

    def notify_user(self, meta: Any, c: list[Token]) -> ast.NotifyUser:
        return ast.NotifyUser(user=_name(c[0]), span=_span(meta))

    def notify_assigned_user(self, meta: Any, c: list[Any]) -> ast.NotifyAssignedUser:
        return ast.NotifyAssignedUser(span=_span(meta))

    def send_autoresponder(self, meta: Any, c: list[Token]) -> ast.SendAutoresponder:
        return ast.SendAutoresponder(email=_name(c[0]), span=_span(meta))

    def change_profile(self, meta: Any, c: list[Token]) -> ast.ChangeProfile:
        return ast.ChangeProfile(profile=_name(c[0]), span=_span(meta))

    def mark_profile_criterion(self, meta: Any, c: list[Any]) -> ast.MarkProfileCriterion:
        return ast.MarkProfileCriterion(
            criterion=_name(c[0]), profile=_name(c[1]), state=c[2].word, span=_span(meta)
        )

    def do_not_sync(self, meta: Any, c: list[Any]) -> ast.DoNotSync:
        return ast.DoNotSync(span=_span(meta))

    def allow_crm_recreate(self, meta: Any, c: list[Any]) -> ast.AllowCrmRecreate:
        return ast.AllowCrmRecreate(span=_span(meta))

    # scoring and grading
    def scoring(self, meta: Any, c: list[Any]) -> ast.Scoring:
        return ast.Scoring(rows=tuple(c), span=_span(meta))

    def score_row(self, meta: Any, c: list[Token]) -> ast.ScoreRow:
        words, points = c[:-1], c[-1]
        activity = ast.Name(
            text=" ".join(str(w) for w in words),
            span=ast.Span(words[0].start_pos or 0, words[-1].end_pos or 0),
        )
        return ast.ScoreRow(activity=activity, points=int(points), span=_span(meta))

    def scoring_category(self, meta: Any, c: list[Any]) -> ast.ScoringCategory:
        return ast.ScoringCategory(name=_name(c[0]), folders=c[1], span=_span(meta))

    def grading_profile(self, meta: Any, c: list[Any]) -> ast.GradingProfile:
        return ast.GradingProfile(
            default=c[0] is not None, name=_name(c[1]), criteria=tuple(c[2:]), span=_span(meta)
        )

    def grading_criterion(self, meta: Any, c: list[Token]) -> ast.GradingCriterion:
        return ast.GradingCriterion(name=_name(c[0]), weight=int(c[1][0]), span=_span(meta))

    # sync
    def sync(self, meta: Any, c: list[Any]) -> ast.Sync:
        options: dict[str, Any] = {}
        mappings: list[ast.SyncMap] = []
        for part in c[1:]:
            if isinstance(part, ast.SyncMap):
                mappings.append(part)
                continue
            key, value, span = part
            if key in options:
                self._error("MR013", f"the sync block sets `{_SYNC_WORDS[key]}` twice", span,
                            "keep only one")
            options[key] = value
        if "cadence" in options:
            options["every_minutes"], options["batch"] = options.pop("cadence")
        return ast.Sync(crm=_name(c[0]), mappings=tuple(mappings), span=_span(meta), **options)

    def sync_objects(self, meta: Any, c: list[Token]) -> tuple[str, Any, ast.Span]:
        return ("objects", tuple(_name(t) for t in c), _span(meta))

    def match_by_email(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("match_by", "email", _span(meta))

    def match_by_crm_id(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("match_by", "crm id", _span(meta))

    def sync_precedence(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("precedence", (c[0].word, c[1].word), _span(meta))

    def sync_create(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("create_on_assignment", c[0].word, _span(meta))

    def sync_auto_create(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("auto_create", c[0].word == "on", _span(meta))

    def sync_cadence(self, meta: Any, c: list[Token | None]) -> tuple[str, Any, ast.Span]:
        return ("cadence", (int(c[0]), int(c[1]) if c[1] is not None else None), _span(meta))  # type: ignore[arg-type]

    def blanks_overwrite(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("blank_crm_values", "overwrite", _span(meta))

    def blanks_never_overwrite(self, meta: Any, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("blank_crm_values", "never overwrite", _span(meta))

    def sync_map(self, meta: Any, c: list[Any]) -> ast.SyncMap:
        crm_type = _name(c[2]) if c[2] is not None else None
        return ast.SyncMap(
            field=_name(c[0]), crm_field=_name(c[1]), crm_type=crm_type, prefer=c[3].word,
            span=_span(meta),
        )

    # settings
    def settings(self, meta: Any, c: list[Any]) -> ast.Settings:
        return ast.Settings(items=tuple(c), span=_span(meta))

    def setting(self, meta: Any, c: list[Any]) -> ast.Setting:
        return ast.Setting(name=_name(c[0]), value=c[1], span=_span(meta))


_SYNC_WORDS = {
    "objects": "objects",
    "match_by": "match by",
    "precedence": "prefer … over …",
    "create_on_assignment": "create … on assignment",
    "auto_create": "auto create prospects",
    "cadence": "every … minutes",
    "blank_crm_values": "blank crm values",
}

_PART_HINTS = {
    "repeat": "only automation rules repeat; segmentation rules run once",
    "paused": "only automation rules can be paused",
    "then": "a dynamic list has members, not actions: use an automation rule to act on them",
}


# ------------------------------------------------------------------ errors

TERMINAL_NAMES = {
    "STRING": "a quoted string",
    "NAME": "a field name",
    "INT": "a whole number",
    "SIGNED_INT": "a signed number like +25 or -10",
    "NUMBER": "a number",
    "TIMESTAMP": "a date like 2026-11-02",
    "COMPARE": "a comparison (<, <=, >, >=)",
    "GRADE": "a grade like B-",
    "WEIGHT": "a weight (1/3, 2/3 or 3/3)",
    "DEFAULT": "'default'",
    "$END": "the end of the file",
}

# Known mistakes: the parser state at the error is matched against these snippets.
ERROR_EXAMPLES: dict[str, list[str]] = {
    "compare a field with `is` (`company is \"Acme\"`); `=` only sets a field in actions": [
        'automation rule "r" priority 1 { when all { company = "Acme" } }',
        'on submit of form "f" { if company = "Acme" { add tag "t" } }',
        'dynamic list "d" { when any { company = "Acme" } }',
    ],
    "automation rules need an explicit priority: `automation rule \"name\" priority 10 { ... }`": [
        'automation rule "r" { when all { } }',
    ],
    "put the actions in braces: `then { add to list \"MQL\" }`": [
        'automation rule "r" priority 1 { then add to list "x" }',
        'segmentation rule "r" { then add to list "x" }',
    ],
    "criteria go in a group: `when all { ... }` or `when any { ... }`": [
        'automation rule "r" priority 1 { when score > 10 }',
        'automation rule "r" priority 1 { when { score > 10 } }',
    ],
    "score adjustments carry a sign: `score +25` or `score -10`": [
        'page action "p" on "x.com" { score 25 }',
        'on submit of form "f" { score 25 }',
    ],
    "a page action needs a URL: `page action \"name\" on \"example.com/page\" { ... }`": [
        'page action "p" { score +1 }',
    ],
    "say which asset: `on submit of form \"Name\" { ... }`": [
        'on form "f" { score +1 }',
        'on submit form "f" { score +1 }',
    ],
    "names of lists, tags, users and assets are quoted strings": [
        "on submit of form f { score +1 }",
        'on submit of form "f" { add to list MQL }',
        'on submit of form "f" { assign to user alan }',
    ],
    "grades are capital letters with an optional + or -, like B- or A+": [
        'automation rule "r" priority 1 { when all { grade >= b } }',
    ],
}


@functools.cache
def _example_errors() -> list[tuple[str, UnexpectedInput]]:
    parser = lark_parser()
    found: list[tuple[str, UnexpectedInput]] = []
    for label, snippets in ERROR_EXAMPLES.items():
        for snippet in snippets:
            try:
                parser.parse(snippet)
            except UnexpectedInput as e:
                found.append((label, e))
    return found


def _state_key(err: UnexpectedInput) -> int | None:
    """The LALR state an error happened in (the stack depth does not matter for hints)."""
    return getattr(getattr(err, "state", None), "position", None)


def _char_class(ch: str) -> str:
    return "word" if ch.isalpha() or ch == "_" else "digit" if ch.isdigit() else ch


def _hint_for(err: UnexpectedInput, text: str) -> str | None:
    key = _state_key(err)
    if key is None:
        return None
    for label, example in _example_errors():
        if _state_key(example) != key or type(example) is not type(err):
            continue
        if isinstance(err, UnexpectedToken):
            if example.token.type == err.token.type:  # type: ignore[attr-defined]
                return label
        elif isinstance(err, UnexpectedCharacters):
            ex_char = example.char  # type: ignore[attr-defined]
            if _char_class(ex_char) == _char_class(err.char):
                return label
    return None


def _describe_terminal(name: str) -> str:
    if name in TERMINAL_NAMES:
        return TERMINAL_NAMES[name]
    term = _terminal_patterns().get(name)
    if term is not None:
        return f"'{term}'"
    return name.lower()


@functools.cache
def _terminal_patterns() -> dict[str, str]:
    out = {}
    for t in lark_parser().terminals:
        if t.pattern.type == "str":
            out[t.name] = t.pattern.value
    return out


def _expected_phrase(expected: set[str]) -> str:
    words = sorted({_describe_terminal(e) for e in expected})
    if len(words) > 8:
        words = [*words[:8], "…"]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _did_you_mean(word: str, expected: set[str]) -> str | None:
    """Suggest the keyword a misspelt word was probably meant to be."""
    patterns = _terminal_patterns()
    keywords = [patterns[e] for e in expected if e in patterns and patterns[e].isalpha()]
    close = difflib.get_close_matches(word, keywords, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _token_phrase(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    text = str(tok)
    if len(text) > 30:
        text = text[:27] + "..."
    return f"'{text}'"


_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _syntax_diagnostic(err: UnexpectedInput, text: str, path: str) -> Diagnostic:
    hint = _hint_for(err, text)
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            start = end = len(text)
            return Diagnostic(
                code="MR003", severity=Severity.ERROR, path=path, start=start, end=end,
                message=f"unexpected end of file; expected {_expected_phrase(err.expected)}",
                hint=hint or "a block may be missing its closing '}'",
            )
        start = tok.start_pos or 0
        end = tok.end_pos or start + 1
        if hint is None:
            hint = _did_you_mean(str(tok), err.expected)
        return Diagnostic(
            code="MR001", severity=Severity.ERROR, path=path, start=start, end=end,
            message=f"unexpected {_token_phrase(tok)}; expected {_expected_phrase(err.expected)}",
            hint=hint,
        )
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
        ch = text[pos] if pos < len(text) else ""
        if ch == '"':
            line_end = text.find("\n", pos)
            end = len(text) if line_end < 0 else line_end
            return Diagnostic(
                code="MR004", severity=Severity.ERROR, path=path, start=pos, end=end,
                message="unclosed or malformed string",
                hint='close the string with " on the same line; escape quotes inside as \\"',
            )
        allowed = set(err.allowed or ())
        expected = ("expected " + _expected_phrase(allowed)) if allowed else None
        word = _WORD_RE.match(text, pos)
        if word is not None:
            shown = word.group()
            if len(shown) > 30:
                shown = shown[:27] + "..."
            if hint is None and "NAME" in allowed and shown.lower() != shown:
                hint = f"field names are lowercase: '{shown.lower()}'"
            return Diagnostic(
                code="MR002", severity=Severity.ERROR, path=path, start=pos, end=word.end(),
                message=f"unexpected '{shown}'" + (f"; {expected}" if expected else ""),
                hint=hint or _did_you_mean(word.group(), allowed),
            )
        if not ch.isprintable():
            return Diagnostic(
                code="MR002", severity=Severity.ERROR, path=path, start=pos, end=pos + 1,
                message=f"unexpected invisible character U+{ord(ch):04X}",
                hint=hint or "delete it; rule files are plain text",
            )
        return Diagnostic(
            code="MR002", severity=Severity.ERROR, path=path, start=pos, end=pos + 1,
            message=f"unexpected character '{ch}'",
            hint=hint or expected,
        )
    assert isinstance(err, UnexpectedEOF)
    return Diagnostic(
        code="MR003", severity=Severity.ERROR, path=path, start=len(text), end=len(text),
        message="unexpected end of file", hint="a block may be missing its closing '}'",
    )


def parse_text(text: str, path: str = "<string>") -> tuple[ast.File | None, list[Diagnostic]]:
    """Parse one rule file's text.

    Returns the AST (None when the text has a syntax error) and the diagnostics.

    >>> file, diags = parse_text('list "MQL"', "x.mr")
    >>> file.items[0].name.text, diags
    ('MQL', [])
    """
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput as err:
        return None, [_syntax_diagnostic(err, text, path)]
    builder = _ToAst(path)
    file = builder.build(tree)
    return file, builder.diagnostics
