"""`fmt --diff`, `replay --diff` and `state export` given what a new user has: CRLF endings, a
byte order mark, an events file whose last line was cut, a folder for a file, a typo."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from mrules.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "getcloudy"


def mrules(*args: str | Path, input: bytes | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.mark.parametrize(
    ("data", "removed"),
    [
        (b'list "x"\r\nlist "y"\r\n', ['-list "x"\r\n', '-list "y"\r\n']),
        (b'\xef\xbb\xbflist "x"\n', ['-\ufefflist "x"\n']),
    ],
)
def test_fmt_diff_shows_a_change_of_line_endings_or_bom(
    tmp_path: Path, data: bytes, removed: list[str]
) -> None:
    rule = tmp_path / "a.mr"
    rule.write_bytes(data)
    check = mrules("fmt", "--check", rule)
    assert check.exit_code == 1 and "would reformat" in check.stderr
    for args, shown in (([rule], str(rule)), (["-"], "<stdin>")):
        r = mrules("fmt", "--diff", *args, input=data)
        assert r.exit_code == 0, r.output
        # was an empty diff, though the file "would be reformatted"
        out = r.stdout_bytes.decode()  # `stdout` turns "\r\n" into "\n"
        assert out.startswith(f"--- {shown}\n+++ {shown} (formatted)\n@@ ")
        lines = out.splitlines(keepends=True)
        assert [
            line for line in lines if line.startswith("-") and not line.startswith("---")
        ] == removed
    assert rule.read_bytes() == data  # --diff writes nothing


def test_replay_says_a_cut_last_line_was_not_replayed(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    whole = (EXAMPLE / "events.jsonl").read_bytes()
    events.write_bytes(whole + b'{"id": "e99", "type": "page_view", "ts": "2026-12-21T0')
    rules = EXAMPLE / "rules"
    r = mrules("replay", "--diff", rules, rules, events)
    assert r.exit_code == 0, r.output
    header = r.stdout.split("\n\n")[0]
    assert "line 29 has no newline and is not whole JSON" in header
    assert "it was not replayed" in header  # it was left out without a word
    r = mrules("replay", "--diff", rules, rules, events, "--format", "json")
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout)["events"]["unfinished_line"] == 29
    assert "mrules: warning: line 29 has no newline" in r.stderr
    r = mrules("replay", "--diff", rules, rules, EXAMPLE / "events.jsonl", "--format", "json")
    assert orjson.loads(r.stdout)["events"]["unfinished_line"] is None
    assert r.stderr == ""


def test_replay_events_given_a_folder(tmp_path: Path) -> None:
    rules = EXAMPLE / "rules"
    r = mrules("replay", "--diff", rules, rules, tmp_path)
    assert r.exit_code == 2
    assert f"{tmp_path} is a folder, not an events file" in r.stderr  # was "no such events file"


@pytest.fixture(scope="module")
def example_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("store") / "getcloudy.db"
    r = mrules("run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", store)
    assert r.exit_code == 0, r.output
    return store


def test_state_export_of_a_prospect_the_store_does_not_have(example_store: Path) -> None:
    r = mrules("state", "export", "--store", example_store,
               "--prospect", "LEUNG@example.com", "--prospect", "leung@exmaple.com")  # fmt: skip
    assert r.exit_code == 2  # was exit 0, printing leung alone: the typo went unseen
    assert r.stderr == f"mrules: error: no prospect 'leung@exmaple.com' in {example_store}\n"
    assert r.stdout == ""
    r = mrules("state", "export", "--store", example_store, "--prospect", "LEUNG@example.com")
    assert r.exit_code == 0
    assert [orjson.loads(line)["email"] for line in r.stdout.splitlines()] == ["leung@example.com"]


def test_state_export_says_a_missing_store_before_the_sync_file_beside_it(
    example_store: Path, tmp_path: Path
) -> None:
    """`state export --store gone.db` with a damaged gone.sync.db left beside it was
    exit 4 about the sync file (naming it twice), not exit 2 "no store at gone.db"."""
    (tmp_path / "gone.sync.db").write_bytes(b"not a database\n")
    r = mrules("state", "export", "--store", tmp_path / "gone.db")
    assert r.exit_code == 2, r.output
    gone = tmp_path / "gone.db"
    assert (
        r.stderr
        == f"mrules: error: no store at {gone} (run `mrules run ... --store {gone}` first)\n"
    )
    assert not (tmp_path / "gone.db").exists()
    store = tmp_path / "g.db"  # a real store with that sync file: exit 4, the file once
    store.write_bytes(example_store.read_bytes())
    (tmp_path / "gone.sync.db").rename(tmp_path / "g.sync.db")
    r = mrules("state", "export", "--store", store)
    assert r.exit_code == 4, r.output
    sync = tmp_path / "g.sync.db"
    assert r.stderr == f"mrules: error: {sync}: cannot use the sync file: file is not a database\n"
    assert r.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["lint", str(EXAMPLE / "rules"), "--sarif-file", ""],
        ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", ":memory:",
         "--rejects", " "],
    ],
)  # fmt: skip
def test_an_empty_output_file_name_is_a_usage_error(args: list[str]) -> None:
    r = mrules(*args)
    assert r.exit_code == 2, r.output  # was "cannot write : Is a directory", exit 4
    assert "needs a file name" in r.stderr


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["explain", "\udcff@x.example"], "EMAIL"),
        (["state", "export", "--prospect", "\udcff@x.example"], "--prospect"),
        (["report", "html", "-", "--timeline", "\udcff@x.example"], "--timeline"),
    ],
)
def test_an_email_that_is_not_utf8_is_no_prospect(
    example_store: Path, args: list[str], what: str
) -> None:
    # what the shell passes for `mrules explain $'\xff@x.example'`
    r = mrules(*args, "--store", example_store)
    assert r.exit_code == 2, r.output  # was an internal error (exit 70) in the store query
    assert r.stderr == (
        f"mrules: error: {what} '\\xff@x.example' is not UTF-8 text, so no prospect has it\n"
    )
    assert r.stdout == ""


def test_a_lone_carriage_return_ends_a_line_and_its_comment(tmp_path: Path) -> None:
    # A file saved with old Mac line ends (`\r` alone): an editor shows four lines. The
    # comment on the first ran to the end of the file, hiding every rule after it.
    rule = tmp_path / "a.mr"
    rule.write_bytes(b'list "A"  # the lists\rtag "t"\r# a note\rlst "B"\r')
    r = mrules("lint", rule)
    assert r.exit_code == 1, r.output
    assert f"{rule}:4:1: error[MR001]: unexpected 'lst'" in r.output
    assert "4 | lst \"B\"\n  | ^^^ did you mean 'list'?" in r.output
    rule.write_bytes(b'list "A"  # the lists\rtag "t"\r')
    r = mrules("parse", rule)
    assert r.exit_code == 0, r.output
    assert '"kind": "tag_decl"' in r.stdout
    r = mrules("fmt", "-", input=rule.read_bytes())
    assert r.exit_code == 0, r.output
    assert r.stdout == 'list "A"  # the lists\ntag "t"\n'


@pytest.mark.parametrize("command", ["run", "partition", "replay"])
def test_a_plain_file_named_gz_is_said_to_be_one(tmp_path: Path, command: str) -> None:
    """Plain JSON Lines named `.gz` said Python's `broken gzip data: Not a gzipped file
    (b'{"')`; it says what the file is and what to do, in each command that reads events."""
    events = tmp_path / "events.jsonl.gz"
    events.write_bytes((EXAMPLE / "events.jsonl").read_bytes())
    rules = EXAMPLE / "rules"
    args = {
        "run": ("run", rules, events, "--store", tmp_path / "s.db", "-q"),
        "partition": ("partition", events, "--buckets", "2", "--out", tmp_path / "p"),
        "replay": ("replay", "--diff", rules, rules, events),
    }[command]
    r = mrules(*args)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(
        f"mrules: error: {events}: not gzip data, though its name ends in .gz: if it holds plain"
        " JSON Lines, give it a name without .gz (or compress it with gzip)"
    ), r.stderr
    assert "b'" not in r.stderr
