"""Failures of `mrules run`, `state`, `explain` and `mrules.run` met by a hostile environment.

Each test holds one defect found by an audit to its fix: a one-line message, the
documented exit code (docs/exit-codes.md), no traceback, and no file left behind.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import mrules as mrules_api
from conftest import EXAMPLE, mrules
from mrules.events import EventSourceError
from mrules.exitcodes import ExitCode
from mrules.storeapi import StorePathError

EVENTS = EXAMPLE / "events.jsonl"
RULES = EXAMPLE / "rules"
LONG = "a" * 5000  # longer than any file name the system takes (ENAMETOOLONG)


@pytest.fixture
def store(here: Path) -> Path:
    """A complete store of the example, closed (no `-wal` beside it)."""
    res = mrules("run", RULES, EVENTS, "--store", "s.db", "-q")
    assert res.exit_code == ExitCode.OK, res.output
    assert not Path("s.db-wal").exists()
    return here / "s.db"


def _readers(db: Path) -> dict[str, list[str | Path]]:
    return {
        "state export": ["state", "export", "--store", db],
        "state outbox": ["state", "outbox", "--store", db],
        "explain": ["explain", "leung@example.com", "--store", db],
    }


def _left_beside(db: Path) -> list[str]:
    return sorted(
        p.name for p in db.parent.iterdir() if p.name in (f"{db.name}-wal", f"{db.name}-shm")
    )


def test_reading_a_damaged_store_leaves_no_wal_or_shm_beside_it(store: Path) -> None:
    """A truncated store was refused (exit 4) by `state export`, `state outbox` and
    `explain`, but each left `s.db-wal` and `s.db-shm` behind: after the read-write
    connection failed, a second, read-only one was tried, which cannot remove them."""
    os.truncate(store, store.stat().st_size // 3)
    for name, args in _readers(store).items():
        res = mrules(*args)
        assert res.exit_code == ExitCode.STORE, (name, res.output)
        assert "is damaged" in res.stderr, (name, res.stderr)
        assert _left_beside(store) == [], name


def test_reading_another_programs_wal_database_leaves_nothing_beside_it(here: Path) -> None:
    """The same for a SQLite database in WAL mode that is not a store (exit 4)."""
    db = here / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    assert _left_beside(db) == []
    for name, args in _readers(db).items():
        res = mrules(*args)
        assert res.exit_code == ExitCode.STORE, (name, res.output)
        assert "not an mrules store" in res.stderr, (name, res.stderr)
        assert _left_beside(db) == [], name


def test_a_good_store_is_read_and_left_tidy(store: Path) -> None:
    """What the fix keeps: a store SQLite opens is read as before (the fallback to a
    read-only connection, for a read-only store, is in test_faults.py)."""
    res = mrules("state", "export", "--store", store)
    assert res.exit_code == ExitCode.OK, res.output
    assert len(res.stdout.splitlines()) == 6
    assert _left_beside(store) == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["run", RULES, LONG, "--store", "s.db"], id="run-events"),
        pytest.param(["run", RULES, EVENTS, "--store", LONG], id="run-store"),
        pytest.param(
            ["run", RULES, EVENTS, "--store", "s.db", "--actions", f"{LONG}/a.jsonl"],
            id="run-actions-folder",
        ),
        pytest.param(
            ["run", RULES, EVENTS, "--store", "s.db", "--rejects", f"{LONG}/r.jsonl"],
            id="run-rejects-folder",
        ),
        pytest.param(["state", "export", "--store", LONG], id="state-export"),
        pytest.param(["state", "outbox", "--store", LONG], id="state-outbox"),
        pytest.param(["explain", "a@b.c", "--store", LONG], id="explain"),
        pytest.param(
            ["explain", "leung@example.com", "--store", "s.db", "--timeline", "--sync-db", LONG],
            id="explain-sync-db",
        ),
    ],
)
def test_a_name_too_long_is_a_usage_error_not_an_internal_error(
    store: Path, args: list[str | Path]
) -> None:
    """A path longer than the system takes made pathlib raise OSError (ENAMETOOLONG):
    `mrules: internal error` and exit 70. Now: one line naming the path, exit 2."""
    res = mrules(*args)
    assert isinstance(res.exception, SystemExit), res.exc_info
    assert res.exit_code == ExitCode.USAGE, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrules: error: "), res.stderr
    assert "Traceback" not in res.output


def test_a_loop_of_symbolic_links_as_store_or_events_says_so(store: Path, here: Path) -> None:
    """A loop of links (ELOOP) was `no such file` for the events and `unable to open
    database file` (exit 4) for the store; now both name the loop, exit 2."""
    os.symlink("loop-b", "loop-a")
    os.symlink("loop-a", "loop-b")
    for args in (["run", RULES, "loop-a", "--store", "s.db"],
                 ["run", RULES, EVENTS, "--store", "loop-a"],
                 ["state", "export", "--store", "loop-a"]):  # fmt: skip
        res = mrules(*args)
        assert res.exit_code == ExitCode.USAGE, (args, res.output)
        assert "Too many levels of symbolic links" in res.stderr, (args, res.stderr)


def test_the_api_raises_its_documented_errors_for_a_name_too_long(here: Path) -> None:
    """`mrules.run` raised a bare OSError; its docstring says StoreError (the store) and
    EventSourceError (the events)."""
    with pytest.raises(EventSourceError, match="File name too long"):
        mrules_api.run(RULES, LONG)
    with pytest.raises(StorePathError, match="File name too long"):
        mrules_api.run(RULES, EVENTS, store=LONG)
    assert not any(here.iterdir()), "nothing is created"


def test_rejected_lines_of_a_run_in_memory_are_shown_with_their_numbers(here: Path) -> None:
    """`--store :memory:` has no rejects file beside it: the run exited 3 ("they are in
    the rejects file") but wrote the rejected lines nowhere, and the summary said
    `rejected 2 -> None`. Now their numbers and reasons are printed as warnings."""
    lines = EVENTS.read_bytes().splitlines(keepends=True)
    bad = [*lines[:2], b'{"ts":"2026-11-02T09:00:00Z","type":"page_veiw"}\n', b"\xff\n"]
    Path("bad.jsonl").write_bytes(b"".join(bad + lines[2:]))
    res = mrules("run", RULES, "bad.jsonl", "--store", ":memory:", "-q")
    assert res.exit_code == ExitCode.REJECTS, res.output
    assert "line 3 of bad.jsonl rejected: unknown type 'page_veiw'" in res.stderr, res.stderr
    assert "line 4 of bad.jsonl rejected: not UTF-8 text" in res.stderr, res.stderr
    assert "give --rejects FILE" in res.stderr
    assert sorted(p.name for p in here.iterdir()) == ["bad.jsonl"], "nothing is written"
    # Given a rejects file, it holds them, and nothing more is printed.
    res = mrules("run", RULES, "bad.jsonl", "--store", ":memory:", "-q", "--rejects", "r.jsonl")
    assert res.exit_code == ExitCode.REJECTS, res.output
    assert "rejected:" not in res.stderr
    assert len(Path("r.jsonl").read_text().splitlines()) == 2


def test_the_summary_of_a_run_in_memory_names_no_rejects_file(here: Path) -> None:
    """Without -q the summary of a `--store :memory:` run still read `rejected 2  → None`:
    there is no file; the warnings above it give the lines."""
    Path("bad.jsonl").write_bytes(EVENTS.read_bytes() + b"[1]\n{}\n")
    res = mrules("run", RULES, "bad.jsonl", "--store", ":memory:")
    assert res.exit_code == ExitCode.REJECTS, res.output
    row = next(line for line in res.stderr.splitlines() if "│ rejected" in line)
    assert row.split("│")[2].strip() == "2", row
    assert "None" not in res.stderr
    assert "give --rejects FILE" in res.stderr


def _closed(redirect: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`mrules ARGS` in a shell that closes standard input (`<&-`) or output (`>&-`)."""
    cmd = " ".join(shlex.quote(str(a)) for a in (sys.executable, "-m", "mrules", *args))
    return subprocess.run(
        ["sh", "-c", f"exec {cmd} {redirect}"],
        stdout=None if redirect == ">&-" else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )


def test_events_from_a_closed_standard_input_is_a_usage_error(here: Path) -> None:
    """`mrules run RULES - <&-` was `internal error: AttributeError: 'NoneType' object
    has no attribute 'buffer'`, exit 70; now exit 2, and no store is created."""
    res = _closed("<&-", "run", RULES, "-", "--store", "s.db")
    assert res.returncode == ExitCode.USAGE, res.stderr
    assert res.stderr.startswith("mrules: error: - reads the events from standard input"), (
        res.stderr
    )
    assert "internal error" not in res.stderr
    assert not Path("s.db").exists()
    saved = sys.stdin
    try:  # the API says so with its documented error
        sys.stdin = None  # type: ignore[assignment]
        with pytest.raises(EventSourceError, match="standard input is closed"):
            mrules_api.run(RULES, "-")
    finally:
        sys.stdin = saved


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["state", "export"], id="state-export"),
        pytest.param(["state", "outbox"], id="state-outbox"),
        pytest.param(["explain", "leung@example.com"], id="explain"),
        pytest.param(["explain", "leung@example.com", "--format", "json"], id="explain-json"),
    ],
)
def test_a_closed_standard_output_is_exit_4(store: Path, args: list[str]) -> None:
    """`mrules state export --store s.db >&-` was exit 70 (AttributeError); `explain`
    printed nothing and exited 0. A closed output is exit 4, as a closed pipe is."""
    res = _closed(">&-", *args, "--store", store)
    assert res.returncode == ExitCode.STORE, res.stderr
    assert res.stderr.startswith("mrules: error: standard output is closed"), res.stderr


def test_segment_into_a_closed_standard_output_changes_nothing(store: Path) -> None:
    """`mrules segment RULES --store s.db >&-` segmented the store, then lost the counts
    it prints and exited 0. It is exit 4 before any work, as the readers are."""
    rules = store.parent / "rules"
    shutil.copytree(RULES, rules)
    with (rules / "30-automation.mr").open("a", encoding="utf-8") as f:
        f.write('\nsegmentation rule "Backfill" {\n'
                '  when all { submitted form "Demande Get Cloudy" }\n'
                '  then { add tag "backfilled" }\n}\n')  # fmt: skip
    before = mrules("state", "export", "--store", store).stdout
    res = _closed(">&-", "segment", rules, "--store", store)
    assert res.returncode == ExitCode.STORE, res.stderr
    assert res.stderr.startswith("mrules: error: standard output is closed"), res.stderr
    assert mrules("state", "export", "--store", store).stdout == before
    res = mrules("segment", rules, "--store", store)  # with an output, it segments
    assert res.exit_code == ExitCode.OK, res.output
    assert "Backfill: 3 prospects matched" in res.stdout
    assert mrules("state", "export", "--store", store).stdout.count('"backfilled"') == 3


class _OnlyRead:
    """An object with `read` and nothing else of a file's."""

    def read(self, size: int = -1) -> bytes:
        return b""


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        pytest.param({"rules": None}, "rules must be a rule folder or file", id="rules-None"),
        pytest.param({"rules": 5}, "not int", id="rules-int"),
        pytest.param({"rules": b"rules"}, "not bytes", id="rules-bytes"),
        pytest.param({"rules": [RULES, 5]}, "not list of int", id="rules-list-of-int"),
        pytest.param({"events": None}, "events must be a path", id="events-None"),
        pytest.param({"events": 5}, "not int", id="events-int"),
        pytest.param(
            {"events": b'{"ts":"2026-11-02T09:00:00Z","type":"tick"}\n'},
            "not bytes",
            id="events-bytes",
        ),
        pytest.param(
            {"events": {"ts": "2026-11-02T09:00:00Z", "type": "tick"}},
            "one event",
            id="events-one-dict",
        ),
        pytest.param({"source": 5}, "source must be a str", id="source-int"),
        pytest.param({"events": _OnlyRead()}, "not _OnlyRead", id="events-only-read"),
        pytest.param({"on_commit": 5}, "on_commit must be a function", id="on-commit-int"),
        pytest.param({"on_start": "go"}, "on_start must be a function", id="on-start-str"),
        pytest.param(
            {"progress": 5, "events": [{"ts": "2026-11-02T09:00:00Z", "type": "tick"}] * 600},
            "progress must be a function",
            id="progress-int",
        ),
        pytest.param({"wait": "no"}, "wait must be True or False", id="wait-str"),
    ],
)
def test_the_api_names_an_argument_of_the_wrong_type(
    here: Path, kwargs: dict[str, object], words: str
) -> None:
    """`mrules.run(None, ...)` raised "'NoneType' object is not iterable"; `rules=b"x"`
    looked for a rule file named `120`; `events=b"..."` or one dict ran, rejecting every
    byte or key as a line; `source=5` failed deep in the store; an object with `read`
    alone raised AttributeError ('seekable'); `on_commit=5` (`on_start`, `progress`) raised
    "'int' object is not callable" after the first commit (or 512 lines), the store
    written. Now a TypeError naming the argument, before any work."""
    args: dict[str, object] = {"rules": RULES, "events": EVENTS, "store": "s.db", **kwargs}
    with pytest.raises(TypeError, match=words):
        mrules_api.run(args.pop("rules"), args.pop("events"), **args)  # type: ignore[arg-type]
    assert not Path("s.db").exists()


def test_the_api_refuses_a_closed_events_file_in_plain_words(here: Path) -> None:
    """A closed file raised "ValueError: peek of closed file" from inside the reader."""
    f = open(EVENTS, "rb")  # noqa: SIM115 - closed on purpose
    f.close()
    with pytest.raises(ValueError, match="events: the file is closed"):
        mrules_api.run(RULES, f, store="s.db")
    assert not Path("s.db").exists()
    with open(EVENTS, "rb") as f:  # open, it runs
        assert mrules_api.run(RULES, f).summary.applied == 27


def test_the_api_still_takes_any_iterable_of_rule_paths(here: Path) -> None:
    for rules in ([RULES], (str(RULES),), iter([RULES])):
        assert mrules_api.run(rules, EVENTS).summary.applied == 27


def test_a_zone_offset_out_of_range_is_rejected_in_plain_words(here: Path) -> None:
    """RFC 3339 offsets are -23:59 to +23:59. `+00:60` was read as `+01:00` and `+00:99`
    as `+01:39` (the event applied an hour or more off); `+24:00` was rejected with
    Python's words: `offset must be a timedelta strictly between -timedelta(hours=24)
    and timedelta(hours=24), not datetime.timedelta(days=1).`"""
    lines = [f'{{"ts":"2026-11-02T09:00:00{zone}","type":"tick"}}\n'
             for zone in ("+00:60", "-00:99", "+24:00", "+23:59")]  # fmt: skip
    Path("e.jsonl").write_text("".join(lines))
    res = mrules("run", RULES, "e.jsonl", "--store", "s.db", "-q")
    assert res.exit_code == ExitCode.REJECTS, res.output
    rejects = [json.loads(x) for x in Path("s.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [1, 2, 3]
    assert all(r["reason"].endswith("(the zone offset must be -23:59 to +23:59)") for r in rejects)
    res = mrules("run", RULES, EVENTS, "--store", "s.db", "--now", "2026-11-09T00:00:00-24:00")
    assert res.exit_code == ExitCode.USAGE, res.output
    assert "timedelta" not in res.stderr and "-23:59 to +23:59" in res.stderr, res.stderr


def test_text_that_is_not_utf8_in_the_store_is_reported_as_damage(store: Path) -> None:
    """Bytes overwritten in a page can leave bytes that are not UTF-8 where SQLite has
    text: the message was `cannot read store s.db: Could not decode to UTF-8 column
    'email' with text '<the bytes>'; run the same command again; if it fails again,
    please report it`. It is damage: say so, with the advice for a damaged store."""
    conn = sqlite3.connect(store)
    conn.execute(
        "UPDATE prospects SET email = CAST(X'6C65FF1B5B326A' AS TEXT)"
        " WHERE email = 'leung@example.com'"
    )
    conn.commit()
    conn.close()
    res = mrules("state", "export", "--store", store)
    assert res.exit_code == ExitCode.STORE, res.output
    line = res.stderr.strip()
    assert "s.db is damaged (column email holds bytes that are not UTF-8 text)" in line
    assert "from a backup" in line and "report" not in line, line
    assert "\x1b" not in line, "the bytes themselves are not printed"
    # Explaining another prospect reads only that prospect's rows and the names they use.
    res = mrules("explain", "ivy@bigcorp.example", "--store", store)
    assert res.exit_code == 0 and "ivy@bigcorp.example: score" in res.output, res.output
    # The names those rows use are text too: damaged, they are damage for explain.
    conn = sqlite3.connect(store)
    conn.execute("UPDATE names SET text = CAST(X'6C65FF1B5B326A' AS TEXT)")
    conn.commit()
    conn.close()
    res = mrules("explain", "ivy@bigcorp.example", "--store", store)
    assert res.exit_code == ExitCode.STORE, res.output
    line = res.stderr.strip()
    assert "s.db is damaged (column text holds bytes that are not UTF-8 text)" in line, line
    assert "\x1b" not in line, "the bytes themselves are not printed"


@pytest.mark.parametrize(("value", "ok"), [("'x'", False), ("-1", False), ("1.5", False),
                                           ("'7'", True), ("7", True)])  # fmt: skip
def test_a_damaged_start_of_an_action_log_is_damage_not_an_internal_error(
    store: Path, value: str, ok: bool
) -> None:
    """The store notes where an action log not written yet starts; that note damaged
    (`x`) made the next run with the empty log an internal error (exit 70). A number kept
    as digits (a store from before the meta table kept numbers) is read as the number."""
    res = mrules("run", RULES, EVENTS, "--store", store, "--actions", "a.jsonl", "-q")
    assert res.exit_code == 0, res.output
    Path("a.jsonl").write_bytes(b"")  # nothing written yet: the noted start is read
    conn = sqlite3.connect(store)
    conn.execute(f"UPDATE meta SET value = {value} WHERE key LIKE 'actions_log:%'")
    conn.commit()
    conn.close()
    res = mrules("run", RULES, EVENTS, "--store", store, "--actions", "a.jsonl", "-q")
    if ok:  # the rows after seq 7 written: the log holds what the store holds after it
        assert res.exit_code == 0, res.output
        seqs = [json.loads(line)["seq"] for line in Path("a.jsonl").read_text().splitlines()]
        assert seqs and seqs[0] == 8 and seqs == sorted(seqs), seqs[:3]
        return
    assert res.exit_code == ExitCode.STORE, res.output
    line = res.stderr.strip()
    assert "s.db is damaged (the start of action log " in line, line
    assert "from a backup" in line and "internal error" not in line, line


def test_a_store_given_as_a_dangling_symlink_is_created_at_its_target(here: Path) -> None:
    """`--store link.db`, a symlink to a store not made yet: the store was made beside
    the link, could not be linked into place (the link is there), and SQLite then
    created an empty file at the target: `link.db is an empty SQLite database` (exit 4),
    and every later run refused the 0-byte file. A link into a folder that does not
    exist was `cannot create lock file` (exit 4) rather than the folder's usage error."""
    os.symlink(here / "data" / "real.db", "link.db")
    (here / "data").mkdir()
    res = mrules("run", RULES, EVENTS, "--store", "link.db", "-q")
    assert res.exit_code == ExitCode.OK, res.output
    assert (here / "data" / "real.db").stat().st_size > 0
    res = mrules("state", "export", "--store", "link.db")
    assert res.exit_code == ExitCode.OK, res.output
    assert len(res.stdout.splitlines()) == 6
    os.symlink(here / "missing" / "real.db", "nowhere.db")
    res = mrules("run", RULES, EVENTS, "--store", "nowhere.db", "-q")
    assert res.exit_code == ExitCode.USAGE, res.output
    assert "folder" in res.stderr and "missing does not exist" in res.stderr, res.stderr


def test_a_dict_event_nested_too_deeply_or_holding_itself_is_rejected(here: Path) -> None:
    """`mrules.run(rules, [dicts])` stopped with RecursionError (a traceback, and every
    event after it lost) for a dict event nested thousands of levels deep or that holds
    itself; a bad line is rejected with its number and the run goes on."""
    base = {"ts": "2026-11-02T09:00:00Z", "type": "prospect_update", "prospect": "a@b.c"}
    deep: dict[str, object] = {}
    inner = deep
    for _ in range(100_000):
        inner["x"] = {}
        inner = inner["x"]  # type: ignore[assignment]
    itself: dict[str, object] = {}
    itself["self"] = itself
    looped: list[object] = []
    looped.append(looped)
    events = [{**base, "fields": deep}, {**base, "fields": itself},
              {**base, "fields": {"l": looped}}, base]  # fmt: skip
    result = mrules_api.run(RULES, events)
    assert result.summary.applied == 1
    assert [(r.line, r.reason) for r in result.store.rejects()] == [
        (n, "not JSON: nested too deeply, or it holds itself") for n in (1, 2, 3)
    ]


_COMMANDS = ("run", "state export", "state outbox", "explain")


@pytest.mark.parametrize(
    ("sql", "commands", "words"),
    [
        pytest.param("UPDATE meta SET value = 1e999 WHERE key = 'clock'", ["run"],
                     "the clock is 'inf'", id="clock-infinite"),
        pytest.param("UPDATE history SET ts = 'abc'", ["state export", "explain", "state outbox"],
                     "a history row cannot be read", id="history-time-not-a-number"),
        pytest.param("INSERT INTO shared VALUES ('k', X'FF')", ["run"],
                     "its shared state is not JSON", id="shared-not-json"),
        # Found by damaging every column in turn: the compiled build's checks of declared
        # types (`TypeError`), or a shape the engine uses later, were exit 70.
        pytest.param("UPDATE history SET ts = 1e300", ["state export", "explain", "state outbox"],
                     "its time is '1e+300'", id="history-time-past-year-9999"),
        pytest.param("UPDATE history SET event = 'abc' WHERE id = 1", ["run"],
                     "an applied event's hash is 'abc'", id="history-event-hash-text"),
        # Found at start at the top of the last generation, where SQLite sorts blobs.
        pytest.param("UPDATE history SET event = X'FF' WHERE id = (SELECT max(id) FROM history"
                     " WHERE event IS NOT NULL)", ["run"],
                     "an applied event's hash is", id="history-event-hash-blob"),
        pytest.param("UPDATE rules SET first_seen = 'abc'", ["run"],
                     "was first seen is 'abc'", id="rule-first-seen-text"),
        pytest.param("UPDATE names SET text = X'FF'", list(_COMMANDS),
                     "(name ", id="name-a-blob"),
        pytest.param("UPDATE prospects SET state = 3.5", ["run"],
                     "the state of prospect", id="prospect-state-a-number"),
        pytest.param("INSERT INTO shared VALUES (X'FF', '1')", ["run"],
                     "shared state", id="shared-key-a-blob"),
        pytest.param("UPDATE shared SET value = '7' WHERE key = 'activity_keys'", ["run"],
                     "its shared state 'activity_keys' is '7'", id="shared-activity-keys-a-number"),
        pytest.param("INSERT INTO shared VALUES ('round_robin:x', '[1]')", ["run"],
                     "its shared state 'round_robin:x'", id="shared-round-robin-a-list"),
    ],
)  # fmt: skip
def test_a_stored_value_mrules_cannot_read_is_damage_exit_4(
    store: Path, sql: str, commands: list[str], words: str
) -> None:
    """docs/store.md: a value SQLite reads fine but mrules cannot is reported as damage,
    exit 4. An infinite clock (`OverflowError` at the first commit), a history time that
    is text (`TypeError` in `iso`) and shared state that is not JSON (`JSONDecodeError`
    when the run starts) were `internal error`, exit 70; so were the other cases, some
    only in the compiled build, which checks declared types where values are received."""
    conn = sqlite3.connect(store)
    conn.execute(sql)
    conn.commit()
    conn.close()
    args = {
        "run": ["run", RULES, EVENTS, "--store", store, "-q", "--now", "2027-01-01T00:00:00Z"],
        "state export": ["state", "export", "--store", store],
        "state outbox": ["state", "outbox", "--store", store],
        "explain": ["explain", "leung@example.com", "--store", store],
    }
    for name in commands:
        res = mrules(*args[name])
        assert isinstance(res.exception, SystemExit), (name, res.exc_info)
        assert res.exit_code == ExitCode.STORE, (name, res.output)
        assert "damaged" in res.stderr and words in res.stderr, (name, res.stderr)


def _set_shared(db: Path, values: dict[str, str]) -> None:
    conn = sqlite3.connect(db)
    conn.executemany("INSERT OR REPLACE INTO shared VALUES (?, ?)", values.items())
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("grading", "7", "'grading' is '7'"),
        (
            "grading",
            json.dumps(list(range(30))),
            "'grading' is '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1'",
        ),
        ("clicks_by_block", "false", "'clicks_by_block' is 'False'"),
        ("activity_keys", '["visited|x", 1]', "'activity_keys' is \"['visited|x', 1]\""),
        ("active_rules", '"rule:MQL handoff"', "'active_rules' is 'rule:MQL handoff'"),
        (
            "rule_criteria",
            '{"rule:A": "7b2b", "rule:B": 1}',
            "'rule_criteria' is \"{'rule:A': '7b2b', 'rule:B': 1}\"",
        ),
        ("rule_declared", '["rule:MQL handoff"]', "'rule_declared' is \"['rule:MQL handoff']\""),
        ("stdin_runs", "-1", "'stdin_runs' is '-1'"),
        ("stdin_runs", '"2"', "'stdin_runs' is '2'"),
        ("round_robin:Sales", "-1", "'round_robin:Sales' is '-1'"),
    ],
)
def test_each_shared_value_of_another_shape_is_damage_exit_4(
    store: Path, key: str, value: str, words: str
) -> None:
    """docs/store.md: each key the engine writes is checked when a run starts, not met
    as a `TypeError` later; its value is named, cut at 40 characters."""
    _set_shared(store, {key: value})
    res = mrules("run", RULES, EVENTS, "--store", store, "-q")
    assert res.exit_code == ExitCode.STORE, res.output
    assert f"damaged: its shared state {words}; restore" in res.stderr, res.stderr


def test_shared_counters_at_zero_and_keys_of_a_later_version_are_not_damage(
    store: Path,
) -> None:
    """A count of 0 is a count; a key this version does not know is kept as it is."""
    _set_shared(store, {"stdin_runs": "0", "round_robin:Sales": "0", "later:key": "[1, {}]"})
    res = mrules("run", RULES, EVENTS, "--store", store, "-q")
    assert res.exit_code == ExitCode.OK, res.output
    conn = sqlite3.connect(store)
    kept = dict(conn.execute("SELECT key, value FROM shared WHERE key LIKE 'later:%'"))
    conn.close()
    assert kept == {"later:key": "[1, {}]"}
