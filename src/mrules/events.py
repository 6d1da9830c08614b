"""The event stream reader: JSON Lines in, `Event` or `Reject` out, in stream order.

This is the input contract of `mrules run` (docs/events.md). Each line
is decoded on its own, so a bad line costs one `Reject` (its 1-based line
number, a reason in plain English and the line's text) and never stops the
stream: no valid event is lost because a bad one came before it.

Decisions the contract leaves open, made here once:

* Lines are split on `\\n` only, in binary, so a `\\r` or a Unicode line
  separator inside a line never splits it; `\\r\\n` endings are fine. A UTF-8
  byte order mark is skipped on line 1. A line that is not UTF-8 is a reject.
* Blank lines (only whitespace) are skipped but still count, so line numbers
  always match the file; `start_line` skips lines cheaply to resume a run.
* `ts` follows RFC 3339: date, `T` (or `t`, or a space as RFC 3339 §5.6
  allows), time with seconds, optional fraction (kept to microseconds), and a
  zone: `Z`/`z` or `±hh:mm`. A date alone, a time without seconds or without a
  zone is rejected: event time must be unambiguous. A leap second (`:60`) is
  read as `:59.999999` of the same minute. The time is converted to UTC.
* Every key is type-checked before it is used (`type` before the lookup that
  would fail on a list). A key whose value is `null` counts as absent. A
  string key that is present must be a non-empty string (an empty `id` or
  `visitor` is a bug upstream, not an anonymous value). `fields` must be an
  object whose values are JSON scalars. Keys this reader does not know are
  ignored: the contract grows by adding keys.
* `prospect` is stripped, lowercased and normalised to NFC (josé typed with a
  combining accent is the same prospect), and must look like an email address:
  one `@` with text on both sides, no whitespace, no control characters.
* `asset` and `user` are normalised to NFC, as the rules' names are: a form
  `Démo` typed with a combining accent is the form the rules declare.
* Text values in `fields` are normalised to NFC, as the rules' string literals
  are: `Café` typed with a combining accent is the value `is "Café"` names.
* Required keys by type: every type but `page_view` and `tick` needs
  `prospect`; `page_view` needs `url` and `visitor` or `prospect`; asset events
  need `asset` (optional for `unsubscribe`); `identify` needs `visitor`;
  `crm_update` needs `object` (lead, contact, account, opportunity,
  campaign_member). `status`, where given, is `won` or `lost` (an opportunity)
  or `deleted` (a lead or contact), and `object`,
  where given, must be one of the CRM objects, whatever the type.
* When a line has several problems, the reason names the first found, in the
  order: JSON, `ts`, `type`, the other keys (in the line's order), `prospect`,
  `fields`, then the type's requirements.
"""

from __future__ import annotations

import difflib
import gzip
import io
import re
import sys
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import IO, Any, Final, NamedTuple

import orjson

from mrules.timetext import LAST_TIME
from mrules.vocab import EVENT_ASSET_KINDS, CrmObject, EventType

__all__ = [
    "ASSET_KINDS",
    "CRM_OBJECTS",
    "EVENT_TYPES",
    "MAX_LINE_BYTES",
    "MAX_REJECT_TEXT",
    "OPPORTUNITY_STATUSES",
    "Event",
    "EventSourceError",
    "Reject",
    "SourceNotOpenedError",
    "StreamReplacedError",
    "gzip_trouble",
    "is_cut_short",
    "line_check",
    "parse_line",
    "parse_timestamp",
    "prospect_key",
    "read_events",
    "resume_after",
]

EVENT_TYPES: Final[tuple[str, ...]] = tuple(EventType)

# The kind of asset (as the rules declare it) that each asset event names.
ASSET_KINDS: Final[dict[str, str]] = {str(k): str(v) for k, v in EVENT_ASSET_KINDS.items()}

CRM_OBJECTS: Final[tuple[str, ...]] = tuple(CrmObject)
OPPORTUNITY_STATUSES: Final = ("won", "lost")
MAX_REJECT_TEXT: Final = 1000
MAX_LINE_BYTES: Final = 16 << 20
"""A longer line is rejected unread: an endless one (`/dev/zero`) would fill the memory."""


def gzip_trouble(error: BaseException) -> str:
    """Why a `.gz` events file cannot be read, in words. A file named `.gz` that is not
    compressed (plain JSON Lines) said Python's `Not a gzipped file (b'{"')`."""
    if isinstance(error, gzip.BadGzipFile) and str(error).startswith("Not a gzipped file"):
        return (
            "not gzip data, though its name ends in .gz: if it holds plain JSON Lines, give it"
            " a name without .gz (or compress it with gzip)"
        )
    detail = str(error) or "the data ends before the end of the gzip stream"
    return f"broken gzip data: {detail}"


_TYPES: Final = frozenset(EVENT_TYPES)
# Each type's text as one object, which every event of that type holds instead of the
# copy its JSON line decoded to: a run that keeps its events' history in memory
# (`--store :memory:`, `mrules replay`) keeps one string per type, not one per row.
_TYPE_TEXT: Final[dict[str, str]] = {t.value: t.value for t in EventType}
_NEEDS_PROSPECT: Final = _TYPES - {"page_view", "tick"}
_NEEDS_ASSET: Final = frozenset(ASSET_KINDS) - {"unsubscribe"}
_CRM_OBJECTS: Final = frozenset(CRM_OBJECTS)
# `deleted`: a lead or contact deleted in the CRM (what the sync reports, §7.8).
_STATUSES: Final = frozenset((*OPPORTUNITY_STATUSES, "deleted"))
# Optional string keys besides `prospect`, checked the same way.
_PLAIN_KEYS: Final = frozenset(
    ("id", "visitor", "url", "asset", "user", "object", "crm_id", "status")
)
_NON_SCALAR: Final = (dict, list)
_BOM: Final = b"\xef\xbb\xbf"

_TS_MATCH: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
).fullmatch
_DATE_ONLY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}").fullmatch
_NO_SECONDS: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
).fullmatch
_NO_ZONE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
).fullmatch
_EMAIL: Final = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+").fullmatch
_fromisoformat: Final = datetime.fromisoformat
_nfc: Final = unicodedata.normalize
_new_event: Final = tuple.__new__  # Event(...) minus the generated __new__'s Python frame


class Event(NamedTuple):
    """One valid event, as the engine consumes it.

    A NamedTuple rather than a frozen dataclass or a pydantic model: it is
    immutable and the cheapest record Python builds, and the reader makes one
    per line on the hot path of `mrules run`.
    """

    line: int  # 1-based line number in the stream
    id: str | None
    ts: datetime  # timezone-aware, UTC
    ts_epoch: float  # ts as POSIX seconds, for fast comparisons
    type: str
    prospect: str | None  # stripped and lowercased email
    visitor: str | None
    url: str | None
    asset: str | None
    fields: dict[str, Any]  # values are str, int, float, bool or None
    user: str | None
    object: str | None
    crm_id: str | None
    status: str | None
    raw: bytes = b""  # the line as read, for a Reject the engine makes of it

    @property
    def asset_kind(self) -> str | None:
        """The kind of asset `asset` names ("form", "email", ...), or None."""
        return ASSET_KINDS.get(self.type)

    def reject(self, reason: str) -> Reject:
        """This line as a Reject: the engine refuses some valid events (docs/events.md)."""
        return Reject(self.line, reason, _text(self.raw))


class Reject(NamedTuple):
    """A line that is not applied: where, why, and what it said."""

    line: int
    reason: str
    text: str  # the line without its newline, cut to MAX_REJECT_TEXT; bad bytes as \xNN
    # The stream's last line, with no newline and not whole JSON: maybe a line still
    # being written. A run on a file leaves it for the next run (docs/events.md).
    unfinished: bool = False


class EventSourceError(Exception):
    """The stream itself cannot be read (missing file, broken gzip data)."""


class SourceNotOpenedError(EventSourceError):
    """The stream cannot be opened at all (no permission, a socket, standard input
    closed): nothing of it was read, so there is nothing to resume after."""


class StreamReplacedError(EventSourceError):
    """The file is not the one a store read: fewer lines, or its last applied event changed."""


class _Bad(Exception):
    """Internal: the reason a decoded line is not a valid event."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _timestamp_problem(text: str) -> str:
    if _DATE_ONLY(text):
        hint = "a date alone is not enough: give a time and a zone, e.g. 2026-11-02T09:00:00Z"
    elif _NO_SECONDS(text):
        hint = "seconds are required, e.g. 2026-11-02T09:00:00Z"
    elif _NO_ZONE(text):
        hint = "no time zone: end it with Z for UTC or an offset like +02:00"
    else:
        hint = "expected e.g. 2026-11-02T09:15:00Z"
    return f"'ts' is not an RFC 3339 timestamp: {_shown(text)} ({hint})"


def parse_timestamp(text: str) -> datetime:
    """Read an RFC 3339 timestamp as an aware UTC datetime (the `ts` rules above).

    Raises:
        ValueError: the text is not an RFC 3339 timestamp; the message says why.

    >>> parse_timestamp("2026-11-02T10:15:00.5+01:00").isoformat()
    '2026-11-02T09:15:00.500000+00:00'
    """
    try:
        return _utc(text)
    except _Bad as e:  # "not an RFC 3339 timestamp: ...", without the event key
        raise ValueError(str(e).removeprefix("'ts' is ")) from None


OWNER_SINCE: Final = "owner_since"
"""On `crm_update`: when the CRM record got the owner `user` (the sync's owner changes)."""


def _owner_since(value: object) -> float:
    if type(value) is not str:
        raise _Bad(
            f"'{OWNER_SINCE}' must be a string holding an RFC 3339 timestamp,"
            f" not {_json_type(value)}"
        )
    try:
        return min(_utc(value).timestamp(), LAST_TIME)
    except _Bad as e:
        raise _Bad(f"'{OWNER_SINCE}' is " + str(e).removeprefix("'ts' is ")) from None


def owner_since(e: Event) -> float | None:
    """A `crm_update`'s `owner_since` as POSIX seconds, or None when it has none.

    Read from the line only when the owner changes (rare): the reader checked it,
    and the `Event` carries no slot for it, so no other event pays for it.
    """
    if OWNER_SINCE.encode() not in e.raw:
        return None
    value = orjson.loads(e.raw).get(OWNER_SINCE)
    return None if value is None else _owner_since(value)


def _utc(text: str) -> datetime:
    """`parse_timestamp`, raising _Bad; the shape most streams use costs no regex.

    `datetime.fromisoformat` (3.11) reads more than RFC 3339 (week dates, no
    zone, any separator, digits past the sixth fraction digit ignored), so the
    fast path only takes `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z` with its punctuation
    checked here and its digits checked by fromisoformat; the rest goes
    through the full regex first.
    """
    n = len(text)
    if (
        (n == 20 or (21 < n < 28 and text[19] == "."))
        and text[-1] == "Z"
        and text[10] == "T"
        and text[4] == "-"
        and text[7] == "-"
        and text[13] == ":"
        and text[16] == ":"
    ):
        try:
            return _fromisoformat(text)  # tzinfo is UTC for "Z"
        except ValueError:
            pass  # out-of-range values and leap seconds: the slow path says which
    if _TS_MATCH(text) is None:
        raise _Bad(_timestamp_problem(text))
    if text[-1] not in "Zz" and (text[-5:-3] > "23" or text[-2:] > "59"):
        # fromisoformat took +00:60 for +01:00, and worded +24:00 as Python's timedelta
        raise _Bad(
            f"'ts' is not an RFC 3339 timestamp: {_shown(text)} (the zone offset must be"
            " -23:59 to +23:59)"
        )
    try:
        dt = _fromisoformat(text)
    except ValueError:
        dt = _parse_unusual(text)
    if dt.tzinfo is UTC:
        return dt
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        raise _Bad(
            f"'ts' is not an RFC 3339 timestamp: {_shown(text)} (out of range in UTC)"
        ) from None


def _parse_unusual(text: str) -> datetime:
    """The slow path: lowercase `t`/`z`, leap seconds, and out-of-range values."""
    upper = text.upper()
    leap = upper[17:19] == "60"
    if leap:
        upper = upper[:17] + "59" + upper[19:]
    try:
        dt = _fromisoformat(upper)
    except ValueError as e:
        raise _Bad(f"'ts' is not an RFC 3339 timestamp: {_shown(text)} ({e})") from None
    return dt.replace(microsecond=999999) if leap else dt


# Normalised prospect emails by their text as read: a stream names the same
# prospects again and again, so most lookups skip strip, lower and the regex.
_EMAILS: Final[dict[str, str]] = {}
_EMAILS_MAX: Final = 100_000


def prospect_key(email: str) -> str:
    """A prospect's email as the store keys it: stripped, lowercased, in Unicode NFC.

    So `José@x` and `JOSE\u0301@x` (e + combining accent) are one prospect, in the
    events and in every command that takes an email.
    """
    email = email.strip().lower()
    if not email.isascii():
        email = _nfc("NFC", email)
    return email


def _normalise_email(value: object) -> str:
    if type(value) is not str:
        raise _Bad(f"'prospect' must be an email address, not {_json_type(value)}")
    email = prospect_key(value)
    if _EMAIL(email) is None:
        raise _Bad("'prospect' must be an email address")
    if len(_EMAILS) >= _EMAILS_MAX:
        _EMAILS.clear()
    _EMAILS[value] = email
    return email


def _event(obj: dict[str, Any], line: int, data: bytes = b"") -> Event:
    """Validate one decoded JSON object; raise _Bad with the first problem found."""
    get = obj.get
    ts = get("ts")
    if type(ts) is not str:
        if ts is None:
            raise _Bad("missing required key 'ts'")
        raise _Bad(f"'ts' must be a string holding an RFC 3339 timestamp, not {_json_type(ts)}")
    dt = _utc(ts)

    kind = get("type")
    text = _TYPE_TEXT.get(kind) if type(kind) is str else None  # a list is unhashable
    if text is None:
        if kind is None:
            raise _Bad("missing required key 'type'")
        if type(kind) is not str:
            raise _Bad(f"'type' must be a string, not {_json_type(kind)}")
        folded = kind.strip().lower()
        close = [folded] if folded in _TYPES else difflib.get_close_matches(kind, EVENT_TYPES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise _Bad(f"unknown type {_shown(kind)}{hint}")
    kind = text

    for key, value in obj.items():  # the keys present, fewer than the keys known
        if (type(value) is not str or not value) and key in _PLAIN_KEYS and value is not None:
            if type(value) is str:
                raise _Bad(f"'{key}' must not be empty")
            raise _Bad(f"'{key}' must be a string, not {_json_type(value)}")

    prospect = get("prospect")
    if prospect is not None:
        try:
            prospect = _EMAILS[prospect]
        except (KeyError, TypeError):  # TypeError: unhashable, so not a string
            prospect = _normalise_email(prospect)

    fields = get("fields")
    if fields is None:
        fields = {}
    elif type(fields) is not dict:
        raise _Bad(f"'fields' must be an object of scalars, not {_json_type(fields)}")
    else:
        for name, value in fields.items():
            if type(value) is str:
                # Text values in NFC, as the rules' literals: `Café` typed with `é` or
                # with `e` and a combining accent is one value (isascii() is O(1)).
                if not value.isascii():
                    fields[name] = _nfc("NFC", value)  # same key: the dict keeps its size
            elif isinstance(value, _NON_SCALAR):
                raise _Bad(
                    f"'fields' must be an object of scalars: {_shown(name)} is {_json_type(value)}"
                )

    visitor = get("visitor")
    url = get("url")
    asset = get("asset")
    crm_object = get("object")
    status = get("status")
    if kind == "page_view":
        if url is None:
            raise _Bad("'url' is required for page_view")
        if visitor is None and prospect is None:
            raise _Bad("page_view needs 'visitor' or 'prospect'")
    elif kind in _NEEDS_PROSPECT:
        if prospect is None:
            raise _Bad(f"'prospect' is required for {kind}")
        if asset is None and kind in _NEEDS_ASSET:
            raise _Bad(f"'asset' is required for {kind} (the {ASSET_KINDS[kind]}'s name)")
        if kind == "identify" and visitor is None:
            raise _Bad("'visitor' is required for identify")
        if kind == "crm_update":
            if crm_object is None:
                raise _Bad("'object' is required for crm_update (" + ", ".join(CRM_OBJECTS) + ")")
            since = get(OWNER_SINCE)
            if since is not None:  # read again by `owner_since` for a reassignment only
                _owner_since(since)
    if crm_object is not None and crm_object not in _CRM_OBJECTS:
        raise _Bad(f"'object' must be one of {', '.join(CRM_OBJECTS)}, not {_shown(crm_object)}")
    if status is not None and status not in _STATUSES:
        raise _Bad(f"'status' must be won, lost or deleted, not {_shown(status)}")
    # Names in Unicode NFC, as the parser reads the rules' names: `Démo` typed with `é`
    # or with `e` and a combining accent is one form (isascii() is O(1) on a str).
    if asset is not None and not asset.isascii():
        asset = _nfc("NFC", asset)
    user = get("user")
    if user is not None and not user.isascii():
        user = _nfc("NFC", user)

    return _new_event(
        Event,
        (
            line,
            get("id"),
            dt,
            min(dt.timestamp(), LAST_TIME),  # 23:59:59.99999 of 9999 rounds to 10000
            kind,
            prospect,
            visitor,
            url,
            asset,
            fields,
            user,
            crm_object,
            get("crm_id"),
            status,
            data,
        ),
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace").rstrip("\r\n")[:MAX_REJECT_TEXT]


def _not_json(data: bytes, error: orjson.JSONDecodeError) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        column = len(data[: bad.start].decode("utf-8", "replace")) + 1
        return f"not UTF-8 text: byte 0x{data[bad.start]:02x} at column {column}"
    text = data.rstrip(b"\r\n")
    try:  # again without the newline, so the column is on this line
        orjson.loads(text)
    except orjson.JSONDecodeError as again:
        error = again
    if error.pos >= len(text):
        return f"not JSON: {error.msg} (the line ends inside a value)"
    return f"not JSON: {error.msg} at column {error.colno}"


def _not_object(value: object) -> str:
    return f"not a JSON object: the line holds {_json_type(value)}"


def is_cut_short(reject: Reject, data: bytes) -> bool:
    """Whether a rejected line is the stream's last one cut short: no newline (only the
    last line can lack one) and not whole JSON, or not UTF-8: maybe a line still being
    written, which a run on a file leaves for the next run (docs/events.md), and
    `mrules partition` leaves out."""
    return data[-1:] != b"\n" and reject.reason.startswith(("not JSON", "not UTF-8"))


def parse_line(data: bytes | str, line: int = 1) -> Event | Reject | None:
    """Decode one line of the stream; None for a blank line.

    >>> parse_line(b'{"ts":"2026-11-02T09:00:00Z","type":"tick"}').type
    'tick'
    >>> parse_line('{"ts":"2026-11-02","type":"tick"}', 7).reason[:40]
    "'ts' is not an RFC 3339 timestamp: '2026"
    """
    raw: bytes
    if isinstance(data, str):
        try:  # bytes decoded with surrogateescape come back as they were
            raw = data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # other lone surrogates: invalid UTF-8, rejected below
            raw = data.encode("utf-8", "surrogatepass")
    else:
        raw = data
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if not raw.strip():
            return None
        if line == 1 and raw.startswith(_BOM):
            return parse_line(raw[len(_BOM) :], line)
        return Reject(line, _not_json(raw, e), _text(raw))
    if type(obj) is not dict:
        return Reject(line, _not_object(obj), _text(raw))
    try:
        return _event(obj, line, raw)
    except _Bad as bad:
        return Reject(line, str(bad), _text(raw))


def _peek(stream: IO[bytes]) -> bytes:
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return bytes(peek(2)[:2])
    if stream.seekable():
        where = stream.tell()
        head = stream.read(2)
        stream.seek(where)
        return head
    return b""


def _open(
    source: str | Path | IO[bytes],
) -> tuple[Iterable[bytes | None], str, tuple[IO[bytes] | gzip.GzipFile, ...]]:
    """Open the source as a binary stream, ungzipped; also its name and what to close."""
    owned = False
    force_gzip = False
    if isinstance(source, str | Path):
        if isinstance(source, str) and source == "-":
            if sys.stdin is None:  # closed (`<&-`): Python has none
                raise SourceNotOpenedError("<stdin>: cannot read: standard input is closed")
            stream: IO[bytes] = sys.stdin.buffer
            name = "<stdin>"
        else:
            name = str(source)
            try:
                stream = open(source, "rb")  # noqa: SIM115  # closed by the reader
            except OSError as e:
                raise SourceNotOpenedError(f"{name}: cannot read: {e.strerror or e}") from None
            owned = True
            force_gzip = name.endswith(".gz")
    else:
        if isinstance(source, io.TextIOBase):
            raise TypeError("read_events needs a binary stream (open the file with 'rb')")
        if not hasattr(source, "readline"):  # not AttributeError: 'seekable' half way
            raise TypeError(
                f"read_events needs a binary file object (with readline), not"
                f" {type(source).__name__}"
            )
        stream = source
        name = str(getattr(source, "name", "<stream>"))
        # An open file is read as its path would be (`mrules run` on a terminal opens it
        # for its progress bar): gzip by its name too, and checked first when it can be
        # read twice. A `gzip.open` file gives its lines unzipped already, under the
        # name of the .gz file: its first bytes decide, as for a stream with no name.
        force_gzip = (
            isinstance(getattr(source, "name", None), str)
            and name.endswith(".gz")
            and not isinstance(source, gzip.GzipFile)
        )
    try:
        gzipped = force_gzip or _peek(stream) == b"\x1f\x8b"
        # a pipe (a FIFO, `<(cat a.gz)`) cannot be read twice: its damage is found at the end
        seekable = getattr(stream, "seekable", None)
        check = gzipped and seekable is not None and seekable()
    except OSError as e:
        raise EventSourceError(f"{name}: cannot read: {e.strerror or e}") from None
    if gzipped:
        if check:
            _refuse_damaged_gzip(stream, name)
        unzipped = gzip.GzipFile(fileobj=stream, mode="rb")
        return _gzip_lines(unzipped), name, (unzipped, stream) if owned else (unzipped,)
    return _capped_lines(stream), name, (stream,) if owned else ()


def _refuse_damaged_gzip(stream: IO[bytes], name: str) -> None:
    """Decompress a gzip file once, before any of its lines is applied; refuse damage.

    gzip checks a member's CRC only at its end, so a damaged file gives wrong lines
    first (rejected as not JSON, and committed as read), then fails: a run resumed on
    the repaired file started after them and never applied the real ones. Damage
    found here applies nothing of the file. A file that is only cut short (no
    damage before the cut) still gives its whole lines, then stops as before: it may
    still be being written. Costs one more decompression of the file (about 1% of a run).
    """
    try:
        start = stream.tell()
        with gzip.GzipFile(fileobj=stream, mode="rb") as check:
            while check.read1(1 << 20):
                pass
    except EOFError:
        pass  # cut short: its whole lines are applied, then the run stops (see _iterate)
    except zlib.error as bad_data:
        raise EventSourceError(_damaged(name, str(bad_data))) from None
    except gzip.BadGzipFile as bad_member:
        if str(bad_member).startswith(("CRC check failed", "Incorrect length")):
            raise EventSourceError(_damaged(name, str(bad_member))) from None
        # anything else (trailing bytes that start no member) comes after whole, checked
        # members: those lines are applied, then the run stops there as before
    except OSError as e:
        raise EventSourceError(f"{name}: cannot read: {e.strerror or e}") from None
    stream.seek(start)


def _damaged(name: str, detail: str) -> str:
    return f"{name}: damaged gzip data ({detail}): nothing of this file was applied"


def _capped_lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """The stream's lines, as iterating it gives them; None for a line longer than
    MAX_LINE_BYTES, which is read past without being kept."""
    readline = stream.readline
    limit = MAX_LINE_BYTES + 1  # the line and its newline
    while data := readline(limit):
        if len(data) == limit and data[-1:] != b"\n":
            while (rest := readline(1 << 20)) and rest[-1:] != b"\n":
                pass
            yield None
        else:
            yield data


def _gzip_lines(unzipped: gzip.GzipFile) -> Iterator[bytes | None]:
    """The lines of a gzip stream, as iterating a file gives them (each ends with a
    newline but maybe the last).

    Each step decompresses what one read of the file gives, and its whole lines are
    yielded before the next read: a cut or damaged file gives every line before the
    damage, then raises. (A BufferedReader over the GzipFile fills 64 KiB at once and
    lost the lines of a fill that hit the damage.) A line longer than MAX_LINE_BYTES
    is None, read past without being kept.
    """
    read1 = unzipped.read1
    pieces: list[bytes] = []  # a line longer than a chunk, until its newline comes
    held = 0  # the bytes in pieces
    too_long = False  # past MAX_LINE_BYTES: what is left of the line is dropped
    while chunk := read1(1 << 16):
        newline = chunk.find(b"\n")
        if newline < 0:
            if not too_long:
                pieces.append(chunk)
                held += len(chunk)
                if held > MAX_LINE_BYTES:
                    pieces, held, too_long = [], 0, True
            continue
        if too_long:
            yield None
            too_long = False
            chunk = chunk[newline + 1 :]
        elif pieces:
            pieces.append(chunk[: newline + 1])
            yield b"".join(pieces) if held + newline <= MAX_LINE_BYTES else None
            pieces, held = [], 0
            chunk = chunk[newline + 1 :]
        for line in io.BytesIO(chunk):
            if line[-1:] == b"\n":
                yield line
            else:
                pieces.append(line)
                held = len(line)
    if too_long:
        yield None
    elif pieces:
        yield b"".join(pieces) if held <= MAX_LINE_BYTES else None


def line_check(raw: bytes) -> int:
    """What a store keeps of the last event line it applied from a file, to know the file again.

    The CRC-32 of the line without its line end (and without a byte order mark), so
    that a line whose newline was written after the run read it checks the same.
    """
    return zlib.crc32(raw.removeprefix(_BOM).rstrip(b"\r\n"))


def _checked_line(anchor: tuple[int, int] | None, start_line: int) -> tuple[int, int]:
    """(line, check) of the anchor when the lines skipped cover it; (0, 0): none to check."""
    return anchor if anchor is not None and 0 < anchor[0] <= start_line else (0, 0)


def _replaced(name: str, start_line: int, at: int) -> StreamReplacedError:
    from mrules.diagnostics import plural

    return StreamReplacedError(
        f"{name} is not the file this store read {plural(start_line, 'line')} of: its line"
        f" {at:,}"
        " is not the event applied from it, so the file was replaced, and nothing of it"
        " was applied; give the new file a new name (a new path is a new stream, and"
        " events whose id was applied are still skipped)"
    )


def resume_after(
    items: Iterable[Event | Reject], start_line: int, anchor: tuple[int, int] | None, name: str
) -> Iterator[Event | Reject]:
    """The items after start_line of lines already parsed, the anchor checked as `read_events`
    checks it (the API's iterables of lines). A blank line has no item: the anchor's line
    passed without one is a blank line where the event was, refused as a file's is."""
    at, check = _checked_line(anchor, start_line)
    for item in items:
        if item.line > start_line:
            if at:  # the anchor's line was blank
                raise _replaced(name, start_line, at)
            yield item
        elif at and item.line >= at:
            if item.line > at or type(item) is not Event or line_check(item.raw) != check:
                raise _replaced(name, start_line, at)
            at = 0  # checked


def read_events(
    source: str | Path | IO[bytes],
    *,
    start_line: int = 0,
    anchor: tuple[int, int] | None = None,
) -> Iterator[Event | Reject]:
    """Read an event stream, yielding an Event or a Reject per non-blank line.

    Args:
        source: a path (gzip if it ends in `.gz` or starts with the gzip
            magic bytes), `"-"` for standard input, or a binary file object
            (gzip if its name ends in `.gz`, unless it is a `gzip.GzipFile`, or by
            its magic bytes when it can be peeked at; checked for damage first
            when it can be seeked).
        start_line: skip lines 1..start_line unread, to resume a run after the
            last line it committed.
        anchor: (line, `line_check` of it) of the last event a store applied from
            this file (`StateStore.stream_anchor`): that line, when start_line
            reaches it, must check the same, or the file was replaced.

    Raises:
        EventSourceError: the source cannot be opened, or its gzip data is
            broken (raised while iterating, after the lines read before it).
            StreamReplacedError (one) when the file has fewer than start_line
            lines or its anchor line differs: nothing of it is read.
        TypeError: a text-mode file object was given.
        ValueError: start_line is negative.

    >>> import io
    >>> data = b'{"ts":"2026-11-02T09:00:00Z","type":"tick"}\\n\\n{"type":"tick"}\\n'
    >>> [(item.line, type(item).__name__) for item in read_events(io.BytesIO(data))]
    [(1, 'Event'), (3, 'Reject')]
    """
    if start_line < 0:
        raise ValueError(f"start_line must be 0 or more, not {start_line}")
    stream, name, to_close = _open(source)
    return _iterate(stream, name, to_close, start_line, anchor)


def _iterate(
    stream: Iterable[bytes | None],
    name: str,
    to_close: tuple[IO[bytes] | gzip.GzipFile, ...],
    start_line: int,
    anchor: tuple[int, int] | None,
) -> Iterator[Event | Reject]:
    """The hot loop: `parse_line` inlined with the fast path first, in one generator."""
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    event = _event
    line = 0
    at, check = _checked_line(anchor, start_line)
    try:
        for skipped in islice(stream, start_line):
            line += 1
            if line == at and (skipped is None or line_check(skipped) != check):
                raise _replaced(name, start_line, at)
        if line < start_line:
            from mrules.diagnostics import plural

            raise StreamReplacedError(
                f"{name} has {plural(line, 'line')}, fewer than the {start_line:,} already read"
                " from it into this store: the file was replaced or cut, and nothing of it was"
                " applied; give a new file under a new name (a new path is a new stream, and"
                " events whose id was applied are still skipped)"
            )
        for data in stream:
            line += 1
            if data is None:
                yield Reject(line, f"line longer than {MAX_LINE_BYTES:,} bytes: not read", "")
                continue
            try:
                obj = loads(data)
            except decode_error:
                item = parse_line(data, line)
                if item is not None:
                    if isinstance(item, Reject) and is_cut_short(item, data):
                        item = item._replace(unfinished=True)
                    yield item
                continue
            if type(obj) is dict:
                try:
                    yield event(obj, line, data)
                except _Bad as e:
                    yield Reject(line, str(e), _text(data))
            else:
                yield Reject(line, _not_object(obj), _text(data))
    except (gzip.BadGzipFile, zlib.error, EOFError) as broken:
        raise EventSourceError(f"{name}: {gzip_trouble(broken)}") from None
    except OSError as err:
        raise EventSourceError(f"{name}: cannot read: {err.strerror or err}") from None
    finally:
        for opened in to_close:
            opened.close()
