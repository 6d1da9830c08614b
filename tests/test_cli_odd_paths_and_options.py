"""Odd paths and option values a tester gave: a folder whose name is not UTF-8 in a SARIF
URI, such a name in a message, `--wait-timeout nan` and `--old-rev ""`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import mrules

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "getcloudy"
BROKEN = 'list "MQL"\nlist "MQL"\n'  # MR101: a result with a location


def _uris(sarif: dict) -> set[str]:
    return {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    }


def test_sarif_uri_of_a_folder_that_is_not_utf8_is_its_real_bytes(here: Path) -> None:
    folder = os.fsdecode(b"dir\xff")
    Path(folder).mkdir()
    Path(folder, "a.mr").write_text(BROKEN, "utf-8")
    r = mrules("lint", folder, "--sarif-file", "o.sarif")
    assert r.exit_code == 1, r.output
    assert "dir\\xff/a.mr" in r.stdout  # messages show the byte as \xff
    assert _uris(json.loads(Path("o.sarif").read_text("utf-8"))) == {"dir%FF/a.mr"}  # not %5Cxff
    r = mrules("lint", folder, "--format", "sarif")
    assert _uris(json.loads(r.stdout)) == {"dir%FF/a.mr"}


def test_sarif_uri_keeps_a_real_backslash(here: Path) -> None:
    Path("lit\\xff").mkdir()  # a name with a backslash in it, all UTF-8
    Path("lit\\xff", "a.mr").write_text(BROKEN, "utf-8")
    r = mrules("lint", "lit\\xff", "--format", "sarif")
    assert r.exit_code == 1, r.output
    assert _uris(json.loads(r.stdout)) == {"lit%5Cxff/a.mr"}


def test_sarif_uri_of_an_absolute_path_that_is_not_utf8(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = here / os.fsdecode(b"abs\xfe")
    folder.mkdir()
    (folder / "a.mr").write_text(BROKEN, "utf-8")
    outside = here / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    r = mrules("lint", folder, "--format", "sarif")
    assert r.exit_code == 1, r.output
    [uri] = _uris(json.loads(r.stdout))
    assert uri == (folder / "a.mr").as_uri() and uri.endswith("/abs%FE/a.mr")


@pytest.mark.parametrize(
    "command",
    [
        ["lint", str(EXAMPLE / "rules"), "--sarif-file"],
        ["test", str(EXAMPLE / "tests"), "-o"],
    ],
)
def test_an_output_folder_that_is_not_utf8_is_shown_escaped(here: Path, command: list[str]) -> None:
    r = mrules(*command, os.fsdecode(b"nodir\xfe/out"))
    assert r.exit_code == 2, r.output
    assert "nodir\\xfe/out: nodir\\xfe does not exist" in r.stderr  # was nodir\udcfe
    assert "udcfe" not in r.stderr


def test_sarif_file_that_cannot_be_written_is_shown_escaped(here: Path) -> None:
    out = os.fsdecode(b"a" * 300 + b"\xff.sarif")  # too long a name: cannot be written
    r = mrules("lint", EXAMPLE / "rules", "--sarif-file", out)
    assert r.exit_code == 4, r.output
    assert "a\\xff.sarif: cannot write" in r.stderr
    assert "udcff" not in r.stderr


@pytest.mark.parametrize("value", ["nan", "-nan", "NaN", "inf", "-inf", "1e400", "-1", "0"])
@pytest.mark.parametrize("command", ["run", "segment"])
def test_wait_timeout_must_be_a_finite_number_above_0(command: str, value: str) -> None:
    args = ["run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", ":memory:"]
    if command == "segment":
        args = ["segment", EXAMPLE / "rules", "--store", ":memory:"]
    r = mrules(*args, f"--wait-timeout={value}")
    assert r.exit_code == 2, r.output  # nan and inf were taken: nan waited forever
    assert "Invalid value for '--wait-timeout'" in r.stderr
    if value.lower().lstrip("-") == "nan":
        assert "is not a number of seconds" in r.stderr
    elif value in ("inf", "-inf", "1e400"):
        assert "there is no waiting forever" in r.stderr


@pytest.mark.parametrize(
    ("value", "said"),
    [("nan", "nan is not a number of seconds"), ("-inf", "give a finite number of seconds"),
     ("1e309", "give a finite number of seconds"), ("0", "give 0.001 seconds or more"),
     ("x", "'x' is not a number of seconds")],
)  # fmt: skip
def test_commit_seconds_must_be_a_finite_number(value: str, said: str) -> None:
    # nan and 1e309 (inf) passed click's FloatRange and reached the engine's check: exit 70.
    r = mrules("run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", ":memory:",
               f"--commit-seconds={value}")  # fmt: skip
    assert r.exit_code == 2, r.output
    said_all = " ".join(r.stderr.split())
    assert "Invalid value for '--commit-seconds'" in said_all and said in said_all
    assert "internal error" not in r.output


def test_wait_timeout_takes_a_fraction_of_a_second() -> None:
    r = mrules(
        "run",
        EXAMPLE / "rules",
        EXAMPLE / "events.jsonl",
        "--store",
        ":memory:",
        "--wait-timeout",
        "0.5",
    )
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("rev", ["", "  "])
def test_replay_old_rev_that_is_empty_is_a_usage_error(rev: str) -> None:
    rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
    for paths in ((rules, events), (rules, rules, events)):
        r = mrules("replay", "--diff", "--old-rev", rev, *paths)
        assert r.exit_code == 2, r.output  # with 3 paths, "" was a diff without --old-rev
        assert "--old-rev needs a revision" in r.stderr, r.stderr
        assert r.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("crm", "export", "--store", "g.db", "--out", "PIPE"),
        ("partition", str(EXAMPLE / "events.jsonl"), "--buckets", "2", "--out", "PIPE"),
        (
            "replay",
            "--diff",
            str(EXAMPLE / "rules"),
            str(EXAMPLE / "rules"),
            str(EXAMPLE / "events.jsonl"),
            "--store-dir",
            "PIPE",
        ),
    ],
    ids=lambda a: a[0],
)
def test_a_folder_option_given_a_named_pipe_says_what_it_is(here: Path, args: tuple) -> None:
    """`crm export --out` a named pipe (or `/dev/full`) said `not a folder; create it first`
    of a path that exists; the others, `PIPE: not a folder`. Each names what it is."""
    os.mkfifo("PIPE")
    r = mrules(*args)
    assert r.exit_code == 2, r.output
    option = args[args.index("PIPE") - 1]
    assert r.stderr == f"mrules: error: {option}: PIPE is a named pipe, not a folder\n"


RULES_FROM_STDIN = (
    "-: this command reads rules from files and folders, not standard input (`mrules lint -`"
    " checks rules given there; a file named - is ./-)"
)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("run", "-", "EVENTS", "--store", ":memory:"), RULES_FROM_STDIN),
        (("segment", "-", "--store", "s.db"), RULES_FROM_STDIN),
        (("sync", "plan", "--rules", "-", "--store", "s.db"), RULES_FROM_STDIN),
        (("report", "rules", "--rules", "-", "--store", "s.db"), RULES_FROM_STDIN),
        (("replay", "--diff", "RULES", "-", "EVENTS"), RULES_FROM_STDIN),
        (("crm", "load", "-", "--store", "s.db"),
         "-: crm load reads export files and folders, not standard input (a file named - is ./-)"),
        (("crm", "apply-changes", "-", "--store", "s.db"),
         "-: crm apply-changes reads a file, not standard input (a file named - is ./-)"),
        (("sync", "run", "--rules", "RULES", "--store", "s.db", "--until",
          "2026-12-21T00:00:00Z", "--changes", "-"),
         "--changes -: sync run reads a file, not standard input (a file named - is ./-)"),
        (("sync", "apply", "-", "--rules", "RULES", "--store", "s.db"),
         "-: sync apply reads a plan file, not standard input (a file named - is ./-)"),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, tuple) else "",
)  # fmt: skip
def test_standard_input_where_only_files_are_read_is_said_so(
    here: Path, args: tuple[str, ...], said: str
) -> None:
    """`-` means standard input; where a command reads only files it said `-: no such file
    or folder` (or `No such file or directory`), as if a file were missing."""
    swap = {"RULES": str(EXAMPLE / "rules"), "EVENTS": str(EXAMPLE / "events.jsonl")}
    assert mrules("run", swap["RULES"], swap["EVENTS"], "--store", "s.db", "-q").exit_code == 0
    assert mrules("crm", "load", EXAMPLE / "crm", "--store", "s.db").exit_code == 0
    r = mrules(*(swap.get(a, a) for a in args))
    assert r.exit_code == 2, r.output
    assert said in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("lint", "RULES", "--sarif-file", "other.db"),
        ("test", str(EXAMPLE / "tests"), "-o", "other.db"),
        ("report", "html", "other.db", "--store", "s.db", "-q"),
        ("sync", "plan", "--rules", "RULES", "--store", "s.db", "--out", "other.db"),
        ("run", "RULES", "EVENTS", "--store", "s.db", "-q", "--actions", "other.db"),
        ("run", "RULES", "EVENTS", "--store", ":memory:", "-q", "--rejects", "other.db"),
        ("run", "RULES", "EVENTS", "--store", ":memory:", "-q", "--diagnostics", "other.db"),
    ],
    ids=lambda a: " ".join(a[:2]) + " " + a[-2],
)
def test_an_output_over_an_sqlite_database_is_refused(here: Path, args: tuple[str, ...]) -> None:
    """No output of mrules is an SQLite file. `lint --sarif-file mrules.db` and `test -o
    mrules.db` replaced a store with their report (exit 0); `report html`, `sync plan
    --out` and `run --actions` refused their own store only, not another one."""
    swap = {"RULES": str(EXAMPLE / "rules"), "EVENTS": str(EXAMPLE / "events.jsonl")}
    for store in ("s.db", "other.db"):
        assert mrules("run", swap["RULES"], swap["EVENTS"], "--store", store, "-q").exit_code == 0
    assert mrules("crm", "load", EXAMPLE / "crm", "--store", "s.db").exit_code == 0
    before = Path("other.db").read_bytes()
    r = mrules(*(swap.get(a, a) for a in args))
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(
        f"mrules: error: {args[args.index('other.db') - 1] if args[0] != 'report' else 'OUT'}"
        " other.db is an SQLite database (a store, a CRM file or a sync file?): writing it"
        " would destroy it; give another"
    ), r.stderr
    assert Path("other.db").read_bytes() == before
