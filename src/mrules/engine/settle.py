"""Settlement and timers: the automation rules and dynamic lists that read what changed,
until quiet; ticks that wake only the prospects whose time has come; segmentation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import orjson
from mypy_extensions import trait

from mrules.compiler import (
    NEW_PROSPECT,
    CompiledRule,
)
from mrules.engine.context import Context
from mrules.engine.effects import run_action
from mrules.engine.parts import EngineParts
from mrules.history import json_text
from mrules.state import Prospect
from mrules.vocab import Action

_dumps: Final = orjson.dumps
_INF: Final = float("inf")
_json: Final = json_text


@trait
class Settlement(EngineParts):
    """Rule evaluation of `Engine`: settle, try a rule, dynamic lists, ticks, segment."""

    def _tick_all(self) -> None:
        """The clock moved: re-check time-based rules for the prospects whose time has come.

        A rule's outcome changes only when a fact it reads changes (the prospect
        is settled then) or when a time threshold is crossed (its timers). So a
        tick evaluates just the prospects with a wake-up time now past, plus
        those touched since the last tick, whose wake-up time is computed here.
        """
        if not self._time_rules and not self._time_dynamic:
            return
        now = self.now
        due: set[str] = set()
        settled_at = self._settled_at
        peek = self._peek
        if self._wake_all:  # the first tick after a restart: every stored prospect once
            self._wake_all = False
            for email, data in self.store.prospects():
                if email not in settled_at:
                    self._due_or_schedule(peek(email, data), -_INF, due)
        for email, settled in settled_at.items():
            self._due_or_schedule(peek(email), settled, due)
        self._settled_at = {}
        due.update(self._wakes.pop_due(now))
        if self._exhaustive_ticks:
            due = {email for email, _data in self._every()}
        get = self._get
        for email in sorted(due):  # sorted: shared counters must not depend on dict order
            p = get(email)
            assert p is not None
            # What the rules change is logged, and a logged step marks its prospect to be
            # written (`Engine.log`): nothing more to mark here.
            self._evaluate(Context(p), self._time_rules, self._time_dynamic)
            self._wakes.schedule(email, self._wake(p, now))

    def _due_or_schedule(self, p: Prospect | None, settled: float, due: set[str]) -> None:
        """A prospect settled at `settled`: due now, or its next wake-up time queued."""
        assert p is not None
        when = self._wake(p, settled)
        if when <= self.now:
            due.add(p.email)
            self._wakes.cancel(p.email)
        else:
            self._wakes.schedule(p.email, when)

    def _wake(self, p: Prospect, since: float) -> float:
        """The first moment after `since` when a time-based rule could change its outcome."""
        best = _INF
        matches = p.matches
        for rule in self._time_rules:
            if rule.repeat_seconds is None:
                if p.latched & rule.bit:
                    continue  # latched for good
                m = None
            else:
                m = matches.get(rule.key) if matches else None
            if m is not None:
                if rule.max_times is not None and m[0] >= rule.max_times:
                    continue
                t = m[1] + (rule.repeat_seconds or 0.0)  # the cooldown ends (m: it repeats)
                if since < t < best:
                    best = t
            for timer in rule.timers:
                when = timer(p)
                if when is not None and since < when < best:
                    best = when
        for dl in self._time_dynamic:
            for timer in dl.timers:
                when = timer(p)
                if when is not None and since < when < best:
                    best = when
        return best

    # ------------------------------------------------------- automation rules

    def _evaluate(
        self, c: Context, rules: Iterable[CompiledRule], lists: Iterable[CompiledRule]
    ) -> None:
        """Evaluate these rules and dynamic lists for a prospect, then settle what changed.

        The lists first, as in each round of `_settle`: a rule reads them as the
        prospect now makes them (at a tick that crosses a list's threshold and a
        rule's at once, or when a new rule reads a new list), not as they were,
        for its match would stick. Each rule's change is followed by the lists
        before the next rule reads them.
        """
        cs = self.cs
        for dl in lists:
            self._dynamic(c, dl)
        if "list" in c.facts and cs.dynamic_by_fact.get("list"):
            self._chained_lists(c)
        for rule in rules:
            mark = self.seq
            self._try_rule(c, rule)
            if self.seq != mark and cs.dynamic_lists:
                self._lists_follow(c, c.facts)
        if c.facts:
            self._settle(c)

    def _settle(self, c: Context) -> None:
        """Re-evaluate the rules and dynamic lists that read what changed, until quiet.

        A prospect whose rules still change something after as many rounds as
        there are rules and dynamic lists, plus two (two dynamic lists that add and
        remove each other), is left as it stands and reported
        (`RunSummary.unsettled`), with the rules that acted in one more round.
        """
        cs, p, changed = self.cs, c.p, c.facts
        if self._fresh == p.email:
            changed = changed | {NEW_PROSPECT}
            self._fresh = None
        rounds = len(cs.rules) + len(cs.dynamic_lists) + 2
        try_rule, dynamic = self._try_rule, self._dynamic
        dynamic_lists = bool(cs.dynamic_lists)
        for _ in range(rounds):
            if not changed:
                return
            key = frozenset(changed)
            found = self._candidates.get(key)
            if found is None:
                found = self._candidates[key] = self._candidates_for(key)
            rules, dyn = found
            c.facts = changed = set()  # what this round's rules change
            # Dynamic lists first: membership is derived from the prospect's data, and a
            # rule that reads a list sees it as the data now makes it (a rule that ran
            # first read the membership from before the change, and its match stuck).
            for dl in dyn:
                dynamic(c, dl)
            if changed and cs.dynamic_by_fact.get("list"):
                self._chained_lists(c)
            for rule in rules:
                if rule.repeat_seconds is None and p.latched & rule.bit:
                    continue  # matched once, never again (checked again in _try_rule)
                mark = self.seq
                try_rule(c, rule)
                if self.seq != mark and dynamic_lists:
                    # the lists that read what the rule changed follow before the next
                    # rule of the round reads them
                    self._lists_follow(c, changed)
        if changed:
            self._unsettled(c, changed)

    def _lists_now(self, c: Context) -> None:
        """Bring the dynamic lists up to date with what the event changed so far, rules
        aside: a completion action's condition reads them before its actions run (§2.5).
        The facts stay in `c.facts` (with `list`, if a list changed) for `_settle`."""
        changed = set(c.facts)
        if self._fresh == c.p.email:  # `_settle` still sees the prospect as new
            changed.add(NEW_PROSPECT)
        if changed:
            self._lists_follow(c, changed)

    def _lists_follow(self, c: Context, changed: set[str]) -> None:
        """The dynamic lists that read `changed` follow it now, then the lists that read a
        list that changed."""
        key = frozenset(changed)
        found = self._candidates.get(key)
        if found is None:
            found = self._candidates[key] = self._candidates_for(key)
        for dl in found[1]:
            self._dynamic(c, dl)
        if "list" in c.facts and self.cs.dynamic_by_fact.get("list"):
            self._chained_lists(c)

    def _chained_lists(self, c: Context) -> None:
        """A list changed by the lists' update: the lists that read lists follow it now, in
        as many passes as there are dynamic lists (a list declared before the one it reads
        needs a second), so the rules of this round read them up to date."""
        cs, dynamic = self.cs, self._dynamic
        readers = [cs.dynamic_lists[i] for i in cs.dynamic_by_fact["list"]]
        for _ in range(len(cs.dynamic_lists)):
            mark = self.seq
            for dl in readers:
                dynamic(c, dl)
            if self.seq == mark:
                return

    def _candidates_for(
        self, key: frozenset[str]
    ) -> tuple[tuple[CompiledRule, ...], tuple[CompiledRule, ...]]:
        cs = self.cs
        found: set[int] = set()
        for f in key:
            found.update(cs.dynamic_by_fact.get(f, ()))
        rules = tuple(cs.rules[i] for i in cs.candidates(key))
        return rules, tuple(cs.dynamic_lists[i] for i in sorted(found))

    def _unsettled(self, c: Context, changed: set[str]) -> None:
        """One more round, noting which rules still act, then report the prospect."""
        p, before = c.p, self.seq
        acting: list[str] = []
        rules, dyn = self._candidates_for(frozenset(changed))
        c.facts = set()
        for rule in (*dyn, *rules):  # lists first, as in each round of _settle
            mark = self.seq
            if rule in dyn:
                self._dynamic(c, rule)
            else:
                self._try_rule(c, rule)
            if self.seq != mark:
                acting.append(f"{rule.ref.kind} '{rule.ref.name}' ({rule.ref.loc})")
        if self.seq == before:
            return  # it settled on that last round after all
        report = {
            "prospect": p.email,
            # standard input's lines count from 1 at every run: `- (run N)` tells them apart
            "source": self.reject_source if self.source == "-" else self.source_label,
            "line": self.line or None,
            "id": self.event_id,
            "reason": "its rules do not settle: they keep changing it; left as it stands",
            "rules": acting,
        }
        self.summary.unsettled.append(report)
        self.batch.unsettled.append(report)  # for the diagnostics file, as it commits
        self.report_units.append(self.unit)

    def _try_rule(self, c: Context, rule: CompiledRule) -> None:
        p, now = c.p, self.now
        if rule.repeat_seconds is None:
            if p.latched & rule.bit or (p.matches and rule.key in p.matches):
                return  # matched once, never again, never undone (§4.2)
            if not rule.when(p, now):
                return
            p.latched |= rule.bit
            count = 1
        else:
            m = p.matches.get(rule.key) if p.matches else None
            if m is None and p.latched & rule.bit:
                m = (1, -_INF)  # it fired once before it was made to repeat
            if m is not None:
                if rule.max_times is not None and m[0] >= rule.max_times:
                    return
                if now - m[1] < rule.repeat_seconds:
                    return
            if not rule.when(p, now):
                return
            count = (m[0] if m else 0) + 1
            if p.matches is None:
                p.matches = {}
            p.matches[rule.key] = (count, now)
        self.log(p, rule.ref, Action.RULE_MATCHED, {"count": count}, None, None)
        self.summary.matches[rule.ref] += 1
        for a in rule.actions:
            run_action(self, a, c, rule.ref, None)

    def _dynamic(self, c: Context, dl: CompiledRule) -> None:
        p = c.p
        member = bool(p.dynamic & dl.bit)
        wanted = dl.when(p, self.now)
        if wanted == member:
            return
        if wanted:
            p.dynamic |= dl.bit
            args = {"list": dl.name, "dynamic": True}
            self.log(p, dl.ref, Action.ADD_TO_LIST, args, False, True)
        else:
            p.dynamic &= ~dl.bit
            self.log(
                p, dl.ref, Action.REMOVE_FROM_LIST, {"list": dl.name, "dynamic": True}, True, False
            )
        c.facts.add("list")

    # ------------------------------------------------------------ segmentation

    def segment(self, commit_every: int | None = None, line: int = 0) -> dict[str, int]:
        """Run every segmentation rule once over every prospect (§6.1).

        `commit_every`: commit (`commit(line)`) each time that many prospects have
        changed, so that the changes are not all held until the end (`mrules segment`
        does it within the store's `one_transaction`); None: the caller commits.
        """
        counts: dict[str, int] = {}
        self.line, self.event_id, self._row = 0, None, None
        for rule in self.cs.segmentation:
            counts[rule.name] = 0
            for email, data in self._every():
                p = self._peek(email, data)
                assert p is not None
                if rule.when(p, self.now):
                    counts[rule.name] += 1
                    p = self._get(email, data)  # cached from here: its actions change it
                    assert p is not None
                    self.unit += 1
                    c = Context(p)
                    for a in rule.actions:
                        run_action(self, a, c, rule.ref, None)
                    if c.facts:
                        self._settle(c)
                    if commit_every is not None and len(self.dirty) >= commit_every:
                        self.commit(line)
        return counts
