"""`mrules report` and `explain --timeline` given paths a new user gives: the store as
the page's OUT, a sync file that is not one, a name with `#` in it, an empty period."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import mrules

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "getcloudy" / "rules"


@pytest.fixture
def copy(store: str, tmp_path: Path) -> Path:
    """A copy of the reports fixture's store and sync file, to write over safely."""
    target = tmp_path / "fx.db"
    shutil.copy(store, target)
    shutil.copy(Path(store).with_name("fx.sync.db"), tmp_path / "fx.sync.db")
    return target


@pytest.mark.parametrize(
    ("out", "what"),
    [
        ("fx.db", "the store"),
        ("fx.db-wal", "the store"),
        ("fx.sync.db", "the sync file"),
        ("fx.crm.db", "the CRM file"),
        ("link.html", "the store"),  # a link to the store
        ("diff.json", "the --replay-diff file"),
    ],
)
def test_html_refuses_to_write_over_what_it_reads(
    copy: Path, monkeypatch: pytest.MonkeyPatch, out: str, what: str
) -> None:
    monkeypatch.chdir(copy.parent)
    (copy.parent / "link.html").symlink_to(copy)
    (copy.parent / "diff.json").write_text('{"mql": {}, "score": {}, "rules": {}}')
    before = {p.name: p.read_bytes() for p in copy.parent.iterdir() if p.is_file()}
    r = mrules("report", "html", out, "--store", "fx.db", "--replay-diff", "diff.json")
    assert r.exit_code == 2, r.output
    assert f"OUT {out} is {what}" in r.stderr and "would destroy it" in r.stderr
    after = {p.name: p.read_bytes() for p in copy.parent.iterdir() if p.is_file()}
    assert after == before  # the store (it had become the HTML page) and the rest are kept


def test_html_refuses_a_rule_file_of_rules(copy: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    target = rules / "10-completion-actions.mr"
    before = target.read_bytes()
    r = mrules("report", "html", target, "--store", copy, "--rules", rules)
    assert r.exit_code == 2 and "is a rule file of --rules" in r.stderr
    assert target.read_bytes() == before


def test_html_with_an_empty_out_is_a_usage_error(copy: Path) -> None:
    r = mrules("report", "html", "", "--store", copy)
    assert r.exit_code == 2 and "OUT needs a file name" in r.stderr


def test_funnel_csv_by_period_keeps_its_header_when_no_period_has_data(copy: Path) -> None:
    r = mrules("report", "funnel", "--store", copy, "--by", "month", "--format", "csv",
               "--until", "0001-02-01")  # fmt: skip
    assert r.exit_code == 0, r.output
    # one row a period (docs/reports.md), not the stage table when there is none
    assert r.stdout == (
        "period,visitor,prospect,mql,sql,won,visitor_to_prospect_reached,visitor_to_prospect_rate,"
        "prospect_to_mql_reached,prospect_to_mql_rate,mql_to_sql_reached,mql_to_sql_rate,"
        "sql_to_won_reached,sql_to_won_rate\n"
    )


def test_timeline_refuses_a_sync_file_that_is_not_one(copy: Path, tmp_path: Path) -> None:
    email = "p01@x.example"
    assert mrules("explain", email, "--store", copy, "--timeline").exit_code == 0
    for bad, message in (
        (tmp_path / "garbage.db", "cannot read sync file"),
        (copy, "is the mrules store, not a sync file"),  # the store itself
    ):
        if bad.name == "garbage.db":
            bad.write_bytes(b"not a database\x00\xff" * 100)
        r = mrules("explain", email, "--store", copy, "--timeline", "--sync-db", bad)
        assert r.exit_code == 4, r.output  # was exit 0 with "not reached: sql, won"
        assert message in r.stderr
    # An empty file given as --sync-db is no sync file; the default one, beside the store,
    # with no table yet is what a first sync killed as it made it leaves: no sync yet
    # (docs/sync.md), as `report funnel` reads it too.
    empty = tmp_path / "empty.sync.db"
    empty.write_bytes(b"")
    r = mrules("explain", email, "--store", copy, "--timeline", "--sync-db", empty)
    assert r.exit_code == 4 and "is not an mrules sync file" in r.stderr
    (tmp_path / "fx.sync.db").write_bytes(b"")  # the default one, beside the store
    r = mrules("explain", email, "--store", copy, "--timeline")
    assert r.exit_code == 0, r.output
    assert "not reached: sql, won" in r.stdout  # the fixture's sync file has both


def test_timeline_reads_a_sync_file_with_a_hash_in_its_name(copy: Path, tmp_path: Path) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    store = folder / "a#b.db"
    shutil.copy(copy, store)
    shutil.copy(tmp_path / "fx.sync.db", folder / "a#b.sync.db")
    expected = mrules("explain", "p01@x.example", "--store", copy, "--timeline")
    r = mrules("explain", "p01@x.example", "--store", store, "--timeline")
    assert r.exit_code == 0, r.output
    assert r.stdout == expected.stdout  # the same stages, SQL and won included
    assert " won " in r.stdout
    assert not (folder / "a").exists()  # made (for writing) by a URI cut at the `#`


@pytest.mark.parametrize(
    "args",
    [
        ["report", "funnel"],
        ["report", "campaigns"],
        ["explain", "--timeline", "PROSPECT"],
    ],
    ids=["funnel", "campaigns", "timeline"],
)
def test_reading_commands_leave_no_wal_files_beside_the_store_or_the_sync_file(
    copy: Path, args: list[str]
) -> None:
    """A `mode=ro` connection cannot remove SQLite's `-wal`/`-shm`: the reports and the
    timeline left them beside the sync file (mrules.sqlitefiles opens it so they go)."""
    import sqlite3

    conn = sqlite3.connect(copy.with_name("fx.sync.db"))
    conn.execute("PRAGMA journal_mode = WAL")  # as `mrules sync` makes its file
    email = conn.execute("SELECT min(prospect) FROM link").fetchone()[0]
    conn.close()
    before = sorted(p.name for p in copy.parent.iterdir())
    argv = [email if a == "PROSPECT" else a for a in args]
    res = mrules(*argv, "--store", copy, "--sync-db", copy.with_name("fx.sync.db"))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in copy.parent.iterdir()) == before


def test_another_stores_sync_file_is_refused(copy: Path, tmp_path: Path) -> None:
    """`--sync-db` naming another store's sync file gave 0 SQL and 0 won in every report,
    without a word: its links name none of this store's prospects. The sync file notes
    the store's id at each cycle; another store's is exit 2, saying so. A file from
    before the id (none noted) is read as before."""
    import sqlite3

    other = tmp_path / "other" / "g.db"
    other.parent.mkdir()
    example = RULES.parent
    assert mrules("crm", "load", example / "crm", "--store", other).exit_code == 0
    assert mrules("run", RULES, example / "events.jsonl", "--store", other).exit_code == 0
    assert mrules("sync", "apply", "--rules", RULES, "--store", other).exit_code == 0
    foreign = other.with_name("g.sync.db")
    for report in ("funnel", "campaigns", "rules", "html"):
        out = ["-"] if report == "html" else []
        r = mrules("report", report, *out, "--store", copy, "--sync-db", foreign)
        assert r.exit_code == 2, (report, r.output)
        assert r.stderr.startswith(f"mrules: error: the sync file {foreign} belongs to another"
                                   " store (store id "), r.stderr  # fmt: skip
        assert "give this store's own, NAME.sync.db beside the store NAME.db" in r.stderr
    own = copy.with_name("fx.sync.db")
    r = mrules("report", "funnel", "--store", copy, "--sync-db", own, "--format", "json")
    assert r.exit_code == 0, r.output
    conn = sqlite3.connect(foreign)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'store_id'")
    conn.close()
    r = mrules("report", "funnel", "--store", copy, "--sync-db", foreign, "--format", "json")
    assert r.exit_code == 0, r.output
