"""`mrules segment`: run the segmentation rules once over every prospect in a store."""

from __future__ import annotations

import click

from mrules.atomic import OutputError
from mrules.cli.common import (
    EXIT_STORE,
    PATH,
    READ_STORE_PATH,
    fail,
    interrupt_says,
    quiet_option,
    stdout_or_exit,
    store_there_or_exit,
    work_bar,
)
from mrules.cli.run_cmd import open_store, rules_or_exit, wait_options
from mrules.diagnostics import plural
from mrules.engine import Engine
from mrules.outputs import diagnostics_beside
from mrules.storeapi import MEMORY, is_postgres_url

__all__ = ["COMMANDS"]

CHUNK = 2_000
"""Prospects a segmentation changes between two writes to the store (all of them within
one transaction, committed at the end): what it holds in memory at most."""

SEGMENT_INTERRUPTED = (
    "interrupted; the segmentation is committed whole or not at all: the store is as it"
    " was, run the same command again"
)


@click.command()
@click.argument("rules", type=PATH)
@click.option(
    "--store",
    "store_path",
    type=READ_STORE_PATH,
    default="mrules.db",
    show_default=True,
    help="The state store to segment.",
)
@wait_options
@quiet_option
def segment(rules: str, store_path: str, wait: bool, wait_timeout: float | None) -> None:
    """Run every segmentation rule of RULES once over the prospects in the store.

    Segmentation rules (Pardot §6.1) match the prospects that satisfy their
    criteria now, data and history alike, apply their list, tag and CRM
    campaign actions (CRM work for the sync, as a run's), and are never
    re-evaluated: run this command again to segment again. Automation rules
    that read the lists or tags it changes run as usual.

    RULES is a rule folder or file; a file not named *.mr that is empty,
    binary or an SQLite database (the store given where the rules go) is
    refused (exit 2), not run as a rule set without segmentation rules.

    The store changes in one transaction, written as it goes: a reader sees
    the store as it was until the end, and a failure or an interrupt leaves it
    as it was.

    Exit status (docs/exit-codes.md): 0 done; 1 the rule set has errors; 2
    usage; 4 the store failed (nothing of the segmentation is kept); 5 another
    run holds the store; 130 interrupted (the store as it was).

    \b
    Example:
      mrules segment examples/getcloudy/rules --store getcloudy.db
    """
    compiled = rules_or_exit((rules,))
    stdout_or_exit()  # closed (`>&-`): exit 4 before the store changes, not its counts lost
    if store_path == MEMORY:
        fail("--store :memory: holds no prospects to segment: give the store a run wrote")
    if "://" not in store_path:  # a typo made a new store
        store_there_or_exit(store_path)
    if is_postgres_url(store_path):  # nor a database named by mistake: open it to read first
        open_store(store_path, readonly=True).close()
    if not compiled.segmentation:  # nothing to run: the store is only read, to check it
        # Opened for writing, the engine applied the rule set to every prospect (a grade
        # the rules given do not hold lowered) while this said there was nothing to do.
        open_store(store_path, readonly=True).close()
        click.echo("no segmentation rules in this rule set: the store is left as it was", err=True)
        return
    store = open_store(store_path, wait=wait, timeout=wait_timeout)
    try:
        try:  # its reports: a prospect segmented afresh drops its old one (docs/outputs.md)
            diagnostics = diagnostics_beside(store)
        except OutputError as e:
            fail(str(e), EXIT_STORE)
        # An SQLite or PostgreSQL store: the changes written every CHUNK prospects within
        # one transaction (every matched prospect was held until one commit: 304 MB at 2
        # million events). The store in memory: one commit at the end, as before.
        held = getattr(store, "one_transaction", None)
        if held is None:
            on_commit = diagnostics.commit if diagnostics is not None else None
            engine = Engine(compiled, store, source="segment", on_commit=on_commit)
        else:  # the file rewritten once, after the transaction: never from uncommitted reports
            engine = Engine(compiled, store, source="segment", cache_prospects=CHUNK)
        # On a terminal: a spinner and the time taken (every prospect is read and run).
        with work_bar("segmenting every prospect of the store"):
            engine.start()
            position = store.stream_position("segment")
            if held is None:
                counts = engine.segment()
                try:
                    engine.commit(position)
                except OutputError as e:
                    fail(f"{e}; the store keeps what the segmentation did", EXIT_STORE)
            else:
                interrupt_says(SEGMENT_INTERRUPTED)
                with held():
                    counts = engine.segment(commit_every=CHUNK, line=position)
                    engine.commit(position)
            if held is not None and diagnostics is not None:
                try:  # from the store's reports, now that they are committed
                    diagnostics.refresh()
                except OutputError as e:
                    fail(f"{e}; the store keeps what the segmentation did", EXIT_STORE)
    finally:
        store.close()
    for name, n in counts.items():
        click.echo(f"{name}: {plural(n, 'prospect')} matched")


COMMANDS = (segment,)
