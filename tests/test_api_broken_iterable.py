"""An exception raised by the caller's own iterable of events (`mrules.run`).

The events applied since the last commit were lost: the run re-raised the exception and
the batch in flight was dropped, so the store lacked events the iterable had given (a
queue consumer has no way to give them again). They are now committed with their
position before the exception goes through, unchanged, and the same stream resumed ends
where one clean run ends.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import mrules
from conftest import stopped
from mrules.storeapi import StateStore

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "getcloudy"
RULES = EXAMPLE / "rules"


def _more(n: int) -> str:
    """The example's stream goes on: 300 prospects view pages and submit the form."""
    who = f"p{n % 300}@x.example"
    ts = f"2026-11-{3 + n // 600:02}T{n // 60 % 10:02}:{n % 60:02}:00Z"
    if n % 7 == 3:
        size = ("1-10", "200+")[n % 2]
        return (
            f'{{"ts":"{ts}","id":"g{n}","type":"form_submit","prospect":"{who}",'
            f'"asset":"Demande Get Cloudy","fields":{{"company_size":"{size}"}}}}'
        )
    page = ("pricing", "consult", "careers/x")[n % 3]
    return (
        f'{{"ts":"{ts}","id":"g{n}","type":"page_view","prospect":"{who}",'
        f'"url":"https://www.getcloudy.com/{page}"}}'
    )


# more lines than a chunk the engine reads at a time (512), and commits every 500
LINES = (EXAMPLE / "events.jsonl").read_text().splitlines() + [_more(n) for n in range(1500)]
EVERY = 500


class Broken(Exception):
    """The caller's own failure: a queue that went away, a parse error of its own."""


def _failing(lines: Iterable[str], after: int, error: BaseException) -> Iterator[str]:
    for n, line in enumerate(lines):
        if n == after:
            raise error
        yield line


def _clean(tmp_path: Path) -> list[dict[str, Any]]:
    with mrules.run(RULES, LINES, store=tmp_path / "clean.db", commit_every=EVERY):
        pass
    return mrules.export(tmp_path / "clean.db")


@pytest.mark.parametrize(
    "after",
    [12, 1024, 1200],
    ids=["in-the-first-chunk", "at-a-chunk-s-end", "past-two-commits"],
)
@pytest.mark.parametrize("error", [Broken("the queue went away"), KeyboardInterrupt()])
@pytest.mark.parametrize("again", ["the-rest", "the-whole-stream"])
def test_what_an_iterable_gave_before_it_raised_is_kept(
    tmp_path: Path, after: int, error: BaseException, again: str
) -> None:
    store = tmp_path / "s.db"
    with pytest.raises(type(error)) as raised:
        mrules.run(RULES, _failing(LINES, after, error), store=store, commit_every=EVERY)
    assert raised.value is error  # the caller's exception, as it was raised
    # every line given before the exception is kept, with the stream's position
    with mrules.api.open_store(store, readonly=True) as kept:
        assert isinstance(kept, StateStore)
        assert kept.stream_position("-") == after
    rest = LINES[after:] if again == "the-rest" else LINES
    with mrules.run(RULES, rest, store=store, commit_every=EVERY) as resumed:
        assert resumed.summary.lines == len(rest)
    assert mrules.export(store) == _clean(tmp_path)


def test_an_iterable_into_memory_keeps_what_it_gave_in_the_store_object() -> None:
    """A store object given to `run` is closed by the failed run, as by a finished one;
    the commit happened before: a memory store holds the lines read."""
    store = mrules.api.open_store(":memory:")
    with pytest.raises(Broken):
        mrules.run(RULES, _failing(LINES, 1200, Broken("stop")), store=store, commit_every=EVERY)
    assert store.stream_position("-") == 1200
    assert store.prospect_count() > 0


def test_an_iterable_failing_before_its_first_line_commits_nothing(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with pytest.raises(Broken):
        mrules.run(RULES, _failing(LINES, 0, Broken("at once")), store=store)
    assert mrules.export(store) == []


def test_an_interrupted_stdin_run_keeps_the_lines_it_read_and_exits_130(
    tmp_path: Path,
) -> None:
    """`mrules run ... -` interrupted while it waits for standard input: the lines it
    read are committed, the message counts them, exit 130 (docs/exit-codes.md)."""
    store = tmp_path / "s.db"
    args = [sys.executable, "-m", "mrules", "run", str(RULES), "-", "--store", str(store), "-q"]
    run = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdin is not None and run.stderr is not None
    try:
        run.stdin.write("".join(line + "\n" for line in LINES[:12]).encode())
        run.stdin.flush()
        lock = tmp_path / "s.db.lock"  # holds the pid of the run once the store is open
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip() == str(run.pid)):
            assert time.monotonic() < deadline, "the run did not open its store"
            time.sleep(0.05)
        time.sleep(1)  # the lines read; the run waits for more (no commit: 20,000 a batch)
    finally:
        err = stopped(run, signal.SIGINT).decode()
    assert run.returncode == 130, err
    assert "interrupted; the store keeps lines 1-12 of standard input" in err, err
    with mrules.run(RULES, LINES[12:], store=store) as resumed:
        assert resumed.summary.lines == len(LINES) - 12
    assert mrules.export(store) == _clean(tmp_path)
