"""A small world for sync tests: rules, events, a CRM seed, and the commands to run on it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from mrules.cli import main
from mrules.crm.emulator import EmulatedCrm

RULES = """
user "alan@x.com"
user "sam@x.com"
field first_name: text
field phone: text
field company_size: text
field lead_source: text
field title: text
form "Demo"
form "Quiet"
on submit of form "Demo" { assign to user "alan@x.com" }
on submit of form "Quiet" { score +1 }
sync salesforce {
  objects OBJECTS
  match by email
  prefer contact over lead
  create lead on assignment
  auto create prospects off
  every 10 minutes batch BATCH
  map phone <-> "Phone" prefer most recent
  map company_size <-> "Company_Size__c" prefer ours
  map lead_source <-> "LeadSource" prefer crm
  map title <-> "Title" prefer ours
}
"""

ORG = {
    "edition": "plus",
    "clock": "2026-11-01T08:00:00Z",
    "custom_fields": {
        "Lead": {
            "Company_Size__c": {
                "type": "picklist",
                "restricted": True,
                "values": ["1-10", "11-50", "51-200", "200+"],
            }
        },
        "Contact": {
            "Company_Size__c": {
                "type": "picklist",
                "restricted": True,
                "values": ["1-10", "11-50", "51-200", "200+"],
            }
        },
    },
}

T0 = "2026-11-02T09:00:00Z"
# A CRM contact the example-style tests link a prospect to.
BOB = {
    "Id": "contact-bob",
    "FirstName": "Bob",
    "LastName": "Stone",
    "Email": "bob@x.com",
    "Phone": "+1 555 0101",
    "LeadSource": "Web",
    "OwnerId": "sam",
}


def ev(ts: str, prospect: str, type_: str = "form_submit", **kw: Any) -> dict[str, Any]:
    return {"ts": ts, "type": type_, "prospect": prospect, **kw}


STOP = """
form "Stop"
automation rule "stop" priority 2 { when all { submitted form "Stop" } then { do not sync } }
"""


def held_world(tmp: Path, refused: dict[str, dict[str, Any]]) -> World:
    """A World whose rules add form "Stop" (its submit marks the prospect `do not sync`),
    with Bob's contact seeded, after a sync applied: each prospect of `refused` took its
    fields, then submitted "Demo" (assigned: a lead created, whose fields the CRM may
    refuse, held in the error queue)."""
    w = World(tmp)
    w.rules.write_text(w.rules.read_text("utf-8") + STOP, "utf-8")
    w.seed({"Contact": [BOB]})
    w.run(
        *(
            e
            for prospect, fields in refused.items()
            for e in (
                ev(T0, prospect, "prospect_update", fields=fields),
                ev(T0, prospect, asset="Demo"),
            )
        )
    )
    w.sync("apply")
    return w


def stop(w: World, *prospects: str) -> None:
    """Each of `prospects` submits "Stop" at 09:05 (see held_world): `do not sync`."""
    w.run(*(ev("2026-11-02T09:05:00Z", p, asset="Stop") for p in prospects))


class World:
    def __init__(
        self,
        tmp: Path,
        batch: int = 800,
        objects: str = "lead, contact, opportunity",
        settings: str = "",
    ) -> None:
        """`settings`: more lines for the sync block (a case's own connector settings)."""
        self.tmp = tmp
        self.rules = tmp / "rules.mr"
        text = RULES.replace("BATCH", str(batch)).replace("OBJECTS", objects)
        if settings:  # it replaces the block's statement of the same kind (`prefer ...`)
            kind = settings.split()[0]
            text = "".join(
                line for line in text.splitlines(keepends=True) if not line.startswith(f"  {kind} ")
            )
            text = text[: text.rindex("}")] + f"  {settings}\n}}\n"
        self.rules.write_text(text, "utf-8")
        self.store = tmp / "w.db"
        self.crm_path = tmp / "w.crm.db"
        self.events = tmp / "events.jsonl"
        self.lines: list[dict[str, Any]] = []
        self.runner = CliRunner()

    # -- the CRM -------------------------------------------------------------------------------
    def seed(
        self, objects: dict[str, list[dict[str, Any]]], org: dict[str, Any] | None = None
    ) -> None:
        folder = self.tmp / "seed"
        folder.mkdir(exist_ok=True)
        (folder / "org.json").write_text(json.dumps(org or ORG), "utf-8")
        users = objects.setdefault("User", [])
        for name in ("alan", "sam"):
            users.append(
                {
                    "Id": name,
                    "Username": f"{name}@x.com",
                    "Email": f"{name}@x.com",
                    "LastName": name.title(),
                    "Alias": name,
                    "IsActive": True,
                }
            )
        for obj, rows in objects.items():
            with (folder / f"{obj}.jsonl").open("w") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")
        self.ok("crm", "load", str(folder), "--store", str(self.store))

    def crm(self) -> EmulatedCrm:
        return EmulatedCrm.open(self.crm_path, create=False)

    def crm_rows(self, sobject: str) -> list[dict[str, Any]]:
        c = self.crm()
        try:
            return [dict(r.fields) for r in c.records(sobject)]
        finally:
            c.close()

    def changes(self, *rows: dict[str, Any], until: str) -> None:
        path = self.tmp / f"changes-{len(list(self.tmp.glob('changes-*')))}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
        self.ok("crm", "apply-changes", str(path), "--store", str(self.store), "--until", until)

    # -- the engine ----------------------------------------------------------------------------
    def run(self, *events: dict[str, Any], now: str | None = None) -> None:
        self.lines += events
        self.events.write_text("".join(json.dumps(e) + "\n" for e in self.lines), "utf-8")
        args = ["run", str(self.rules), str(self.events), "--store", str(self.store)]
        if now:
            args += ["--now", now]
        self.ok(*args)

    def prospects(self) -> dict[str, dict[str, Any]]:
        r = self.ok("state", "export", "--store", str(self.store))
        return {d["email"]: d for d in map(json.loads, r.output.splitlines())}

    # -- the sync ------------------------------------------------------------------------------
    def sync(self, *args: str, code: int | None = 0) -> Result:
        r = self.cli("sync", *args, "--rules", str(self.rules), "--store", str(self.store))
        if code is not None:
            assert r.exit_code == code, r.output
        return r

    def status(self) -> dict[str, Any]:
        r = self.ok("sync", "status", "--store", str(self.store), "--format", "json")
        return json.loads(r.output)

    def syncdb(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.tmp / "w.sync.db")
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    # -- helpers -------------------------------------------------------------------------------
    def cli(self, *args: str) -> Result:
        return self.runner.invoke(main, list(args), catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        r = self.cli(*args)
        assert r.exit_code in (0,), (args, r.output)
        return r
