"""CRM facts the reports read from the sync file: campaigns, members, accounts, opportunities."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.sync.world import T0, World, ev

from mrules.sync.db import SCHEMA_VERSION, SyncDb, SyncDbError

SEED = {
    "Account": [{"Id": "a-big", "Name": "BigCorp"}],
    "Contact": [{"Id": "c-bob", "LastName": "Stone", "Email": "bob@x.com", "AccountId": "a-big"}],
    "Lead": [{"Id": "l-eve", "LastName": "Eve", "Company": "Eve Co", "Email": "eve@x.com"}],
    "Campaign": [
        {
            "Id": "k-web",
            "Name": "Webinar",
            "Type": "Webinar",
            "Status": "Completed",
            "BudgetedCost": 2000,
            "ActualCost": 1500,
            "StartDate": "2026-09-10",
        },
        {
            "Id": "k-ads",
            "Name": "Ads",
            "Type": "Advertisement",
            "Status": "In Progress",
            "BudgetedCost": 5000,
            "StartDate": "2026-10-01",
        },
    ],
    "CampaignMember": [
        {"Id": "m-bob", "CampaignId": "k-web", "ContactId": "c-bob", "Status": "Responded"},
        {"Id": "m-eve", "CampaignId": "k-ads", "LeadId": "l-eve"},
    ],
    "Opportunity": [
        {
            "Id": "o-1",
            "Name": "Deal",
            "StageName": "Prospecting",
            "CloseDate": "2026-12-01",
            "Amount": 900,
            "AccountId": "a-big",
            "CampaignId": "k-web",
            "CreatedDate": "2026-10-20T10:30:00.000+0000",
        },
    ],
    "OpportunityContactRole": [
        {"Id": "r-1", "OpportunityId": "o-1", "ContactId": "c-bob", "IsPrimary": True}
    ],
}

OBJECTS = "lead, contact, account, opportunity, campaign"


def _world(tmp: Path, objects: str = OBJECTS) -> tuple[World, dict[str, str]]:
    w = World(tmp, objects=objects)
    w.seed({k: [dict(r) for r in v] for k, v in SEED.items()})
    c = w.crm()
    try:
        ids = {
            label: c.label_id(label)
            for label in ("a-big", "c-bob", "l-eve", "k-web", "k-ads", "m-bob", "m-eve", "o-1")
        }
    finally:
        c.close()
    return w, ids


def _rows(w: World, sql: str) -> list[tuple[object, ...]]:
    return w.syncdb(sql)


def test_campaigns_members_accounts_and_opportunity_columns(tmp_path: Path) -> None:
    w, i = _world(tmp_path)
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    at = _rows(w, "SELECT DISTINCT at FROM campaign")
    assert len(at) == 1
    assert sorted(
        _rows(
            w,
            "SELECT id, name, type, status, budgeted_cost, actual_cost,"
            " start_date, deleted FROM campaign",
        )
    ) == sorted(
        [
            (i["k-web"], "Webinar", "Webinar", "Completed", 2000.0, 1500.0, "2026-09-10", 0),
            (i["k-ads"], "Ads", "Advertisement", "In Progress", 5000.0, None, "2026-10-01", 0),
        ]
    )
    members = {
        r[0]: r[1:]
        for r in _rows(
            w,
            "SELECT id, campaign, contact, lead, status, has_responded, deleted FROM"
            " campaign_member",
        )
    }
    assert members == {
        i["m-bob"]: (i["k-web"], i["c-bob"], None, "Responded", 1, 0),
        i["m-eve"]: (i["k-ads"], None, i["l-eve"], "Sent", 0, 0),
    }
    created = _rows(w, "SELECT created FROM campaign_member")
    assert all(isinstance(c, str) and c.endswith("Z") and len(c) == 20 for (c,) in created)
    assert _rows(w, "SELECT id, name, deleted FROM account") == [(i["a-big"], "BigCorp", 0)]
    assert _rows(
        w, "SELECT id, campaign, created, account, closed_at, is_closed FROM opportunity"
    ) == [(i["o-1"], i["k-web"], "2026-10-20T10:30:00Z", i["a-big"], None, 0)]

    # Sales win the deal and add Bob to the ads campaign; the next cycle reads both.
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "win", "id": "o-1", "amount": 1200},
        {
            "at": "2026-11-02T09:06:00Z",
            "op": "add_member",
            "campaign": "Ads",
            "email": "bob@x.com",
            "status": "Responded",
        },
        until="2026-11-02T09:06:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert _rows(w, "SELECT stage, amount, closed_at, is_won, is_closed FROM opportunity") == [
        ("Closed Won", 1200.0, "2026-12-01", 1, 1)
    ]
    new = _rows(
        w,
        "SELECT campaign, contact, status, has_responded, created FROM"
        f" campaign_member WHERE id NOT IN ('{i['m-bob']}', '{i['m-eve']}')",
    )
    assert new == [(i["k-ads"], i["c-bob"], "Responded", 1, "2026-11-02T09:06:00Z")]


def test_deleted_campaign_is_marked(tmp_path: Path) -> None:
    w, i = _world(tmp_path)
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "delete", "id": "k-ads"}, until="2026-11-02T09:05:00Z"
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    assert _rows(w, f"SELECT deleted FROM campaign WHERE id='{i['k-ads']}'") == [(1,)]
    assert _rows(w, f"SELECT deleted FROM campaign WHERE id='{i['k-web']}'") == [(0,)]


def test_objects_not_listed_are_not_read(tmp_path: Path) -> None:
    w, _ = _world(tmp_path, objects="lead, contact, opportunity")
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    assert _rows(w, "SELECT count(*) FROM campaign") == [(0,)]
    assert _rows(w, "SELECT count(*) FROM campaign_member") == [(0,)]
    assert _rows(w, "SELECT count(*) FROM account") == [(0,)]
    assert _rows(w, "SELECT count(*) FROM opportunity") == [(1,)]


_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE link (prospect TEXT PRIMARY KEY, object TEXT NOT NULL, crm_id TEXT NOT NULL,
  base TEXT NOT NULL DEFAULT '{}', times TEXT NOT NULL DEFAULT '{}',
  deleted INTEGER NOT NULL DEFAULT 0, history TEXT NOT NULL DEFAULT '[]', at REAL);
CREATE TABLE cursor (object TEXT PRIMARY KEY, modstamp TEXT NOT NULL, last_id TEXT NOT NULL);
CREATE TABLE opportunity (
  id TEXT PRIMARY KEY, name TEXT, stage TEXT, amount REAL, close_date TEXT,
  is_won INTEGER, is_closed INTEGER, deleted INTEGER NOT NULL DEFAULT 0, at TEXT);
INSERT INTO meta VALUES ('schema', '1');
"""


def test_a_version_1_sync_file_is_migrated(tmp_path: Path) -> None:
    w, i = _world(tmp_path)
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    path = tmp_path / "w.sync.db"
    conn = sqlite3.connect(path)
    conn.executescript(_V1)
    conn.execute(
        "INSERT INTO cursor VALUES ('Opportunity', '2026-11-02T09:00:00.000+0000', ?)", (i["o-1"],)
    )
    conn.execute("INSERT INTO cursor VALUES ('Contact', '2026-11-01T08:00:00.000+0000', '')")
    conn.execute(
        "INSERT INTO opportunity VALUES (?, 'Deal', 'Prospecting', 900, '2026-12-01',"
        " 0, 0, 0, '2026-11-02T09:00:00Z')",
        (i["o-1"],),
    )
    conn.commit()
    conn.close()

    # A reader (sync status) opens it as it is.
    ro = SyncDb.open(path, readonly=True)
    assert ro.meta("schema") == "1" and len(ro.opportunities()) == 1
    ro.close()

    db = SyncDb.open(path)
    try:
        assert db.meta("schema") == SCHEMA_VERSION == "3"
        cols = [r[1] for r in db.conn.execute("PRAGMA table_info(opportunity)")]
        assert cols[-4:] == ["campaign", "created", "account", "closed_at"]
        tables = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master")}
        assert {"campaign", "campaign_member", "account", "queue", "error"} <= tables
        # The opportunities are read again to fill the new columns; other cursors stay.
        assert set(db.cursors()) == {"Contact"}
    finally:
        db.close()
    db = SyncDb.open(path)  # opening again changes nothing
    db.close()

    w.sync("run", "--until", T0)
    assert _rows(w, "SELECT id, campaign, account, created FROM opportunity") == [
        (i["o-1"], i["k-web"], i["a-big"], "2026-10-20T10:30:00Z")
    ]
    # The deal was read again but did not close now: no won/lost sent to the engine.
    assert not [e for (e,) in _rows(w, "SELECT event FROM inbound") if "opportunity" in e]


def test_a_newer_sync_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.sync.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "INSERT INTO meta VALUES ('schema', '9');"
    )
    conn.close()
    try:
        SyncDb.open(path)
    except SyncDbError as e:
        assert "written by a newer mrules (schema 9;" in str(e)
    else:
        raise AssertionError("a schema 9 file was opened")


def test_a_campaign_deleted_in_the_crm_is_left_out_of_the_report(tmp_path: Path) -> None:
    # The won opportunity's primary campaign, Webinar, is deleted in the CRM. The report
    # credited its 900 to a row named `7015e0000000001AAA`, the campaign's bare id, then
    # to `Webinar (deleted in the CRM)`. A deleted campaign is now left out: no row, no
    # credit (the 900 is unattributed under `primary`), and a note says so.
    w, i = _world(tmp_path)
    w.run(ev(T0, "bob@x.com", asset="Quiet"))
    w.sync("run", "--until", T0)
    w.changes(
        {"at": "2026-11-02T09:05:00Z", "op": "win", "id": "o-1", "close_date": "2026-11-02"},
        {"at": "2026-11-02T09:06:00Z", "op": "delete", "id": "k-web"},
        until="2026-11-02T09:06:00Z",
    )
    w.sync("run", "--until", "2026-11-02T09:10:00Z")
    args = ("report", "campaigns", "--store", str(w.store), "--model", "primary")
    result = w.ok(*args, "--format", "json")
    body = json.loads(result.stdout)
    rows = {r["campaign"]: r for r in body["campaigns"]}
    assert sorted(rows) == ["Ads"], sorted(rows)
    assert body["totals"]["unattributed"]["primary"] == 900.0
    assert any("deleted in the CRM left out" in n for n in body["notes"]), body["notes"]
    table = w.ok(*args).stdout
    assert "Webinar" not in table and i["k-web"] not in table, table
