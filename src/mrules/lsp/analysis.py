"""What the language server knows about a rule set, independent of the protocol.

`analyze` loads a rule folder (with the editor's unsaved buffers in place of
the files on disk), checks it as `mrules lint` does (configuration and inline
suppressions included), and indexes every declared name and every use of one.
The features then work on character offsets of a file's text: `name_at` (what
the cursor is on), `definition`, `references`, `rename_edits`, `hover`,
`complete`, `symbols` and `quick_fixes`. The server (`mrules.lsp.server`)
only converts positions and shapes the answers.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lark.exceptions import LarkError

from mrules import ast, symbols
from mrules.checker import check_loaded
from mrules.checker.fields import criterion_keywords
from mrules.checker.names import USES_NAMES
from mrules.checker.sync import CRM_TYPES, SYNC_OBJECTS
from mrules.checker.values import GRADES
from mrules.checker.visit import nodes
from mrules.config import Config
from mrules.diagnostics import Diagnostic
from mrules.loader import LoadResult, load
from mrules.parser import BAD_STRING_CHAR, ITEM_KEYWORDS, Parsed, lark_parser, unquote
from mrules.settings import SETTINGS
from mrules.source import Source
from mrules.symbols import ACTIVITY_TYPES, FIELD_TYPES

__all__ = [
    "KEYWORD_DOCS",
    "Analysis",
    "Completion",
    "NameRef",
    "analyze",
    "complete",
    "quick_fix",
]

LANGUAGE_DOC = "docs/language.md"


@dataclass(frozen=True)
class NameRef:
    """A declared name or a use of one: its namespace and key, and where it is written."""

    namespace: str  # "field", "list", "user", "form", "email", "tag", ...
    key: str
    path: str
    start: int
    end: int
    declaration: bool
    quoted: bool


@dataclass
class Analysis:
    """A loaded, checked and indexed rule set."""

    result: LoadResult
    diagnostics: list[Diagnostic]
    symbols: symbols.Symbols
    _index: tuple[dict[str, list[NameRef]], dict[tuple[str, str], list[NameRef]]] | None = field(
        default=None, repr=False
    )

    @property
    def refs(self) -> dict[str, list[NameRef]]:
        """Every declared or used name of each file, sorted by offset (built on first use:
        diagnostics do not need it)."""
        if self._index is None:
            self._index = _index(self.result, self.symbols)
        return self._index[0]

    @property
    def by_key(self) -> dict[tuple[str, str], list[NameRef]]:
        """The declarations and uses of each (namespace, name)."""
        if self._index is None:
            self._index = _index(self.result, self.symbols)
        return self._index[1]

    def name_at(self, path: str, offset: int) -> NameRef | None:
        """The name written at `offset` (or just before it, at its end), if any."""
        refs = self.refs.get(path, [])
        i = bisect.bisect_right([r.start for r in refs], offset) - 1
        if i >= 0 and refs[i].start <= offset <= refs[i].end:
            return refs[i]
        return None

    def declarations(self, ref: NameRef) -> list[NameRef]:
        return [r for r in self.by_key.get((ref.namespace, ref.key), []) if r.declaration]

    def references(self, ref: NameRef, include_declaration: bool = True) -> list[NameRef]:
        return [
            r
            for r in self.by_key.get((ref.namespace, ref.key), [])
            if include_declaration or not r.declaration
        ]

    def rename_edits(self, ref: NameRef, new: str) -> dict[str, list[tuple[int, int, str]]]:
        """(start, end, new text) per file for renaming a name everywhere; ValueError if the
        new name cannot be written (a field name must be a lowercase identifier), is
        declared already, or is a field name a criterion would read as a keyword (MR205)."""
        if ref.namespace == "field":
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", new):
                raise ValueError(f"'{new}' is not a field name: lowercase letters, digits, _")
            if ref.key in symbols.BUILTIN_FIELDS:
                raise ValueError(f"'{ref.key}' is a Pardot default field; it cannot be renamed")
        elif not new or "\n" in new or "\r" in new or BAD_STRING_CHAR.search(new):
            # (a string holds no NUL or lone surrogate: MR015; CR is a line break to editors)
            raise ValueError("a name is one line of text, with no NUL or lone surrogate")
        if new != ref.key:  # a name taken: the two would be one (and declared twice)
            taken = [r for r in self.by_key.get((ref.namespace, new), []) if r.declaration]
            if taken:
                where = _where(self, taken[0].path, taken[0].start)
                raise ValueError(f"{ref.namespace} '{new}' is already declared at {where}")
            if ref.namespace == "field" and new in self.symbols.fields:
                raise ValueError(f"field '{new}' is already a Pardot default field")
        if ref.namespace == "field" and new in criterion_keywords():
            raise ValueError(f"'{new}' starts a criterion: a field so named cannot be tested")
        edits: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for r in self.references(ref):
            edits[r.path].append((r.start, r.end, quote(new) if r.quoted else new))
        return dict(edits)


def quote(text: str) -> str:
    """A name as a quoted string of the language."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _uses(node: ast.Node) -> Iterable[tuple[str, ast.Name]]:
    """(namespace, name) for every name a node uses (mirrors the checker's resolver)."""
    match node:
        case (
            ast.FieldTest(field=name)
            | ast.SetField(field=name)
            | ast.IncrementField(field=name)
            | ast.SyncMap(field=name)
        ):
            yield "field", name
        case ast.InList(list=name) | ast.AddToList(list=name) | ast.RemoveFromList(list=name):
            yield "list", name
        case ast.Tagged(tag=name) | ast.AddTag(tag=name) | ast.RemoveTag(tag=name):
            yield "tag", name
        case ast.Assigned(to=str(to), name=ast.Name() as name) | ast.Assign(to=to, name=name):
            yield to, name
        case ast.NotifyUser(user=name) | ast.CreateCrmTask(owner=ast.Name() as name):
            yield "user", name
        case ast.GroupDecl(members=members):
            for member in members.values:
                yield "user", member
        case ast.CampaignIs(campaign=name) | ast.ChangeSourceCampaign(campaign=name):
            yield "campaign", name
        case ast.AddToCrmCampaign(campaign=name):
            yield "crm campaign", name
        case (
            ast.ProfileIs(profile=name)
            | ast.ChangeProfile(profile=name)
            | ast.MarkProfileCriterion(profile=name)
        ):
            yield "grading profile", name
        case ast.CategoryScoreCompare(category=name) | ast.AdjustCategoryScore(category=name):
            yield "scoring category", name
        case ast.Trigger(asset_kind=kind, asset=name):
            yield kind, name
        case ast.Activity(asset_kind=str(kind), name=ast.Name() as name):
            yield kind, name
        case ast.SendAutoresponder(email=name):
            yield "email", name
        case _:
            return


_NAMESPACE_OF_TABLE = {
    "users": "user",
    "groups": "group",
    "queues": "queue",
    "lists": "list",
    "dynamic_lists": "list",
    "tags": "tag",
    "campaigns": "campaign",
    "crm_campaigns": "crm campaign",
    "profiles": "grading profile",
    "categories": "scoring category",
    "page_actions": "page action",
    "automation_rules": "automation rule",
    "segmentation_rules": "segmentation rule",
}


def _declared(sym: symbols.Symbols) -> Iterable[tuple[str, str, symbols.Declared]]:
    for info in sym.fields.values():
        if info.declared is not None:
            yield "field", info.name, info.declared
    for table, namespace in _NAMESPACE_OF_TABLE.items():
        for key, decl in getattr(sym, table).items():
            yield namespace, key, decl
    for (kind, key), decl in sym.assets.items():
        yield kind, key, decl


def _index(result: LoadResult, sym: symbols.Symbols) -> tuple[dict, dict]:
    refs: dict[str, list[NameRef]] = defaultdict(list)
    texts = {p: s.text for p, s in result.sources.items()}

    def add(namespace: str, key: str, path: str, name: ast.Name, decl: bool) -> None:
        if name.span.end <= name.span.start:
            return
        text = texts.get(path, "")
        quoted = text[name.span.start : name.span.start + 1] == '"'
        refs[path].append(
            NameRef(namespace, key, path, name.span.start, name.span.end, decl, quoted)
        )

    for namespace, key, decl in _declared(sym):
        add(namespace, key, decl.path, decl.name, True)
    for namespace, later, _ in sym.duplicates:
        ns = _NAMESPACE_OF_DUPLICATE.get(namespace, namespace)
        add(ns, later.name.text, later.path, later.name, True)
    for path, node in nodes(result.program):
        if node.kind in USES_NAMES:
            for namespace, name in _uses(node):
                add(namespace, name.text, path, name, False)
    by_key: dict[tuple[str, str], list[NameRef]] = defaultdict(list)
    for path in refs:
        refs[path].sort(key=lambda r: (r.start, r.end))
        for r in refs[path]:
            by_key[r.namespace, r.key].append(r)
    return dict(refs), dict(by_key)


_NAMESPACE_OF_DUPLICATE = {"dynamic list": "list"}


def analyze(
    paths: list[Path],
    overlays: Mapping[str, str] | None = None,
    config: Config | None = None,
    cache: dict[tuple[str, str], tuple[Source, Parsed]] | None = None,
) -> Analysis:
    """Load, check and index a rule set (LoadError if it cannot be read at all)."""
    result = load(paths, overlays=overlays, cache=cache)
    config = config or Config()
    sym = symbols.collect(result.program)
    diags = [d for d in check_loaded(result, sym) if config.reports(d)]
    return Analysis(result, diags, sym)


# ------------------------------------------------------------------ hover

KEYWORD_DOCS: dict[str, tuple[str, str]] = {
    "include": (
        "Reads another rule file (relative to the rule folder) or a bundled "
        "`library/` file before this one.",
        "include",
    ),
    "field": (
        "Declares a custom prospect field: `field name: type [choices]`; types are "
        "text, number, date, boolean, picklist, multiselect.",
        "fields",
    ),
    "user": (
        "A Pardot user, by email: a target of `assign to user` and `notify user`.",
        "users-groups-queues",
    ),
    "group": (
        'A group of users for round-robin assignment: `group "Sales" ["a@x", ...]`.',
        "users-groups-queues",
    ),
    "queue": ("A Salesforce queue prospects can be assigned to.", "users-groups-queues"),
    "list": (
        "A static list: `add to list`, `remove from list`, `in list` use it.",
        "lists-and-tags",
    ),
    "tag": ("A tag: `add tag`, `remove tag`, `tagged` use it.", "lists-and-tags"),
    "form": ("A Pardot form (an asset): its submissions trigger completion actions.", "assets"),
    "email": (
        "A Pardot email (an asset): opens and clicks trigger actions; an "
        "autoresponder is an email.",
        "assets",
    ),
    "campaign": (
        "A Pardot campaign, for `campaign is` and `change source campaign to`.",
        "campaigns",
    ),
    "on": (
        'Completion actions: `on submit of form "F" { ... }` run when a prospect '
        "completes the asset.",
        "3-completion-actions",
    ),
    "if": (
        "A conditional group: its actions run only when the condition holds "
        "(one condition; group several with `all { }`).",
        "conditional-groups",
    ),
    "page": (
        'A page action: `page action "name" on "url" { score +5 }` scores a visit '
        "to a page (exact or wildcard URL).",
        "4-page-actions",
    ),
    "automation": (
        "An automation rule: retroactive criteria (`when`) and actions (`then`), "
        "evaluated after every change, lower priority first.",
        "5-automation-rules",
    ),
    "segmentation": (
        "A segmentation rule: run once, on demand (`mrules segment`).",
        "61-segmentation-rules",
    ),
    "dynamic": ("A dynamic list: membership follows its criteria, always.", "62-dynamic-lists"),
    "when": ("The criteria of a rule: `when all { ... }` or `when any { ... }`.", "criteria"),
    "then": (
        'The actions of a rule, in braces: `then { add to list "MQL" }`.',
        "5-automation-rules",
    ),
    "all": ("Every criterion inside must hold.", "criteria"),
    "any": ("At least one criterion inside must hold.", "criteria"),
    "not": ("The criterion after it must not hold.", "criteria"),
    "score": (
        "The prospect's score: a criterion (`score >= 100`) or an action "
        "(`score +25`, `score -10`).",
        "criteria",
    ),
    "grade": ("The prospect's grade, A+ to F: `grade >= B`.", "criteria"),
    "within": (
        'A time window on an activity: `visited "x.com/pricing" within 30 days`.',
        "criteria",
    ),
    "priority": (
        "The order of automation rules (lower first), or a page action's "
        "`priority` flag that marks the prospect for sales.",
        "5-automation-rules",
    ),
    "repeat": (
        "Lets an automation rule match a prospect again: `repeat every 30 days`.",
        "5-automation-rules",
    ),
    "paused": ("An automation rule that is declared but does not run.", "5-automation-rules"),
    "scoring": ("Points per activity type: `scoring { form submission +50 }`.", "7-scoring"),
    "grading": ("A grading profile: criteria that move a prospect's grade.", "8-grading"),
    "sync": (
        "The CRM connector: matching, cadence and per-field sync behaviour.",
        "9-the-crm-connector-sync",
    ),
    "settings": ("The engine's knobs: `settings { ... }`.", "10-settings"),
    "add": ('`add to list "L"`, `add tag "T"`, `add to crm campaign "C"`.', "actions"),
    "remove": ('`remove from list "L"`, `remove tag "T"`.', "actions"),
    "assign": ('`assign to user|group|queue "Name"`, or `assign by crm rule`.', "actions"),
    "notify": ('`notify user "a@x"` or `notify assigned user`.', "actions"),
    "send": ('`send autoresponder "Email"`.', "actions"),
    "set": ("`set field = value`, or `set score to N`.", "actions"),
    "increment": ("`increment field by N` (a number field).", "actions"),
    "tagged": ('The prospect has a tag: `tagged "Webinar"`.', "criteria"),
    "visited": (
        'The prospect viewed a page: `visited "x.com/pricing*" within 30 days`.',
        "criteria",
    ),
    "submitted": ('The prospect submitted a form: `submitted form "Demo"`.', "criteria"),
    "since": ("Only activity from this date on: `since 2026-01-01`.", "since"),
}


def hover(
    analysis: Analysis, path: str, text: str, offset: int
) -> tuple[str, tuple[int, int]] | None:
    """Markdown for what the cursor is on, and the span it is about."""
    ref = analysis.name_at(path, offset)
    if ref is not None:
        return _name_hover(analysis, ref), (ref.start, ref.end)
    word = _word_at(text, offset)
    if word is None or _in_comment_or_string(text, word[0]):
        return None  # a word of a comment is prose, one of a string (a URL...) is text
    start, end = word
    w = text[start:end]
    if w in KEYWORD_DOCS:
        doc, anchor = KEYWORD_DOCS[w]
        return f"**{w}**: {doc}\n\n({LANGUAGE_DOC}#{anchor})", word
    info = analysis.symbols.fields.get(w)
    if info is not None and info.declared is None:
        return _field_hover(info), word
    return None


def _where(analysis: Analysis, path: str, offset: int) -> str:
    src = analysis.result.sources.get(path)
    line = src.position(offset)[0] if src else 1
    return f"{path}:{line}"


def _field_hover(info: symbols.FieldInfo, where: str | None = None) -> str:
    out = f"**field** `{info.name}`: {info.type}"
    if info.choices:
        out += "\n\nvalues: " + ", ".join(quote(c) for c in info.choices)
    out += f"\n\ndeclared at {where}" if where else "\n\na Pardot default field"
    return out


def _name_hover(analysis: Analysis, ref: NameRef) -> str:
    decls = analysis.declarations(ref)
    if ref.namespace == "field":
        info = analysis.symbols.fields.get(ref.key)
        if info is None:
            return f"**field** `{ref.key}`: not declared"
        where = _where(analysis, decls[0].path, decls[0].start) if decls else None
        return _field_hover(info, where)
    label = f"**{ref.namespace}** {quote(ref.key)}"
    if not decls:
        return f"{label}: not declared"
    d = decls[0]
    uses = len(analysis.references(ref, include_declaration=False))
    return (
        f"{label}\n\ndeclared at {_where(analysis, d.path, d.start)}; "
        f"used {uses} time{'' if uses == 1 else 's'}"
    )


_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# Greedy, then back to the last character that is no word's (`\W`: neither `isalnum()`
# nor `_`), within the window `match` is given.
_LAST_NOT_WORD_RE = re.compile(r".*\W", re.S)


def _word_start(text: str, offset: int) -> int:
    """Where the run of word characters (`isalnum()` or `_`) that ends at `offset` starts.

    Searched in windows that double, back from `offset`: a short word is found in the
    first one, a 5 MB one in a few dozen regex matches, not a Python step a character."""
    end, size = offset, 64
    while end > 0:
        begin = max(0, end - size)
        m = _LAST_NOT_WORD_RE.match(text, begin, end)
        if m is not None:
            return m.end()
        end, size = begin, size * 2
    return 0


def _word_at(text: str, offset: int) -> tuple[int, int] | None:
    start = _word_start(text, offset)
    m = _WORD_RE.match(text, start)
    if m is None or m.end() < offset:
        return None
    return m.start(), m.end()


# ------------------------------------------------------------------ completion


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # "keyword", "field", "value", or a namespace
    detail: str
    insert: str
    start: int  # the text from start to the cursor (or to `end`) is replaced by `insert`
    end: int | None = None  # past the cursor: the rest of a string, its closing quote


_ITEM_LINE_RE = re.compile(r"^(?:" + "|".join(ITEM_KEYWORDS) + r")(?![A-Za-z0-9_])", re.M)
# What the words before a string say it names: (last words) -> namespace.
_STRING_CONTEXTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("crm", "campaign"), "crm campaign"),
    (("source", "campaign", "to"), "campaign"),
    (("profile", "to"), "grading profile"),
    (("campaign", "is"), "campaign"),
    (("profile", "is"), "grading profile"),
    (("of", "profile"), "grading profile"),
    (("in", "category"), "scoring category"),
    (("form", "handler"), "form handler"),
    (("landing", "page"), "landing page"),
    (("custom", "redirect"), "custom redirect"),
    (("send", "autoresponder"), "email"),
    (("to", "list"), "static list"),  # `add to list`, `remove from list`: a dynamic list's
    (("from", "list"), "static list"),  # members come from its criteria (MR303)
    (("list",), "list"),
    (("tag",), "tag"),
    (("tagged",), "tag"),
    (("user",), "user"),
    (("owner",), "user"),
    (("group",), "group"),
    (("queue",), "queue"),
    (("form",), "form"),
    (("file",), "file"),
    (("email",), "email"),
)
_VALUE_OPS = (
    ("is",),
    ("is", "not"),
    ("contains",),
    ("does", "not", "contain"),
    ("=",),
    ("starts", "with"),
    ("ends", "with"),
)
# Possessive (`++`, `*+`): a string's characters one a repetition of a group kept a
# backtracking record each (120 bytes a character: a completion next to a 5 MB string
# took 500 MB). No alternative starts with a quote, so none is ever given back.
_STRING_REST = re.compile(r'(?:[^"\\\r\n]++|\\.)*+"')
"""The rest of a string from inside it, its closing quote included."""
_TOKEN_RE = re.compile(r'"(?:[^"\\\n]++|\\.)*+"|[A-Za-z_][A-Za-z0-9_]*|<->|[<>]=?|[^\s]')


def _names(analysis: Analysis, namespace: str) -> list[str]:
    sym = analysis.symbols
    table = {
        "list": {**sym.lists, **sym.dynamic_lists},
        "static list": sym.lists,
        "tag": sym.tags,
        "user": sym.users,
        "group": sym.groups,
        "queue": sym.queues,
        "campaign": sym.campaigns,
        "crm campaign": sym.crm_campaigns,
        "grading profile": sym.profiles,
        "scoring category": sym.categories,
    }.get(namespace)
    if table is None:
        return sorted(sym.asset_names(namespace))
    return sorted(table)


def _accepts(chunk: str) -> set[str] | None:
    """The terminals the parser accepts after `chunk` (one item's start), or None."""
    try:
        ip = lark_parser().parse_interactive(chunk)
        ip.exhaust_lexer()
        return set(ip.accepts())
    except (LarkError, EOFError):
        return None


def complete(analysis: Analysis, text: str, offset: int) -> list[Completion]:
    """What may be written at `offset`: keywords the grammar accepts there, declared names
    of the kind expected, a field's picklist values."""
    from mrules.parser import _terminal_patterns

    line_start = text.rfind("\n", 0, offset) + 1
    before = text[line_start:offset]
    in_string, in_comment = _scan(before)
    if in_comment:  # prose: nothing to offer
        return []
    # in a string from its quote, else from the word's start (never before the line's:
    # `\n` is no word's character)
    start = line_start + in_string if in_string is not None else _word_start(text, offset)
    item_start = 0
    for m in _ITEM_LINE_RE.finditer(text, 0, start):
        if m.start() < start:
            item_start = m.start()
    chunk = text[item_start:start]
    words = [t for t in _TOKEN_RE.findall(chunk) if not t.startswith("#")]
    out: list[Completion] = []
    typed = text[start:offset].lstrip('"')
    accepted = _accepts(chunk)
    if accepted is None:  # the item is broken before the cursor: offer what starts one
        accepted = {k.upper() for k in ITEM_KEYWORDS} if not chunk.strip() else set()
        patterns = {k.upper(): k for k in ITEM_KEYWORDS}
    else:
        patterns = _terminal_patterns()
    if in_string is None:
        keywords = sorted(
            {
                patterns[t]
                for t in accepted
                if t in patterns and patterns[t].replace(" ", "").isalpha()
            }
        )
        out.extend(
            Completion(k, "keyword", KEYWORD_DOCS.get(k, ("keyword", ""))[0], k, start)
            for k in keywords
            if k.startswith(typed)
        )
        if "NAME" in accepted and not _declaring_field(words):
            out.extend(_name_completions(analysis, words, start, typed))
    if "STRING" in accepted or in_string is not None:
        names = _string_completions(analysis, words, start, typed)
        rest = _STRING_REST.match(text, offset) if in_string is not None else None
        if rest is not None:  # `"M|"`: the quote the editor closed is replaced too
            names = [dataclasses.replace(c, end=rest.end()) for c in names]
        out.extend(names)
    return out


def _name_completions(
    analysis: Analysis, words: list[str], start: int, typed: str
) -> list[Completion]:
    """What a bare name at the cursor is: a setting in `settings { }`, an activity at a
    row of `scoring { }`, else a field. Fields were offered in all three: a field picked
    in a settings block is an unknown setting (MR610), in scoring an unknown activity
    (MR601)."""
    context = _word_context(words)
    words_of = _WORDS_OF.get(context) if context is not None else None
    if words_of is not None:
        kind, choices = words_of
        return [Completion(w, kind, kind, w, start) for w in choices if w.startswith(typed)]
    if words[:2] == ["settings", "{"]:
        return [
            Completion(
                s.name, "setting", f"{s.type.__name__}, default {s.default!r}", s.name, start
            )
            for s in sorted(SETTINGS.values(), key=lambda s: s.name)
            if s.name.startswith(typed)
        ]
    if words[:2] == ["scoring", "{"]:
        row: list[str] = []  # the words of the row before the cursor: `form` of `form sub|`
        for w in reversed(words):
            if not _WORD_RE.fullmatch(w) or w == "scoring":
                break
            row.insert(0, w)
        prefix = " ".join([*row, typed])
        out = []
        for activity in sorted(ACTIVITY_TYPES):
            if activity.startswith(prefix):
                rest = " ".join(activity.split(" ")[len(row) :])
                out.append(Completion(rest, "activity", "a scoring activity", rest, start))
        return out
    numeric = words[-1:] == ["increment"]  # a number field only: the others are MR213
    return [
        Completion(f.name, "field", f.type, f.name, start)
        for f in sorted(analysis.symbols.fields.values(), key=lambda f: f.name)
        if f.name.startswith(typed) and (not numeric or f.type == "number")
    ]


_WORDS_OF: dict[str, tuple[str, tuple[str, ...]]] = {
    "field type": ("field type", FIELD_TYPES),
    "crm": ("crm", ("salesforce",)),  # MR501
    "sync object": ("sync object", SYNC_OBJECTS),
    "crm field type": (  # MR506: the connector cannot map the others
        "crm field type",
        tuple(t for t in CRM_TYPES if t not in ("lookup", "geolocation")),
    ),
}


def _word_context(words: list[str]) -> str | None:
    """Which fixed words a bare name at the cursor is one of, if any: a field's type after
    `field x:`, the CRM after `sync`, objects after `objects`, a CRM type after `as`."""
    if len(words) == 3 and words[0] == "field" and words[2] == ":":
        return "field type"
    if words[:1] != ["sync"]:
        return None
    if len(words) == 1:
        return "crm"
    if words[-1] == "as":
        return "crm field type"
    i = len(words) - 1  # `objects |`, `objects lead, |`: `, name` pairs back to `objects`
    while i >= 2 and words[i] == "," and _WORD_RE.fullmatch(words[i - 1]):
        i -= 2
    return "sync object" if words[i] == "objects" else None


def _declaring_field(words: list[str]) -> bool:
    return bool(words) and words[0] == "field" and len(words) <= 1


def _string_completions(
    analysis: Analysis, words: list[str], start: int, typed: str
) -> list[Completion]:
    before = words
    if "[" in words:  # `set tier = ["Gold", "|`: a multiselect's values, in a list
        i = len(words) - 1 - words[::-1].index("[")
        if all(w == "," or w.startswith('"') for w in words[i + 1 :]):
            before = words[:i]
    for n in range(len(before) - 1, 0, -1):  # a field's values: `size is "`, `set size = "`
        if before[n - 1] and re.fullmatch(r"[a-z_][a-z0-9_]*", before[n - 1]):
            op = tuple(before[n:])
            if op in _VALUE_OPS:
                info = analysis.symbols.fields.get(before[n - 1])
                if info is not None and info.choices:
                    return [
                        Completion(c, "value", f"a value of {info.name}", quote(c), start)
                        for c in info.choices
                        if c.startswith(typed)
                    ]
    if len(words) <= 1:  # a declaration's own name: nothing to offer
        return []
    if words[:2] == ["settings", "{"] and words[-1] == "=":  # `unknown_assets = "|`
        spec = SETTINGS.get(words[-2])
        choices = GRADES if words[-2] == "grade_start" else spec.choices if spec else None
        return [
            Completion(c, "value", f"a value of {words[-2]}", quote(c), start)
            for c in choices or ()
            if c.startswith(typed)
        ]
    if len(words) >= 4 and words[-4:-1] == ["crm", "campaign", words[-2]] and words[-1] == "status":
        # `add to crm campaign "C" status "|`: the member statuses C declares (MR112)
        decl = analysis.symbols.crm_campaigns.get(unquote(words[-2]))
        node = decl.node if decl is not None else None
        statuses = node.statuses if isinstance(node, ast.CrmCampaignDecl) else None
        return [
            Completion(n.text, "value", "a member status", quote(n.text), start)
            for n in (statuses.values if statuses is not None else ())
            if n.text.startswith(typed)
        ]
    if words[-1] == "mark":  # `mark "|" of profile "P"`: a criterion of a profile (MR114)
        criteria = {
            c.name.text
            for d in analysis.symbols.profiles.values()
            if isinstance(d.node, ast.GradingProfile)
            for c in d.node.criteria
        }
        return [
            Completion(c, "value", "a grading criterion", quote(c), start)
            for c in sorted(criteria)
            if c.startswith(typed)
        ]
    if words[0] == "group" and "[" in words:  # `group "Sales" ["|`: its members are users
        return [
            Completion(n, "user", "user", quote(n), start)
            for n in _names(analysis, "user")
            if n.startswith(typed)
        ]
    for tail, namespace in _STRING_CONTEXTS:
        if tuple(words[-len(tail) :]) == tail:
            if len(words) == len(tail) and words[0] in ITEM_KEYWORDS:
                return []  # `list "` at the start of an item declares a list
            return [
                Completion(n, namespace, namespace, quote(n), start)
                for n in _names(analysis, namespace)
                if n.startswith(typed)
            ]
    return []


def _open_quote(line: str) -> int | None:
    """Where the string the cursor is in starts on its line, or None outside strings."""
    open_at, _ = _scan(line)
    return open_at


def _in_comment_or_string(text: str, offset: int) -> bool:
    """Whether `offset` is in a comment (after a `#` that is not in a string) or in a
    string."""
    line_start = text.rfind("\n", 0, offset) + 1
    open_at, in_comment = _scan(text[line_start:offset])
    return in_comment or open_at is not None


def _scan(line: str) -> tuple[int | None, bool]:
    """A line's text before the cursor: where the string the cursor is in starts (or
    None), and whether the cursor is in a comment. A string at a time, by regex: a loop
    over the characters took half a second a megabyte, at each hover and completion."""
    pos = 0
    while (found := _QUOTE_OR_HASH.search(line, pos)) is not None:
        if found.group() == "#":
            return None, True
        rest = _STRING_REST_ANY.match(line, found.end())
        if rest is None:  # not closed before the cursor: the cursor is in it
            return found.start(), False
        pos = rest.end()
    return None, False


_QUOTE_OR_HASH = re.compile(r'["#]')
# A string's rest to its closing quote, an escape any character (the line's `\r` too).
# Not `_STRING_REST`, which a line end stops: that one reads on from the cursor, where
# the rest of the text follows and a string ends with its line; this one reads the text
# of one line before the cursor, where a `\r` is a character like any other, as the scan
# of a line always took it (the differential tests of both hold them to that).
_STRING_REST_ANY = re.compile(r'(?:[^"\\]++|\\.)*+"', re.S)


# ------------------------------------------------------------------ code actions

_DID_YOU_MEAN_RE = re.compile(
    # a name may hold an apostrophe (`"O'Brien list"`): the hint ends at `'?` before a
    # space or the end of the hint, not at the name's first `'`
    r"did you mean '(.*?)'\?(?=\s|$)|(?:field names|keywords) are lowercase: '([^']*)'"
)


_UNUSED_RE = re.compile(r"unused suppression of ([^:]+):")
_SUPPRESSION_RE = re.compile(r"#\s*mrules:\s*(ignore-file|ignore)\b\s*(?:\[([^\]]*)\])?")


def quick_fix(diag: Diagnostic, text: str) -> str | None:
    """The replacement text for a diagnostic's span: what a did-you-mean hint proposes, or
    an unused suppression without its unused codes (nothing, when none is used); or None."""
    if diag.code == "MR030":
        return _trim_suppression(diag, text[diag.start : diag.end])
    m = _DID_YOU_MEAN_RE.search(diag.hint or "")
    if m is None:
        return None
    word = m.group(1) if m.group(1) is not None else m.group(2)
    current = text[diag.start : diag.end]
    if current.startswith('"'):
        return quote(word)
    if word.startswith("library/") and current.startswith('"'):
        return quote(word)
    return word


def _trim_suppression(diag: Diagnostic, comment: str) -> str | None:
    m = _SUPPRESSION_RE.match(comment)
    if m is None:
        return None
    unused = _UNUSED_RE.search(diag.message)
    if unused is None:  # nothing on the line at all
        return "" if diag.message.startswith("unused suppression") else None
    drop = {c.strip() for c in unused.group(1).split(",")}
    keep = [c.strip() for c in (m.group(2) or "").split(",") if c.strip() and c.strip() not in drop]
    if not keep:
        return ""
    return f"# mrules: {m.group(1)}[{', '.join(keep)}]" + comment[m.end() :]
