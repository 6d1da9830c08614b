"""Messages that name a path whose name is not UTF-8 show its bytes as `\\xNN`, as every
other message does: the output files of `mrules run` (one process or partitioned), the
files of `mrules crm export` and the store `mrules segment` cannot find. Such a name is
a lone surrogate in Python (`os.fsdecode(b"a\\xff")`); printed raw, it came out as
`\\udcff` (or, on a stream that is strict about UTF-8, as a UnicodeEncodeError)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import Result
from tests.test_settle import OSCILLATING

from conftest import mrules

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "getcloudy"
TOO_LONG = os.fsdecode(b"a" * 300 + b"\xff.jsonl")  # no file system takes so long a name
BAD_LINE = b'{"ts": "2026-11-02T09:00:00Z", "type": "no such type", "prospect": "x@x.com"}\n'


def _shown_escaped(r: Result, message: str, code: int) -> None:
    assert r.exit_code == code, r.output
    assert message in r.stderr, r.stderr
    assert "udcff" not in r.output and "\udcff" not in r.output
    assert "Traceback" not in r.output
    assert isinstance(r.exception, SystemExit), r.exception  # fail() exits; no exception


def test_run_rejects_file_that_cannot_be_written_is_shown_escaped(here: Path) -> None:
    Path("events.jsonl").write_bytes((EXAMPLE / "events.jsonl").read_bytes() + BAD_LINE)
    r = mrules("run", EXAMPLE / "rules", "events.jsonl", "--store", "s.db", "--rejects", TOO_LONG)
    _shown_escaped(r, f"cannot write rejects file {'a' * 300}\\xff.jsonl: ", 4)


def test_run_action_log_that_cannot_be_opened_is_shown_escaped(here: Path) -> None:
    r = mrules(
        "run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", "s.db", "--actions", TOO_LONG
    )
    _shown_escaped(r, f"cannot open action log {'a' * 300}\\xff.jsonl: ", 4)


def test_run_diagnostics_file_that_cannot_be_written_is_shown_escaped(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mrules.cli.run_cmd.check", lambda program: [])  # rules that never settle
    Path("r.mr").write_text(OSCILLATING)
    event = {"ts": "2026-11-02T09:00:00Z", "type": "prospect_update", "prospect": "a@x.com"}
    Path("e.jsonl").write_bytes(orjson.dumps(event) + b"\n")
    r = mrules("run", "r.mr", "e.jsonl", "--store", "s.db", "--diagnostics", TOO_LONG)
    _shown_escaped(r, f"cannot write diagnostics file {'a' * 300}\\xff.jsonl: ", 4)


@pytest.fixture
def partitioned(here: Path) -> Path:
    """The example's rules set up for a partitioned run, its events with a rejected line,
    partitioned into `part`."""
    shutil.copytree(EXAMPLE / "rules", "rules")
    Path("rules/zz-partitions.mr").write_text('settings {\n  round_robin = "by prospect"\n}\n')
    Path("events.jsonl").write_bytes((EXAMPLE / "events.jsonl").read_bytes() + BAD_LINE)
    r = mrules("partition", "events.jsonl", "--buckets", "2", "--out", "part")
    assert r.exit_code == 0, r.output
    return here


def test_partitioned_run_rejects_file_that_cannot_be_written_is_shown_escaped(
    partitioned: Path,
) -> None:
    r = mrules(
        "run", "rules", "part", "--engine", "local", "--workers", "1", "--store", "s.db",
        "--rejects", TOO_LONG,
    )  # fmt: skip
    _shown_escaped(r, f"cannot write rejects file {'a' * 300}\\xff.jsonl: ", 4)


def test_partitioned_run_action_log_that_cannot_be_opened_is_shown_escaped(
    partitioned: Path,
) -> None:
    r = mrules(
        "run", "rules", "part", "--engine", "local", "--store", "s.db", "--actions", TOO_LONG
    )
    _shown_escaped(r, f"cannot open action log {'a' * 300}\\xff.jsonl: ", 4)


def test_partitioned_run_store_that_exists_is_shown_escaped(partitioned: Path) -> None:
    store = os.fsdecode(b"s\xff.db")
    Path(store).write_bytes(b"")
    r = mrules("run", "rules", "part", "--engine", "local", "--store", store)
    _shown_escaped(r, "s\\xff.db exists: a partitioned run writes a new store", 2)


def test_crm_export_file_that_cannot_be_written_is_shown_escaped(here: Path) -> None:
    r = mrules("crm", "load", EXAMPLE / "crm", "--store", "s.db")
    assert r.exit_code == 0, r.output
    out = Path(os.fsdecode(b"out\xff"))
    (out / "org.json").mkdir(parents=True)  # a folder where the file goes: it cannot be written
    r = mrules("crm", "export", "--store", "s.db", "--out", out)
    _shown_escaped(r, "cannot write out\\xff/org.json: Is a directory", 4)
    shutil.rmtree(out / "org.json")
    (out / "Lead.jsonl").mkdir()
    r = mrules("crm", "export", "--store", "s.db", "--out", out)
    _shown_escaped(r, "cannot write out\\xff/Lead.jsonl: Is a directory", 4)
    assert "out\\xff/org.json: the org settings" in r.stderr  # what was written, escaped too


def test_crm_changes_file_that_does_not_exist_is_shown_escaped(here: Path) -> None:
    r = mrules("crm", "apply-changes", os.fsdecode(b"changes\xff.jsonl"), "--store", "s.db")
    _shown_escaped(r, "changes\\xff.jsonl: no such file", 2)


def test_segment_store_that_does_not_exist_is_shown_escaped(here: Path) -> None:
    r = mrules("segment", EXAMPLE / "rules", "--store", os.fsdecode(b"nowhere\xff.db"))
    _shown_escaped(
        r, "no store at nowhere\\xff.db (run `mrules run ... --store nowhere\\xff.db`", 2
    )


def test_segment_store_message_prints_on_a_strict_utf8_stream(here: Path) -> None:
    """As a user runs it, with a stream that refuses what is not UTF-8: one line, exit 2."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    r = subprocess.run(
        [sys.executable, "-m", "mrules", "segment", str(EXAMPLE / "rules"), "--store",
         b"nowhere\xff.db"],
        capture_output=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert r.stderr.decode("utf-8") == (
        "mrules: error: no store at nowhere\\xff.db (run `mrules run ... --store nowhere\\xff.db`"
        " first)\n"
    )
