"""The library entry point: `mrules.run(rules, events, store=...) -> RunResult`.

`mrules run` is a thin shell over this function; tests and scripts call it
directly. It loads, checks and compiles the rules (or takes a compiled rule
set), opens the store (`":memory:"` by default), resumes from it, applies the
events and commits; the result holds the summary and the (still readable)
store.

>>> import mrules
>>> result = mrules.run(
...     'list "MQL"\\nform "F"\\non submit of form "F" { add to list "MQL" }',
...     [{"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "a@x.com",
...       "asset": "F"}],
... )
>>> result.summary.applied, [r["lists"] for r in result.export()]
(1, [['MQL']])
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from mrules.diagnostics import RuleSetError
from mrules.engine.run import DEFAULT_CACHE_PROSPECTS
from mrules.storeapi import (
    MEMORY,
    YEARS_1_TO_9999,
    StateStore,
    StoreError,
    is_postgres_url,
)
from mrules.streamrun import as_store_error, run_opened

if TYPE_CHECKING:
    from mrules.compiler import CompiledRuleSet
    from mrules.engine import RunSummary
    from mrules.loader import LoadResult
    from mrules.records import RejectedLine

__all__ = [
    "NoSuchProspect",
    "RuleSetError",
    "RunResult",
    "compile_loaded",
    "compile_rules",
    "explain_state",
    "export_state",
    "open_store",
    "run",
]


@dataclass
class RunResult:
    """What a run did (`summary`) and the store it wrote (still open for reading).

    `close()` (or the end of a `with` block) closes the store; the result's reads then
    raise `StoreError`, whichever the store (a store in memory stayed readable, and the
    same code failed once given a path). `summary` and `rules` stay.
    """

    summary: RunSummary
    store: StateStore
    rules: CompiledRuleSet
    source: str = "-"
    """What the store keeps this run's stream under: a file's absolute path (or the
    `source` given); `- (run N)` for the N-th run on standard input, a pipe or an
    iterable of that store."""
    _closed: bool = field(default=False, init=False, compare=False)

    def rejects(self) -> list[RejectedLine]:
        """The stream's rejected lines, by line: a file's, this run's and those earlier runs
        on that file rejected (as the rejects file of `mrules run` holds them); this run's
        alone for standard input, a pipe or an iterable. Each has `line`, `reason` and
        `text` (the line as read, cut at 1,000 characters); `store.rejects()` has every
        stream's.

        Raises:
            StoreError: the result was closed, or the store cannot be read.
        """
        self._check_open()
        return list(self.store.rejects(self.source))

    def export(self, emails: str | Iterable[str] = ()) -> list[dict[str, Any]]:
        """Every prospect as `mrules state export` prints it (one dict a prospect); only
        those of `emails` (one email, or several) when given.

        As there, the CRM work that a sync beside an SQLite store (`NAME.sync.db`) has
        done is left out of `pending_crm`.

        Raises:
            StoreError: the result was closed, or the store cannot be read.
            mrules.sync.db.SyncDbError: the sync file beside the store cannot be read.
        """
        self._check_open()
        return export_state(self.store, emails)

    def explain(self, email: str) -> dict[str, Any]:
        """Why the prospect of `email` stands where it does, as `mrules explain EMAIL
        --format json` prints it (see `explain_state`).

        Raises:
            NoSuchProspect: the store has no prospect of that email.
            StoreError: the result was closed, or the store cannot be read.
        """
        self._check_open()
        return explain_state(self.store, email)

    def __repr__(self) -> str:
        """What a notebook shows: the summary's counts (by their names in `summary`) and
        the store; not the rule set and every action counted, as the dataclass's repr did
        (29,000 characters on the example)."""
        s = self.summary
        counts = ["lines", "applied", "duplicates", "rejected", "ignored", "prospects_created"]
        if s.resumed_from:
            counts.append("resumed_from")
        shown = " ".join(f"{name}={getattr(s, name)}" for name in counts)
        return f"<RunResult {shown} store={self.store!r}>"

    def export_jsonl(self) -> str:
        """`mrules state export`'s output, byte for byte, as text."""
        return "".join(orjson.dumps(r).decode() + "\n" for r in self.export())

    def close(self) -> None:
        """Close the store (a SQLite store opened from a path holds its lock until then).

        Closing twice does nothing more. A store object given to `mrules.run` is closed
        too: it was the run's.
        """
        self._closed = True
        self.store.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(
                f"this run's store ({self.store.path}) is closed: read the result before"
                " close(), or inside its `with` block"
            )

    def __enter__(self) -> RunResult:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def export_state(
    store: str | Path | StateStore, emails: str | Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Every prospect of a store as `mrules state export` prints it (one dict a
    prospect); only those of `emails` (one email, or several) when given.

    `store` is a store's path (opened read-only, closed before this returns: a run may
    be writing it), a PostgreSQL URL, or a store object (read, left open). As `state
    export` does, the CRM work that a sync beside an SQLite store (`NAME.sync.db`) has
    done is left out of `pending_crm`.

    Raises:
        ValueError: `store` is `":memory:"`: a store in memory lives inside its run
            (export its `RunResult`).
        TypeError: `emails` is not an email or a list of them.
        StorePathError: there is no store at the path (nothing is created).
        StoreError: the store cannot be read (damaged, not an mrules store).
        mrules.sync.db.SyncDbError: the sync file beside the store cannot be read.
    """
    from mrules.outputs import export_records
    from mrules.store import Store
    from mrules.sync.db import pending_beside

    wanted = (
        [emails] if isinstance(emails, str)
        else list(emails) if isinstance(emails, Iterable) and not isinstance(emails, bytes)
        else None
    )  # fmt: skip
    if wanted is None or not all(isinstance(e, str) for e in wanted):
        # not "'int' object is not iterable", nor AttributeError ('strip') for [None]
        odd = emails if wanted is None else next(e for e in wanted if not isinstance(e, str))
        raise TypeError(f"emails must be an email or a list of them, not {type(odd).__name__}")
    with _store_to_read(store, "export") as st, _damage_is_a_store_error():
        records = list(export_records(st, wanted))
        # `state export` reads the sync file beside the store's file; a store in memory or
        # in PostgreSQL has none.
        synced = pending_beside(st.path) if isinstance(st, Store) else None
    if synced is not None:
        for record in records:
            record["pending_crm"] = [w for w in record["pending_crm"] if synced(w["seq"])]
    return records


class NoSuchProspect(LookupError):
    """`explain_state`: the store has no prospect of that email (`mrules explain` exits 2)."""


def explain_state(store: str | Path | StateStore, email: str) -> dict[str, Any]:
    """Why a prospect stands where it does, as `mrules explain EMAIL --format json` prints
    it: each point of score, list, tag, field and the assignment with the rule (file:line)
    and the event behind it, and the prospect's record (`state`) as `export` gives it.

    `store` is read as `export_state` reads it: a path opened read-only and closed, a
    store object left open. The email is matched as the events match it (case and
    surrounding spaces aside).

    Raises:
        NoSuchProspect: the store has no prospect of that email.
        TypeError: `email` is not a str.
        ValueError, StorePathError, StoreError: as `export_state` (a damaged ledger too).
    """
    from mrules.events import prospect_key
    from mrules.explain import attach_views, damaged_steps, explanation
    from mrules.outputs import action_record, prospect_record
    from mrules.state import Codecs, Prospect
    from mrules.store import Store
    from mrules.sync.db import pending_beside

    if not isinstance(email, str):
        raise TypeError(f"email must be a str, not {type(email).__name__}")
    with _store_to_read(store, "explain", "email") as st, _damage_is_a_store_error():
        key = prospect_key(email)
        with st.snapshot():  # the state and its ledger from the same commit
            data = st.prospect(key)
            if data is None:
                raise NoSuchProspect(f"no prospect {key!r} in {st.path}")
            codecs = Codecs()
            state = prospect_record(
                Prospect.from_json(data, codecs, key), codecs, st.crm_pending(key)
            )
            rows = [action_record(r) for r in st.ledger(prospect=key)]
            attach_views(rows, lambda: st.activities(key, by_time=False))
        synced = pending_beside(st.path) if isinstance(st, Store) else None
        wrong = damaged_steps(rows)
        if wrong is not None:
            raise StoreError(f"the store is damaged: {wrong}; restore {st.path} from a backup")
    if synced is not None:
        state["pending_crm"] = [w for w in state["pending_crm"] if synced(w["seq"])]
    return explanation(state, rows)


@contextlib.contextmanager
def _damage_is_a_store_error() -> Iterator[None]:
    """`as_store_error` around a read."""
    try:
        yield
    except Exception as e:
        damage = as_store_error(e)
        if damage is not None:
            raise damage from e
        raise


@contextlib.contextmanager
def _store_to_read(
    store: str | Path | StateStore, what: str, args: str = ""
) -> Iterator[StateStore]:
    """The store to read: a path opened read-only (closed at the end), a store as it is."""
    if isinstance(store, str | Path) and str(store) == MEMORY:  # a new, empty store
        raise ValueError(
            "store ':memory:' holds nothing to read: a store in memory lives inside its"
            f" run ({what} the run's result: mrules.run(...).{what}({args}))"
        )
    _check_options(store, None, 1, None, None)  # its type, "" is not ".", no NUL
    if not isinstance(store, str | Path):
        yield store
        return
    opened = open_store(store, readonly=True)
    try:
        yield opened
    finally:
        opened.close()


def open_store(
    spec: str | Path | StateStore | None = MEMORY,
    *,
    wait: bool = False,
    timeout: float | None = None,
    readonly: bool = False,
) -> StateStore:
    """A store from a `--store` value: `":memory:"`/None (in memory), a PostgreSQL URL, a
    path (SQLite), or a store.

    A new in-memory store (`mrules.memstore.MemoryStore`) for `":memory:"` or None; the
    PostgreSQL store for a `postgresql://` or `postgres://` URL (`mrules.store_pg.PgStore`,
    which needs psycopg: `pip install 'mrules[postgres]'`); the SQLite store at a path
    (`mrules.store.Store.open`, created if new); a store object as it is. The same values
    as the CLI's `--store`.

    >>> store = open_store(":memory:")
    >>> type(store).__name__, store.prospect_count(), store.max_seq()
    ('MemoryStore', 0, 0)

    Raises:
        StoreError, StoreLocked: as `mrules.store.Store.open` does for a path, or
            `mrules.store_pg.PgStore.open` for a URL (psycopg missing, no server).
    """
    if spec is None or (isinstance(spec, str) and spec == MEMORY):
        from mrules.memstore import MemoryStore

        return MemoryStore()
    if is_postgres_url(spec):  # docs/scale-out.md
        from mrules.store_pg import PgStore

        return PgStore.open(spec, wait=wait, timeout=timeout, readonly=readonly)
    if isinstance(spec, str | Path):
        from mrules.store import Store

        return Store.open(spec, wait=wait, timeout=timeout, readonly=readonly)
    return spec


def compile_rules(rules: Any) -> CompiledRuleSet:
    """A compiled rule set from a path, a list of paths, rule text, or a compiled rule set.

    Raises:
        RuleSetError: the rules cannot be read or have errors.
        TypeError, ValueError: `rules` is none of these, or an empty path (not ".").
    """
    from mrules.compiler import CompiledRuleSet

    if isinstance(rules, CompiledRuleSet):
        return rules
    paths = rule_paths(rules, "rules", ", rule text or a compiled rule set")
    from mrules.loader import load, load_text

    # A rule set that cannot be read at all raises `mrules.loader.LoadError`, a
    # RuleSetError: the same exception `mrules.load` raises for the same path.
    if isinstance(rules, str) and any(c in rules for c in '\n{"') and not _is_path(rules):
        result = load_text(rules, "<string>")
    elif isinstance(rules, str | Path):
        result = load([str(rules)])
    else:
        result = load([str(r) for r in paths])
    return compile_loaded(result)


def rule_paths(rules: Any, name: str = "paths", also: str = "") -> list[str | Path]:
    """`rules` as a list of rule paths: one path (str or Path), or an iterable of them.

    Raises:
        TypeError: `rules` is neither (`also` names what else the caller takes), named
            `name` in the message.
        ValueError: a path is empty (not the current folder).
    """
    from mrules.loader import EMPTY_PATH

    paths = (
        [rules] if isinstance(rules, str | Path)
        else list(rules) if isinstance(rules, Iterable) and not isinstance(rules, bytes | dict)
        else None
    )  # fmt: skip
    if paths is None or not all(isinstance(p, str | Path) for p in paths):
        # not "'NoneType' object is not iterable", nor b"x" read as the paths "120"
        raise TypeError(
            f"{name} must be a rule folder or file, a list of them{also}, not"
            f" {_kind(rules if paths is None else paths)}"
        )
    if any(p == "" for p in paths):  # Path("") is ".": every rule file below it was run
        raise ValueError(f"{name}: {EMPTY_PATH}")
    return paths


def _kind(value: object) -> str:
    """A wrong argument's type in a message: `list of int`, `NoneType`."""
    if isinstance(value, list):
        odd = next((v for v in value if not isinstance(v, str | Path)), None)
        return f"{type(value).__name__} of {type(odd).__name__}"
    return type(value).__name__


def compile_loaded(result: LoadResult) -> CompiledRuleSet:
    """Rules already read (`mrules.loader.load`) checked and compiled.

    Raises:
        RuleSetError: the parse diagnostics or the checker's have an error.
    """
    from mrules.checker import check
    from mrules.compiler import compile_program
    from mrules.diagnostics import render_text, sort_diagnostics

    diags = list(result.diagnostics)
    if not any(d.is_error for d in diags):
        diags += check(result.program)
    errors = sort_diagnostics([d for d in diags if d.is_error])
    if errors:
        raise RuleSetError(render_text(errors, result.sources), errors, result.sources)
    return compile_program(result.program, result.sources)


# years 1 to 9999, as the store shows them: up to the last float before 10000, as events
_EPOCH_RANGE = YEARS_1_TO_9999


def _check_options(
    store: object,
    now: object,
    commit_every: object,
    commit_seconds: object,
    cache_prospects: object,
) -> None:
    """Refuse arguments that would fail late or poison the store (a clock of inf is stored
    as null, and every reader then fails): TypeError or ValueError, naming the argument."""
    from mrules.storeapi import StateStore

    if store is not None and not isinstance(store, str | Path | StateStore):
        wanted = sorted(n for n in {*vars(StateStore), *StateStore.__annotations__}
                        if not n.startswith("_"))  # fmt: skip
        missing = [n for n in wanted if getattr(store, n, None) is None]  # None: blocked
        if 0 < len(missing) < len(wanted) / 2:  # a store of its own, lacking a few: name them
            raise TypeError(  # (docs/store.md: a store written for an earlier mrules)
                f"store {type(store).__name__} lacks what mrules.storeapi.StateStore asks"
                f" of a store: {', '.join(missing)}"
            )
        raise TypeError(
            f"store must be ':memory:', a path, a PostgreSQL URL or a store, not"
            f" {type(store).__name__}"
        )
    if store == "":
        raise ValueError(
            "store: an empty path is not the current folder (give the store's file, or ':memory:')"
        )
    if isinstance(store, str | Path) and "\0" in str(store):  # not the system's bare words
        raise ValueError("store: a path cannot hold a NUL character (\\0)")
    for name, value in (("now", now), ("commit_seconds", commit_seconds)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be a finite number, not {value}")
    if now is not None and not _EPOCH_RANGE[0] <= now <= _EPOCH_RANGE[1]:  # type: ignore[operator]
        raise ValueError(f"now must be an epoch time between the years 1 and 9999, not {now}")
    if commit_seconds is not None and commit_seconds <= 0:  # type: ignore[operator]
        raise ValueError(f"commit_seconds must be more than 0, not {commit_seconds}")
    for name, value, least in (("commit_every", commit_every, 1),
                               ("cache_prospects", cache_prospects, 0)):  # fmt: skip
        if value is None and name == "cache_prospects":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be a whole number, not {type(value).__name__}")
        if value < least:
            raise ValueError(f"{name} must be at least {least}, not {value}")


def _is_path(text: str) -> bool:
    """Whether rule text names an existing file (text too long for a path is not one)."""
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False


def stream_source(events: str | Path) -> str:
    """The identity a stream's position is kept under in the store.

    A regular file's absolute path: a rerun on the same file resumes after the
    last committed line. Standard input (`-`) and any other kind of file (a
    named pipe, `<(zcat ...)`, a device) are `-`: what they give next time is
    not the same lines, so no line is skipped; events already applied are still
    skipped by their id.
    """
    if str(events) == "-":
        return "-"
    path = Path(events)
    # os.path.isfile: a name too long is no file (Path.is_file raises), and reading it says so
    return str(path.resolve()) if os.path.isfile(path) else "-"


def run(
    rules: Any,
    events: str | Path | IO[bytes] | Iterable[Any],
    store: str | Path | StateStore | None = MEMORY,
    *,
    now: float | None = None,
    commit_every: int = 20_000,
    commit_seconds: float | None = None,
    wait: bool = False,
    wait_timeout: float | None = None,
    on_commit: Callable[[Any], None] | None = None,
    on_start: Callable[[], None] | None = None,
    source: str | None = None,
    label: str | None = None,
    progress: Callable[[int], None] | None = None,
    cache_prospects: int | None = DEFAULT_CACHE_PROSPECTS,
) -> RunResult:
    """Run `rules` over `events` into `store`; resume from what the store already holds.

    Args:
        rules: a rule folder or file (or a list of them), rule text, or a
            `CompiledRuleSet`.
        events: a JSONL path (`.gz` too, `"-"` for standard input), a binary
            file object, or an iterable of lines (str or bytes) or of dicts.
        store: `":memory:"` (default), a path to the SQLite store, a PostgreSQL URL
            (`postgresql://...`, needs psycopg), or a store object.
        now: after the events, move the clock to this epoch time (like a tick).
        commit_every: events per store transaction.
        commit_seconds: also commit when this many seconds passed since the last commit.
        wait: wait for a store another process holds instead of refusing (for as long as
            it takes, unless `wait_timeout` is given).
        wait_timeout: wait at most this many seconds for such a store (implies `wait`),
            then raise StoreLocked, as `mrules run --wait-timeout` exits 5.
        on_commit: called with every committed batch (the action log uses it).
        on_start: called once the engine has read the store, before the first event.
        source: the stream's identity in the store (default: the file's absolute
            path; `-` for standard input, pipes and iterables, whose rejects each run
            keeps under `- (run N)`: `store.rejects()` lists them).
        label: how the ledger names the stream (default: the path as given).
        progress: called with the number of lines read so far, every 512 lines.
        cache_prospects: how many prospects stay decoded in memory after a commit
            (the store holds them all); None keeps every one.

    Raises:
        RuleSetError: the rules have errors, or cannot be read (`mrules.loader.LoadError`,
            a RuleSetError, as `mrules.load` raises it).
        TypeError, ValueError: an argument of the wrong type or value (naming it), such as
            an empty path for `rules`, `events` or `store` (an empty path is not ".").
        mrules.store.StoreError: the store cannot be opened or written.
        mrules.events.EventSourceError: the events cannot be read (a stream that
            breaks part way is raised after its whole lines are applied and committed).

    An exception the iterable of events raises (a KeyboardInterrupt too) goes through
    unchanged, once the events it gave before are applied and committed with the
    stream's position: a new run given the events that follow resumes exactly.
    """
    from mrules.events import SourceNotOpenedError
    from mrules.loader import display_path

    _check_options(store, now, commit_every, commit_seconds, cache_prospects)
    if isinstance(events, bytes | bytearray | memoryview | dict) or not (
        isinstance(events, str | Path)
        or hasattr(events, "readline")
        or (hasattr(events, "__iter__") and not hasattr(events, "read"))
    ):  # bytes would be read as lines of one int each, a dict as lines of its keys
        hint = " (one event: [event])" if isinstance(events, dict) else ""
        raise TypeError(
            "events must be a path, a binary file or an iterable of lines or dicts, not"
            f" {type(events).__name__}{hint}"
        )
    if isinstance(events, str) and not events:  # not "': cannot read'" from the folder "."
        raise ValueError(
            "events: an empty path is not the current folder (give the events file, or '-')"
        )
    if isinstance(events, str | Path) and "\0" in str(events):  # not "embedded null byte"
        raise ValueError("events: a path cannot hold a NUL character (\\0)")
    if (
        isinstance(events, str)
        and ("\n" in events or events.lstrip().startswith(("{", "[")))
        and not _is_path(events)
    ):  # a file's text given whole: "cannot read" with all of it as the file's name
        head = repr(events[:40]) + ("..." if len(events) > 40 else "")
        raise ValueError(
            f"events: a string is a path, not the events' text ({head}): give its lines"
            " (text.splitlines()), or the file's path"
        )
    for name, text in (("source", source), ("label", label)):
        if text is not None and not isinstance(text, str):
            raise TypeError(f"{name} must be a str, not {type(text).__name__}")
    for name, call in (("on_commit", on_commit), ("on_start", on_start), ("progress", progress)):
        # not "'int' object is not callable" after the first commit (or 512 lines)
        if call is not None and not callable(call):
            raise TypeError(f"{name} must be a function or None, not {type(call).__name__}")
    if not isinstance(wait, bool):  # `wait="no"` is true: it waited
        raise TypeError(f"wait must be True or False, not {type(wait).__name__}")
    if wait_timeout is not None:
        if isinstance(wait_timeout, bool) or not isinstance(wait_timeout, int | float):
            raise TypeError(
                f"wait_timeout must be a number of seconds, not {type(wait_timeout).__name__}"
            )
        if not 0 < wait_timeout < float("inf"):  # nan or inf would wait for ever
            raise ValueError(f"wait_timeout must be a finite number above 0, not {wait_timeout!r}")
        wait = True
    if getattr(events, "closed", False) is True:  # not "peek of closed file" from the reader
        raise ValueError("events: the file is closed; give it open, or its path")
    compiled = compile_rules(rules)
    if isinstance(events, str) and events == "-":
        if sys.stdin is None:  # closed (`<&-`): Python has none
            raise SourceNotOpenedError("<stdin>: cannot read: standard input is closed")
        events = sys.stdin.buffer
    is_path = isinstance(events, str | Path)
    if source is None:
        source = stream_source(events) if isinstance(events, str | Path) else "-"
    if label is None:
        label = display_path(str(events)) if is_path else "-"
    st = open_store(store, wait=wait, timeout=wait_timeout)
    try:
        summary, reject_source = run_opened(
            compiled,
            st,
            events,
            source=source,
            label=label,
            commit_every=commit_every,
            commit_seconds=commit_seconds,
            on_commit=on_commit,
            cache_prospects=cache_prospects,
            now=now,
            progress=progress,
            on_start=on_start,
        )
    except BaseException:
        if st is not store:
            st.close()
        raise
    return RunResult(summary, st, compiled, reject_source)
