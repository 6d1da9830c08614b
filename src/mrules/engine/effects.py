"""Effects: what compiled actions do to a prospect, dispatched through `EFFECTS` by name,
and the seed's order of a completion action's phases (`_run_blocks`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from sys import intern as _intern
from typing import Any, Final

import orjson
from mypy_extensions import trait

from mrules.compiler import (
    PHASE_ASSIGN,
    PHASE_DATA,
    PHASE_SIDE,
    CompiledAction,
    CompiledBlock,
    RuleRef,
)
from mrules.engine.context import Context
from mrules.engine.parts import EngineParts
from mrules.history import json_text
from mrules.policy import can_assign, member_for, round_robin
from mrules.state import Prospect, grade_letter
from mrules.vocab import Action

_dumps: Final = orjson.dumps
_INF: Final = float("inf")
_json: Final = json_text
# The submissions `always_send_autoresponder` is for: Pardot's isAlwaysEmail is an
# option of forms and form handlers (a landing page's completion actions are its
# form's). Other assets keep throttling their autoresponders (§2.3-3).
_ALWAYS: Final = ("form_submit:", "form_handler_submit:", "landing_page_submit:")


# (member kind, added?) -> (the Prospect bit-set attribute, the ledger action)
_MARKS: Final = {
    ("list", True): ("lists", Action.ADD_TO_LIST),
    ("list", False): ("lists", Action.REMOVE_FROM_LIST),
    ("tag", True): ("tags", Action.ADD_TAG),
    ("tag", False): ("tags", Action.REMOVE_TAG),
}


@trait
class Effects(EngineParts):
    """The effects of `Engine`: every change goes to the ledger through `log`."""

    # ------------------------------------------------------ completion actions

    def _active(self, block: CompiledBlock, ts: float) -> bool:
        since = self.block_since.get(block.key)
        return since is None or ts >= since

    def _run_blocks(self, c: Context, blocks: tuple[CompiledBlock, ...], asset_key: str) -> None:
        """The seed's order: assignment, data changes, automation rules, then side effects."""
        p, now = c.p, self.now
        matches = self.summary.matches
        if len(blocks) == 1 and not blocks[0].conditionals:  # most triggers: one plain block
            b = blocks[0]
            ref = b.ref
            matches[ref] += 1
            found = self._phased.get(b.key)
            if found is None:
                found = self._phased[b.key] = phases(b)
            assign, data, side_actions = found
            for a in assign:
                run_action(self, a, c, ref, asset_key)
            for a in data:
                run_action(self, a, c, ref, asset_key)
            self._settle(c)
            if side_actions:
                c.facts = set()
                for a in side_actions:
                    run_action(self, a, c, ref, asset_key)
                if c.facts:
                    self._settle(c)
            return
        if any(b.lists_first for b in blocks):
            self._lists_now(c)  # `if in list "D"` reads D as this event's data makes it
        chosen: list[tuple[CompiledAction, RuleRef]] = []
        for b in blocks:
            matches[b.ref] += 1
            chosen.extend((a, b.ref) for a in b.actions)
            for pred, actions in b.conditionals:  # conditions are read at trigger time
                if pred(p, now):
                    chosen.extend((a, b.ref) for a in actions)
        for phase in (PHASE_ASSIGN, PHASE_DATA):
            for a, ref in chosen:
                if a.phase == phase:
                    run_action(self, a, c, ref, asset_key)
        self._settle(c)
        side = [(a, ref) for a, ref in chosen if a.phase == PHASE_SIDE]
        if side:
            c.facts = set()
            for a, ref in side:
                run_action(self, a, c, ref, asset_key)
            if c.facts:
                self._settle(c)

    def _score(self, c: Context, ref: RuleRef, points: int, args: dict[str, Any]) -> None:
        p = c.p
        if points == 0:
            return  # a +0 scoring row changes nothing and is not worth a ledger line
        before = p.score
        p.score = before + points
        c.facts.add("score")
        self.log(p, ref, Action.SCORE, {"points": points, **args}, before, p.score)

    def _category(self, c: Context, ref: RuleRef, category: str, points: int) -> None:
        p = c.p
        if points == 0:
            return  # as for `_score`: a +0 row (Pardot's email open) adds nothing
        cats = p.categories if p.categories is not None else {}
        before = cats.get(category, 0)
        cats[category] = before + points
        p.categories = cats
        c.facts.add("score")
        self.log(
            p,
            ref,
            Action.CATEGORY_SCORE,
            {"category": category, "points": points},
            before,
            before + points,
        )

    def _set_field(self, c: Context, ref: RuleRef, name: str, value: Any) -> None:
        p = c.p
        if name == "opted_out":  # the email status `opted out` reads, not a field of its own
            if value is not True and value is not False:
                # A blank is no answer (an empty form field, an import's empty cell), nor
                # is a value that is not true or false (`"maybe"` kept by
                # `bad_field_values = "keep"`): the status is never blank, and an opt-out
                # is not lost to one.
                return
            on = value
            if p.opted_out != on:
                p.opted_out = on
                if name in self.cs.most_recent:
                    p.stamps = {**(p.stamps or {}), name: self.event_ts}
                c.facts.update(("opted_out", "f:opted_out"))
                self.log(p, ref, Action.SET_FIELD, {"field": name}, not on, on)
            return
        before = p.field(name)
        if before == value:
            return
        name = _intern(name)  # one str per field name, not one per prospect
        p.set_field(name, value)  # a short text value is kept as its shared copy
        if name in self.cs.most_recent:
            p.stamps = {**(p.stamps or {}), name: self.event_ts}
        c.facts.add("f:" + name)
        self.log(p, ref, Action.SET_FIELD, {"field": name}, before, value)

    def _throttled(self, c: Context, key: str) -> bool:
        """Repeat activity within the window neither scores nor resends (§2.3).

        Decided once per event and key: the actions of one trigger (several
        scores, the autoresponders of several conditional groups) are not
        repeat activity of each other.
        """
        window = self._throttle
        if window <= 0:
            return False
        known = self._decided(c, key)
        if known is not None:
            return known
        p = c.p
        last = p.throttle.get(key) if p.throttle else None
        held = last is not None and self.now - last < window
        if not held:
            if p.throttle is None:
                p.throttle = {}
            p.throttle[_intern(key)] = self.now
        return self._decide(c, key, held)

    def _decided(self, c: Context, key: str) -> bool | None:
        """This event's answer for a throttle `key`, if given already (None: not yet)."""
        decided = c.throttled
        known = None if decided is None else decided.get(key)
        if known:
            self.summary.actions["throttled"] += 1
        return known

    def _decide(self, c: Context, key: str, held: bool) -> bool:
        """Give this event's answer for a throttle `key`: every action of it gets the same."""
        if held:
            self.summary.actions["throttled"] += 1
        if c.throttled is None:
            c.throttled = {}
        c.throttled[key] = held
        return held

    # ------------------------------------------- operations compiled actions call

    def mark(self, c: Context, ref: RuleRef, member: str, name: str, bit: int, on: bool) -> None:
        """Add to (`on`) or remove from a static list or a tag: one bit of `p.lists` or `p.tags`."""
        p = c.p
        attr, action = _MARKS[member, on]
        bits = getattr(p, attr)
        if bool(bits & bit) == on:
            return
        setattr(p, attr, bits | bit if on else bits & ~bit)
        c.facts.add(member)
        self.log(p, ref, action, {member: name}, not on, on)

    def adjust_score(self, c: Context, ref: RuleRef, points: int, asset_key: str | None) -> None:
        # Completion-action scores are throttled; page-action scores count every view.
        throttled = asset_key is not None and not asset_key.startswith("page:")
        if throttled and self._throttled(c, "score|" + asset_key):  # type: ignore[operator]
            return
        self._score(c, ref, points, {})

    def adjust_category(
        self, c: Context, ref: RuleRef, category: str, points: int, asset_key: str | None
    ) -> None:
        # `score +N in category` is the same Adjust score action: throttled as `score` is,
        # with the same answer for one activity, so the two scores never drift apart.
        throttled = asset_key is not None and not asset_key.startswith("page:")
        if throttled and self._throttled(c, "score|" + asset_key):  # type: ignore[operator]
            return
        self._category(c, ref, category, points)

    def set_score(self, c: Context, ref: RuleRef, value: int) -> None:
        p = c.p
        if p.score == value:
            return
        before, p.score = p.score, value
        c.facts.add("score")
        self.log(p, ref, Action.SET_SCORE, {"value": value}, before, value)

    def assign(self, c: Context, ref: RuleRef, kind: str, name: str) -> None:
        p = c.p
        if not can_assign(p.assigned_kind):
            self.summary.actions["assignment kept"] += 1
            return  # assignment never reassigns (§2.3)
        p.assigned_kind, p.assigned_to, p.assigned_at = kind, name, self.now
        c.facts.add("assigned")
        self.log(p, ref, Action.ASSIGN, {"to": kind, "name": name}, None, name)
        if p.crm_status in ("none", "deleted") and not p.do_not_sync:
            # Assignment is what creates the CRM record (§7.3).
            self._queue_create(c, ref)

    def _queue_create(self, c: Context, ref: RuleRef) -> None:
        p = c.p
        self.crm_work(
            c,
            ref,
            "create_record",
            {"object": self.cs.create_on_assignment, "owner": p.assigned_to, "as": p.assigned_kind},
        )

    def assign_group(self, c: Context, ref: RuleRef, group: str, members: tuple[str, ...]) -> None:
        p = c.p
        if p.assigned_kind is not None or not members:
            if p.assigned_kind is not None:
                self.summary.actions["assignment kept"] += 1
            return
        if self.settings.round_robin == "by prospect":  # the same in any partition
            self.assign(c, ref, "user", member_for(members, p.email))
            return
        # The round-robin counter is shared across prospects: it lives in `shared`.
        key = "round_robin:" + group
        member, self.shared[key] = round_robin(members, int(self.shared.get(key, 0)))
        self.shared_dirty = True
        self.assign(c, ref, "user", member)

    def assign_by_crm_rule(self, c: Context, ref: RuleRef) -> None:
        p = c.p
        if p.assigned_kind is not None:
            self.summary.actions["assignment kept"] += 1
            return
        p.assigned_kind, p.assigned_to, p.assigned_at = "crm rule", None, self.now
        c.facts.add("assigned")
        self.log(p, ref, Action.ASSIGN, {"to": "crm rule"}, None, "crm rule")
        self.crm_work(c, ref, "assignment_rule", {"object": self.cs.create_on_assignment})

    def set_field(self, c: Context, ref: RuleRef, name: str, value: Any) -> None:
        self._set_field(c, ref, name, value)

    def increment_field(self, c: Context, ref: RuleRef, name: str, by: float) -> None:
        p = c.p
        before = p.field(name)
        try:
            base = float(before) if before not in (None, "") else 0.0
        except (TypeError, ValueError, OverflowError):
            base = 0.0
        if not math.isfinite(base):  # "nan" or "inf" kept as text is no count
            base = 0.0
        try:
            after = base + by
        except OverflowError:
            after = base
        # A whole number is stored as an int, within the 64 bits JSON tools read.
        whole = math.isfinite(after) and after.is_integer() and abs(after) < 2**63
        self._set_field(c, ref, name, int(after) if whole else after)

    def set_campaign(self, c: Context, ref: RuleRef, name: str) -> None:
        p = c.p
        if p.campaign == name:
            return
        before, p.campaign = p.campaign, name
        c.facts.add("campaign")
        self.log(p, ref, Action.SOURCE_CAMPAIGN, {"campaign": name}, before, name)

    def crm_work(self, c: Context, ref: RuleRef, kind: str, payload: dict[str, Any]) -> None:
        """Work the CRM must do (the sync carries it out later)."""
        p = c.p
        self.log(p, ref, "crm " + kind.replace("_", " "), payload, None, None)
        # The CRM work itself is this ledger step: stores derive `crm_pending` from it.

    def notify(self, c: Context, ref: RuleRef, user: str | None, asset_key: str | None) -> None:
        p = c.p
        to = user
        if to is None:
            to = p.assigned_to if p.assigned_kind == "user" else None
            if to is None:
                self.summary.actions["notify skipped (no assigned user)"] += 1
                return
        if (
            asset_key is not None
            and asset_key.startswith("page:")
            and self._notify_held(c, asset_key)
        ):
            return  # one page-action notification per prospect, page and hour (§3)
        self._outbox(c, ref, Action.NOTIFY, {"to": to, "prospect": p.email})

    def _notify_held(self, c: Context, asset_key: str) -> bool:
        """A repeat view within the window notifies nobody; one view notifies every user.

        Decided once per view, as `_throttled` decides.
        """
        key = "notify|" + asset_key
        known = self._decided(c, key)
        if known is not None:
            return known
        p = c.p
        last = p.notified.get(asset_key) if p.notified else None
        held = last is not None and self.now - last < self._notify_window
        if not held:
            p.notified = {**(p.notified or {}), _intern(asset_key): self.now}
        return self._decide(c, key, held)

    def autoresponder(self, c: Context, ref: RuleRef, email: str, asset_key: str | None) -> None:
        p = c.p
        if p.opted_out or p.field("do_not_email") is True:
            self.summary.actions["autoresponder skipped (opted out or do not email)"] += 1
            return
        if (
            asset_key is not None
            and not (self.settings.always_send_autoresponder and asset_key.startswith(_ALWAYS))
            and self._throttled(c, "autoresponder|" + asset_key)
        ):
            return
        self._outbox(c, ref, Action.AUTORESPONDER, {"email": email, "to": p.email})

    def _outbox(self, c: Context, ref: RuleRef, kind: str, payload: dict[str, Any]) -> None:
        p = c.p
        self.log(p, ref, kind, payload, None, None)
        # The message itself is this ledger step: stores derive the outbox from it.

    def change_profile(self, c: Context, ref: RuleRef, name: str) -> None:
        p = c.p
        current = p.profile or self.cs.default_profile
        if current == name:
            return
        before = p.grade
        p.profile = name
        p.grade = self.grade(p)
        c.facts.add("grade")
        self.log(p, ref, Action.CHANGE_PROFILE, {"profile": name}, current, name)
        if p.grade != before:
            self.log(p, ref, Action.GRADE, {}, before, p.grade)

    def mark_criterion(self, c: Context, ref: RuleRef, key: str, sign: int) -> None:
        p = c.p
        crit = p.criteria or {}
        if crit.get(key, 0) == sign:
            return
        before = p.grade
        if sign:
            crit[key] = sign
        else:
            crit.pop(key, None)
        p.criteria = crit or None
        p.grade = self.grade(p)
        c.facts.add("grade")
        profile, _, criterion = key.partition("|")
        state = {1: "matches", -1: "does not match", 0: "not known"}[sign]
        self.log(
            p,
            ref,
            Action.GRADING,
            {"profile": profile, "criterion": criterion, "state": state},
            before,
            p.grade,
        )

    def set_sync_flag(self, c: Context, ref: RuleRef, do_not_sync: bool) -> None:
        p = c.p
        # The rule's cause is kept apart from the CRM's deletion (which sets `do_not_sync`
        # alone), so an undelete in the CRM does not lift a rule's `do not sync` (§7.8).
        p.dns_by_rule = do_not_sync
        if p.do_not_sync == do_not_sync:
            return
        p.do_not_sync = do_not_sync
        c.facts.add("crm")
        self.log(
            p,
            ref,
            "do not sync" if do_not_sync else "allow crm recreate",
            {},
            not do_not_sync,
            do_not_sync,
        )
        if (
            not do_not_sync
            and p.crm_status in ("none", "deleted")
            and p.assigned_kind in ("user", "queue")
        ):
            # `allow crm recreate` on an assigned prospect without a live CRM record: the
            # next sync must find (by email) or create its record (§7.8).
            self._queue_create(c, ref)

    def grade(self, p: Prospect) -> str | None:
        """The grade computed from the profile and criterion states (kept in `p.grade`)."""
        rank = self.cs.grade_of(p)
        return None if rank is None else grade_letter(rank)


_PHASE_ORDER: Final = (PHASE_ASSIGN, PHASE_DATA, PHASE_SIDE)


def phases(b: CompiledBlock) -> tuple[tuple[CompiledAction, ...], ...]:
    """A block's actions by phase (assignment, data, side effects), each in block order."""
    return tuple(tuple(a for a in b.actions if a.phase == ph) for ph in _PHASE_ORDER)


# Compiled actions are data (`CompiledAction.op`, `.operands`): the effect each names.
# Every effect is called as EFFECTS[op](engine, context, rule ref, asset key, *operands).
EFFECTS: Final[dict[str, Callable[..., None]]] = {
    "add_to_list": lambda e, c, r, k, name, bit: e.mark(c, r, "list", name, bit, True),
    "remove_from_list": lambda e, c, r, k, name, bit: e.mark(c, r, "list", name, bit, False),
    "add_tag": lambda e, c, r, k, name, bit: e.mark(c, r, "tag", name, bit, True),
    "remove_tag": lambda e, c, r, k, name, bit: e.mark(c, r, "tag", name, bit, False),
    "adjust_score": lambda e, c, r, k, points: e.adjust_score(c, r, points, k),
    "adjust_category": lambda e, c, r, k, cat, points: e.adjust_category(c, r, cat, points, k),
    "set_score": lambda e, c, r, k, value: e.set_score(c, r, value),
    "assign": lambda e, c, r, k, kind, name: e.assign(c, r, kind, name),
    "assign_group": lambda e, c, r, k, group, members: e.assign_group(c, r, group, members),
    "assign_by_crm_rule": lambda e, c, r, k: e.assign_by_crm_rule(c, r),
    "set_field": lambda e, c, r, k, name, value: e.set_field(c, r, name, value),
    "increment_field": lambda e, c, r, k, name, by: e.increment_field(c, r, name, by),
    "set_campaign": lambda e, c, r, k, name: e.set_campaign(c, r, name),
    "crm_work": lambda e, c, r, k, kind, payload: e.crm_work(c, r, kind, payload),
    "notify": lambda e, c, r, k, user: e.notify(c, r, user, k),
    "autoresponder": lambda e, c, r, k, email: e.autoresponder(c, r, email, k),
    "change_profile": lambda e, c, r, k, name: e.change_profile(c, r, name),
    "mark_criterion": lambda e, c, r, k, key, sign: e.mark_criterion(c, r, key, sign),
    "set_sync_flag": lambda e, c, r, k, flag: e.set_sync_flag(c, r, flag),
}


def run_action(engine: Any, a: CompiledAction, c: Context, ref: RuleRef, key: str | None) -> None:
    """Run one compiled action on the context's prospect: its effect with its operands."""
    EFFECTS[a.op](engine, c, ref, key, *a.operands)
