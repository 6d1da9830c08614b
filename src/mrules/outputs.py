"""What `mrules run`, `state export` and `explain` write: records, files and the summary table.

The store is the truth; files are views of it. The action log (`--actions`)
appends the ledger rows each commit made, after the commit, and on start it
catches up from the store whatever a killed run committed but did not write,
so the file never repeats or misses an action: a last line torn by a kill or
a full disk is cut off first, and the rows from there on are written again
from the store. The rejects file is rewritten whole (atomically) from the
store's rejects at the end of every run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mrules.atomic import OutputError, atomic_write, fsync_folder
from mrules.batch import Batch
from mrules.engine import RunSummary, iso
from mrules.events import prospect_key
from mrules.records import DIAGNOSTICS_KEPT, REJECTS_ORDER_KEY, LedgerEntry, RejectedLine, stdin_run
from mrules.state import Codecs, Prospect
from mrules.storeapi import MEMORY, StateStore

__all__ = [
    "ActionLog",
    "DiagnosticsFile",
    "OutputError",
    "action_record",
    "all_rejects",
    "diagnostics_beside",
    "export_records",
    "prospect_record",
    "remove_stale_output",
    "render_summary",
    "stream_rejects",
    "write_diagnostics",
    "write_rejects",
]


_dumps = orjson.dumps


def _loads(text: Any) -> Any:
    return None if text is None else orjson.loads(text)


def _raw(text: str | bytes | None) -> bytes:
    """Stored JSON text as bytes to embed (NULL in the store is JSON null)."""
    if text is None:
        return b"null"
    return text.encode() if isinstance(text, str) else text


def _shown(path: Path) -> str:
    """A path as messages show it: bytes of its name that are not UTF-8 as `\\xNN`
    (raw, they were lone surrogates, which a UTF-8 stream cannot print)."""
    from mrules.loader import printable_path

    return printable_path(str(path))


def action_record(entry: LedgerEntry) -> dict[str, Any]:
    """A ledger entry as one line of the action log (docs/outputs.md)."""
    e = entry if type(entry) is LedgerEntry else LedgerEntry._make(entry)
    return {
        "seq": e.seq,
        "time": iso(e.ts),
        "prospect": e.prospect,
        "rule": {"kind": e.rule_kind, "name": e.rule_name, "at": e.rule_loc},
        "event": {"line": e.line or None, "id": e.event_id, "source": e.source},
        "action": str(e.action),
        "args": _loads(e.args),
        "before": _loads(e.before),
        "after": _loads(e.after),
    }


class ActionLog:
    """The `--actions` JSONL file, kept exactly in step with the store's ledger.

    Where a log starts: a log that does not exist yet (or is empty and was
    never started by a run of this store) holds the actions from the current
    end of the ledger on, and the store notes that start, so that a run
    killed before its first row still gets its rows written by the next. A
    log with content goes on after its last complete line: anything after it
    (a line torn by a kill or a full disk, bytes that are not a log line) is
    cut off and the rows are caught up from the store.

    Raises:
        OutputError: the file cannot be read, repaired or written, or it is not
            an action log of this store; the message says what to do.
    """

    def __init__(self, path: Path, store: StateStore) -> None:
        self.path = path
        self.last = 0
        # an in-memory store is gone when the run ends: no later run repairs the log from it
        self._kept = str(store.path) != MEMORY
        self._fd: int | None = None
        try:
            key = str(path.resolve())
            last = _repair(path)
            if last is None:  # nothing written yet: this run's actions, or the noted start
                noted = store.log_start(key) if _is_empty_file(path) else None
                last = store.max_seq() if noted is None else noted
                if noted is None:
                    store.set_log_start(key, last)
            elif last > store.max_seq():
                whence = (
                    "an in-memory store starts empty at every run, so its log must be a new file"
                    if str(store.path) == MEMORY
                    else "it was written from another store"
                )
                raise OutputError(
                    f"action log {_shown(path)} goes up to seq {last}, beyond the store's last"
                    f" ({store.max_seq()}): {whence}; give a new --actions path or move the"
                    " file away"
                )
            created = not path.exists()
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            if created:
                fsync_folder(path.parent)
        except OSError as e:
            raise OutputError(f"cannot open action log {_shown(path)}: {e.strerror or e}") from e
        self.last = last
        self.write(store.ledger(after_seq=last))  # catch up after a killed run

    def write(self, rows: Iterable[tuple[Any, ...]]) -> None:
        out = []
        line = self._line
        last = self.last
        for row in rows:
            if row[0] > last:
                out.append(line(row))
                last = row[0]
        if out:
            data = b"\n".join(out) + b"\n"
            try:
                _write_all(self._fd, data)
            except OSError as e:
                repair = (
                    "; the next run repairs the log and writes the missing rows from the store"
                    if self._kept
                    else ""
                )
                raise OutputError(
                    f"cannot write action log {_shown(self.path)}: {e.strerror or e}{repair}"
                ) from e
            self.last = last

    _time_of: tuple[float | None, bytes] = (None, b"null")

    def _line(self, row: tuple[Any, ...]) -> bytes:
        """`orjson.dumps(action_record(row))`, without decoding the stored JSON to re-encode it.

        The ledger keeps args, before and after as JSON text already; the time
        text is cached, since the rows of one event share it.
        """
        (
            seq,
            ts,
            prospect,
            kind,
            name,
            loc,
            source,
            line,
            event_id,
            action,
            args,
            before,
            after,
        ) = row
        if self._time_of[0] != ts:
            self._time_of = (ts, _dumps(iso(ts)))
        return b"".join(
            (
                b'{"seq":',
                str(seq).encode(),
                b',"time":',
                self._time_of[1],
                b',"prospect":',
                _dumps(prospect),
                b',"rule":{"kind":',
                _dumps(kind),
                b',"name":',
                _dumps(name),
                b',"at":',
                _dumps(loc),
                b'},"event":{"line":',
                _dumps(line or None),
                b',"id":',
                _dumps(event_id),
                b',"source":',
                _dumps(source),
                b'},"action":',
                _dumps(action),
                b',"args":',
                _raw(args),
                b',"before":',
                _raw(before),
                b',"after":',
                _raw(after),
                b"}",
            )
        )

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _write_all(fd: int | None, data: bytes) -> None:
    if fd is None:
        raise OSError("the action log is closed")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _is_empty_file(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return False


_BLOCK = 65536


def _seq_of(line: bytes) -> int | None:
    """The seq of one complete action-log line, or None if it is not one."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    seq = record.get("seq") if isinstance(record, dict) else None
    return seq if type(seq) is int else None


def _newlines_backward(f: Any, size: int) -> Iterator[int]:
    """Offsets of the newlines of an open file, last first, then -1 (before the start)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _BLOCK)
        f.seek(start)
        chunk = f.read(pos - start)
        i = len(chunk)
        while (i := chunk.rfind(b"\n", 0, i)) >= 0:
            yield start + i
        pos = start
    yield -1


def _repair(path: Path) -> int | None:
    """Cut an action log after its last complete line; return that line's seq.

    None when the file does not exist, is empty, or holds only the torn start
    of a first line, maybe with junk after it (then it is emptied). Raises OutputError when it has
    content but no line is an action-log line: not a log, left as it is.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None
    with path.open("rb") as f:
        newlines = _newlines_backward(f, size)
        after = next(newlines)
        for before in newlines:
            f.seek(before + 1)
            seq = _seq_of(f.read(after - before - 1))
            if seq is not None:
                if after + 1 < size:
                    _truncate(path, after + 1)
                return seq
            after = before
        f.seek(0)
        head = f.read(_BLOCK).split(b"\n", 1)[0].split(b"\x00", 1)[0]
    if head and (head.startswith(_LINE_START) or _LINE_START.startswith(head)):
        # The first line, torn (by a kill or a full disk) before its newline, maybe with
        # bytes the disk left after it: the log has no row yet.
        _truncate(path, 0)
        return None
    raise OutputError(
        f"{_shown(path)} is not an mrules action log (no line with a seq): give a new"
        f" --actions path, or move the file away"
    )


_LINE_START = b'{"seq":'


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())


def remove_stale_output(path: Path) -> None:
    """Nothing to report: remove an earlier run's file, if it is one.

    Only a regular file is removed. Through a symlink, the file it points to is
    emptied and the link stays; a pipe or a device is left alone (`--rejects
    /dev/stdout` with nothing to report removed /dev/stdout itself, as root).
    """
    if path.is_symlink():
        if path.is_file():  # follows the link
            atomic_write(path, b"")
        return
    if path.is_file():
        path.unlink()


def write_diagnostics(path: Path, unsettled: list[dict[str, Any]]) -> int:
    """Write what the run reports besides rejected lines (prospects whose rules did not settle).

    One JSON object a line, written atomically; an earlier file is removed when
    there is nothing to report.
    """
    try:
        if not unsettled:
            remove_stale_output(path)
            return 0
        atomic_write(path, b"".join(orjson.dumps(record) + b"\n" for record in unsettled))
    except OSError as e:
        raise OutputError(f"cannot write diagnostics file {_shown(path)}: {e.strerror or e}") from e
    return len(unsettled)


def stream_rejects(store: StateStore, source: str) -> list[RejectedLine]:
    """The rejected lines of a stream: a file's, or every run's on standard input.

    Runs on standard input or a pipe (source `-`) each number their lines from 1, and
    keep their rejects under `- (run N)`: all of them are the stream's, run by run
    (a store's `-` rows from before runs were told apart first), each line once.
    """
    if source != "-":
        return list(store.rejects(source))
    runs = [(n, r) for r in store.rejects() if (n := stdin_run(r.source)) is not None]
    runs.sort(key=lambda nr: (nr[0], nr[1].line))
    return [RejectedLine._make(r) for _, r in runs]


class DiagnosticsFile:
    """The diagnostics file: a view of the reports the store keeps (docs/outputs.md).

    The store keeps the reports, written in the transaction of the batch that makes
    or drops them (a batch that changes a prospect drops its report; one that leaves
    its rules unsettled reports it afresh). The file is rewritten (atomically) from
    the store after each commit that can have changed them, and on opening it is
    repaired if it differs from the store: a kill between a commit and the file's
    write is healed by the next command on that store. A store upgraded from before
    the store kept them takes in the file's reports once. Only a regular file is
    read: another file (a pipe, a device) is written, never read nor repaired.
    """

    def __init__(self, path: Path, store: StateStore) -> None:
        self.path = path
        self.store = store
        self.written = 0
        self._reported: set[str] = set()
        self._content = b""
        regular = True
        try:
            regular = stat.S_ISREG(os.stat(path).st_mode)
            data = path.read_bytes() if regular else b""
        except (FileNotFoundError, NotADirectoryError):
            data = b""
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:  # no file there: the write says what fails
                raise OutputError(
                    f"cannot read diagnostics file {_shown(path)}: {e.strerror or e}"
                ) from e
            data = b""
        if store.meta().get(DIAGNOSTICS_KEPT) is None:  # upgraded: the file held them
            store.keep_diagnostics([x for x in data.splitlines() if x.strip()])
        self._content = data
        if regular:
            self.refresh()  # a kill between a commit and the file's write: healed
        else:
            self._reported = self._prospects(self.store.diagnostics())

    @staticmethod
    def _prospects(reports: list[bytes]) -> set[str]:
        return {w for r in reports if (w := _report_prospect(r)) is not None}

    def commit(self, batch: Batch) -> None:
        """After the store committed `batch`: rewritten if it made a report or changed a
        prospect that had one."""
        if batch.unsettled or any(w in batch.prospects for w in self._reported):
            self.refresh()

    def refresh(self) -> None:
        """Write the store's reports to the file, if they differ from what it holds."""
        reports = self.store.diagnostics()
        self._reported = self._prospects(reports)
        content = b"".join(r + b"\n" for r in reports)
        self.written = len(reports)
        if content == self._content:
            return
        try:
            if not content:
                remove_stale_output(self.path)
            else:
                atomic_write(self.path, content)
        except OSError as e:
            raise OutputError(
                f"cannot write diagnostics file {_shown(self.path)}: {e.strerror or e}; the"
                " store keeps the reports, and the next run writes the file again"
            ) from e
        self._content = content


def diagnostics_beside(store: StateStore) -> DiagnosticsFile | None:
    """The default diagnostics file beside a store file (`NAME.diagnostics.jsonl`), opened
    (so repaired) for a command that changes prospects besides `mrules run` (`segment`, a
    sync): None for an in-memory or PostgreSQL store, which have no file beside them."""
    where = str(store.path)
    if where == MEMORY or "://" in where:
        return None
    path = Path(where)
    return DiagnosticsFile(path.with_name(path.stem + ".diagnostics.jsonl"), store)


def _report_prospect(line: bytes) -> str | None:
    """The prospect a diagnostics line is about; None for a line that names none."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    who = record.get("prospect") if isinstance(record, dict) else None
    return who if isinstance(who, str) else None


def all_rejects(store: StateStore) -> list[RejectedLine]:
    """Every rejected line the store holds, every stream's, in a stable order.

    The streams come in the order the store first kept a rejected line of theirs
    (`meta` keys `rejects_order:SOURCE`), each stream's lines by number; streams a
    store written before that order was kept has no note of come first (runs on
    standard input by number, then by name).
    """
    order = {
        k[len(REJECTS_ORDER_KEY) :]: v
        for k, v in store.meta().items()
        if k.startswith(REJECTS_ORDER_KEY)
    }

    def key(r: RejectedLine) -> tuple[int, int, str, int]:
        known = order.get(r.source)
        rank = int(known) + 1 if known is not None and known.isdigit() else 0
        run = stdin_run(r.source)
        return (rank, -1 if run is None else run, r.source, r.line)

    return sorted((RejectedLine._make(r) for r in store.rejects()), key=key)


def write_rejects(path: Path, store: StateStore, source: str | None = None) -> int:
    """Rewrite the rejects file from the store (atomically): every stream's rejected
    lines, so that nothing the store holds is hidden from the file; removed when the
    store holds none. Returns how many lines it has. (`source`: one stream's only.)"""
    rows = all_rejects(store) if source is None else stream_rejects(store, source)
    try:
        if not rows:
            remove_stale_output(path)
            return 0
        data = b"".join(
            orjson.dumps({"source": src, "line": line, "reason": reason, "text": text}) + b"\n"
            for src, line, reason, text in rows
        )
        atomic_write(path, data)
    except OSError as e:
        kept = (
            "; the store keeps the rejected lines, and the next run writes the file again"
            if str(store.path) != MEMORY
            else ""  # an in-memory store is gone when the run ends
        )
        raise OutputError(
            f"cannot write rejects file {_shown(path)}: {e.strerror or e}{kept}"
        ) from e
    return len(rows)


def prospect_record(
    p: Prospect, codecs: Codecs, pending: Iterable[tuple[Any, ...]] = ()
) -> dict[str, Any]:
    """One prospect as `state export` prints it (`codecs`: the one it was read with)."""
    assigned = None
    if p.assigned_kind is not None:
        assigned = {"kind": p.assigned_kind, "name": p.assigned_to, "at": iso(p.assigned_at)}
        if p.reassigned_at is not None:  # only when reassigned: `at` stays the first
            assigned["reassigned_at"] = iso(p.reassigned_at)
    return {
        "email": p.email,
        "created": iso(p.created),
        "score": p.score,
        "category_scores": p.categories or {},
        "grade": p.grade,
        "profile": p.profile,
        "fields": p.field_items(),
        "lists": p.names("lists", codecs),
        "dynamic_lists": p.names("dynamic", codecs),
        "tags": p.names("tags", codecs),
        "assigned": assigned,
        "crm_status": p.crm_status,
        "crm_id": p.crm_id,
        "do_not_sync": p.do_not_sync,
        "opted_out": p.opted_out,
        "source_campaign": p.campaign,
        "last_activity": iso(p.last_activity),
        "pending_crm": [
            {"seq": seq, "time": iso(ts), "kind": kind, **orjson.loads(payload)}
            for seq, ts, _email, kind, payload, *_ in pending
        ],
    }


def export_records(store: StateStore, emails: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
    """Every prospect of the store (or only `emails`) as `state export` prints it, by email.

    Read inside one snapshot, held until the last record is taken: the states and the
    pending CRM work are of one commit. Each record is made as it is taken, so that an
    export of 200,000 prospects holds one of them, not all. `emails` are looked up one by
    one (their states and their CRM work through the indexes), not found in a read of the
    whole store.
    """
    wanted = sorted({prospect_key(e) for e in emails})
    with store.snapshot():
        codecs = Codecs()
        if wanted:  # a few: each looked up, not found in a read of the whole store
            states = store.prospects_among(wanted)
            for email in wanted:
                data = states.get(email)
                if data is not None:
                    p = Prospect.from_json(data, codecs, email, share=False)
                    yield prospect_record(p, codecs, store.crm_pending(email))
            return
        by_email = getattr(store, "crm_pending_by_email", None)
        if by_email is not None:  # the SQLite store: each prospect's work read with it
            groups: Iterator[tuple[str, list[Any]]] = by_email()
            group = next(groups, None)
            for email, data in store.prospects():
                while group is not None and group[0] < email:  # work of no prospect's state
                    group = next(groups, None)
                work = group[1] if group is not None and group[0] == email else []
                p = Prospect.from_json(data, codecs, email, share=False)
                yield prospect_record(p, codecs, work)
            return
        pending: dict[str, list[Any]] = defaultdict(list)
        for row in store.crm_pending():
            pending[row[2]].append(row)
        for email, data in store.prospects():
            p = Prospect.from_json(data, codecs, email, share=False)
            yield prospect_record(p, codecs, pending.pop(email, []))


def render_summary(
    s: RunSummary,
    console: Console,
    store_path: Path,
    rejects_path: Path | None,
    diagnostics_path: Path | None = None,
    rejects_in_file: int = 0,
) -> None:
    """The end-of-run table on stderr.

    `rejects_in_file`: the lines the rejects file holds for the stream, earlier runs'
    too (a resumed run exits 3 for them: the row says so, not a bare 0).
    """
    t = Table(title="mrules run", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_row("lines read", f"{s.lines:,}")
    if s.resumed_from:
        t.add_row("resumed after line", f"{s.resumed_from:,}")
    t.add_row("events applied", f"{s.applied:,}")
    if s.duplicates:
        t.add_row("skipped (id already applied)", f"{s.duplicates:,}")
    if s.ignored:
        t.add_row("ignored (CRM record, no prospect)", f"{s.ignored:,}")
    rejected = f"{s.rejected:,}"
    earlier = rejects_in_file - s.rejected
    if earlier > 0:
        rejected += f" (+{earlier:,} from earlier runs)"
    if rejects_path is not None and (s.rejected or earlier > 0):  # :memory: warns instead
        rejected += f"  → {rejects_path}"
    t.add_row("rejected", Text(rejected))
    _warnings(t, "events naming an unknown asset", s.unknown_assets)
    kept = "field values kept that do not fit" if s.bad_fields_kept else None
    _warnings(t, kept or "field values skipped (do not fit)", s.bad_fields)
    t.add_row("prospects created", f"{s.prospects_created:,}")
    actions = [(a, n) for a, n in sorted(s.actions.items()) if a != "create prospect"]
    if actions:
        t.add_row("actions taken", f"{sum(n for _, n in actions):,}")
        for action, n in actions:
            t.add_row(f"  {action}", f"{n:,}")
    if s.matches:
        t.add_row("top rules by matches", "")
        for ref, n in s.matches.most_common(_TOP_RULES):
            t.add_row(Text(f"  {ref.kind} '{ref.name}' ({ref.loc})"), f"{n:,}")
    if s.unsettled:
        where = f"  → {diagnostics_path}" if diagnostics_path else ""
        t.add_row("[red]rules did not settle[/red]", f"{len(s.unsettled):,}{where}")
    if s.retroactive:
        t.add_row("retroactive", ", ".join(s.retroactive))
    t.add_row("time", f"{s.seconds:.2f} s")
    t.add_row("events/s", f"{s.events_per_second:,.0f}")
    t.add_row("store", Text(str(store_path)))
    console.print(t)


_SHOWN_WARNINGS = 10
_TOP_RULES = 5


def _warnings(t: Table, label: str, counts: Counter[str]) -> None:
    """A warning row and its most frequent causes (names as data, never as markup)."""
    if not counts:
        return
    t.add_row(Text(label, style="yellow"), f"{sum(counts.values()):,}")
    top = [(cause, n) for cause, n in counts.most_common() if cause]  # "": causes not kept
    for cause, n in top[:_SHOWN_WARNINGS]:
        t.add_row(Text("  " + cause), f"{n:,}")
    rest = top[_SHOWN_WARNINGS:]
    if rest or counts[""]:
        more = f"{len(rest)}+" if counts[""] else f"{len(rest)}"
        t.add_row(Text(f"  and {more} more"), f"{sum(n for _, n in rest) + counts['']:,}")
