"""Text to AST: the cached LALR parser, the AST builder, the fast path, and parse errors.

The grammar (`grammar/mrules.lark`, shipped as `mrules/grammar/mrules.lark`) is
built into a Lark LALR parser once per process. `parse_text` turns one file's
text into an `ast.File` plus diagnostics, through a fast path (`_FastParser`: one
master regex and Lark's own LALR tables, building the AST while reducing) that
gives what Lark's contextual lexer and parse tree give (`parse_text_with_lark`,
the reference) and hands Lark whatever it cannot vouch for, errors included.
Nothing from Lark reaches the user:
syntax errors are translated here into `Diagnostic`s that name what was
expected in the language's own words, with a hint for common mistakes found by
matching the parser state against `ERROR_EXAMPLES`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import gc
import importlib.resources
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import LexerState
from lark.utils import TextSlice

from mrules import ast
from mrules.diagnostics import Diagnostic, Severity
from mrules.symbols import FIELD_TYPES

__all__ = [
    "BAD_STRING_CHAR",
    "ERROR_EXAMPLES",
    "MAX_DECIMAL",
    "MAX_NESTING",
    "MAX_NUMBER",
    "WORD_HINTS",
    "Parsed",
    "collector_paused",
    "grammar_text",
    "lark_parser",
    "parse_recovering",
    "parse_text",
    "parse_text_with_lark",
]


def grammar_text() -> str:
    """The grammar, read from the installed package (never from the checkout)."""
    return importlib.resources.files("mrules").joinpath("grammar/mrules.lark").read_text("utf-8")


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser, built once per process.

    The built tables are cached in the user's own cache folder (`_tables_cache`), so a
    CLI run loads them instead of rebuilding them; an unwritable or stale cache only
    costs the rebuild.
    """
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_tables_cache(),
    )


def _tables_cache() -> str | bool:
    """Where the parser's tables are cached: `$XDG_CACHE_HOME/mrules` (by default
    `~/.cache/mrules`), a folder only this user may write; False (no cache) when there
    is none such.

    Lark's own `cache=True` used a name anyone could guess in the shared temp folder
    (`/tmp/.lark_cache_USER_HASH_3_11.tmp`) and unpickles what it finds there: another
    local user could create that file first and have mrules run their code. The file
    name here holds the grammar's and Lark's versions, so installs of two mrules do
    not rebuild each other's tables.
    """
    import hashlib
    import os
    import stat
    import sys

    import lark

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):  # no home folder: "~/.cache" left as it is
        return False
    if not os.path.isdir(os.path.dirname(base.rstrip(os.sep)) or os.sep):
        # A home folder that is not there (HOME=/nonexistent, a service account's): the
        # whole chain was made, `/nonexistent/.cache/mrules`; now there is no cache.
        return False
    folder = os.path.join(base, "mrules")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return False
    getuid = getattr(os, "getuid", None)
    if (
        not stat.S_ISDIR(st.st_mode)  # a symbolic link: the folder may be anyone's
        or (getuid is not None and st.st_uid != getuid())
        or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        return False
    key = hashlib.sha256(f"{grammar_text()}\0{lark.__version__}".encode()).hexdigest()[:16]
    return os.path.join(folder, f"parser-{key}-py{sys.version_info[0]}{sys.version_info[1]}.lark")


# ------------------------------------------------------------------ transformer

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# What a string may not hold: NUL (C strings and file names end there) and lone
# surrogates (they are not characters; no UTF-8 text can carry them).
BAD_STRING_CHAR = re.compile("[\x00\ud800-\udfff]")

MAX_NUMBER = 2**53 - 1
"""The largest magnitude of a whole number in a rule file (every JSON reader holds it exactly)."""
MAX_DECIMAL = 10**100
"""A decimal number (one with a point) lies strictly between -MAX_DECIMAL and MAX_DECIMAL:
at most 100 digits before the point (checked on the text, exactly; as a double, 100
nines rounded up to 1e100 and were refused)."""
_MAX_DECIMAL_DIGITS = len(str(MAX_DECIMAL)) - 1
MAX_NESTING = 32
"""How deep criteria may nest: each `all { }`, `any { }` and `not` is one level."""
_MAX_DIGITS = len(str(MAX_NUMBER))


def unquote(token: str) -> str:
    """The value of a STRING token: strip the quotes, resolve escapes.

    A surrogate pair written as two escapes is one character, as in JSON:

    >>> unquote('"\\\\ud83d\\\\ude00"') == "\\U0001F600"
    True
    """
    body = token[1:-1]
    if "\\" not in body:
        return body

    def sub(m: re.Match[str]) -> str:
        esc = m.group(1)
        return chr(int(esc[1:], 16)) if esc[0] == "u" else _ESCAPES.get(esc, esc)

    value = _ESCAPE_RE.sub(sub, body)
    if _SURROGATE_RE.search(value) is not None:
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return value


_Crit = TypeVar("_Crit", ast.Group, ast.Not)


class _Tok(NamedTuple):
    """A terminal the AST keeps (names, strings, numbers...): its type, text and offsets.

    Both parse paths hand these to `_ToAst`, so the builder never sees Lark's tokens.
    """

    type: str
    text: str
    start: int
    end: int


def _span(meta: Any) -> ast.Span:
    if getattr(meta, "empty", True):
        return ast.NO_SPAN
    return ast.Span(meta.start_pos, meta.end_pos)


def _tspan(tok: _Tok) -> ast.Span:
    return ast.Span(tok.start, tok.end)


def _shorten(text: str, keep: int = 12) -> str:
    """A long literal as messages show it: its ends and its length."""
    if len(text) <= 2 * keep + 1:
        return text
    return f"{text[:keep]}…{text[-keep:]} ({len(text):,} characters)"


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

    Each method takes the span of the text the rule matched and its children, already
    built (kept terminals arrive as `_Tok`). The fast path calls them as it reduces;
    `build` does the same for a Lark tree, bottom-up and without recursion (deep
    `not not ...` chains are fine).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.diagnostics: list[Diagnostic] = []
        self._depths: dict[int, tuple[Any, int]] = {}  # id -> (group or not, levels)
        self._deep_at: int | None = None  # where nesting too deep was last reported

    @classmethod
    @functools.cache
    def method_for(cls, rule: str) -> Callable[[_ToAst, ast.Span, list[Any]], Any]:
        """The unbound method that builds grammar rule (or alias) `rule`."""
        method = getattr(cls, rule, None) if not rule.startswith("_") else None
        if method is not None:
            return method  # type: ignore[no-any-return]
        if rule not in _WORD_ALIASES:

            def missing(self: _ToAst, span: ast.Span, c: list[Any]) -> Any:
                raise AssertionError(f"grammar rule {rule!r} has no transformer method")

            return missing
        word = _WORD_ALIASES[rule]

        def keyword(self: _ToAst, span: ast.Span, c: list[Any]) -> _Word:
            return _Word(word, span)

        return keyword

    def build(self, tree: Tree[Token]) -> Any:
        """The AST of a Lark parse tree; children are built before their parents."""
        built: dict[int, Any] = {}
        method_for = self.method_for
        result = None
        for sub in tree.iter_subtrees():
            children = [
                built.pop(id(c))
                if type(c) is Tree
                else _Tok(c.type, str(c), c.start_pos or 0, c.end_pos or 0)
                if isinstance(c, Token)
                else c
                for c in sub.children
            ]
            result = built[id(sub)] = method_for(sub.data)(self, _span(sub.meta), children)
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

    # leaves: every string, number and criteria group passes through these
    def _text(self, tok: _Tok) -> str:
        """A STRING token's value; NUL and lone surrogates are errors (and become U+FFFD)."""
        raw = tok.text
        if raw.isascii() and "\\" not in raw and "\x00" not in raw:
            return raw[1:-1]
        value = unquote(raw)  # a raw surrogate can only come from a str, not from a file
        bad = BAD_STRING_CHAR.search(value)
        if bad is None:
            return value
        ch = bad.group()
        if ch == "\x00":
            message, hint = "string holds a NUL character (U+0000)", "remove it"
        else:
            message = f"string holds a lone surrogate \\u{ord(ch):04x}, which is not a character"
            hint = "write the character itself, or both halves of a pair: \\ud83d\\ude00"
        self._error("MR015", message, _tspan(tok), hint)
        return BAD_STRING_CHAR.sub("\ufffd", value)

    def _name(self, tok: _Tok) -> ast.Name:
        text = self._text(tok) if tok.type == "STRING" else tok.text
        if not text.isascii():  # names match in NFC: `é` is `e` and a combining accent
            text = unicodedata.normalize("NFC", text)
        return ast.Name(text=text, span=ast.Span(tok.start, tok.end))

    def _out_of_range(self, tok: _Tok) -> None:
        self._error(
            "MR014",
            f"number {_shorten(tok.text)} is out of range",
            _tspan(tok),
            f"whole numbers lie between -{MAX_NUMBER} and {MAX_NUMBER}",
        )

    def _int(self, tok: _Tok) -> int:
        """A whole number token's value; out of range is an error (and is clamped)."""
        text = tok.text
        if len(text) < _MAX_DIGITS:  # at most 15 digits: always in range
            return int(text)
        digits = text.lstrip("+-").lstrip("0")
        if len(digits) <= _MAX_DIGITS and int(digits or "0") <= MAX_NUMBER:
            return int(text)
        self._out_of_range(tok)
        return -MAX_NUMBER if text.startswith("-") else MAX_NUMBER

    def _number(self, tok: _Tok) -> int | float:
        """A NUMBER token's value: whole, or a decimal (a double) when it has a point."""
        text = tok.text
        if "." not in text:
            return self._int(tok)
        whole = text.split(".", 1)[0].lstrip("+-").lstrip("0")
        if len(whole) <= _MAX_DECIMAL_DIGITS:  # below 10^100, whatever follows the point
            return float(text)
        self._error(
            "MR014",
            f"number {_shorten(tok.text)} is out of range",
            _tspan(tok),
            "a decimal number lies below 10^100 either way",
        )
        return float(-MAX_NUMBER if text.startswith("-") else MAX_NUMBER)

    def _nested(self, node: _Crit, children: list[Any]) -> _Crit:
        """`node`, or an empty stand-in (and an error) when criteria nest too deep.

        The stand-in keeps the tree shallow, so nothing downstream recurses deeply;
        the error keeps every command from using the tree.
        """
        depths = self._depths
        depth = 1
        for child in children:
            entry = depths.get(id(child))
            if entry is not None and entry[0] is child and entry[1] >= depth:
                depth = entry[1] + 1
        if depth > MAX_NESTING:
            span = node.span
            if self._deep_at is None or not span.start <= self._deep_at < span.end:
                self._deep_at = span.start
                self._error(
                    "MR016",
                    f"criteria nested more than {MAX_NESTING} deep",
                    ast.Span(span.start, span.start + 3),
                    "flatten them: a group inside a group of the same kind merges into it, "
                    "and `not not x` is `x`",
                )
            node, depth = ast.Group(match="all", items=(), span=span), 1  # type: ignore[assignment]
        depths[id(node)] = (node, depth)
        return node

    def start(self, span: ast.Span, items: list[Any]) -> ast.File:
        return ast.File(path=self.path, items=tuple(items), span=span)

    # values
    def string_value(self, span: ast.Span, c: list[_Tok]) -> ast.StringValue:
        text = self._text(c[0])
        if not text.isascii():  # literals in NFC, as names and the events' field values
            text = unicodedata.normalize("NFC", text)
        return ast.StringValue(value=text, span=span)

    def number_value(self, span: ast.Span, c: list[_Tok]) -> ast.NumberValue:
        return ast.NumberValue(value=self._number(c[0]), span=span)

    def timestamp_value(self, span: ast.Span, c: list[_Tok]) -> ast.TimestampValue:
        return self._timestamp(c[0])

    def true_value(self, span: ast.Span, c: list[Any]) -> ast.BoolValue:
        return ast.BoolValue(value=True, span=span)

    def false_value(self, span: ast.Span, c: list[Any]) -> ast.BoolValue:
        return ast.BoolValue(value=False, span=span)

    def string_list(self, span: ast.Span, c: list[_Tok | None]) -> ast.StringList:
        return ast.StringList(values=tuple(self._name(t) for t in c if t is not None), span=span)

    def _timestamp(self, tok: _Tok) -> ast.TimestampValue:
        text = tok.text
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
    def include(self, span: ast.Span, c: list[_Tok]) -> ast.Include:
        return ast.Include(path=self._name(c[0]), span=span)

    def field_decl(self, span: ast.Span, c: list[Any]) -> ast.FieldDecl:
        return ast.FieldDecl(name=self._name(c[0]), type=self._name(c[1]), choices=c[2], span=span)

    def user_decl(self, span: ast.Span, c: list[_Tok]) -> ast.UserDecl:
        return ast.UserDecl(name=self._name(c[0]), span=span)

    def group_decl(self, span: ast.Span, c: list[Any]) -> ast.GroupDecl:
        return ast.GroupDecl(name=self._name(c[0]), members=c[1], span=span)

    def queue_decl(self, span: ast.Span, c: list[_Tok]) -> ast.QueueDecl:
        return ast.QueueDecl(name=self._name(c[0]), span=span)

    def list_decl(self, span: ast.Span, c: list[_Tok]) -> ast.ListDecl:
        return ast.ListDecl(name=self._name(c[0]), span=span)

    def tag_decl(self, span: ast.Span, c: list[_Tok]) -> ast.TagDecl:
        return ast.TagDecl(name=self._name(c[0]), span=span)

    def asset_decl(self, span: ast.Span, c: list[Any]) -> ast.AssetDecl:
        folder = self._name(c[2]) if c[2] is not None else None
        return ast.AssetDecl(asset_kind=c[0].word, name=self._name(c[1]), folder=folder, span=span)

    def campaign_decl(self, span: ast.Span, c: list[_Tok | None]) -> ast.CampaignDecl:
        assert c[0] is not None
        cost = None
        tok = c[1] if len(c) > 1 else None
        if tok is not None:
            cost = self._number(tok)
            if cost < 0:
                self._error(
                    "MR014", f"a campaign's cost cannot be negative ({tok.text})", _tspan(tok),
                    "write what the campaign cost: 0 or more",
                )  # fmt: skip
        return ast.CampaignDecl(name=self._name(c[0]), cost=cost, span=span)

    def crm_campaign_decl(self, span: ast.Span, c: list[Any]) -> ast.CrmCampaignDecl:
        return ast.CrmCampaignDecl(name=self._name(c[0]), statuses=c[1], span=span)

    # completion and page actions
    def _trigger(self, verb: str, kind: str, tok: _Tok, span: ast.Span) -> ast.Trigger:
        return ast.Trigger(verb=verb, asset_kind=kind, asset=self._name(tok), span=span)  # type: ignore[arg-type]

    def submit_trigger(self, span: ast.Span, c: list[Any]) -> ast.Trigger:
        return self._trigger("submit", c[0].word, c[1], span)

    def download_trigger(self, span: ast.Span, c: list[Any]) -> ast.Trigger:
        return self._trigger("download", "file", c[0], span)

    def click_trigger(self, span: ast.Span, c: list[Any]) -> ast.Trigger:
        return self._trigger("click", c[0].word, c[1], span)

    def since(self, span: ast.Span, c: list[_Tok]) -> ast.TimestampValue:
        return self._timestamp(c[0])

    def completion_actions(self, span: ast.Span, c: list[Any]) -> ast.CompletionActions:
        return ast.CompletionActions(trigger=c[0], since=c[1], body=tuple(c[2:]), span=span)

    def page_action(self, span: ast.Span, c: list[Any]) -> ast.PageAction:
        return ast.PageAction(
            name=self._name(c[0]), url=self._name(c[1]), since=c[2], body=tuple(c[3:]), span=span
        )

    def conditional(self, span: ast.Span, c: list[Any]) -> ast.Conditional:
        return ast.Conditional(condition=c[0], actions=tuple(c[1:]), span=span)

    def priority_flag(self, span: ast.Span, c: list[Any]) -> ast.PriorityFlag:
        return ast.PriorityFlag(span=span)

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

    def match(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("when", c[0], span)

    def repeat(self, span: ast.Span, c: list[_Tok | None]) -> tuple[str, Any, ast.Span]:
        every, most = c
        node = ast.Repeat(
            every_days=self._int(every),  # type: ignore[arg-type]
            max_times=self._int(most) if most is not None else None,
            span=span,
        )
        return ("repeat", node, span)

    def paused(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("paused", True, span)

    def then(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("then", tuple(c), span)

    def automation_rule(self, span: ast.Span, c: list[Any]) -> ast.AutomationRule:
        parts = self._parts(c[2:], {"when", "repeat", "paused", "then"}, "an automation rule")
        return ast.AutomationRule(
            name=self._name(c[0]), priority=self._int(c[1]), span=span, **parts
        )

    def segmentation_rule(self, span: ast.Span, c: list[Any]) -> ast.SegmentationRule:
        parts = self._parts(c[1:], {"when", "then"}, "a segmentation rule")
        return ast.SegmentationRule(name=self._name(c[0]), span=span, **parts)

    def dynamic_list(self, span: ast.Span, c: list[Any]) -> ast.DynamicList:
        parts = self._parts(c[1:], {"when"}, "a dynamic list")
        return ast.DynamicList(name=self._name(c[0]), span=span, **parts)

    # criteria
    def all_group(self, span: ast.Span, c: list[Any]) -> ast.Group:
        return self._nested(ast.Group(match="all", items=tuple(c), span=span), c)

    def any_group(self, span: ast.Span, c: list[Any]) -> ast.Group:
        return self._nested(ast.Group(match="any", items=tuple(c), span=span), c)

    def negation(self, span: ast.Span, c: list[Any]) -> ast.Not:
        return self._nested(ast.Not(criterion=c[0], span=span), c)

    def score_criterion(self, span: ast.Span, c: list[_Tok]) -> ast.ScoreCompare:
        return ast.ScoreCompare(op=c[0].text, value=self._int(c[1]), span=span)  # type: ignore[arg-type]

    def score_between(self, span: ast.Span, c: list[_Tok]) -> ast.ScoreBetween:
        return ast.ScoreBetween(low=self._int(c[0]), high=self._int(c[1]), span=span)

    def category_score_criterion(self, span: ast.Span, c: list[_Tok]) -> ast.CategoryScoreCompare:
        return ast.CategoryScoreCompare(
            category=self._name(c[0]),
            op=c[1].text,  # type: ignore[arg-type]
            value=self._int(c[2]),
            span=span,
        )

    def grade_criterion(self, span: ast.Span, c: list[_Tok]) -> ast.GradeCompare:
        return ast.GradeCompare(op=c[0].text, grade=c[1].text, span=span)  # type: ignore[arg-type]

    def field_criterion(self, span: ast.Span, c: list[Any]) -> ast.FieldTest:
        op, value, value2 = c[1]
        return ast.FieldTest(field=self._name(c[0]), op=op, value=value, value2=value2, span=span)

    def compare_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return (c[0].text, c[1], None)

    def is_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("is", c[0], None)

    def is_not_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("is not", c[0], None)

    def empty_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("is empty", None, None)

    def not_empty_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("is not empty", None, None)

    def contains_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("contains", c[0], None)

    def not_contains_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("does not contain", c[0], None)

    def starts_with_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("starts with", c[0], None)

    def ends_with_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("ends with", c[0], None)

    def between_test(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, Any]:
        return ("between", c[0], c[1])

    def list_criterion(self, span: ast.Span, c: list[_Tok]) -> ast.InList:
        return ast.InList(list=self._name(c[0]), span=span)

    def tag_criterion(self, span: ast.Span, c: list[_Tok]) -> ast.Tagged:
        return ast.Tagged(tag=self._name(c[0]), span=span)

    def assigned_criterion(self, span: ast.Span, c: list[Any]) -> ast.Assigned:
        return ast.Assigned(span=span)

    def assigned_to_criterion(self, span: ast.Span, c: list[Any]) -> ast.Assigned:
        return ast.Assigned(to=c[0].word, name=self._name(c[1]), span=span)

    def crm_status_criterion(self, span: ast.Span, c: list[Any]) -> ast.CrmStatus:
        return ast.CrmStatus(status=c[0].word, span=span)

    def profile_criterion(self, span: ast.Span, c: list[_Tok]) -> ast.ProfileIs:
        return ast.ProfileIs(profile=self._name(c[0]), span=span)

    def campaign_criterion(self, span: ast.Span, c: list[_Tok]) -> ast.CampaignIs:
        return ast.CampaignIs(campaign=self._name(c[0]), span=span)

    def opted_out_criterion(self, span: ast.Span, c: list[Any]) -> ast.OptedOut:
        return ast.OptedOut(span=span)

    def activity_criterion(self, span: ast.Span, c: list[Any]) -> ast.Activity:
        kind, name = c[1]
        return ast.Activity(verb=c[0].word, asset_kind=kind, name=name, within_days=c[2], span=span)

    def asset_object(self, span: ast.Span, c: list[Any]) -> tuple[str | None, ast.Name | None]:
        return (c[0].word, self._name(c[1]))

    def any_asset_object(self, span: ast.Span, c: list[Any]) -> tuple[str | None, ast.Name | None]:
        return (c[0].word, None)

    def url_object(self, span: ast.Span, c: list[_Tok]) -> tuple[str | None, ast.Name | None]:
        return (None, self._name(c[0]))

    def within(self, span: ast.Span, c: list[_Tok]) -> int:
        return self._int(c[0])

    def days_since_criterion(self, span: ast.Span, c: list[Any]) -> ast.DaysSince:
        return ast.DaysSince(anchor=c[0].word, op=c[1].text, days=self._int(c[2]), span=span)

    # actions
    def add_to_list(self, span: ast.Span, c: list[_Tok]) -> ast.AddToList:
        return ast.AddToList(list=self._name(c[0]), span=span)

    def remove_from_list(self, span: ast.Span, c: list[_Tok]) -> ast.RemoveFromList:
        return ast.RemoveFromList(list=self._name(c[0]), span=span)

    def add_tag(self, span: ast.Span, c: list[_Tok]) -> ast.AddTag:
        return ast.AddTag(tag=self._name(c[0]), span=span)

    def remove_tag(self, span: ast.Span, c: list[_Tok]) -> ast.RemoveTag:
        return ast.RemoveTag(tag=self._name(c[0]), span=span)

    def adjust_score(self, span: ast.Span, c: list[_Tok]) -> ast.AdjustScore:
        return ast.AdjustScore(points=self._int(c[0]), span=span)

    def adjust_category_score(self, span: ast.Span, c: list[_Tok]) -> ast.AdjustCategoryScore:
        return ast.AdjustCategoryScore(points=self._int(c[0]), category=self._name(c[1]), span=span)

    def set_score(self, span: ast.Span, c: list[_Tok]) -> ast.SetScore:
        return ast.SetScore(value=self._int(c[0]), span=span)

    def assign(self, span: ast.Span, c: list[Any]) -> ast.Assign:
        return ast.Assign(to=c[0].word, name=self._name(c[1]), span=span)

    def assign_by_crm_rule(self, span: ast.Span, c: list[Any]) -> ast.AssignByCrmRule:
        return ast.AssignByCrmRule(span=span)

    def set_field(self, span: ast.Span, c: list[Any]) -> ast.SetField:
        return ast.SetField(field=self._name(c[0]), value=c[1], span=span)

    def increment_field(self, span: ast.Span, c: list[_Tok]) -> ast.IncrementField:
        return ast.IncrementField(field=self._name(c[0]), by=self._number(c[1]), span=span)

    def change_source_campaign(self, span: ast.Span, c: list[_Tok]) -> ast.ChangeSourceCampaign:
        return ast.ChangeSourceCampaign(campaign=self._name(c[0]), span=span)

    def add_to_crm_campaign(self, span: ast.Span, c: list[_Tok | None]) -> ast.AddToCrmCampaign:
        status = self._name(c[1]) if c[1] is not None else None
        return ast.AddToCrmCampaign(campaign=self._name(c[0]), status=status, span=span)  # type: ignore[arg-type]

    def create_crm_task(self, span: ast.Span, c: list[Any]) -> ast.CreateCrmTask:
        options: dict[str, Any] = {}
        for key, value, at in c[1] or ():
            if key in options:
                word = "due" if key == "due_days" else key  # as written: `due in 3 days`
                self._error("MR010", f"a CRM task has more than one `{word}`", at, "keep only one")
            options[key] = value
        return ast.CreateCrmTask(subject=self._text(c[0]), span=span, **options)

    def task_options(self, span: ast.Span, c: list[Any]) -> list[Any]:
        return [x for x in c if x is not None]

    def task_due(self, span: ast.Span, c: list[_Tok]) -> tuple[str, Any, ast.Span]:
        return ("due_days", self._int(c[0]), span)

    def task_priority(self, span: ast.Span, c: list[_Tok]) -> tuple[str, Any, ast.Span]:
        return ("priority", self._text(c[0]), span)

    def task_status(self, span: ast.Span, c: list[_Tok]) -> tuple[str, Any, ast.Span]:
        return ("status", self._text(c[0]), span)

    def task_owner(self, span: ast.Span, c: list[_Tok]) -> tuple[str, Any, ast.Span]:
        return ("owner", self._name(c[0]), span)

    def notify_user(self, span: ast.Span, c: list[_Tok]) -> ast.NotifyUser:
        return ast.NotifyUser(user=self._name(c[0]), span=span)

    def notify_assigned_user(self, span: ast.Span, c: list[Any]) -> ast.NotifyAssignedUser:
        return ast.NotifyAssignedUser(span=span)

    def send_autoresponder(self, span: ast.Span, c: list[_Tok]) -> ast.SendAutoresponder:
        return ast.SendAutoresponder(email=self._name(c[0]), span=span)

    def change_profile(self, span: ast.Span, c: list[_Tok]) -> ast.ChangeProfile:
        return ast.ChangeProfile(profile=self._name(c[0]), span=span)

    def mark_profile_criterion(self, span: ast.Span, c: list[Any]) -> ast.MarkProfileCriterion:
        return ast.MarkProfileCriterion(
            criterion=self._name(c[0]), profile=self._name(c[1]), state=c[2].word, span=span
        )

    def do_not_sync(self, span: ast.Span, c: list[Any]) -> ast.DoNotSync:
        return ast.DoNotSync(span=span)

    def allow_crm_recreate(self, span: ast.Span, c: list[Any]) -> ast.AllowCrmRecreate:
        return ast.AllowCrmRecreate(span=span)

    # scoring and grading
    def scoring(self, span: ast.Span, c: list[Any]) -> ast.Scoring:
        return ast.Scoring(rows=tuple(c), span=span)

    def score_row(self, span: ast.Span, c: list[_Tok]) -> ast.ScoreRow:
        words, points = c[:-1], c[-1]
        activity = ast.Name(
            text=" ".join(w.text for w in words),
            span=ast.Span(words[0].start, words[-1].end),
        )
        return ast.ScoreRow(activity=activity, points=self._int(points), span=span)

    def scoring_category(self, span: ast.Span, c: list[Any]) -> ast.ScoringCategory:
        return ast.ScoringCategory(name=self._name(c[0]), folders=c[1], span=span)

    def grading_profile(self, span: ast.Span, c: list[Any]) -> ast.GradingProfile:
        return ast.GradingProfile(
            default=c[0] is not None, name=self._name(c[1]), criteria=tuple(c[2:]), span=span
        )

    def grading_criterion(self, span: ast.Span, c: list[_Tok]) -> ast.GradingCriterion:
        return ast.GradingCriterion(name=self._name(c[0]), weight=int(c[1].text[0]), span=span)

    # sync
    def sync(self, span: ast.Span, c: list[Any]) -> ast.Sync:
        options: dict[str, Any] = {}
        spans: dict[str, ast.Span] = {}
        mappings: list[ast.SyncMap] = []
        for part in c[1:]:
            if isinstance(part, ast.SyncMap):
                mappings.append(part)
                continue
            key, value, where = part
            if key in options:
                self._error(
                    "MR013",
                    f"the sync block sets `{_SYNC_WORDS[key]}` twice",
                    where,
                    "keep only one",
                )
            options[key] = value
            spans[key] = where
        if "cadence" in options:
            options["every_minutes"], options["batch"], batch_at = options.pop("cadence")
            spans = {("every_minutes" if k == "cadence" else k): at for k, at in spans.items()}
            if batch_at is not None:
                spans["batch"] = batch_at
        return ast.Sync(
            crm=self._name(c[0]),
            mappings=tuple(mappings),
            span=span,
            option_spans=tuple(spans.items()),
            **options,
        )

    def sync_objects(self, span: ast.Span, c: list[_Tok]) -> tuple[str, Any, ast.Span]:
        return ("objects", tuple(self._name(t) for t in c), span)

    def match_by_email(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("match_by", "email", span)

    def match_by_crm_id(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("match_by", "crm id", span)

    def sync_precedence(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("precedence", (c[0].word, c[1].word), span)

    def sync_create(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("create_on_assignment", c[0].word, span)

    def sync_auto_create(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("auto_create", c[0].word == "on", span)

    def sync_cadence(self, span: ast.Span, c: list[_Tok | None]) -> tuple[str, Any, ast.Span]:
        every, batch = c[0], c[1]
        assert every is not None
        if batch is None:
            return ("cadence", (self._int(every), None, None), span)
        return (
            "cadence",
            (self._int(every), self._int(batch), ast.Span(batch.start, batch.end)),
            span,
        )

    def blanks_overwrite(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("blank_crm_values", "overwrite", span)

    def blanks_never_overwrite(self, span: ast.Span, c: list[Any]) -> tuple[str, Any, ast.Span]:
        return ("blank_crm_values", "never overwrite", span)

    def sync_map(self, span: ast.Span, c: list[Any]) -> ast.SyncMap:
        crm_type = self._name(c[2]) if c[2] is not None else None
        return ast.SyncMap(
            field=self._name(c[0]),
            crm_field=self._name(c[1]),
            crm_type=crm_type,
            prefer=c[3].word,
            span=span,
        )

    # settings
    def settings(self, span: ast.Span, c: list[Any]) -> ast.Settings:
        return ast.Settings(items=tuple(c), span=span)

    def setting(self, span: ast.Span, c: list[Any]) -> ast.Setting:
        return ast.Setting(name=self._name(c[0]), value=c[1], span=span)


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


# ------------------------------------------------------------------ fast path


class _Fallback(Exception):
    """The fast path cannot vouch for this text: let Lark's own parser decide.

    `at` is where the text stopped making sense to it (a syntax error, usually).
    """

    def __init__(self, *args: object, at: int | None = None) -> None:
        super().__init__(*args)
        self.at = at


# The regex terminals the fast lexer was written for. If the grammar changes any of
# them (or adds a terminal of another shape), the fast path switches itself off and
# every text goes through Lark, so a grammar change can cost speed but never meaning.
_KNOWN_PATTERNS = {
    "WS": "(?:[ \t\x0c\r\n])+",
    "COMMENT": "#[^\r\n]*",
    "NAME": "[a-z_][a-z0-9_]*",
    "INT": "[0-9]+",
    "SIGNED_INT": "[+-][0-9]+",
    "NUMBER": r"[+-]?[0-9]+(\.[0-9]+)?",
    "COMPARE": "(?:>=|<=|>|<)",
    "WEIGHT": r"[123]\/3",
    "GRADE": "[A-D][+-]?(?![A-Za-z0-9_])|F(?![A-Za-z0-9_])",
    "TIMESTAMP": (
        "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
    ),
    # Possessive: the group repeated a character at a time (`(...)*`) kept a backtracking
    # record each (150 bytes a character: 7 GB for a 50 MB string). Each alternative
    # starts with its own character and none is a quote: nothing is ever given back.
    "STRING": '"(?:[^"\\\\\r\n]++|\\\\["\\\\nt]|\\\\u[0-9a-fA-F]{4})*+"',
}
_KEYWORD_RE = re.compile(r"[a-z_][a-z0-9_]*")
_WORD_ALTERNATION_RE = re.compile(r"\(\?:([a-z_]+(?:\|[a-z_]+)*)\)")
_PUNCT_RE = re.compile(r"[\[\]{}():;,=<>-]+")

# What the master regex can match, one kind per group. A lexeme's key is its text for
# words that some terminal spells out and for punctuation, "NAME" for other words, and
# the kind for the rest; `_SAMPLES` gives the text that stands for a kind when asking
# Lark's state lexer what it makes of it.
_SAMPLES = {
    "NAME": "zq",
    "STRING": '""',
    "GRADE": "B+",
    "TIMESTAMP": "2026-01-01",
    "WEIGHT": "1/3",
    "DEC": "1.5",
    "INT": "1",
    "SDEC": "+1.5",
    "SINT": "+1",
}


class _FastParser:
    """Lark's LALR tables, driven by a one-regex lexer that builds the AST as it reduces.

    The same language as `lark_parser()`, token for token: one master regex splits the
    text (whitespace and comments skipped in the same match), and what a lexeme means
    in a parser state is asked once of Lark's own contextual lexer for that state, then
    remembered. A keyword is a keyword only where the state accepts it, exactly as in
    Lark; a lexeme Lark would read differently (`formhandler` where only `form` fits,
    `10.5` where only a whole number fits) is not guessed at: `parse` raises
    `_Fallback` and `parse_text` asks Lark. Syntax errors go the same way, so every
    error message and position comes from Lark.

    Reductions follow Lark's tree-building rules (anonymous tokens dropped, `_rule`s
    inlined, `?rule`s with one child collapsed, `[x]` placeholders) and call the same
    `_ToAst` methods, with the span Lark's `propagate_positions` would give.
    """

    def __init__(self, parser: Lark) -> None:
        frontend = parser.parser
        table = frontend.parser.parser.parse_table
        self._lexers = frontend.lexer.lexers
        self._start = table.start_states["start"]
        self._end = table.end_states["start"]
        rules: list[Any] = []
        rule_index: dict[Any, int] = {}
        self._actions: dict[int, dict[str, int]] = {}
        for state, row in table.states.items():
            actions = {}
            for symbol, (action, arg) in row.items():
                if action.name == "Shift":
                    actions[symbol] = arg
                else:
                    if arg not in rule_index:
                        rule_index[arg] = len(rules)
                        rules.append(arg)
                    actions[symbol] = ~rule_index[arg]
            self._actions[state] = actions
        self._rules = [self._plan(rule) for rule in rules]
        keep_all = any(rule.options.keep_all_tokens for rule in rules)
        self._kept = frozenset(
            sym.name
            for rule in rules
            for sym in rule.expansion
            if sym.is_term and (keep_all or not sym.filter_out)
        )
        self._table: dict[int, dict[str, str | None]] = {s: {} for s in table.states}
        self._master, self._kinds, self._words = self._master_regex(parser)

    @staticmethod
    def _plan(rule: Any) -> tuple[Any, ...]:
        """How one reduction builds its value: Lark's child filter, precomputed."""
        expansion = rule.expansion
        options = rule.options
        empty = options.empty_indices
        if empty:
            bits = "".join(str(int(b)) for b in empty)
            nones = [len(ones) for ones in bits.split("0")]
        else:
            nones = [0] * (len(expansion) + 1)
        include = []
        pending = 0
        for i, sym in enumerate(expansion):
            pending += nones[i]
            if options.keep_all_tokens or not (sym.is_term and sym.filter_out):
                include.append((i, not sym.is_term and sym.name.startswith("_"), pending))
                pending = 0
        trailing = pending + nones[len(expansion)]
        name = rule.alias or rule.origin.name
        inline = rule.origin.name.startswith("_")
        if inline and rule.alias:
            raise _Fallback(f"inlined rule {rule.origin.name} has an alias")
        expand1 = bool(options.expand1) and not rule.alias
        method = None if inline else _ToAst.method_for(name)
        return (len(expansion), rule.origin.name, tuple(include), trailing, inline, expand1, method)

    @staticmethod
    def _master_regex(parser: Lark) -> tuple[re.Pattern[str], list[str | None], frozenset[str]]:
        """The one regex for every lexeme, the key kind of each group, the spelled words."""
        words: set[str] = set()
        punct: set[str] = {">=", "<=", ">", "<"}
        for term in parser.terminals:
            pattern = term.pattern
            if pattern.flags:
                raise _Fallback(f"terminal {term.name} has regex flags")
            if pattern.type == "str":
                value = pattern.value
                if _KEYWORD_RE.fullmatch(value):
                    words.add(value)
                elif _PUNCT_RE.fullmatch(value):
                    punct.add(value)
                else:
                    raise _Fallback(f"terminal {term.name} has an unexpected shape")
            elif (alternation := _WORD_ALTERNATION_RE.fullmatch(pattern.value)) is not None:
                words.update(alternation.group(1).split("|"))
            elif _KNOWN_PATTERNS.get(term.name) != pattern.value:
                raise _Fallback(f"terminal {term.name} is not one the fast lexer knows")
            elif term.priority != (3 if term.name == "TIMESTAMP" else 0):
                raise _Fallback(f"terminal {term.name} has an unexpected priority")
        if set(parser.lexer_conf.ignore) != {"WS", "COMMENT"}:
            raise _Fallback("the grammar ignores other terminals")
        groups = [
            ("word", r"[a-z_][a-z0-9_]*+(?![A-Z])"),
            ("STRING", _KNOWN_PATTERNS["STRING"]),
            ("GRADE", _KNOWN_PATTERNS["GRADE"]),
            ("TIMESTAMP", _KNOWN_PATTERNS["TIMESTAMP"]),
            ("WEIGHT", _KNOWN_PATTERNS["WEIGHT"]),
            ("DEC", r"[0-9]++\.[0-9]++"),
            ("INT", r"[0-9]++"),
            ("SDEC", r"[+-][0-9]++\.[0-9]++"),
            ("SINT", r"[+-][0-9]++"),
            ("punct", "|".join(re.escape(p) for p in sorted(punct, key=len, reverse=True))),
            ("end", r"\Z"),
        ]
        master = re.compile(
            r"(?:[ \t\f\r\n]++|#[^\r\n]*+)*+(?:"
            + "|".join(f"(?P<{name}>{regex})" for name, regex in groups)
            + ")"
        )
        kinds: list[str | None] = [None] * (master.groups + 1)
        for name, index in master.groupindex.items():
            kinds[index] = name
        return master, kinds, frozenset(words)

    def _resolve(self, state: int, key: str) -> str | None:
        """The terminal Lark's lexer for `state` reads a lexeme of `key` as, if exactly it."""
        sample = _SAMPLES.get(key, key)
        try:
            token = self._lexers[state].next_token(LexerState(TextSlice(sample, 0, len(sample))))
        except (UnexpectedCharacters, EOFError):
            term = None
        else:
            term = token.type if token.end_pos == len(sample) else None
        self._table[state][key] = term
        return term

    def parse(self, text: str, builder: _ToAst) -> ast.File:
        """The file's AST, built by `builder`; raises `_Fallback` to let Lark decide."""
        match = self._master.scanner(text).match  # type: ignore[attr-defined]
        kinds, words, kept = self._kinds, self._words, self._kept
        table, actions, rules, resolve = self._table, self._actions, self._rules, self._resolve
        span_of, no_span, tok = ast.Span, ast.NO_SPAN, _Tok
        state, end_state = self._start, self._end
        states: list[int] = [state]
        values: list[Any] = []
        starts: list[int | None] = []
        ends: list[int | None] = []
        at_end = False
        start = end = 0
        while True:
            m = match()
            if m is None:
                raise _Fallback(at=end)
            group = m.lastindex
            kind = kinds[group]  # type: ignore[index]
            if kind == "end":
                at_end, term = True, "$END"
            else:
                lexeme = m.group(group)  # type: ignore[arg-type]
                end = m.end()
                start = end - len(lexeme)
                if kind == "word":
                    key = lexeme if lexeme in words else "NAME"
                elif kind == "punct":
                    key = lexeme
                else:
                    key = kind  # type: ignore[assignment]
                row = table[state]
                term = row[key] if key in row else resolve(state, key)  # type: ignore[assignment]
                if term is None:
                    raise _Fallback(at=start)
            while True:
                act = actions[state].get(term)
                if act is None:
                    raise _Fallback(at=len(text) if at_end else start)
                if act >= 0:
                    break
                size, origin, include, trailing, inline, expand1, method = rules[~act]
                if size:
                    vals = values[-size:]
                    s0 = starts[-size]
                    e0 = ends[-1]
                    if s0 is None or e0 is None:  # an empty rule at an edge
                        s0 = next((s for s in starts[-size:] if s is not None), None)
                        e0 = next((e for e in reversed(ends[-size:]) if e is not None), None)
                    del values[-size:], starts[-size:], ends[-size:], states[-size:]
                else:
                    vals, s0, e0 = [], None, None
                out: list[Any] = []
                for i, expand, nones in include:
                    if nones:
                        out.extend([None] * nones)
                    if not expand:
                        out.append(vals[i])
                    elif out:
                        out.extend(vals[i])
                    else:
                        out = vals[i]  # left recursion: grow the list in place
                if trailing:
                    out.extend([None] * trailing)
                if inline:
                    value = out
                elif expand1 and len(out) == 1:
                    value = out[0]
                else:
                    value = method(builder, no_span if s0 is None else span_of(s0, e0 or s0), out)
                state = actions[states[-1]][origin]
                states.append(state)
                values.append(value)
                starts.append(s0)
                ends.append(e0)
                if at_end and state == end_state:
                    return value  # type: ignore[no-any-return,return-value]
            if at_end:
                raise _Fallback(at=len(text))
            states.append(act)
            state = act
            values.append(tok(term, lexeme, start, end) if term in kept else None)
            starts.append(start)
            ends.append(end)


@functools.cache
def _fast_parser() -> _FastParser | None:
    """The fast path, or None if it cannot be built (Lark's standard path then does it all).

    Building it reads Lark's internals (parse tables, the contextual lexer); any
    failure there, from a terminal it was not written for to another Lark version's
    layout, turns the fast path off rather than failing the parse.
    """
    try:
        return _FastParser(lark_parser())
    except Exception:  # a grammar or a Lark it was not written for: Lark's own path
        return None


# ------------------------------------------------------------------ errors

TERMINAL_NAMES = {
    "STRING": "a quoted string",
    "NAME": "a field name",
    "INT": "a whole number",
    "SIGNED_INT": "a signed number like +25 or -10",
    "_WHOLE": "a whole number like 100 or -10",
    "NUMBER": "a number",
    "TIMESTAMP": "a date like 2026-11-02",
    "COMPARE": "a comparison (<, <=, >, >=)",
    "GRADE": "a grade like B-",
    "WEIGHT": "a weight (1/3, 2/3 or 3/3)",
    "DEFAULT": "'default'",
    "_DAYS": "'days'",
    "_TIMES": "'times'",
    "_MINUTES": "'minutes'",
    "$END": "the end of the file",
}

# Known mistakes: the parser state at the error is matched against these snippets.
ERROR_EXAMPLES: dict[str, list[str]] = {
    'compare a field with `is` (`company is "Acme"`); `=` only sets a field in actions': [
        'automation rule "r" priority 1 { when all { company = "Acme" } }',
        'on submit of form "f" { if company = "Acme" { add tag "t" } }',
        'dynamic list "d" { when any { company = "Acme" } }',
    ],
    'compare a field with `is`: `company is "Acme"`': [
        'automation rule "r" priority 1 { when all { company: "Acme" } }',
        'on submit of form "f" { if company: "Acme" { add tag "t" } }',
    ],
    "compare a score with <, <=, > or >= (`score >= 50`), or `score between 50 and 100`": [
        'automation rule "r" priority 1 { when all { score = 50 } }',
        'on submit of form "f" { if score = 50 { add tag "t" } }',
    ],
    'automation rules need an explicit priority: `automation rule "name" priority 10 { ... }`': [
        'automation rule "r" { when all { } }',
    ],
    'put the actions in braces: `then { add to list "MQL" }`': [
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
    'a page action needs a URL: `page action "name" on "example.com/page" { ... }`': [
        'page action "p" { score +1 }',
    ],
    'say which asset: `on submit of form "Name" { ... }`': [
        'on form "f" { score +1 }',
        'on submit form "f" { score +1 }',
    ],
    "names of lists, tags, users and assets are quoted strings": [
        "list MQL",
        "list A",
        "tag hot",
        "user alan",
        "form f",
        "on submit of form f { score +1 }",
        'on submit of form "f" { add to list MQL }',
        'on submit of form "f" { assign to user alan }',
    ],
    "grades are capital letters with an optional + or -, like B- or A+": [
        'automation rule "r" priority 1 { when all { grade >= b } }',
    ],
    "conditions combine in a group, not with `and`: `all { employees > 500; score > 10 }`": [
        'on submit of form "f" { if employees > 500 and score > 10 { score +1 } }',
        'automation rule "r" priority 1 { when all { employees > 500 and score > 10 } }',
        'automation rule "r" priority 1 { when all { tagged "a" and tagged "b" } }',
    ],
    "either of two conditions is a group, not `or`: `any { employees > 500; score > 10 }`": [
        'on submit of form "f" { if employees > 500 or score > 10 { score +1 } }',
        'automation rule "r" priority 1 { when all { employees > 500 or score > 10 } }',
    ],
    'a time window is `within 7 days`; `in` starts `in list "Name"`': [
        'automation rule "r" priority 1 { when all { visited "x.com" in the last 7 days } }',
        'automation rule "r" priority 1 { when all { submitted form "f" in last 7 days } }',
    ],
    "a time window counts days: `within 30 days`": [
        'automation rule "r" priority 1 { when all { visited "x.com" within 30 } }',
        'automation rule "r" priority 1 { when all { visited "x.com" within 2 weeks } }',
    ],
    "this `}` closes no block: delete it, or look above for a block closed twice": [
        'list "A"\n}',
    ],
    "`;` separates statements inside a block; put each top-level item on its own line": [
        'list "A"; list "B"',
    ],
    'an automation rule\'s actions follow `then`: `then { add to list "MQL" }`': [
        'automation rule "r" priority 1 { when all { score > 1 } { add to list "A" } }',
    ],
    '`if` has no `then`: its actions follow in braces, `if score > 10 { add tag "hot" }`': [
        'on submit of form "f" { if score > 1 then { score +1 } }',
        'on submit of form "f" { if company is "Acme" then { score +1 } }',
    ],
    'completion and page actions have no `then`: `on submit of form "F" { add tag "t" }`': [
        'on submit of form "f" then { score +1 }',
        'page action "p" on "x.com" then { score +1 }',
    ],
    "`then` goes inside its rule's braces: look above for a `}` that closes the rule early": [
        'automation rule "r" priority 1 { when all { score > 1 } } then { score +1 }',
    ],
    "there is no `else`: write a second `if` with the opposite condition": [
        'on submit of form "f" { if score > 1 { score +1 } else { score +2 } }',
    ],
    'strings are in double quotes: "MQL"': [
        "list 'MQL'",
        "on submit of form 'f' { score +1 }",
    ],
    'a field is different from a value with `is not`: `company is not "Acme"`': [
        'automation rule "r" priority 1 { when all { company != "Acme" } }',
    ],
}

# Words that are never part of the language, and what to write instead; used when the
# parser state matches no example above.
WORD_HINTS = {
    "and": "conditions combine in a group, not with `and`: `all { employees > 500; score > 10 }`",
    "or": "either of two conditions is a group, not `or`: `any { employees > 500; score > 10 }`",
    "else": "there is no `else`: write a second `if` with the opposite condition",
    "elif": "there is no `elif`: write a second `if` with its own condition",
    "then": "only automation and segmentation rules have `then`, inside their braces after"
    " `when`; `on`, `page action` and `if` blocks hold their actions directly",
}

# Characters that look like the language's own but are not, and what to write.
_QUOTE_LOOKALIKES = (
    "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a\uff02'`\u2032\u2033"
)
_MINUS_LOOKALIKES = "\u2212\u2010\u2011\u2012\u2013\u2014\u2015\ufe63\uff0d"
_VALID_ESCAPE = re.compile(r'\\(?:["\\nt]|u[0-9a-fA-F]{4})')
_BAD_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{0,3}|.?)", re.S)
_LINE_END = re.compile(r"[\r\n]")
_QUOTE_OR_ESCAPE = re.compile(r'["\\]')  # what ends a string's plain run of characters
_BARE_NAME = re.compile(r'[^\s{}\[\]();,"#]+')

# How each statement is written, by its first word: the hint of a syntax error in a
# statement that no known mistake explains. Where a word starts two statements, the
# terminals the parser expected decide (`_template_for`).
STATEMENT_TEMPLATES: dict[str, str] = {
    "include": 'include "library/pardot-default-scoring"',
    "field": 'field company_size: picklist ["1-10", "11-50"]',
    "user": 'user "alan@getcloudy.com"',
    "group": 'group "Sales" ["alan@getcloudy.com", "sam@getcloudy.com"]',
    "queue": 'queue "Inside Sales"',
    "list": 'list "MQL"',
    "tag": 'tag "consult-request"',
    "form": 'form "Contact us" folder "Forms"',
    "landing": 'landing page "Consult landing"',
    "file": 'file "Buyer Guide.pdf" folder "Content"',
    "custom": 'custom redirect "Pricing CTA"',
    "email": 'email "Newsletter"',
    "campaign": 'campaign "Trade show 2026" cost 3000',
    "crm": 'crm campaign "Consult 2026" statuses ["Sent", "Responded"]',
    "on": 'on submit of form "Contact us" { add tag "contact" }',
    "page": 'page action "Pricing" on "example.com/pricing" { score +5 }',
    "automation": (
        'automation rule "MQL" priority 10 { when all { score > 100 } then { add to list "MQL" } }'
    ),
    "segmentation": 'segmentation rule "Hot" { when all { score > 100 } then { add tag "hot" } }',
    "dynamic": 'dynamic list "Engaged" { when any { score > 50; tagged "hot" } }',
    "scoring": "scoring { form submission +50 }",
    "default": 'default grading profile "Default" { criterion "Industry" 2/3 }',
    "grading": 'grading profile "Default" { criterion "Industry" 2/3 }',
    "criterion": 'criterion "Industry" 2/3',
    "sync": "sync salesforce { match by email; every 5 minutes }",
    "settings": 'settings { grade_start = "D" }',
    "if": 'if company is "Acme" { add tag "acme" }',
    "when": "when all { score > 100 }",
    "then": 'then { add to list "MQL" }',
    "repeat": "repeat every 30 days at most 3 times",
    "add": 'add to list "MQL"`, `add tag "hot"` or `add to crm campaign "Consult" status "Sent"',
    "remove": 'remove from list "MQL"` or `remove tag "hot"',
    "set": 'set company = "Acme"` or `set score to 0',
    "assign": 'assign to user "alan@getcloudy.com"` (or `group`, `queue`) or `assign by crm rule',
    "increment": "increment consult_requests by 1",
    "change": 'change source campaign to "Website"` or `change profile to "Default"',
    "create": 'create crm task "Call back" (due in 3 days, priority "High")',
    "notify": 'notify user "alan@getcloudy.com"` or `notify assigned user',
    "send": 'send autoresponder "Thanks"',
    "mark": 'mark "Industry" of profile "Default" as matches',
    "do": "do not sync",
    "allow": "allow crm recreate",
    "grade": "grade >= B",
    "in": 'in list "MQL"',
    "tagged": 'tagged "hot"',
    "assigned": 'assigned` or `assigned to user "alan@getcloudy.com"',
    "profile": 'profile is "Default"',
    "opted": "opted out",
    "days": "days since last activity > 30",
    "not": 'not in list "Customers"',
    "all": 'all { score > 10; tagged "hot" }',
    "any": 'any { score > 10; tagged "hot" }',
    "submitted": 'submitted form "Contact us" within 30 days',
    "opened": 'opened email "Newsletter" within 30 days',
    "clicked": 'clicked email "Newsletter"',
    "downloaded": 'downloaded file "Buyer Guide.pdf"',
    "visited": 'visited "example.com/pricing" within 7 days',
    "viewed": 'viewed landing page "Consult landing"',
    "objects": "objects lead, contact",
    "match": "match by email",
    "prefer": "prefer contact over lead",
    "every": "every 5 minutes batch 200",
    "map": 'map company <-> "Company" prefer crm',
    "blank": "blank crm values never overwrite",
    "auto": "auto create prospects on",
}
_CRITERION_WORDS = (
    *("grade", "tagged", "assigned", "profile", "opted", "days", "submitted", "opened"),
    *("clicked", "downloaded", "visited", "viewed"),
)
_SCORE_ACTION = 'score +10` or `score +10 in category "Content"'
_SCORE_CRITERION = 'score > 100`, `score between 50 and 100` or `score in category "Content" >= 20'
_FIELD_CRITERION = 'company is "Acme"`, `employees > 500` or `job_title contains "VP"'
_SETTING = 'grade_start = "D"'


def _statement_start(err: UnexpectedInput) -> Token | None:
    """The first word of the statement the parser was in when it failed, if any.

    The parser's value stack ends with the tokens and finished parts (subtrees) of the
    statements still open: a `{`, `;`, `(` or `}` before them, or the list of the items
    or statements before (a `__..._star` subtree), marks where the innermost began. An
    asset declaration starts with its kind, a subtree (`kind_landing_page`)."""
    stack = getattr(getattr(err, "state", None), "value_stack", None) or ()
    run: list[Any] = []
    for value in reversed(stack):
        if isinstance(value, Token) and value.type in ("LBRACE", "SEMICOLON", "LPAR", "RBRACE"):
            break
        if isinstance(value, Tree) and str(value.data).startswith("__"):
            break
        run.append(value)
    run.reverse()
    if run and isinstance(run[0], Tree) and str(run[0].data) in _KIND_WORDS:
        return Token("KIND", _KIND_WORDS[str(run[0].data)])
    return next((v for v in run if isinstance(v, Token)), None)


_KIND_WORDS = {
    "kind_form": "form",
    "kind_form_handler": "form",
    "kind_landing_page": "landing",
    "kind_file": "file",
    "kind_custom_redirect": "custom",
    "kind_email": "email",
}


def _template_for(word: Token, expected: set[str]) -> str | None:
    if word.type == "NAME":
        if expected & {"EQUAL"}:
            return _SETTING
        if expected & {"SIGNED_INT"}:
            return "form submission +50"
        if expected & {"IS", "COMPARE", "BETWEEN", "CONTAINS", "DOES", "STARTS", "ENDS"}:
            return _FIELD_CRITERION
        return None
    if word.type == "SCORE":
        if expected & {"SIGNED_INT", "TO"} and "INT" not in expected:  # INT: a criterion's
            return _SCORE_ACTION
        return _SCORE_CRITERION
    if word.type in ("CAMPAIGN", "CRM", "PROFILE") and "IS" in expected:
        return {"CAMPAIGN": 'campaign is "Website"', "PROFILE": 'profile is "Default"'}.get(
            word.type, "crm status is lead"
        )
    if word.type == "CRM" and expected & {"STATUS"}:
        return "crm status is lead"
    return STATEMENT_TEMPLATES.get(str(word))


def _template_hint(err: UnexpectedInput) -> str | None:
    """`write it like: ...` for the statement the error is in."""
    word = _statement_start(err)
    if word is None:
        return None
    if word.type == "NAME":  # a field, or a misspelt criterion word read as one
        close = difflib.get_close_matches(str(word), _CRITERION_WORDS, n=1, cutoff=0.75)
        if close:
            # not "did you mean": the editor's quick fix would put the word at the caret
            return f"`{word}` reads as a field; to test `{close[0]}`, write it like: " + (
                f"`{STATEMENT_TEMPLATES[close[0]]}`"
            )
    expected = getattr(err, "expected", None) or getattr(err, "allowed", None) or ()
    template = _template_for(word, set(expected))
    if template is None:
        return None
    return f"write it like: `{template}`"


# What may start here, for a token that starts no statement the parser expected there:
# (terminals that tell the place, hint).
_PLACE_HINTS: tuple[tuple[frozenset[str], str], ...] = (
    (
        frozenset({"ADD", "ASSIGN", "NOTIFY"}),
        'an action starts with a verb: `add to list "MQL"`, `add tag "hot"`, '
        '`score +10`, `assign to user "…"`, `notify assigned user`, `set company = "…"`…',
    ),
    (
        frozenset({"TAGGED", "OPTED"}),
        'a criterion starts with what it tests: `in list "MQL"`, `tagged "hot"`, '
        '`score > 50`, `submitted form "Contact us"`, `company is "Acme"`…',
    ),
    (
        frozenset({"WHEN", "THEN"}),
        "a rule holds `when all { … }`, `then { … }`, `repeat every 30 days` and `paused`",
    ),
    (
        frozenset({"CRITERION"}),
        'a grading profile holds criteria: `criterion "Industry" 2/3`',
    ),
    (
        frozenset({"OBJECTS", "MATCH", "MAP"}),
        "a sync block holds `objects lead, contact`, `match by email`, `every 5 minutes`, "
        '`map company <-> "Company" prefer crm`…',
    ),
)


def _place_hint(err: UnexpectedInput) -> str | None:
    """What may start where the parser failed, when the failing token starts nothing."""
    expected = set(getattr(err, "expected", None) or getattr(err, "allowed", None) or ())
    for needed, hint in _PLACE_HINTS:
        if needed <= expected:
            return hint
    # a block's own statements: what opened the innermost `{` tells which block it is
    stack = list(getattr(getattr(err, "state", None), "value_stack", None) or ())
    opens = [i for i, v in enumerate(stack) if isinstance(v, Token) and v.type == "LBRACE"]
    if opens and opens[-1] > 0 and isinstance(opener := stack[opens[-1] - 1], Token):
        return _BLOCK_HINTS.get(opener.type)
    return None


_CRITERION_HINT = _PLACE_HINTS[1][1]
_BLOCK_HINTS = {
    "ALL": _CRITERION_HINT,
    "ANY": _CRITERION_HINT,
    "SETTINGS": 'a setting is a name, `=` and a value: `grade_start = "D"`',
    "SCORING": "a scoring row is an activity and a signed number: `form submission +50`",
}


def _character_hint(text: str, pos: int, err: UnexpectedInput) -> str | None:
    """What an unexpected character was probably meant to be."""
    ch = text[pos] if pos < len(text) else ""
    allowed = set(getattr(err, "allowed", None) or ())
    if ch and ch in _QUOTE_LOOKALIKES:
        return 'strings are in straight double quotes: "MQL"'
    if ch and ch in _MINUS_LOOKALIKES:
        return f"use the ASCII minus sign '-' (this is U+{ord(ch):04X})"
    if ch == "/" and text.startswith(("//", "/*"), pos):
        return "comments start with `#` and run to the end of the line"
    if ch == "!":
        return (
            'there is no `!=`: test a field with `is not` (`company is not "Acme"`), '
            'or put `not` before a criterion (`not in list "MQL"`)'
        )
    if ch == "." and pos > 0 and text[pos - 1].isdigit() and allowed.isdisjoint({"NUMBER"}):
        return "a whole number goes here, without a decimal point"
    if ch.isspace() and ch not in " \t\r\n\f":
        return f"replace it with an ordinary space (this is U+{ord(ch):04X})"
    if allowed == {"STRING"}:
        return 'names are quoted strings: "MQL"'
    return None


_CLOSERS = {"RSQB": "list", "RPAR": "`(`"}
_BARE_WORD = re.compile(r"[a-z_][a-z0-9_]*")
_STRING_LIST_HINT = (
    "a list is quoted strings separated by ',', closed with ']': `[\"VP\", \"CEO\"]`"
)
_TASK_OPTIONS_HINT = (
    'task options are `due in 3 days`, `priority "High"`, `status "Not Started"` and'
    ' `owner "alan@getcloudy.com"`, separated by \',\': `(due in 3 days, priority "High")`'
)


_UNCLOSED_TASK_OPTIONS_HINT = (
    "the task options are not closed: end them with ')': `(due in 3 days, priority \"High\")`"
)


def _task_options_hint(err: UnexpectedInput) -> str | None:
    """An error inside `create crm task "…" ( … )`, the only parentheses of the language."""
    stack = getattr(getattr(err, "state", None), "value_stack", None) or ()
    for value in reversed(stack):
        if isinstance(value, Token) and value.type in ("RPAR", "LBRACE", "SEMICOLON"):
            return None  # `( … )` closed, or not in one
        if isinstance(value, Token) and value.type == "LPAR":
            if _unclosed(err, value):
                return _UNCLOSED_TASK_OPTIONS_HINT
            return _TASK_OPTIONS_HINT
    return None


def _unclosed(err: UnexpectedInput, lpar: Token) -> bool:
    """Whether the error is past the end of the `( … )` it is in: a `}` or a later line,
    where `)` would do."""
    expected = getattr(err, "expected", None) or getattr(err, "allowed", None) or ()
    if "RPAR" not in expected:
        return False
    tok = getattr(err, "token", None)
    line = tok.line if isinstance(tok, Token) else getattr(err, "line", None)
    return (isinstance(tok, Token) and tok.type == "RBRACE") or (
        line is not None and lpar.line is not None and line > lpar.line
    )


def _token_hint(err: UnexpectedToken, text: str) -> str | None:
    """What an unexpected token that no known mistake explains was probably meant to be."""
    tok = err.token
    expected = set(err.expected)
    word = str(tok)
    # what is not reduced yet: a list or task options just closed is still `[` ... `]`
    stack = getattr(getattr(err, "state", None), "value_stack", None) or ()
    types = [v.type for v in stack if isinstance(v, Token)]
    if "STRING" in expected and tok.type not in ("STRING", "$END") and _WORD_RE.fullmatch(word):
        bare = _BARE_NAME.match(text, tok.start_pos or 0)
        return f'names are quoted strings: "{bare.group() if bare else word}"'
    if tok.type in ("SIGNED_INT", "NUMBER") and expected == {"INT"} and word[:1] in "+-":
        return f"a whole number 0 or more goes here, without a sign: {word.lstrip('+-')}"
    if "TIMESTAMP" in expected and tok.type in ("NUMBER", "INT", "SIGNED_INT"):
        return "write a date as YYYY-MM-DD (`2026-03-01`), a time as `2026-03-01T09:30:00Z`"
    if tok.type == "STRING" and "COMMA" in expected:
        return "separate the items with ','"
    units = {"_DAYS": "days", "_TIMES": "times", "_MINUTES": "minutes"}
    if len(expected) == 1 and (unit := units.get(next(iter(expected)))) is not None:
        return f"say the unit after the number: `3 {unit}`"
    if tok.type == "COMMA" and "COMMA" not in expected and expected & {"STRING", "NAME"}:
        return "there is nothing before this ',': delete it"
    if tok.type == "SEMICOLON":
        return "a ';' ends a statement: there is none before this one; delete it"
    if expected == {"NAME"} and tok.type == "STRING":
        inner = word[1:-1]
        if _BARE_WORD.fullmatch(inner.lower()):
            return f"this name is written bare, without quotes: {inner.lower()}"
        return "a bare name goes here (lowercase letters, digits and _), without quotes"
    last = getattr(stack[-1], "type", None) if stack else None
    if expected == {"NAME"} and last == "COMMA":
        return "a name follows each ',': write one, or delete the ','"
    if tok.type in _CLOSERS and tok.type not in expected:
        opener = "LSQB" if tok.type == "RSQB" else "LPAR"
        if types.count(opener) <= types.count(tok.type):
            return f"this `{word}` closes no {_CLOSERS[tok.type]}: delete it"
    if "RSQB" in expected and expected <= {"COMMA", "RSQB", "STRING"}:
        return _STRING_LIST_HINT
    if tok.type == "LBRACE" and "LBRACE" not in expected:
        return 'this `{` opens no block: a block follows a rule\'s head (`on submit of form "F" {`)'
    if last == "RSQB" and tok.type == "STRING":
        return "to add this string to the list, put it inside the brackets, after a ','"
    top_level = {"AUTOMATION", "INCLUDE", "FIELD"} <= expected  # the item before may end here
    if not top_level and last == "RSQB":
        # Right after a list `[…]`, what opened no block is at the top level.
        if types.count("LBRACE") <= types.count("RBRACE"):
            top_level = True
        else:
            return (
                "the list `[…]` ends the statement before this: what follows it must start"
                " a new statement"
            )
    if top_level:
        return (
            "a top-level item starts with a keyword (`list`, `form`, `on`, `automation rule`, "
            "…): is the item before it complete?"
        )
    if "LBRACE" in expected and len(expected) <= 2 and tok.type != "LBRACE":
        return "a block starts with '{' here"
    return None


def _trigger_hint(word: str, expected: set[str]) -> str | None:
    """`on open of email`: completion actions run on a submit, a click or a download, as
    Pardot's do; opens and views are read by an automation rule."""
    patterns = _terminal_patterns()
    if not any(patterns.get(e) == "click" for e in expected):
        return None
    lower = word.lower()
    if lower in ("open", "opens", "opened"):
        example = 'opened email "E"'
    elif lower in ("view", "views", "viewed", "visit", "visits", "visited"):
        example = 'viewed landing page "P"'
    else:
        return None
    return (
        "completion actions run on a submit, a click or a download; for this, use an"
        f" automation rule: `when all {{ {example} }}`"
    )


def _keyword_case_hint(word: str, expected: set[str]) -> str | None:
    """`LIST` or `List` for `list`: keywords are lowercase."""
    patterns = _terminal_patterns()
    lower = word.lower()
    if lower != word and any(patterns.get(e) == lower for e in expected):
        return f"keywords are lowercase: '{lower}'"
    return None


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


def _mistaken_word(err: UnexpectedInput) -> str | None:
    """The word of `WORD_HINTS` an error is about: the unexpected token itself (`else`),
    or a bare name just before it, which the parser took for a field (`or` in
    `tagged "a" or tagged "b"`)."""
    if not isinstance(err, UnexpectedToken):
        return None
    if str(err.token) in WORD_HINTS:
        return str(err.token)
    stack = getattr(getattr(err, "state", None), "value_stack", None) or ()
    last = stack[-1] if stack else None
    if isinstance(last, Token) and last.type == "NAME" and str(last) in WORD_HINTS:
        return str(last)
    return None


def _hint_for(err: UnexpectedInput, text: str) -> str | None:
    key = _state_key(err)
    if key is None:
        return None
    word = _mistaken_word(err)
    for label, example in _example_errors():
        if _state_key(example) != key or type(example) is not type(err):
            continue
        if isinstance(err, UnexpectedToken):
            # An example about a word (`or`, `then`) fits that word alone, whatever
            # follows it; another word in its place (a NAME too) is another mistake.
            example_word = _mistaken_word(example)
            if example_word is not None:
                if example_word == word:
                    return label
            elif example.token.type == err.token.type:  # type: ignore[attr-defined]
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


def _expected_phrase(expected: Iterable[str], name: str = TERMINAL_NAMES["NAME"]) -> str:
    """The expected terminals in words; `name` says what a bare name stands for there."""
    expected = set(expected)
    if {"INT", "SIGNED_INT"} <= expected:  # a score in a criterion: signed or not
        expected -= {"INT", "SIGNED_INT"}
        expected.add("_WHOLE")
    words = sorted({name if e == "NAME" else _describe_terminal(e) for e in expected})
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
# A number written with an exponent: the grammar reads `1e3` as 1 and a name `e3`.
_EXPONENT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?[eE][+-]?\d+(?![\w.])")


def _exponent_near(text: str, pos: int, path: str) -> Diagnostic | None:
    """MR001 on a number with an exponent that an error at `pos` lies in or just follows."""
    for m in _EXPONENT.finditer(text, max(0, pos - 64), min(len(text), pos + 64)):
        if m.start() <= pos and (pos < m.end() or not text[m.end() : pos].strip()):
            number = m.group()
            return Diagnostic(
                code="MR001",
                severity=Severity.ERROR,
                path=path,
                start=m.start(),
                end=m.end(),
                message=f"unexpected '{number}': not a number",
                hint=f"write numbers out in full, without an exponent: `{_written_out(number)}`",
            )
    return None


def _written_out(number: str) -> str:
    """`1e3` as the grammar writes it (`1000`); a huge or tiny one as it is."""
    value = float(number)
    if value == 0:
        return "0"
    if not 1e-6 <= abs(value) <= 1e15:
        return number
    return f"{value:f}".rstrip("0").rstrip(".") or "0"


def _end_of_file_hint(expected: Iterable[str]) -> str:
    """What a file that ends too soon most likely lacks, from what the parser expected."""
    wanted = set(expected)
    if "RBRACE" in wanted:
        return "a block may be missing its closing '}'"
    if "RSQB" in wanted:
        return "a list may be missing its closing ']'"
    if "RPAR" in wanted:
        return "a '(' may be missing its closing ')'"
    return "the file ends in the middle of a statement: complete it or remove it"


def _narrow_expected(err: UnexpectedInput) -> None:
    """Keep, of what the parser state lists as expected, what it would really accept.

    An LALR state that ends a construct used in several places (a `[...]` list closes
    a picklist, a group, campaign statuses, scoring folders) lists every follower of
    every place; only carrying out its reductions on the real stack tells which one
    follows here. Lark's interactive parser does that for each candidate.
    """
    parser = getattr(err, "interactive_parser", None)
    if parser is None:
        return
    if isinstance(err, UnexpectedCharacters):
        # Characters no terminal matches: the lexer's own list says what could, but it
        # folds the keywords a name could spell into NAME (`{ @ }` in a criteria group
        # "expected '}' or a field name", not `score`, `tagged`...): ask the parser.
        if "NAME" not in (err.allowed or ()):
            return
        try:
            accepted = set(parser.accepts()) - {"$END"}
        except Exception:  # an error state Lark cannot replay: keep the lexer's list
            return
        err.allowed = set(err.allowed) | accepted
        return
    if not isinstance(err, UnexpectedToken):
        return
    try:
        accepted = set(parser.accepts())
    except Exception:  # an error state Lark cannot replay: keep the table's list
        return
    if accepted:
        err.expected = accepted


def _name_meaning(err: UnexpectedInput) -> str:
    """What a bare name (the NAME terminal) stands for where the error is."""
    stack = getattr(getattr(err, "state", None), "value_stack", None) or ()
    types = [v.type for v in stack if isinstance(v, Token)]
    last = types[-1] if types else ""
    if last == "SYNC":
        return "the CRM's name, like salesforce"
    if last == "AS":
        return "a CRM field type, like text or number"
    if last == "COLON" and types[-3:-2] == ["FIELD"]:
        return "a field type (" + ", ".join(FIELD_TYPES) + ")"
    if last == "OBJECTS" or (last == "COMMA" and "OBJECTS" in types[-4:]):
        return "a CRM object, like lead or contact"
    block = _open_block(types)
    if block == "SETTINGS":
        return "a setting's name"
    if block == "SCORING":
        return "a scoring row's name (like `page view`)"
    return TERMINAL_NAMES["NAME"]


def _open_block(types: list[str]) -> str | None:
    """The keyword that opened the innermost block still open, if any."""
    depth = 0
    for i in range(len(types) - 1, -1, -1):
        if types[i] == "RBRACE":
            depth += 1
        elif types[i] == "LBRACE":
            if depth == 0:
                return types[i - 1] if i else None
            depth -= 1
    return None


def _syntax_diagnostic(err: UnexpectedInput, text: str, path: str) -> Diagnostic:
    _narrow_expected(err)
    name = _name_meaning(err)
    hint = _hint_for(err, text)
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            start = end = len(text)
            return Diagnostic(
                code="MR003",
                severity=Severity.ERROR,
                path=path,
                start=start,
                end=end,
                message=f"unexpected end of file; expected {_expected_phrase(err.expected, name)}",
                hint=hint or _end_of_file_hint(err.expected),
            )
        start = tok.start_pos or 0
        end = tok.end_pos or start + 1
        exponent = _exponent_near(text, start, path)
        if exponent is not None:
            return exponent
        if hint is None:
            hint = (
                WORD_HINTS.get(str(tok))
                or _trigger_hint(str(tok), set(err.expected))
                or _keyword_case_hint(str(tok), set(err.expected))
                or _did_you_mean(str(tok), err.expected)
                or _token_hint(err, text)
                or _task_options_hint(err)
                or _template_hint(err)
                or _place_hint(err)
            )
        return Diagnostic(
            code="MR001",
            severity=Severity.ERROR,
            path=path,
            start=start,
            end=end,
            message=f"unexpected {_token_phrase(tok)}; expected "
            + _expected_phrase(err.expected, name),
            hint=hint,
        )
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        if ch == '"':
            return _string_diagnostic(text, pos, path)
        exponent = _exponent_near(text, pos, path)
        if exponent is not None:
            return exponent
        allowed = set(err.allowed or ())
        expected = ("expected " + _expected_phrase(allowed, name)) if allowed else None
        word = _WORD_RE.match(text, pos)
        if word is not None:
            shown = word.group()
            if len(shown) > 30:
                shown = shown[:27] + "..."
            if hint is None and "NAME" in allowed and shown.lower() != shown:
                hint = _keyword_case_hint(word.group(), allowed) or (
                    f"field names are lowercase: '{shown.lower()}'"
                )
            return Diagnostic(
                code="MR002",
                severity=Severity.ERROR,
                path=path,
                start=pos,
                end=word.end(),
                message=f"unexpected '{shown}'" + (f"; {expected}" if expected else ""),
                hint=hint
                or WORD_HINTS.get(word.group())
                or _trigger_hint(word.group(), allowed)
                or _keyword_case_hint(word.group(), allowed)
                or _did_you_mean(word.group(), allowed)
                or _template_hint(err),
            )
        if not ch.isprintable():
            return Diagnostic(
                code="MR002",
                severity=Severity.ERROR,
                path=path,
                start=pos,
                end=pos + 1,
                message=f"unexpected invisible character U+{ord(ch):04X}",
                hint=hint
                or _character_hint(text, pos, err)
                or "delete it; rule files are plain text",
            )
        return Diagnostic(
            code="MR002",
            severity=Severity.ERROR,
            path=path,
            start=pos,
            end=pos + 1,
            message=f"unexpected character '{ch}'" + (f"; {expected}" if expected else ""),
            hint=hint
            or _character_hint(text, pos, err)
            or "delete it; in a name, it goes inside the double quotes",
        )
    assert isinstance(err, UnexpectedEOF)
    return Diagnostic(
        code="MR003",
        severity=Severity.ERROR,
        path=path,
        start=len(text),
        end=len(text),
        message="unexpected end of file",
        hint="a block may be missing its closing '}'",
    )


def _string_diagnostic(text: str, pos: int, path: str) -> Diagnostic:
    """MR004 for the string that starts at `pos` and does not lex: an unknown escape in
    it, or no closing quote on its line."""
    line_end = _LINE_END.search(text, pos)
    end = len(text) if line_end is None else line_end.start()
    i = pos + 1
    while (found := _QUOTE_OR_ESCAPE.search(text, i, end)) is not None:
        i = found.start()
        if text[i] == '"':
            break
        escape = _VALID_ESCAPE.match(text, i)
        if escape is None and not text[i + 1 : end].strip(" \t"):
            # `"abc\` at a line's end: no escape, a string that does not go on
            return Diagnostic(
                code="MR004",
                severity=Severity.ERROR,
                path=path,
                start=pos,
                end=i + 1,
                message="string not closed on its line",
                hint="a string stays on one line and a \\ at its end does not continue it: "
                'close it with "; a backslash in a name is written \\\\',
            )
        if escape is None:
            shown = _BAD_ESCAPE.match(text, i, end).group()  # type: ignore[union-attr]
            return Diagnostic(
                code="MR004",
                severity=Severity.ERROR,
                path=path,
                start=i,
                end=i + max(1, len(shown)),
                message=f"unknown escape '{shown}' in a string",
                hint="write \\u with four hex digits, like \\u00e9"
                if shown.startswith("\\u")
                else 'the escapes are \\" \\\\ \\n \\t and \\uXXXX; write a backslash as \\\\',
            )
        i = escape.end()
    hint = 'close the string with " on the same line; escape quotes inside as \\"'
    if text[pos + 1 : end].rstrip().endswith('\\"'):
        hint = (
            'the \\" at the end is a quote inside the string, not its end: '
            "write a backslash at the end as \\\\"
        )
    return Diagnostic(
        code="MR004",
        severity=Severity.ERROR,
        path=path,
        start=pos,
        end=end,
        message="unclosed or malformed string",
        hint=hint,
    )


def parse_text(text: str, path: str = "<string>") -> tuple[ast.File | None, list[Diagnostic]]:
    """Parse one rule file's text.

    Returns the AST (None when the text has a syntax error) and the diagnostics.
    The fast path handles what it can vouch for; anything else, syntax errors
    included, goes through `parse_text_with_lark`, which gives the same result.

    >>> file, diags = parse_text('list "MQL"', "x.mr")
    >>> file.items[0].name.text, diags
    ('MQL', [])
    """
    fast = _fast_parser()
    if fast is not None:
        builder = _ToAst(path)
        try:
            with collector_paused():
                file = fast.parse(text, builder)
        except _Fallback:
            pass
        else:
            return file, builder.diagnostics
    return parse_text_with_lark(text, path)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a tree is built, if it was running.

    A parse allocates hundreds of thousands of small objects and no reference cycles,
    so the collector finds nothing, yet it keeps rescanning the growing tree: that was
    a quarter of the parse time for 10,000 rules, and made the per-rule cost grow with
    the file. Reference counting still frees everything as usual. The switch is
    process-wide, so other threads' collections wait for the length of a parse too.
    `mrules lint` holds it for the whole command: the checker walks the same big,
    acyclic tree, and each collection would rescan all of it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_text_with_lark(
    text: str, path: str = "<string>"
) -> tuple[ast.File | None, list[Diagnostic]]:
    """`parse_text` through Lark's contextual lexer and parse tree: the reference path.

    Slower, but it is the definition: the fast path must agree with it on every text,
    and every syntax error is reported from here.
    """
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput as err:
        return None, [_syntax_diagnostic(err, text, path)]
    builder = _ToAst(path)
    file = builder.build(tree)
    return file, builder.diagnostics


# ------------------------------------------------------------------ recovery

MAX_SYNTAX_ERRORS = 50
"""Syntax errors reported for one file; past them the rest of the file is left unread."""

# A top-level item starts at the beginning of a line with one of these words.
ITEM_KEYWORDS = (
    "include",
    "field",
    "user",
    "group",
    "queue",
    "list",
    "tag",
    "form",
    "landing",
    "file",
    "custom",
    "email",
    "campaign",
    "crm",
    "on",
    "page",
    "automation",
    "scoring",
    "default",
    "grading",
    "segmentation",
    "dynamic",
    "sync",
    "settings",
)
# In any case: a line that starts with `Settings` or `LIST` is meant as an item too (an
# error of its own, with its hint), not a part of the broken item above it.
_ITEM_START_RE = re.compile(
    r"^(?:" + "|".join(ITEM_KEYWORDS) + r")(?![A-Za-z0-9_])", re.M | re.IGNORECASE
)


class Parsed(NamedTuple):
    """A file parsed with error recovery: the items that parsed, every diagnostic,
    and the spans the parser skipped (the broken items)."""

    file: ast.File
    diagnostics: list[Diagnostic]
    unparsed: tuple[ast.Span, ...]


def parse_recovering(text: str, path: str = "<string>") -> Parsed:
    """Parse one file, resuming after each syntax error at the next top-level item.

    A valid file takes `parse_text`'s fast path and gives the same result. After a
    syntax error, the broken item (from the last line that starts an item before
    the error to the next one after it) is skipped and reported once; the items
    before and after it parse as usual, so one file reports every broken item and
    the checker sees every item that parsed.

    >>> parsed = parse_recovering('list "A"\\nlist B\\nlist "C" @\\ntag "T"', "x.mr")
    >>> [i.name.text for i in parsed.file.items], [d.code for d in parsed.diagnostics]
    (['A', 'T'], ['MR001', 'MR002'])
    """
    file, diags, _ = _fast_piece(text, 0, len(text), path)
    if file is not None:
        return Parsed(file, diags, ())
    items: list[Any] = []
    found: list[Diagnostic] = []
    unparsed: list[ast.Span] = []
    starts = [m.start() for m in _ITEM_START_RE.finditer(text)]
    _recover(text, 0, len(text), path, starts, items, found, unparsed)
    if not unparsed:  # valid after all (the fast path could not vouch for it): the reference
        file, diags = parse_text_with_lark(text, path)
        if file is not None:
            return Parsed(file, diags, ())
    file = ast.File(path=path, items=tuple(items), span=ast.Span(0, len(text)))
    return Parsed(file, found, tuple(unparsed))


def _piece(
    text: str, start: int, end: int, path: str
) -> tuple[ast.File | None, list[Diagnostic], UnexpectedInput | None]:
    """Parse text[start:end] at its own offsets (what lies before it reads as blanks)."""
    file, diags, _ = _fast_piece(text, start, end, path)
    if file is not None:
        return file, diags, None
    padded = " " * start + text[start:end]
    try:
        tree = lark_parser().parse(padded)
    except UnexpectedInput as err:
        return None, [], err
    builder = _ToAst(path)
    return builder.build(tree), builder.diagnostics, None


def _error_at(err: UnexpectedInput, end: int) -> int:
    if isinstance(err, UnexpectedToken):
        if err.token.type == "$END":
            return end
        return err.token.start_pos or 0
    if isinstance(err, UnexpectedCharacters):
        return err.pos_in_stream or 0
    return end


def _fast_piece(
    text: str, start: int, end: int, path: str
) -> tuple[ast.File | None, list[Diagnostic], int]:
    """text[start:end] through the fast path: (file, diagnostics, -1), or (None, [], where
    it gave up)."""
    fast = _fast_parser()
    if fast is None:
        return None, [], start
    builder = _ToAst(path)
    padded = text[start:end] if start == 0 else " " * start + text[start:end]
    try:
        with collector_paused():
            file = fast.parse(padded, builder)
    except _Fallback as f:
        return None, [], start if f.at is None else min(max(f.at, start), end)
    return file, builder.diagnostics, -1


def _may_go_on(err: UnexpectedInput, text: str, at: int) -> bool:
    """Whether the item that ended early at `at` (an item keyword at a line start) could
    continue with that word: then only a parse of the rest can tell."""
    expected = set(getattr(err, "expected", ()) or ())
    if "NAME" in expected:
        return True
    word = _WORD_RE.match(text, at)
    patterns = _terminal_patterns()
    return word is not None and any(patterns.get(t) == word.group() for t in expected)


def _recover(
    text: str,
    start: int,
    end: int,
    path: str,
    starts: list[int],
    items: list[Any],
    found: list[Diagnostic],
    unparsed: list[ast.Span],
) -> None:
    """Parse text[start:end], skipping broken items: the fast path finds where a piece
    stops making sense; Lark parses only the item there, for its verdict and message."""
    import bisect

    while start < end:
        if sum(d.code in SYNTAX_CODES for d in found) >= MAX_SYNTAX_ERRORS:
            unparsed.append(ast.Span(start, end))
            return
        file, diags, at = _fast_piece(text, start, end, path)
        if file is not None:
            items.extend(file.items)
            found.extend(diags)
            return
        i = bisect.bisect_left(starts, at)  # starts[:i] < at <= starts[i:]
        broken = max(start, starts[i - 1]) if i > 0 else start
        j = bisect.bisect_left(starts, max(at, broken + 1))
        resume = min(starts[j], end) if j < len(starts) else end
        if broken > start:
            _recover(text, start, broken, path, starts, items, found, unparsed)
        file, diags, err = _piece(text, broken, resume, path)
        if err is None:  # the fast path could not vouch for it, and Lark parsed it
            if file is not None:
                items.extend(file.items)
            found.extend(diags)
            start = resume
            continue
        if resume < end and _error_at(err, resume) >= resume and _may_go_on(err, text, resume):
            _recover_with_lark(text, broken, end, path, starts, items, found, unparsed)
            return
        diag = _piece_diagnostic(err, text, broken, resume, path)
        if (
            resume < len(text)
            and _error_at(err, resume) >= resume
            and diag.hint not in ERROR_EXAMPLES
        ):
            diag = diag.model_copy(
                update={"hint": _unfinished_hint(getattr(err, "expected", None))}
            )
        found.append(diag)
        unparsed.append(ast.Span(broken, resume))
        start = resume


def _recover_with_lark(
    text: str,
    start: int,
    end: int,
    path: str,
    starts: list[int],
    items: list[Any],
    found: list[Diagnostic],
    unparsed: list[ast.Span],
) -> None:
    """`_recover` with Lark deciding where each piece breaks (slower: every attempt reads
    the rest of the file); for items that may run past a line that looks like an item."""
    import bisect

    while start < end:
        if sum(d.code in SYNTAX_CODES for d in found) >= MAX_SYNTAX_ERRORS:
            unparsed.append(ast.Span(start, end))
            return
        file, diags, err = _piece(text, start, end, path)
        if err is None:
            if file is not None:
                items.extend(file.items)
            found.extend(diags)
            return
        at = min(max(_error_at(err, end), start), end)
        i = bisect.bisect_left(starts, at)  # starts[:i] < at <= starts[i:]
        broken = max(start, starts[i - 1]) if i > 0 else start
        j = bisect.bisect_right(starts, broken)
        while j < len(starts) and starts[j] < at:
            j += 1
        resume = min(starts[j], end) if j < len(starts) else end
        if resume <= broken:
            resume = end
        diag = _piece_diagnostic(err, text, start, end, path)
        if at in starts[i : i + 1] and at > broken and diag.hint not in ERROR_EXAMPLES:
            diag = diag.model_copy(
                update={"hint": _unfinished_hint(getattr(err, "expected", None))}
            )
        found.append(diag)
        if broken > start:
            _recover_with_lark(text, start, broken, path, starts, items, found, unparsed)
        unparsed.append(ast.Span(broken, resume))
        start = resume


SYNTAX_CODES = frozenset({"MR001", "MR002", "MR003", "MR004"})


def _piece_diagnostic(
    err: UnexpectedInput, text: str, start: int, end: int, path: str
) -> Diagnostic:
    """The diagnostic of a piece's error; a piece that ends before the file ends is
    reported at the item that follows it, not as the end of the file."""
    padded = " " * start + text[start:end]
    diag = _syntax_diagnostic(err, padded, path)
    if diag.code == "MR003" and end < len(text):
        word = _WORD_RE.match(text, end)
        stop = word.end() if word else end + 1
        shown = word.group() if word else text[end : end + 1]
        expected = getattr(err, "expected", None)
        name = _name_meaning(err)
        return diag.model_copy(
            update={
                "code": "MR001",
                "start": end,
                "end": stop,
                "message": f"unexpected '{shown}'"
                + (f"; expected {_expected_phrase(expected, name)}" if expected else ""),
                "hint": diag.hint
                if diag.hint and "closing '}'" not in diag.hint
                else _unfinished_hint(expected),
            }
        )
    return diag


def _unfinished_hint(expected: object) -> str:
    """The hint for an error at the start of an item: the one before it did not end."""
    names = set(expected or ())  # type: ignore[call-overload]
    if any(_terminal_patterns().get(n) == "}" for n in names):
        return "the item before it may be missing its closing '}'"
    if "RSQB" in names:
        return "the item before it is unfinished: close its list with ']'"
    if "RPAR" in names:
        return "the item before it is unfinished: close its task options with ')'"
    return "the item before it is unfinished"
