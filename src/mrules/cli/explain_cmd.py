"""`mrules explain`: why a prospect stands where it does, from the ledger."""

from __future__ import annotations

import os
from typing import Any

import click
import orjson

from mrules.cli.common import (
    EXIT_STORE,
    EXIT_USAGE,
    READ_STORE,
    SYNC_PATH,
    email_or_exit,
    fail,
    reads_only,
    stdout_or_exit,
)
from mrules.cli.run_cmd import open_store
from mrules.cli.state_cmd import still_pending
from mrules.diagnostics import plural, printable
from mrules.events import prospect_key
from mrules.explain import attach_views, damaged_steps, explanation
from mrules.loader import printable_path
from mrules.outputs import action_record, prospect_record
from mrules.records import stdin_run
from mrules.reports.timeline import crm_stages
from mrules.reports.timeline import render_text as render_timeline
from mrules.reports.timeline import timeline as lifecycle
from mrules.state import Codecs, Prospect
from mrules.storeapi import MEMORY
from mrules.sync.db import default_sync_path, store_identity
from mrules.vocab import Action

__all__ = ["COMMANDS"]


# The stream name of the facts a sync cycle hands the engine (`crm-sync:PLAN_ID`).
SYNC_SOURCE = "crm-sync:"


def _cause(r: dict[str, Any]) -> str:
    rule, ev = r["rule"], r["event"]
    where = f"{rule['kind']} '{rule['name']}' ({rule['at']})"
    if rule["kind"] == "event":
        where = f"event {rule['name']}"
    event = ""
    if str(ev["source"] or "").startswith(SYNC_SOURCE):
        # A fact a sync cycle handed the engine: its line is the fact's place in the
        # cycle's own stream, no line of an events file; its id names the cycle's plan.
        event = f", by the CRM sync (fact {ev['id']})" if ev["id"] else ", by the CRM sync"
    elif ev["line"]:
        event = f", event line {ev['line']}"
        if stdin_run(str(ev["source"] or "")):  # each run on standard input counts from 1
            event += f" of {ev['source']}"
        event += f" id {ev['id']}" if ev["id"] else ""
    elif ev["source"] == "segment":  # `mrules segment` runs with this as its stream
        event = ", by `mrules segment`"
    elif rule["kind"] != "event":
        event = ", at the start of a run (retroactive) or by a tick"
    return f"{where}{event}, {r['time']}"


def _view(view: dict[str, Any]) -> str:
    """An attached view as `explain` names it: its event, then its time."""
    where = f"view of event line {view['line']}" if view["line"] else "view"
    if view["line"] and stdin_run(str(view["source"] or "")):
        where += f" of {view['source']}"
    where += f" id {view['id']}" if view["id"] else ""
    return f"{where}, {view['time']}"


def render(ex: dict[str, Any]) -> str:
    """The explanation as text for a terminal."""
    s = ex["prospect"]
    out = [f"{s['email']}: score {s['score']}, grade {s['grade'] or '-'}, CRM {s['crm_status']}"]
    out.append("")
    out.append(f"Score {s['score']} = sum of {plural(len(ex['score']), 'change')}:")
    for r in ex["score"]:
        args = r["args"] or {}
        pts = f"= {r['after']}" if r["action"] == Action.SET_SCORE else f"{args['points']:+d}"
        what = args.get("activity") or r["rule"]["name"]
        extra = ""
        if "attached_from" in args:
            view = r.get("attached_view")
            seen = f": {_view(view)}" if view is not None else ""
            extra = f" (history of visitor {args['attached_from']}{seen})"
        out.append(f"  {pts:>5}  {what}{extra}: {_cause(r)}")
    if ex["score_total"] != s["score"]:
        out.append(f"  (ledger total {ex['score_total']} differs from the score: report a bug)")
    for title, key, label in (("Lists", "lists", "list"), ("Tags", "tags", "tag")):
        out.append("")
        out.append(f"{title}:" + ("" if ex[key] else " none"))
        for r in ex[key]:
            out.append(f"  {r['args'][label]}: {_cause(r)}")
    out.append("")
    out.append("Assignment:")
    a = ex["assignment"]
    if a is None:
        out.append("  unassigned")
    else:
        to, name = (a["args"] or {}).get("to"), a["after"]
        who = to if name in (None, to) else f"{to} {name}"  # `crm rule` names no one
        out.append(f"  {who}: {_cause(a)}")
        held = s.get("assigned") or {}
        if held.get("reassigned_at"):  # only once reassigned: `at` is the first (the MQL)
            out.append(f"  first assigned {held['at']}, reassigned {held['reassigned_at']}")
    crm = ex["crm"]
    if s["crm_status"] != "none" or s["do_not_sync"] or crm["status"] is not None:
        out.append("")
        out.append("CRM:")
        status, r = s["crm_status"], crm["status"]
        what = "no CRM record" if status == "none" else status
        out.append(f"  {what}" + ("" if r is None or r["after"] != status else f": {_cause(r)}"))
        if s["crm_id"] is not None:  # apart: a merge in the CRM moves it with no status step
            out.append(f"  record {s['crm_id']}")
        if s["do_not_sync"]:
            d = crm["do_not_sync"]
            why = "" if d is None else f": {_cause(d)}"
            until = "the sync writes nothing for it until `allow crm recreate`"
            out.append(f"  do not sync ({until}){why}")
    out.append("")
    out.append("Fields:" + ("" if ex["fields"] else " none"))
    for r in ex["fields"]:
        out.append(f"  {r['args']['field']} = {orjson.dumps(r['after']).decode()}: {_cause(r)}")
    if ex["grading"] is not None:
        g = ex["grading"]
        out.append("")
        out.append(f"Grade {s['grade'] or '-'}: last changed by {_cause(g)}")
    if ex["rules_matched"]:
        out.append("")
        out.append("Automation rules matched:")
        for r in ex["rules_matched"]:
            out.append(f"  {r['rule']['name']} (match {r['args']['count']}): {_cause(r)}")
    if ex["outbox_and_crm"]:
        out.append("")
        out.append("Notifications, emails and CRM work:")
        for r in ex["outbox_and_crm"]:
            args = {k: v for k, v in (r["args"] or {}).items() if v is not None}
            out.append(f"  {r['action']} {orjson.dumps(args).decode()}: {_cause(r)}")
    # Event ids, CRM owners and rule names are data: a control character in one (a
    # newline, an escape sequence) must neither break a line nor steer the terminal.
    return "\n".join(map(printable, out))


@click.command()
@click.argument("email")
@READ_STORE
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people; json: the same explanation (or timeline) as one JSON object.",
)
@click.option(
    "--timeline",
    is_flag=True,
    help="Show the prospect's lifecycle instead: stage entries (prospect, MQL, SQL, won) and"
    " score and grade over time (docs/reports-html.md).",
)
@click.option(
    "--sync-db",
    "sync_db",
    type=SYNC_PATH,
    metavar="PATH",
    help="The sync file that gives the SQL and won stages of --timeline [default: NAME.sync.db"
    " beside the store NAME.db].",
)
def explain(email: str, store_path: str, fmt: str, timeline: bool, sync_db: str | None) -> None:
    """Explain why EMAIL has its score, lists, tags, assignment, CRM status, fields and grade.

    Every point of score and every membership is traced to the rule that
    caused it (file:line) and the event (line and id). The ledger is never
    pruned, so the explanation covers the prospect's whole life.

    Exit status (docs/exit-codes.md): 0 done; 2 no such prospect or store; 4
    the store cannot be read (damaged, not an mrules store), with --format
    json the sync file beside it, or standard output is closed; 130
    interrupted.

    With --timeline: when the prospect was created, became an MQL (its
    first assignment), an SQL and won (from the sync file), and its score and
    grade over time.

    \b
    Examples:
      mrules explain leung@example.com --store getcloudy.db
      mrules explain bob@bigcorp.example --store getcloudy.db --timeline
    """
    reads_only()
    email = email_or_exit("EMAIL", email)
    if sync_db is not None and not timeline:  # it was read by nothing: a typo went unseen
        fail("--sync-db goes with --timeline (the SQL and won stages come from it)")
    out = stdout_or_exit()
    store = open_store(store_path, readonly=True)
    try:
        key = prospect_key(email)
        with store.snapshot():  # the state and its ledger from the same commit
            data = store.prospect(key)
            if data is None:
                # The email is the user's text: a newline or an escape in it must
                # neither break the one-line error nor steer the terminal.
                where = printable_path(str(store.path))
                fail(f"no prospect '{printable(key)}' in {where}", EXIT_USAGE)
            codecs = Codecs()
            state = prospect_record(
                Prospect.from_json(data, codecs, key), codecs, store.crm_pending(key)
            )
            entries = list(store.ledger(prospect=key))
            rows = [action_record(r) for r in entries]
            attach_views(rows, lambda: store.activities(key, by_time=False))
        # Only a --sync-db given is compared, as in the reports: the file beside the
        # store is its own (a store made again notes its new id at its next cycle).
        store_id = store_identity(store) if timeline and sync_db is not None else None
    finally:
        store.close()
    if timeline:
        given = sync_db is not None
        if sync_db is not None and not os.path.isfile(sync_db):  # given: it must be there
            fail(f"--sync-db {printable_path(sync_db)}: no such file", EXIT_USAGE)
        if sync_db is None and store_path != MEMORY and "://" not in store_path:
            from mrules.reports._db import refuse_what_is_no_sync_file_beside
            from mrules.store import StorePathError

            try:
                refuse_what_is_no_sync_file_beside(store_path)
            except StorePathError as e:
                fail(str(e), EXIT_USAGE)
            sync_db = str(default_sync_path(store_path))
        t = lifecycle(
            key,
            entries,
            created=state["created"],
            crm=crm_stages(sync_db, key, store_id=store_id, store_path=store.path, given=given),
        )
        if fmt == "json":
            out.write(orjson.dumps(t, option=orjson.OPT_INDENT_2) + b"\n")
        else:
            click.echo(render_timeline(t))
        return
    wrong = damaged_steps(rows)
    if wrong is not None:
        fail(f"the store is damaged: {wrong}; restore {store.path} from a backup", EXIT_STORE)
    if fmt == "json":  # the prospect as `state export` gives it: without work a sync did
        synced = still_pending(store_path)
        if synced is not None:
            state["pending_crm"] = [w for w in state["pending_crm"] if synced(w["seq"])]
    ex = explanation(state, rows)
    if fmt == "json":
        out.write(orjson.dumps(ex, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        click.echo(render(ex))


COMMANDS = (explain,)
