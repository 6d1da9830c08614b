"""Prospect state: one compact record per prospect, and the grade ladder.

A `Prospect` holds everything the rules read or write about one person, and
nothing about anyone else: that is what lets a stream split by prospect run in
pieces (docs/semantics.md). Collections stay `None` until first used so that
a prospect costs a few hundred bytes in memory; `to_json`/`from_json` give the
form the store keeps.

Activity is summarised as the last time of each *activity key*:
`submitted|form|Demande Get Cloudy`, `submitted|form|` (any form),
`visited|getcloudy.com/pricing*` (a URL pattern some rule reads). That is all
the activity criteria need (`submitted form "X" within 30 days`); the full
history stays in the store's `activities` table for retroactive rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from sys import intern
from typing import Any, Final

import orjson

from mrules.jsonbytes import kept_dumps

__all__ = [
    "GRADES",
    "Codecs",
    "DamagedState",
    "NameBits",
    "Prospect",
    "grade_letter",
    "grade_rank",
    "shared_text",
]

GRADES: Final = ("F", "D-", "D", "D+", "C-", "C", "C+", "B-", "B", "B+", "A-", "A", "A+")
_RANK: Final = {g: i for i, g in enumerate(GRADES)}


def grade_rank(letter: str) -> int:
    """Position of a grade on the 13-step ladder (F=0 … A+=12)."""
    return _RANK[letter]


def grade_letter(rank: int) -> str:
    return GRADES[max(0, min(len(GRADES) - 1, rank))]


class DamagedState(ValueError):
    """A stored prospect state that cannot be decoded: the store is damaged."""


class NameBits:
    """Names to bits, so that a set of names (lists, tags, rules) is one int.

    A Python set costs 216 bytes even with one member; an int costs 28. The
    compiler gives every name a rule set uses a bit; a name met later (in a
    store written by an older rule set) gets the next free bit.

    >>> nb = NameBits(); mask = nb.bit("MQL") | nb.bit("Customers")
    >>> nb.decode(mask), nb.encode(["Customers"]) == nb.bit("Customers")
    (['Customers', 'MQL'], True)
    """

    __slots__ = ("_bits", "_names")

    def __init__(self) -> None:
        self._bits: dict[str, int] = {}
        self._names: list[str] = []

    def bit(self, name: str) -> int:
        found = self._bits.get(name)
        if found is None:
            found = self._bits[name] = 1 << len(self._names)
            self._names.append(name)
        return found

    def encode(self, names: Iterable[str]) -> int:
        mask = 0
        for name in names:
            mask |= self.bit(name)
        return mask

    def decode(self, mask: int) -> list[str]:
        out, names = [], self._names
        while mask:  # one turn per member, not per bit below the highest
            low = mask & -mask
            out.append(names[low.bit_length() - 1])
            mask ^= low
        return sorted(out)


@dataclass(frozen=True)
class Codecs:
    """The name-to-bit tables of one rule set: lists (static and dynamic), tags, rules, emails."""

    lists: NameBits = field(default_factory=NameBits)
    tags: NameBits = field(default_factory=NameBits)
    rules: NameBits = field(default_factory=NameBits)
    emails: NameBits = field(default_factory=NameBits)

    def __reduce__(self) -> tuple[Any, ...]:
        # Compiled by mypyc, a frozen dataclass cannot be unpickled field by field.
        return (Codecs, (self.lists, self.tags, self.rules, self.emails))


_BITS: Final = {
    "lists": "lists",
    "dynamic": "lists",
    "tags": "tags",
    "latched": "rules",
    "opened": "emails",
}


class Prospect:
    """The state of one prospect. Plain slots: this object is on the hot path."""

    __slots__ = (
        "acts",
        "assigned_at",
        "assigned_kind",
        "assigned_to",
        "campaign",
        "categories",
        "clicked",
        "created",
        "criteria",
        "crm_id",
        "crm_status",
        "dns_by_rule",
        "do_not_sync",
        "dynamic",
        "email",
        "fields",
        "grade",
        "last_activity",
        "latched",
        "lists",
        "matches",
        "notified",
        "opened",
        "opted_out",
        "profile",
        "reassigned_at",
        "score",
        "stamps",
        "tags",
        "throttle",
    )

    def __init__(self, email: str, created: float) -> None:
        self.email = email
        self.created = created
        self.score = 0
        self.categories: dict[str, int] | None = None
        self.fields: tuple[Any, ...] | None = None  # (name, value, name, value, …): see field()
        self.lists = 0  # static lists, as bits of Codecs.lists
        self.dynamic = 0  # dynamic lists, as bits of Codecs.lists
        self.tags = 0  # as bits of Codecs.tags
        self.assigned_kind: str | None = None  # user | queue | crm rule
        self.assigned_to: str | None = None
        self.assigned_at: float | None = None  # the first assignment: the MQL time
        # The latest change of assignee after the first (the CRM's, a rule's); None: never.
        self.reassigned_at: float | None = None
        self.crm_status = "none"  # none | lead | contact | deleted
        self.crm_id: str | None = None
        # `do_not_sync` holds while either cause does: a rule's `do not sync` (also kept
        # here, so a CRM undelete leaves it) or the CRM's deletion of the linked record.
        self.dns_by_rule = False
        self.do_not_sync = False
        self.opted_out = False
        self.campaign: str | None = None
        self.profile: str | None = None
        self.grade: str | None = None  # None until a criterion of the profile is known
        self.criteria: dict[str, int] | None = None  # "profile|criterion" -> +1 / -1
        self.last_activity: float | None = None
        self.acts: tuple[Any, ...] | None = None  # (key, last time, …) for keys a rule reads
        self.latched = 0  # rules that fire once and have fired, as bits of Codecs.rules
        self.matches: dict[str, tuple[int, float]] | None = None  # repeating rule -> (count, last)
        self.throttle: dict[str, float] | None = None  # "score|asset" -> last time
        # "email|url" links already clicked: a tuple while few (a set costs 216 bytes
        # however small), a frozenset beyond `_FEW_LINKS`; never changed in place.
        self.clicked: tuple[str, ...] | frozenset[str] | None = None
        self.notified: dict[str, float] | None = None  # page action -> last notification
        self.opened = 0  # emails opened (first-open scoring), as bits of Codecs.emails
        # When our value of a `prefer most recent` field last changed (event time).
        self.stamps: dict[str, float] | None = None

    # Serialisation: names, not bits, only what is set, and short keys (`_SHORT`), so the
    # store stays small. `from_json` reads the long keys of schema 1 stores as well.
    def to_json(self, codecs: Codecs) -> bytes:
        # The email is the store's key for the row: it is not repeated inside.
        out: dict[str, Any] = {"c": self.created, "s": self.score}
        for (name, short, kind), value in zip(_LAYOUT, _REST_VALUES(self), strict=True):
            if value is None or value is False or (value == 0 and kind == _BITS_KIND):
                continue
            if kind is None:
                pass
            elif kind == _BITS_KIND:
                value = getattr(codecs, _BITS[name]).decode(value)
                if name == "latched":  # "rule:MQL handoff" is kept as "MQL handoff"
                    value = [_latched_text(v) for v in value]
            elif kind == _PAIRS_KIND:
                value = dict(zip(value[::2], value[1::2], strict=True))
            elif kind == _SET_KIND:
                value = sorted(value)
            elif value == "none":  # crm_status
                continue
            out[short] = value
        return kept_dumps(out)  # a commit's prospects, or an in-memory store's, keep it

    @classmethod
    def from_json(
        cls, data: object, codecs: Codecs, email: str | None = None, *, share: bool = True
    ) -> Prospect:
        """A prospect from `to_json`'s bytes; `email` is the store's key for them.

        `data` is typed `object`: a damaged store can hold text or a number there, and
        the compiled build checks argument types on entry, before the check below.
        `share=False` keeps field values as they are read (`shared_text` otherwise): a
        prospect read once and let go (an export) has no one to share them with, and
        interning every distinct value of a large store only grows the interpreter's
        table of interned strings.

        Raises:
            DamagedState: the bytes are not a prospect's state (a damaged store).
        """
        try:
            return cls._decode(data, codecs, email, share)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            raise DamagedState(
                f"the stored state of prospect {email or '?'} cannot be read"
                f" ({type(e).__name__}: {str(e)[:80]})"
            ) from None

    @classmethod
    def _decode(cls, data: object, codecs: Codecs, email: str | None, share: bool) -> Prospect:
        raw = orjson.loads(data)  # type: ignore[arg-type]  # TypeError if not bytes or str
        if "c" in raw:
            p = cls(raw.pop("e", email), raw.pop("c"))
        else:  # a schema 1 store: long keys
            p = cls(raw.pop("email"), raw.pop("created"))
        for key, value in raw.items():
            name = _LONG.get(key, key)
            if name in _BITS:
                if key == "l":
                    value = [v[1:] if v.startswith("=") else "rule:" + v for v in value]
                value = getattr(codecs, _BITS[name]).encode(value)
            elif name == "clicked":
                value = _links(intern(link) for link in value)
            elif name in _PAIRS:
                shared = shared_text if share else _as_is
                value = tuple(x for k, v in value.items() for x in (intern(k), shared(v))) or None
            elif name == "matches":
                value = {intern(k): (int(v[0]), float(v[1])) for k, v in value.items()}
            elif type(value) is str:  # a status, an owner, a campaign: shared, not one a prospect
                value = intern(value)
            elif type(value) is dict:  # categories, criteria, throttle, notified, stamps
                value = {intern(k): v for k, v in value.items()}
            setattr(p, name, value)
        return p

    def names(self, attr: str, codecs: Codecs) -> list[str]:
        """The names in a bit set (`lists`, `dynamic`, `tags`, `latched`, `opened`)."""
        return getattr(codecs, _BITS[attr]).decode(getattr(self, attr))

    # Fields and activity times are small maps (a handful of entries): a flat tuple of
    # pairs costs a third of a dict, and a scan over a few interned keys is as fast.
    def field(self, name: str) -> Any:
        pairs = self.fields  # `_get`, inlined: criteria call this on every evaluation
        if pairs:
            for i in range(0, len(pairs), 2):
                if pairs[i] == name:
                    return pairs[i + 1]
        return None

    def set_field(self, name: str, value: Any) -> None:
        self.fields = _put(self.fields, name, shared_text(value))

    def click(self, link: str) -> bool:
        """Record a clicked email link; False if it was clicked before."""
        clicked = self.clicked
        if clicked and link in clicked:
            return False
        self.clicked = _links((*(clicked or ()), link))
        return True

    def field_items(self) -> dict[str, Any]:
        pairs = self.fields or ()
        return dict(zip(pairs[::2], pairs[1::2], strict=True))

    def act(self, key: str) -> float | None:
        """The last time of an activity key, or None."""
        pairs = self.acts  # activity criteria call this on every evaluation
        # The times are numbers, never equal to a key: the first equal item is the key.
        if pairs and key in pairs:
            return pairs[pairs.index(key) + 1]
        return None

    def touch(self, key: str, ts: float) -> None:
        """Record an activity key at time ts (keeping the latest time)."""
        last = _get(self.acts, key)
        if last is None or last < ts:
            self.acts = _put(self.acts, key, ts)


_FEW_LINKS: Final = 32  # clicked links kept as a tuple up to this many (a scan is as fast)


def _latched_text(name: str) -> str:
    """A latched rule's stored text: "rule:X" as "X", any other name as "=" + it. A rule
    whose own name starts with "=" is kept whole ("=rule:=X"), or it would read back as
    the name after the "=" (and the rule match again)."""
    if name.startswith("rule:") and not name.startswith("rule:="):
        return name[5:]
    return "=" + name


def _links(links: Iterable[str]) -> tuple[str, ...] | frozenset[str]:
    found = tuple(links)
    return found if len(found) <= _FEW_LINKS else frozenset(found)


def _as_is(value: Any) -> Any:
    return value


def shared_text(value: Any) -> Any:
    """A short text value as the one shared copy of it (`sys.intern`), any other as it is.

    Field values repeat across prospects (countries, sizes, statuses, first
    names): a cache of 50,000 decoded prospects held each as its own string.
    """
    if type(value) is str and len(value) <= 64:
        return intern(value)
    return value


_PAIRS: Final = ("fields", "acts")
# The stored key of every attribute: a prospect row is written at every commit that
# changed it, so its keys are short.
_SHORT: Final = {
    "acts": "a",
    "assigned_at": "aa",
    "assigned_kind": "ak",
    "assigned_to": "at",
    "campaign": "cp",
    "categories": "cs",
    "clicked": "ck",
    "created": "c",
    "criteria": "cr",
    "crm_id": "ci",
    "crm_status": "st",
    "dns_by_rule": "dr",
    "do_not_sync": "ds",
    "dynamic": "d",
    "email": "e",
    "fields": "f",
    "grade": "g",
    "last_activity": "la",
    "latched": "l",
    "lists": "ls",
    "matches": "m",
    "notified": "n",
    "opened": "o",
    "opted_out": "oo",
    "profile": "p",
    "reassigned_at": "ra",
    "score": "s",
    "stamps": "sp",
    "tags": "t",
    "throttle": "th",
}
_LONG: Final = {v: k for k, v in _SHORT.items()}
# _SHORT names every slot of Prospect, in order (tested); a compiled class has no __slots__.
_REST: Final = tuple(n for n in _SHORT if n not in ("email", "created", "score"))
_BITS_KIND, _PAIRS_KIND, _SET_KIND, _STATUS_KIND = 1, 2, 3, 4
# (attribute, stored key, how it is encoded) for every attribute but email, created, score
_LAYOUT: Final = tuple(
    (
        n,
        _SHORT[n],
        _BITS_KIND
        if n in _BITS
        else _PAIRS_KIND
        if n in _PAIRS
        else _SET_KIND
        if n == "clicked"
        else _STATUS_KIND
        if n == "crm_status"
        else None,
    )
    for n in _REST
)
# Every attribute of _LAYOUT in one call (an encoding reads them all, most to skip them).
_REST_VALUES: Final = attrgetter(*_REST)


def _get(pairs: tuple[Any, ...] | None, key: str) -> Any:
    if pairs:
        for i in range(0, len(pairs), 2):
            if pairs[i] == key:
                return pairs[i + 1]
    return None


def _put(pairs: tuple[Any, ...] | None, key: str, value: Any) -> tuple[Any, ...]:
    if pairs:
        for i in range(0, len(pairs), 2):
            if pairs[i] == key:
                return (*pairs[: i + 1], value, *pairs[i + 2 :])
        return (*pairs, key, value)
    return (key, value)
