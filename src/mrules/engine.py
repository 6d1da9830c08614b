"""The run loop of `mrules run`: events in, prospect state, ledger and outbox out.

One event at a time, in stream order:
1. skip it if its `id` was applied before (safe replay);
2. move the clock to its time (event time, never backwards);
3. find or create the prospect (a visitor's page views stay anonymous until a
   form submit or `identify` ties the visitor to a prospect; then they count
   for default scoring and activity criteria, but page actions and completion
   actions are never replayed for them, reference §2.3);
4. apply what the event means: fields, activity, default scoring, the page
   action, the asset's completion actions in the seed's order (assignment,
   then data changes in declared order, then automation rules, then
   notifications, autoresponders and tasks);
5. settle the prospect: re-evaluate only the automation rules and dynamic
   lists that read a fact the event changed (`CompiledRuleSet.candidates`;
   every rule for a new prospect), in priority order, until nothing changes.

Ticks (and `--now`) re-check time-based rules only for the prospects whose
next threshold has passed: a heap of wake-up times fed by the compiled
timers (`_tick_all`). Anonymous page views are not kept in memory: they are
activity rows, read back from the store when the visitor converts.

Every change goes to the ledger (the `explain` command and `--actions` read
it); notifications and autoresponders go to the outbox; work that needs the
CRM goes to pending CRM work. Every `batch_size` lines the engine hands the
store one `Batch`: the changed prospects, the applied ids, the ledger rows and
the stream position, committed in one transaction, so that a killed run
resumes exactly where its last commit left it.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from sys import intern as _intern
from typing import Any

import orjson

from mrules.checker.report import did_you_mean
from mrules.compiler import (
    ASSET_EVENTS,
    NEW_PROSPECT,
    PHASE_ASSIGN,
    PHASE_DATA,
    PHASE_SIDE,
    CompiledAction,
    CompiledBlock,
    CompiledRule,
    CompiledRuleSet,
    RuleRef,
)
from mrules.events import ASSET_KINDS, Event, Reject
from mrules.state import Prospect, grade_letter
from mrules.store import Batch, Store
from mrules.symbols import FieldInfo, Symbols
from mrules.urls import normalize_url

__all__ = ["Engine", "RunSummary", "iso"]

_dumps = orjson.dumps
_INF = float("inf")


def _json(value: Any) -> str:
    """JSON text of a ledger value; the common scalars skip the encoder."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    return _dumps(value).decode()


def iso(ts: float | None) -> str | None:
    """Epoch seconds to RFC 3339 UTC text."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class RunSummary:
    """What a run did, for the summary table and the exit status."""

    lines: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    ignored: int = 0
    prospects_created: int = 0
    resumed_from: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    retroactive: list[str] = field(default_factory=list)
    # Warnings (docs/events.md): events applied although they name an asset the
    # rules do not declare, by "form 'X' (did you mean 'Y'?)"; field values that do
    # not fit their field, by reason (skipped, or kept with bad_field_values = "keep").
    # Past 100 distinct causes, the rest are counted together under "".
    unknown_assets: Counter[str] = field(default_factory=Counter)
    bad_fields: Counter[str] = field(default_factory=Counter)
    bad_fields_kept: bool = False

    @property
    def events_per_second(self) -> float:
        return self.applied / self.seconds if self.seconds > 0 else 0.0


class Engine:
    """Runs one compiled rule set over events, against one store."""

    def __init__(
        self,
        rules: CompiledRuleSet,
        store: Store,
        *,
        source: str = "-",
        batch_size: int = 2000,
        on_commit: Callable[[Batch], None] | None = None,
        exhaustive_ticks: bool = False,
        source_label: str | None = None,
    ) -> None:
        self.cs = rules
        self.store = store
        self.source = source  # the stream's identity in the store (an absolute path)
        self.source_label = source_label or source  # how the ledger shows it
        self.batch_size = batch_size
        self.on_commit = on_commit
        self.settings = rules.settings
        self.summary = RunSummary()
        self.prospects: dict[str, Prospect] = {}
        # Visitors tied to a prospect (visitor id -> the prospect's email). Anonymous
        # views live in the store's activities table, and in `_anonymous` until the
        # batch holding them commits: memory holds no history.
        self.visitors: dict[str, str] = {}
        self._anonymous: dict[str, list[tuple[float, str]]] = {}
        self.applied: set[str] = set()
        self.clock: float | None = None
        self.now = 0.0
        self.seq = 0
        self.shared: dict[str, Any] = {}
        self.shared_dirty = False
        self.dirty: set[str] = set()
        self.dirty_visitors: set[str] = set()
        self.changed: set[str] = set()
        self.line = 0
        self.event_id: str | None = None
        self.event_ts = 0.0
        self.block_since: dict[str, float | None] = {}
        self.batch = Batch(source=source, line=0, clock=None)
        self._candidates: dict[frozenset[str], tuple[int, ...]] = {}
        self._dyn_candidates: dict[frozenset[str], tuple[int, ...]] = {}
        self._handlers: dict[str, Callable[[Event], None]] = {
            "page_view": self._page_view,
            "form_submit": self._asset_event,
            "form_handler_submit": self._asset_event,
            "landing_page_submit": self._asset_event,
            "email_open": self._asset_event,
            "email_click": self._asset_event,
            "file_download": self._asset_event,
            "custom_redirect_click": self._asset_event,
            "identify": self._identify,
            "prospect_update": self._prospect_update,
            "unsubscribe": self._unsubscribe,
            "crm_update": self._crm_update,
            "tick": self._tick,
        }
        self._event_ref: dict[str, RuleRef] = {}
        # Time-based rules: a heap of (when the outcome may next change, prospect),
        # and the prospects touched since the last tick with the clock they were
        # settled at (their next wake-up is computed lazily at the next tick).
        self._time_rules = tuple(rules.rules[i] for i in rules.time_rules)
        self._time_dynamic = tuple(
            rules.dynamic_lists[i] for i in rules.dynamic_by_fact.get("time", ())
        )
        self._wakes: list[tuple[float, str]] = []
        self._settled_at: dict[str, float] = {}
        self._fresh: str | None = None  # a prospect created by the current event
        self._act_cache: dict[tuple[str, str], tuple[str, ...]] = {}
        # Tests compare the wake-up heap with re-checking every prospect at every tick.
        self._exhaustive_ticks = exhaustive_ticks
        self._throttle = self.settings.throttle_minutes * 60.0
        self._notify_window = self.settings.page_notify_minutes * 60.0
        # What the rules declare, to make unknown assets and ill-fitting field
        # values visible (settings `unknown_assets`, `bad_field_values`).
        self._asset_policy = self.settings.unknown_assets
        self._field_policy = self.settings.bad_field_values
        self.summary.bad_fields_kept = self._field_policy == "keep"
        self._assets = frozenset(rules.symbols.assets)
        self._unknown_text: dict[tuple[str, str], str] = {}
        self._field_info = _typed_fields(rules.symbols)
        self._screening = self._asset_policy == "reject" or (
            self._field_policy == "reject" and bool(self._field_info)
        )

    # ------------------------------------------------------------------ start

    def start(self) -> int:
        """Load the store, apply new rules retroactively; returns the line to resume after."""
        st = self.store
        codecs = self.cs.codecs
        self.prospects = {email: Prospect.from_json(data, codecs) for email, data in st.prospects()}
        self.visitors = {
            vid: self.prospects[pr].email if pr in self.prospects else pr
            for vid, pr, _ in st.visitors()
            if pr is not None
        }
        self.applied = st.applied_ids()
        self.clock = st.clock()
        self.now = self.clock or 0.0
        self.seq = st.max_seq()
        self.shared = {k: orjson.loads(v) for k, v in st.shared().items()}
        first_seen = st.rules_first_seen()
        new_keys = [k for k in self.cs.rule_keys if k not in first_seen]
        for key in new_keys:
            first_seen[key] = self.clock
            self.batch.rules.append((key, self.cs.rule_keys[key], self.clock))
        for blocks in self.cs.blocks.values():
            for b in blocks:
                self.block_since[b.key] = _later(b.since, first_seen.get(b.key))
        for pa in self.cs.page_actions:
            b = pa.block
            self.block_since[b.key] = _later(b.since, first_seen.get(b.key))
        self.batch.ruleset_version = self.cs.version
        self._track_new_activity_keys()
        if self.prospects:
            self._retroactive({k for k in new_keys if k.startswith(("rule:", "dynamic:"))})
        if self._time_rules or self._time_dynamic:
            # No wake-up times survive a restart: the first tick looks at everyone once.
            self._settled_at = dict.fromkeys(self.prospects, -_INF)
        self.summary.resumed_from = 0 if self.source == "-" else st.stream_position(self.source)
        return self.summary.resumed_from

    def _track_new_activity_keys(self) -> None:
        """Activity criteria new to the store learn the history from the activities table.

        A prospect keeps the last time of only the activity keys some criterion
        reads; a rule set that reads a new one gets it from the stored history.
        """
        tracked = set(self.shared.get("activity_keys", []))
        keys = self.cs.activity_keys
        new = {k for k in keys if k not in tracked}
        if not new:
            return
        if self.prospects:
            visited = [(k, m) for k, m in self.cs.visited if k in new]
            for row in self.store.activities():
                prospect, _visitor, ts, etype, _kind, asset, url = row[:7]
                p = self.prospects.get(prospect) if prospect is not None else None
                if p is None:
                    continue
                if etype == "page_view" and url is not None:
                    u = normalize_url(url, self.settings)
                    hits = [k for k, match in visited if match(u)]
                else:
                    hits = [k for k in self._activity_keys(etype, asset or "") if k in new]
                for key in hits:
                    p.touch(key, ts)
                    self.dirty.add(prospect)
        self.shared["activity_keys"] = sorted(tracked | set(keys))
        self.shared_dirty = True

    def _activity_keys(self, etype: str, asset: str) -> tuple[str, ...]:
        """The keys an asset event touches that some criterion reads (shared strs)."""
        found = self._act_cache.get((etype, asset))
        if found is None:
            verb, kind = ASSET_EVENTS[etype]
            keys = self.cs.activity_keys
            found = tuple(
                keys[k] for k in (f"{verb}|{kind}|{asset}", f"{verb}|{kind}|") if k in keys
            )
            self._act_cache[(etype, asset)] = found
        return found

    def _retroactive(self, new_keys: set[str]) -> None:
        """Rules and dynamic lists new to the store see every stored prospect (§4.2)."""
        if not new_keys:
            return
        self.line, self.event_id = 0, None
        rules = [i for i, r in enumerate(self.cs.rules) if r.key in new_keys]
        dyn = [i for i, d in enumerate(self.cs.dynamic_lists) if d.key in new_keys]
        self.summary.retroactive = sorted(new_keys)
        for p in list(self.prospects.values()):
            self.changed = set()
            for i in rules:
                self._try_rule(p, self.cs.rules[i])
            for i in dyn:
                self._dynamic(p, self.cs.dynamic_lists[i])
            if self.changed:
                self._settle(p, self.changed)
            self.dirty.add(p.email)

    # -------------------------------------------------------------------- run

    def run(
        self,
        items: Iterable[Event | Reject],
        *,
        now: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RunSummary:
        """Apply a stream; commit every `batch_size` lines and at the end."""
        started = time.perf_counter()
        summary = self.summary
        batch_size = self.batch_size
        pending = 0
        last_line = self.summary.resumed_from
        for item in items:
            last_line = item.line
            summary.lines += 1
            if isinstance(item, Reject):
                summary.rejected += 1
                self.batch.rejects.append((self.source, item.line, item.reason, item.text))
            else:
                self.apply(item)
            pending += 1
            if pending >= batch_size:
                self.commit(last_line)
                pending = 0
                if progress:
                    progress(summary.lines)
        if now is not None:
            self.advance(now)
        self.commit(last_line)
        summary.seconds = time.perf_counter() - started
        return summary

    def apply(self, e: Event) -> None:
        """Apply one valid event."""
        eid = e.id
        if eid is not None and eid in self.applied:
            self.summary.duplicates += 1
            return
        if self._screening:
            reason = self._refusal(e)
            if reason is not None:
                self.reject(e.reject(reason))
                return
        ts = e.ts_epoch
        if self.clock is None or ts > self.clock:
            self.clock = ts
        self.now = self.clock
        self.line, self.event_id, self.event_ts = e.line, eid, ts
        self._fresh = None
        self._handlers[e.type](e)
        if eid is not None:
            self.applied.add(eid)
            self.batch.applied_ids.append(eid)
        self.summary.applied += 1

    def reject(self, item: Reject) -> None:
        """A line that is not applied: to the rejects file, with its number and reason."""
        self.summary.rejected += 1
        self.batch.rejects.append((self.source, item.line, item.reason, item.text))

    def _refusal(self, e: Event) -> str | None:
        """Why the policies refuse a valid event (`reject` settings), or None."""
        if (
            self._asset_policy == "reject"
            and e.asset is not None
            and e.type in ASSET_EVENTS  # never an unsubscribe: an opt-out is never lost
            and (ASSET_KINDS[e.type], e.asset) not in self._assets
        ):
            return self._unknown_asset(ASSET_KINDS[e.type], e.asset)
        if self._field_policy == "reject" and e.fields:
            for crm_field, name, value in self._applied_fields(e):
                info = self._field_info.get(name)
                if info is not None:
                    problem = fit_field(info, value)[1]
                    if problem is not None:
                        return "bad field value: " + _from_crm(problem, crm_field)
        return None

    def _applied_fields(self, e: Event) -> list[tuple[str | None, str, Any]]:
        """The (CRM field, field, value) the event would write, before any policy."""
        if e.type in ASSET_EVENTS or e.type == "prospect_update":
            return [(None, name, value) for name, value in e.fields.items()]
        if e.type == "crm_update" and e.object in ("lead", "contact"):
            if e.prospect not in self.prospects and not self.cs.auto_create:
                return []  # ignored anyway (§7.4)
            out = []
            for crm_field, value in e.fields.items():
                mapped = self.cs.crm_fields.get(crm_field.casefold())
                if mapped is not None:
                    out.append((crm_field, mapped[0], value))
            return out
        return []

    def _unknown_asset(self, kind: str, asset: str) -> str:
        """`unknown form 'Book a demo' (did you mean 'Book a Demo'?)`, computed once."""
        text = self._unknown_text.get((kind, asset))
        if text is None:
            names = [name for k, name in self._assets if k == kind]
            folded = [name for name in names if name.casefold() == asset.casefold()]
            hint = f"did you mean {_quoted(folded[0])}?" if folded else did_you_mean(asset, names)
            text = f"unknown {kind} {_quoted(asset)}" + (f" ({hint})" if hint else "")
            if len(self._unknown_text) < _MAX_DISTINCT:
                self._unknown_text[(kind, asset)] = text
        return text

    def _warn_asset(self, kind: str, asset: str) -> None:
        if self._asset_policy != "ignore" and (kind, asset) not in self._assets:
            _count(self.summary.unknown_assets, self._unknown_asset(kind, asset))

    def _misfit(
        self, p: Prospect, ref: RuleRef, name: str, value: Any, problem: str, crm: str | None
    ) -> bool:
        """A value that does not fit its field: count it; True if it is kept anyway."""
        problem = _from_crm(problem, crm)
        _count(self.summary.bad_fields, problem)
        if self._field_policy == "keep":
            return True
        args = {"field": name, "value": value, "reason": problem}
        self.log(p, ref, "skip field", args, None, None)
        return False

    def advance(self, now: float) -> None:
        """Move the clock to `now` (as a tick would) and re-check time-based rules."""
        if self.clock is None or now > self.clock:
            self.clock = now
        self.now = self.clock
        self.line, self.event_id = 0, None
        self._tick_all()

    def commit(self, line: int) -> None:
        b = self.batch
        b.line, b.clock = line, self.clock
        prospects = self.prospects
        codecs, now = self.cs.codecs, self.now
        for email in self.dirty:
            _forget_expired(prospects[email], now, self._throttle, self._notify_window)
        b.prospects = {email: prospects[email].to_json(codecs) for email in self.dirty}
        visitors = self.visitors
        b.visitors = {vid: (visitors[vid], b"[]") for vid in self.dirty_visitors}
        if self.shared_dirty:
            b.shared = {k: _json(v) for k, v in self.shared.items()}
        self.store.commit(b)
        if self.on_commit is not None:
            self.on_commit(b)
        self.batch = Batch(source=self.source, line=line, clock=self.clock)
        self.dirty = set()
        self.dirty_visitors = set()
        self._anonymous = {}  # committed: the store has these views now
        self.shared_dirty = False

    # ------------------------------------------------------------- identities

    def _prospect(self, email: str, e: Event | None) -> Prospect:
        p = self.prospects.get(email)
        if p is None:
            p = Prospect(email, self.now)
            p.profile = self.cs.default_profile
            self.prospects[email] = p
            self.summary.prospects_created += 1
            self.log(p, self._ref_for(e), "create prospect", {}, None, email)
            self._fresh = email  # its first settle looks at every rule (§4.2)
        self.dirty.add(email)
        self._settled_at[email] = self.now
        return p

    def _ref_for(self, e: Event | None) -> RuleRef:
        kind = e.type if e is not None else "run"
        ref = self._event_ref.get(kind)
        if ref is None:
            ref = self._event_ref[kind] = RuleRef("event", kind, self.source_label)
        return ref

    def _tie_visitor(self, vid: str, p: Prospect) -> None:
        """A visitor converts: its anonymous page views now count for p (never replayed).

        Only a visitor's first tie can find anonymous views: once tied, its views
        are its prospect's.
        """
        known = self.visitors.get(vid)
        if known == p.email:
            return
        self.visitors[vid] = p.email
        self.dirty_visitors.add(vid)
        if known is not None:
            return
        history = self.store.anonymous_views(vid) + self._anonymous.pop(vid, [])
        if not history:
            return
        points = self.cs.scoring.get("page_view")
        for ts, url in history:
            self._visited(p, url, ts)
            if points:
                self._score(
                    p, points[1], points[0], {"activity": "page view", "attached_from": vid}
                )
        self.batch.attach_visitor.append((vid, p.email))
        self.changed.update(("act", "score", "time"))

    # --------------------------------------------------------------- handlers

    def _page_view(self, e: Event) -> None:
        url = e.url or ""
        p: Prospect | None = None
        if e.prospect is not None:
            p = self._prospect(e.prospect, e)
            if e.visitor is not None:
                self._tie_visitor(e.visitor, p)
        elif e.visitor is not None:
            email = self.visitors.get(e.visitor)
            if email is not None:
                p = self._prospect(email, e)
            else:  # anonymous: kept as an activity row until the visitor converts
                self._anonymous.setdefault(e.visitor, []).append((e.ts_epoch, url))
                self._activity(None, e)
                return
        if p is None:
            return
        self.changed = changed = {"act", "time"}
        self._activity(p, e)
        normalized = normalize_url(url, self.settings)
        self._visited(p, url, e.ts_epoch, normalized)
        points = self.cs.scoring.get("page_view")
        if points:
            self._score(p, points[1], points[0], {"activity": "page view"})
        pa = self.cs.pages.lookup_normalized(normalized)
        if pa is not None and self._active(pa.block, e.ts_epoch):
            self._run_blocks(p, (pa.block,), "page:" + pa.ref.name)
        else:
            self._settle(p, changed)

    def _visited(self, p: Prospect, url: str, ts: float, normalized: str | None = None) -> None:
        if p.last_activity is None or ts > p.last_activity:
            p.last_activity = ts
        if not self.cs.visited:
            return
        u = normalized if normalized is not None else normalize_url(url, self.settings)
        for key, match in self.cs.visited:
            if match(u):
                p.touch(key, ts)

    def _asset_event(self, e: Event) -> None:
        assert e.prospect is not None
        p = self._prospect(e.prospect, e)
        self.changed = changed = {"act", "time"}
        if e.visitor is not None:
            self._tie_visitor(e.visitor, p)
        if e.fields:
            self._event_fields(p, e)
        etype, asset = e.type, e.asset or ""
        kind = ASSET_EVENTS[etype][1]
        if (kind, asset) not in self._assets:
            self._warn_asset(kind, asset)
        for key in self._activity_keys(etype, asset):
            p.touch(key, e.ts_epoch)
        if p.last_activity is None or e.ts_epoch > p.last_activity:
            p.last_activity = e.ts_epoch
        self._activity(p, e)
        points = self.cs.scoring.get(etype)
        if points and not (etype == "email_open" and self._seen_open(p, asset)):
            self._score(p, points[1], points[0], {"activity": points[1].name, "asset": asset})
            category = self.cs.categories.get((kind, asset))
            if category:
                self._category(p, points[1], category, points[0])
        blocks = self.cs.blocks.get((etype, asset))
        if blocks and etype == "email_click":
            link = f"{asset}|{e.url or ''}"
            if p.clicked and link in p.clicked:
                blocks = None  # an email link fires once per prospect (§2.3)
            else:
                p.clicked = (p.clicked or set()) | {link}
        if blocks:
            active = tuple(b for b in blocks if self._active(b, e.ts_epoch))
            if active:
                self._run_blocks(p, active, f"{etype}:{asset}")
                return
        self._settle(p, changed)

    def _seen_open(self, p: Prospect, email: str) -> bool:
        if not self.settings.email_open_first_only:
            return False
        bit = self.cs.codecs.emails.bit(email)
        if p.opened & bit:
            return True
        p.opened |= bit
        return False

    def _identify(self, e: Event) -> None:
        assert e.prospect is not None and e.visitor is not None
        p = self._prospect(e.prospect, e)
        self.changed = {"time"}
        self._tie_visitor(e.visitor, p)
        self._settle(p, self.changed)

    def _prospect_update(self, e: Event) -> None:
        assert e.prospect is not None
        p = self._prospect(e.prospect, e)
        self.changed = {"time"}
        if e.fields:
            self._event_fields(p, e)
        self._settle(p, self.changed)

    def _unsubscribe(self, e: Event) -> None:
        assert e.prospect is not None
        p = self._prospect(e.prospect, e)
        self.changed = {"time"}
        if e.asset is not None:
            self._warn_asset("email", e.asset)
        self._activity(p, e)
        if not p.opted_out:
            p.opted_out = True
            self.changed.update(("opted_out", "f:opted_out"))
            self.log(p, self._ref_for(e), "opt out", {"email": e.asset}, False, True)
        self._settle(p, self.changed)

    def _crm_update(self, e: Event) -> None:
        assert e.prospect is not None
        if e.prospect not in self.prospects and not self.cs.auto_create:
            self.summary.ignored += 1  # the connector does not create prospects (§7.4)
            return
        p = self._prospect(e.prospect, e)
        self.changed = changed = {"time"}
        ref = self._ref_for(e)
        obj = e.object
        if obj in ("lead", "contact"):
            # A contact outranks a lead (§7.2): a lead update never demotes a contact.
            if p.crm_status != obj and (obj == "contact" or p.crm_status in ("none", "deleted")):
                self.log(p, ref, "crm status", {}, p.crm_status, obj)
                p.crm_status = obj
                changed.add("crm")
            if e.crm_id and p.crm_id != e.crm_id:
                p.crm_id = e.crm_id
            if e.user and (p.assigned_kind != "user" or p.assigned_to != e.user):
                # The owner is always the CRM's (§7.1): the CRM may reassign.
                self.log(p, ref, "assign", {"to": "user", "by": "crm"}, p.assigned_to, e.user)
                p.assigned_kind, p.assigned_to = "user", e.user
                p.assigned_at = p.assigned_at or self.now
                changed.add("assigned")
            for crm_field, value in (e.fields or {}).items():
                mapped = self.cs.crm_fields.get(crm_field.casefold())
                if mapped is None:
                    continue
                name, prefer = mapped
                info = self._field_info.get(name)
                if info is not None:
                    value, problem = fit_field(info, value)
                    if problem is not None and not self._misfit(
                        p, ref, name, value, problem, crm_field
                    ):
                        continue
                ours = p.field(name)
                blank = value is None or value == ""
                if blank and ours not in (None, ""):
                    continue  # a value always beats a blank (§7.6)
                if prefer == "ours" and ours not in (None, ""):
                    continue
                if prefer == "most recent" and ours not in (None, ""):
                    stamp = p.stamps.get(name) if p.stamps else None
                    if stamp is not None and stamp > e.ts_epoch:
                        continue  # our value is newer than the CRM's (§7.6)
                self._set_field(p, ref, name, value)
        elif obj == "opportunity":
            outcome = {"won": "won", "lost": "lost"}.get(e.status or "", "created")
            points = self.cs.crm_scoring.get(outcome)
            if points:
                self._score(p, points[1], points[0], {"activity": f"opportunity {outcome}"})
        self._settle(p, changed)

    def _tick(self, e: Event) -> None:
        self._tick_all()

    def _tick_all(self) -> None:
        """The clock moved: re-check time-based rules for the prospects whose time has come.

        A rule's outcome changes only when a fact it reads changes (the prospect
        is settled then) or when a time threshold is crossed (its timers). So a
        tick evaluates just the prospects with a wake-up time now past, plus
        those touched since the last tick, whose wake-up time is computed here.
        """
        if not self._time_rules and not self._time_dynamic:
            return
        now, wakes, prospects = self.now, self._wakes, self.prospects
        due: set[str] = set()
        for email, settled in self._settled_at.items():
            when = self._wake(prospects[email], settled)
            if when <= now:
                due.add(email)
            elif when != _INF:
                heapq.heappush(wakes, (when, email))
        self._settled_at = {}
        while wakes and wakes[0][0] <= now:
            due.add(heapq.heappop(wakes)[1])
        if self._exhaustive_ticks:
            due = set(prospects)
        for email in sorted(due):  # sorted: shared counters must not depend on dict order
            p = prospects[email]
            self.changed = set()
            before = self.seq
            for rule in self._time_rules:
                self._try_rule(p, rule)
            for dl in self._time_dynamic:
                self._dynamic(p, dl)
            if self.changed:
                self._settle(p, self.changed)
            if self.seq != before:
                self.dirty.add(email)
            when = self._wake(p, now)
            if when != _INF:
                heapq.heappush(wakes, (when, email))

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
                t = m[1] + rule.repeat_seconds  # the cooldown ends
                if since < t < best:
                    best = t
            for timer in rule.timers:
                t = timer(p)  # type: ignore[assignment]
                if t is not None and since < t < best:
                    best = t
        for dl in self._time_dynamic:
            for timer in dl.timers:
                t = timer(p)  # type: ignore[assignment]
                if t is not None and since < t < best:
                    best = t
        return best

    def _event_fields(self, p: Prospect, e: Event) -> None:
        ref = self._ref_for(e)
        info_of = self._field_info
        for name, value in e.fields.items():
            info = info_of.get(name)
            if info is not None:
                value, problem = fit_field(info, value)
                if problem is not None and not self._misfit(p, ref, name, value, problem, None):
                    continue
            self._set_field(p, ref, name, value)

    def _activity(self, p: Prospect | None, e: Event) -> None:
        kind = ASSET_EVENTS.get(e.type, (None, None))[1]
        self.batch.activities.append(
            (
                p.email if p else None,
                e.visitor,
                e.ts_epoch,
                e.type,
                kind,
                e.asset,
                e.url,
                self.source,
                e.line,
                e.id,
            )
        )

    # ------------------------------------------------------ completion actions

    def _active(self, block: CompiledBlock, ts: float) -> bool:
        since = self.block_since.get(block.key)
        return since is None or ts >= since

    def _run_blocks(self, p: Prospect, blocks: tuple[CompiledBlock, ...], asset_key: str) -> None:
        """The seed's order: assignment, data changes, automation rules, then side effects."""
        now = self.now
        chosen: list[tuple[CompiledAction, RuleRef]] = []
        for b in blocks:
            chosen.extend((a, b.ref) for a in b.actions)
            for pred, actions in b.conditionals:  # conditions are read at trigger time
                if pred(p, now):
                    chosen.extend((a, b.ref) for a in actions)
        for phase in (PHASE_ASSIGN, PHASE_DATA):
            for a, ref in chosen:
                if a.phase == phase:
                    a.run(self, p, ref, asset_key)
        self._settle(p, self.changed)
        side = [(a, ref) for a, ref in chosen if a.phase == PHASE_SIDE]
        if side:
            self.changed = set()
            for a, ref in side:
                a.run(self, p, ref, asset_key)
            if self.changed:
                self._settle(p, self.changed)

    # ------------------------------------------------------- automation rules

    def _settle(self, p: Prospect, changed: set[str]) -> None:
        """Re-evaluate the rules and dynamic lists that read what changed, until quiet."""
        cs = self.cs
        rules, dyn = cs.rules, cs.dynamic_lists
        if self._fresh == p.email:
            changed = changed | {NEW_PROSPECT}
            self._fresh = None
        for _ in range(len(rules) + len(dyn) + 2):
            if not changed:
                return
            key = frozenset(changed)
            idx = self._candidates.get(key)
            if idx is None:
                idx = self._candidates[key] = tuple(cs.candidates(key))
            didx = self._dyn_candidates.get(key)
            if didx is None:
                found: set[int] = set()
                for f in key:
                    found.update(cs.dynamic_by_fact.get(f, ()))
                didx = self._dyn_candidates[key] = tuple(sorted(found))
            self.changed = changed = set()
            for i in idx:
                self._try_rule(p, rules[i])
            for i in didx:
                self._dynamic(p, dyn[i])

    def _try_rule(self, p: Prospect, rule: CompiledRule) -> None:
        now = self.now
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
        self.log(p, rule.ref, "rule matched", {"count": count}, None, None)
        for a in rule.actions:
            a.run(self, p, rule.ref, None)

    def _dynamic(self, p: Prospect, dl: CompiledRule) -> None:
        member = bool(p.dynamic & dl.bit)
        wanted = dl.when(p, self.now)
        if wanted == member:
            return
        if wanted:
            p.dynamic |= dl.bit
            self.log(p, dl.ref, "add to list", {"list": dl.name, "dynamic": True}, False, True)
        else:
            p.dynamic &= ~dl.bit
            self.log(p, dl.ref, "remove from list", {"list": dl.name, "dynamic": True}, True, False)
        self.changed.add("list")

    # ----------------------------------------------------------------- ledger

    def log(
        self, p: Prospect, ref: RuleRef, action: str, args: dict[str, Any], before: Any, after: Any
    ) -> None:
        self.seq += 1
        self.batch.ledger.append(
            (
                self.seq,
                self.now,
                p.email,
                ref.kind,
                ref.name,
                ref.loc,
                self.source,
                self.line,
                self.event_id,
                action,
                _json(args),
                _json(before),
                _json(after),
            )
        )
        self.summary.actions[action] += 1
        self.dirty.add(p.email)

    def _score(self, p: Prospect, ref: RuleRef, points: int, args: dict[str, Any]) -> None:
        if points == 0:
            return  # a +0 scoring row changes nothing and is not worth a ledger line
        before = p.score
        p.score = before + points
        self.changed.add("score")
        self.log(p, ref, "score", {"points": points, **args}, before, p.score)

    def _category(self, p: Prospect, ref: RuleRef, category: str, points: int) -> None:
        cats = p.categories if p.categories is not None else {}
        before = cats.get(category, 0)
        cats[category] = before + points
        p.categories = cats
        self.changed.add("score")
        self.log(
            p,
            ref,
            "category score",
            {"category": category, "points": points},
            before,
            before + points,
        )

    def _set_field(self, p: Prospect, ref: RuleRef, name: str, value: Any) -> None:
        before = p.field(name)
        if before == value:
            return
        name = _intern(name)  # one str per field name, not one per prospect
        if type(value) is str and len(value) <= 40:
            value = _intern(value)  # picklist values, countries, sizes: shared, not copied
        p.set_field(name, value)
        if name in self.cs.most_recent:
            p.stamps = {**(p.stamps or {}), name: self.event_ts}
        self.changed.add("f:" + name)
        self.log(p, ref, "set field", {"field": name}, before, value)

    def _throttled(self, p: Prospect, key: str) -> bool:
        """Repeat activity within the window neither scores nor resends (§2.3)."""
        window = self._throttle
        if window <= 0:
            return False
        last = p.throttle.get(key) if p.throttle else None
        if last is not None and self.now - last < window:
            self.summary.actions["throttled"] += 1
            return True
        if p.throttle is None:
            p.throttle = {}
        p.throttle[_intern(key)] = self.now
        return False

    # ------------------------------------------- operations compiled actions call

    def add_to_list(self, p: Prospect, ref: RuleRef, name: str, bit: int) -> None:
        if p.lists & bit:
            return
        p.lists |= bit
        self.changed.add("list")
        self.log(p, ref, "add to list", {"list": name}, False, True)

    def remove_from_list(self, p: Prospect, ref: RuleRef, name: str, bit: int) -> None:
        if not p.lists & bit:
            return
        p.lists &= ~bit
        self.changed.add("list")
        self.log(p, ref, "remove from list", {"list": name}, True, False)

    def add_tag(self, p: Prospect, ref: RuleRef, name: str, bit: int) -> None:
        if p.tags & bit:
            return
        p.tags |= bit
        self.changed.add("tag")
        self.log(p, ref, "add tag", {"tag": name}, False, True)

    def remove_tag(self, p: Prospect, ref: RuleRef, name: str, bit: int) -> None:
        if not p.tags & bit:
            return
        p.tags &= ~bit
        self.changed.add("tag")
        self.log(p, ref, "remove tag", {"tag": name}, True, False)

    def adjust_score(self, p: Prospect, ref: RuleRef, points: int, asset_key: str | None) -> None:
        # Completion-action scores are throttled; page-action scores count every view.
        throttled = asset_key is not None and not asset_key.startswith("page:")
        if throttled and self._throttled(p, "score|" + asset_key):  # type: ignore[operator]
            return
        self._score(p, ref, points, {})

    def adjust_category(self, p: Prospect, ref: RuleRef, category: str, points: int) -> None:
        self._category(p, ref, category, points)

    def set_score(self, p: Prospect, ref: RuleRef, value: int) -> None:
        if p.score == value:
            return
        before, p.score = p.score, value
        self.changed.add("score")
        self.log(p, ref, "set score", {"value": value}, before, value)

    def assign(self, p: Prospect, ref: RuleRef, kind: str, name: str) -> None:
        if p.assigned_kind is not None:
            self.summary.actions["assignment kept"] += 1
            return  # assignment never reassigns (§2.3)
        p.assigned_kind, p.assigned_to, p.assigned_at = kind, name, self.now
        self.changed.add("assigned")
        self.log(p, ref, "assign", {"to": kind, "name": name}, None, name)
        if p.crm_status == "none" and not p.do_not_sync:
            # Assignment is what creates the CRM record (§7.3).
            self.crm_work(
                p,
                ref,
                "create_record",
                {"object": self.cs.create_on_assignment, "owner": name, "as": kind},
            )

    def assign_group(self, p: Prospect, ref: RuleRef, group: str, members: tuple[str, ...]) -> None:
        if p.assigned_kind is not None or not members:
            if p.assigned_kind is not None:
                self.summary.actions["assignment kept"] += 1
            return
        # The round-robin counter is shared across prospects: it lives in `shared`.
        key = "round_robin:" + group
        turn = int(self.shared.get(key, 0))
        self.shared[key] = turn + 1
        self.shared_dirty = True
        self.assign(p, ref, "user", members[turn % len(members)])

    def assign_by_crm_rule(self, p: Prospect, ref: RuleRef) -> None:
        if p.assigned_kind is not None:
            self.summary.actions["assignment kept"] += 1
            return
        p.assigned_kind, p.assigned_to, p.assigned_at = "crm rule", None, self.now
        self.changed.add("assigned")
        self.log(p, ref, "assign", {"to": "crm rule"}, None, "crm rule")
        self.crm_work(p, ref, "assignment_rule", {"object": self.cs.create_on_assignment})

    def set_field(self, p: Prospect, ref: RuleRef, name: str, value: Any) -> None:
        self._set_field(p, ref, name, value)

    def increment_field(self, p: Prospect, ref: RuleRef, name: str, by: float) -> None:
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
        self._set_field(p, ref, name, int(after) if whole else after)

    def set_campaign(self, p: Prospect, ref: RuleRef, name: str) -> None:
        if p.campaign == name:
            return
        before, p.campaign = p.campaign, name
        self.changed.add("campaign")
        self.log(p, ref, "source campaign", {"campaign": name}, before, name)

    def crm_work(self, p: Prospect, ref: RuleRef, kind: str, payload: dict[str, Any]) -> None:
        """Work the CRM must do (the sync carries it out later)."""
        self.log(p, ref, "crm " + kind.replace("_", " "), payload, None, None)
        self.batch.crm_pending.append(
            (self.seq, self.now, p.email, kind, _json({**payload, "rule": ref.name, "at": ref.loc}))
        )

    def notify(self, p: Prospect, ref: RuleRef, user: str | None, asset_key: str | None) -> None:
        to = user
        if to is None:
            to = p.assigned_to if p.assigned_kind == "user" else None
            if to is None:
                self.summary.actions["notify skipped (unassigned)"] += 1
                return
        if asset_key is not None and asset_key.startswith("page:"):
            last = p.notified.get(asset_key) if p.notified else None
            if last is not None and self.now - last < self._notify_window:
                self.summary.actions["throttled"] += 1
                return  # one page-action notification per prospect, page and hour (§3)
            p.notified = {**(p.notified or {}), _intern(asset_key): self.now}
        self._outbox(p, ref, "notify", {"to": to, "prospect": p.email})

    def autoresponder(self, p: Prospect, ref: RuleRef, email: str, asset_key: str | None) -> None:
        if p.opted_out or p.field("do_not_email") is True:
            self.summary.actions["autoresponder skipped (opted out)"] += 1
            return
        if (
            asset_key is not None
            and not self.settings.always_send_autoresponder
            and self._throttled(p, "autoresponder|" + asset_key)
        ):
            return
        self._outbox(p, ref, "autoresponder", {"email": email, "to": p.email})

    def _outbox(self, p: Prospect, ref: RuleRef, kind: str, payload: dict[str, Any]) -> None:
        self.log(p, ref, kind, payload, None, None)
        self.batch.outbox.append(
            (self.seq, self.now, p.email, kind, _json({**payload, "rule": ref.name, "at": ref.loc}))
        )

    def change_profile(self, p: Prospect, ref: RuleRef, name: str) -> None:
        current = p.profile or self.cs.default_profile
        if current == name:
            return
        before = p.grade
        p.profile = name
        p.grade = self.grade(p)
        self.changed.add("grade")
        self.log(p, ref, "change profile", {"profile": name}, current, name)
        if p.grade != before:
            self.log(p, ref, "grade", {}, before, p.grade)

    def mark_criterion(self, p: Prospect, ref: RuleRef, key: str, sign: int) -> None:
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
        self.changed.add("grade")
        profile, _, criterion = key.partition("|")
        state = {1: "matches", -1: "does not match", 0: "not known"}[sign]
        self.log(
            p,
            ref,
            "grading",
            {"profile": profile, "criterion": criterion, "state": state},
            before,
            p.grade,
        )

    def set_sync_flag(self, p: Prospect, ref: RuleRef, do_not_sync: bool) -> None:
        if p.do_not_sync == do_not_sync:
            return
        p.do_not_sync = do_not_sync
        self.changed.add("crm")
        self.log(
            p,
            ref,
            "do not sync" if do_not_sync else "allow crm recreate",
            {},
            not do_not_sync,
            do_not_sync,
        )

    def grade(self, p: Prospect) -> str | None:
        """The grade computed from the profile and criterion states (kept in `p.grade`)."""
        rank = self.cs.grade_of(p)
        return None if rank is None else grade_letter(rank)

    # ------------------------------------------------------------ segmentation

    def segment(self) -> dict[str, int]:
        """Run every segmentation rule once over every prospect (§6.1)."""
        counts: dict[str, int] = {}
        self.line, self.event_id = 0, None
        for rule in self.cs.segmentation:
            counts[rule.name] = 0
            for p in self.prospects.values():
                if rule.when(p, self.now):
                    counts[rule.name] += 1
                    self.changed = set()
                    for a in rule.actions:
                        a.run(self, p, rule.ref, None)
                    if self.changed:
                        self._settle(p, self.changed)
        return counts


# ------------------------------------------------------------ field values

_MAX_DISTINCT = 100  # distinct warnings a summary keeps; the rest are counted under ""
_BOOLEANS = {"true": True, "false": False}


def _count(counter: Counter[str], key: str) -> None:
    if key in counter or len(counter) < _MAX_DISTINCT:
        counter[key] += 1
    else:
        counter[""] += 1


def _quoted(text: str, limit: int = 60) -> str:
    """A name for a message: quoted, control characters escaped, cut if long."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return _quoted(value)
    return _json(value)


def _from_crm(problem: str, crm_field: str | None) -> str:
    return problem if crm_field is None else f"{problem} (CRM field {_quoted(crm_field)})"


def _typed_fields(symbols: Symbols) -> dict[str, FieldInfo]:
    """The fields whose event values are checked: all but free text."""
    return {name: info for name, info in symbols.fields.items() if info.type != "text"}


def _choice_problem(info: FieldInfo, text: str) -> str:
    choices = info.choices or ()
    folded = [c for c in choices if c.casefold() == text.strip().casefold()]
    hint = f"did you mean {_quoted(folded[0])}?" if folded else did_you_mean(text, choices)
    if hint is None:
        shown = ", ".join(choices[:10]) + (", ..." if len(choices) > 10 else "")
        hint = "values: " + shown
    return f"{_quoted(text)} is not a value of {info.type} '{info.name}' ({hint})"


def fit_field(info: FieldInfo, value: Any) -> tuple[Any, str | None]:
    """An event's value for a declared field: (the value to store, None) or (value, problem).

    A blank (null or "") always fits. Text takes any scalar; a number field a
    number or a text holding a finite one; a date field a text the criteria read
    as a date (2026-01-31, or an RFC 3339 time); a boolean true/false, or the
    text "true"/"false" (stored as a boolean); a picklist one of its values; a
    multiselect one of its values or several joined by ";" (stored as a list).

    >>> fit_field(FieldInfo("employees", "number"), "many")[1]
    "'many' is not a number (number field 'employees')"
    >>> fit_field(FieldInfo("interests", "multiselect", ("cloud", "data")), "data; cloud")
    (['data', 'cloud'], None)
    """
    if value is None or value == "":
        return value, None
    kind, ftype = type(value), info.type
    if ftype == "number":
        if kind is int or kind is float:
            return value, None
        if kind is str:
            try:
                if math.isfinite(float(value)):
                    return value, None
            except ValueError:
                pass
        return value, f"{_shown(value)} is not a number (number field '{info.name}')"
    if ftype == "boolean":
        if kind is bool:
            return value, None
        if kind is str and value.strip().casefold() in _BOOLEANS:
            return _BOOLEANS[value.strip().casefold()], None
        return value, f"{_shown(value)} is not true or false (boolean field '{info.name}')"
    if ftype == "date":
        if kind is str and _is_date(value):
            return value, None
        return value, (
            f"{_shown(value)} is not a date (date field '{info.name}'; e.g. 2026-01-31)"
        )
    if ftype in ("picklist", "multiselect"):
        if kind is not str:
            return value, f"{_shown(value)} is not a value of {ftype} '{info.name}'"
        if info.choices is None:
            return value, None
        if ftype == "picklist":
            if value in info.choices:
                return value, None
            return value, _choice_problem(info, value)
        parts = [part.strip() for part in value.split(";")]
        for part in parts:
            if part not in info.choices:
                return value, _choice_problem(info, part)
        return (parts[0] if len(parts) == 1 else parts), None
    return value, None  # text, or a type the checker reports


def _is_date(text: str) -> bool:
    """Whether criteria read the text as a date (the compiler's conversion)."""
    text = text.strip()
    try:
        if "T" not in text and "t" not in text:
            dt.date.fromisoformat(text)
            return True
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        moment.timestamp()
    except (ValueError, OverflowError):
        return False
    return True


def _forget_expired(p: Prospect, now: float, throttle: float, notify: float) -> None:
    """Drop throttle and notification times whose window has passed: they decide nothing."""
    if p.throttle:
        kept = {k: t for k, t in p.throttle.items() if now - t < throttle}
        p.throttle = kept or None
    if p.notified:
        kept = {k: t for k, t in p.notified.items() if now - t < notify}
        p.notified = kept or None


def _later(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
