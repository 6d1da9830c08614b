"""History rows: one event's activity and the ledger entries it caused, for one prospect.

The engine builds a `Row` per (event, prospect) it touches: the event's
activity if it has one (a page view, a form submit...) and the ledger steps
(seq, rule, action, args, before, after) in the order they happened. Values
stay Python objects until a store needs bytes; `pack` then writes the whole
row as one compact MessagePack array, with every repeated string (the stream, the
event type, the rule, the action, most args, asset names and URLs) replaced
by a small integer from the store's `names` table, and `unpack` reverses it.
`Row.entries()` and `Row.activity()` give the typed records the readers use
(`mrules.records`), with args, before and after as JSON text, exactly as the
ledger always held them.

The packed array (docs/store.md, table `history`), in MessagePack (schema 3
on; rows written before it are JSON, told apart by their first byte):

    [source, line, type, asset, url, (asset_kind, clock)?, (dseq, rule, action, args, before,
     after)*]

`type` is 0 when the row has no activity; `asset`/`url` are 0 (none), a
names id or the text itself. A negative `type` (rare) says `asset_kind` and
`clock` follow: `asset_kind` is 0 when it is the one the type implies,
`clock` is the ledger's time (it differs from the row's `ts`). `dseq`
is the seq minus the previous step's, left out for the first step (its seq
is the row's `seq` column); `args` is a names id or `[value]`;
`before`/`after` are the values. Outbox messages and CRM work are ledger
steps too (`Row.messages`): a store derives them instead of keeping copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

import msgpack  # type: ignore[import-untyped]
import orjson

from mrules.jsonbytes import kept
from mrules.records import Activity, LedgerEntry, Message
from mrules.vocab import ASSET_EVENTS, Action

# Ledger actions that are an outbox message, and those that are CRM work (with its kind).
OUTBOX_ACTIONS = frozenset((Action.NOTIFY, Action.AUTORESPONDER))
CRM_ACTIONS = {
    Action.CRM_CAMPAIGN_MEMBER: "campaign_member",
    Action.CRM_TASK: "task",
    Action.CRM_CREATE_RECORD: "create_record",
    Action.CRM_ASSIGNMENT_RULE: "assignment_rule",
}
OUTBOX, CRM = 1, 2  # bits of a row's `messages` column

__all__ = [
    "STEP",
    "Interner",
    "Ref",
    "Row",
    "dump_data",
    "json_text",
    "load_data",
    "pack",
    "unpack",
]

_dumps = orjson.dumps
_loads = orjson.loads
STEP: Final = 6  # values per ledger step in Row.steps: seq, ref, action, args, before, after
_HEAD = 5  # packed values before the steps (7 when the type is negative)


_packb = msgpack.packb
_unpackb = msgpack.unpackb


def dump_data(values: list[Any]) -> bytes:
    """A row's `data` bytes: the packed array in MessagePack.

    MessagePack writes a small integer in one byte and needs no separators:
    rows take about 40% less room than the same array as JSON (37.7 against
    66.6 bytes on the benchmark workload), for a few hundred nanoseconds more
    per row.
    """
    return _packb(values)


def load_data(data: bytes) -> list[Any]:
    """The packed array of a row's `data`, whichever encoding wrote it (JSON before schema 3).

    Raises ValueError for bytes that are not a packed row (a damaged store):
    random bytes often decode as some MessagePack value, so the head is checked.
    """
    try:
        v = _loads(data) if data[:1] == b"[" else _unpackb(data)
    except (ValueError, TypeError) as e:  # orjson's and msgpack's errors are ValueErrors
        raise ValueError(f"not a history row ({type(e).__name__})") from None
    if (
        type(v) is not list
        or len(v) < _HEAD
        or type(v[0]) is not int
        or type(v[1]) is not int
        or type(v[2]) is not int
    ):
        raise ValueError("not a history row (its head is not [source, line, type, ...])")
    return v


def json_text(value: Any) -> str:
    """JSON text of a ledger value; the common scalars skip the encoder."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    return _dumps(value).decode()


def _kind_of(etype: str | None) -> str | None:
    found = ASSET_EVENTS.get(etype) if etype is not None else None  # type: ignore[call-overload]
    return None if found is None else str(found[1])


class Row:
    """One history row: what one event did to one prospect (or an anonymous visitor)."""

    __slots__ = (
        "asset",
        "clock",
        "etype",
        "event_id",
        "kind",
        "line",
        "prospect",
        "source",
        "steps",
        "ts",
        "url",
        "visitor",
    )

    def __init__(
        self,
        prospect: str | None,
        ts: float | None,
        source: str | None,
        line: int,
        event_id: str | None,
    ) -> None:
        # ts and source are None only in an applied-id row migrated from a version 1 store
        self.prospect = prospect
        self.visitor: str | None = None
        self.ts = ts  # the activity's event time, or the clock when there is no activity
        self.clock = ts  # the engine clock of the ledger steps
        self.source = source
        self.line = line
        self.event_id = event_id
        self.etype: str | None = None  # the activity's event type; None: no activity
        self.asset: str | None = None
        self.url: str | None = None
        self.kind: str | None = None  # asset kind, when not the one etype implies
        self.steps: list[Any] = []  # flat: seq, ref, action, args, before, after, ...

    def __repr__(self) -> str:
        return (
            f"Row({self.prospect!r}, line {self.line}, {self.etype}, {len(self.steps) // STEP}"
            " steps)"
        )

    @property
    def first_seq(self) -> int | None:
        return self.steps[0] if self.steps else None

    def message_bits(self) -> int:
        """OUTBOX | CRM: which kinds of message this row's steps are."""
        bits = 0
        steps = self.steps
        for i in range(2, len(steps), STEP):
            action = steps[i]
            if action in OUTBOX_ACTIONS:
                bits |= OUTBOX
            elif action in CRM_ACTIONS:
                bits |= CRM
        return bits

    def messages(self, want: int) -> Iterator[Message]:
        """The outbox messages (want=OUTBOX) or CRM work (want=CRM) these steps are.

        A message is its ledger step: the same seq, time and prospect, the
        action's arguments plus the rule's name and file:line as payload.
        """
        steps = self.steps
        for i in range(0, len(steps), STEP):
            seq, ref, action, args, _before, _after = steps[i : i + STEP]
            if want == OUTBOX and action in OUTBOX_ACTIONS:
                kind = str(action)
            elif want == CRM and action in CRM_ACTIONS:
                kind = CRM_ACTIONS[action]
            else:
                continue
            payload = {**(args or {}), "rule": ref.name, "at": ref.loc}
            yield Message(seq, self.clock, self.prospect, kind, _dumps(payload).decode())

    def activity(self) -> Activity | None:
        ts, source = self.ts, self.source
        if self.etype is None or ts is None or source is None:
            return None  # no activity (an applied-id row migrated from version 1 has no time)
        kind = self.kind if self.kind is not None else _kind_of(self.etype)
        return Activity(
            self.prospect,
            self.visitor,
            ts,
            self.etype,
            kind,
            self.asset,
            self.url,
            source,
            self.line,
            self.event_id,
        )

    def entries(self, after_seq: int = 0) -> Iterator[LedgerEntry]:
        """The ledger entries of this row (seq > after_seq), args/before/after as JSON text."""
        steps = self.steps
        for i in range(0, len(steps), STEP):
            seq, ref, action, args, before, after = steps[i : i + STEP]
            if seq <= after_seq:
                continue
            yield LedgerEntry(
                seq,
                self.clock,
                self.prospect,
                ref.kind,
                ref.name,
                ref.loc,
                self.source,
                self.line,
                self.event_id,
                action,
                json_text(args),
                json_text(before),
                json_text(after),
            )


class Ref:
    """A rule reference read back from a store (kind, name, file:line), like `RuleRef`."""

    __slots__ = ("kind", "loc", "name")

    def __init__(self, kind: str, name: str, loc: str | None) -> None:
        self.kind, self.name, self.loc = kind, name, loc


class Interner:
    """The store's `names` table in memory: text <-> small integer, and what a batch added.

    `names[0]` is unused: 0 means "none". A batch's new names are in `added`
    until the store writes them; `rollback()` forgets them if the commit fails.
    """

    def __init__(self, cap: int = 200_000) -> None:
        self.ids: dict[Any, int] = {}
        self.texts: list[str | None] = [None]
        self.added: list[tuple[int, str]] = []
        self.cap = cap
        self._refs: dict[int, tuple[Any, int]] = {}  # id(ref) -> (ref, names id)
        self.args: dict[bytes, int] = {}  # args JSON bytes -> names id (the packer's cache)
        self._parsed_refs: dict[int, Ref] = {}
        self.plans: dict[str, Plan] = {}  # action -> how `pack` writes its steps
        # `pack`'s encoder: `dump_data` with one reused Packer (a third faster than
        # `msgpack.packb`); one per store, and a store is used by one thread.
        self.pack_data = msgpack.Packer().pack
        # A reader of a few rows sets this: a name not loaded is asked of the store.
        self.fetch: Callable[[int], str | None] | None = None

    def load(self, rows: Iterator[tuple[int, str]]) -> None:
        for i, text in rows:
            while len(self.texts) <= i:
                self.texts.append(None)
            self.texts[i] = text
            self.ids[text] = i

    def get(self, text: str) -> int:
        """The id of `text`, adding it (for the next commit) if new."""
        found = self.ids.get(text)
        if found is None:
            found = len(self.texts)
            text = str(text)  # a StrEnum member is stored as its plain text
            self.texts.append(text)
            self.ids[text] = found
            self.added.append((found, text))
        return found

    def maybe(self, text: str) -> int | str:
        """The id of `text` if it is known or there is room; else the text itself."""
        found = self.ids.get(text)
        if found is not None:
            return found
        if len(self.texts) >= self.cap or len(text) > 200:
            return text
        return self.get(text)

    def maybe_args(self, text: bytes) -> int | None:
        """The id of an args JSON text (bytes), interning it if there is room; else None."""
        found = self.args.get(text)
        if found is None:
            decoded = text.decode()
            found = self.ids.get(decoded)
            if found is None:
                if len(self.texts) >= self.cap or len(text) > 200:
                    return None
                found = self.get(decoded)
            self.args[kept(text)] = found  # kept for the run: not orjson's 4 KB buffer
        return found

    def ref(self, ref: Any) -> int:
        found = self._refs.get(id(ref))
        if found is not None and found[0] is ref:
            return found[1]
        i = self.get(_dumps([ref.kind, ref.name, ref.loc]).decode())
        self._refs[id(ref)] = (ref, i)
        return i

    def plan(self, action: str) -> Plan:
        """How `pack` writes a step of `action` (its names id interned on first use)."""
        found = self.plans.get(action)
        if found is None:
            found = Plan(action, self.get(action))
            self.plans[action] = found
        return found

    def commit(self) -> None:
        self.added = []

    def rollback(self) -> None:
        for _i, text in self.added:
            self.ids.pop(text, None)
        if self.added:
            del self.texts[self.added[0][0] :]
        self.added = []
        self._refs = {k: v for k, v in self._refs.items() if v[1] < len(self.texts)}
        self.args = {k: v for k, v in self.args.items() if v < len(self.texts)}
        self.plans = {k: v for k, v in self.plans.items() if v.id < len(self.texts)}

    # -- reading --------------------------------------------------------------------------
    def text(self, i: int) -> str:
        text = self.texts[i] if i < len(self.texts) else None
        if text is None and self.fetch is not None:
            text = self.fetch(i)
        if text is None:
            raise KeyError(i)
        return text

    def parsed_ref(self, i: int) -> Ref:
        found = self._parsed_refs.get(i)
        if found is None:
            kind, name, loc = _loads(self.text(i))
            found = self._parsed_refs[i] = Ref(kind, name, loc)
        return found


# Steps whose before and after follow from the action (and the row): they are packed
# without them, the action id negated. A score's after is before + points.
_IMPLIED: dict[str, tuple[Any, Any]] = {
    Action.ADD_TO_LIST: (False, True),
    Action.ADD_TAG: (False, True),
    Action.REMOVE_FROM_LIST: (True, False),
    Action.REMOVE_TAG: (True, False),
    Action.RULE_MATCHED: (None, None),
    Action.NOTIFY: (None, None),
    Action.AUTORESPONDER: (None, None),
    **{a: (None, None) for a in CRM_ACTIONS},
}
_SCORE = Action.SCORE
_CREATE = Action.CREATE_PROSPECT


# How `pack` writes a step (`Plan.how`): before and after in full, or left out when
# they are the action's fixed pair, a score's before + points, a new prospect's email.
_FULL: Final = 0
_FIXED: Final = 1
_SCORED: Final = 2
_CREATED: Final = 3
_NO_REF: Final = object()


class Plan:
    """How `pack` writes the steps of one action, worked out once per store, not per step."""

    __slots__ = ("after", "before", "bits", "how", "id")

    def __init__(self, action: str, i: int) -> None:
        self.id = i  # the action's names id (negated when before/after are left out)
        fixed = _IMPLIED.get(action)
        self.before: Any = None if fixed is None else fixed[0]
        self.after: Any = None if fixed is None else fixed[1]
        if fixed is not None:
            self.how = _FIXED
        elif action == _SCORE:
            self.how = _SCORED
        elif action == _CREATE:
            self.how = _CREATED
        else:
            self.how = _FULL
        self.bits = OUTBOX if action in OUTBOX_ACTIONS else CRM if action in CRM_ACTIONS else 0


def pack(row: Row, names: Interner) -> bytes:
    """The row's packed data (see the module docstring); new names go to `names.added`."""
    return packed(row, names)[0]


def packed(row: Row, names: Interner) -> tuple[bytes, int]:
    """`pack` and `Row.message_bits` in one pass over the steps (the store wants both)."""
    asset, url = row.asset, row.url
    etype = names.get(row.etype) if row.etype is not None else 0
    out: list[Any] = [
        names.get(row.source) if row.source is not None else 0,
        row.line,
        etype,
        names.maybe(asset) if asset is not None else 0,
        names.maybe(url) if url is not None else 0,
    ]
    if row.kind is not None or row.clock != row.ts:  # rare: a negative type says so
        if not etype:
            raise ValueError("a row without an activity has its clock as its time")
        out[2] = -etype
        out += (row.kind or 0, row.clock)
    steps = row.steps
    n = len(steps)
    bits = 0
    if n:
        email = row.prospect
        email_bytes: bytes | None = None
        dumps, known_args, plans = _dumps, names.args, names.plans
        last_ref: Any = _NO_REF  # a row's steps often share their rule: its id is reused
        ref_id = 0
        prev = steps[0]
        i = 0
        while i < n:
            seq, ref, action = steps[i], steps[i + 1], steps[i + 2]
            args, before, after = steps[i + 3], steps[i + 4], steps[i + 5]
            text = dumps(args)
            packed_args: Any = known_args.get(text)
            if packed_args is None:
                if email and email_bytes is None:
                    email_bytes = email.encode()
                if email_bytes is not None and email_bytes in text:
                    packed_args = [args]  # per-prospect args (a notification's address)
                else:
                    packed_args = names.maybe_args(text)
                    if packed_args is None:
                        packed_args = [args]
            if i:  # the first step's seq is the row's `seq` column
                out.append(seq - prev)
            prev = seq
            i += STEP
            if ref is not last_ref:
                ref_id = names.ref(ref)
                last_ref = ref
            plan = plans.get(action)
            if plan is None:
                plan = names.plan(action)
            bits |= plan.bits
            how = plan.how
            out.append(ref_id)
            if how == _FIXED:
                if before is plan.before and after is plan.after:
                    out.append(-plan.id)
                    out.append(packed_args)
                    continue
            elif how == _SCORED:
                if type(before) is int and type(after) is int and type(args) is dict:
                    points = args.get("points")
                    if type(points) is int and after == before + points:
                        out.append(-plan.id)
                        out.append(packed_args)
                        out.append(before)
                        continue
            elif how == _CREATED and before is None and after == email and email is not None:
                out.append(-plan.id)
                out.append(packed_args)
                continue
            out.append(plan.id)
            out.append(packed_args)
            out.append(before)
            out.append(after)
    return names.pack_data(out), bits


def unpack(
    data: bytes,
    names: Interner,
    prospect: str | None,
    visitor: str | None,
    ts: float | None,
    seq: int | None,
    event_id: str | None,
) -> Row:
    """A Row from its packed data and columns (rule references read back as `Ref`)."""
    v = load_data(data)
    text = names.text
    row = Row(prospect, ts, text(v[0]) if v[0] else None, v[1], event_id)
    row.visitor = visitor
    head = _HEAD
    etype = v[2]
    if etype:
        asset, url = v[3], v[4]
        if asset != 0:
            row.asset = text(asset) if type(asset) is int else asset
        if url != 0:
            row.url = text(url) if type(url) is int else url
        if etype < 0:
            etype = -etype
            row.kind = v[5] or None
            row.clock = v[6]
            head += 2
        row.etype = text(etype)
    n = len(v)
    steps = row.steps
    current = seq or 0
    parsed_ref = names.parsed_ref
    i = first = head
    while i < n:
        if i > first:
            current += v[i]
            i += 1
        ref, action, args = v[i], v[i + 1], v[i + 2]
        args_value: Any = _loads(text(args)) if type(args) is int else args[0]
        if args_value is not None and type(args_value) is not dict:  # damage: readers
            raise ValueError(f"a step's args are not a JSON object: {str(args_value)[:40]!r}")
        if action < 0:
            name = text(-action)
            if name == _SCORE:
                before = v[i + 3]
                after = before + (args_value or {})["points"]  # none: KeyError, damage
                i += 4
            else:
                before, after = _IMPLIED.get(name, (None, prospect))
                i += 3
        else:
            name = text(action)
            before, after = v[i + 3], v[i + 4]
            i += 5
        steps += (current, parsed_ref(ref), name, args_value, before, after)
    return row
