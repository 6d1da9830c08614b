"""`mrules sync plan | apply | run | status | retry`: the CRM sync (docs/sync.md)."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, NoReturn

import click

from mrules.cli.common import (
    CRM_PATH,
    EXIT_DIAGNOSTICS,
    EXIT_OK,
    EXIT_REJECTS,
    EXIT_STORE,
    EXIT_USAGE,
    PATH,
    SYNC_STORE_PATH,
    Choice,
    NonEmptyPath,
    email_or_exit,
    fail,
    interrupt_says,
    output_folder_or_exit,
    quiet_option,
    reads_only,
    refuse_output_over_inputs,
    shown_arg,
    work_bar,
)
from mrules.cli.run_cmd import wait_options
from mrules.crm.errors import CrmCallError
from mrules.crm.model import parse_datetime
from mrules.diagnostics import plural
from mrules.events import prospect_key
from mrules.loader import printable_path
from mrules.sqlitefiles import UNREADABLE, full_disk_advice, unreadable_reason
from mrules.storeapi import MEMORY

__all__ = ["COMMANDS", "sync"]

EXIT_PENDING = 2
"""`sync plan`: changes are pending (0: nothing to do)."""
EXIT_STALE = EXIT_DIAGNOSTICS
"""`sync apply PLAN`: the plan is stale (or was made for another store)."""
EXIT_PARTLY = EXIT_REJECTS
"""`sync apply` and `sync run`: the cycle was done but for an object the integration user
may not read or write (Campaign), which a later cycle tries again."""


FAR_CYCLES = 100_000
"""`sync run`: more cycles due than this (about 2 years at one every 10 minutes) is said in
a warning first. Each cycle is run, idle or not: it reads the CRM (API calls counted in
`sync status` and against the day's limit) and records a row of its own, so none can be
skipped without changing what a user sees (docs/sync.md#a-cycle)."""

CYCLES_A_SECOND = 500
"""About the most cycles a second `sync run` makes (idle ones, a small org): the warning's
time is the least the cycles take."""


def _duration(seconds: float) -> str:
    """A duration in the largest unit that keeps it readable: `3.3 minutes`, `9.7 days`."""
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds / 60:,.1f} minutes"


def _warn_far(due: int, every_minutes: int, until: str) -> None:
    """One warning line when more than `FAR_CYCLES` cycles are due: how many, and the least
    time they take (an `--until` such as 9999-12-31 runs for days, printing nothing while
    its cycles are idle)."""
    if due <= FAR_CYCLES:
        return
    click.echo(
        f"mrules: warning: {due:,} cycles are due up to --until {until} (one every"
        f" {plural(every_minutes, 'minute')}), idle ones included: each is run (it reads the CRM),"
        f" at most about {CYCLES_A_SECOND} a second, so this takes at least"
        f" {_duration(due / CYCLES_A_SECOND)}; give a nearer --until (Ctrl-C stops after the"
        " cycle running, and the same command resumes at the next)",
        err=True,
    )


def _options(f):  # type: ignore[no-untyped-def]
    f = wait_options(f)  # as `run` and `segment`: the sync writes the store too
    f = click.option(
        "--crm",
        "crm_path",
        type=CRM_PATH.refusing_long(),
        metavar="local|salesforce|PATH",
        help="The CRM: `local` (the file beside the store, NAME.crm.db), a local"
        " CRM file, or `salesforce` (a real org; MRULES_SF_* variables, see"
        " docs/sync.md) [default: $MRULES_CRM, else local].",
    )(f)
    f = click.option(
        "--store",
        "store_path",
        type=SYNC_STORE_PATH,
        default="mrules.db",
        show_default=True,
        help="The state store; the sync keeps its own file beside it (NAME.sync.db).",
    )(f)
    return click.option(
        "--rules",
        "rules",
        multiple=True,
        required=True,
        type=PATH.refusing_long(),
        metavar="PATH",
        help="The rule set (files or folders; repeat); its sync block drives the sync.",
    )(f)


def _emit(text: str, chunk: int = 1 << 16) -> None:
    """Print a long text in pieces, each flushed: when the reader of a pipe goes away
    (`| head -1`), the next piece fails with a broken pipe, which ends the command the
    documented way (docs/exit-codes.md), where one big write can end half-done unseen."""
    for i in range(0, len(text), chunk):
        click.echo(text[i : i + chunk], nl=False)
    click.echo()


class _Pieces:
    """A text stream for `dump_json` that prints as `_emit` does, a piece at a time."""

    def __init__(self, chunk: int = 1 << 16) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.chunk = chunk

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            click.echo("".join(self.parts), nl=False)
        self.parts, self.size = [], 0


def _emit_plan(pj: dict[str, Any]) -> None:
    """A plan as `json.dumps(pj, indent=1, sort_keys=True)` prints it, its ops read from
    disk a piece at a time (docs/sync.md#memory)."""
    from mrules.sync.spool import dump_json

    out = _Pieces()
    dump_json(pj, out)
    out.flush()
    click.echo()


# The latest time a cycle may have: a cycle's time is written as a date, and Python's
# last is in the year 9999 (a cycle late in that year left the next plan no date).
_LATEST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()
_LATEST_TEXT = "9999-12-31T23:59:59Z"


def _read_only(e: BaseException, files: dict[str, Any]) -> str | None:
    """SQLite's "attempt to write a readonly database" in words: which file (the sync
    file, or the local CRM file) cannot be written, and what to do; None for any other
    error, or when neither is plainly read-only (the caller says it as before)."""
    from mrules.sync.db import read_only_file

    for what, path in files.items():
        if path is None or str(path) == ":memory:":
            continue
        if read_only_file(e, Path(path)):
            return (
                f"{printable_path(str(path))}: cannot write the {what}: it or its folder is"
                " read-only; make them writable, then run the same command again"
            )
    return None


def _time(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_datetime(value).timestamp()
    except ValueError:  # a time beyond 9999-12-31T23:59:59Z in UTC too
        fail(f"{option} '{shown_arg(value)}': not a time with a zone, e.g. 2026-11-02T09:00:00Z")


@contextlib.contextmanager
def _session(
    rules: tuple[str, ...],
    store_path: str,
    crm_path: str | None,
    wait: bool,
    wait_timeout: float | None = None,
    *,
    need_rules: bool = True,
    read_only: bool = False,
    check_store: Callable[[Any], None] | None = None,
) -> Iterator[tuple[Any, Any, Any, Any, Any]]:
    """Rules, config, store (writer lock held), CRM, sync file; errors end in one line.

    `read_only` (a plan): no sync file is created when there is none yet (an empty one
    in memory stands for it). `check_store`: called with the store once it is open,
    before the CRM or the sync file is (a refusal there opens, and writes, neither)."""
    from mrules.atomic import OutputError
    from mrules.cli.run_cmd import open_store, rules_or_exit
    from mrules.crm.connect import CrmConnectError, open_crm
    from mrules.outputs import diagnostics_beside
    from mrules.sync import SyncConfig, SyncConfigError, SyncDb, default_sync_path
    from mrules.sync.db import SyncDbError, SyncDbPathError

    _refuse_memory(store_path)
    compiled = rules_or_exit(rules) if need_rules else None
    try:
        config = SyncConfig.from_rules(compiled) if compiled is not None else None
    except SyncConfigError as e:
        fail(str(e))
    if not Path(store_path).exists():
        fail(
            f"{store_path}: no such store (run the rules first: mrules run RULES EVENTS"
            f" --store {store_path})"
        )
    store = open_store(store_path, wait=wait, timeout=wait_timeout)
    try:
        if check_store is not None:
            check_store(store)
        try:
            crm = open_crm(crm_path, store_path)
        except CrmConnectError as e:
            fail(str(e), e.exit_code)
        sync_path = default_sync_path(store_path)
        try:
            db = SyncDb.open(":memory:" if read_only and not sync_path.exists() else sync_path)
        except SyncDbError as e:
            crm.close()
            fail(str(e), EXIT_USAGE if isinstance(e, SyncDbPathError) else EXIT_STORE)
        try:
            # the reports of the prospects the sync changes drop with their old state
            diagnostics = None if read_only else diagnostics_beside(store)
            yield compiled, config, store, crm, db
            if diagnostics is not None:
                diagnostics.refresh()
        except OutputError as e:
            fail(f"{e}; the store keeps what the sync did", EXIT_STORE)
        except CrmCallError as e:
            fail(f"the CRM refused the call: {e}", EXIT_STORE)
        except UNREADABLE as e:
            cannot_write = _read_only(
                e, {"sync file": sync_path, "CRM file": getattr(crm, "path", None)}
            )
            fail(
                cannot_write
                or f"the sync or CRM file failed: {unreadable_reason(e)}{full_disk_advice(e)}",
                EXIT_STORE,
            )
        finally:
            db.close()
            crm.close()
    finally:
        store.close()


def _store_or_sync_file(store_path: str, sync_path: Path) -> None:
    """`sync status` and `retry` read the sync file beside the store: when neither is
    there, the store's name is wrong (a typo said `no sync yet`), exit 2."""
    if not os.path.lexists(sync_path) and not os.path.lexists(store_path):
        fail(
            f"{printable_path(store_path)}: no such store (nor a sync file"
            f" {printable_path(str(sync_path))} beside it): give the store the sync ran on"
        )


def _refuse_memory(store_path: str) -> None:
    """`--store :memory:`: no sync file beside it (`status` and `retry` named
    `:memory:.sync.db`, a file in the working folder)."""
    if store_path == MEMORY:
        fail("the sync needs a store file: --store :memory: keeps nothing between commands")


@click.group()
def sync() -> None:
    """The CRM sync: plan, apply, run cycles, status, retry, send (docs/sync.md).

    \b
    Example:
      mrules sync plan --rules examples/getcloudy/rules --store getcloudy.db
      mrules sync apply --rules examples/getcloudy/rules --store getcloudy.db
      mrules sync status --store getcloudy.db
    """


# -- plan -----------------------------------------------------------------------------------------
@sync.command("plan")
@_options
@quiet_option
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Plan the cycle at this time, not before the run's clock or the last cycle"
    " [default: the next cycle due, or the run's clock].",
)
@click.option(
    "--format",
    "fmt",
    type=Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line a record; json: the plan as one JSON object (docs/sync.md).",
)
@click.option(
    "--out",
    "out",
    metavar="FILE",
    type=NonEmptyPath(dir_okay=False).refusing_long(),
    help="Also save the plan (JSON) for `mrules sync apply FILE`.",
)
@click.option("--retry", is_flag=True, help="Plan held errors again (as `sync retry` does).")
def plan_cmd(
    rules: tuple[str, ...],
    store_path: str,
    crm_path: str | None,
    wait: bool,
    wait_timeout: float | None,
    at: str | None,
    fmt: str,
    out: str | None,
    retry: bool,
) -> None:
    """Show what the next cycle would do, record by record; exit 2 when changes are pending.

    Exit status (docs/exit-codes.md): 0 nothing to do; 2 changes pending, or bad
    input (an `mrules: error:` line); 4 the sync or CRM file failed; 5 a run
    holds the store.

    \b
    Example:
      mrules sync plan --rules examples/getcloudy/rules --store getcloudy.db --out plan.json
    """
    reads_only()
    from mrules.sync.plan import make_plan

    when = _time(at, "--at")
    if out is not None:  # before any work: `--out ''` printed the plan and saved nothing
        _plan_out_or_exit(out, rules, store_path, crm_path)
    with _session(rules, store_path, crm_path, wait, wait_timeout, read_only=True) as (
        _c,
        config,
        store,
        crm,
        db,
    ):
        if out is not None:  # the events the store read: `--out events.jsonl` replaced them
            _not_over_streams(out, store)
        if when is None:
            when = _next_due(db, store, config)
        else:
            _not_before_last_cycle(db, when, f"--at {at}")
            _not_before_clock(store, when, f"--at {at}")
        # A plan writes nothing: not the local CRM's clock (apply moves it), no sync file.
        with work_bar("sync plan: reading the store and the CRM"):  # a terminal's spinner
            plan = make_plan(store, crm, db, config, when, retry=retry, move_clock=False)
            pj = plan.as_json()
    if out is not None:
        import io

        from mrules.atomic import atomic_writer
        from mrules.sync.spool import dump_json

        try:  # written a piece at a time, in place of the file only once whole
            with atomic_writer(Path(out)) as raw:
                fh = io.TextIOWrapper(raw, encoding="utf-8")
                dump_json(pj, fh)
                fh.write("\n")
                fh.flush()
                fh.detach()
        except OSError as e:
            # Shown as every message shows a path: a byte that is not UTF-8 as \xNN.
            fail(
                f"{printable_path(out)}: cannot write the plan:"
                f" {printable_path(str(e.strerror or e))}",
                EXIT_STORE,
            )
    if fmt == "json":
        _emit_plan(pj)
    else:
        _render_plan(pj)
    sys.exit(EXIT_PENDING if plan.pending() else EXIT_OK)


def _plan_out_or_exit(
    out: str, rules: tuple[str, ...], store_path: str, crm_path: str | None
) -> None:
    """`sync plan --out FILE`: a file name, in a folder that exists, that is none of the
    command's inputs (the plan written over the store would destroy it); else exit 2."""
    from mrules.crm.connect import crm_kind
    from mrules.crm.emulator import default_crm_path
    from mrules.sync import default_sync_path

    output_folder_or_exit("--out", out)
    kind = crm_kind(crm_path)
    crm_file = default_crm_path(store_path) if kind == "local" else kind
    files: list[tuple[str, str | Path]] = [
        ("the store", store_path),
        ("the sync file", default_sync_path(store_path)),
    ]
    if kind != "salesforce":
        files.append(("the CRM file", crm_file))
    # With their SQLite files beside them: a plan saved as `g.db-wal` was dropped by SQLite
    # at the store's next opening (and one under an open store's feet risks its commits).
    inputs = [(what, f"{path}{suffix}") for what, path in files for suffix in ("", "-wal", "-shm")]
    inputs.append(("the store", f"{store_path}.lock"))
    inputs += [("in the rule set", r) for r in rules]
    refuse_output_over_inputs("--out", out, inputs)


def _not_over_streams(out: str, store: Any) -> None:
    """Exit 2 when `--out` is an events file the store has read (`mrules run RULES FILE`:
    each stream's path is in the store's meta): the plan written over it would destroy
    the events, and the store's resume position in them with it."""
    from mrules.batch import ANCHOR_KEY

    streams = [
        ("an events file the store has read", key.removeprefix(ANCHOR_KEY))
        for key in store.meta()
        if key.startswith(ANCHOR_KEY) and key != ANCHOR_KEY + "-"
    ]
    refuse_output_over_inputs("--out", out, streams)


def _not_before_last_cycle(db: Any, at: float, what: str) -> None:
    """Exit 2 when a cycle at `at` would not come after the last one applied: the sync's
    clock never goes back (applied, `last cycle` moved from 2026 to 1900), and a cycle at
    the last one's very time would replace that cycle's record (one a time). A plan's
    time is in whole seconds (`iso`): `at` is compared as the plan will carry it."""
    from mrules.sync.plan import to_epoch

    last = db.last_cycle
    if last is None:
        return
    at = to_epoch(_iso(at))
    if at < last:
        fail(
            f"{what} is before the last cycle, at {_iso(last)}: a cycle never goes back in"
            " time; plan the next one (`mrules sync plan` without --at) or a later time"
        )
    if at == last:
        fail(
            f"{what} is the time of the last cycle, {_iso(last)}: that cycle ran already"
            " (one cycle a time; applied, this plan would replace its record); plan the"
            " next one (`mrules sync plan` without --at) or a later time"
        )


def _not_before_clock(store: Any, at: float, what: str) -> None:
    """Exit 2 when a cycle at `at` would come before the run's clock: the store already
    holds the events up to the clock, so the plan would send later changes stamped with an
    earlier time (and a "most recent" merge would weigh them as older than they are).
    `sync run` never cycles before the clock either."""
    from mrules.sync.plan import to_epoch

    clock = store.clock()
    if clock is not None and to_epoch(_iso(at)) < to_epoch(_iso(clock)):
        fail(
            f"{what} is before the run's clock, {_iso(clock)}: the store holds events up"
            " to then, and a cycle at an earlier time would send their changes stamped with"
            " it; plan at or after the clock (`mrules sync plan` without --at plans the next"
            " cycle due)"
        )


def _next_due(db: Any, store: Any, config: Any) -> float:
    from mrules.sync.cycle import next_after

    last = db.last_cycle
    clock = store.clock()
    if last is not None:
        when = float(next_after(last, config.every_seconds, clock))
    elif clock is not None:
        when = float(clock)
    else:
        when = dt.datetime.now(dt.UTC).timestamp()
    if when > _LATEST:
        fail(
            f"the next sync cycle would be after {_LATEST_TEXT}, the latest time a cycle"
            " may have: no cycle is due after the last one"
        )
    return when


def _value(v: Any) -> str:
    return "(blank)" if v is None or v == "" else json.dumps(v, ensure_ascii=False)


def _named(name: Any) -> str:
    """A campaign, task subject or member status as the CLI quotes a name (`'Webinar'`, as
    `sync status` and the plan's skips and expected errors do); `(blank)` for none."""
    return "(blank)" if name is None or name == "" else f"'{shown_arg(str(name))}'"


def _render_plan(pj: dict[str, Any]) -> None:
    s = pj["summary"]
    click.echo(
        f"sync plan {pj['id']} at {pj['at']} (batch {pj['config']['batch']},"
        f" every {pj['config']['every_minutes']} minutes)"
    )
    for i in pj["inbound"]:
        click.echo(
            f"  < {i['op']:<13} {i['prospect']}  {i.get('object', '')} {i['crm_id']}  ({i['why']})"
        )
    for o in pj["ops"]:
        wait = o.get("batch", 0)
        mark = {
            "create": "+",
            "link": "=",
            "update": "~",
            "pull": "<",
            "base": " ",
            "skip": "-",
            "hold": "!",
            "wait": "…",
        }.get(o["op"], "+")
        when = f"  [batch {wait + 1}]" if wait else ""
        target = o.get("crm_id") or o.get("object", "")
        target += _held_write(o)
        click.echo(f"  {mark} {o['op']:<13} {o['prospect']}  {target}{when}  ({o['why']})")
        for f in o.get("fields", ()):
            arrow = "->" if f["winner"] == "ours" else "<-"
            click.echo(
                f"      {f['crm_field']}: ours {_value(f['ours'])} {arrow} CRM"
                f" {_value(f['theirs'])}: {f['winner']} wins ({f['why']})"
            )
        for e in o.get("expected_errors", ()):
            click.echo(f"      expected error {e['code']} on {e['field']}: {e['message']}")
        for e in o.get("held", ()):
            when = (
                "looked at again each cycle"
                if e["field"] == "*link"  # mrules.sync.plan.LINK_ERROR_FIELD: a link not made
                else ""
                if "sync retry`" in e["message"]  # plan.permission_hint's message says when
                else "retried when the prospect or the record changes, or `sync retry`"
            )
            said = f" ({when})" if when else ""
            click.echo(f"      held {e['field']}: {e['code']} {e['message']}{said}")
        what = _side_work(o)
        if what:
            click.echo(f"      {what}")
        if o.get("note"):
            click.echo(f"      note: {o['note']}")
    for n in pj["notes"]:
        click.echo(f"  note: {n}")
    for n in pj.get("no_access") or ():
        click.echo(f"  not done: {n['said']}")
    kept = {
        (one, many): len(pj.get(key) or ())
        for one, many, key in (
            ("opportunity", "opportunities", "opportunities"),
            ("contact role", "contact roles", "roles"),
            ("campaign", "campaigns", "campaigns"),
            ("campaign member", "campaign members", "campaign_members"),
            ("account", "accounts", "accounts"),
        )
    }
    kept_text = ", ".join(plural(n, one, many) for (one, many), n in kept.items() if n)
    if s["records"] or s["inbound_facts"]:
        riders = s.get("with_records", 0)
        # `records` counts every write that takes a place in a batch: the campaign members
        # and tasks of a record linked already among them; those that ride with a record
        # created this cycle (`with_records`) take none.
        by_op = s.get("by_op") or {}
        side = max(by_op.get("campaign_member", 0) + by_op.get("task", 0) - riders, 0)
        members = "campaign member or task", "campaign members or tasks"
        writes = [plural(s["records"] - side, "record")] if s["records"] - side or not side else []
        writes += [plural(side, *members)] if side else []
        line = (
            f"{' and '.join(writes)} to write: {s['this_cycle']:,} this cycle,"
            f" {s['waiting']:,} waiting"
            + (f" (and {plural(riders, *members)} with the records created)" if riders else "")
            + f"; {plural(s['inbound_facts'], 'CRM fact')} for the engine"
        )
        if s["waiting"]:
            line += (
                f"; backlog clear after {plural(s['cycles_to_clear'], 'cycle')}, at {s['clear_at']}"
            )
        click.echo(line)
    elif _pending(pj):
        # Nothing to write and no fact for the engine, yet applying changes the sync file.
        click.echo(
            "nothing to write; "
            + (
                f"CRM records read for reports: {kept_text}"
                if kept_text
                else "cursors and base snapshots move"
            )
        )
    else:
        click.echo("nothing to do")


def _pending(pj: dict[str, Any]) -> bool:
    """`Plan.pending()` of a plan as JSON."""
    return bool(
        [o for o in pj["ops"] if o["op"] not in ("wait", "base")]
        or any(
            pj.get(k)
            for k in (
                "inbound",
                "opportunities",
                "roles",
                "campaigns",
                "campaign_members",
                "accounts",
                "sent",
            )
        )
    )


def _held_write(o: dict[str, Any]) -> str:
    """Which membership or task a `hold` op holds, for a prospect's two held of a kind are
    two holds: `  campaign 'C'` (the name the rule gave), `  task 'Call'`; "" otherwise."""
    w = o.get("payload")
    if o["op"] != "hold" or not isinstance(w, dict):
        return ""
    if o.get("work") == ["campaign_member"]:
        return f"  campaign {_named(w.get('campaign'))}"
    if o.get("work") == ["task"]:
        return f"  task {_named(w.get('subject') or 'Task')}"
    return ""


def _side_work(o: dict[str, Any]) -> str:
    """What a campaign member or task op writes, in words."""
    w = o.get("payload") or {}
    if o["op"] == "campaign_member":
        status = f", status {_named(w['status'])}" if w.get("status") else ""
        return f"campaign {_named(w.get('campaign'))}{status}"
    if o["op"] == "task":
        parts = [_named(w.get("subject") or "Task")]
        if w.get("due_days") is not None:
            parts.append(f"due in {plural(w['due_days'], 'day')}")
        if w.get("priority"):
            parts.append(f"priority {w['priority']}")
        return "task " + ", ".join(parts)
    return ""


# -- apply ----------------------------------------------------------------------------------------
@sync.command("apply")
@click.argument(
    "plan_file", required=False, type=NonEmptyPath(dir_okay=False).refusing_long(), metavar="[PLAN]"
)
@_options
@quiet_option
@click.option(
    "--format",
    "fmt",
    type=Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: the cycle's summary and errors; json: the same as one JSON object.",
)
def apply_cmd(
    plan_file: str | None,
    rules: tuple[str, ...],
    store_path: str,
    crm_path: str | None,
    wait: bool,
    wait_timeout: float | None,
    fmt: str,
) -> None:
    """Perform a saved plan (refused when stale), or plan and apply the cycle due now.

    A saved plan is performed with the sync settings it was made with; when the
    sync block of --rules says otherwise, a warning names what differs.

    Exit status (docs/exit-codes.md): 0 applied; 1 the plan is stale (another
    cycle ran since it was made), was edited, or was made for another store; 2
    bad input (a plan that is not one, a time at or before the last cycle); 3
    partly done: the integration user may not read or write an object (Campaign),
    the rest was applied and a later cycle tries that part again, or a write was
    refused for its permissions (INSUFFICIENT_ACCESS_OR_READONLY) and is held; 4
    the sync or CRM file failed; 5 a run holds the store.

    \b
    Example:
      mrules sync apply plan.json --rules examples/getcloudy/rules --store getcloudy.db
    """
    from mrules.sync.apply import StalePlan, apply_plan, deliver, stale_reason
    from mrules.sync.cycle import run_cycle
    from mrules.sync.plan import PLAN_FORMAT, to_epoch

    saved = _read_plan(plan_file, PLAN_FORMAT) if plan_file else None
    if plan_file is not None:  # the same command again is refused as stale once it wrote
        interrupt_says(
            "interrupted; what was committed is kept; if the apply had written to the CRM,"
            " the plan is stale now: make a new one (`mrules sync plan --out FILE`), or run"
            " `mrules sync apply` without it: the next cycle finds those writes again"
        )

    def same_store(store: Any) -> None:
        if saved is not None and plan_file is not None:
            _same_store_or_exit(saved, plan_file, store, store_path)

    # On a terminal, a spinner and the time taken (a first link of 200,000 prospects takes
    # minutes: the plan, the CRM's writes, the facts back through the engine).
    session = _session(rules, store_path, crm_path, wait, wait_timeout, check_store=same_store)
    bar = work_bar("sync apply: planning, writing to the CRM, the engine")
    with session as (compiled, config, store, crm, db), bar:
        if saved is None:  # the cycle due; a transient CRM failure while planning ends it
            result = run_cycle(store, crm, db, config, compiled, _next_due(db, store, config))
            saved, report = result.plan_json, result.report
        else:
            if not db.applied(saved["id"]):  # applied before: "already applied", exit 0
                at = parse_datetime(str(saved["at"])).timestamp()
                if db.last_cycle is not None and to_epoch(_iso(at)) == db.last_cycle:
                    # The plan of a cycle that ran since it was made is stale (exit 1);
                    # one that is not (the CRM failed that cycle's own plan, or made by
                    # hand) is refused below: applied, it replaced that cycle's record.
                    why = stale_reason(saved, store, crm, db)
                    if why is not None:
                        _stale(why)
                _not_before_last_cycle(db, at, f"the plan {plan_file} (at {saved['at']})")
                if saved.get("store_seq") == store.max_seq():  # else stale, said below
                    _not_before_clock(store, at, f"the plan {plan_file} (at {saved['at']})")
            deliver(db, store, compiled)
            try:
                report = apply_plan(saved, store, crm, db, check_stale=True)
            except StalePlan as e:
                _stale(str(e))
            report.delivered = deliver(db, store, compiled)
            if not report.already:
                _warn_other_settings(saved, config.as_json(), plan_file or "")
    # What the plan noted (a mapped field the CRM lacks, owners it cannot read) is said
    # here too: applied without `sync plan`, it is the only word of it.
    notes = [str(n) for n in saved.get("notes") or ()]
    if fmt == "json":
        _emit(json.dumps({**report.as_json(), "notes": notes}, indent=1, sort_keys=True))
    elif report.already:
        click.echo(f"plan {report.plan_id} was already applied: nothing to do")
    else:
        _render_report(report.as_json(), saved["at"])
        for n in notes:
            click.echo(f"  note: {n}")
    if (report.no_access or report.held_for_permission) and not report.already:
        # Partly done: the objects the integration user may not read or write wait, and
        # the writes it may not make are held; the rest was done (docs/exit-codes.md).
        sys.exit(int(EXIT_PARTLY))


def _same_store_or_exit(saved: dict[str, Any], plan_file: str, store: Any, given: str) -> None:
    """Exit 1 (as a stale plan, nothing written) when the saved plan was made from another
    store than `store`: its noted store id is not the store's. A copy of the store keeps
    its id: it is the same store. A plan from before store ids (none noted) passes, and is
    checked as before (stale or not)."""
    from mrules.sync.db import store_identity

    theirs = saved.get("store_id")
    mine = store_identity(store)
    if theirs is None or mine is None or theirs == mine:
        return
    made_from = str(saved.get("store") or "")
    here = printable_path(given)
    if made_from and os.path.abspath(made_from) != os.path.abspath(given):
        where = f"another store ({printable_path(made_from)}), not {here}"
    else:
        where = f"another store at {here}, since made again"
    fail(
        f"{printable_path(plan_file)}: the plan was made for {where}; nothing was"
        f" written: make a new plan against this store with `mrules sync plan --store"
        f" {here} --out FILE`",
        EXIT_STALE,
    )


# The sync block's statements, as a plan's `config` keys name them.
_SETTING_WORDS: Final = {
    "objects": "objects",
    "match_by": "match by",
    "prefer": "prefer ... over ...",
    "create_on_assignment": "create ... on assignment",
    "auto_create": "auto create prospects",
    "every_minutes": "every N minutes",
    "batch": "batch",
    "blank_crm_values": "blank crm values",
}


def settings_differ(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """The sync settings (a plan's `config`, as `SyncConfig.as_json()`) in which `ours`
    differs from `theirs`, in the sync block's words (`batch`, `map phone`); a setting a
    plan does not note (saved by an older mrules) is not compared."""
    out = [
        words
        for key, words in _SETTING_WORDS.items()
        if key in theirs and theirs[key] != ours.get(key)
    ]
    if "mappings" in theirs:

        def maps(c: dict[str, Any]) -> dict[str, Any]:
            return {
                str(m.get("field")): (m.get("crm_field"), m.get("prefer"))
                for m in c.get("mappings") or ()
                if isinstance(m, dict)
            }

        a, b = maps(theirs), maps(ours)
        out += [f"map {f}" for f in sorted(a.keys() | b.keys()) if a.get(f) != b.get(f)]
    return out


def _warn_other_settings(saved: dict[str, Any], ours: dict[str, Any], plan_file: str) -> None:
    """A saved plan is performed with the sync settings it was made with (docs/sync.md
    #plan-and-apply): one warning line when the rules given now say otherwise."""
    theirs = saved.get("config")
    differ = settings_differ(theirs, ours) if isinstance(theirs, dict) else []
    if differ:
        click.echo(
            f"mrules: warning: the sync settings of --rules differ from the plan's"
            f" ({', '.join(differ)}): the plan's are used, as {printable_path(plan_file)}"
            " saved them; make a new plan with `mrules sync plan` to use the rules'",
            err=True,
        )


def _stale(why: str) -> NoReturn:
    fail(f"the plan is stale: {why}; make a new one with `mrules sync plan`", EXIT_STALE)


_SQLITE_HEADER: Final = b"SQLite format 3\x00"


def _database_kind(path: str) -> str:
    """What a SQLite file given as a plan is likely to be, by its name, and what to give."""
    plan = "a plan is the JSON file `mrules sync plan --out FILE` saves"
    if path.endswith(".sync.db"):
        return f"a sync file (the sync keeps it beside the store); {plan}"
    if path.endswith(".crm.db"):
        return f"a CRM file (give it as --crm); {plan}"
    return f"a SQLite database (a store? give it as --store); {plan}"


def _read_plan(path: str, fmt: str) -> dict[str, Any]:
    from mrules.sync.spool import Spool, load_spooled

    # Read as it goes: the ops and facts (one a record) go to a temporary file, not memory.
    try:
        with open(path, "rb") as f:
            if f.peek(16)[:16] == _SQLITE_HEADER:  # `sync apply STORE`: --store forgotten
                fail(f"{printable_path(path)}: not a sync plan but {_database_kind(path)}")
            data = load_spooled(f)
    except OSError as e:
        if path == "-" and isinstance(e, FileNotFoundError):  # "No such file or directory"
            fail("-: sync apply reads a plan file, not standard input (a file named - is ./-)")
        fail(f"{printable_path(path)}: cannot read the plan: {e.strerror or e}")
    except ValueError as e:
        fail(f"{printable_path(path)}: not a sync plan (not JSON: {e})")
    if data.get("format") != fmt or "id" not in data:
        fail(
            f"{printable_path(path)}: not a sync plan (make one with `mrules sync plan --out FILE`)"
        )
    try:
        parse_datetime(str(data["at"]))
        for key in ("ops", "inbound", "cursors_to"):
            if not isinstance(data.get(key), Spool | list | dict):
                raise ValueError(key)
    except (ValueError, KeyError):
        fail(f"{printable_path(path)}: not a sync plan (damaged)")
    from mrules.sync.plan import plan_id

    if plan_id({k: v for k, v in data.items() if k != "id"}) != data["id"]:
        fail(
            f"{path}: the plan was changed after it was made (its id does not match);"
            " make a new one with `mrules sync plan --out FILE`",
            EXIT_STALE,
        )
    from mrules.sync.plancheck import plan_problem

    problem = plan_problem(data)  # before any write: not halfway through the apply
    if problem is not None:
        fail(
            f"{printable_path(path)}: not a sync plan mrules can apply ({problem}); make a"
            " new one with `mrules sync plan --out FILE`"
        )
    return data


def _render_report(r: dict[str, Any], at: str) -> None:
    click.echo(
        f"sync at {at}: {r['created']:,} created, {r['linked']:,} linked, {r['updated']:,}"
        f" updated, {plural(r['campaign_members'], 'campaign member')},"
        f" {plural(r['tasks'], 'task')}, {plural(r['facts_for_engine'], 'CRM fact')} to the"
        f" engine, {plural(len(r['errors']), 'error')}, {plural(r['api_calls'], 'API call')}"
        + (f", {r['waiting']:,} waiting" if r.get("waiting") else "")
        + (
            f", {r['held_duplicate_links']:,} held (DUPLICATE_LINK: the CRM record their email"
            " finds is another prospect's)"
            if r.get("held_duplicate_links")
            else ""
        )
    )
    for e in r["errors"]:
        click.echo(
            f"  error {e['code']} {e['prospect']} {e['object']} {e['field']}: {e['message']}"
        )
    if r["transient_failure"]:
        click.echo(f"  the CRM failed for now ({r['transient_failure']}): retried later")
    for n in r.get("no_access") or ():
        click.echo(f"  not done: {n['said']}")
    if r.get("held_for_permission"):
        click.echo(f"  held: {_held_for_permission(r['held_for_permission'])}")


def _held_for_permission(n: int) -> str:
    """What `sync apply` and `sync run` say of the writes held for the integration user's
    permissions (exit 3, partly done)."""
    return (
        f"{plural(n, 'write')} refused for the integration user's permissions"
        " (INSUFFICIENT_ACCESS_OR_READONLY: each error says what to give it); once given, run"
        " `mrules sync retry`"
    )


# -- run ------------------------------------------------------------------------------------------
@sync.command("run")
@_options
@click.option(
    "--until", "until", required=True, metavar="TIME", help="Run every cycle due up to this time."
)
@quiet_option
@click.option(
    "--changes",
    "changes_path",
    metavar="FILE",
    type=NonEmptyPath(dir_okay=False).refusing_long(),
    help="Timed CRM-side changes (JSONL) applied on the clock before each cycle.",
)
def run_cmd(
    rules: tuple[str, ...],
    store_path: str,
    crm_path: str | None,
    wait: bool,
    wait_timeout: float | None,
    until: str,
    changes_path: str | None,
) -> None:
    """Run every sync cycle due up to a time (the backlog drains by the declared batch).

    Exit status (docs/exit-codes.md): 0 done (changes the CRM refuses are
    printed, not retried); 2 bad input; 3 partly done: the integration user may
    not read or write an object (Campaign), or a write was refused for its
    permissions and is held, the rest was done; 4 the sync or CRM file failed; 5
    a run holds the store; 130 interrupted: the same command resumes at the next
    cycle.

    \b
    Example:
      mrules sync run --rules examples/getcloudy/rules --store getcloudy.db \\
        --changes examples/getcloudy/crm-changes.jsonl --until 2026-12-21T00:00:00Z
    """
    from mrules.sync.cycle import count_due, run_until

    end = _time(until, "--until")
    assert end is not None
    changes = _read_changes(changes_path) if changes_path else None
    with _session(rules, store_path, crm_path, wait, wait_timeout) as (
        compiled,
        config,
        store,
        crm,
        db,
    ):
        apply_changes = None
        if changes_path:
            if not hasattr(crm, "set_clock"):
                fail(
                    "--changes applies timed changes to the local CRM; a real org changes"
                    " on its own"
                )
            apply_changes = _changes(crm, changes, changes_path)

        # Consecutive cycles that did nothing, or whose plan the CRM failed for now (the
        # API limit reached: until its day ends), shown as one line.
        # Each kept as [first, last, count]: a far --until is millions of idle cycles.
        idle: list[Any] = []
        failed: list[Any] = []
        # Cycles that wrote nothing while prospects' work is held as another prospect's
        # CRM record (DUPLICATE_LINK): not idle, and nothing a line a cycle would help.
        holding: list[Any] = []
        held: list[int] = [0]
        why: list[str] = []
        # Cycles that wrote nothing but did not get their work done either: a read (or
        # write) the integration user may not make (`not done:`). Not idle: exit 3.
        partial: list[Any] = []
        left_out: list[str] = []  # the objects those cycles left out

        def note(times: list[Any], at: str) -> None:
            if times:
                times[1:] = [at, times[2] + 1]
            else:
                times[:] = [at, at, 1]

        def flush() -> None:
            for times, what in (
                (idle, lambda n: f"{plural(n, 'idle cycle')}: nothing to do"),
                (
                    failed,
                    lambda n: (
                        f"{plural(n, 'cycle')} not run: the CRM failed for now"
                        f" ({why[0] if why else ''}): retried later"
                    ),
                ),
                (
                    holding,
                    lambda n: (
                        f"{plural(n, 'cycle')} wrote nothing: {plural(held[0], 'prospect')}"
                        " held, the CRM record their email finds being another prospect's"
                        " (DUPLICATE_LINK: `mrules sync status`)"
                    ),
                ),
                (
                    partial,
                    lambda n: (
                        f"{plural(n, 'cycle')} partly done: nothing else to do, but"
                        f" {', '.join(left_out)} not done, the integration user lacking the"
                        " access (`not done:`); each cycle tries again"
                    ),
                ),
            ):
                if times:
                    first, last, n = times
                    span = first if n == 1 else f"{first} to {last}"
                    click.echo(f"{span}  {what(n)}")
                    times.clear()
            why.clear()

        # The plans' notes (a mapped field the CRM lacks...), each once a command on
        # standard error: every cycle's plan notes them again.
        noted: set[str] = set()
        partly: list[str] = []  # an object the integration user may not read or write
        held_for_permission = [0]  # the writes refused for its permissions, held

        def show(result: Any) -> None:
            for n in result.plan_json.get("notes") or ():
                if n not in noted:
                    noted.add(n)
                    click.echo(f"note: {n}", err=True)
            r = result.report.as_json()
            for refused in r.get("no_access") or ():
                said = str(refused.get("said"))
                if said not in noted:
                    noted.add(said)
                    partly.append(said)
                    click.echo(f"not done: {said}", err=True)
            if result.plan is None:  # the plan failed for now: nothing was done
                if idle or holding or partial:
                    flush()
                note(failed, result.plan_json["at"])
                why[:] = why or [r["transient_failure"]]
                return
            if failed:
                flush()
            held_for_permission[0] += r.get("held_for_permission", 0)
            counts = (
                r["created"],
                r["linked"],
                r["updated"],
                r["campaign_members"],
                r["tasks"],
                r["facts_for_engine"],
                len(r["errors"]),
                r["waiting"],
            )
            if not any(counts) and not r["transient_failure"]:
                n_held = r.get("held_duplicate_links", 0)
                objects = list(dict.fromkeys(str(n["object"]) for n in r.get("no_access") or ()))
                group = partial if objects else holding if n_held else idle
                if (
                    any(times for times in (idle, holding, partial) if times is not group)
                    or (group is holding and n_held != held[0] and holding)
                    or (group is partial and objects != left_out and partial)
                ):
                    flush()
                held[0] = n_held
                left_out[:] = objects
                note(group, result.plan_json["at"])
                return
            flush()
            click.echo(
                f"{result.plan_json['at']}  created {r['created']:>5}  linked"
                f" {r['linked']:>4}  updated {r['updated']:>5}  members"
                f" {r['campaign_members']:>4}  tasks {r['tasks']:>4}  facts"
                f" {r['facts_for_engine']:>4}  errors {len(r['errors']):>3}  waiting"
                f" {r['waiting']:>5}"
            )
            if r["transient_failure"]:
                click.echo(f"  the CRM failed for now ({r['transient_failure']}): retried later")

        due = count_due(db, store, config, end)
        _warn_far(due, config.every_minutes, _iso(end))
        try:
            with _cycle_bar(due) as advance:

                def shown(result: Any) -> None:
                    show(result)
                    advance(result.plan_json["at"])

                ran = run_until(
                    store, crm, db, config, compiled, end, changes=apply_changes, on_cycle=shown
                )
        except BaseException as e:
            # Interrupted (Ctrl-C, SIGTERM), or a cycle failed: the cycles done before are
            # committed, and their lines are printed as an uninterrupted run prints them
            # (the idle ones were held back to be shown as one line). Not after a broken
            # pipe: there is no one to print them to.
            if not (isinstance(e, OSError) and e.errno == errno.EPIPE):
                with contextlib.suppress(OSError, KeyboardInterrupt):
                    flush()
            raise
        flush()
        if not ran:
            clock = store.clock()
            if db.last_cycle is None and clock is not None:  # --until before the run's clock
                click.echo(f"no cycle due (the first runs at the store's clock, {_iso(clock)})")
            else:
                click.echo(
                    "no cycle due (the last ran at "
                    f"{_iso(db.last_cycle) if db.last_cycle else 'never'})"
                )
    if held_for_permission[0]:
        click.echo(f"held: {_held_for_permission(held_for_permission[0])}", err=True)
    if partly or held_for_permission[0]:  # once the session is closed (the diagnostics file
        sys.exit(int(EXIT_PARTLY))  # is rewritten)


@contextlib.contextmanager
def _cycle_bar(total: int) -> Iterator[Any]:
    """On a terminal, a bar of the cycles due (a far --until is millions of them, idle ones
    print nothing until the span ends): done, the total, the time left; gone at the end.
    Elsewhere, nothing: the cycles' lines are the output."""
    from mrules.cli.common import count_bar, quiet

    if quiet():  # `-q`: the cycles' lines only
        yield lambda what: None
        return
    with count_bar(total, "cycle {task.description}") as advance:
        yield advance


def _iso(epoch: float) -> str:
    from mrules.sync.plan import iso

    return iso(epoch)


def _read_changes(path: str) -> Any:
    """The changes of a `--changes` file, read before the store, the CRM or the sync file
    is opened: a file with a line that is no change runs nothing and writes nothing."""
    from mrules.crm.changes import read_changes

    if path == "-" and not Path(path).exists():  # it said "No such file or directory"
        fail("--changes -: sync run reads a file, not standard input (a file named - is ./-)")
    try:
        changes, issues = read_changes(Path(path))
    except OSError as e:
        fail(f"{printable_path(path)}: cannot read the changes: {e.strerror or e}")
    shown = printable_path(path)
    if issues:  # bad input: no cycle runs on a file read in part (docs/sync.md#commands)
        for line, why in issues[1:]:
            click.echo(f"{shown}:{line}: {why}" if line else f"{shown}: {why}", err=True)
        line, why = issues[0]
        more = f" (and {plural(len(issues) - 1, 'more line')} above)" if len(issues) > 1 else ""
        fail(f"{shown}:{line}: {why}{more}; nothing was run" if line else f"{shown}: {why}")
    return changes


def _changes(crm: Any, changes: Any, path: str) -> Any:
    from mrules.crm.changes import apply_changes

    def run(at: float) -> None:
        report = apply_changes(crm, changes, dt.datetime.fromtimestamp(at, dt.UTC))
        for change, reason in report.failed:  # as `mrules crm apply-changes` says it
            click.echo(f"{printable_path(path)}:{change.line}: refused: {reason}", err=True)

    return run


# -- send -----------------------------------------------------------------------------------------
SEND_FIELDS = ("Email", "IsConverted")
"""What `sync send` reads of the record it finds (a contact has no IsConverted)."""


@sync.command("send")
@click.argument("who", metavar="EMAIL|CRM_ID")
@_options
def send_cmd(
    who: str,
    rules: tuple[str, ...],
    store_path: str,
    crm_path: str | None,
    wait: bool,
    wait_timeout: float | None,
) -> None:
    """Send one CRM lead or contact to marketing (Pardot's "Send to Pardot").

    The next cycle (`mrules sync apply` or `sync run`) creates its prospect, or
    links and updates the prospect with its email, even with `auto create
    prospects off`. EMAIL finds the contact first, then a lead not converted.

    Exit status (docs/exit-codes.md): 0 sent; 2 no live lead or contact
    matches (or it has no email, or its object is not in the sync's `objects`);
    5 a run holds the store.

    \b
    Example:
      mrules sync send otto@berg.example --rules examples/getcloudy/rules --store getcloudy.db
    """
    from mrules.crm.ids import InvalidId, to18

    want = who.strip()
    with _session(rules, store_path, crm_path, wait, wait_timeout) as (
        _c,
        config,
        _store,
        crm,
        db,
    ):
        found = None
        if "@" not in want:
            try:
                rid = to18(want)
            except InvalidId:
                fail(f"'{shown_arg(who)}': not an email nor a CRM id")
            sobject = {"00Q": "Lead", "003": "Contact"}.get(rid[:3])
            if sobject is None:
                fail(f"{rid}: not a lead (00Q…) nor a contact (003…)")
            found = next(iter(crm.find(sobject, "Id", [rid], SEND_FIELDS, missing_ok=True)), None)
        else:
            for sobject in ("Contact", "Lead"):
                hits = [
                    r
                    for r in crm.find(sobject, "Email", [want], SEND_FIELDS, missing_ok=True)
                    if not r.fields.get("IsConverted")
                ]
                if hits:
                    found = hits[0]
                    break
        if found is None:
            fail(f"{shown_arg(who)}: no live lead or contact in the CRM")
        obj = found.sobject.lower()
        if not found.fields.get("Email"):
            fail(f"{obj} {found.id} has no email: a prospect needs one")
        if obj not in config.objects:
            fail(f"{found.id} is a {obj}, and the sync block's `objects` does not list {obj}")
        email = str(found.fields.get("Email")).strip().lower()
        link = db.link(email)
        if obj == "lead" and link is not None and link[0] == "contact" and not link[4]:
            # Contact over lead: the cycle keeps the prospect's contact, and the lead
            # changes nothing (it said "the next cycle creates or updates its prospect").
            click.echo(
                f"lead {found.id} ({email}) is not sent: its prospect is linked to contact"
                f" {link[1]}, which a lead does not take over (contact over lead); nothing to do"
            )
            return
        # One prospect a CRM record (docs/sync.md): the cycle neither gives a record another
        # prospect has to this email's prospect, nor moves this prospect's link to a second
        # record of its kind. Either way it changed nothing, and said it would send.
        holder = db.conn.execute(
            "SELECT prospect FROM link WHERE crm_id = ? AND prospect != ? AND NOT deleted",
            (found.id, email),
        ).fetchone()
        if holder is not None:
            click.echo(
                f"{obj} {found.id} ({email}) is not sent: it is {holder[0]}'s CRM record, and a"
                " CRM record has one prospect; nothing to do"
            )
            return
        contact_over_lead = obj == "contact" and link is not None and link[0] == "lead"
        if (
            link is not None
            and not link[4]
            and link[1] != found.id
            and not (contact_over_lead and config.first == "contact")
        ):
            click.echo(
                f"{obj} {found.id} ({email}) is not sent: its prospect is linked to"
                f" {link[0]} {link[1]}, and a prospect has one CRM record; nothing to do"
            )
            return
        with db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO send VALUES (?, ?, ?)",
                (found.id, obj, dt.datetime.now(dt.UTC).timestamp()),
            )
    email = found.fields.get("Email") or "(no email)"
    click.echo(
        f"{obj} {found.id} ({email}) is sent to marketing: the next cycle creates or"
        " updates its prospect (`mrules sync apply`, or `sync plan` to see it)"
    )


# -- status, retry --------------------------------------------------------------------------------
@sync.command("status")
@click.option(
    "--store",
    "store_path",
    type=SYNC_STORE_PATH,
    default="mrules.db",
    show_default=True,
    help="The state store whose sync file (NAME.sync.db, beside it) is read.",
)
# Not offered: `status` reads the sync file only; given, it is refused (it was ignored).
@click.option("--crm", "crm_path", metavar="PATH", hidden=True)
@click.option(
    "--format",
    "fmt",
    type=Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json: the same, with the error queue itself.",
)
def status_cmd(store_path: str, crm_path: str | None, fmt: str) -> None:
    """Queue depth and oldest item, errors by code, cursors, API calls used.

    Exit status (docs/exit-codes.md): 0 done; 2 no sync yet (no NAME.sync.db
    beside the store); 4 the sync file is damaged.

    \b
    Example:
      mrules sync status --store getcloudy.db --format json
    """
    reads_only()
    from mrules.sync import default_sync_path
    from mrules.sync.db import NoSyncYet, SyncDb, SyncDbError, SyncDbPathError
    from mrules.sync.plan import iso

    if crm_path is not None:
        fail(
            "--crm: `sync status` reads the sync file beside the store (NAME.sync.db), not"
            " the CRM: what it shows is what the cycles applied; leave --crm out"
        )
    _refuse_memory(store_path)
    path = default_sync_path(store_path)
    _store_or_sync_file(store_path, path)
    try:
        db = SyncDb.open(path, readonly=True)
    except SyncDbError as e:  # none yet, or a folder: 2; a damaged or foreign file: 4
        fail(str(e), EXIT_USAGE if isinstance(e, (NoSyncYet, SyncDbPathError)) else EXIT_STORE)
    try:
        queue = db.queue()
        errors = db.errors()
        out: dict[str, Any] = {
            "queue": len(queue),
            "oldest": iso(min(v[1] for v in queue.values())) if queue else None,
            "errors": len(errors),
            "errors_by_code": dict(sorted(Counter(e["code"] for e in errors).items())),
            "cursors": {k: v[0] for k, v in sorted(db.cursors().items())},
            "links": db.live_links(),
            "last_cycle": iso(db.last_cycle) if db.last_cycle else None,
            "api_calls": db.api_calls(),
            "facts_not_delivered": len(db.undelivered()),
            "opportunities": db.count("opportunity"),
            "failed_cycle": db.failed_cycle,
            "no_access": db.no_access,
        }
        if fmt == "json":
            # Its times as every other time of the status (were seconds since the epoch).
            out["error_queue"] = [{**e, "at": iso(e["at"])} for e in errors]
    except UNREADABLE as e:
        fail(
            f"{printable_path(str(db.path))}: the sync file failed: {unreadable_reason(e)}",
            EXIT_STORE,
        )
    finally:
        db.close()
    keys = ("last_cycle", "queue", "errors", "cursors", "links", "api_calls", "failed_cycle")
    if not any(out[k] for k in (*keys, "facts_not_delivered")):
        # A sync command that stopped before its first cycle (a refused `sync send`, a bad
        # `--changes` file) leaves an empty sync file: still no sync (docs/sync.md#commands).
        # A first cycle a call refused for good mid-apply is one: it may have written.
        fail(f"{printable_path(str(db.path))}: no sync yet (run `mrules sync run` or `sync apply`)")
    if fmt == "json":
        _emit(json.dumps(out, indent=1, sort_keys=True))
        return
    click.echo(
        f"last cycle: {out['last_cycle'] or 'never'}; {plural(out['links'], 'linked record')};"
        f" {plural(out['api_calls'], 'API call')} used"
    )
    failed = out["failed_cycle"]
    if failed:
        from mrules.sync.apply import written_words

        written = written_words(failed)
        click.echo(
            f"the cycle at {failed['at']} failed: {failed['error']}; "
            + (
                f"it had written to the CRM: {', '.join(written)}, which the next cycle takes"
                " up (it finds them and writes nothing twice)"
                if written
                else "it wrote nothing to the CRM; the next cycle does its work"
            )
        )
    for refused in out["no_access"]:
        click.echo(f"not done by the last cycle: {refused['said']}")
    click.echo(
        f"queue: {plural(out['queue'], 'prospect')} waiting"
        + (f", oldest since {out['oldest']}" if out["oldest"] else "")
    )
    click.echo(
        f"errors: {out['errors']}"
        + "".join(f"\n  {code}: {n}" for code, n in out["errors_by_code"].items())
    )
    for err in errors:
        click.echo(
            f"  {err['prospect']} {err['object']} {err['field']}: {err['code']} {err['message']}"
            + _held_what(err)
        )
    for obj, c in out["cursors"].items():
        click.echo(f"cursor {obj}: {c}")


def _held_what(err: dict[str, Any]) -> str:
    """Which of a prospect's tasks or memberships a held row is (each is a row of its own):
    ` (task 'Call')` (its subject), ` (campaign 'Webinar')` (a membership's, by the name
    the rule gave, which the row keeps), ` (campaign 701…)` (a row kept by an mrules that
    kept only the campaign's id); "" otherwise."""
    from mrules.sync.db import held_campaign

    if err["object"] not in ("task", "campaign_member"):
        return ""
    name = held_campaign(err["object"], err["value"])
    if name:
        return f" (campaign {_named(name)})"
    try:
        held = json.loads(err["value"] or "")
    except (ValueError, TypeError):
        return ""
    if not isinstance(held, dict):
        return ""
    if err["object"] == "task" and held.get("Subject"):
        return f" (task {_named(held['Subject'])})"
    if held.get("CampaignId"):
        return f" (campaign {shown_arg(str(held['CampaignId']))})"
    return ""


@sync.command("retry")
@click.option(
    "--store",
    "store_path",
    type=SYNC_STORE_PATH,
    default="mrules.db",
    show_default=True,
    help="The state store whose sync file (NAME.sync.db, beside it) holds the errors.",
)
@click.option(
    "--prospect",
    "prospects",
    multiple=True,
    metavar="EMAIL",
    help="Only these prospects [default: every held error]; one neither the store nor the"
    " sync has is exit 2.",
)
def retry_cmd(store_path: str, prospects: tuple[str, ...]) -> None:
    """Try the writes held by the error queue again at the next cycle.

    Exit status (docs/exit-codes.md): 0 done; 2 no sync yet, or a --prospect
    that neither the store nor the sync has.

    \b
    Example:
      mrules sync retry --store getcloudy.db --prospect ivy@bigcorp.example
    """
    from mrules.sync import default_sync_path
    from mrules.sync.db import SyncDb, SyncDbError, SyncDbPathError

    _refuse_memory(store_path)
    prospects = tuple(email_or_exit("--prospect", email) for email in prospects)
    path = default_sync_path(store_path)
    _store_or_sync_file(store_path, path)
    if not path.exists():
        fail(f"{printable_path(str(path))}: no sync yet (run `mrules sync run` or `sync apply`)")
    wanted = sorted({prospect_key(p) for p in prospects}) if prospects else None
    try:
        db = SyncDb.open(path)
        try:
            if wanted:
                # A typo marked nothing and said "0 held errors", exit 0 (docs/sync.md).
                missing = set(wanted) - _known_prospects(store_path, db, wanted)
                if missing:
                    names = ", ".join(f"'{shown_arg(m)}'" for m in sorted(missing))
                    shown = printable_path(store_path)
                    fail(f"--prospect: no prospect {names} in {shown} nor in its sync")
            with db.tx() as conn:  # a cycle running now clears only the marks it read
                n, duplicates = db.mark_retry(conn, wanted)
        finally:
            db.close()
    except SyncDbError as e:  # its message names the file already
        fail(str(e), EXIT_USAGE if isinstance(e, SyncDbPathError) else EXIT_STORE)
    except sqlite3.DatabaseError as e:
        fail(f"{printable_path(str(path))}: {e}", EXIT_STORE)
    click.echo(f"{plural(n, 'held error')} will be retried at the next cycle")
    if duplicates:
        # Not a write the CRM refused: a retry cannot clear it (docs/sync.md).
        click.echo(
            f"{plural(duplicates, 'DUPLICATE_LINK hold')} not retried: the CRM record the"
            " prospect's email finds is another prospect's (one prospect a CRM record); each"
            " cycle looks"
            " again, and the work is done once the record is no longer the other's"
        )


def _known_prospects(store_path: str, db: Any, emails: list[str]) -> set[str]:
    """Those of `emails` the store has (read while a run holds it), or the sync file knows
    (linked, queued or held: a prospect gone from the store since)."""
    from mrules.cli.run_cmd import open_store

    known: set[str] = set()
    marks = ",".join("?" * len(emails))
    for table in ("link", "queue", "error"):
        known |= {
            r[0]
            for r in db.conn.execute(
                f"SELECT prospect FROM {table} WHERE prospect IN ({marks})", emails
            )
        }
    if known >= set(emails) or not Path(store_path).exists():
        return known
    store = open_store(store_path, readonly=True)  # its errors: the group's `failures()`
    try:
        known |= set(store.prospects_among(emails))
    finally:
        store.close()
    return known


COMMANDS = (sync,)
