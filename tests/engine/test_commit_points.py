"""Where a run commits: every `batch_size` lines, every `commit_seconds` (looked at every
256 lines of a fast stream, and at each time mark of a slow one), and at the end.

A commit is what a killed run keeps (docs/store.md), so its points are what a user
relies on; each test lists the last line of every batch the engine committed.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from mrules.api import compile_rules, open_store
from mrules.engine import Engine, RunSummary
from mrules.events import Event, Reject, parse_line, read_events

RULES = "field title: text\n"


def _events(n: int) -> list[Event]:
    out = []
    for i in range(1, n + 1):
        raw = orjson.dumps(
            {"ts": "2026-11-02T09:00:00Z", "id": f"e{i}", "type": "prospect_update",
             "prospect": f"p{i % 5}@x.com", "fields": {"title": f"T{i}"}}
        )  # fmt: skip
        item = parse_line(raw, i)
        assert isinstance(item, Event)
        out.append(item)
    return out


def _run(items: list[Event | Reject | None], **options: Any) -> tuple[list[int], RunSummary]:
    """The last line of each batch committed, and the run's summary."""
    options.setdefault("source", "stream")
    lines: list[int] = []
    store = open_store(":memory:")
    try:
        engine = Engine(
            compile_rules(RULES),
            store,
            on_commit=lambda b: lines.append(b.line),
            **options,
        )
        engine.start()
        engine.run(items)
        assert engine.summary.applied == sum(1 for i in items if type(i) is Event)
    finally:
        store.close()
    return lines, engine.summary


def _commits(items: list[Event | Reject | None], **options: Any) -> list[int]:
    return _run(items, **options)[0]


def test_every_batch_size_lines_and_at_the_end() -> None:
    assert _commits(list(_events(10)), batch_size=3) == [3, 6, 9, 10]


def test_commit_seconds_of_zero_commits_every_256_lines_of_a_fast_stream() -> None:
    got = _commits(list(_events(600)), batch_size=10**6, commit_seconds=0.0)
    assert got == [256, 512, 600]


def test_commit_seconds_not_yet_passed_commits_only_at_the_end() -> None:
    items: list[Event | None] = list(_events(600))
    items.insert(300, None)  # a time mark: an hour has not passed since the start
    assert _commits(items, batch_size=10**6, commit_seconds=3600.0) == [600]


def test_a_time_mark_commits_the_lines_before_it_once() -> None:
    """A slow stream's mark commits what was read since the last commit; a second mark
    with nothing read since commits nothing, and the lines after it are read on."""
    e = _events(5)
    items: list[Event | None] = [e[0], e[1], None, None, e[2], e[3], None, e[4]]
    assert _commits(items, batch_size=100, commit_seconds=0.0) == [2, 4, 5]


def test_time_marks_commit_nothing_without_commit_seconds() -> None:
    e = _events(3)
    assert _commits([e[0], None, e[1], None, e[2]], batch_size=100) == [3]


@pytest.mark.parametrize("source", ["stream", "-"])
def test_a_file_s_unfinished_last_line_is_left_for_the_next_run(source: str) -> None:
    """docs/events.md: a file's last line with no newline that is not whole JSON is still
    being written: not counted, not rejected, and the position committed is the line
    before it, where the next run resumes. On standard input nothing comes after: it is
    rejected as any bad line, and counted."""
    data = b"".join(e.raw + b"\n" for e in _events(3))
    items = list(read_events(io.BytesIO(data + b'{"ts":"2026-11-02T09:00:00Z","ty')))
    got, s = _run(items, batch_size=100, source=source)
    if source == "-":
        assert got == [4]
        assert (s.lines, s.rejected, s.unfinished_line) == (4, 1, None)
    else:
        assert got == [3]
        assert (s.lines, s.rejected, s.unfinished_line) == (3, 0, 4)
