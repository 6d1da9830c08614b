"""`mrules run RULES DIR --engine local`: the same files as `mrules run RULES FILE`; bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from scale_helpers import (
    MRULES,
    ROOT,
    assert_rerun_matches_one_process,
    getcloudy_rules,
    interruptible_run,
)
from scale_helpers import invoke as _invoke

from mrules.cli import main as cli_main
from mrules.scale import ScaleError, run_partitioned
from mrules.store import Store
from unsettled import unchecked_rules

BAD = b'this is not json\n{"ts":"2026-11-02T09:00:00Z","type":"form_submit","prospect":"x"}\n'


@pytest.fixture
def getcloudy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    getcloudy_rules(tmp_path)
    data = (ROOT / "examples/getcloudy/events.jsonl").read_bytes()
    (tmp_path / "events.jsonl").write_bytes(data[: len(data) // 2] + BAD + data[len(data) // 2 :])
    return tmp_path


def test_cli_partitioned_run_writes_what_one_process_writes(getcloudy: Path) -> None:
    one = _invoke("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == 3, one.output  # the two bad lines
    r = _invoke("partition", "events.jsonl", "--buckets", "7", "--out", "part")
    assert r.exit_code == 0, r.output
    many = _invoke("run", "rules", "part", "--engine", "local", "--workers", "2",
                   "--store", "many.db", "--actions", "many.jsonl")  # fmt: skip
    assert many.exit_code == 3, many.output
    assert "buckets 7/7" in many.output
    assert Path("one.jsonl").read_bytes() == Path("many.jsonl").read_bytes()
    assert Path("one.rejects.jsonl").read_bytes() == Path("many.rejects.jsonl").read_bytes()
    for cmd in (["state", "export"], ["explain", "leung@example.com"], ["state", "outbox"]):
        a, b = _invoke(*cmd, "--store", "one.db"), _invoke(*cmd, "--store", "many.db")
        assert a.exit_code == b.exit_code == 0 and a.output == b.output and a.output
    assert not Path("many.db.shards").exists()  # removed after the merge
    # The merged store keeps each file's check, as one process does: `mrules run` on it
    # continues a file that grows and refuses one replaced at that path.
    source = str(Path("events.jsonl").resolve())
    anchors = []
    for db in ("one.db", "many.db"):
        with Store.open(Path(db), readonly=True) as st:
            anchors.append(st.stream_anchor(source))
    assert anchors[0] is not None and anchors[0] == anchors[1]
    lines = Path("events.jsonl").read_bytes().splitlines(keepends=True)
    Path("events.jsonl").write_bytes(b"".join([*lines[1:], *lines[:2]]))
    replaced = _invoke("run", "rules", "events.jsonl", "--store", "many.db", "-q")
    assert replaced.exit_code == 2 and "is not the file this store read" in replaced.output


def test_a_last_line_cut_short_is_left_out_as_one_process_leaves_it(getcloudy: Path) -> None:
    """docs/events.md: a file's last line with no newline that is not whole JSON (still
    being written) is not applied, and the same command reads it once complete. A
    partitioned run rejected it instead: exit 3 and a rejects file one process does not
    write, and the completed line was never applied. `partition` now leaves it out (with
    a warning), and `mrules run` on the file continues the partitioned store with it."""
    data = (ROOT / "examples/getcloudy/events.jsonl").read_bytes()
    tail = b'{"ts":"2026-12-21T00:00:00Z","type":"page_view","id":"zz","prospect":"q@x.com",'
    Path("cut.jsonl").write_bytes(data + tail[:40])
    one = _invoke("run", "rules", "cut.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == 0, one.output
    r = _invoke("partition", "cut.jsonl", "--buckets", "3", "--out", "part")
    assert r.exit_code == 0 and "line 29 of cut.jsonl has no newline" in r.output, r.output
    assert "partitioned 28 lines" in r.output
    many = _invoke("run", "rules", "part", "--store", "many.db", "--actions", "many.jsonl")
    assert many.exit_code == 0, many.output
    assert not Path("many.rejects.jsonl").exists()
    Path("cut.jsonl").write_bytes(data + tail + b'"url":"https://x.example/a"}\n')  # complete
    for db, log in (("one.db", "one.jsonl"), ("many.db", "many.jsonl")):
        done = _invoke("run", "rules", "cut.jsonl", "--store", db, "--actions", log, "-q")
        assert done.exit_code == 0, done.output
    a, b = (_invoke("state", "export", "--store", db).output for db in ("one.db", "many.db"))
    assert a == b and '"q@x.com"' in a
    assert Path("one.jsonl").read_bytes() == Path("many.jsonl").read_bytes()


EXAMPLE_EVENTS = (ROOT / "examples/getcloudy/events.jsonl").read_bytes()
BOM = b"\xef\xbb\xbf"
Q = b'{"ts":"2026-12-21T00:00:00Z","prospect":"q@x.com",'


@pytest.mark.parametrize(
    ("data", "code"),
    [
        # whole JSON: an event, applied as one process applies it
        (EXAMPLE_EVENTS + Q + b'"type":"page_view","url":"https://getcloudy.com/pricing"}', 0),
        # the file's one line, with a byte order mark (skipped on line 1): an event
        (BOM + Q + b'"type":"form_submit","asset":"Demande Get Cloudy"}', 0),
        # ... or a line the reader rejects for what it holds: rejected, as one process does
        (BOM + Q + b'"type":"webinar_attend"}', 3),
    ],
)
def test_a_last_line_with_no_newline_that_is_whole_json_is_read_as_one_process_reads_it(
    getcloudy: Path, data: bytes, code: int
) -> None:
    """docs/events.md: only a last line that is not whole JSON (still being written) is
    left for a later run; an event is applied, a line the reader rejects is rejected."""
    Path("last.jsonl").write_bytes(data)
    one = _invoke("run", "rules", "last.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == code, one.output
    r = _invoke("partition", "last.jsonl", "--buckets", "3", "--out", "part")
    assert r.exit_code == 0 and "has no newline" not in r.output, r.output
    many = _invoke("run", "rules", "part", "--store", "many.db", "--actions", "many.jsonl")
    assert many.exit_code == code, many.output
    assert Path("one.jsonl").read_bytes() == Path("many.jsonl").read_bytes()
    if code:
        assert Path("one.rejects.jsonl").read_bytes() == Path("many.rejects.jsonl").read_bytes()
    a, b = (_invoke("state", "export", "--store", db).output for db in ("one.db", "many.db"))
    assert a == b
    assert ('"q@x.com"' in a) == (code == 0)


def test_lines_whose_type_is_not_text_are_read_as_one_process_reads_them(
    getcloudy: Path,
) -> None:
    """A `type` that is a number, null, an object or a tick written in capitals, with a
    prospect, a visitor or neither, a `prospect` that is a list or a number, a `ts` that
    is a number: each line rejected or applied once, as one process."""
    odd = [
        b'{"ts":"2026-11-02T10:00:00Z","type":5,"prospect":"leung@example.com"}',
        b'{"ts":"2026-11-02T10:00:00Z","type":null,"visitor":"v-81"}',
        b'{"ts":"2026-11-02T10:00:00Z","type":{"tick":1}}',
        b'{"ts":"2026-11-02T10:00:00Z","type":["tick"],"prospect":"bob@bigcorp.example"}',
        b'{"ts":"2026-11-02T10:00:00Z","type":" Tick ","id":"t-odd"}',
        b'{"ts":"2026-11-02T10:00:00Z","type":"email_open","prospect":["a@x.com"]}',
        b'{"ts":"2026-11-02T10:00:00Z","type":"email_open","prospect":42}',
        b'{"ts":1793000000,"type":"email_open","prospect":"bob@bigcorp.example"}',
    ]
    lines = (ROOT / "examples/getcloudy/events.jsonl").read_bytes().splitlines(keepends=True)
    Path("odd.jsonl").write_bytes(b"".join([*lines[:9], *(x + b"\n" for x in odd), *lines[9:]]))
    one = _invoke("run", "rules", "odd.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == 3, one.output
    r = _invoke("partition", "odd.jsonl", "--buckets", "3", "--out", "part")
    assert r.exit_code == 0, r.output
    assert "3 lines to reject (in bucket 0)" in r.output  # no prospect or visitor, 2 not one
    many = _invoke("run", "rules", "part", "--store", "many.db", "--actions", "many.jsonl")
    assert many.exit_code == 3, many.output
    assert Path("one.jsonl").read_bytes() == Path("many.jsonl").read_bytes()
    rejects = Path("one.rejects.jsonl").read_bytes()
    assert Path("many.rejects.jsonl").read_bytes() == rejects and rejects.count(b"\n") >= 4
    a, b = (_invoke("state", "export", "--store", db).output for db in ("one.db", "many.db"))
    assert a == b and a


@pytest.mark.parametrize(
    "bad",
    [
        b'"type":"webinar_attend","prospect":"leung@example.com"',
        b'"type":"page_view","visitor":"v-81"',
    ],
)
def test_a_rejected_line_s_time_is_not_the_archive_s_latest(getcloudy: Path, bad: bytes) -> None:
    """A `--now` before the archive's latest event time is met at that time in every
    bucket, as one process meets it at its clock. `partition` took the latest time of
    any line with a `ts`, a line the reader rejects too (an unknown type), which never
    moves a run's clock: every bucket re-checked its time-based rules months later than
    one process ("Score decay" fired where one process did not fire it)."""
    data = (ROOT / "examples/getcloudy/events.jsonl").read_bytes()
    Path("late.jsonl").write_bytes(data + b'{"ts":"2027-03-01T00:00:00Z",' + bad + b"}\n")
    now = ["--now", "2026-12-25T00:00:00Z"]
    one = _invoke("run", "rules", "late.jsonl", "--store", "one.db", "--actions", "one.jsonl",
                  *now)  # fmt: skip
    assert one.exit_code == 3, one.output  # the line rejected
    r = _invoke("partition", "late.jsonl", "--buckets", "3", "--out", "part")
    assert r.exit_code == 0 and "until 2026-12-20T00:00:00Z" in r.output, r.output
    many = _invoke("run", "rules", "part", "--store", "many.db", "--actions", "many.jsonl", *now)
    assert many.exit_code == 3, many.output
    assert Path("one.jsonl").read_bytes() == Path("many.jsonl").read_bytes()
    assert Path("one.rejects.jsonl").read_bytes() == Path("many.rejects.jsonl").read_bytes()
    for cmd in (["state", "export"], ["state", "outbox"]):
        a, b = _invoke(*cmd, "--store", "one.db"), _invoke(*cmd, "--store", "many.db")
        assert a.exit_code == b.exit_code == 0 and a.output == b.output and a.output


@pytest.mark.parametrize("first", ["view", "tie"])
def test_a_byte_order_mark_on_line_1_is_routed_as_the_reader_reads_it(
    getcloudy: Path, first: str
) -> None:
    """docs/events.md: a UTF-8 byte order mark on line 1 is skipped, and the line is an
    event. `partition` read that line as not JSON: it went to bucket 0 as a line to
    reject, where the run applied it to a prospect (or visitor) of another bucket, and a
    tie it made was not known, so the visitor's later views went by the visitor's own id:
    scores, page actions and the ledger differed from one process's."""
    lines = (ROOT / "examples/getcloudy/events.jsonl").read_bytes().splitlines(keepends=True)
    tie = (b'{"ts":"2026-11-01T08:00:00Z","type":"identify","visitor":"v-z",'
           b'"prospect":"zed@example.com"}\n')  # fmt: skip
    view = (b'{"ts":"2026-11-06T08:00:00Z","type":"page_view","visitor":"v-z",'
            b'"url":"https://getcloudy.com/pricing"}\n')  # fmt: skip
    # line 1 an anonymous view of v-81 (tied on line 3), or the tie of v-z
    head = [] if first == "view" else [tie]
    events = [*head, *lines[:-1], view, lines[-1]]
    Path("bom.jsonl").write_bytes(b"\xef\xbb\xbf" + b"".join(events))
    from mrules.partition import bucket_of

    assert bucket_of("zed@example.com", 7) != bucket_of("visitor:v-z", 7)
    assert bucket_of("leung@example.com", 7) != 0
    one = _invoke("run", "rules", "bom.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == 0, one.output
    r = _invoke("partition", "bom.jsonl", "--buckets", "7", "--out", "part")
    assert r.exit_code == 0 and "0 lines to reject" in r.output, r.output
    many = _invoke("run", "rules", "part", "--store", "many.db", "--actions", "many.jsonl")
    assert many.exit_code == 0, many.output
    assert Path("one.jsonl").read_bytes() == Path("many.jsonl").read_bytes()
    for cmd in (["state", "export"], ["state", "outbox"]):
        a, b = _invoke(*cmd, "--store", "one.db"), _invoke(*cmd, "--store", "many.db")
        assert a.exit_code == b.exit_code == 0 and a.output == b.output and a.output
    export = _invoke("state", "export", "--store", "many.db").output
    assert ('"zed@example.com"' in export) == (first == "tie")


@pytest.mark.parametrize(
    "option",
    [
        ["--diagnostics", "part/manifest.json"],  # removed: no unsettled prospect to report
        ["--diagnostics", "part/part-0000/b00001.jsonl"],  # a bucket's events, removed
        ["--rejects", "part/identity.json.gz"],  # replaced by the rejected lines
        ["--rejects", "new.rejects.jsonl", "--store", "part/new.db"],  # default diagnostics
    ],
)
def test_an_output_in_the_partition_folder_is_refused(getcloudy: Path, option: list[str]) -> None:
    """docs/outputs.md: an output that is an input is refused, exit 2, before anything. A
    partition folder's files were not counted: `--diagnostics part/manifest.json` removed
    the manifest, `--diagnostics` on a bucket file removed the bucket (the next run lost
    its prospects, exit 3 as before), `--rejects` replaced the identity file."""
    _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part")
    before = {p: p.read_bytes() for p in Path("part").rglob("*") if p.is_file()}
    r = _invoke("run", "rules", "part", "--store", "new.db", *option, "-q")
    assert r.exit_code == 2, r.output
    assert "is in the partition folder part: writing it would destroy it" in r.output
    assert {p: p.read_bytes() for p in Path("part").rglob("*") if p.is_file()} == before
    assert not Path("new.db").exists() and not Path("part/new.db").exists()


@pytest.mark.parametrize(
    "inside",
    ["part/part-0000/b00001.jsonl", "part/manifest.json", "link.jsonl"],
    ids=["bucket", "manifest", "link-to-a-bucket"],
)
def test_partition_refuses_a_file_of_its_own_folder(getcloudy: Path, inside: str) -> None:
    """`find . -name '*.jsonl' | xargs mrules partition --out part` appended the folder's
    own bucket files (and `part/*` its manifest) as events files: in the manifest for
    good (a file is partitioned once), each line a reject of every partitioned run."""
    assert _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part").exit_code == 0
    Path("link.jsonl").symlink_to("part/part-0000/b00002.jsonl")
    before = {p: p.read_bytes() for p in Path("part").rglob("*") if p.is_file()}
    r = _invoke("partition", inside, "--out", "part")
    assert r.exit_code == 2, r.output
    assert f"{inside}: a file of the partition folder part, not an events file" in r.output
    assert {p: p.read_bytes() for p in Path("part").rglob("*") if p.is_file()} == before
    r = _invoke("run", "rules", "part", "--store", "new.db", "-q")
    assert r.exit_code == 3, r.output  # the bad lines of events.jsonl, and only those
    rejected = Path("new.rejects.jsonl").read_text("utf-8").splitlines()
    assert {json.loads(line)["source"] for line in rejected} == {
        str(Path("events.jsonl").resolve())
    }


def test_partition_takes_a_file_of_the_user_s_kept_in_the_folder(getcloudy: Path) -> None:
    """Only what partition writes there is refused: an archive kept in the folder is not."""
    assert _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part").exit_code == 0
    shutil.copyfile(ROOT / "examples/getcloudy/history/events.jsonl", "part/history.jsonl")
    r = _invoke("partition", "part/history.jsonl", "--out", "part")
    assert r.exit_code == 0, r.output
    assert "(part-0001 of part)" in r.output


@pytest.mark.parametrize("damage", ["removed", "cut", "emptied", "appended"])
def test_a_bucket_file_damaged_since_partition_is_refused(getcloudy: Path, damage: str) -> None:
    """A bucket file removed (or cut short) was a bucket left out: the run gave exit 3 as
    ever, with fewer prospects and no word of it. The manifest keeps each bucket file's
    size; a run checks them all first: exit 2, nothing written."""
    _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part")
    whole = _invoke("run", "rules", "part", "--store", "whole.db", "-q")
    target = max(Path("part/part-0000").glob("b*.jsonl"), key=lambda p: p.stat().st_size)
    data = target.read_bytes()
    if damage == "removed":
        target.unlink()
    else:
        cut = {"cut": data[: len(data) // 2], "emptied": b"", "appended": data + data[:40]}
        target.write_bytes(cut[damage])
    r = _invoke("run", "rules", "part", "--store", "new.db", "-q")
    assert r.exit_code == 2, r.output
    assert f"{target.name}: " in r.output and "the partition folder is damaged" in r.output
    assert "Traceback" not in r.output
    assert not Path("new.db").exists() and not Path("new.db.shards").exists()
    target.write_bytes(data)  # restored, the same command runs as the whole folder did
    again = _invoke("run", "rules", "part", "--store", "new.db", "-q")
    assert again.exit_code == whole.exit_code, again.output
    a, b = (_invoke("state", "export", "--store", db) for db in ("whole.db", "new.db"))
    assert a.output == b.output and a.output


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_rejects_file_that_cannot_be_written_is_written_by_the_same_command(
    getcloudy: Path,
) -> None:
    """docs/exit-codes.md, 4: once the cause is fixed, the same command resumes. The
    partitioned run put its store in place, then failed on the rejects file (a full
    disk); the same command then refused the store ("exists", exit 2) and the rejects
    file was never written. Now the files come before the store, and the rerun runs only
    the merge."""
    one = _invoke("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == 3, one.output
    _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part")
    Path("many.rejects.jsonl").symlink_to("/dev/full")  # the disk is full
    cmd = ("run", "rules", "part", "--store", "many.db", "--actions", "many.jsonl", "-q")
    full = _invoke(*cmd)
    assert full.exit_code == 4, full.output
    assert "cannot write rejects file" in full.output and "runs only the merge" in full.output
    assert not Path("many.db").exists() and Path("many.db.shards").is_dir()
    Path("many.rejects.jsonl").unlink()  # space freed
    again = _invoke(*cmd)
    assert again.exit_code == 3, again.output
    assert Path("many.rejects.jsonl").read_bytes() == Path("one.rejects.jsonl").read_bytes()
    assert Path("many.jsonl").read_bytes() == Path("one.jsonl").read_bytes()
    a, b = (_invoke("state", "export", "--store", db) for db in ("one.db", "many.db"))
    assert a.output == b.output and a.output


def test_a_rule_moved_by_an_edit_is_not_taken_from_a_previous_run_s_shards(
    getcloudy: Path,
) -> None:
    """A rerun reuses the finished shards of the same rule set only. The rule set was
    known by its version, which leaves positions aside: a comment added above a rule
    between a failed run and the same command again kept the old shards, whose ledger
    named the rule at its old line (`at`), beside new buckets naming the new one; `mrules
    explain` and the action log disagreed with one process's run of the edited rules."""
    _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part")
    Path("many.rejects.jsonl").symlink_to("/dev/full")  # the first run fails at the end
    cmd = ("run", "rules", "part", "--store", "many.db", "--actions", "many.jsonl", "-q")
    full = _invoke(*cmd)
    assert full.exit_code == 4 and Path("many.db.shards").is_dir(), full.output
    Path("many.rejects.jsonl").unlink()
    actions = Path("rules/10-completion-actions.mr")
    actions.write_text("# Edited: a comment moves every rule below it.\n" + actions.read_text())
    one = _invoke("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == 3, one.output
    again = _invoke(*cmd)
    assert again.exit_code == 3, again.output
    assert b"10-completion-actions.mr:5" in Path("one.jsonl").read_bytes()
    assert Path("many.jsonl").read_bytes() == Path("one.jsonl").read_bytes()
    a, b = (_invoke("explain", "leung@example.com", "--store", db) for db in ("one.db", "many.db"))
    assert a.output == b.output and a.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rules", "events.jsonl", "--engine", "local"], "is a file: partition it first"),
        # not "partition it first (mrules partition - ...)", which partition refuses
        (["rules", "-", "--engine", "local"], "not standard input: write the events to a file"),
        (["rules", "nowhere", "--engine", "local"], "not a partition folder"),
        # it said `(no manifest.json)` of a path that is not there at all
        (["rules", "nowhere", "--engine", "local"], "nowhere: not a partition folder: no such"),
        # and advised to partition a store (`mrules partition one.db ...`)
        (["rules", "one.db", "--engine", "local"], "one.db is an SQLite file (a store?), not"),
        # it said `part/part-0000: not a partition folder (no manifest.json)`
        (["rules", "part/part-0000", "--engine", "local"], "is a part of the partition folder"),
        (["rules", "part", "--store", ":memory:"], "merges into a new store: give --store PATH"),
        (["rules", "part", "--store", "exists.db"], "exists: a partitioned run writes a new"),
        (["rules", "part", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler is for --engine"),
        # a single stream ran in one process, the option silently left aside
        (["rules", "events.jsonl", "--workers", "4"], "--workers is for a partition folder"),
        (["rules", "events.jsonl", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler is for a"),
        (["rules", "events.jsonl", "--dask-local", "2"], "--dask-local is for a partition"),
        (["rules", "-", "--workers", "2"], "standard input is a single stream: leave it out"),
        (
            ["rules", "part", "--engine", "dask", "--scheduler", "x", "--dask-local", "2"],
            "not both",
        ),
        (["shared", "part"], 'round_robin = "by prospect"'),
        (["rules", "part", "--actions", "no/such/log.jsonl"], "create it first"),
    ],
)
def test_bad_input_is_one_line(getcloudy: Path, args: list[str], message: str) -> None:
    _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part")
    Path("exists.db").write_text("")
    Store.open("one.db").close()
    shutil.copytree("rules", "shared")
    Path("shared/zz-partitions.mr").unlink()  # Get Cloudy assigns to a group, turn shared
    r = CliRunner().invoke(cli_main, ["run", *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"now": float("nan")}, ValueError, "now must be a finite number"),
        ({"now": float("inf")}, ValueError, "now must be a finite number"),
        ({"now": "2026-11-03T00:00:00Z"}, TypeError, "now must be a number of seconds"),
        ({"commit_every": 0}, ValueError, "commit_every must be at least 1"),
        ({"workers": 0}, ValueError, "workers must be at least 1"),
        ({"workers": "2"}, TypeError, "workers must be a whole number"),
        ({"engine": "dask", "dask_local": 0}, ValueError, "dask_local must be at least 1"),
        ({"engine": "spark"}, ScaleError, "unknown engine 'spark'"),
        ({"store": ":memory:"}, ScaleError, "merges into a new store"),
        ({"store": ""}, ScaleError, "merges into a new store"),
        ({"store": None}, TypeError, "store must be a path or a PostgreSQL URL"),
    ],
)
def test_run_partitioned_refuses_bad_arguments_before_any_work(
    getcloudy: Path, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """docs/scale-out.md's `run_partitioned` from Python: `now=nan` ran every bucket into a
    store whose state differed from one process's, silently; `now=inf` and `workers="2"`
    failed in the workers; `workers=0` ran; `engine="spark"` left a shard folder behind;
    `store=":memory:"` said ":memory: exists". Refused as `mrules.run` refuses them, before
    any folder is made."""
    _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part")
    before = set(Path().iterdir())
    kwargs: dict[str, Any] = {"store": "new.db", **options}
    with pytest.raises(error, match=message):
        run_partitioned("rules", "part", kwargs.pop("store"), **kwargs)
    assert set(Path().iterdir()) == before


@pytest.mark.slow
def test_killed_worker_then_rerun_gives_the_same_result(tmp_path: Path) -> None:
    """SIGKILL a worker mid-bucket: exit 130, finished shards kept; the rerun completes them."""
    cmd = interruptible_run(tmp_path)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for tmp in (tmp_path / "many.db.shards").glob("*/.b*.tmp"):
            pid = int(tmp.name.split(".")[3])
            os.kill(pid, signal.SIGKILL)
            killed = tmp.name
            break
        time.sleep(0.002)
    _out, err = proc.communicate(timeout=120)
    assert killed is not None, "no bucket was caught running"
    assert proc.returncode == 130, err.decode()
    assert b"worker process died" in err and b"Traceback" not in err
    assert not (tmp_path / "many.db").exists()
    assert_rerun_matches_one_process(tmp_path, cmd)


def test_workers_the_system_cannot_start_are_one_line_and_a_rerun_finishes(
    getcloudy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork the system refuses (no process slot or memory left: `--workers` in the
    thousands) was an internal error (exit 70, BlockingIOError) with a crash report."""
    import errno

    one = _invoke("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert _invoke("partition", "events.jsonl", "--buckets", "4", "--out", "part").exit_code == 0
    cmd = ["run", "rules", "part", "--engine", "local", "--workers", "3", "--store", "many.db",
           "--actions", "many.jsonl"]  # fmt: skip
    real_fork, forks = os.fork, []

    def second_fork_refused() -> int:
        forks.append(1)
        if len(forks) > 1:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_fork()

    monkeypatch.setattr(os, "fork", second_fork_refused)
    r = _invoke(*cmd)
    assert r.exit_code == 130, r.output
    assert "mrules: error: cannot start 3 worker processes (Resource temporarily unavailable):" \
        " give fewer --workers" in r.output  # fmt: skip
    assert "internal error" not in r.output
    assert not Path("many.db").exists()
    monkeypatch.setattr(os, "fork", real_fork)
    again = _invoke(*cmd)
    assert again.exit_code == one.exit_code == 3, again.output
    assert Path("many.jsonl").read_bytes() == Path("one.jsonl").read_bytes()


def test_a_store_path_that_is_a_dangling_link_is_written_where_it_points(
    getcloudy: Path,
) -> None:
    """`--store current.db`, a link to the store to make: one process writes the file the
    link points to and keeps the link; a partitioned run replaced the link with its store,
    and took its lock beside the file the link named."""
    assert _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part").exit_code == 0
    Path("stores").mkdir()
    Path("current.db").symlink_to("stores/2026.db")
    r = _invoke("run", "rules", "part", "--engine", "local", "--store", "current.db", "-q")
    assert r.exit_code == 3, r.output
    assert Path("current.db").is_symlink() and Path("stores/2026.db").is_file()
    assert _invoke("state", "export", "--store", "current.db").output.count("\n") == 6


def test_a_resumed_run_writes_every_bucket_s_diagnostics_in_archive_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The diagnostics file was written from the reports of the buckets run this time: a
    run resumed after Ctrl-C in the merge (every bucket done before) wrote none. And the
    merged store kept the reports in bucket order, so the next run on it reordered the
    file. Both are now one process's: the same file, byte for byte, and kept so."""
    monkeypatch.chdir(tmp_path)
    unchecked_rules(monkeypatch, tmp_path)  # r.mr
    Path("events.jsonl").write_text("".join(
        json.dumps({"ts": f"2026-11-02T09:00:0{i}Z", "type": "prospect_update",
                    "prospect": f"{w}@x.com", "fields": {}}) + "\n"
        for i, w in enumerate("abcdefgh")))  # fmt: skip
    one = _invoke("run", "r.mr", "events.jsonl", "--store", "one.db", "-q")
    assert one.exit_code == 0, one.output
    expected = Path("one.diagnostics.jsonl").read_bytes()
    assert expected.count(b"\n") == 8
    assert _invoke("partition", "events.jsonl", "--buckets", "4", "--out", "part").exit_code == 0
    cmd = ["run", "r.mr", "part", "--engine", "local", "--store", "many.db", "-q"]

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr("mrules.scale.driver.merge_shards", ctrl_c)
        assert _invoke(*cmd).exit_code == 130
    assert _invoke(*cmd).exit_code == 0
    assert Path("many.diagnostics.jsonl").read_bytes() == expected
    Path("empty.jsonl").write_text("")
    assert _invoke("run", "r.mr", "empty.jsonl", "--store", "many.db", "-q").exit_code == 0
    assert Path("many.diagnostics.jsonl").read_bytes() == expected


def test_a_resumed_run_counts_the_lines_of_the_buckets_done_before(
    getcloudy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bucket found done counted no line: the summary of a run resumed after Ctrl-C in
    the merge said `(0 bucket lines: ticks go to every bucket)`, fewer than the archive's."""
    assert _invoke("partition", "events.jsonl", "--buckets", "4", "--out", "part").exit_code == 0
    whole = _invoke("run", "rules", "part", "--engine", "local", "--store", "whole.db")
    said = re.search(r"\(([\d,]+ bucket lines)", whole.output)
    assert said is not None, whole.output
    cmd = ["run", "rules", "part", "--engine", "local", "--store", "many.db"]

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr("mrules.scale.driver.merge_shards", ctrl_c)
        assert _invoke(*cmd).exit_code == 130
    again = _invoke(*cmd)
    assert again.exit_code == whole.exit_code == 3, again.output
    assert "(4 done before)" in again.output and f"({said[1]}:" in again.output, again.output


@pytest.mark.parametrize("name", ["part/manifest.json", "part/part-0000/b00001.jsonl"])
def test_a_file_of_a_partition_folder_given_as_the_events_names_the_folder(
    getcloudy: Path, name: str
) -> None:
    """The advice was to partition the file first (`mrules partition part/manifest.json
    ...`), which `partition` refuses: a file of a partition folder is not an events file."""
    assert _invoke("partition", "events.jsonl", "--buckets", "2", "--out", "part").exit_code == 0
    r = _invoke("run", "rules", name, "--engine", "local", "--store", "r.db", "-q")
    assert r.exit_code == 2, r.output
    assert f"{name} is a file of the partition folder part: give the folder" in r.output
    assert "partition it first" not in r.output and not Path("r.db").exists()


@pytest.mark.parametrize(
    "name",
    [
        "data/identity.json.gz",  # named as a partition's file, in a folder that is none
        "part-2026/events.jsonl",  # in a folder named as a part, not in a partition folder
        "part/mine/events.jsonl",  # in a partition folder's subfolder that is not a part
        "part/more-events.jsonl",  # the user's, kept in a partition folder
    ],
)
def test_an_events_file_only_named_like_a_partition_folder_s_is_to_partition_first(
    getcloudy: Path, name: str
) -> None:
    """Only the files `partition` writes are named as a partition folder's; any other
    events file given to `--engine local` is one to partition first."""
    assert _invoke("partition", "events.jsonl", "--buckets", "2", "--out", "part").exit_code == 0
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile("events.jsonl", name)  # read by neither: refused before
    r = _invoke("run", "rules", name, "--engine", "local", "--store", "r.db", "-q")
    assert r.exit_code == 2, r.output
    assert f"{name} is a file: partition it first (mrules partition {name}" in r.output
    assert "a file of the partition folder" not in r.output and not Path("r.db").exists()


def test_a_store_renamed_into_place_takes_its_write_ahead_log_in(
    getcloudy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard, and the merged store, are written under a hidden name and renamed into
    place; SQLite folds their `-wal` into the file when the last connection closes, and
    says nothing when it cannot (a full disk). The file was renamed all the same, without
    its log: a shard kept as done but damaged (`database disk image is malformed`, exit
    70, at every rerun) or missing its buckets' prospects. Here SQLite's close cannot fold
    the log in because another connection holds the file, as a full disk made it fail."""
    import sqlite3

    one = _invoke("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == 3, one.output
    assert _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part").exit_code == 0
    held: list[sqlite3.Connection] = []
    close = Store.close

    def close_leaving_the_log(self: Store) -> None:
        if self.path.name.startswith(".") and self._conn is not None:  # being written
            held.append(sqlite3.connect(self.path))
            held[-1].execute("SELECT count(*) FROM meta").fetchall()
        close(self)

    monkeypatch.setattr(Store, "close", close_leaving_the_log)
    try:
        many = _invoke("run", "rules", "part", "--engine", "local", "--workers", "1",
                       "--store", "many.db", "--actions", "many.jsonl")  # fmt: skip
    finally:
        monkeypatch.setattr(Store, "close", close)
        for conn in held:
            conn.close()
    assert held and many.exit_code == 3, many.output
    assert Path("one.jsonl").read_bytes() == Path("many.jsonl").read_bytes()
    a, b = _invoke("state", "export", "--store", "one.db"), _invoke("state", "export", "--store",
                                                                    "many.db")  # fmt: skip
    assert a.exit_code == b.exit_code == 0 and a.output == b.output and a.output.count("\n") > 3


@pytest.mark.parametrize(
    ("errno_", "advice"),
    [(30, "make it and its folder writable"), (28, "free some space")],  # EROFS, ENOSPC
)
def test_a_shard_folder_that_cannot_be_made_is_named(
    getcloudy: Path, monkeypatch: pytest.MonkeyPatch, errno_: int, advice: str
) -> None:
    """The store's folder read-only or full: `cannot write the output: Read-only file
    system` named nothing; the message now names the shard folder and what to do."""
    assert _invoke("partition", "events.jsonl", "--buckets", "2", "--out", "part").exit_code == 0
    mkdir = Path.mkdir

    def refused(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name.endswith(".shards") or self.parent.name.endswith(".shards"):
            raise OSError(errno_, os.strerror(errno_), str(self))
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    r = _invoke("run", "rules", "part", "--engine", "local", "--store", "many.db")
    assert r.exit_code == 4, r.output
    assert r.output.startswith("mrules: error: cannot write many.db.shards/"), r.output
    assert f"{os.strerror(errno_)}; {advice}, then run the same command again" in r.output
    assert "Traceback" not in r.output and r.output.count("\n") == 1


def test_a_second_run_into_the_same_new_store_is_busy(getcloudy: Path) -> None:
    """Two partitioned runs into one new store (a job started twice) shared its shards
    and its hidden merged store, which one removed under the other: one ended in
    `internal error: no such table: meta` (exit 70), the other, busy on the hidden
    `.many.db.merging`, and no store was written. The store's lock is now held from the
    start: the second run is exit 5 at once, naming the first."""
    import fcntl

    assert _invoke("partition", "events.jsonl", "--buckets", "2", "--out", "part").exit_code == 0
    command = [*MRULES, "run", "rules", "part", "--engine", "local", "--store", "many.db", "-q"]
    with open("many.db.lock", "w") as held:  # the first run's lock, as it holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(f"{os.getpid()}\n")
        held.flush()
        busy = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 5, busy.stderr
        assert busy.stderr == (
            f"mrules: error: store many.db is in use by another mrules process (pid"
            f" {os.getpid()}); add --wait to wait for it, or stop the other run\n"
        )
        assert sorted(p.name for p in Path().iterdir() if p.name.startswith("many")) == [
            "many.db.lock"
        ]
        # --wait waits for it, then (the first run done) finds its store.
        waiting = subprocess.Popen([*command, "--wait-timeout", "60"], stderr=subprocess.PIPE,
                                   text=True)  # fmt: skip
        time.sleep(1)
        assert waiting.poll() is None
        Path("many.db").touch()  # the first run's store, put into place as it ends
    _out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 2 and "many.db exists" in err, err


SEES_CACHE = """
import sys
import mrules.engine as engine
from mrules.cli import main
init = engine.Engine.__init__
def noting(self, *args, **kwargs):
    init(self, *args, **kwargs)
    print("cache_prospects", self.cache_prospects, file=sys.stderr)
engine.Engine.__init__ = noting
main(sys.argv[1:])
"""


def test_cache_prospects_reaches_every_bucket_and_commit_seconds_is_refused(
    getcloudy: Path,
) -> None:
    """Both were silently ignored: each bucket ran with the default cache, and
    --commit-seconds did nothing (a bucket is kept whole or run again)."""
    assert _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part").exit_code == 0
    args = ["run", "rules", "part", "--engine", "local", "--workers", "1", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run([sys.executable, "-c", SEES_CACHE, *args, "--store", "a.db",
                        "--cache-prospects", "7"],
                       capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert r.returncode == 3, r.stderr  # the two bad lines
    seen = {line for line in r.stderr.splitlines() if line.startswith("cache_prospects")}
    assert seen == {"cache_prospects 7"}, r.stderr
    r = subprocess.run([sys.executable, "-m", "mrules", *args, "--store", "b.db",
                        "--commit-seconds", "5"],
                       capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "--commit-seconds is for a stream read as it comes" in r.stderr
    assert not Path("b.db").exists() and not Path("b.db.shards").exists()


def test_a_scheduler_not_reached_leaves_no_shard_folder(getcloudy: Path) -> None:
    """`NEW.db.shards/` was made before the scheduler was reached, and left behind."""
    pytest.importorskip("distributed")
    assert _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part").exit_code == 0
    # An address Dask refuses at once: the same path as a scheduler that times out (30 s).
    cmd = [*MRULES, "run", "rules", "part", "--engine", "dask", "--scheduler", "nosuch://x",
           "-q", "--store"]  # fmt: skip
    r = subprocess.run([*cmd, "new.db"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr, r.stderr
    assert not Path("new.db").exists() and not Path("new.db.shards").exists()
    # A previous run's resumable work is kept.
    kept = Path("old.db.shards/0123456789abcdef/b00000.db")
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"a finished shard")
    r = subprocess.run([*cmd, "old.db"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert kept.read_bytes() == b"a finished shard"


def test_the_merged_store_keeps_the_buckets_diagnostics_and_rejects_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The diagnostics reports are kept in the store: the merge dropped the shards', so the
    next run on the merged store repaired the partitioned run's diagnostics file to none."""
    monkeypatch.chdir(tmp_path)
    unchecked_rules(monkeypatch, Path("."))  # r.mr
    lines = [json.dumps({"ts": f"2026-11-02T09:00:0{i}Z", "type": "prospect_update",
                         "prospect": f"{w}@x.com", "fields": {}}) + "\n"
             for i, w in enumerate(["a", "b", "c", "d"])]  # fmt: skip
    Path("events.jsonl").write_text("".join(lines) + "{bad\n")
    assert _invoke("partition", "events.jsonl", "--buckets", "2", "--out", "part").exit_code == 0
    many = _invoke("run", "r.mr", "part", "--engine", "local", "--store", "many.db", "-q")
    assert many.exit_code == 3, many.output

    def reported_in(path: str) -> list[str]:
        return sorted(json.loads(x)["prospect"] for x in Path(path).read_text().splitlines())

    reported = reported_in("many.diagnostics.jsonl")
    assert reported == ["a@x.com", "b@x.com", "c@x.com", "d@x.com"]
    rejects = Path("many.rejects.jsonl").read_bytes()
    Path("empty.jsonl").write_text("")
    again = _invoke("run", "r.mr", "empty.jsonl", "--store", "many.db", "-q")
    assert again.exit_code == 0, again.output
    assert reported_in("many.diagnostics.jsonl") == reported
    assert Path("many.rejects.jsonl").read_bytes() == rejects


def test_a_resumed_run_reports_the_buckets_done_before_from_python_as_the_command_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From Python, a run resumed after an interruption reported 0 applied, rejected and
    unsettled for the buckets an earlier run finished, where the command counts them; and a
    tick that is not valid was a rejected line once a bucket. Both now count each bucket as
    the run that finished it did, and each rejected line once, as one process does."""
    import mrules
    from mrules.compiler import compile_program
    from mrules.loader import load
    from mrules.partition import partition

    monkeypatch.chdir(tmp_path)
    unchecked_rules(monkeypatch, tmp_path)  # r.mr: a prospect in neither list never settles
    updates = [
        {"ts": f"2026-11-02T09:00:0{i}Z", "type": "prospect_update", "prospect": f"{w}@x.com"}
        for i, w in enumerate("abcdefgh")
    ]
    ticks = '{"ts": "soon", "type": "tick"}\n{"ts": "2026-11-02T10:00:00Z", "type": "tick"}\n'
    Path("events.jsonl").write_text(
        "".join(json.dumps(u) + "\n" for u in updates) + "not json\n" + ticks
    )
    loaded = load(["r.mr"])
    compiled = compile_program(loaded.program, loaded.sources)  # past the lint, as the CLI's
    one = mrules.run(compiled, "events.jsonl", "one.db").summary
    assert (one.rejected, len(one.unsettled)) == (2, 8)
    partition(["events.jsonl"], "part", 4)
    fresh = run_partitioned(compiled, "part", "fresh.db", workers=1)

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr("mrules.scale.driver.merge_shards", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            run_partitioned(compiled, "part", "resumed.db", workers=1)
    resumed = run_partitioned(compiled, "part", "resumed.db", workers=1)
    assert (fresh.skipped, resumed.skipped) == (0, 4)
    for r in (fresh, resumed):
        assert r.rejected == one.rejected and len(r.unsettled) == len(one.unsettled)
        assert (r.applied, r.duplicates, r.events) == (fresh.applied, fresh.duplicates, 17)
    assert sorted(map(repr, resumed.unsettled)) == sorted(map(repr, fresh.unsettled))
    # The command says the count the report has, resumed or not (one computation).
    cmd = ["run", "r.mr", "part", "--engine", "local", "--store", "cli.db"]
    with monkeypatch.context() as m:
        m.setattr("mrules.scale.driver.merge_shards", ctrl_c)
        assert _invoke(*cmd).exit_code == 130
    said = _invoke(*cmd)
    assert said.exit_code == 3, said.output
    assert "(4 done before)" in said.output
    assert (
        f"(17 bucket lines: ticks go to every bucket), {resumed.rejected} rejected" in said.output
    )


def test_engine_dask_without_a_scheduler_starts_a_local_cluster_of_workers(
    getcloudy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `--engine dask` does with neither --scheduler nor --dask-local was said
    nowhere (`--workers`: "for --engine local"): a local cluster of --workers (as many
    buckets or more: never more workers than tasks)."""
    assert _invoke("partition", "events.jsonl", "--buckets", "4", "--out", "part").exit_code == 0
    made: list[dict[str, Any]] = []

    class Pool:  # no cluster started: what it would be started with
        def __init__(self, **options: Any) -> None:
            made.append(options)
            raise KeyboardInterrupt

    monkeypatch.setattr("mrules.scale.dask_engine.DaskPool", Pool)
    r = _invoke("run", "rules", "part", "--engine", "dask", "--workers", "3", "--store", "d.db")
    assert r.exit_code == 130, r.output
    assert made[0]["scheduler"] is None and made[0]["workers"] == 3
    help_text = " ".join(_invoke("run", "--help").output.split())
    assert "--engine dask's local cluster when neither --scheduler nor --dask-local" in help_text


def test_a_shard_without_its_counts_has_its_bucket_run_again(
    getcloudy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shard an older mrules finished kept no counts beside it: its bucket is run again,
    so the report counts it, rather than reported as nothing."""
    assert _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part").exit_code == 0
    whole = run_partitioned("rules", "part", "whole.db", workers=1)

    def ctrl_c(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr("mrules.scale.driver.merge_shards", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            run_partitioned("rules", "part", "many.db", workers=1)
    counts = sorted(Path("many.db.shards").glob("*/b*.db.counts.json"))
    assert len(counts) == 3
    counts[0].unlink()
    again = run_partitioned("rules", "part", "many.db", workers=1)
    assert again.skipped == 2
    assert (again.events, again.applied, again.rejected) == (
        whole.events,
        whole.applied,
        whole.rejected,
    )


def test_a_partitioned_run_warns_of_rules_that_do_not_settle_as_one_process_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process printed a `rules do not settle` warning a prospect (the first five, then
    `... and N more`); a partitioned run on the same events printed none, the diagnostics
    file alone had them. It now prints the same lines in the same order, whichever bucket
    finishes first."""
    monkeypatch.chdir(tmp_path)
    unchecked_rules(monkeypatch, tmp_path)  # r.mr: a prospect in neither list never settles
    Path("events.jsonl").write_text(
        "".join(
            json.dumps({"ts": f"2026-11-02T09:00:0{i}Z", "type": "prospect_update",
                        "prospect": f"{w}@x.com"}) + "\n"
            for i, w in enumerate("hgfedcba")
        )
    )  # fmt: skip

    def warnings(stderr: str) -> list[str]:
        return [ln for ln in stderr.splitlines() if ln.startswith("mrules: warning: ")]

    one = _invoke("run", "r.mr", "events.jsonl", "--store", "one.db", "-q")
    assert one.exit_code == 0, one.output
    said = warnings(one.stderr)
    assert len(said) == 6 and said[0].startswith("mrules: warning: prospect h@x.com (line 1): its")
    assert said[-1] == "mrules: warning: ... and 3 more"
    assert _invoke("partition", "events.jsonl", "--buckets", "4", "--out", "part").exit_code == 0
    for quiet in ([], ["-q"]):
        store = f"many{len(quiet)}.db"
        many = _invoke("run", "r.mr", "part", "--engine", "local", "--workers", "2",
                       "--store", store, *quiet)  # fmt: skip
        assert many.exit_code == 0, many.output
        assert warnings(many.stderr) == said
        diagnostics = Path(store).with_suffix(".diagnostics.jsonl").read_bytes()
        assert diagnostics == Path("one.diagnostics.jsonl").read_bytes()


@pytest.mark.parametrize(
    ("errno_", "advice"),
    [(30, "make it and its folder writable"), (28, "free some space")],  # EROFS, ENOSPC
)
def test_a_partition_folder_that_cannot_be_made_on_its_disk_is_exit_4(
    getcloudy: Path, monkeypatch: pytest.MonkeyPatch, errno_: int, advice: str
) -> None:
    """`--out` on a read-only (or full) disk was exit 2, `cannot create it`, the code of a
    command to fix; the disk failed, as when a bucket file cannot be written (exit 4), and
    `replay --store-dir` on such a disk is 4 too."""
    mkdir = Path.mkdir

    def refused(self: Path, *args: Any, **kwargs: Any) -> None:
        if self.name == "part":
            raise OSError(errno_, os.strerror(errno_), str(self))
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    r = _invoke("partition", "events.jsonl", "--buckets", "2", "--out", "part")
    assert r.exit_code == 4, r.output
    assert r.output == (
        f"mrules: error: cannot write part: {os.strerror(errno_)}; {advice}, then run the same"
        " command again\n"
    )
    assert not (getcloudy / "part").exists()


@pytest.mark.parametrize("option", ["--dask-local", "--workers"])
def test_a_local_dask_cluster_starts_no_more_workers_than_buckets(
    getcloudy: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    """`--dask-local 99999999999999999999` started workers until the run was killed (a
    local process pool starts no more workers than tasks already)."""
    assert _invoke("partition", "events.jsonl", "--buckets", "2", "--out", "part").exit_code == 0
    made: list[dict[str, Any]] = []

    class Pool:  # no cluster started: what it would be started with
        def __init__(self, **options: Any) -> None:
            made.append(options)
            raise KeyboardInterrupt

    monkeypatch.setattr("mrules.scale.dask_engine.DaskPool", Pool)
    r = _invoke("run", "rules", "part", "--engine", "dask", option, "99999999999999999999",
                "--store", "d.db")  # fmt: skip
    assert r.exit_code == 130, r.output
    assert made[0]["scheduler"] is None and made[0]["workers"] == 2
