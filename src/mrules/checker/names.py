"""Names: every name a rule uses is declared once, in the right namespace.

Rules (codes MR101-MR116):

* a name is declared twice in one namespace (`list "MQL"` twice), or as both a
  static and a dynamic list (MR101);
* a field, list, user, asset, group, queue, campaign, CRM campaign (and its
  member status), grading profile (and its criteria) or scoring category that
  is used but never declared (MR102-MR115), with a did-you-mean over the right
  namespace: `add to list "MQl"` -> did you mean 'MQL'?;
* a name declared as another kind of asset: `on submit of form "Newsletter"`
  where "Newsletter" is an email (MR106);
* tags are created on the fly by Pardot, so an undeclared tag is only a
  warning (MR109): usually a typo of a declared one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from mrules import ast
from mrules.checker import report
from mrules.checker.visit import items
from mrules.diagnostics import Diagnostic
from mrules.symbols import Symbols

__all__ = ["check_duplicates", "check_references"]


def check_duplicates(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR101: one declaration per name and namespace; the first one counts."""
    for namespace, later, first in sym.duplicates:
        yield report.error(
            "MR101", f"{namespace} '{later.name.text}' is declared twice", later.path, later.name,
            hint="remove or rename one of them",
            related=[report.note(first.path, first.name, "first declared here")],
        )
    for name, dyn in sym.dynamic_lists.items():
        static = sym.lists.get(name)
        if static is not None:
            yield report.error(
                "MR101", f"list '{name}' is declared as both a static and a dynamic list",
                dyn.path, dyn.name, hint="list names are unique in Pardot; rename one",
                related=[report.note(static.path, static.name, "static list declared here")],
            )


def _unknown(code: str, what: str, name: ast.Name, path: str, pool: Iterable[str],
             declare: str, *, warn: bool = False) -> Diagnostic:
    hint = report.did_you_mean(name.text, pool) or f"declare it: {declare}"
    make = report.warning if warn else report.error
    return make(code, f"unknown {what} '{name.text}'", path, name, hint=hint)


def _resolve(code: str, what: str, name: ast.Name, path: str, table: Mapping[str, object],
             declare: str, *, warn: bool = False) -> Iterator[Diagnostic]:
    if name.text not in table:
        yield _unknown(code, what, name, path, table, declare, warn=warn)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _asset(kind: str, name: ast.Name, path: str, sym: Symbols) -> Iterator[Diagnostic]:
    if (kind, name.text) in sym.assets:
        return
    others = [k for (k, n) in sym.assets if n == name.text]
    if others:
        decl = sym.assets[(others[0], name.text)]
        yield report.error(
            "MR106", f"'{name.text}' is {report.a_or_an(others[0])}, not {report.a_or_an(kind)}",
            path, name, hint=f"write `{others[0]} {_quoted(name.text)}`",
            related=[report.note(decl.path, decl.name, "declared here")],
        )
        return
    yield _unknown("MR105", kind, name, path, sym.asset_names(kind),
                   f"{kind} {_quoted(name.text)}")


def _field(name: ast.Name, path: str, sym: Symbols) -> Iterator[Diagnostic]:
    yield from _resolve("MR102", "field", name, path, sym.fields, f"field {name.text}: text")


def _list(name: ast.Name, path: str, pool: Mapping[str, object], kind: str = "list"
          ) -> Iterator[Diagnostic]:
    yield from _resolve("MR103", "list", name, path, pool, f"{kind} {_quoted(name.text)}")


def _assignee(to: str, name: ast.Name, path: str, sym: Symbols) -> Iterator[Diagnostic]:
    code, table = {"user": ("MR104", sym.users), "group": ("MR107", sym.groups),
                   "queue": ("MR108", sym.queues)}[to]
    yield from _resolve(code, to, name, path, table, f"{to} {_quoted(name.text)}")


def _profile(name: ast.Name, path: str, sym: Symbols) -> Iterator[Diagnostic]:
    yield from _resolve("MR113", "grading profile", name, path, sym.profiles,
                        f"grading profile {_quoted(name.text)} {{ ... }}")


def _node(node: ast.Node, path: str, sym: Symbols) -> Iterator[Diagnostic]:
    match node:
        case ast.FieldTest(field=name) | ast.SetField(field=name) | ast.IncrementField(
            field=name
        ) | ast.SyncMap(field=name):
            yield from _field(name, path, sym)
        case ast.InList(list=name):
            yield from _list(name, path, {**sym.lists, **sym.dynamic_lists})
        case ast.AddToList(list=name) | ast.RemoveFromList(list=name):
            if name.text not in sym.dynamic_lists:  # a dynamic target is MR303
                yield from _list(name, path, sym.lists)
        case ast.Tagged(tag=name) | ast.AddTag(tag=name) | ast.RemoveTag(tag=name):
            yield from _resolve("MR109", "tag", name, path, sym.tags,
                                f"tag {_quoted(name.text)}", warn=True)
        case ast.Assigned(to=str(to), name=ast.Name() as name) | ast.Assign(to=to, name=name):
            yield from _assignee(to, name, path, sym)
        case ast.NotifyUser(user=name) | ast.CreateCrmTask(owner=ast.Name() as name):
            yield from _assignee("user", name, path, sym)
        case ast.GroupDecl(members=members):
            for member in members.values:
                yield from _assignee("user", member, path, sym)
        case ast.CampaignIs(campaign=name) | ast.ChangeSourceCampaign(campaign=name):
            yield from _resolve("MR110", "campaign", name, path, sym.campaigns,
                                f"campaign {_quoted(name.text)}")
        case ast.AddToCrmCampaign(campaign=name, status=status):
            yield from _crm_campaign(name, status, path, sym)
        case ast.ProfileIs(profile=name) | ast.ChangeProfile(profile=name):
            yield from _profile(name, path, sym)
        case ast.MarkProfileCriterion(criterion=crit, profile=profile):
            yield from _profile(profile, path, sym)
            decl = sym.profiles.get(profile.text)
            if decl is not None and isinstance(decl.node, ast.GradingProfile):
                known = [c.name.text for c in decl.node.criteria]
                if crit.text not in known:
                    yield report.error(
                        "MR114", f"profile '{profile.text}' has no criterion '{crit.text}'",
                        path, crit, hint=report.did_you_mean(crit.text, known)
                        or "criteria: " + ", ".join(known),
                        related=[report.note(decl.path, decl.name, "profile declared here")],
                    )
        case ast.CategoryScoreCompare(category=name) | ast.AdjustCategoryScore(category=name):
            yield from _resolve("MR115", "scoring category", name, path, sym.categories,
                                f"scoring category {_quoted(name.text)} folders [...]")
        case ast.Trigger(asset_kind=kind, asset=name):
            yield from _asset(kind, name, path, sym)
        case ast.Activity(asset_kind=str(kind), name=ast.Name() as name):
            yield from _asset(kind, name, path, sym)
        case ast.SendAutoresponder(email=name):
            yield from _asset("email", name, path, sym)
        case _:
            pass


def _crm_campaign(name: ast.Name, status: ast.Name | None, path: str, sym: Symbols
                  ) -> Iterator[Diagnostic]:
    decl = sym.crm_campaigns.get(name.text)
    if decl is None:
        yield _unknown("MR111", "crm campaign", name, path, sym.crm_campaigns,
                       f"crm campaign {_quoted(name.text)}")
        return
    node = decl.node
    if status is None or not isinstance(node, ast.CrmCampaignDecl) or node.statuses is None:
        return
    statuses = [s.text for s in node.statuses.values]
    if status.text not in statuses:
        yield report.error(
            "MR112", f"crm campaign '{name.text}' has no member status '{status.text}'",
            path, status, hint=report.did_you_mean(status.text, statuses)
            or "statuses: " + ", ".join(statuses),
            related=[report.note(decl.path, node.statuses, "statuses declared here")],
        )


def check_references(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR102-MR115: every name used resolves to a declaration of the right kind."""
    for path, item in items(program):
        for node in ast.walk(item):
            yield from _node(node, path, sym)
