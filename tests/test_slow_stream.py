"""`--commit-seconds` on a stream that goes quiet: standard input, a pipe.

The engine reads a chunk of lines before it looks at the clock, and a pipe's
read waits for the writer: lines applied from a slow pipe stayed uncommitted
however long it was quiet, and a SIGTERM lost them (a pipe cannot give them
again). `mrules.timedstream` marks the time in such a stream.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import stopped
from mrules.timedstream import can_go_quiet, with_time_marks

ROOT = Path(__file__).resolve().parent.parent
RULES = str(ROOT / "examples" / "getcloudy" / "rules")
MRULES = (sys.executable, "-m", "mrules")


def _line(n: int) -> bytes:
    event = {
        "ts": f"2026-11-02T09:{n:02d}:00Z",
        "type": "prospect_update",
        "prospect": f"p{n}@x.example",
        "fields": {"company": f"C{n}"},
    }
    return json.dumps(event).encode() + b"\n"


def _committed(store: Path) -> int:
    """How many prospects another process sees in the store (a reader, while it runs)."""
    out = subprocess.run(
        [sys.executable, "-m", "mrules", "state", "export", "--store", str(store)],
        capture_output=True,
        check=True,
    )
    return len(out.stdout.splitlines())


def _wait_for(test, seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if test():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("stop", ["eof", "sigterm"])
def test_a_quiet_pipe_is_committed_every_commit_seconds(tmp_path: Path, stop: str) -> None:
    store = tmp_path / "s.db"
    run = subprocess.Popen(
        [*MRULES, "run", RULES, "-", "--store", str(store), "-q", "--commit-seconds", "0.3"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert run.stdin is not None
    try:
        for n in range(1, 4):
            run.stdin.write(_line(n))
            run.stdin.flush()
        # the pipe stays open and quiet: the three lines are committed anyway
        assert _wait_for(lambda: store.exists() and _committed(store) == 3)
        run.stdin.write(_line(4))
        run.stdin.flush()
        assert _wait_for(lambda: _committed(store) == 4)
    finally:
        err = stopped(run, None if stop == "eof" else signal.SIGTERM)
    assert run.returncode == (0 if stop == "eof" else 130), err
    assert b"Fatal Python error" not in err and b"Traceback" not in err
    assert _committed(store) == 4
    # the same lines from a file give the same state
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"".join(_line(n) for n in range(1, 5)))
    again = tmp_path / "f.db"
    subprocess.run(
        [sys.executable, "-m", "mrules", "run", RULES, str(events), "--store", str(again), "-q"],
        check=True,
    )
    export = [sys.executable, "-m", "mrules", "state", "export", "--store"]
    assert (
        subprocess.run([*export, str(store)], capture_output=True).stdout
        == subprocess.run([*export, str(again)], capture_output=True).stdout
    )


def test_an_interrupted_pipe_is_not_said_to_resume(tmp_path: Path) -> None:
    """An interrupted run on standard input said `the store keeps lines 1-N of -; running
    the same command again resumes after them`, but a pipe has no position: the same
    command applies every line it is given again, and an event without an id twice."""
    store = tmp_path / "s.db"
    args = [*MRULES, "run", RULES, "-", "--store", str(store), "-q", "--commit-seconds", "0.3"]
    run = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdin is not None and run.stderr is not None
    try:
        for n in range(1, 4):
            run.stdin.write(_line(n))
        run.stdin.flush()
        assert _wait_for(lambda: store.exists() and _committed(store) == 3)
    finally:
        err = stopped(run).decode()
    assert run.returncode == 130, err
    assert "interrupted; the store keeps lines 1-3 of standard input" in err
    assert "not resumed by position" in err and "resumes after them" not in err
    # a second run on the same store, interrupted before it commits, counts none of them
    run = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdin is not None and run.stderr is not None
    try:
        lock = tmp_path / "s.db.lock"  # holds the pid of the run that has the store open
        assert _wait_for(lambda: lock.read_text().strip() == str(run.pid))
    finally:
        err = stopped(run).decode()
    assert run.returncode == 130, err
    assert "lines 1-3" not in err and "the store keeps what was committed" in err


@pytest.mark.parametrize("extra", [[], ["--commit-seconds", "0.5"]])
def test_a_broken_pipe_is_named_as_standard_input(tmp_path: Path, extra: list[str]) -> None:
    """With --commit-seconds the stream is read through a copy of its descriptor, and a
    broken gzip stream on standard input was reported as `mrules: error: 8: broken gzip
    data` (the copy's number) rather than `<stdin>`."""
    packed = gzip.compress(b"".join(_line(n) for n in range(1, 30)))
    args = [*MRULES, "run", RULES, "-", "--store", str(tmp_path / "s.db"), "-q", *extra]
    res = subprocess.run(args, input=packed[: len(packed) // 2], capture_output=True, check=False)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(b"mrules: error: <stdin>: broken gzip data"), res.stderr


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(), max_size=50), st.sampled_from([0.0001, 0.01, 60.0]))
def test_time_marks_keep_every_item_in_order(items: list[int], seconds: float) -> None:
    got = list(with_time_marks(iter(items), seconds))
    assert [i for i in got if i is not None] == items


def test_an_error_of_the_stream_comes_after_its_items() -> None:
    def broken():
        yield 1
        yield 2
        raise OSError("read error")

    seen: list[int | None] = []
    with pytest.raises(OSError, match="read error"):
        seen.extend(with_time_marks(broken(), 60.0))
    assert seen == [1, 2]


def test_marks_come_while_the_stream_is_quiet() -> None:
    def slow():
        yield 1
        time.sleep(0.5)
        yield 2

    got = list(with_time_marks(slow(), 0.1))
    assert [i for i in got if i is not None] == [1, 2] and got.count(None) >= 2


def test_which_sources_can_go_quiet(tmp_path: Path) -> None:
    plain = tmp_path / "e.jsonl"
    plain.write_bytes(b"")
    assert not can_go_quiet(plain) and not can_go_quiet(str(plain))
    with open(plain, "rb") as f:
        assert not can_go_quiet(f)
    assert not can_go_quiet([b"{}"]) and not can_go_quiet(tmp_path / "missing")
    read, write = os.pipe()
    with os.fdopen(read, "rb") as r, os.fdopen(write, "wb"):
        assert can_go_quiet(r)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert can_go_quiet(fifo)
