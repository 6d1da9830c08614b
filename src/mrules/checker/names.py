"""Names: every name a rule uses is declared once, in the right namespace.

Rules (codes MR101-MR117):

* a name is declared twice in one namespace (`list "MQL"` twice), or as both a
  static and a dynamic list (MR101);
* a field, list, user, asset, group, queue, campaign, CRM campaign (and its
  member status), grading profile (and its criteria) or scoring category that
  is used but never declared (MR102-MR115), with a did-you-mean over the right
  namespace: `add to list "MQl"` -> did you mean 'MQL'?;
* a name declared as another kind of asset: `on submit of form "Newsletter"`
  where "Newsletter" is an email (MR106);
* tags are created on the fly by Pardot, so an undeclared tag is only a
  warning (MR109): usually a typo of a declared one;
* two declarations in one namespace whose names differ only in case, in
  surrounding or repeated spaces, or in Unicode compatibility form (NFKC:
  `ﬁ` and `fi`, a full-width `Ａ`): `list "MQL"` and `list "mql "` (MR116, a
  warning: both work, but one is almost surely a mistake). An unknown name that
  looks like a declared one this way gets it as its did-you-mean;
* an assignment group with no member (`group "Sales" []`, MR117, a warning):
  `assign to group "Sales"` assigns nobody and `assigned to group "Sales"`
  never holds, while the rules read as if they worked.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

from mrules import ast
from mrules.checker import report
from mrules.checker.visit import nodes_of
from mrules.diagnostics import Diagnostic, Related
from mrules.symbols import Declared, Symbols
from mrules.vocab import ASSET_ACTIVITIES, TRIGGER_EVENTS

__all__ = [
    "USES_NAMES",
    "check_duplicates",
    "check_empty_groups",
    "check_lookalikes",
    "check_references",
    "look_key",
]


def look_key(name: str) -> str:
    """What a name looks like: NFKC, case-folded, spaces trimmed and collapsed.

    >>> look_key(" Cafe\u0301  Leads") == look_key("café leads")
    True
    """
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def check_lookalikes(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR116: declared names of one namespace that differ only in how they look."""
    tables: list[tuple[str, Mapping[str, Declared | None]]] = [
        ("field", {n: i.declared for n, i in sym.fields.items()}),
        ("user", sym.users),
        ("group", sym.groups),
        ("queue", sym.queues),
        ("list", {**sym.lists, **sym.dynamic_lists}),
        ("tag", sym.tags),
        ("campaign", sym.campaigns),
        ("crm campaign", sym.crm_campaigns),
        ("grading profile", sym.profiles),
        ("scoring category", sym.categories),
        ("page action", sym.page_actions),
        ("automation rule", sym.automation_rules),
        ("segmentation rule", sym.segmentation_rules),
    ]
    by_kind: dict[str, dict[str, Declared | None]] = defaultdict(dict)
    for (kind, asset), declared in sym.assets.items():
        by_kind[kind][asset] = declared
    tables += sorted(by_kind.items())
    for what, table in tables:
        first: dict[str, tuple[str, Declared | None]] = {}
        for name, decl in table.items():
            key = look_key(name)
            other, other_decl = first.setdefault(key, (name, decl))
            if other == name or decl is None:
                continue
            related = [] if other_decl is None else [
                report.note(other_decl.path, other_decl.name, "the other one")
            ]  # fmt: skip
            yield report.warning(
                "MR116",
                f"{what} '{name}' differs from {what} '{other}' only in case, spacing "
                "or Unicode form",
                decl.path,
                decl.name,
                hint=f"if they are one {what}, write '{other}' here; else rename one",
                related=related,
            )


def check_duplicates(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR101: one declaration per name and namespace; the first one counts."""
    for namespace, later, first in sym.duplicates:
        yield report.error(
            "MR101",
            f"{namespace} '{later.name.text}' is declared twice",
            later.path,
            later.name,
            hint="remove or rename one of them",
            related=[report.note(first.path, first.name, "first declared here")],
        )
    for name, dyn in sym.dynamic_lists.items():
        static = sym.lists.get(name)
        if static is not None:
            yield report.error(
                "MR101",
                f"list '{name}' is declared as both a static and a dynamic list",
                dyn.path,
                dyn.name,
                hint="list names are unique in Pardot; rename one",
                related=[report.note(static.path, static.name, "static list declared here")],
            )


def check_empty_groups(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR117: an assignment group with no member; its assignments would go to nobody."""
    for name, decl in sym.groups.items():
        node = decl.node
        if isinstance(node, ast.GroupDecl) and not node.members.values:
            yield report.warning(
                "MR117",
                f"assignment group '{name}' has no members: assigning to it assigns nobody",
                decl.path,
                node.members,
                hint="name the users who take its prospects in turn between the brackets, "
                "or remove the group and what assigns to it",
            )


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


USES_NAMES = frozenset(  # the node kinds that name something (the language server uses it too)
    {
        "field_test",
        "set_field",
        "increment_field",
        "sync_map",
        "in_list",
        "add_to_list",
        "remove_from_list",
        "tagged",
        "add_tag",
        "remove_tag",
        "assigned",
        "assign",
        "notify_user",
        "create_crm_task",
        "group_decl",
        "campaign_is",
        "change_source_campaign",
        "add_to_crm_campaign",
        "profile_is",
        "change_profile",
        "mark_profile_criterion",
        "category_score_compare",
        "adjust_category_score",
        "trigger",
        "activity",
        "send_autoresponder",
    }
)
USES_NAMES_ORDER = tuple(sorted(USES_NAMES))


class _Resolver:
    """Looks names up in `Symbols`; one speller per namespace, built on first need."""

    def __init__(self, sym: Symbols) -> None:
        self.sym = sym
        self.all_lists = {**sym.lists, **sym.dynamic_lists}
        self.asset_kinds: dict[str, list[str]] = defaultdict(list)
        self.assets_by_kind: dict[str, dict[str, object]] = defaultdict(dict)
        for kind, name in sym.assets:
            self.asset_kinds[name].append(kind)
            self.assets_by_kind[kind][name] = None
        self._spellers: dict[str, report.Speller] = {}
        self._composed: dict[str, dict[str, str]] = {}

    def _hint(self, namespace: str, pool: Iterable[str], word: str) -> str | None:
        looks = self._composed.get(namespace)
        if looks is None:
            looks = self._composed[namespace] = {}
            for name in pool:
                looks.setdefault(look_key(name), name)
        same = looks.get(look_key(word))
        if same is not None and same.casefold() == word.casefold():
            return f"did you mean '{same}'?"  # a difference of case shows
        if same is not None:  # names match exactly: one that only looks the same is another
            return (
                f"did you mean '{same}'? names match exactly: they differ in spacing "
                "or Unicode form"
            )
        speller = self._spellers.get(namespace)
        if speller is None:
            speller = self._spellers[namespace] = report.Speller(pool)
        return speller.suggest(word)

    def resolve(
        self,
        code: str,
        what: str,
        name: ast.Name,
        path: str,
        table: Mapping[str, object],
        declare: str,
        *,
        warn: bool = False,
        namespace: str | None = None,
    ) -> Iterator[Diagnostic]:
        if name.text in table:
            return
        hint = self._hint(namespace or what, table, name.text) or f"declare it: {declare}"
        make = report.warning if warn else report.error
        yield make(code, f"unknown {what} '{name.text}'", path, name, hint=hint)

    def asset(
        self, kind: str, name: ast.Name, path: str, verb: tuple[str, str]
    ) -> Iterator[Diagnostic]:
        """`verb` is ("trigger", "submit") for `on submit of ...`, ("activity",
        "submitted") for a criterion, ("autoresponder", "send") for `send autoresponder`:
        the hint writes what the declared kind takes there."""
        sym = self.sym
        if (kind, name.text) in sym.assets:
            return
        others = self.asset_kinds.get(name.text)
        if others:
            decl = sym.assets[(others[0], name.text)]
            yield report.error(
                "MR106",
                f"'{name.text}' is {report.a_or_an(others[0])}, not {report.a_or_an(kind)}",
                path,
                name,
                hint=_as_kind(others[0], name.text, verb),
                related=[report.note(decl.path, decl.name, "declared here")],
            )
            return
        yield from self.resolve(
            "MR105", kind, name, path, self.assets_by_kind[kind], f"{kind} {_quoted(name.text)}"
        )

    def field(self, name: ast.Name, path: str) -> Iterator[Diagnostic]:
        yield from self.resolve(
            "MR102", "field", name, path, self.sym.fields, f"field {name.text}: text"
        )

    def assignee(self, to: str, name: ast.Name, path: str) -> Iterator[Diagnostic]:
        code, table = {
            "user": ("MR104", self.sym.users),
            "group": ("MR107", self.sym.groups),
            "queue": ("MR108", self.sym.queues),
        }[to]
        yield from self.resolve(code, to, name, path, table, f"{to} {_quoted(name.text)}")

    def profile(self, name: ast.Name, path: str) -> Iterator[Diagnostic]:
        yield from self.resolve(
            "MR113",
            "grading profile",
            name,
            path,
            self.sym.profiles,
            f"grading profile {_quoted(name.text)} {{ ... }}",
        )

    def node(self, node: ast.Node, path: str) -> Iterator[Diagnostic]:
        if node.kind not in USES_NAMES:  # most nodes: a cheap exit before the match
            return
        sym = self.sym
        match node:
            case ast.FieldTest(field=name):
                for diag in self.field(name, path):
                    yield _criterion_keyword(diag, name.text)
            case (
                ast.SetField(field=name) | ast.IncrementField(field=name) | ast.SyncMap(field=name)
            ):
                yield from self.field(name, path)
            case ast.InList(list=name):
                yield from self.resolve(
                    "MR103", "list", name, path, self.all_lists, f"list {_quoted(name.text)}"
                )
            case ast.AddToList(list=name) | ast.RemoveFromList(list=name):
                if name.text not in sym.dynamic_lists:  # a dynamic target is MR303
                    yield from self.resolve(
                        "MR103",
                        "list",
                        name,
                        path,
                        sym.lists,
                        f"list {_quoted(name.text)}",
                        namespace="static list",
                    )
            case ast.Tagged(tag=name) | ast.AddTag(tag=name) | ast.RemoveTag(tag=name):
                yield from self.resolve(
                    "MR109", "tag", name, path, sym.tags, f"tag {_quoted(name.text)}", warn=True
                )
            case ast.Assigned(to=str(to), name=ast.Name() as name) | ast.Assign(to=to, name=name):
                yield from self.assignee(to, name, path)
            case ast.NotifyUser(user=name) | ast.CreateCrmTask(owner=ast.Name() as name):
                yield from self.assignee("user", name, path)
            case ast.GroupDecl(members=members):
                for member in members.values:
                    yield from self.assignee("user", member, path)
            case ast.CampaignIs(campaign=name) | ast.ChangeSourceCampaign(campaign=name):
                yield from self.resolve(
                    "MR110", "campaign", name, path, sym.campaigns, f"campaign {_quoted(name.text)}"
                )
            case ast.AddToCrmCampaign(campaign=name, status=status):
                yield from self.crm_campaign(name, status, path)
            case ast.ProfileIs(profile=name) | ast.ChangeProfile(profile=name):
                yield from self.profile(name, path)
            case ast.MarkProfileCriterion(criterion=crit, profile=profile):
                yield from self.profile(profile, path)
                yield from self.criterion(crit, profile, path)
            case ast.CategoryScoreCompare(category=name) | ast.AdjustCategoryScore(category=name):
                yield from self.resolve(
                    "MR115",
                    "scoring category",
                    name,
                    path,
                    sym.categories,
                    f"scoring category {_quoted(name.text)} folders [...]",
                )
            case ast.Trigger(verb=verb, asset_kind=kind, asset=name):
                yield from self.asset(kind, name, path, ("trigger", verb))
            case ast.Activity(verb=verb, asset_kind=str(kind), name=ast.Name() as name):
                yield from self.asset(kind, name, path, ("activity", verb))
            case ast.SendAutoresponder(email=name):
                yield from self.asset("email", name, path, ("autoresponder", "send"))
            case _:
                pass

    def criterion(self, crit: ast.Name, profile: ast.Name, path: str) -> Iterator[Diagnostic]:
        decl = self.sym.profiles.get(profile.text)
        if decl is None or not isinstance(decl.node, ast.GradingProfile):
            return
        known = [c.name.text for c in decl.node.criteria]
        if crit.text not in known:
            yield _not_among(
                "MR114",
                f"profile '{profile.text}' has no criterion '{crit.text}'",
                path,
                crit,
                known,
                "criteria",
                report.note(decl.path, decl.name, "profile declared here"),
            )

    def crm_campaign(
        self, name: ast.Name, status: ast.Name | None, path: str
    ) -> Iterator[Diagnostic]:
        decl = self.sym.crm_campaigns.get(name.text)
        if decl is None:
            yield from self.resolve(
                "MR111",
                "crm campaign",
                name,
                path,
                self.sym.crm_campaigns,
                f"crm campaign {_quoted(name.text)}",
            )
            return
        node = decl.node
        if status is None or not isinstance(node, ast.CrmCampaignDecl) or node.statuses is None:
            return
        statuses = [s.text for s in node.statuses.values]
        if status.text not in statuses:
            yield _not_among(
                "MR112",
                f"crm campaign '{name.text}' has no member status '{status.text}'",
                path,
                status,
                statuses,
                "statuses",
                report.note(decl.path, node.statuses, "statuses declared here"),
            )


def check_references(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR102-MR115: every name used resolves to a declaration of the right kind."""
    resolver = _Resolver(sym)
    for path, node in nodes_of(program, USES_NAMES_ORDER):
        yield from resolver.node(node, path)


def _as_kind(kind: str, name: str, verb: tuple[str, str]) -> str:
    """The hint for an asset of `kind` named where another kind was written: with the
    verb the trigger or criterion needs for it (`on click of email "N"`, not `on
    submit of ...`)."""
    named = f"{kind} {_quoted(name)}"
    if verb[0] == "autoresponder":
        return f"an autoresponder is an email: name one, or declare it: `email {_quoted(name)}`"
    if verb[0] == "trigger":
        trigger = next(v for v, k in TRIGGER_EVENTS.values() if k == kind)
        return f"write `on {trigger} of {named}`"
    verbs = [str(v) for v, kinds in ASSET_ACTIVITIES.items() if kind in kinds]
    if verb[1] in verbs:
        return f"write `{verb[1]} {named}`"
    return "write " + " or ".join(f"`{v} {named}`" for v in verbs)


def _not_among(
    code: str,
    message: str,
    path: str,
    name: ast.Name,
    choices: list[str],
    plural: str,
    declared: Related,
) -> Diagnostic:
    """A name that is not one of a declaration's members, with a suggestion."""
    return report.error(
        code,
        message,
        path,
        name,
        hint=report.did_you_mean(name.text, choices) or f"{plural}: " + ", ".join(choices),
        related=[declared],
    )


# Criteria that look like a field test but are keywords: `scor >= 1` means `score >= 1`.
_CRITERION_KEYWORDS = ("score", "grade")


def _criterion_keyword(diag: Diagnostic, word: str) -> Diagnostic:
    """An unknown field in a criterion that is closer to `score` or `grade` than to any
    field gets that keyword as its hint."""
    keyword = difflib.get_close_matches(word, _CRITERION_KEYWORDS, n=1, cutoff=0.6)
    if not keyword:
        return diag
    best = keyword[0]
    current = re.match(r"did you mean '(.*)'\?$", diag.hint or "")
    if current is not None:
        theirs = difflib.SequenceMatcher(None, word, current.group(1)).ratio()
        if theirs > difflib.SequenceMatcher(None, word, best).ratio():
            return diag
    return diag.model_copy(update={"hint": f"did you mean '{best}'? (a keyword, not a field)"})
