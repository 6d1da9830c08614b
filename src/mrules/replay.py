"""`mrules replay --diff`: what a rule change would have done to the same history.

Both rule sets run over the same events, each into its own new store (in
memory, or a file for a large history; a user's store is never opened), through
the public API (`mrules.run`). The two final states, outboxes, CRM work and
ledgers are then compared a prospect at a time, in email order (docs/replay.md):

- prospects whose **MQL status** changes. A prospect *is an MQL* when it is a
  member (static or dynamic) of the list named "MQL" (`--mql-list` names
  another); assignment changes are reported on their own;
- prospects whose **assignment** (who or when), **grade**, **lists** (and dynamic lists),
  **CRM work** (pending CRM records, tasks, campaign members) or CRM status
  change, and prospects that exist under one rule set only;
- **outbox** messages (notifications and autoresponders) gained and lost,
  compared as (prospect, kind, what is sent), so a message sent by another
  rule or at another time is the same message;
- the **score distribution** before and after (mean, quantiles, buckets) and
  how many scores moved;
- **per rule**, how many times it acted before and after: automation rules
  count their matches, the other rules the events they acted on.

Each category carries example prospects with the reason, in `mrules explain`'s
words: the rule (file:line) and the event (line, id) behind the new value
(or behind the old one, for what the new rules no longer do).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import heapq
import io
import itertools
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from mrules.jsonbytes import kept
from mrules.scratch import held_folder
from mrules.storeapi import MEMORY

__all__ = [
    "GitError",
    "ReplayError",
    "auto_jobs",
    "compile_at_revision",
    "diff_runs",
    "render_text",
    "rules_at_revision",
    "unfinished_text",
]

SCORE_BUCKETS = (0, 25, 50, 100, 150, 200)
"""Lower bounds of the score buckets of the distribution (the last one is open)."""


class ReplayError(Exception):
    """The replay cannot be done (bad events path, rules at a revision...)."""


class StoreDirError(ReplayError):
    """`--store-dir` could not be made: a read-only parent folder, no permission, a full
    disk (exit 4, as a store there that cannot be written; a missing parent is exit 2)."""


IN_MEMORY_UP_TO = 20_000_000
"""Bytes of event text (uncompressed) a replay runs in memory by default; beyond, or from
standard input or a pipe (its size unknown until read), each side runs into a store in a
temporary folder (`runs_on_disk`). In memory a replay peaked at about 14 times its events'
bytes (464 MB for 200,000 events, 32 MB; 3.8 GB for 2 million)."""


def runs_on_disk(events: str, limit: int | None = None) -> bool:
    """Whether `mrules replay` runs each side into a store on disk by default: its events
    are more than `limit` bytes of text (a .gz file's are counted as it is read, up to the
    limit), or come from standard input or a pipe."""
    if limit is None:
        limit = IN_MEMORY_UP_TO
    if events == "-" or not Path(events).is_file():
        return True
    try:
        with open(events, "rb") as f:
            if f.read(2) != b"\x1f\x8b":
                return os.fstat(f.fileno()).st_size > limit
            import gzip

            f.seek(0)
            read = 0
            with gzip.open(f) as g:
                while read <= limit:
                    chunk = g.read(1 << 20)
                    if not chunk:
                        return False
                    read += len(chunk)
            return True
    except (OSError, EOFError, zlib.error):  # the run's reader says what is wrong with it
        return False


class GitError(ReplayError):
    """`--old-rev` could not take the rules from git."""


# ------------------------------------------------------------------------ git revisions


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("--old-rev needs git, and git is not installed") from None


def _copy_link(tmp: Path, root: Path, folder: Path, name: str, target: str) -> None:
    """Make the symbolic link `name` (relative to the work tree's top, `root`) of git's
    copy of `folder` in `tmp` lead where it leads in the work tree: into the copy when
    its target is inside `folder`, else to that target itself.

    tarfile's "data" filter refuses a link to an absolute path or out of the copy (an
    internal error, once); made like this, the loader follows a link that stays in the
    rule root and refuses one that leaves it (MR024, naming the same target), as it
    does for the new rules."""
    parts = Path(name).parts
    if not parts or os.path.isabs(name) or ".." in parts:
        raise GitError(f"--old-rev: git gave a path outside the work tree: {name!r}")
    where = os.path.normpath(os.path.join(root, os.path.dirname(name), target))
    for candidate in (Path(where), Path(os.path.realpath(where))):
        if candidate.is_relative_to(folder):
            where = str(tmp / candidate.relative_to(root))
            break
    link = tmp / name
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(where, link)


OLD_RULES_PREFIX = "mrules-old-rules-"
"""The name of the folder `--old-rev`'s rules are taken into, before `mkdtemp`'s 8 characters."""


@contextlib.contextmanager
def _revision_tree(rev: str, path: str) -> Iterator[tuple[Path, Path, str]]:
    """The folder of `path` at `rev`, taken with `git archive` into a temporary folder:
    (that folder, the work tree's top, `path` relative to the top)."""
    p = Path(path)
    if not p.exists():
        raise GitError(f"no such rule file or folder: {path}")
    p = p.resolve()
    folder = p if p.is_dir() else p.parent
    top = _git(["rev-parse", "--show-toplevel"], folder)
    if top.returncode != 0:
        raise GitError(f"--old-rev: {path} is not inside a git repository")
    root = Path(top.stdout.decode().strip()).resolve()
    if rev.startswith("-") or not rev.strip():
        raise GitError(f"--old-rev: not a revision: {rev!r}")
    ok = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root)
    if ok.returncode != 0:
        raise GitError(f"--old-rev: unknown revision {rev!r} in {root}")
    rel_folder = folder.relative_to(root).as_posix()
    rel = p.relative_to(root).as_posix()
    archive = _git(["archive", "--format=tar", rev, "--", rel_folder or "."], root)
    if archive.returncode != 0:
        why = archive.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(
            f"--old-rev: {rel_folder or '.'} does not exist at {rev}"
            + (f" ({why[-1]})" if why else "")
        )
    # Held while in use (its lock file beside the folder), so that a replay killed
    # meanwhile leaves it for the next replay to remove (`scratch`).
    with held_folder(OLD_RULES_PREFIX) as held:
        tmp = held / "tree"
        tmp.mkdir()
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            members = tar.getmembers()
            tar.extractall(tmp, [m for m in members if not m.issym()], filter="data")
            for m in members:
                if m.issym():  # made last: nothing is ever written through them
                    _copy_link(tmp, root, folder, m.name, m.linkname)
        if not (tmp / rel).exists():
            raise GitError(f"--old-rev: {rel} does not exist at {rev}")
        yield tmp, root, rel


@contextlib.contextmanager
def rules_at_revision(rev: str, path: str) -> Iterator[str]:
    """The rule file or folder `path` as it was at git revision `rev`, in a temporary folder.

    Works from any folder of the work tree; the folder (of a file: its
    folder, where its includes live) is taken with `git archive`. Messages
    and rule locations read from it name the temporary folder:
    `compile_at_revision` names the work tree's paths instead.

    Raises:
        GitError: not in a git work tree, an unknown revision, or a path the
            revision does not have.
    """
    with _revision_tree(rev, path) as (tmp, _root, rel):
        yield str(tmp / rel)


def compile_at_revision(rev: str, path: str) -> Any:
    """The rule set `path` at git revision `rev`, compiled, its files named as in the work tree.

    The files are read from a temporary folder that is gone when the replay
    reports, so locations (`rules/30-automation.mr:3`) and error messages
    name each file by its path in the work tree, shown as `mrules run`
    shows the new rules' (relative to the working folder when inside it);
    the revision is said once, in the report's header.

    Raises:
        GitError: as `rules_at_revision`.
        mrules.api.RuleSetError: the rules at `rev` cannot be read or have
            errors (`.which` is "old").
    """
    import re

    from mrules.api import RuleSetError, compile_loaded
    from mrules.loader import LoadError, LoadResult, display_path, load, printable_path
    from mrules.source import Source

    with _revision_tree(rev, path) as (tmp, root, rel):
        # The temporary folder as messages may write it: absolute, or relative to the
        # working folder when inside it (`mrules replay` run from /tmp), links followed or not.
        cwds = {os.getcwd(), os.path.realpath(os.getcwd())}
        forms = {tmp.as_posix(), tmp.resolve().as_posix()}
        forms |= {os.path.relpath(f, c) for f in forms for c in cwds if f.startswith(c + os.sep)}
        prefixes = sorted((f + "/" for f in forms), key=len, reverse=True)

        def shown(name: str) -> str:
            for prefix in prefixes:
                if name.startswith(prefix):
                    return printable_path(display_path(root / name[len(prefix) :]))
            return name  # a bundled library file

        # Free text (messages, hints): each temporary path up to a space or punctuation.
        in_text = re.compile("(?:" + "|".join(map(re.escape, prefixes)) + r")[^\s:'\"(),]*")

        def text(t: str | None) -> str | None:
            return None if t is None else in_text.sub(lambda m: shown(m.group()), t)

        # Loaded here, and the names changed before `compile_loaded` checks and compiles.
        try:
            result = load([str(tmp / rel)])
        except LoadError as e:
            err = RuleSetError(text(str(e)) or "")
            err.which = "old"  # type: ignore[attr-defined]
            raise err from None
    files = tuple(f.model_copy(update={"path": shown(f.path)}) for f in result.program.files)
    program = result.program.model_copy(update={"files": files})
    sources = {shown(name): Source(src.text, shown(name)) for name, src in result.sources.items()}
    diags = [
        d.model_copy(
            update={
                "path": shown(d.path),
                "message": text(d.message),
                "hint": text(d.hint),
                "related": tuple(
                    r.model_copy(update={"path": shown(r.path), "message": text(r.message)})
                    for r in d.related
                ),
            }
        )
        for d in result.diagnostics
    ]
    unparsed = {shown(k): v for k, v in result.unparsed.items()}
    renamed = LoadResult(program, sources, diags, unparsed)
    try:
        return compile_loaded(renamed)
    except RuleSetError as err:
        err.which = "old"  # type: ignore[attr-defined]
        raise


# ----------------------------------------------------------------------------- running


_Reads = tuple[
    dict[str, bytes],
    dict[str, list[dict[str, Any]]],
    list[dict[str, Any]],
    tuple[Counter[tuple[str, str]], dict[tuple[str, str], str]],
]

_Held = tuple[dict[str, bytes], dict[str, list[dict[str, Any]]], list[dict[str, Any]]]


@dataclass
class _Side:
    """One rule set's run: what the comparison reads of it, and its rule counts.

    In memory, `held` is what the run's store holds already, read as the run ends:
    each prospect's stored state (bytes, decoded only where the runs differ:
    `_Facts`), its pending CRM work and every message, as `state export` and `state
    outbox` give them. A run into a store file holds none of it (`path`): the store
    is closed after the run and the comparison reads both stores again, a prospect
    at a time in email order (`_by_email`), so the memory of a large replay does
    not follow its prospects and messages.
    """

    label: str
    held: _Held | None
    rule_counts: Counter[tuple[str, str]]  # (kind, name) -> times it acted
    rule_at: dict[tuple[str, str], str]  # (kind, name) -> file:line
    store: Any  # the in-memory store, a `_Remote`, or the file's store opened to compare
    path: str | None  # the store file the run wrote; None in memory
    seconds: float
    lines: int
    rejected: int
    unfinished_line: int | None = None  # a last line cut short: not replayed


def _run(
    compiled: Any,
    events: Any,
    label: str,
    progress: Callable[[int], None] | None,
    source_label: str,
    *,
    reference: bool = False,
    store: str = MEMORY,
    source: str | None = None,
) -> _Side:
    import mrules
    from mrules.rulestats import rule_counts

    started = time.perf_counter()
    result = mrules.run(
        compiled, events, store, label=source_label, progress=progress, source=source
    )
    st: Any = result.store
    summary = result.summary
    held: _Held | None = None
    if store != MEMORY:
        # A store file: the rules are counted now (its ledger read a row at a time), the
        # rest is read again by the comparison. Closed, so the writer's page cache is not
        # kept while the other side runs, and the run's engine (cyclic garbage) collected.
        try:
            counts, at = rule_counts(st, fast=False if reference else None)
        finally:
            st.close()
        del result, st
        gc.collect()
        st = None
    else:
        # The run's objects stay alive until the comparison is done: keep the garbage
        # collector from walking them again while they are read and while the other
        # side runs (`diff_runs` unfreezes at the end). The run's engine, cyclic garbage
        # now, is frozen with the rest; `mrules.run` let go of its caches (`Engine.release`).
        gc.freeze()
        with st.snapshot():
            states, crm, outbox, (counts, at) = _read_reference(st) if reference else _read(st)
        held = (states, crm, outbox)
    return _Side(
        label,
        held,
        counts,
        at,
        st,
        None if store == MEMORY else store,
        time.perf_counter() - started,
        summary.lines,
        summary.rejected,
        summary.unfinished_line,
    )


def _read_reference(st: Any, fast_counts: bool | None = False) -> _Reads:
    """What the comparison needs, through the store interface only (the reference reader).

    `fast_counts=None` lets `rule_counts` read the rule counts its fastest way (an
    SQLite store's rows one by one, not its whole ledger at once).
    """
    from mrules.rulestats import rule_counts

    crm: dict[str, list[dict[str, Any]]] = {}
    for m in st.crm_pending():
        crm.setdefault(m[2], []).append(_work(m[0], m[3], orjson.loads(m[4])))
    return (
        dict(st.prospects()),
        crm,
        [_message(m) for m in st.outbox()],
        rule_counts(st, fast=fast_counts),
    )


def _work(seq: int, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A prospect's pending CRM work as `state export` lists it (its time left out)."""
    return {"seq": seq, "time": None, "kind": kind, **payload}


def _read(st: Any) -> _Reads:
    """As `_read_reference`, in one pass over an in-memory store's history rows.

    Outbox messages and CRM work are ledger steps (`mrules.history`): they are
    taken from the rows as dicts, without the JSON text the store's readers
    make of them, in the same pass that counts the rules. Other stores (and
    layouts this reader does not know) go through the reference reader; a
    test compares the two.
    """
    from mrules.history import CRM_ACTIONS, OUTBOX_ACTIONS, STEP
    from mrules.rulestats import Step, _has_fast_path, count_steps

    if not _has_fast_path(st):  # a layout this reader does not know
        return _read_reference(st, fast_counts=None)
    outbox = [_message(m) for m in st._outbox]
    work = [(m[0], m[2], _work(m[0], m[3], orjson.loads(m[4]))) for m in st._crm]

    def steps() -> Iterator[Step]:
        out_add, work_add = outbox.append, work.append
        for row_no, row in enumerate(st._rows):
            steps = row.steps
            if not steps:
                continue
            prospect, clock = row.prospect, row.clock
            for i in range(0, len(steps), STEP):
                ref, action = steps[i + 1], steps[i + 2]
                if action in OUTBOX_ACTIONS:
                    # As Row.messages words it, then `_message` reads it back.
                    msg = {"seq": steps[i], "ts": clock, "prospect": prospect, "kind": str(action)}
                    msg.update({**(steps[i + 3] or {}), "rule": ref.name, "at": ref.loc})
                    out_add(msg)
                elif action in CRM_ACTIONS:
                    payload = {**(steps[i + 3] or {}), "rule": ref.name, "at": ref.loc}
                    work_add((steps[i], prospect, _work(steps[i], CRM_ACTIONS[action], payload)))
                yield row_no, ref.kind, ref.name, ref.loc, action

    counts = count_steps(steps())
    outbox.sort(key=_by_seq)
    work.sort(key=_first)
    crm: dict[str, list[dict[str, Any]]] = {}
    for _seq, prospect, w in work:
        crm.setdefault(prospect, []).append(w)
    return st._prospects, crm, outbox, counts


def _first(t: tuple[Any, ...]) -> Any:
    return t[0]


def _by_seq(m: dict[str, Any]) -> int:
    return m["seq"]  # type: ignore[no-any-return]


def _message(m: Any) -> dict[str, Any]:
    seq, ts, prospect, kind, payload = m[:5]
    return {"seq": seq, "ts": ts, "prospect": prospect, "kind": kind, **orjson.loads(payload)}


def _message_key(m: dict[str, Any]) -> bytes:
    """What a message sends, as sorted JSON; right-sized (`mrules.jsonbytes`): the
    comparison keeps one per message of the prospect it compares, and orjson's own
    output holds 4 KB each."""
    body = {k: v for k, v in m.items() if k not in ("seq", "ts", "rule", "at", "time")}
    return kept(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))


class _Remote:
    """The old rules' run in a forked child: its results, then ledger reads on request."""

    def __init__(self, conn: Any, proc: Any) -> None:
        self.conn, self.proc = conn, proc
        self.side: _Side | None = None
        self.error: BaseException | None = None

    @classmethod
    def start(
        cls,
        compiled: Any,
        events: Any,
        label: str,
        shown: str,
        reference: bool = False,
        store: str = MEMORY,
        source: str | None = None,
    ) -> _Remote | None:
        import multiprocessing

        try:
            ctx = multiprocessing.get_context("fork")
        except ValueError:  # no fork here (Windows, macOS default): run one after the other
            return None
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_serve,
            args=(child, compiled, events, label, shown, reference, store, source),
            daemon=True,
        )
        proc.start()
        child.close()
        return cls(parent, proc)

    def _take(self, msg: Any, tick: Callable[[int], None] | None) -> None:
        kind, value = msg
        if kind == "progress":
            if tick is not None:
                tick(value)
        elif kind == "side":
            self.side = value
            if value.held is not None:  # in memory: the child answers its ledger reads
                self.side.store = self
        elif kind == "error":
            self.error = value

    def poll(self, tick: Callable[[int], None] | None) -> None:
        while self.side is None and self.error is None and self.conn.poll():
            self._take(self.conn.recv(), tick)

    def result(self, tick: Callable[[int], None] | None) -> _Side:
        while self.side is None and self.error is None:
            try:
                self._take(self.conn.recv(), tick)
            except EOFError:
                raise ReplayError("the run of the old rules stopped unexpectedly") from None
        if self.error is not None:
            raise self.error
        assert self.side is not None
        return self.side

    def rows(self, email: str) -> list[dict[str, Any]]:
        self.conn.send(email)
        return self.conn.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _serve(
    conn: Any,
    compiled: Any,
    events: Any,
    label: str,
    shown: str,
    reference: bool = False,
    store_path: str = MEMORY,
    source: str | None = None,
) -> None:
    """The child: run, send the results (without the store), answer ledger reads until None
    (in memory; a store file is closed, and the parent reads it)."""
    from mrules.outputs import action_record

    try:
        side = _run(
            compiled,
            events,
            label,
            lambda n: conn.send(("progress", n)),
            shown,
            reference=reference,
            store=store_path,
            source=source,
        )
    except BaseException as e:  # sent to the parent, which raises it
        try:
            conn.send(("error", e))
        except Exception:
            conn.send(("error", ReplayError(f"{type(e).__name__}: {e}")))
        return
    store, side.store = side.store, None
    conn.send(("side", side))
    if store is None:  # a store file, closed: the parent reads it
        return
    with store:
        while True:
            try:
                email = conn.recv()
            except EOFError:
                return
            if email is None:
                return
            conn.send([action_record(e) for e in store.ledger(prospect=email)])


# ----------------------------------------------------------------------------- comparing


def _cause(r: dict[str, Any]) -> str:
    """An action-log record's rule (file:line) and event, as `mrules explain` words it."""
    rule, ev = r["rule"], r["event"]
    if rule["kind"] == "event":
        where = f"event {rule['name']}"
    else:
        where = f"{rule['kind']} '{rule['name']}' ({rule['at']})"
    if ev["line"]:
        event = f", event line {ev['line']}" + (f" id {ev['id']}" if ev["id"] else "")
    elif rule["kind"] != "event":
        event = ", at the start of the run (retroactive) or by a tick"
    else:
        event = ""
    return f"{where}{event}, {r['time']}"


class _Explainer:
    """Reasons for a prospect's value in one run, from its ledger (read only for examples)."""

    def __init__(self, side: _Side) -> None:
        self.side = side
        self.cache: dict[str, list[dict[str, Any]]] = {}

    def rows(self, email: str) -> list[dict[str, Any]]:
        from mrules.outputs import action_record

        if email not in self.cache:
            store = self.side.store
            if isinstance(store, _Remote):
                self.cache[email] = store.rows(email)
            else:
                self.cache[email] = [action_record(e) for e in store.ledger(prospect=email)]
        return self.cache[email]

    def last(self, email: str, action: str, **args: Any) -> str | None:
        for r in reversed(self.rows(email)):
            if r["action"] == action and all(
                (r["args"] or {}).get(k) == v for k, v in args.items()
            ):
                return _cause(r)
        return None

    def last_change(self, email: str, actions: tuple[str, ...]) -> str | None:
        """The last of these steps that changed its value (a grading of a criterion of a
        profile the prospect is not on, or one marked as it was, changes no grade)."""
        for r in reversed(self.rows(email)):
            if r["action"] in actions and r["before"] != r["after"]:
                return _cause(r)
        return None


_DYNAMIC = " (dynamic)"  # how the lists section marks a dynamic list


class _Facts:
    """What the comparison reads of one prospect's state, decoded from the store's bytes."""

    __slots__ = (
        "assigned_at",
        "assignee",
        "crm_status",
        "data",
        "grade",
        "lists",
        "mql",
        "reassigned_at",
        "score",
    )

    def __init__(self, data: bytes, codecs: Any, email: str, mql: str) -> None:
        from mrules.engine import iso
        from mrules.state import Prospect

        p = Prospect.from_json(data, codecs, email)
        static, dynamic = p.names("lists", codecs), p.names("dynamic", codecs)
        self.score: int = p.score
        self.mql = mql in static or mql in dynamic
        self.assignee = None if p.assigned_kind is None else f"{p.assigned_kind} {p.assigned_to}"
        # When: a rule change that assigns the same user at another moment is a change
        # (what `days since assigned` and the CRM's owner date read).
        self.assigned_at: str | None = iso(p.assigned_at)
        # The latest change of assignee after the first (a CRM owner change): a rule change
        # that makes it the first assignment, or moves it, is a change too.
        self.reassigned_at: str | None = iso(p.reassigned_at)
        self.grade: str | None = p.grade
        self.lists = set(static) | {f"{x}{_DYNAMIC}" for x in dynamic}
        self.crm_status: str = p.crm_status
        # The rest of what `state export` shows that rules change, under its keys there.
        self.data: dict[str, Any] = {
            **{f"fields.{k}": v for k, v in p.field_items().items()},
            "tags": sorted(p.names("tags", codecs)),
            **{f"category_scores.{k}": v for k, v in (p.categories or {}).items()},
            "profile": p.profile,
            "source_campaign": p.campaign,
            "opted_out": p.opted_out,
            "do_not_sync": p.do_not_sync,
            # Set by the events a rule set accepts: a line one side rejects moves them.
            "created": iso(p.created),
            "last_activity": iso(p.last_activity),
        }


def _assignment_line(item: dict[str, Any]) -> str:
    """`user a -> queue Q`; the same assignee at another time: `user a, at T1 -> T2`,
    reassigned at another time: `user a, reassigned at T1 -> T2` (or both)."""
    old, new = item["old"] or "unassigned", item["new"] or "unassigned"
    if old != new:
        return f"{old} -> {new}"
    times = []
    for label, key in (("at", "at"), ("reassigned at", "reassigned_at")):
        t_old, t_new = item.get(key) or (None, None)
        if t_old != t_new:
            times.append(f"{label} {t_old or '-'} -> {t_new or '-'}")
    return ", ".join([old, *times])


def _data_changes(a: _Facts, b: _Facts) -> list[dict[str, Any]]:
    """Each datum (a field, the tags, a category score...) that differs: its old and new value."""
    keys = sorted(a.data.keys() | b.data.keys())
    return [
        {"what": k, "old": a.data.get(k), "new": b.data.get(k)}
        for k in keys
        if a.data.get(k) != b.data.get(k)
    ]


# The action behind a datum's value, and the argument naming it (`set field` of `field`).
_DATA_ACTIONS: dict[str, tuple[str, str | None]] = {
    "fields": ("set field", "field"),
    "category_scores": ("category score", "category"),
    "tags": ("add tag", "tag"),
    "profile": ("change profile", None),
    "source_campaign": ("source campaign", None),
    "opted_out": ("opt out", None),
    "do_not_sync": ("do not sync", None),
    "created": ("create prospect", None),
    "last_activity": ("", None),  # no step sets it: each activity does
}


def _data_reason(e: str, change: dict[str, Any], new: _Explainer, old: _Explainer) -> str | None:
    """Why the first changed datum of a prospect has its new value (or had its old one)."""
    what = change["what"]
    group, _, name = what.partition(".")
    action, arg = _DATA_ACTIONS[group]
    if not action:
        return None
    if group == "tags":
        added = sorted(set(change["new"]) - set(change["old"]))
        removed = sorted(set(change["old"]) - set(change["new"]))
        if added:
            return f"{added[0]}: {new.last(e, action, tag=added[0]) or '?'}"
        why = old.last(e, action, tag=removed[0])
        return f"{removed[0]} (old rules): {why}" if why else None
    args = {arg: name} if arg else {}
    if change["new"] is not None:
        why = new.last(e, action, **args)
        if why:
            return why
    why = old.last(e, action, **args)
    return f"old rules: {why}" if why else None


# The ledger steps whose values are grades. Not `change profile` (its values are profile
# names): a profile change that moves the grade is followed by its own `grade` step.
_GRADE_ACTIONS = ("grading", "grade")


def _crm_reason(item: dict[str, Any], new: _Explainer, old: _Explainer) -> str | None:
    """The rule behind a prospect's first CRM work gained (or lost), else its CRM status."""
    from mrules.vocab import Action

    e = item["prospect"]
    for works, side, label in (
        (item["added"], new, "new rules"),
        (item["removed"], old, "old rules"),
    ):
        if works:
            why = side.last(e, str(Action.crm(works[0]["kind"])))
            return f"{label}: {why}" if why else None
    why = new.last(e, str(Action.CRM_STATUS)) or old.last(e, str(Action.CRM_STATUS))
    return why


def _crm_work(work: list[dict[str, Any]] | None) -> Counter[bytes]:
    if not work:
        return Counter()
    return Counter(_message_key(w) for w in work)


def _quantile(values: list[int], q: float) -> float:
    if not values:
        return 0.0
    i = (len(values) - 1) * q
    lo = int(i)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (i - lo)


def _distribution(scores: list[int]) -> dict[str, Any]:
    s = sorted(scores)
    buckets = []
    for i, low in enumerate(SCORE_BUCKETS):
        high = SCORE_BUCKETS[i + 1] - 1 if i + 1 < len(SCORE_BUCKETS) else None
        label = f"{low}+" if high is None else (f"{low}" if low == high else f"{low}-{high}")
        n = sum(1 for x in s if x >= low and (high is None or x <= high))
        buckets.append({"range": label, "prospects": n})
    below = sum(1 for x in s if x < 0)
    if below:
        buckets.insert(0, {"range": "<0", "prospects": below})
    return {
        "prospects": len(s),
        "mean": round(sum(s) / len(s), 2) if s else 0.0,
        "median": _quantile(s, 0.5),
        "p90": _quantile(s, 0.9),
        "max": s[-1] if s else 0,
        "buckets": buckets,
    }


def auto_jobs() -> int:
    """2 (run the two sides at once) when this process can use a free core, else 1.

    Two processes finish the replay in about 1.4x one run's time on two idle
    cores, but take longer than one after the other when the other core is
    busy: a core counts as free when at least two CPUs are usable and the
    1-minute load average is below their number minus one.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1
    return 2 if load < cpus - 1 else 1


def diff_runs(
    old_rules: Any,
    new_rules: Any,
    events: str,
    *,
    mql_list: str = "MQL",
    examples: int = 5,
    old_label: str | None = None,
    new_label: str | None = None,
    progress: Callable[[str, int], None] | None = None,
    jobs: int = 1,
    reference: bool = False,
    store_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run both rule sets over `events` in memory and compare them (the JSON of `--format json`).

    With `store_dir`, each side runs into a new SQLite store there instead
    (`old.db`, `new.db`, kept afterwards), so the history need not fit in memory.

    With `jobs=2` (and where processes can fork) the old rules run in a child
    process while the new ones run here; the child keeps its store and
    answers the few ledger reads the examples need. `reference=True` reads
    the results through the store interface only, as any store answers it
    (slower; the tests compare the two readers).

    Raises:
        mrules.api.RuleSetError: a rule set cannot be read or has errors
            (`.which` says "old" or "new").
        mrules.events.EventSourceError: the events cannot be read.
        mrules.store.StoreError: a store in `store_dir` cannot be written.
    """
    *stores, made = _new_stores(store_dir)
    try:
        return _diff(
            old_rules,
            new_rules,
            events,
            stores,
            mql_list=mql_list,
            examples=examples,
            old_label=old_label,
            new_label=new_label,
            progress=progress,
            jobs=jobs,
            reference=reference,
        )
    except BaseException:
        _remove_unfinished(stores, made)  # it ran into new stores: none is kept
        raise


def _diff(
    old_rules: Any,
    new_rules: Any,
    events: str,
    stores: list[str],
    *,
    mql_list: str,
    examples: int,
    old_label: str | None,
    new_label: str | None,
    progress: Callable[[str, int], None] | None,
    jobs: int,
    reference: bool,
) -> dict[str, Any]:
    """`diff_runs`, each side run into its store in `stores` (in memory, or new files)."""
    from mrules.api import RuleSetError, compile_rules
    from mrules.loader import display_path

    compiled = []
    for which, rules in (("old", old_rules), ("new", new_rules)):
        try:
            compiled.append(compile_rules(rules))
        except RuleSetError as e:
            e.which = which  # type: ignore[attr-defined]
            raise
    declared = {n for c in compiled for n in (*c.symbols.lists, *c.symbols.dynamic_lists)}
    if mql_list not in declared:  # a typo would count 0 MQLs on both sides, silently
        import difflib

        close = [n for n in sorted(declared) if n.casefold() == mql_list.casefold()]
        close = close or difflib.get_close_matches(mql_list, sorted(declared), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ReplayError(f"--mql-list '{mql_list}': neither rule set has that list{hint}")
    started = time.perf_counter()
    spooled: Path | None = None
    if events == "-" or (Path(events).exists() and not Path(events).is_file()):
        # Standard input or a pipe: read once, for both sides. Beside stores on disk it is
        # copied into a file each side reads (its memory does not follow the history);
        # in memory, its lines are kept.
        if events == "-":
            shown = "-"
        else:  # `<(zcat ...)` gives /dev/fd/63, a link to `pipe:[...]`: shown as given
            shown = display_path(events) if os.path.exists(os.path.realpath(events)) else events
        with contextlib.ExitStack() as opened:
            stream = sys.stdin.buffer if events == "-" else opened.enter_context(open(events, "rb"))
            if stores[0] == MEMORY:
                lines: Any = stream.read().splitlines()
            else:
                what = "standard input" if events == "-" else f"the pipe {shown}"
                spooled = _spool(stream, Path(stores[0]).parent, what)
                lines = str(spooled)
    else:
        lines = events
        shown = display_path(events)
    try:
        return _diff_read(
            compiled, lines, stores, shown, started, spooled is not None,
            mql_list=mql_list, examples=examples, old_label=old_label or str(old_rules),
            new_label=new_label or str(new_rules), progress=progress, jobs=jobs,
            reference=reference,
        )  # fmt: skip
    finally:
        if spooled is not None:
            with contextlib.suppress(OSError):
                spooled.unlink()


def _spool(stream: Any, folder: Path, what: str) -> Path:
    """Standard input (or a pipe) copied into a new file in `folder`, beside the replay's
    stores: each side reads it from there, not from the whole history kept in memory.

    Raises:
        StoreError: the file cannot be written (a full disk), as a store there would fail.
    """
    import shutil

    from mrules.storeapi import StoreError

    fd, name = tempfile.mkstemp(prefix=".events-", suffix=".jsonl", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(name)
        if isinstance(e, OSError) and not isinstance(e, ConnectionError):
            why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise StoreError(f"cannot keep the events of {what} in {folder}: {why}") from None
        raise
    return Path(name)


def _diff_read(
    compiled: list[Any],
    lines: Any,
    stores: list[str],
    shown: str,
    started: float,
    spooled: bool,
    *,
    mql_list: str,
    examples: int,
    old_label: str,
    new_label: str,
    progress: Callable[[str, int], None] | None,
    jobs: int,
    reference: bool,
) -> dict[str, Any]:
    """`_diff` once the events are where each side reads them (`spooled`: a copy of
    standard input or a pipe, whose runs are named as `-` is, not by the copy's path)."""
    source = "-" if spooled else None

    def ticker(which: str) -> Callable[[int], None] | None:
        if progress is None:
            return None
        return lambda n: progress(which, n)

    remote = None
    if jobs > 1:
        remote = _Remote.start(compiled[0], lines, old_label, shown, reference, stores[0], source)
    if remote is None:
        try:
            old = _run(
                compiled[0],
                lines,
                old_label,
                ticker("old"),
                shown,
                reference=reference,
                store=stores[0],
                source=source,
            )
            new = _run(
                compiled[1],
                lines,
                new_label,
                ticker("new"),
                shown,
                reference=reference,
                store=stores[1],
                source=source,
            )
        finally:
            gc.unfreeze()
    else:
        tick_old = ticker("old")

        def both(n: int) -> None:
            remote.poll(tick_old)
            if progress is not None:
                progress("new", n)

        try:
            new = _run(
                compiled[1],
                lines,
                new_label,
                both,
                shown,
                reference=reference,
                store=stores[1],
                source=source,
            )
            old = remote.result(tick_old)
        except BaseException:
            gc.unfreeze()
            remote.stop()
            raise
    runs_seconds = time.perf_counter() - started
    try:
        gc.freeze()
        for side in (old, new):
            if side.path is not None:  # read again, a prospect at a time (`_by_email`)
                side.store = _open_run(side.path)
        out = _compare(old, new, mql_list, examples)
    finally:
        gc.unfreeze()
        if remote is not None:
            remote.stop()
        for side in (old, new):
            if side.store is not None and side.store is not remote:
                side.store.close()
    out["events"] = {
        "source": shown,
        "lines": new.lines,
        "rejected": new.rejected,
        "unfinished_line": new.unfinished_line,
    }
    # Each side's own rejects: a rule set's settings (`unknown_assets = "reject"`) or its
    # declarations can refuse lines the other applies.
    out["old"] = {"rules": old.label, "seconds": round(old.seconds, 4), "rejected": old.rejected}
    out["new"] = {"rules": new.label, "seconds": round(new.seconds, 4), "rejected": new.rejected}
    out["seconds"] = {
        "runs": round(runs_seconds, 4),
        "total": round(time.perf_counter() - started, 4),
    }
    return out


def _open_run(path: str) -> Any:
    """The store file a side ran into, opened again to read it for the comparison."""
    from mrules.store import Store

    return Store.open(path, readonly=True)


def _new_stores(store_dir: str | Path | None) -> tuple[str, str, Path | None]:
    """Where each side runs: in memory, or new SQLite stores `old.db` and `new.db` in `store_dir`.

    A store there already is refused, not resumed: a replay compares whole runs.
    The third value is the folder when this made it (`_remove_unfinished` removes it).
    """
    if store_dir is None:
        return MEMORY, MEMORY, None
    folder = Path(store_dir)
    if folder.exists() and not folder.is_dir():
        raise ReplayError(f"--store-dir {store_dir}: not a folder")
    paths = (folder / "old.db", folder / "new.db")
    for path in paths:
        if path.exists():
            raise ReplayError(
                f"{path} exists: a replay runs into new stores; remove it (and its -wal,"
                " -shm files) or give another --store-dir"
            )
    for path in paths:
        # SQLite replays a write-ahead log (or a rollback journal) it finds beside a new
        # file into it: a store left there by a killed replay would come back as the new
        # store, the run resume on it, and the comparison report what that run did.
        for name in (f"{path}-wal", f"{path}-shm", f"{path}-journal"):
            if os.path.lexists(name):
                raise ReplayError(
                    f"{name} exists, left by an earlier store {path.name}: SQLite would read"
                    " it into the new store; remove it or give another --store-dir"
                )
    made = None if folder.exists() else folder
    if made is not None and not folder.parent.is_dir():  # mrules creates no other folders
        raise ReplayError(
            f"--store-dir {store_dir}: {folder.parent} does not exist or is not a folder;"
            " create it first"
        )
    try:
        folder.mkdir(exist_ok=True)
    except OSError as e:
        raise StoreDirError(f"--store-dir {store_dir}: cannot create it: {e.strerror}") from None
    return str(paths[0]), str(paths[1]), made


def _remove_unfinished(stores: list[str], made: Path | None) -> None:
    """A replay that did not finish leaves no store: `_new_stores` made sure it made them.

    So running the same command again starts over, as a replay must (it compares
    whole runs and never resumes one).
    """
    if stores[0] == MEMORY:
        return
    gc.collect()  # a failed side's store, still referenced by its traceback's frames
    for path in stores:
        for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal", f"{path}.lock"):
            with contextlib.suppress(OSError):
                os.unlink(name)
    if made is not None:
        with contextlib.suppress(OSError):  # not empty: someone else's files are there now
            made.rmdir()


_Group = tuple[str, bytes | None, list[dict[str, Any]] | None, list[dict[str, Any]]]
"""One prospect's reads in one run: email, stored state (None: not in that run), pending CRM
work and outbox messages (each by seq)."""


def _by_email(side: _Side) -> Iterator[_Group]:
    """Each prospect of one run, in email order, with what the comparison reads of it.

    A store file is read a prospect at a time (its states, CRM work and messages, each
    sorted by email in SQLite), so no more than one prospect's is held; in memory, from
    what the run held already. Messages of a prospect without a state are given too (its
    state None): the outbox compares every message.
    """
    if side.held is not None:
        states, crm, outbox = side.held
        sent: dict[str, list[dict[str, Any]]] = {}
        for m in outbox:
            sent.setdefault(_prospect_of(m), []).append(m)
        for email in sorted(states.keys() | sent.keys()):
            state = states.get(email)
            yield email, state, None if state is None else crm.get(email), sent.get(email, [])
        return
    st = side.store
    pending = st.crm_pending_by_email()
    works = ((e, [_work(m[0], m[3], orjson.loads(m[4])) for m in ms]) for e, ms in pending)
    messages = ((e, [_message(m) for m in ms]) for e, ms in st.outbox_by_email())
    tagged = heapq.merge(
        ((e, 0, x) for e, x in st.prospects()),
        ((e, 1, x) for e, x in works),
        ((e, 2, x) for e, x in messages),
        key=_email_tag,
    )
    for email, group in itertools.groupby(tagged, key=_first):
        found: list[Any] = [None, None, []]
        for _email, tag, value in group:
            found[tag] = value
        state = found[0]
        yield email, state, found[1] if state is not None else None, found[2]


def _prospect_of(m: dict[str, Any]) -> str:
    """A message's prospect as the store sorts it (work of no prospect sorts first)."""
    p = m["prospect"]
    return p if type(p) is str else ""


def _email_tag(t: tuple[str, int, Any]) -> tuple[str, int]:
    return t[0], t[1]


def _pairs(old: Iterator[_Group], new: Iterator[_Group]) -> Iterator[tuple[_Group, _Group]]:
    """The two runs' prospects side by side in email order; a prospect missing from one
    run is there with no state, work or message."""
    tagged = heapq.merge(((g[0], 0, g) for g in old), ((g[0], 1, g) for g in new), key=_email_tag)
    for email, group in itertools.groupby(tagged, key=_first):
        pair: list[_Group] = [(email, None, None, []), (email, None, None, [])]
        for _email, tag, g in group:
            pair[tag] = g
        yield pair[0], pair[1]


class _Category:
    """A category of changed prospects as the report gives it: every prospect's email, and
    the first `limit` items whole (the examples; the rest is never shown)."""

    __slots__ = ("examples", "limit", "prospects")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.prospects: list[str] = []
        self.examples: list[dict[str, Any]] = []

    def add(self, item: dict[str, Any]) -> None:
        self.prospects.append(item["prospect"])
        if len(self.examples) < self.limit:
            self.examples.append(item)

    def report(self) -> dict[str, Any]:
        return {
            "count": len(self.prospects),
            "prospects": self.prospects,
            "examples": self.examples,
        }


def _compare(old: _Side, new: _Side, mql: str, limit: int) -> dict[str, Any]:
    """The report of two runs, read a prospect at a time (`_pairs`): what it keeps is what
    the report gives (counts, every changed prospect's email, `limit` examples a category,
    the messages gained and lost) and every prospect's score for the distribution."""
    from mrules.state import Codecs

    ex_old, ex_new = _Explainer(old), _Explainer(new)
    cats = {
        k: _Category(limit)
        for k in (
            "mql_gained",
            "mql_lost",
            "assignment",
            "grade",
            "lists",
            "data",
            "crm",
            "only_old",
            "only_new",
        )
    }
    codecs_old, codecs_new = Codecs(), Codecs()
    # Scores and MQL status of every prospect, by side; a prospect whose stored state is
    # the same bytes under both rule sets is decoded once.
    score_old: list[int] = []
    score_new: list[int] = []
    mql_old = mql_new = 0
    prospects_old = prospects_new = 0
    score_moves = []
    changed = 0
    sent_old = sent_new = 0
    gained: list[tuple[int, dict[str, Any], int]] = []  # (first seq, first message, count)
    lost: list[tuple[int, dict[str, Any], int]] = []
    for (email, sa, ca, ma), (_email, sb, cb, mb) in _pairs(_by_email(old), _by_email(new)):
        # Outbox: messages as (prospect, kind, what is sent), counted.
        sent_old += len(ma)
        sent_new += len(mb)
        if ma or mb:
            _sent_diff(ma, mb, gained, lost)
        if sa is None and sb is None:  # messages of no prospect of either run
            continue
        prospects_old += sa is not None
        prospects_new += sb is not None
        hit = False
        if sa is None or sb is None:
            cats["only_new" if sa is None else "only_old"].add({"prospect": email})
            hit = True
            # An MQL that exists under one rule set only is gained (or lost) too, so the
            # counts add up: 2 -> 3 is "+1 become MQLs".
            if sa is not None:
                one = _Facts(sa, codecs_old, email, mql)
                mql_old += one.mql
                if one.mql:
                    cats["mql_lost"].add({"prospect": email, "score": [one.score, None]})
            if sb is not None:
                one = _Facts(sb, codecs_new, email, mql)
                mql_new += one.mql
                if one.mql:
                    cats["mql_gained"].add({"prospect": email, "score": [None, one.score]})
            changed += hit
            continue
        if sa == sb:
            a = b = _Facts(sa, codecs_new, email, mql)
        else:
            a, b = _Facts(sa, codecs_old, email, mql), _Facts(sb, codecs_new, email, mql)
        score_old.append(a.score)
        score_new.append(b.score)
        mql_old += a.mql
        mql_new += b.mql
        if a is not b:
            if a.score != b.score:
                score_moves.append(b.score - a.score)
                hit = True
            if a.mql != b.mql:
                cats["mql_gained" if b.mql else "mql_lost"].add(
                    {"prospect": email, "score": [a.score, b.score]}
                )
                hit = True
            if (
                a.assignee != b.assignee
                or a.assigned_at != b.assigned_at
                or a.reassigned_at != b.reassigned_at
            ):
                cats["assignment"].add(
                    {
                        "prospect": email,
                        "old": a.assignee,
                        "new": b.assignee,
                        "at": [a.assigned_at, b.assigned_at],
                        "reassigned_at": [a.reassigned_at, b.reassigned_at],
                    }
                )
                hit = True
            if a.grade != b.grade:
                cats["grade"].add({"prospect": email, "old": a.grade, "new": b.grade})
                hit = True
            if a.lists != b.lists:
                cats["lists"].add(
                    {
                        "prospect": email,
                        "added": sorted(b.lists - a.lists),
                        "removed": sorted(a.lists - b.lists),
                    }
                )
                hit = True
            data = _data_changes(a, b)
            if data:
                cats["data"].add({"prospect": email, "changes": data})
                hit = True
        if ca or cb or a.crm_status != b.crm_status:
            wa, wb = _crm_work(ca), _crm_work(cb)
            if wa != wb or a.crm_status != b.crm_status:
                cats["crm"].add(
                    {
                        "prospect": email,
                        "added": [orjson.loads(k) for k in (wb - wa).elements()],
                        "removed": [orjson.loads(k) for k in (wa - wb).elements()],
                        "crm_status": [a.crm_status, b.crm_status],
                    }
                )
                hit = True
        changed += hit
    # Reasons for the examples only: the ledger of a few prospects.
    for item in cats["mql_gained"].examples:
        e = item["prospect"]
        item["reason"] = ex_new.last(e, "add to list", list=mql) or "in the dynamic list"
    for item in cats["mql_lost"].examples:
        e = item["prospect"]
        item["reason"] = "old rules: " + (ex_old.last(e, "add to list", list=mql) or "dynamic list")
        removed = ex_new.last(e, "remove from list", list=mql)
        if removed:
            item["reason"] += f"; new rules removed it: {removed}"
    for item in cats["assignment"].examples:
        e = item["prospect"]
        side = ex_new if item["new"] else ex_old
        item["reason"] = ("new rules: " if item["new"] else "old rules: ") + (
            side.last(e, "assign") or "?"
        )
    for item in cats["grade"].examples:
        e = item["prospect"]
        # What graded it under the new rules, else (a grading the new rules dropped) what
        # had graded it under the old ones.
        for side, label in ((ex_new, "new rules"), (ex_old, "old rules")):
            why = side.last_change(e, _GRADE_ACTIONS)
            if why:
                item["reason"] = f"{label}: {why}"
                break
    for item in cats["lists"].examples:
        e = item["prospect"]
        reasons = []
        # A dynamic list is shown "NAME (dynamic)"; the ledger names it NAME.
        for name in item["added"][:2]:
            why = ex_new.last(e, "add to list", list=name.removesuffix(_DYNAMIC))
            if why:
                reasons.append(f"{name}: {why}")
        for name in item["removed"][:2]:
            why = ex_old.last(e, "add to list", list=name.removesuffix(_DYNAMIC))
            if why:
                reasons.append(f"{name} (old rules): {why}")
        item["reason"] = "; ".join(reasons) or None
    for item in cats["data"].examples:
        item["reason"] = _data_reason(item["prospect"], item["changes"][0], ex_new, ex_old)
    for item in cats["crm"].examples:
        item["reason"] = _crm_reason(item, ex_new, ex_old)
    for key, side in (("only_new", ex_new), ("only_old", ex_old)):
        for item in cats[key].examples:
            item["reason"] = side.last(item["prospect"], "create prospect")

    # Per rule.
    rules: list[dict[str, Any]] = []
    for rule_key in sorted(set(old.rule_counts) | set(new.rule_counts)):
        before, after = old.rule_counts.get(rule_key, 0), new.rule_counts.get(rule_key, 0)
        rules.append(
            {
                "kind": rule_key[0],
                "name": rule_key[1],
                "at": new.rule_at.get(rule_key) or old.rule_at.get(rule_key),
                "before": before,
                "after": after,
            }
        )
    rules.sort(key=lambda r: (-abs(r["after"] - r["before"]), r["kind"], r["name"]))

    moves = sorted(score_moves)
    dist_old = _distribution(score_old)
    dist_new = _distribution(score_new)
    # The same buckets on both sides: `<0` is there only when a score is below 0, and a side
    # without it shifted the text's before/after columns by one row.
    for fewer, more in ((dist_old, dist_new), (dist_new, dist_old)):
        if more["buckets"][0]["range"] == "<0" and fewer["buckets"][0]["range"] != "<0":
            fewer["buckets"].insert(0, {"range": "<0", "prospects": 0})
    return {
        "mql_list": mql,
        "prospects": {
            "old": prospects_old,
            "new": prospects_new,
            # A prospect changed when anything compared differs: a score alone counts too.
            "changed": changed,
        },
        "mql": {
            "old": mql_old,
            "new": mql_new,
            "gained": cats["mql_gained"].report(),
            "lost": cats["mql_lost"].report(),
        },
        "assignment": cats["assignment"].report(),
        "grade": cats["grade"].report(),
        "lists": cats["lists"].report(),
        "data": cats["data"].report(),
        "crm": cats["crm"].report(),
        "only_old": cats["only_old"].report(),
        "only_new": cats["only_new"].report(),
        "outbox": {
            "old": sent_old,
            "new": sent_new,
            "gained": _messages(gained),
            "lost": _messages(lost),
        },
        "score": {
            "old": dist_old,
            "new": dist_new,
            "changed": len(moves),
            "mean_change": round(sum(moves) / len(moves), 2) if moves else 0.0,
            "up": sum(1 for m in moves if m > 0),
            "down": sum(1 for m in moves if m < 0),
        },
        "rules": rules,
    }


def _sent_diff(
    old: list[dict[str, Any]],
    new: list[dict[str, Any]],
    gained: list[tuple[int, dict[str, Any], int]],
    lost: list[tuple[int, dict[str, Any], int]],
) -> None:
    """One prospect's messages gained and lost, counted by what is sent: each with its
    first message (the lowest seq; each list is in seq order) and how many there are."""
    keys_old = [_message_key(m) for m in old]
    keys_new = [_message_key(m) for m in new]
    ka, kb = Counter(keys_old), Counter(keys_new)
    if ka == kb:
        return
    for keys, msgs, more, into in (
        (keys_new, new, kb - ka, gained),
        (keys_old, old, ka - kb, lost),
    ):
        if more:
            first = dict(zip(reversed(keys), reversed(msgs), strict=True))
            into.extend((first[k]["seq"], first[k], n) for k, n in more.items())


def _messages(found: list[tuple[int, dict[str, Any], int]]) -> dict[str, Any]:
    """The messages gained (or lost) as the report gives them, by the seq of each one's
    first message."""
    from mrules.engine import iso

    by_kind: Counter[str] = Counter()
    items = []
    for _seq, m, n in sorted(found, key=_first):
        by_kind[m["kind"]] += n
        body = {x: y for x, y in m.items() if x not in ("seq", "ts", "rule", "at")}
        items.append(
            {
                **body,
                "count": n,
                "time": iso(m["ts"]),
                "reason": f"{m.get('rule', '?')} ({m.get('at', '?')})",
            }
        )
    return {
        "total": sum(n for _seq, _m, n in found),
        "by_kind": dict(sorted(by_kind.items())),
        "messages": items,
    }


# ---------------------------------------------------------------------------- rendering


def unfinished_text(events: dict[str, Any]) -> str:
    """What a replay says of an events file whose last line is cut short."""
    return (
        f"line {events['unfinished_line']:,} has no newline and is not whole JSON (cut short,"
        " or still being written?): it was not replayed"
    )


def _rejected_text(d: dict[str, Any]) -> str | None:
    """`2 lines rejected under both rule sets`, or each side's count when they differ."""
    from mrules.diagnostics import plural

    new = d["events"]["rejected"]
    old = d["old"].get("rejected", new)  # JSON of a replay that counted the new side only
    if not old and not new:
        return None
    if old == new:
        return f"{plural(new, 'line')} rejected under both rule sets"
    return f"{plural(old, 'line')} rejected under the old rules, {new:,} under the new rules"


def render_text(d: dict[str, Any]) -> str:
    """The diff as a summary for a terminal or a pull-request comment."""
    from mrules.diagnostics import plural

    out = [
        f"Replay of {plural(d['events']['lines'], 'event line')} ({d['events']['source']})",
        f"  old rules: {d['old']['rules']}",
        f"  new rules: {d['new']['rules']}",
    ]
    rejected = _rejected_text(d)
    if rejected:
        out.append(f"  ({rejected})")
    if d["events"].get("unfinished_line"):
        out.append(f"  ({unfinished_text(d['events'])})")
    p = d["prospects"]
    out.append(f"\nProspects: {p['old']:,} before, {p['new']:,} after; {p['changed']:,} changed")
    m = d["mql"]
    out.append(
        f'\nMQLs (in list "{d["mql_list"]}"): {m["old"]:,} -> {m["new"]:,}'
        f"  (+{m['gained']['count']:,} become MQLs, -{m['lost']['count']:,} no longer)"
    )
    for sign, part in (("+", m["gained"]), ("-", m["lost"])):
        for item in part["examples"]:
            # None: the prospect does not exist under that rule set
            old_score, new_score = ("none" if x is None else x for x in item["score"])
            out.append(
                f"  {sign} {item['prospect']} (score {old_score} -> {new_score}):"
                f" {item.get('reason')}"
            )
        _more(out, part)
    sections = (
        (
            "Assignment",
            "assignment",
            _assignment_line,
        ),
        ("Grade", "grade", lambda i: f"{i['old'] or '-'} -> {i['new'] or '-'}"),
        (
            "Lists",
            "lists",
            lambda i: ", ".join([f"+{x}" for x in i["added"]] + [f"-{x}" for x in i["removed"]]),
        ),
        ("Prospect data", "data", _data_line),
        ("CRM work", "crm", _crm_line),
        ("Only under the old rules", "only_old", lambda i: "no such prospect under the new rules"),
        ("Only under the new rules", "only_new", lambda i: "created"),
    )
    for title, key, line in sections:
        sec = d[key]
        if not sec["count"]:
            continue
        changes = "changes" if sec["count"] == 1 else "change"
        out.append(f"\n{title}: {plural(sec['count'], 'prospect')} {changes}")
        for item in sec["examples"]:
            reason = f": {item['reason']}" if item.get("reason") else ""
            out.append(f"  ~ {item['prospect']}: {line(item)}{reason}")
        _more(out, sec)
    o = d["outbox"]
    out.append(
        f"\nOutbox: {o['old']:,} -> {plural(o['new'], 'message')}"
        f" (+{o['gained']['total']:,} gained, -{o['lost']['total']:,} lost)"
    )
    for sign, part in (("+", o["gained"]), ("-", o["lost"])):
        if part["by_kind"]:
            kinds = ", ".join(f"{k} {n:,}" for k, n in part["by_kind"].items())
            out.append(f"  {sign} by kind: {kinds}")
        for msg in part["messages"][:5]:
            body = {
                k: v
                for k, v in msg.items()
                if k not in ("count", "time", "reason", "prospect", "kind")
            }
            times = f" x{msg['count']}" if msg["count"] > 1 else ""
            out.append(
                f"  {sign} {msg['kind']}{times} for {msg['prospect']}"
                f" {orjson.dumps(body).decode()}:"
                f" {msg['reason']}, {msg['time']}"
            )
        if len(part["messages"]) > 5:
            out.append(
                f"    ... and {len(part['messages']) - 5:,} more (--format json lists them all)"
            )
    s = d["score"]
    a, b = s["old"], s["new"]
    out.append(
        f"\nScores: {s['changed']:,} changed ({s['up']:,} up, {s['down']:,} down,"
        f" mean change {s['mean_change']:+})"
    )
    out.append(f"  {'':8} {'before':>10} {'after':>10}")
    for key in ("mean", "median", "p90", "max"):
        out.append(f"  {key:8} {_num(a[key]):>10} {_num(b[key]):>10}")
    before = {x["range"]: x["prospects"] for x in a["buckets"]}
    after = {x["range"]: x["prospects"] for x in b["buckets"]}
    for label in [*before, *(k for k in after if k not in before)]:  # paired by range
        n_old, n_new = before.get(label, 0), after.get(label, 0)
        if n_old or n_new:
            out.append(f"  {label:8} {n_old:>10,} {n_new:>10,}")
    changed = [r for r in d["rules"] if r["before"] != r["after"]]
    acts = "acts" if len(changed) == 1 else "act"
    out.append(
        f"\nRules: {len(changed):,} of {len(d['rules']):,} {acts} a different number of times"
    )
    for r in changed[:15]:
        out.append(
            f"  {r['kind']} '{r['name']}' ({r['at']}): {r['before']:,} -> {r['after']:,}"
            f" ({r['after'] - r['before']:+,})"
        )
    if len(changed) > 15:
        out.append(f"  ... and {len(changed) - 15} more (--format json lists them all)")
    return "\n".join(out)


def _num(x: Any) -> str:
    return f"{x:,.1f}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x):,}"


def _more(out: list[str], sec: dict[str, Any]) -> None:
    extra = sec["count"] - len(sec["examples"])
    if extra > 0:
        out.append(f"    ... and {extra:,} more (--format json lists them all)")


def _data_line(i: dict[str, Any]) -> str:
    """`lead_source "Web" -> "Web consult", +tag vip`: the first three changes, then a count."""
    parts = []
    for c in i["changes"][:3]:
        what = c["what"].removeprefix("fields.")
        if what == "tags":
            added = sorted(set(c["new"]) - set(c["old"]))
            removed = sorted(set(c["old"]) - set(c["new"]))
            parts += [f"+tag {t}" for t in added] + [f"-tag {t}" for t in removed]
        else:
            old, new = (orjson.dumps(c[k]).decode() for k in ("old", "new"))
            parts.append(f"{what} {old} -> {new}")
    if len(i["changes"]) > 3:
        parts.append(f"{len(i['changes']) - 3} more")
    return ", ".join(parts)


def _crm_line(i: dict[str, Any]) -> str:
    """`+create_record {"as":"queue",...}`: each piece's kind and what it holds (two records
    created for different owners differ only there)."""

    def one(sign: str, w: dict[str, Any]) -> str:
        rest = {k: v for k, v in w.items() if k != "kind"}
        return f"{sign}{w.get('kind')}" + (f" {orjson.dumps(rest).decode()}" if rest else "")

    parts = [one("+", w) for w in i["added"]] + [one("-", w) for w in i["removed"]]
    if i["crm_status"][0] != i["crm_status"][1]:
        parts.append(f"status {i['crm_status'][0]} -> {i['crm_status'][1]}")
    return ", ".join(parts)
