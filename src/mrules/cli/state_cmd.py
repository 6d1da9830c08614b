"""`mrules state export`: every prospect in a store as JSON Lines."""

from __future__ import annotations

import sys

import click
import orjson

from mrules.cli.run_cmd import open_store
from mrules.engine import iso
from mrules.outputs import export_records

__all__ = ["COMMANDS"]


@click.group()
def state() -> None:
    """Read a state store (works while a run holds it)."""


@state.command("export")
@click.option(
    "--store", "store_path", default="mrules.db", show_default=True, help="The state store to read."
)
@click.option("--prospect", "emails", multiple=True, help="Only this prospect (repeatable).")
def export(store_path: str, emails: tuple[str, ...]) -> None:
    """Print every prospect of the store as one JSON object a line.

    Each line has the email, score, category scores, grade, profile, fields,
    lists, dynamic lists, tags, assignment, CRM status, flags and the pending
    CRM work (what the sync still has to do in the CRM).

    \b
    Example:
      mrules state export --store /tmp/getcloudy.db
    """
    store = open_store(store_path, readonly=True)
    try:
        out = sys.stdout.buffer
        for record in export_records(store, emails):  # one committed state
            out.write(orjson.dumps(record) + b"\n")
        out.flush()
    finally:
        store.close()


@state.command("outbox")
@click.option(
    "--store", "store_path", default="mrules.db", show_default=True, help="The state store to read."
)
def outbox(store_path: str) -> None:
    """Print the outbox: every notification and autoresponder, oldest first.

    Each line has the ledger seq, the event time, the prospect, the kind
    (notify or autoresponder) and what to send, with the rule that asked.
    Work for the CRM (tasks, campaign members, records) is in `state export`.

    \b
    Example:
      mrules state outbox --store /tmp/getcloudy.db
    """
    store = open_store(store_path, readonly=True)
    try:
        out = sys.stdout.buffer
        with store.snapshot():
            for seq, ts, email, kind, payload in store.outbox():
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
