"""Actions: allowed where they stand, within Pardot's limits, not fighting each other.

Rules (codes MR301-MR312):

* an action its context cannot take (MR301): `set score to`, profile actions,
  `do not sync` and `allow crm recreate` only in automation rules (§4.5);
  segmentation rules only add/remove lists and tags and add to CRM campaigns
  (§6.1); `priority` only in page actions;
* `priority` twice in one page action (MR302, a warning);
* adding to or removing from a dynamic list, whose members come from its
  criteria (MR303);
* an automation or segmentation rule without `when` or `then`, a dynamic
  list without `when`, or a `when` with no criterion in it (MR304: `all { }`
  would hold for every prospect, `any { }` for none);
* one rule (or one asset's completion actions) adding and removing the same
  list or tag: the outcome depends on an undefined order (MR305);
* a rule that repeats with no cooldown (`repeat every 0 days`) and adjusts
  score without a cap: the score grows on every evaluation (MR306); with no
  cooldown otherwise (MR307, a warning); `at most 0 times` never fires (MR308);
* more than 6 conditional groups (MR309) or 15 actions (MR310) on one asset,
  counted over every `on` block for that asset (§2.5);
* a standard and a conditional assignment, or a standard and a conditional
  autoresponder, on one asset (MR311);
* two automation rules with the same priority (MR312, a warning): ties run in
  file order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from mrules import ast
from mrules.checker import report
from mrules.checker.visit import ActionSite, actions, context_of, items
from mrules.diagnostics import Diagnostic
from mrules.symbols import Symbols

__all__ = [
    "ACTION_WORDS",
    "ALLOWED",
    "MAX_ACTIONS",
    "MAX_CONDITIONALS",
    "check_actions",
    "check_asset_limits",
    "check_rule_parts",
]

ACTION_WORDS = {
    "add_to_list": "add to list",
    "remove_from_list": "remove from list",
    "add_tag": "add tag",
    "remove_tag": "remove tag",
    "adjust_score": "score",
    "adjust_category_score": "score in category",
    "set_score": "set score to",
    "assign": "assign to",
    "assign_by_crm_rule": "assign by crm rule",
    "set_field": "set",
    "increment_field": "increment",
    "change_source_campaign": "change source campaign",
    "add_to_crm_campaign": "add to crm campaign",
    "create_crm_task": "create crm task",
    "notify_user": "notify user",
    "notify_assigned_user": "notify assigned user",
    "send_autoresponder": "send autoresponder",
    "change_profile": "change profile",
    "mark_profile_criterion": "mark ... of profile",
    "do_not_sync": "do not sync",
    "allow_crm_recreate": "allow crm recreate",
    "priority": "priority",
}
_AUTOMATION_ONLY = {
    "set_score",
    "change_profile",
    "mark_profile_criterion",
    "do_not_sync",
    "allow_crm_recreate",
}
_EVERY_ACTION = set(ACTION_WORDS) - {"priority"}
ALLOWED: dict[str, set[str]] = {
    "completion_actions": _EVERY_ACTION - _AUTOMATION_ONLY,
    "page_action": (_EVERY_ACTION - _AUTOMATION_ONLY) | {"priority"},
    "automation_rule": _EVERY_ACTION,
    "segmentation_rule": {
        "add_to_list",
        "remove_from_list",
        "add_tag",
        "remove_tag",
        "add_to_crm_campaign",
    },
}
_HINTS = {
    "completion_actions": "use an automation rule for this action",
    "page_action": "use an automation rule for this action",
    "segmentation_rule": "segmentation rules only add or remove lists and tags and add to "
    "CRM campaigns",
}
MAX_CONDITIONALS = 6
MAX_ACTIONS = 15


def check_actions(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR301-MR303: actions allowed in their context, aimed at static lists."""
    priority_seen: dict[int, ast.Node] = {}
    for path, item, action, _cond in actions(program):
        if action.kind not in ALLOWED[item.kind]:
            where = (
                "a completion action"
                if isinstance(item, ast.CompletionActions)
                else (context_of(item))
            )
            hint = _HINTS.get(item.kind)
            if action.kind == "priority":
                hint = "`priority` marks a priority page; only page actions have it"
            yield report.error(
                "MR301",
                f"'{ACTION_WORDS[action.kind]}' is not allowed in {where}",
                path,
                action,
                hint=hint,
            )
        if isinstance(action, ast.PriorityFlag) and isinstance(item, ast.PageAction):
            first = priority_seen.setdefault(id(item), action)
            if first is not action:
                yield report.warning(
                    "MR302",
                    "`priority` is already set for this page action",
                    path,
                    action,
                    hint="remove the repeat",
                    related=[report.note(path, first, "first set here")],
                )
        if isinstance(action, ast.AddToList | ast.RemoveFromList):
            name = action.list
            decl = sym.dynamic_lists.get(name.text)
            if decl is not None and name.text not in sym.lists:
                yield report.error(
                    "MR303",
                    f"'{name.text}' is a dynamic list; its members come from its criteria",
                    path,
                    name,
                    hint="target a static list, or change the dynamic list's criteria",
                    related=[report.note(decl.path, decl.name, "dynamic list declared here")],
                )


def _no_criterion(node: ast.Node) -> bool:
    """A criteria group with no criterion in it (`when all { }`, `all { any { } }`): at
    run time `all` of nothing holds for every prospect and `any` of nothing for none."""
    return isinstance(node, ast.Group) and all(_no_criterion(c) for c in node.items)


def _empty_when_hint(group: ast.Group, what: str) -> str:
    """The hint of an empty `when`: the group is there, a criterion is what it lacks."""
    holds = "every prospect" if group.match == "all" else "no prospect"
    return (
        f"put a criterion in the `{group.match}` group (`when {group.match} "
        f"{{ score > 50 }}`), or remove the {what}: "
        f"`{group.match}` of nothing matches {holds}"
    )


def check_rule_parts(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR304, MR306-MR308, MR312: rules have their parts and sane repeats and priorities."""
    priorities: dict[int, ast.AutomationRule] = {}
    paths: dict[int, str] = {}
    for path, item in items(program):
        if isinstance(item, ast.AutomationRule | ast.SegmentationRule | ast.DynamicList):
            what = item.kind.replace("_", " ")
            needs = ("when",) if isinstance(item, ast.DynamicList) else ("when", "then")
            for part in needs:
                missing = item.when is None if part == "when" else not getattr(item, "then", ())
                empty = part == "when" and item.when is not None and _no_criterion(item.when)
                if missing or empty:
                    yield report.error(
                        "MR304",
                        f"{what} '{item.name.text}' has "
                        + (f"an empty `{part}`" if empty else f"no `{part}`"),
                        path,
                        item.when if empty and item.when is not None else item.name,
                        hint=_empty_when_hint(item.when, what)
                        if empty and isinstance(item.when, ast.Group)
                        else "add `when all { ... }`"
                        if part == "when"
                        else "add `then { ... }` with at least one action",
                    )
        if isinstance(item, ast.AutomationRule):
            yield from _repeat(path, item)
            first = priorities.setdefault(item.priority, item)
            paths.setdefault(item.priority, path)
            if first is not item:
                yield report.warning(
                    "MR312",
                    f"automation rules '{first.name.text}' and '{item.name.text}' "
                    f"share priority {item.priority}",
                    path,
                    item.name,
                    hint="ties run in file order; give each rule its own priority",
                    related=[report.note(paths[item.priority], first.name, "same priority here")],
                )


def _repeat(path: str, rule: ast.AutomationRule) -> Iterator[Diagnostic]:
    rep = rule.repeat
    if rep is None:
        return
    if rep.max_times == 0:
        yield report.error(
            "MR308",
            "`at most 0 times` means the rule never fires",
            path,
            rep,
            hint="remove `repeat` for a rule that fires once per prospect",
        )
        return  # a rule that never fires has no cooldown to speak of
    if rep.every_days != 0:
        return
    scores = [
        a
        for a in rule.then
        if isinstance(a, ast.AdjustScore | ast.AdjustCategoryScore | ast.IncrementField)
    ]
    if scores and rep.max_times is None:
        yield report.error(
            "MR306",
            f"'{rule.name.text}' repeats with no cooldown and no cap while it adjusts "
            "score: the score changes on every evaluation",
            path,
            rep,
            hint="give it a cooldown (`repeat every 7 days`) or a cap (`at most 3 times`)",
            related=[report.note(path, scores[0], "adjusted here")],
        )
    else:
        yield report.warning(
            "MR307",
            f"'{rule.name.text}' repeats with no cooldown",
            path,
            rep,
            hint="the rule matches again on every change to the prospect; "
            "use `repeat every N days` with N > 0",
        )


def _asset_key(item: ast.Node) -> tuple[str, ...]:
    if isinstance(item, ast.CompletionActions):
        return (item.trigger.asset_kind, item.trigger.asset.text)
    return ("page action", str(id(item)))


def check_asset_limits(program: ast.Program, sym: Symbols) -> Iterator[Diagnostic]:
    """MR305, MR309-MR311: per asset, over all its `on` blocks (a page action is one asset)."""
    by_asset: dict[tuple[str, ...], list[ActionSite]] = defaultdict(list)
    conditionals: dict[tuple[str, ...], list[tuple[str, ast.Conditional]]] = defaultdict(list)
    counted: set[int] = set()
    by_rule: dict[int, list[ActionSite]] = defaultdict(list)
    for site in actions(program):
        if isinstance(site.item, ast.AutomationRule | ast.SegmentationRule):
            by_rule[id(site.item)].append(site)
        else:
            key = _asset_key(site.item)
            if not isinstance(site.action, ast.PriorityFlag):
                by_asset[key].append(site)
            if site.conditional is not None and id(site.conditional) not in counted:
                counted.add(id(site.conditional))
                conditionals[key].append((site.path, site.conditional))
    for key, conds in conditionals.items():
        if len(conds) > MAX_CONDITIONALS:
            path, cond = conds[MAX_CONDITIONALS]
            yield report.error(
                "MR309",
                f"{len(conds)} conditional groups on {_asset_words(key)}; "
                f"Pardot allows {MAX_CONDITIONALS}",
                path,
                cond,
                hint="merge groups, or move the logic to automation rules",
            )
    for key, sites in by_asset.items():
        if len(sites) > MAX_ACTIONS:
            site = sites[MAX_ACTIONS]
            yield report.error(
                "MR310",
                f"{len(sites)} completion actions on {_asset_words(key)}; "
                f"Pardot allows {MAX_ACTIONS}",
                site.path,
                site.action,
                hint="move some actions to an automation rule that reacts to a tag or list",
            )
        yield from _standard_vs_conditional(sites)
        yield from _add_and_remove(sites)
    for sites in by_rule.values():  # a rule's actions, like an asset's, are one trigger's
        yield from _add_and_remove(sites)


def _asset_words(key: tuple[str, ...]) -> str:
    return "this page action" if key[0] == "page action" else f"{key[0]} '{key[1]}'"


_EXCLUSIVE = {
    "assign": "assignment",
    "assign_by_crm_rule": "assignment",
    "send_autoresponder": "autoresponder",
}


def _standard_vs_conditional(sites: list[ActionSite]) -> Iterator[Diagnostic]:
    standard: dict[str, ActionSite] = {}
    for site in sites:
        group = _EXCLUSIVE.get(site.action.kind)
        if group is not None and site.conditional is None:
            standard.setdefault(group, site)
    for site in sites:
        group = _EXCLUSIVE.get(site.action.kind)
        if group is None or site.conditional is None or group not in standard:
            continue
        first = standard[group]
        yield report.error(
            "MR311",
            f"a conditional {group} on an asset that also has a standard {group}",
            site.path,
            site.action,
            hint=f"the prospect would get both; put every {group} in its own conditional group",
            related=[report.note(first.path, first.action, f"standard {group} here")],
        )


def _add_and_remove(sites: list[ActionSite]) -> Iterator[Diagnostic]:
    """MR305 over the actions of one rule or one asset, given in load order."""
    added: dict[tuple[str, str], int] = {}
    removed: dict[tuple[str, str], int] = {}
    for i, site in enumerate(sites):
        match site.action:
            case ast.AddToList(list=n):
                added.setdefault(("list", n.text), i)
            case ast.RemoveFromList(list=n):
                removed.setdefault(("list", n.text), i)
            case ast.AddTag(tag=n):
                added.setdefault(("tag", n.text), i)
            case ast.RemoveTag(tag=n):
                removed.setdefault(("tag", n.text), i)
            case _:
                pass
    for (what, name), rem in removed.items():
        add = added.get((what, name))
        if add is None:
            continue
        later, earlier = sites[max(rem, add)], sites[min(rem, add)]
        yield report.error(
            "MR305",
            f"{what} '{name}' is both added and removed here",
            later.path,
            later.action,
            hint="actions of one trigger run in no defined order; keep one of them",
            related=[report.note(earlier.path, earlier.action, "the other action")],
        )
