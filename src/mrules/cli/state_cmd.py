"""`mrules state export`: every prospect in a store as JSON Lines."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click
import orjson

from mrules.cli.common import (
    EXIT_STORE,
    EXIT_USAGE,
    READ_STORE,
    email_or_exit,
    fail,
    quiet_option,
    reads_only,
    stdout_or_exit,
    work_bar,
)
from mrules.cli.run_cmd import open_store
from mrules.engine import iso
from mrules.events import prospect_key
from mrules.outputs import export_records
from mrules.storeapi import is_postgres_url

__all__ = ["COMMANDS", "still_pending"]


@click.group()
def state() -> None:
    """Read a state store (works while a run holds it).

    \b
    Example:
      mrules state export --store getcloudy.db
      mrules state outbox --store getcloudy.db
    """


@state.command("export")
@READ_STORE
@quiet_option
@click.option(
    "--prospect",
    "emails",
    multiple=True,
    help="Only this prospect (repeatable); one the store does not have is exit 2"
    " [default: every prospect].",
)
def export(store_path: str, emails: tuple[str, ...]) -> None:
    """Print every prospect of the store as one JSON object a line.

    Each line has the email, score, category scores, grade, profile, fields,
    lists, dynamic lists, tags, assignment, CRM status, flags and the pending
    CRM work (what the sync still has to do in the CRM: work a sync beside the
    store, NAME.sync.db, has done is left out).

    \b
    Example:
      mrules state export --store getcloudy.db

    Exit status (docs/exit-codes.md): 0 done; 2 no such store, or a --prospect
    it does not have; 4 the store cannot be read, or standard output is closed;
    130 interrupted.
    """
    reads_only()
    emails = tuple(email_or_exit("--prospect", email) for email in emails)
    out = stdout_or_exit()
    store = open_store(store_path, readonly=True)  # no store: exit 2, whatever is beside it
    try:
        synced = still_pending(store_path)
        records: Iterable[dict[str, Any]] = export_records(store, emails)  # one committed state
        if emails:  # a few, all read before any is printed: a missing one prints nothing
            records = list(records)
            missing = sorted({prospect_key(e) for e in emails} - {r["email"] for r in records})
            if missing:  # a typo printed nothing and exit 0, as if it had nothing to show
                names = ", ".join(f"'{m}'" for m in missing)
                shown = store.path if is_postgres_url(store_path) else store_path  # no password
                fail(f"no prospect {names} in {shown}", EXIT_USAGE)
        # The whole store: printed as it is read, and counted on a terminal.
        total = None if emails else store.prospect_count()
        with work_bar("exporting prospects", total, streams=True) as update:
            for done, record in enumerate(records, 1):
                if synced is not None:
                    record["pending_crm"] = [w for w in record["pending_crm"] if synced(w["seq"])]
                out.write(orjson.dumps(record) + b"\n")
                if not done % 1024:
                    update(done, None)
        out.flush()
    finally:
        store.close()


def still_pending(store_path: str) -> Callable[[int], bool] | None:
    """Whether a seq of CRM work is still pending, when a sync file is beside the store
    (done work leaves `pending_crm`); None without one (all of it is pending)."""
    from mrules.sync.db import SyncDbError, pending_beside

    try:
        return pending_beside(store_path)
    except SyncDbError as e:  # it names the file already
        fail(str(e), EXIT_STORE)


@state.command("outbox")
@READ_STORE
@quiet_option
def outbox(store_path: str) -> None:
    """Print the outbox: every notification and autoresponder, oldest first.

    Each line has the ledger seq, the event time, the prospect, the kind
    (notify or autoresponder) and what to send, with the rule that asked.
    Work for the CRM (tasks, campaign members, records) is in `state export`.

    \b
    Example:
      mrules state outbox --store getcloudy.db

    Exit status (docs/exit-codes.md): 0 done; 2 no such store; 4 the store
    cannot be read, or standard output is closed; 130 interrupted.
    """
    reads_only()
    out = stdout_or_exit()
    store = open_store(store_path, readonly=True)
    try:
        bar = work_bar("reading the outbox {task.description}", streams=True)
        with store.snapshot(), bar as update:
            for done, (seq, ts, email, kind, payload) in enumerate(store.outbox(), 1):
                if not done % 1024:
                    update(None, f"{done:,} messages")
                record = {
                    "seq": seq,
                    "time": iso(ts),
                    "prospect": email,
                    "kind": kind,
                    **orjson.loads(payload),
                }
                out.write(orjson.dumps(record) + b"\n")
        out.flush()
    finally:
        store.close()


COMMANDS = (state,)
