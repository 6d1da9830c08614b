"""The run loop: `Engine` reads events, batches them and commits; identities; the ledger.

The engine is split by concern: this module (the loop, batching, commits,
identities, the ledger rows), `handlers` (one per event type), `effects` (what
actions do, `EFFECTS`), `settle` (automation rules, dynamic lists, ticks).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Final

import orjson

from mrules.batch import Batch, event_hash
from mrules.compiler import (
    ASSET_EVENTS,
    LINK_MARK,
    CompiledAction,
    CompiledRule,
    CompiledRuleSet,
    RuleRef,
)
from mrules.engine.context import Context
from mrules.engine.effects import Effects
from mrules.engine.handlers import HANDLERS, Handlers
from mrules.engine.screening import Screening, _typed_fields
from mrules.engine.settle import Settlement
from mrules.engine.summary import RunSummary
from mrules.engine.wakeups import WakeQueue
from mrules.events import Event, EventSourceError, Reject, line_check
from mrules.history import Row, json_text
from mrules.records import stdin_run_source
from mrules.state import DamagedState, Prospect
from mrules.storeapi import StateStore
from mrules.urls import NormalizedUrls, normalize_url
from mrules.vocab import Action

_dumps: Final = orjson.dumps
_INF: Final = float("inf")
_json: Final = json_text


DEFAULT_CACHE_PROSPECTS: Final = 50_000
"""How many prospects a run keeps decoded in memory after a commit (`--cache-prospects`)."""

_FILTER_BITS: Final = 1 << 25
_FILTER_BYTES: Final = _FILTER_BITS >> 3
_FILTER_MASK: Final = _FILTER_BITS - 1
FILL_FILTER_AFTER: Final = 32_768
"""Ids a run asks the store about, a chunk at a time, before it reads every applied id's hash.

Reading them fills the filter, at a cost that follows the whole history (2.4 s at 2
million events); a run of a few events (a sync cycle's facts, the runs every few minutes
a large store mostly sees) asks for its own ids instead. In an SQLite store an id costs
1/30,000 to 1/46,000 of a fill from 200,000 to 2 million events (a lookup asks each
generation of 65,536 rows, `mrules.store`; bench/bench_applied_ids.py), so a long run
stops asking having lost about one fill at most.
"""


class Engine(Handlers, Effects, Settlement, Screening):
    """Runs one compiled rule set over events, against one store."""

    def __init__(
        self,
        rules: CompiledRuleSet,
        store: StateStore,
        *,
        source: str = "-",
        batch_size: int = 20_000,
        commit_seconds: float | None = None,
        on_commit: Callable[[Batch], None] | None = None,
        exhaustive_ticks: bool = False,
        source_label: str | None = None,
        cache_prospects: int | None = DEFAULT_CACHE_PROSPECTS,
    ) -> None:
        self.cs = rules
        self.store = store
        self.source = source  # the stream's identity in the store (an absolute path)
        self.reject_source = source  # its rejects' (`- (run N)` on standard input: start)
        self.row_source = source  # its history rows' (`- (run N)` on standard input: start)
        self.source_label = source_label or source  # how the ledger shows it
        self.batch_size = batch_size
        self.commit_seconds = commit_seconds
        self.on_commit = on_commit
        self.settings = rules.settings
        self.summary = RunSummary()
        # The prospects in memory: a cache of the store, which is their truth. Every
        # prospect an uncommitted change touched is here (`dirty`); after a commit the
        # least recently used clean ones beyond `cache_prospects` are dropped (None:
        # keep all). A prospect not here is decoded from the store when an event needs it.
        # A plain dict, least recently used first (`_evict`): an OrderedDict keeps a
        # linked node for each key, 50 B more a cached prospect, and `_evict` drops
        # its oldest keys in one pass, so the dead slots that leaves are walked once.
        self.prospects: dict[str, Prospect] = {}
        self.cache_prospects = cache_prospects
        # Whether the store may hold a prospect the cache does not (False on a new store
        # until the first eviction: then a prospect not cached is a new one, no lookup).
        self._stored_beyond = False
        # Prospects created since the last commit, in creation order.
        self._created: list[str] = []
        # No wake-up times survive a restart: the first tick looks at every stored one.
        self._wake_all = False
        # Visitors tied to a prospect (visitor id -> the prospect's email): a cache of
        # the store's visitors table like `prospects` (the oldest beyond
        # `cache_prospects` dropped after a commit; ties not committed yet always kept).
        # Anonymous views live in the store's activities table, and in `_anonymous`
        # until the batch holding them commits: memory holds no history. Oldest tie
        # first, a plain dict as `prospects` is.
        self.visitors: dict[str, str] = {}
        self._visitors_beyond = False  # whether the store may hold a tie `visitors` lacks
        # What `_prefetch` read for the current chunk of events: stored states (None: the
        # store has no such prospect) and visitors the store has no tie for. Valid until
        # the next commit, the only time the store changes.
        self._prefetched: dict[str, bytes | None] = {}
        self._untied: set[str] = set()
        self._anonymous: dict[str, list[tuple[float, str]]] = {}
        # The committed anonymous views of the chunk's visitors that an event of it may tie
        # for the first time (`_prefetch`; none: an empty list), taken by their first tie.
        # A commit in the middle of the chunk adds the views it wrote (`_anonymous`), as
        # the store does. A store without `anonymous_views_among` (a partial one, like the
        # benchmark's null store) is asked visitor by visitor.
        self._views: dict[str, list[tuple[float, str]]] = {}
        self._views_among = hasattr(store, "anonymous_views_among")
        # Event ids applied recently (a bounded window, oldest first); older ones are
        # looked up in the store a chunk of events at a time (`_dedupe`).
        # An OrderedDict, not a dict: dropping the oldest of a plain dict leaves dead
        # slots that every later `next(iter(...))` walks over (quadratic at 2M events).
        self.applied: OrderedDict[str, None] = OrderedDict()
        self.window = max(1 << 18, 2 * batch_size)
        # Ids that left the window since this chunk's `_dedupe` asked the store: that ask
        # passed over them (in the window then), so a repeat later in the chunk is caught
        # here. Dropped at the next chunk, whose ask finds them in the store.
        self._left: set[str] = set()
        # Ids the store may hold that the window does not (applied before this run, or
        # dropped from the window): one bit per 31-bit hash, 4 MiB whatever the stream.
        # A clear bit means "never applied"; a set one is asked of the store.
        self._maybe_applied = bytearray(_FILTER_BYTES)
        self._filter_used = False  # no bit set yet: nothing to ask the store
        self._unfilled = False  # the store holds applied ids the filter has not marked
        self._asked = 0  # ids asked of the store while `_unfilled`
        self.fill_filter_after = FILL_FILTER_AFTER
        self.clock: float | None = None
        self.now = 0.0
        self.seq = 0
        self.shared: dict[str, Any] = {}
        self.shared_dirty = False
        # Every prospect an uncommitted change touched, with the unit of work (an event,
        # a `--now`, a segmentation rule's pass on it) that touched it last: a
        # diagnostics report stands only if no later unit of its batch touched its
        # prospect (`commit`), as a report of an earlier batch drops when a later batch
        # writes its prospect.
        self.dirty: dict[str, int] = {}
        self.unit = 0
        self.report_units: list[int] = []  # the unit of each of `batch.unsettled`
        self.dirty_visitors: set[str] = set()
        self.line = 0
        self.event_id: str | None = None
        self.event_ts = 0.0
        self.block_since: dict[str, float | None] = {}
        self.batch = Batch(source=source, line=0, clock=None)
        # facts changed -> (automation rules, dynamic lists) that read one of them
        self._candidates: dict[
            frozenset[str], tuple[tuple[CompiledRule, ...], tuple[CompiledRule, ...]]
        ] = {}
        # One handler per event type, bound to this engine (`handlers.HANDLERS`).
        self._handlers: dict[str, Callable[[Event], None]] = {
            t: handler.__get__(self) for t, handler in HANDLERS.items()
        }
        self._event_ref: dict[str, RuleRef] = {}
        # A completion or page action's actions split by phase (`effects.phases`), by block key.
        self._phased: dict[str, tuple[tuple[CompiledAction, ...], ...]] = {}
        self._row: Row | None = None  # the history row of the current event and prospect
        self._rowed = False  # whether the current event has a row yet
        # Time-based rules: each prospect's next moment its outcome may change
        # (`WakeQueue`), and the prospects touched since the last tick with the clock
        # they were settled at (their next wake-up is computed lazily at the next tick).
        self._time_rules = tuple(rules.rules[i] for i in rules.time_rules)
        self._time_dynamic = tuple(
            rules.dynamic_lists[i] for i in rules.dynamic_by_fact.get("time", ())
        )
        # Whether ticks re-check anyone: without time-based rules nothing is kept for
        # them (`_settled_at` would otherwise hold every prospect ever touched).
        self._timed = bool(self._time_rules or self._time_dynamic)
        self._wakes = WakeQueue()
        self._settled_at: dict[str, float] = {}
        self._fresh: str | None = None  # a prospect created by the current event
        self._act_cache: dict[tuple[str, str], tuple[str, ...]] = {}
        # Tests compare the wake-up heap with re-checking every prospect at every tick.
        self._exhaustive_ticks = exhaustive_ticks
        self._throttle = self.settings.throttle_minutes * 60.0
        self._notify_window = self.settings.page_notify_minutes * 60.0
        self._urls = NormalizedUrls(self.settings)
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
        self.prospects = {}
        self._created = []
        stored = st.has_prospects()
        self._stored_beyond = stored
        self.visitors = {}
        self._visitors_beyond = stored  # a tie is committed with its prospect's row
        self._prefetched, self._untied, self._views = {}, set(), {}
        self.applied = OrderedDict()
        # The ids applied before this run: `_dedupe` asks the store for those of each
        # chunk, and marks them all in the filter once it has asked for many.
        self._unfilled = self._filter_used = st.has_applied_ids()
        self._asked = 0
        self.clock = st.clock()
        self.now = self.clock or 0.0
        self.seq = st.max_seq()
        try:
            self.shared = {k: orjson.loads(v) for k, v in st.shared().items()}
        except orjson.JSONDecodeError as e:  # bytes where JSON text was written: damage
            raise DamagedState(f"its shared state is not JSON ({str(e)[:80]})") from None
        _check_shared(self.shared)
        if self.source == "-":
            # Each run on standard input numbers its lines from 1: its rejects are kept
            # under a source of its own, so no later run replaces them (docs/outputs.md).
            runs = self.shared.get("stdin_runs", 0) + 1
            self.shared["stdin_runs"] = runs
            self.shared_dirty = True
            self.reject_source = stdin_run_source(runs)
            # and the ledger names its events so too (`explain`: `line 2 of - (run 3)`)
            self.row_source = self.reject_source
        first_seen = st.rules_first_seen()
        new_keys = [k for k in self.cs.rule_keys if k not in first_seen]
        resumed = self._resumed_rules(first_seen) | self._edited_rules(first_seen)
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
        self._track_new_activity_keys(stored)
        # Rules and dynamic lists that must look at every stored prospect (§4.2, §6.2).
        retroactive = {k for k in new_keys if k.startswith(("rule:", "dynamic:"))} | resumed
        self._regrade(stored, retroactive)
        self._clicks_by_block(stored)
        if stored:
            self._retroactive(retroactive)
        # No wake-up times survive a restart: the first tick looks at everyone once.
        self._wake_all = stored and bool(self._time_rules or self._time_dynamic)
        self.summary.resumed_from = 0 if self.source == "-" else st.stream_position(self.source)
        return self.summary.resumed_from

    def _resumed_rules(self, first_seen: dict[str, float | None]) -> set[str]:
        """Rules and dynamic lists known to the store that the last run did not run (§4.1).

        A rule paused (or left out) in the last run and active in this one is
        resumed: like a new rule, it sees every stored prospect (§4.2). So is a
        dynamic list left out and restored: nothing kept its members up to date
        meanwhile (§6.2). The store keeps the keys of the rules and lists each
        run ran (`shared`); a store written before that knows none, and resumes
        nothing.
        """
        active = sorted([r.key for r in self.cs.rules] + [d.key for d in self.cs.dynamic_lists])
        before = self.shared.get("active_rules")
        if before != active:
            self.shared["active_rules"] = active
            self.shared_dirty = True
        if before is None:
            return set()
        ran = set(before)
        return {k for k in active if k in first_seen and k not in ran}

    def _edited_rules(self, first_seen: dict[str, float | None]) -> set[str]:
        """Rules and dynamic lists known to the store whose criteria changed since (§4.2).

        Edited criteria are evaluated against every stored prospect, as a
        resumed rule's are: a dynamic list takes the members its criteria now
        give (§6.2); a rule matches the prospects its new criteria hold for
        (a prospect it matched already is not matched again unless it repeats).
        The store keeps each one's criteria hash (`shared`); a store written
        before that knows none, and takes this run's without looking again. So
        for the hash of the groups an `assigned to group` criterion names.
        """
        rules = (*self.cs.rules, *self.cs.dynamic_lists)
        edited: set[str] = set()
        # The declarations the criteria read (a group's members) count as
        # the criteria do; a store written before `rule_declared` takes this run's.
        for name, now in (
            ("rule_criteria", {r.key: r.criteria for r in rules}),
            ("rule_declared", {r.key: r.declared for r in rules}),
        ):
            before = self.shared.get(name)
            # A rule left out keeps its hash for its return.
            merged = {**before, **now} if before is not None else now
            if before != merged:
                self.shared[name] = merged
                self.shared_dirty = True
            if before is not None:
                edited |= {
                    k for k, v in now.items() if k in first_seen and k in before and before[k] != v
                }
        return edited

    def _regrade(self, stored: bool, retroactive: set[str]) -> None:
        """Grades follow edited grading profiles: weights, the default, `grade_start` (§5.4).

        A grade is the start plus the weights of the known criteria of the
        prospect's profile; criteria compute it from the profiles as they are,
        so the kept grade (what `state export` and `explain` show) is brought to
        the same value, and the rules and lists that read the grade see the
        change. The store keeps the profiles' hash (`shared`); a store written
        before that knows none, and takes this run's without regrading. The
        dynamic lists this run builds anew (`retroactive`) are built for a
        regraded prospect before its rules read them.
        """
        version = self.cs.grading_version
        before = self.shared.get("grading")
        if before != version:
            self.shared["grading"] = version
            self.shared_dirty = True
        if not stored or before is None or before == version:
            return
        self.line, self.event_id, self._row = 0, None, None
        stale = [d for d in self.cs.dynamic_lists if d.key in retroactive]
        for email, data in self._every():
            peeked = self._peek(email, data)
            assert peeked is not None
            if not peeked.criteria or self.grade(peeked) == peeked.grade:
                continue
            p = self._get(email, data)  # cached from here: it changes
            assert p is not None
            grade = self.grade(p)
            profile = p.profile or self.cs.default_profile or ""
            ref = self.cs.profile_refs.get(profile) or self._ref_for(None)
            self.log(p, ref, Action.GRADE, {"profile": profile}, p.grade, grade)
            p.grade = grade
            c = Context(p)
            c.facts.add("grade")
            self._evaluate(c, (), stale)
            self.dirty[email] = self.unit

    def _clicks_by_block(self, stored: bool) -> None:
        """Read the clicked email links of a store written before they named their block.

        Such a store kept one entry per email and link ("EMAIL|URL") for every
        block of the email: a link fired the blocks active at its first click,
        and never another. Its entries now stand for the email's first block,
        so each is given the email's other blocks' marks as this run's rule set
        has them: a link clicked before keeps firing nothing (what that store
        promised); links clicked from now on fire each block once. The store
        keeps `clicks_by_block` once that is done (§2.3).
        """
        if self.shared.get("clicks_by_block") is True:
            return
        self.shared["clicks_by_block"] = True
        self.shared_dirty = True
        others = {
            asset + "|": tuple(b.link_mark for b in blocks[1:])
            for (etype, asset), blocks in self.cs.blocks.items()
            if etype == "email_click" and len(blocks) > 1
        }
        if not stored or not others:
            return
        for email, data in self._every():
            peeked = self._peek(email, data)
            assert peeked is not None
            if not peeked.clicked:
                continue
            marks = [
                link + mark
                for link in peeked.clicked
                if LINK_MARK not in link
                for prefix, more in others.items()
                if link.startswith(prefix)
                for mark in more
            ]
            if marks:
                p = self._get(email, data)
                assert p is not None
                for link in marks:
                    p.click(link)
                self.dirty[email] = self.unit

    def _track_new_activity_keys(self, stored: bool) -> None:
        """Activity criteria new to the store learn the history from the activities table.

        A prospect keeps the last time of only the activity keys some criterion
        reads; a rule set that reads a new one gets it from the stored history.
        The store keeps the keys the last run read: a key a run did not read was
        not kept up to date by that run, so a later rule set that reads it again
        learns it from the history again.
        """
        tracked = set(self.shared.get("activity_keys", []))
        keys = self.cs.activity_keys
        new = {k for k in keys if k not in tracked}
        if not new:
            if len(tracked) != len(keys):  # fewer keys read: forget the others
                self.shared["activity_keys"] = sorted(keys)
                self.shared_dirty = True
            return
        if stored:
            visited = [(k, m) for k, m in self.cs.visited if k in new]
            for row in self.store.activities():
                prospect, _visitor, ts, etype, _kind, asset, url = row[:7]
                p = self._get(prospect) if prospect is not None else None
                if p is None:
                    continue
                if etype == "page_view" and url is not None:
                    u = normalize_url(url, self.settings)
                    hits = [k for k, match in visited if match(u)]
                else:
                    hits = [k for k in self._activity_keys(etype, asset or "") if k in new]
                for key in hits:
                    p.touch(key, ts)
                    self.dirty[prospect] = self.unit
        self.shared["activity_keys"] = sorted(keys)
        self.shared_dirty = True

    def _activity_keys(self, etype: str, asset: str) -> tuple[str, ...]:
        """The keys an asset event touches that some criterion reads (shared strs).

        Empty for an activity no criterion reads, such as an unsubscribe (it names an
        email): the stored history that a new criterion learns from holds those too.
        """
        found = self._act_cache.get((etype, asset))
        if found is None:
            pair = ASSET_EVENTS.get(etype)  # type: ignore[call-overload]
            if pair is None:
                found = ()
            else:
                verb, kind = pair
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
        self.line, self.event_id, self._row = 0, None, None
        rules = [i for i, r in enumerate(self.cs.rules) if r.key in new_keys]
        dyn = [i for i, d in enumerate(self.cs.dynamic_lists) if d.key in new_keys]
        self.summary.retroactive = sorted(new_keys)
        new_rules = [self.cs.rules[i] for i in rules]
        new_lists = [self.cs.dynamic_lists[i] for i in dyn]
        for email, data in self._every():
            p = self._get(email, data)
            assert p is not None
            # The new lists are built before a new rule reads them (`_evaluate`).
            self._evaluate(Context(p), new_rules, new_lists)
            self.dirty[p.email] = self.unit

    # -------------------------------------------------------------------- run

    def run(
        self,
        items: Iterable[Event | Reject | None],
        *,
        now: float | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> RunSummary:
        """Apply a stream; commit every `batch_size` lines (or `commit_seconds`) and at the end.

        A `None` in `items` is a time mark (`mrules.timedstream`): the lines before it
        are committed if `commit_seconds` have passed, however few they are.
        """
        with paced_collector():
            return self._run(items, now=now, progress=progress)

    def _run(
        self,
        items: Iterable[Event | Reject | None],
        *,
        now: float | None,
        progress: Callable[[int], None] | None,
    ) -> RunSummary:
        started = time.perf_counter()
        summary = self.summary
        batch_size = self.batch_size
        every = self.commit_seconds
        clock = time.monotonic
        last_commit = clock()
        pending = 0
        last_line = self.summary.resumed_from
        last_event: Event | None = None
        it = iter(items)
        # What stopped the stream: the reader's error, or one the caller's iterable raised
        # (an interrupt too); the lines read before it are applied and committed first.
        broken: BaseException | None = None
        while broken is None:
            chunk: list[Event | Reject] = []
            append = chunk.append
            marked = False
            try:  # item by item, to keep the lines read before an error (compiled, a
                for item in islice(it, 512):  # list.extend keeps none of them)
                    if item is None:  # a time mark of a slow stream (mrules.timedstream)
                        marked = True
                        break
                    append(item)
            except BaseException as e:  # raised again below, as it was
                broken = e
            if not chunk and not marked:
                break
            if self._left:
                self._left = set()
            skip = self._dedupe(chunk) if chunk else None
            if chunk and (self._stored_beyond or self._visitors_beyond or self._views_among):
                self._prefetch(chunk)
            for item in chunk:
                last_line = item.line
                summary.lines += 1
                if isinstance(item, Reject):
                    if item.unfinished and self.source != "-":
                        # Left for the next run, which resumes before it (docs/events.md).
                        summary.lines -= 1
                        last_line = item.line - 1
                        summary.unfinished_line = item.line
                        continue
                    summary.rejected += 1
                    self.batch.rejects.append(
                        (self.reject_source, item.line, item.reason, item.text)
                    )
                elif skip and item.id in skip:
                    summary.duplicates += 1
                    last_event = item
                else:
                    self.apply(item)
                    last_event = item
                pending += 1
                if pending >= batch_size or (
                    every is not None and not pending & 255 and clock() - last_commit >= every
                ):
                    self._anchor(last_event)
                    self.commit(last_line)
                    last_commit = clock()
                    pending = 0
            if marked and pending and every is not None and clock() - last_commit >= every:
                self._anchor(last_event)  # a slow stream's lines wait no longer than `every`
                self.commit(last_line)
                last_commit = clock()
                pending = 0
            if progress:
                progress(summary.lines)
        if broken is not None:
            # The stream broke (a cut gzip file, a read error) or the caller's iterable
            # raised (or was interrupted): every line before the break was read whole and
            # applied, so it is committed with its position, and a run on the repaired file
            # (or the rest of the iterable) resumes after it. An interrupt with nothing read
            # since the last commit commits nothing (a new run on standard input is not
            # counted). The exception goes on unchanged.
            if pending or isinstance(broken, EventSourceError):
                self._anchor(last_event)
                self.commit(last_line)
            raise broken
        if now is not None:
            self.advance(now)
        self._anchor(last_event)
        self.commit(last_line)
        summary.seconds = time.perf_counter() - started
        return summary

    def _anchor(self, last: Event | None) -> None:
        """Keep the last event read from a file with its position, for `read_events` to check.

        A run resuming on the same path reads that line again: a file replaced there is
        refused instead of having its first lines skipped.
        """
        if last is not None and self.source != "-":
            self.batch.anchor = (last.line, line_check(last.raw))

    def _dedupe(self, chunk: list[Event | Reject]) -> set[str] | None:
        """The ids of this chunk that committed batches applied before the window began."""
        if not self._filter_used:  # a new store, and the window still holds every id
            return None
        applied, mark = self.applied, self._maybe_applied
        ids = []
        if self._unfilled:  # every id the window lacks is asked, up to `fill_filter_after`
            for i in chunk:
                eid = i.id if type(i) is Event else None
                if eid is not None and eid not in applied:
                    ids.append(eid)
            self._asked += len(ids)
            if self._asked <= self.fill_filter_after:
                return self.store.applied_among(ids) if ids else None
            self._fill_filter()
            ids = []
        for i in chunk:
            eid = i.id if type(i) is Event else None
            if eid is not None and eid not in applied:
                h = event_hash(eid) & _FILTER_MASK
                if mark[h >> 3] & (1 << (h & 7)):
                    ids.append(eid)
        return self.store.applied_among(ids) if ids else None

    def _fill_filter(self) -> None:
        """Mark the hash of every id the store applied (this run's committed ones too)."""
        mark = self._maybe_applied
        for h in self.store.applied_hashes():
            h &= _FILTER_MASK
            mark[h >> 3] |= 1 << (h & 7)
        self._unfilled = False

    def _prefetch(self, chunk: list[Event | Reject]) -> None:
        """Read the chunk's prospects, ties and anonymous views memory lacks: a query per 500.

        Once the caches have dropped some (or the store was not empty at start), each
        miss was a query of its own, and an anonymous visitor's every view was one: at
        2M events over 145,000 prospects, two events in three. What is read here is
        used by `_peek` and `_visitor` until the next commit. So are the committed
        anonymous views of the visitors an event of the chunk may tie for the first
        time (`_tie_visitor`): an event naming the visitor and a prospect (the only ones
        that tie), when no tie of the visitor is known; each first tie read them alone.
        """
        prospects, visitors = self.prospects, self.visitors
        emails: set[str] = set()
        vids: set[str] = set()
        firsts: set[str] = set()  # visitors an event of the chunk may tie for the first time
        if self._stored_beyond or self._visitors_beyond:
            for e in chunk:
                if type(e) is Event:
                    email = e.prospect
                    if email is not None and email not in prospects:
                        emails.add(email)
                    vid = e.visitor
                    if vid is not None:
                        tied = visitors.get(vid)
                        if tied is None:
                            vids.add(vid)
                            if email is not None:
                                firsts.add(vid)
                        elif tied not in prospects:
                            emails.add(tied)
        else:  # the store has no prospect or tie the caches lack: only first ties' views
            for e in chunk:
                if type(e) is Event and e.prospect is not None:
                    vid = e.visitor
                    if vid is not None and vid not in visitors:
                        firsts.add(vid)
        if vids and self._visitors_beyond:
            ties = self.store.visitors_among(vids)
            for vid in vids:
                tied = ties.get(vid)
                if tied is None:
                    self._untied.add(vid)
                else:
                    visitors[vid] = tied
                    firsts.discard(vid)  # tied: its views are its prospect's already
                    if tied not in prospects:
                        emails.add(tied)
        if self._views_among:
            views: dict[str, list[tuple[float, str]]] = {}
            if firsts:
                found = self.store.anonymous_views_among(firsts)
                for vid in firsts:
                    got = found.get(vid)
                    views[vid] = got if got is not None else []
            self._views = views  # the last chunk's are dropped: its first ties are done
        if emails and self._stored_beyond:
            states = self.store.prospects_among(emails)
            self._prefetched = {email: states.get(email) for email in emails}

    def apply(self, e: Event) -> None:
        """Apply one valid event."""
        eid = e.id
        if eid is not None and (eid in self.applied or eid in self._left):
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
        self.unit += 1
        self.line, self.event_id, self.event_ts = e.line, eid, ts
        self._fresh = None
        self._row, self._rowed = None, False
        self._handlers[e.type](e)
        if eid is not None:
            applied = self.applied
            applied[eid] = None
            if len(applied) > self.window:  # forget the oldest: the store has it now
                oldest = applied.popitem(last=False)[0]
                self._left.add(oldest)
                h = event_hash(oldest) & _FILTER_MASK
                self._maybe_applied[h >> 3] |= 1 << (h & 7)
                self._filter_used = True
            if not self._rowed:  # nothing to record but the id: a bare row keeps it
                self.batch.rows.append(Row(None, self.now, self.row_source, self.line, eid))
        self.summary.applied += 1

    def release(self) -> None:
        """Let go of the run's caches, once it is done (`mrules.run` calls it).

        A finished engine is cyclic garbage (its handler table holds its own bound
        methods): until a full collection finds it, it would keep its prospect cache,
        ids window and wake-up queue. `mrules replay` freezes the collector after each
        run, which would keep them for the whole comparison.
        """
        self.prospects = {}
        self.visitors = {}
        self.applied = OrderedDict()
        self._left = set()
        self._maybe_applied = bytearray()
        self._settled_at = {}
        self._wakes = WakeQueue()
        self._prefetched, self._views, self._anonymous = {}, {}, {}
        self._handlers = {}  # the cycle: with it broken, the engine goes when its last user does

    def advance(self, now: float) -> None:
        """Move the clock to `now` (as a tick would) and re-check time-based rules."""
        if self.clock is None or now > self.clock:
            self.clock = now
        self.now = self.clock
        self.unit += 1
        self.line, self.event_id = 0, None
        self._row = None
        self._tick_all()

    def commit(self, line: int) -> None:
        b = self.batch
        b.line, b.clock = line, self.clock
        prospects = self.prospects
        codecs, now = self.cs.codecs, self.now
        for email in self.dirty:
            _forget_expired(prospects[email], now, self._throttle, self._notify_window)
        written = sorted(self.dirty)
        b.prospects = {email: prospects[email].to_json(codecs) for email in written}
        visitors = self.visitors
        b.visitors = {vid: (visitors[vid], b"[]") for vid in self.dirty_visitors}
        if self.shared_dirty:
            b.shared = {k: _json(v) for k, v in self.shared.items()}
        if b.unsettled:  # a report a later unit of the batch made stale is not kept
            dirty = self.dirty
            b.unsettled = [
                r
                for r, unit in zip(b.unsettled, self.report_units, strict=True)
                if dirty[r["prospect"]] == unit
            ]
        self.store.commit(b)
        self._prefetched, self._untied = {}, set()
        # What the chunk's prefetch read still holds once the batch's anonymous views are
        # added, in the order the store now returns them (a tie took its visitor's views
        # out of both): a visitor tied after this commit is not read again.
        anonymous = self._anonymous
        if self._views and anonymous:
            self._views = {
                v: got + anonymous[v] if v in anonymous else got for v, got in self._views.items()
            }
        self._created = []
        self._evict(written)
        if self.on_commit is not None:
            self.on_commit(b)
        self.batch = Batch(source=self.source, line=line, clock=self.clock)
        self._row = None
        self.dirty = {}
        self.report_units = []
        self.dirty_visitors = set()
        self._anonymous = {}  # committed: the store has these views now
        self.shared_dirty = False
        collect_young()  # the batch is gone: what the interval left (paced_collector)

    # -------------------------------------------------------- the prospect cache

    def _get(self, email: str, data: bytes | None = None) -> Prospect | None:
        """The prospect (cached, or decoded from the store and cached), None if unknown.

        `data`: its stored state when the caller has read it already (used only when the
        prospect is not cached: a cached one may have changed since its commit).
        """
        p = self.prospects.get(email)
        if p is None:
            p = self._peek(email, data)
            if p is not None:
                self.prospects[email] = p
        return p

    def _peek(self, email: str, data: bytes | None = None) -> Prospect | None:
        """The prospect as `_get` gives it, but not cached when it had to be decoded."""
        p = self.prospects.get(email)
        if p is None and self._stored_beyond:
            if data is None:
                pre = self._prefetched  # not popped: a tick may peek before the event reads
                data = pre[email] if email in pre else self.store.prospect(email)
            if data is not None:
                p = Prospect.from_json(data, self.cs.codecs, email)
        return p

    def _visitor(self, vid: str) -> str | None:
        """The email of the prospect a visitor is tied to (cached, or from the store)."""
        email = self.visitors.get(vid)
        if email is None and self._visitors_beyond and vid not in self._untied:
            email = self.store.visitor(vid)
            if email is not None:
                self.visitors[vid] = email
        return email

    def _every(self) -> Iterator[tuple[str, bytes | None]]:
        """Every prospect as (email, stored state): the store's (by email, read as they go),
        then those created since the commit (no stored state yet).

        At start (retroactive rules, segmentation) that is the order the store gives.
        """
        yield from self.store.prospects()
        for email in list(self._created):
            yield email, None

    def _evict(self, committed: Iterable[str]) -> None:
        """After a commit: mark the prospects it wrote as recently used, drop the oldest.

        Tied visitors beyond the same bound go too, the oldest ties first.
        """
        cap = self.cache_prospects
        prospects = self.prospects
        if cap is None:
            return
        pop = prospects.pop
        for email in committed:  # to the end: the most recently used
            prospects[email] = pop(email)
        if len(prospects) > cap:
            for email in list(islice(prospects, len(prospects) - cap)):
                del prospects[email]
            self._stored_beyond = True
        visitors = self.visitors
        if len(visitors) > cap:
            for vid in list(islice(visitors, len(visitors) - cap)):
                del visitors[vid]
            self._visitors_beyond = True

    # ------------------------------------------------------------- identities

    def _prospect(self, email: str, e: Event | None) -> Prospect:
        p = self.prospects.get(email)
        if p is None:
            p = self._get(email)
        if p is None:
            # Created at the event's time: an event older than the clock does
            # not make a prospect whose creation follows its first activity.
            now = self.now
            p = Prospect(email, e.ts_epoch if e is not None and e.ts_epoch < now else now)
            p.profile = self.cs.default_profile
            self.prospects[email] = p
            self._created.append(email)
            self.summary.prospects_created += 1
            self.log(p, self._ref_for(e), Action.CREATE_PROSPECT, {}, None, email)
            self._fresh = email  # its first settle looks at every rule (§4.2)
        self.dirty[email] = self.unit
        if self._timed:
            self._settled_at[email] = self.now
        return p

    def _ref_for(self, e: Event | None) -> RuleRef:
        kind = e.type if e is not None else "run"
        ref = self._event_ref.get(kind)
        if ref is None:
            ref = self._event_ref[kind] = RuleRef("event", kind, self.source_label)
        return ref

    def _tie_visitor(self, vid: str, c: Context) -> None:
        """A visitor converts: its anonymous page views now count for p (never replayed).

        Only a visitor's first tie can find anonymous views: once tied, its views
        are its prospect's.
        """
        p = c.p
        known = self._visitor(vid)
        if known == p.email:
            return
        self.visitors[vid] = p.email
        self.dirty_visitors.add(vid)
        if known is not None:
            return
        stored = self._views.pop(vid, None)  # read with its chunk (`_prefetch`)
        if stored is None:
            stored = self.store.anonymous_views(vid)
        history = stored + self._anonymous.pop(vid, [])
        if not history:
            return
        points = self.cs.scoring.get("page_view")
        for ts, url in history:
            self._visited(p, url, ts)
            if points:
                self._score(
                    c, points[1], points[0], {"activity": "page view", "attached_from": vid}
                )
        self.batch.attach_visitor.append((vid, p.email))
        c.facts.update(("act", "score", "time"))

    # ----------------------------------------------------------------- ledger

    def _row_for(self, email: str | None) -> Row:
        """The history row of the current event for this prospect (a new one if needed)."""
        row = self._row
        if row is None or row.prospect != email or row.line != self.line:
            row = Row(email, self.now, self.row_source, self.line, self.event_id)
            self.batch.rows.append(row)
            self._row, self._rowed = row, True
        return row

    def log(
        self, p: Prospect, ref: RuleRef, action: str, args: Any, before: Any, after: Any
    ) -> None:
        """One ledger step: kept as values in the event's history row, encoded at commit."""
        self.seq += 1
        email = p.email
        row = self._row
        if row is None or row.prospect != email or row.line != self.line:
            row = self._row_for(email)
        row.steps += (self.seq, ref, action, args, before, after)
        self.summary.actions[action] += 1
        self.dirty[email] = self.unit


@contextlib.contextmanager
def paced_collector() -> Iterator[None]:
    """No automatic garbage collection while a stream is applied; `Engine.commit` collects.

    A run allocates millions of short-lived containers (context sets, ledger
    args, history rows) and keeps a growing heap of long-lived ones (prospects,
    the batch of the current commit). With Python's default thresholds the
    cyclic collector walked that heap again and again, a quarter of a run's
    CPU; with thresholds a hundred times higher it still took 5% of a compiled
    run. A run makes almost no reference cycles (refcounting frees what it
    drops), so the collector is off for the run, and each commit collects the
    young generation once the batch is written (`collect_young`): cyclic garbage
    made since the last commit goes then, and what survives is not walked again
    during the run. The collector is switched back on after, if it was on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def collect_young() -> None:
    """Collect what was allocated since the last collection and is garbage (see above)."""
    gc.collect(0)


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


def _check_shared(shared: dict[str, Any]) -> None:
    """Shared values of the shapes this engine writes; another shape is damage.

    Found when the run starts, not as a `TypeError` at the first assignment or new
    criterion that reads one."""
    for key, value in shared.items():
        if key == "grading":
            ok = type(value) is str
        elif key == "clicks_by_block":
            ok = value is True
        elif key in ("activity_keys", "active_rules"):
            ok = type(value) is list and all(type(k) is str for k in value)
        elif key in ("rule_criteria", "rule_declared"):
            ok = type(value) is dict and all(type(v) is str for v in value.values())
        elif key == "stdin_runs" or key.startswith("round_robin:"):
            ok = type(value) is int and value >= 0
        else:
            ok = True  # a key a later version wrote: kept as it is
        if not ok:
            raise DamagedState(f"its shared state {key!r} is {str(value)[:40]!r}")
