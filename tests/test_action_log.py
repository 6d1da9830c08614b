"""The action log's fast line writer says exactly what `action_record` says."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from mrules.outputs import ActionLog, OutputError, action_record
from mrules.store import Store

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
texts = st.text(max_size=20)
rows = st.tuples(
    st.integers(1, 2**40),
    st.floats(0, 4e9, allow_nan=False),
    texts,
    texts,
    texts,
    texts,
    texts,
    st.integers(0, 10**6),
    st.none() | texts,
    texts,
    json_values.map(lambda v: orjson.dumps(v).decode()),
    st.none() | json_values.map(lambda v: orjson.dumps(v).decode()),
    json_values.map(lambda v: orjson.dumps(v).decode()),
)


@given(st.lists(rows, min_size=1, max_size=5))
def test_fast_line_equals_the_record(batch) -> None:
    log = ActionLog.__new__(ActionLog)  # only the formatter: no file, no store
    for row in batch:
        assert orjson.loads(log._line(row)) == action_record(row)


# -- a torn or damaged end, resumed: the log equals a clean run's, byte for byte ------------

import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from conftest import EXAMPLE  # noqa: E402
from mrules.cli import main  # noqa: E402
from mrules.exitcodes import ExitCode  # noqa: E402


def _run(store: Path, log: Path, events: Path = EXAMPLE / "events.jsonl") -> Any:
    return CliRunner().invoke(
        main,
        [
            "run",
            str(EXAMPLE / "rules"),
            str(events),
            "--store",
            str(store),
            "-q",
            "--actions",
            str(log),
        ],
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("log")
    res = _run(d / "s.db", d / "actions.jsonl")
    assert res.exit_code == 0, res.output
    data = (d / "actions.jsonl").read_bytes()
    assert data.count(b"\n") > 20
    return {"dir": d, "store": d / "s.db", "log": data}


def _resume(clean: dict[str, Any], tmp_path: Path, damaged: bytes) -> bytes:
    store = tmp_path / "s.db"
    shutil.copy(clean["store"], store)  # the store committed everything; the log did not
    log = tmp_path / "actions.jsonl"
    with Store.open(store) as s:  # as the run that started this log noted it
        s.set_log_start(str(log.resolve()), 0)
    log.write_bytes(damaged)
    res = _run(store, log)
    assert res.exit_code == 0, res.output
    return log.read_bytes()


def _cuts(data: bytes) -> list[int]:
    """Where to cut: inside the first, a middle and the last line, and at line ends."""
    ends = [i + 1 for i, b in enumerate(data) if b == 0x0A]
    return sorted(
        {
            5,
            20,  # inside the first line, past its '{"seq":'
            ends[0] + 3,
            ends[len(ends) // 2] - 7,
            ends[-2] + 1,
            len(data) - 1,
            ends[len(ends) // 2],
        }
    )


@pytest.mark.parametrize(
    "tail",
    [b"", b"\x00\x00\x00\x00", b'#garbage\n{"seq": }\n', b"\n\n"],
    ids=["torn", "nul-bytes", "garbage-lines", "empty-lines"],
)
def test_a_torn_or_damaged_end_is_cut_and_caught_up(
    clean: dict[str, Any], tmp_path: Path, tail: bytes
) -> None:
    first_end = clean["log"].index(b"\n")
    for cut in _cuts(clean["log"]):
        if cut < first_end and tail.startswith(b"#"):
            continue  # a torn first line then text: not recognisably a log (refused, below)
        d = tmp_path / str(cut)
        d.mkdir()
        assert _resume(clean, d, clean["log"][:cut] + tail) == clean["log"], cut


def test_an_empty_log_a_killed_first_run_left_gets_every_row(
    clean: dict[str, Any], tmp_path: Path
) -> None:
    """The store notes where a new log starts: a run killed before the log's first row
    leaves an empty file, and the next run fills it from that start, not from the end."""
    store, log = tmp_path / "s.db", tmp_path / "actions.jsonl"
    shutil.copy(clean["store"], store)
    with Store.open(store) as s:  # what the first run noted before its first batch
        s.set_log_start(str(log.resolve()), 0)
    log.touch()
    assert _run(store, log).exit_code == 0
    assert log.read_bytes() == clean["log"]


def test_a_new_log_holds_only_this_runs_actions(clean: dict[str, Any], tmp_path: Path) -> None:
    store, log = tmp_path / "s.db", tmp_path / "actions.jsonl"
    shutil.copy(clean["store"], store)
    assert _run(store, log).exit_code == 0
    assert log.read_bytes() == b""  # the stream was already applied: no new action


def test_a_file_that_is_not_a_log_is_refused_and_left_alone(
    clean: dict[str, Any], tmp_path: Path
) -> None:
    store, log = tmp_path / "s.db", tmp_path / "notes.txt"
    shutil.copy(clean["store"], store)
    for text in (b"my notes\nnot a log\n", b'{"seq#garbage\n', b'{"other": 1}',
                 b"\nmy notes\n", b"\x00\x00my notes\n"):  # fmt: skip
        log.write_bytes(text)
        res = _run(store, log)
        assert res.exit_code == ExitCode.STORE
        assert "not an mrules action log" in res.stderr and "Traceback" not in res.stderr
        assert log.read_bytes() == text


def test_a_log_ahead_of_the_store_is_refused(clean: dict[str, Any], tmp_path: Path) -> None:
    log = tmp_path / "actions.jsonl"
    log.write_bytes(clean["log"])
    res = _run(tmp_path / "new.db", log)  # a new store: its ledger is behind the log
    assert res.exit_code == ExitCode.STORE
    assert "written from another store" in res.stderr
    assert log.read_bytes() == clean["log"]
    assert all(json.loads(x)["seq"] for x in clean["log"].splitlines())


def test_a_log_kept_from_an_in_memory_run_says_why(clean: dict[str, Any], tmp_path: Path) -> None:
    log = tmp_path / "actions.jsonl"
    assert _run(Path(":memory:"), log).exit_code == 0
    assert log.read_bytes() == clean["log"]  # the same run, the same log
    res = _run(Path(":memory:"), log)  # the store starts empty again; the log does not
    assert res.exit_code == ExitCode.STORE
    assert "an in-memory store starts empty at every run" in res.stderr
    assert log.read_bytes() == clean["log"]


def test_a_log_a_kill_left_empty_after_the_first_commit_gets_every_row(
    clean: dict[str, Any], tmp_path: Path
) -> None:
    """The run that creates a log notes its start in the store before its first batch: a
    kill between the store's commit and the log's first write leaves an empty log (made
    here by emptying it), and the next run writes every row from that start."""
    store, log = tmp_path / "s.db", tmp_path / "actions.jsonl"
    assert _run(store, log).exit_code == 0
    assert log.read_bytes() == clean["log"]
    log.write_bytes(b"")
    assert _run(store, log).exit_code == 0  # nothing new to apply: the rows are caught up
    assert log.read_bytes() == clean["log"]


def test_a_log_removed_between_runs_starts_again_at_the_ledger_s_end(tmp_path: Path) -> None:
    """A log that does not exist is a new log, even where an earlier run had one: it holds
    the actions from the ledger's end on, not every row since that earlier log's start."""
    lines = (EXAMPLE / "events.jsonl").read_bytes().splitlines(keepends=True)
    events, store, log = tmp_path / "events.jsonl", tmp_path / "s.db", tmp_path / "actions.jsonl"
    events.write_bytes(b"".join(lines[: len(lines) // 2]))
    assert _run(store, log, events).exit_code == 0
    with Store.open(store, readonly=True) as s:
        first = s.max_seq()
    assert first > 0 and log.read_bytes()
    log.unlink()
    events.write_bytes(b"".join(lines))  # the stream grew: the run goes on from its end
    assert _run(store, log, events).exit_code == 0
    with Store.open(store, readonly=True) as s:
        later = [e.seq for e in s.ledger(after_seq=first)]
    assert later and [json.loads(x)["seq"] for x in log.read_bytes().splitlines()] == later


def test_a_run_closes_its_log(clean: dict[str, Any], tmp_path: Path) -> None:
    """The log's file is closed when the run ends: a worker of a partitioned run opens one
    for each bucket it runs (1,024 buckets would reach the usual limit of open files)."""
    store, log = tmp_path / "s.db", tmp_path / "actions.jsonl"
    shutil.copy(clean["store"], store)
    with Store.open(store) as s:
        opened = ActionLog(log, s)
        fd = opened._fd
        assert fd is not None and os.fstat(fd)
        opened.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    opened.close()  # a second close is nothing
    assert log.read_bytes() == b""


def test_a_log_that_cannot_be_opened_is_an_output_error_naming_why(
    clean: dict[str, Any], tmp_path: Path
) -> None:
    """`mrules run` checks the path first; a log that still cannot be opened (its folder
    replaced by a file since) is an OutputError with the system's reason, not a trace."""
    (tmp_path / "gone").write_text("a file where the folder was")
    log = tmp_path / "gone" / "actions.jsonl"
    why = r"cannot open action log .*: Not a directory$"
    with Store.open(clean["store"], readonly=True) as s, pytest.raises(OutputError, match=why):
        ActionLog(log, s)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A log of several 64 KB blocks (the repair reads a log backward a block at a time)."""
    import sys

    sys.path.insert(0, str(EXAMPLE.parents[1] / "bench"))
    import generate

    d = tmp_path_factory.mktemp("big")
    generate.main([str(d), "--prospects", "80", "--events", "1500", "--seed", "4"])
    res = _run_with(d / "rules", d / "events.jsonl", d / "s.db", d / "actions.jsonl")
    assert res.exit_code == 0, res.output
    return {"dir": d, "log": (d / "actions.jsonl").read_bytes()}


def _run_with(rules: Path, events: Path, store: Path, log: Path) -> Any:
    return CliRunner().invoke(
        main, ["run", str(rules), str(events), "--store", str(store), "-q", "--actions", str(log)]
    )


def test_a_torn_end_of_a_log_of_many_blocks_is_cut_at_its_last_line(
    big: dict[str, Any], tmp_path: Path
) -> None:
    """The log read backward from its end, 64 KB at a time: torn ends placed so that a
    line's newline is the first byte of a block, the last, or next to them; the resumed
    log equals the clean one."""
    data, torn = big["log"], b'{"seq": 9'
    assert len(data) > 4 * 65536
    newline = [i for i, b in enumerate(data) if b == 0x0A][len(data) // 2000]
    cuts = set()
    for blocks in (1, 2):  # the file's size is the cut plus the torn bytes
        at_edge = newline + blocks * 65536 - len(torn)
        cuts |= {at_edge - 1, at_edge, at_edge + 1}
    for cut in sorted(cuts):
        d = tmp_path / str(cut)
        d.mkdir()
        store, log = d / "s.db", d / "actions.jsonl"
        shutil.copy(big["dir"] / "s.db", store)
        with Store.open(store) as s:
            s.set_log_start(str(log.resolve()), 0)
        log.write_bytes(data[:cut] + torn)
        res = _run_with(big["dir"] / "rules", big["dir"] / "events.jsonl", store, log)
        assert res.exit_code == 0, res.output
        assert log.read_bytes() == data, cut
