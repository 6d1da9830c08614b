"""`mrules explain EMAIL --timeline`: stage entries and score and grade over time."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from tests.reports.test_html import example_store  # noqa: F401 (a fixture)

from mrules.cli import main
from mrules.records import LedgerEntry
from mrules.reports import funnel
from mrules.reports.timeline import render_text, timeline

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def entry(ts: float, action: str, before: object = None, after: object = None) -> LedgerEntry:
    return LedgerEntry(
        1,
        ts,
        "a@x",
        "event",
        "e",
        None,
        "s",
        1,
        None,
        action,
        "{}",
        json.dumps(before),
        json.dumps(after),
    )


def test_score_points_collapse_per_moment_and_start_at_creation() -> None:
    t = timeline(
        "a@x",
        [
            entry(T0, "create prospect"),
            entry(T0 + 60, "score", 0, 3),
            entry(T0 + 60, "score", 3, 53),
            entry(T0 + 120, "assign", None, "u"),
            entry(T0 + 180, "set score", 53, 10),
            entry(T0 + 240, "assign", "u", "v"),  # a reassignment is not a new MQL
        ],
    )
    assert [s["stage"] for s in t["stages"]] == ["prospect", "mql"]
    assert t["stages"][1]["at"] == "2026-09-21T14:15:20Z"
    assert [p["score"] for p in t["score"]] == [0, 53, 10]


def test_grade_changes_only() -> None:
    t = timeline(
        "a@x",
        [
            entry(T0, "grading", None, "C-"),
            entry(T0 + 1, "grade", "C-", "C-"),
            entry(T0 + 2, "grade", "C-", "B"),
        ],
    )
    assert [g["grade"] for g in t["grade"]] == ["C-", "B"]
    assert t["stages"] == []  # no creation known: no prospect stage, not one at no time


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(-50, 50)), min_size=1, max_size=30))
def test_last_score_point_is_the_last_score(steps: list[tuple[int, int]]) -> None:
    entries, score, ts = [], 0, T0
    for gap, points in steps:
        ts += gap
        entries.append(entry(ts, "score", score, score + points))
        score += points
    t = timeline("a@x", entries, created="2026-01-01T00:00:00Z")
    assert t["score"][-1]["score"] == score
    times = [p["at"] for p in t["score"]]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert render_text(t).splitlines()[0] == "a@x: lifecycle"


def test_cli_text_and_json(example_store: Path) -> None:  # noqa: F811
    runner = CliRunner()
    r = runner.invoke(
        main, ["explain", "leung@example.com", "--store", str(example_store), "--timeline"]
    )
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1].split() == ["time", "stage", "score", "grade"]
    assert "not reached: sql, won" in r.output
    r = runner.invoke(
        main,
        [
            "explain",
            "henry@example.org",
            "--store",
            str(example_store),
            "--timeline",
            "--format",
            "json",
        ],
    )
    t = json.loads(r.output)
    assert set(t) == {"email", "stages", "score", "grade"}
    assert [s["stage"] for s in t["stages"]] == ["prospect", "mql", "sql", "won"]


def test_cli_unknown_prospect_and_no_sync_file(example_store: Path, tmp_path: Path) -> None:  # noqa: F811
    r = CliRunner().invoke(
        main, ["explain", "nobody@x", "--store", str(example_store), "--timeline"]
    )
    assert r.exit_code == 2 and "no prospect" in r.output
    # No sync file beside the store: the timeline has no CRM stages.
    alone = tmp_path / "alone.db"
    shutil.copy(example_store, alone)
    r = CliRunner().invoke(
        main,
        ["explain", "henry@example.org", "--store", str(alone), "--timeline", "--format", "json"],
    )
    assert r.exit_code == 0, r.output
    assert [s["stage"] for s in json.loads(r.output)["stages"]] == ["prospect", "mql"]
    # A --sync-db given that is not there is a mistyped path, not "no CRM stages".
    r = CliRunner().invoke(
        main,
        ["explain", "henry@example.org", "--store", str(example_store), "--timeline",
         "--sync-db", str(tmp_path / "none.db")],
    )  # fmt: skip
    assert r.exit_code == 2 and "no such file" in r.output


def test_timelines_agree_with_the_funnel(example_store: Path) -> None:  # noqa: F811
    """Differential: each stage's count over every prospect's timeline is the funnel's."""
    r = CliRunner().invoke(main, ["state", "export", "--store", str(example_store)])
    emails = [json.loads(line)["email"] for line in r.output.splitlines() if line.strip()]
    counts = dict.fromkeys(("prospect", "mql", "sql", "won"), 0)
    for email in emails:
        r = CliRunner().invoke(
            main,
            ["explain", email, "--store", str(example_store), "--timeline", "--format", "json"],
        )
        for s in json.loads(r.output)["stages"]:
            counts[s["stage"]] += 1
    f = {s["stage"]: s["count"] for s in funnel(example_store)["stages"]}
    assert counts == {k: f[k] for k in counts}
    assert counts["won"] > 0


def test_a_damaged_crm_date_is_exit_4_as_for_the_funnel(
    example_store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Henry's opportunity with a CreatedDate that is not a time: `report funnel` is exit
    4 naming it, but `explain --timeline` showed exit 0 with his SQL date taken from when
    the sync saw the opportunity (2026-12-20), weeks after the true one."""
    import sqlite3

    store = tmp_path / "g.db"
    shutil.copy(example_store, store)
    shutil.copy(example_store.with_name("getcloudy.sync.db"), tmp_path / "g.sync.db")
    conn = sqlite3.connect(tmp_path / "g.sync.db")
    with conn:
        conn.execute(
            "UPDATE opportunity SET created = 'garbage' WHERE id IN (SELECT r.opportunity"
            " FROM opportunity_role r JOIN link l ON l.crm_id = r.contact"
            " WHERE l.prospect = 'henry@example.org')"
        )
    conn.close()
    for args in (
        ["report", "funnel", "--store", str(store)],
        ["explain", "henry@example.org", "--store", str(store), "--timeline"],
    ):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 4, (args, r.output)
        assert "the sync file is damaged (opportunity row" in r.stderr, r.stderr
        assert "created is not a time, 'garbage'" in r.stderr, r.stderr


def test_a_sync_file_without_timeline_is_a_usage_error(example_store: Path) -> None:  # noqa: F811
    """`explain EMAIL --sync-db PATH` without --timeline read nothing from PATH, so a
    mistyped one (or the wish for CRM stages in the plain explanation) went unseen: exit 0."""
    sync = example_store.with_name("getcloudy.sync.db")
    for path in (sync, example_store.with_name("nothere.sync.db")):
        r = CliRunner().invoke(
            main, ["explain", "bob@bigcorp.example", "--store", str(example_store),
                   "--sync-db", str(path)]
        )  # fmt: skip
        assert r.exit_code == 2, r.output
        assert r.stderr == "mrules: error: --sync-db goes with --timeline (the SQL and won" \
            " stages come from it)\n"  # fmt: skip
        assert r.stdout == ""
    r = CliRunner().invoke(
        main, ["explain", "bob@bigcorp.example", "--store", str(example_store),
               "--sync-db", str(sync), "--timeline"]
    )  # fmt: skip
    assert r.exit_code == 0, r.output


def test_another_stores_sync_file_is_refused(example_store: Path, tmp_path: Path) -> None:  # noqa: F811
    """`explain --timeline --sync-db` naming another store's sync file showed no SQL and
    no won stage, without a word: its links name none of this store's prospects. The
    reports refused it already; the timeline now does too (exit 2), and a sync file
    from before the store id (none noted) is read as before."""
    import sqlite3

    from tests.reports.test_html import EXAMPLE

    other = tmp_path / "other.db"
    for args in (
        ["crm", "load", str(EXAMPLE / "crm"), "--store", str(other)],
        ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", str(other)],
        ["sync", "apply", "--rules", str(EXAMPLE / "rules"), "--store", str(other)],
    ):
        assert CliRunner().invoke(main, args).exit_code == 0, args
    foreign = tmp_path / "other.sync.db"
    args = ["explain", "bob@bigcorp.example", "--store", str(example_store), "--timeline",
            "--sync-db", str(foreign)]  # fmt: skip
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(
        f"mrules: error: the sync file {foreign} belongs to another store (store id "
    ), r.stderr
    assert r.stdout == ""
    conn = sqlite3.connect(foreign)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'store_id'")
    conn.close()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    own = CliRunner().invoke(
        main, ["explain", "bob@bigcorp.example", "--store", str(example_store), "--timeline"]
    )
    assert own.exit_code == 0 and "sql" in own.stdout.lower(), own.output


@pytest.mark.parametrize(
    ("created", "close_date", "sql", "won", "zone"),
    [
        ("2026-10-05T00:00:00Z", "2026-10-20", "2026-10-03T00:00:00Z", "2026-10-12T00:00:00Z",
         "UTC"),
        ("2026-10-01T00:00:00Z", "2026-10-10", "2026-10-01T00:00:00Z", "2026-10-10T00:00:00Z",
         "UTC"),
        # a CloseDate has no zone: it is UTC's day wherever mrules runs
        ("2026-10-05T00:00:00Z", "2026-10-10", "2026-10-03T00:00:00Z", "2026-10-10T00:00:00Z",
         "America/New_York"),
    ],
)  # fmt: skip
def test_the_crm_stages_are_the_earliest_of_each_opportunitys_best_date(
    example_store: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    created: str,
    close_date: str,
    sql: str,
    won: str,
    zone: str,
) -> None:
    """Henry's contact on three won opportunities: SQL is the earliest creation (the time
    the sync saw one when it has no CreatedDate), won the earliest close (its CloseDate,
    else when it closed, else when the sync saw it): the second's, seen on the 3rd, or the
    first's creation when it is earlier; the third's, seen on the 12th, or the first's
    CloseDate when it is earlier. Found by mutation testing of
    reports/timeline.py: each fallback dropped, or the latest taken, passed the suite."""
    import sqlite3

    store = tmp_path / "g.db"
    shutil.copy(example_store, store)
    shutil.copy(example_store.with_name("getcloudy.sync.db"), tmp_path / "g.sync.db")
    conn = sqlite3.connect(tmp_path / "g.sync.db")
    with conn:
        [(contact,)] = conn.execute(
            "SELECT crm_id FROM link WHERE prospect = 'henry@example.org'"
        ).fetchall()
        conn.execute(  # his own opportunities out of the way
            "UPDATE opportunity SET deleted = 1 WHERE id IN (SELECT opportunity"
            " FROM opportunity_role WHERE contact = ?)",
            (contact,),
        )
        # id, created, seen (at), close date, closed at
        opportunities = [
            ("006T00000000001AAA", created, "2026-10-30T00:00:00Z", close_date,
             "2026-10-25T00:00:00Z"),
            ("006T00000000002AAA", None, "2026-10-03T00:00:00Z", None, "2026-10-15T00:00:00Z"),
            ("006T00000000003AAA", "2026-10-04T00:00:00Z", "2026-10-12T00:00:00Z", None, None),
        ]  # fmt: skip
        for n, (oid, created, at, close_date, closed_at) in enumerate(opportunities):
            conn.execute(
                "INSERT INTO opportunity (id, name, stage, close_date, is_won, is_closed,"
                " deleted, at, created, closed_at) VALUES (?, ?, 'Closed Won', ?, 1, 1, 0,"
                " ?, ?, ?)",
                (oid, f"Deal {n}", close_date, at, created, closed_at),
            )
            conn.execute(
                "INSERT INTO opportunity_role (id, opportunity, contact, role, deleted)"
                " VALUES (?, ?, ?, 'Decision Maker', 0)",
                (f"00KT0000000000{n}AAA", oid, contact),
            )
    conn.close()
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        r = CliRunner().invoke(
            main,
            ["explain", "henry@example.org", "--store", str(store), "--timeline", "--format",
             "json"],
        )  # fmt: skip
    finally:
        monkeypatch.undo()
        time.tzset()
    assert r.exit_code == 0, r.output
    at = {s["stage"]: s["at"] for s in json.loads(r.output)["stages"]}
    assert (at["sql"], at["won"]) == (sql, won)


def test_a_sync_file_with_no_table_is_no_sync_yet_beside_the_store_and_refused_given(
    example_store: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A sync file with no table yet (what a first sync killed while it made it leaves):
    beside the store it is no sync yet, so the timeline has no CRM stages, exit 0; named by
    --sync-db it is not a sync file, exit 4 (found by mutation testing of
    reports/timeline.py: taking both as no sync yet passed the suite)."""
    import sqlite3

    store = tmp_path / "g.db"
    shutil.copy(example_store, store)
    sqlite3.connect(tmp_path / "g.sync.db").execute("PRAGMA user_version = 1").connection.close()
    args = ["explain", "henry@example.org", "--store", str(store), "--timeline"]
    r = CliRunner().invoke(main, [*args, "--format", "json"])
    assert r.exit_code == 0, r.output
    assert [s["stage"] for s in json.loads(r.output)["stages"]] == ["prospect", "mql"]
    r = CliRunner().invoke(main, [*args, "--sync-db", str(tmp_path / "g.sync.db")])
    assert r.exit_code == 4, r.output
    assert "is not an mrules sync file (no link or opportunity table)" in r.stderr


def test_the_text_is_one_row_a_moment_in_time_order() -> None:
    """`render_text`: a row a moment, in time order whatever the order of the series;
    the stages entered at it, joined, in a column as wide as the widest; the score and
    the grade carried from the last moment that gave one, a grade of none as `-`; the
    stages not reached; and a prospect with nothing as its own line (found by mutation
    testing of reports/timeline.py: none of it was checked)."""
    t = {
        "email": "a@x",
        "stages": [
            {"stage": "prospect", "at": "2026-01-01T00:00:00Z"},
            {"stage": "mql", "at": "2026-01-01T00:00:00Z"},
            {"stage": "won", "at": "2025-12-20T00:00:00Z"},  # the CRM's date, before
        ],
        "score": [
            {"at": "2026-01-02T00:00:00Z", "score": 5},
            {"at": "2026-01-01T00:00:00Z", "score": 0},
        ],
        "grade": [
            {"at": "2026-01-03T00:00:00Z", "grade": "B"},
            {"at": "2026-01-04T00:00:00Z", "grade": None},
        ],
    }
    assert render_text(t).splitlines() == [
        "a@x: lifecycle",
        "  time                  stage          score  grade",
        "  2025-12-20T00:00:00Z  won                -  -",
        "  2026-01-01T00:00:00Z  prospect, mql      0  -",
        "  2026-01-02T00:00:00Z                     5  -",
        "  2026-01-03T00:00:00Z                     5  B",
        "  2026-01-04T00:00:00Z                     5  -",
        "  not reached: sql",
    ]
    one = {"email": "a@x", "stages": [{"stage": "sql", "at": "2026-02-01T00:00:00Z"}]}
    assert render_text(one | {"score": [], "grade": []}).splitlines() == [
        "a@x: lifecycle",
        "  time                  stage  score  grade",  # as wide as its title
        "  2026-02-01T00:00:00Z  sql        -  -",
        "  not reached: prospect, mql, won",
    ]
    empty = {"email": "a@x", "stages": [], "score": [], "grade": []}
    assert render_text(empty) == "a@x: lifecycle\n  nothing recorded yet"


def test_grade_points_one_a_moment_from_the_first_grade_known() -> None:
    """A grade of none before any is no point; two steps in one moment are one point, the
    last; a grade lost is a point of none; a point is a change from the last point. The
    prospect stage is the ledger's creation, not the state's time, and a prospect never
    scored starts at 0 (found by mutation testing of reports/timeline.py)."""
    t = timeline(
        "a@x",
        [
            entry(T0, "create prospect"),
            entry(T0, "grading", None, None),
            entry(T0 + 1, "grading", None, "C"),
            entry(T0 + 2, "grade", "C", "B"),
            entry(T0 + 2, "grading", "B", "A"),
            entry(T0 + 3, "grading", "A", None),
            entry(T0 + 4, "grading", None, "C"),  # the first grade again, not the last
        ],
        created="2026-01-01T00:00:00Z",  # the state's: the ledger's creation comes first
    )
    assert [(g["at"][-3:-1], g["grade"]) for g in t["grade"]] == [
        ("21", "C"),
        ("22", "A"),
        ("23", None),
        ("24", "C"),
    ]
    assert t["stages"] == [{"stage": "prospect", "at": "2026-09-21T14:13:20Z"}]
    assert t["score"] == [{"at": "2026-09-21T14:13:20Z", "score": 0}]
