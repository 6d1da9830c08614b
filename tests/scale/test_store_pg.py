"""The PostgreSQL store against a real server: the same reads as the SQLite store, resume, lock.

The suite starts a throwaway cluster (initdb and pg_ctl from Debian's postgresql
package) in a temporary folder on a free port, and stops it at the end; the
tests skip, saying why, where the binaries or psycopg are absent.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.outputs import export_records


def test_every_method_of_the_store_interface() -> None:
    """No server needed: PgStore answers every read and write the engine and readers use."""
    from mrules.store_pg import PgStore
    from mrules.storeapi import StateStore

    wanted = {n for n in dir(StateStore) if not n.startswith("_")} - {"path", "readonly"}
    assert wanted - set(dir(PgStore)) == set()


psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (mrules[postgres])")

ROOT = Path(__file__).resolve().parents[2]


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)")
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="mrules-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to start the server as postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = folder / "data"
    run = {"capture_output": True, "text": True, "check": False, "timeout": 120}
    made = subprocess.run([*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "mrules",
                           "--no-sync", "-E", "UTF8"], **run)  # fmt: skip
    if made.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed: {made.stderr.strip()[:300]}")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = subprocess.run([*prefix, pg_ctl, "-D", str(data), "-o", options, "-l",
                              str(folder / "log"), "-w", "start"], **run)  # fmt: skip
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"pg_ctl start failed: {started.stderr.strip()[:300]}")
    try:
        yield f"postgresql://mrules@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], **run)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def db(pg_url: str) -> Iterator[str]:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        for (table,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE 'mrules_%'"
        ).fetchall():
            conn.execute(f"DROP TABLE {table}")
    yield pg_url


def _cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


@pytest.fixture
def getcloudy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "examples/getcloudy/rules", "rules")
    data = (ROOT / "examples/getcloudy/events.jsonl").read_bytes()
    Path("events.jsonl").write_bytes(data + b"this line is not JSON\n")
    return tmp_path


def test_same_reads_as_sqlite(db: str, getcloudy: Path) -> None:
    code, out = _cli("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert code == 3, out
    code, out = _cli("run", "rules", "events.jsonl", "--store", db, "--actions", "pg.jsonl",
                     "--rejects", "pg.rejects.jsonl")  # fmt: skip
    assert code == 3, out
    assert Path("one.jsonl").read_bytes() == Path("pg.jsonl").read_bytes()
    assert Path("one.rejects.jsonl").read_bytes() == Path("pg.rejects.jsonl").read_bytes()
    for cmd in (["state", "export"], ["explain", "leung@example.com"], ["state", "outbox"]):
        a, b = _cli(*cmd, "--store", "one.db"), _cli(*cmd, "--store", db)
        assert a == b and a[0] == 0 and a[1]


def test_tails_after_a_seq_read_as_in_sqlite(db: str, getcloudy: Path) -> None:
    """The ledger and the CRM work after each seq (what a sync cycle reads) are the
    SQLite store's, and each the tail of the whole."""
    from mrules.store import Store
    from mrules.store_pg import PgStore

    assert _cli("run", "rules", "events.jsonl", "--store", "one.db", "-q")[0] == 3
    assert _cli("run", "rules", "events.jsonl", "--store", db, "-q")[0] == 3
    with Store.open("one.db", readonly=True) as lite, PgStore.open(db) as pg:
        last = lite.max_seq()
        assert pg.max_seq() == last > 50
        ledger, work = list(lite.ledger()), list(lite.crm_pending())
        assert len(work) > 5
        for k in range(0, last + 2):
            assert list(pg.ledger(after_seq=k)) == list(lite.ledger(after_seq=k)), k
            assert list(lite.ledger(after_seq=k)) == [e for e in ledger if e.seq > k], k
            assert list(pg.crm_pending(after_seq=k)) == [m for m in work if m.seq > k], k
            assert list(lite.crm_pending(after_seq=k)) == [m for m in work if m.seq > k], k


def test_resume_applies_nothing_twice(db: str, getcloudy: Path) -> None:
    lines = Path("events.jsonl").read_bytes().splitlines(keepends=True)
    Path("part.jsonl").write_bytes(b"".join(lines[:12]))
    assert _cli("run", "rules", "part.jsonl", "--store", "one.db", "-q")[0] == 0
    assert _cli("run", "rules", "part.jsonl", "--store", db, "-q")[0] == 0
    Path("part.jsonl").write_bytes(b"".join(lines))  # the file grew: resume after line 12
    assert _cli("run", "rules", "part.jsonl", "--store", "one.db", "-q")[0] == 3
    assert _cli("run", "rules", "part.jsonl", "--store", db, "-q")[0] == 3
    assert _cli("run", "rules", "part.jsonl", "--store", db, "-q")[0] == 3  # nothing new
    a, b = _cli("state", "export", "--store", "one.db"), _cli("state", "export", "--store", db)
    assert a == b and a[1].count("\n") > 3


@pytest.mark.parametrize("commit_every", ["1", "3"])
def test_three_stores_agree_over_resumed_runs_and_replayed_ids(
    db: str, getcloudy: Path, commit_every: str
) -> None:
    """SQLite, PostgreSQL and the store in memory over the same runs: a stream in two
    files, then the whole stream again from line 10 in a third (ids already applied),
    with a commit after every event or across commit boundaries. `state export`,
    `state outbox` and `explain` of every prospect are the same, byte for byte."""
    import mrules
    from mrules.memstore import MemoryStore

    lines = Path("events.jsonl").read_bytes().splitlines(keepends=True)
    Path("a.jsonl").write_bytes(b"".join(lines[:13]))
    Path("b.jsonl").write_bytes(b"".join(lines[13:]))
    Path("again.jsonl").write_bytes(b"".join(lines[9:]))
    files = ["a.jsonl", "b.jsonl", "again.jsonl"]
    memory = MemoryStore()
    for name in files:
        for store in ("one.db", db):
            code, out = _cli("run", "rules", name, "--store", store, "-q",
                             "--commit-every", commit_every)  # fmt: skip
            assert code in (0, 3), out
        mrules.run("rules", name, store=memory, commit_every=int(commit_every))
    exported = _cli("state", "export", "--store", "one.db")
    assert exported[0] == 0 and exported[1].count("\n") == 6
    assert _cli("state", "export", "--store", db) == exported
    in_memory = "".join(orjson.dumps(r).decode() + "\n" for r in export_records(memory))
    assert in_memory == exported[1]
    assert _cli("state", "outbox", "--store", db) == _cli("state", "outbox", "--store", "one.db")
    for line in exported[1].splitlines():
        email = json.loads(line)["email"]
        a, b = _cli("explain", email, "--store", "one.db"), _cli("explain", email, "--store", db)
        assert a == b and a[0] == 0, email


def test_one_writer_at_a_time(db: str, getcloudy: Path) -> None:
    from mrules.store_pg import PgStore

    with PgStore.open(db):
        code, out = _cli("run", "rules", "events.jsonl", "--store", db)
        assert code == 5 and "another run" in out
    assert _cli("run", "rules", "events.jsonl", "--store", db, "-q")[0] == 3


def test_unreachable_server_is_one_line(getcloudy: Path) -> None:
    code, out = _cli("run", "rules", "events.jsonl", "--store",
                     f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/x")  # fmt: skip
    assert code == 4 and "cannot connect" in out and "secret" not in out
    assert "Traceback" not in out
    with contextlib.suppress(FileNotFoundError):
        Path("x.rejects.jsonl").unlink()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgresql://u:p@secret@h/db", "postgresql://u@h/db"),  # a password with an @
        (
            "postgresql://u@h/db?password=secret&sslmode=require",
            "postgresql://u@h/db?sslmode=require",
        ),
        ("postgres://h/db?sslpassword=secret", "postgres://h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_messages_show_no_password(url: str, shown: str) -> None:
    """The password is hidden wherever the URL carries it: after the user, even with an
    `@` in it, and as a `password=` or `sslpassword=` parameter."""
    from mrules.store_pg import _shown

    assert _shown(url) == shown


def test_an_unreachable_server_shows_no_password_parameter(getcloudy: Path) -> None:
    url = f"postgresql://nobody@127.0.0.1:{_free_port()}/x?password=secret"
    code, out = _cli("run", "rules", "events.jsonl", "--store", url)
    assert code == 4 and "cannot connect" in out and "secret" not in out


def test_the_server_s_errors_are_one_line(db: str, getcloudy: Path) -> None:
    """libpq's hint on its own tab-indented line, the server's `LINE 1:` excerpt of the
    query and its caret: one line, as every `mrules: error:` is."""
    url = f"postgresql://nobody@127.0.0.1:{_free_port()}/x"
    code, out = _cli("run", "rules", "events.jsonl", "--store", url)
    assert code == 4 and "Connection refused" in out and out.count("\n") == 1, out
    with psycopg.connect(db, autocommit=True) as conn:  # another program's mrules_meta
        conn.execute("CREATE TABLE mrules_meta (k integer)")
    code, out = _cli("state", "export", "--store", db)
    assert code == 4 and 'column "value" does not exist' in out and out.count("\n") == 1, out


def _mrules_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        sql = "SELECT tablename FROM pg_tables WHERE tablename LIKE 'mrules_%' ORDER BY 1"
        return [t for (t,) in conn.execute(sql).fetchall()]


def test_a_database_without_a_store_is_no_store_to_read(db: str, getcloudy: Path) -> None:
    """As for a missing SQLite file: exit 2, `no store`, and nothing created; `segment`
    (which writes only to a store a run made) does not make one either."""
    url = db.replace("mrules@", "mrules:secret@")
    for cmd in (["state", "export"], ["state", "outbox"], ["explain", "leung@example.com"],
                ["segment", "rules"]):  # fmt: skip
        code, out = _cli(*cmd, "--store", url)
        assert code == 2 and "no store in" in out and out.count("\n") == 1, (cmd, out)
        assert "secret" not in out and "Traceback" not in out
    assert _mrules_tables(db) == []
    assert _cli("run", "rules", "events.jsonl", "--store", db, "-q")[0] == 3
    assert _cli("segment", "rules", "--store", db)[0] == 0


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("schema_version", "three", "the schema version"),
        ("clock", "soon", "the clock"),
        ("clock", "nan", "the clock"),
        ("clock", "1e308", "the clock"),  # finite, but no time of the years 1 to 9999
        ("seq", "12x", "the ledger's last seq"),
        ("seq", "9223372036854775807", "the ledger's last seq"),  # past 2**53
    ],
)
def test_a_damaged_setting_is_a_damaged_store(
    db: str, getcloudy: Path, key: str, value: str, what: str
) -> None:
    """A setting that is not a number is damage, exit 4 naming it, as in SQLite (it was an
    internal error, exit 70); a damaged stream anchor is refused, not taken as none."""
    assert _cli("run", "rules", "events.jsonl", "--store", db, "-q")[0] == 3
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE mrules_meta SET value = %s WHERE key = %s", (value, key))
    commands = [["run", "rules", "events.jsonl", "-q"]]
    if key == "schema_version":  # what every open reads; the others, what a run reads
        commands.append(["state", "export"])
    for cmd in commands:
        code, out = _cli(*cmd, "--store", db)
        assert code == 4 and f"is damaged ({what} is {value!r})" in out, (cmd, out)
        assert "Traceback" not in out and out.count("\n") == 1


def test_a_store_of_a_newer_mrules_says_to_upgrade(db: str, getcloudy: Path) -> None:
    """As the SQLite store says it: which schema this mrules reads, and what to do (the
    message stopped at the store's schema)."""
    from mrules import __version__
    from mrules.store_pg import SCHEMA_VERSION

    assert _cli("run", "rules", "events.jsonl", "--store", db, "-q")[0] == 3
    newer = SCHEMA_VERSION + 1
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE mrules_meta SET value = %s WHERE key = 'schema_version'", (newer,))
    said = (
        f"mrules: error: store {db} was written by a newer mrules (schema {newer}; this mrules"
        f" {__version__} reads schema {SCHEMA_VERSION} and older): upgrade mrules\n"
    )
    for cmd in (["run", "rules", "events.jsonl", "-q"], ["state", "export"]):
        assert _cli(*cmd, "--store", db) == (4, said), cmd


def test_a_damaged_stream_anchor_is_a_damaged_store(db: str, getcloudy: Path) -> None:
    assert _cli("run", "rules", "events.jsonl", "--store", db, "-q")[0] == 3
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE mrules_meta SET value = 'x' WHERE key LIKE 'stream_anchor:%'")
    code, out = _cli("run", "rules", "events.jsonl", "--store", db, "-q")
    assert code == 4 and "is damaged (the last event of stream" in out, out


def test_a_prospect_the_store_lacks_is_named_without_the_password(db: str, getcloudy: Path) -> None:
    """`state export --prospect` named the store by its URL, password and all."""
    assert _cli("run", "rules", "events.jsonl", "--store", db, "-q")[0] == 3
    url = db.replace("mrules@", "mrules:secret@")  # the test server trusts any password
    for cmd in (["state", "export", "--prospect", "nobody@example.com"],
                ["explain", "nobody@example.com"]):  # fmt: skip
        code, out = _cli(*cmd, "--store", url)
        assert code == 2 and "no prospect 'nobody@example.com' in" in out, out
        assert "secret" not in out


def test_the_python_api_opens_a_postgresql_url_as_the_cli_does(db: str, getcloudy: Path) -> None:
    """`mrules.run(..., store=URL)` and `open_store(URL)` take the CLI's `--store` URL."""
    import mrules
    from mrules.api import open_store
    from mrules.store_pg import PgStore

    assert _cli("run", "rules", "events.jsonl", "--store", "one.db", "-q")[0] == 3
    result = mrules.run("rules", "events.jsonl", store=db)
    assert isinstance(result.store, PgStore)
    result.store.close()
    assert not list(getcloudy.glob("postgres*"))  # no file named after the URL
    a, b = _cli("state", "export", "--store", "one.db"), _cli("state", "export", "--store", db)
    assert a == b and a[0] == 0 and a[1].count("\n") > 3
    with open_store(db, readonly=True) as pg, open_store("one.db", readonly=True) as lite:
        assert isinstance(pg, PgStore) and pg.max_seq() == lite.max_seq() > 50


def test_the_python_api_names_an_unreachable_server(getcloudy: Path) -> None:
    from mrules.api import open_store
    from mrules.storeapi import StoreError

    with pytest.raises(StoreError, match="cannot connect") as raised:
        open_store(f"postgres://nobody:secret@127.0.0.1:{_free_port()}/x")
    assert "secret" not in str(raised.value)
    assert sorted(p.name for p in getcloudy.iterdir()) == ["events.jsonl", "rules"]


BY_PROSPECT = 'settings {\n  round_robin = "by prospect"\n}\n'


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bench workload, small, with a line the reader rejects, in the working folder."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    import generate

    monkeypatch.chdir(tmp_path)
    generate.main([".", "--prospects", "200", "--events", "2500", "--seed", "11"])
    Path("rules/zz-partitions.mr").write_text(BY_PROSPECT)
    lines = Path("events.jsonl").read_bytes().splitlines(keepends=True)
    lines.insert(40, b"not json\n")
    Path("events.jsonl").write_bytes(b"".join(lines))
    return tmp_path


def test_partitioned_run_into_postgresql(db: str, generated: Path) -> None:
    """`--engine local --store postgresql://`: what one process writes into SQLite, read back."""
    code, out = _cli("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl",
                     "-q")  # fmt: skip
    assert code == 3, out
    assert _cli("partition", "events.jsonl", "--buckets", "7", "--out", "part", "-q")[0] == 0
    code, out = _cli("run", "rules", "part", "--engine", "local", "--workers", "2", "--store", db,
                     "--actions", "pg.jsonl", "--rejects", "pg.rejects.jsonl")  # fmt: skip
    assert code == 3, out
    assert "Traceback" not in out and "buckets 7/7" in out
    assert Path("one.jsonl").read_bytes() == Path("pg.jsonl").read_bytes()
    assert Path("one.jsonl").read_bytes().count(b"\n") > 3000
    assert Path("one.rejects.jsonl").read_bytes() == Path("pg.rejects.jsonl").read_bytes()
    export = _cli("state", "export", "--store", "one.db")
    assert export == _cli("state", "export", "--store", db) and export[1].count("\n") > 100
    emails = [line.split('"')[3] for line in export[1].splitlines()[::40]]
    for email in emails:
        a, b = _cli("explain", email, "--store", "one.db"), _cli("explain", email, "--store", db)
        assert a == b and a[0] == 0
    # No staged SQLite file is left behind in the working folder.
    assert not list(generated.glob("*.partitioned.db*")) and not list(generated.glob(".*merging*"))
    # The store now holds a run: a second partitioned run into it is refused before any task.
    code, out = _cli("run", "rules", "part", "--engine", "local", "--store", db)
    assert code == 2 and "not empty" in out and "Traceback" not in out
    # ...and `mrules run` continues it as it continues an SQLite store.
    extra = generated / "more.jsonl"
    extra.write_text('{"ts":"2031-01-01T00:00:00Z","type":"tick"}\n')
    assert _cli("run", "rules", str(extra), "--store", "one.db", "-q")[0] == 0
    assert _cli("run", "rules", str(extra), "--store", db, "-q")[0] == 0
    assert _cli("state", "export", "--store", "one.db") == _cli("state", "export", "--store", db)


def test_a_partitioned_run_the_database_refuses_leaves_no_log_and_runs_again(
    db: str, generated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer takes the database while the buckets run: exit 5, and the same command,
    once it is gone, writes the store and its log (the log put in place before the copy
    made it refuse `action log pg.jsonl is not empty`)."""
    import mrules.store_pg
    from mrules.store_pg import PgStore

    assert _cli("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl",
                "-q")[0] == 3  # fmt: skip
    assert _cli("partition", "events.jsonl", "--buckets", "3", "--out", "part", "-q")[0] == 0
    copy = mrules.store_pg.copy_from_sqlite

    def another_writer_first(url: str, path: Path) -> int:
        with PgStore.open(url):
            return copy(url, path)

    command = ["run", "rules", "part", "--engine", "local", "--store", db, "--actions",
               "pg.jsonl", "-q"]  # fmt: skip
    monkeypatch.setattr(mrules.store_pg, "copy_from_sqlite", another_writer_first)
    code, out = _cli(*command)
    assert code == 5 and "another run" in out and "Traceback" not in out
    assert not Path("pg.jsonl").exists()
    monkeypatch.setattr(mrules.store_pg, "copy_from_sqlite", copy)
    code, out = _cli(*command)
    assert code == 3, out
    assert Path("pg.jsonl").read_bytes() == Path("one.jsonl").read_bytes()
    assert _cli("state", "export", "--store", db) == _cli("state", "export", "--store", "one.db")


def test_a_rejected_line_with_a_nul_byte_is_kept(db: str, getcloudy: Path) -> None:
    """A line that is not JSON because of a raw NUL byte is a reject, kept in the store
    with its text: PostgreSQL's text takes no NUL, and the commit failed (exit 4) at
    every rerun, the store stopped for good by one damaged line. The NUL is kept as
    U+FFFD; the good lines after it are applied."""
    data = Path("events.jsonl").read_bytes()
    Path("events.jsonl").write_bytes(b'{"type": "tick"\x00}\n' + data)
    code, out = _cli("run", "rules", "events.jsonl", "--store", db, "--rejects", "r.jsonl")
    assert code == 3, out
    rejects = [json.loads(line) for line in Path("r.jsonl").read_text().splitlines()]
    assert rejects[0]["line"] == 1 and rejects[0]["text"] == '{"type": "tick"\ufffd}'
    code, out = _cli("state", "export", "--store", db)
    assert code == 0 and "leung@example.com" in out


def test_two_runs_on_standard_input_keep_both_runs_rejects(db: str, getcloudy: Path) -> None:
    """Each run on `-` numbers its lines from 1: the second run's rejected line 1 replaced
    the first run's in the store. Both are kept, as in the SQLite store."""
    good = Path("events.jsonl").read_text().splitlines(keepends=True)[0]
    for store, rejects in ((db, "pg.jsonl"), ("one.db", "one.jsonl")):
        for data in ("{oops\n" + good, "[1]\n" + good + "{}\n"):
            r = CliRunner().invoke(main, ["run", "rules", "-", "--store", store, "-q",
                                          "--rejects", rejects], input=data)  # fmt: skip
            assert r.exit_code == 3, r.output
    got = [
        (r["source"], r["line"]) for r in map(json.loads, Path("pg.jsonl").read_text().splitlines())
    ]
    assert got == [("- (run 1)", 1), ("- (run 2)", 1), ("- (run 2)", 3)]
    assert Path("pg.jsonl").read_bytes() == Path("one.jsonl").read_bytes()


def test_a_schema_3_store_gets_the_rule_s_do_not_sync_apart(db: str, tmp_path: Path) -> None:
    """The SQLite store's 4 -> 5 migration, in PostgreSQL's 3 -> 4: a store written
    before a rule's `do not sync` was kept apart from the CRM's deletion has no `dr`;
    its first open for writing gives it to Bob (marked by a rule, then deleted in the
    CRM: his history says the rule's step came last), not to Carol (marked by the
    deletion alone). The version was left at 3, so an older mrules took the store;
    the open goes on to 5 (the diagnostics table)."""
    from tests.sync.test_undelete_keeps_rule_mark import changes, world

    from mrules.store_pg import SCHEMA_VERSION, PgStore, copy_from_sqlite

    assert SCHEMA_VERSION == 5
    w = world(tmp_path)
    w.sync("run", "--until", "2026-11-02T09:20:00Z", "--changes", changes(
        w, "c1.jsonl",
        {"at": "2026-11-02T09:05:00Z", "op": "delete", "email": "bob@x.com"},
        {"at": "2026-11-02T09:06:00Z", "op": "delete", "email": "carol@x.com"},
    ))  # fmt: skip
    copy_from_sqlite(db, w.store)
    with psycopg.connect(db, autocommit=True) as conn:
        states = {e: orjson.loads(bytes(s)) for e, s in conn.execute(
            "SELECT email, state FROM mrules_prospects WHERE state IS NOT NULL")}  # fmt: skip
        assert states["bob@x.com"].get("dr") is True
        assert "dr" not in states["carol@x.com"]
        for email, raw in states.items():
            assert raw.get("ds") is True and raw.get("st") == "deleted"
            raw.pop("dr", None)
            conn.execute("UPDATE mrules_prospects SET state = %s WHERE email = %s",
                         (orjson.dumps(raw), email))  # fmt: skip
        conn.execute("UPDATE mrules_meta SET value = '3' WHERE key = 'schema_version'")
    PgStore.open(db, readonly=True).close()  # a reader migrates nothing
    with psycopg.connect(db, autocommit=True) as conn:
        assert all(b"dr" not in bytes(s) for (s,) in conn.execute(
            "SELECT state FROM mrules_prospects WHERE state IS NOT NULL"))  # fmt: skip
    PgStore.open(db).close()
    with psycopg.connect(db, autocommit=True) as conn:
        after = {e: orjson.loads(bytes(s)) for e, s in conn.execute(
            "SELECT email, state FROM mrules_prospects WHERE state IS NOT NULL")}  # fmt: skip
        version = conn.execute(
            "SELECT value FROM mrules_meta WHERE key = 'schema_version'").fetchone()[0]  # fmt: skip
    assert version == "5"
    assert after["bob@x.com"] == {**states["bob@x.com"], "dr": True}
    assert after["carol@x.com"] == states["carol@x.com"]


def test_segment_writes_chunks_that_no_other_session_sees_before_the_end(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mrules segment` on PostgreSQL writes every CHUNK prospects into one transaction, as
    on SQLite: memory does not follow the prospects matched, and a reader sees nothing of
    the chunks before the end. It held every matched prospect until one commit."""
    from tests.test_segment_chunks import _export, _fail_at_the_third_write, _rules, _store

    _store(db, 400)
    before = _export(db)
    seen = _fail_at_the_third_write(monkeypatch, db, None)
    code, out = _cli("segment", str(_rules(tmp_path)), "--store", db)
    assert code == 0, out
    assert "Lyonnais: 300 prospects matched" in out
    assert seen == [before]  # two chunks of 50 written, none of them visible
    after = _export(db)
    assert after != before and after.count('"lyon"') == 300


@pytest.mark.parametrize(
    ("what", "code", "says"),
    [
        (KeyboardInterrupt(), 130, "the store is as it was"),
        (OSError(28, "No space left on device"), 4, "No space left on device"),
    ],
)
def test_segment_stopped_midway_leaves_the_database_as_it_was(
    db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: BaseException,
    code: int,
    says: str,
) -> None:
    from tests.test_segment_chunks import _export, _fail_at_the_third_write, _rules, _store

    _store(db, 400)
    before = _export(db)
    _fail_at_the_third_write(monkeypatch, db, what)
    result = CliRunner().invoke(main, ["segment", str(_rules(tmp_path)), "--store", db])
    assert result.exit_code == code, result.output
    assert says in result.output and "Traceback" not in result.output
    monkeypatch.undo()
    assert _export(db) == before  # the two chunks written were rolled back with the rest
    again = _cli("segment", str(_rules(tmp_path)), "--store", db)  # and it starts over
    assert again[0] == 0 and "Lyonnais: 300 prospects matched" in again[1]
