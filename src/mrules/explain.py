"""Why a prospect stands where it does: its explanation, built from its ledger rows.

`mrules explain` renders it and `mrules test` checks `because:` expectations
against it; both read the same dict, so a test's expectation and the command's
answer cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mrules.engine import iso
from mrules.records import Activity
from mrules.vocab import MESSAGE_ACTIONS, Action, EventType

__all__ = ["attach_views", "damaged_steps", "explanation"]


_ACTIONS = {a.value: a for a in Action}  # an action this mrules does not know stays text


# The argument each action's explanation reads, and its type: every step the engine
# writes has it. A step without it was damaged in the store (a name's text changed).
_NEEDS: dict[str, tuple[str, type]] = {
    Action.SCORE: ("points", int),
    Action.ADD_TO_LIST: ("list", str),
    Action.REMOVE_FROM_LIST: ("list", str),
    Action.ADD_TAG: ("tag", str),
    Action.REMOVE_TAG: ("tag", str),
    Action.SET_FIELD: ("field", str),
    Action.RULE_MATCHED: ("count", int),
}


def attach_views(rows: list[dict[str, Any]], activities: Callable[[], Iterable[Activity]]) -> None:
    """Name the anonymous page view behind each score step a visitor's history gave.

    A visitor that becomes a prospect brings its page views made while anonymous, each
    scored by one step naming only the visitor (`attached_from`): alike, they would
    read as the same line twice. The engine scores them in the order they arrived, and
    they arrived before any view the visitor made once known; so with `activities()` in
    arrival order (read only when such a step exists), the k-th such step of a visitor
    gets its k-th page view as `attached_view`: read back, not kept twice in the store,
    and right whatever times the stream gave the views.
    """
    steps: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        vid = (r["args"] or {}).get("attached_from") if r["action"] == Action.SCORE else None
        if isinstance(vid, str):
            steps.setdefault(vid, []).append(r)
    if not steps:
        return
    views: dict[str, list[dict[str, Any]]] = {vid: [] for vid in steps}
    for a in activities():
        if a.visitor in views and a.type == EventType.PAGE_VIEW:
            views[a.visitor].append(
                {
                    "line": a.line,
                    "id": a.event_id,
                    "source": a.source,
                    "time": iso(a.ts),
                    "url": a.url,
                }
            )
    for vid, scored in steps.items():
        # The visitor's page views after it was known are its too: zip stops at its steps.
        for r, view in zip(scored, views[vid], strict=False):
            r["attached_view"] = view


def damaged_steps(rows: list[dict[str, Any]]) -> str | None:
    """What is wrong with the first step that lacks the argument its explanation reads."""
    for r in rows:
        need = _NEEDS.get(r["action"])
        if need is None:
            continue
        key, kind = need
        value = (r["args"] or {}).get(key)
        if type(value) is not kind:
            return f"a {r['action']} step (seq {r['seq']}) has no {key}: {r['args']!r:.60}"
    return None


def explanation(state: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each point of score, each list and tag, the assignment, fields and grade, with causes.

    `rows` are action-log records of one prospect, in ledger order. Only what
    still holds is explained: a list removed later is not listed.
    """
    score: list[dict[str, Any]] = []
    lists: dict[str, dict[str, Any]] = {}
    tags: dict[str, dict[str, Any]] = {}
    fields: dict[str, dict[str, Any]] = {}
    assignment = grading = crm_status = sync_flag = None
    rules: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for r in rows:
        action, args = _ACTIONS.get(r["action"], r["action"]), r["args"] or {}
        if action is Action.SCORE:
            score.append(r)
        elif action is Action.SET_SCORE:
            score = [r]  # an absolute score replaces everything before it
        elif action is Action.ADD_TO_LIST:
            lists[args["list"]] = r
        elif action is Action.REMOVE_FROM_LIST:
            lists.pop(args["list"], None)
        elif action is Action.ADD_TAG:
            tags[args["tag"]] = r
        elif action is Action.REMOVE_TAG:
            tags.pop(args["tag"], None)
        elif action is Action.SET_FIELD:
            fields[args["field"]] = r
        elif action is Action.OPT_OUT:  # an unsubscribe sets the `opted_out` field too
            fields["opted_out"] = {**r, "args": {**args, "field": "opted_out"}}
        elif action is Action.ASSIGN:
            assignment = r
        elif action is Action.CRM_STATUS:
            crm_status = r
        elif action in (Action.DO_NOT_SYNC, Action.ALLOW_CRM_RECREATE):
            sync_flag = r
        elif action in (Action.GRADING, Action.GRADE) and r["before"] != r["after"]:
            # The last step that changed the grade: a criterion of another profile, or
            # one marked as it was, leaves it; a profile change that moves it is
            # followed by its own `grade` step (a `change profile` step's values are
            # profile names, not grades).
            grading = r
        elif action is Action.RULE_MATCHED:
            rules.append(r)
        elif action in MESSAGE_ACTIONS:
            messages.append(r)
    return {
        "prospect": state,
        "score": score,
        "score_total": _total(score),
        "lists": list(lists.values()),
        "tags": list(tags.values()),
        "assignment": assignment,
        "fields": list(fields.values()),
        "grading": grading,
        # The step that gave the CRM status, and the one that marked the prospect do not
        # sync while it is so marked (a record undeleted in the CRM clears the mark with
        # no step of its own: the state, not the ledger, says whether it holds).
        "crm": {
            "status": crm_status,
            "do_not_sync": sync_flag
            if state.get("do_not_sync") and sync_flag is not None and sync_flag["after"] is True
            else None,
        },
        "rules_matched": rules,
        "outbox_and_crm": messages,
    }


def _total(score: list[dict[str, Any]]) -> int:
    total = 0
    for r in score:
        total = r["after"] if r["action"] == Action.SET_SCORE else total + r["args"]["points"]
    return total
