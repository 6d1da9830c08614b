"""`mrules run DIR --engine local --actions PATH` where PATH is not a new file.

The merged log was written beside PATH and renamed over it: a symbolic link was
replaced by a regular file (the file it pointed to got nothing), a named pipe or a
device (`/dev/stdout`; as root, even `/dev/full`) by a regular file, and a log with
content, which `mrules run` refuses (written from another store, exit 4), was
silently overwritten."""

from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from scale_helpers import ROOT, getcloudy_rules
from scale_helpers import invoke as _invoke


@pytest.fixture
def part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The partition folder `part`, and the action log one process writes."""
    monkeypatch.chdir(tmp_path)
    getcloudy_rules(tmp_path)
    shutil.copy(ROOT / "examples/getcloudy/events.jsonl", "events.jsonl")
    one = _invoke("run", "rules", "events.jsonl", "--store", "one.db", "--actions", "one.jsonl")
    assert one.exit_code == 0, one.output
    assert _invoke("partition", "events.jsonl", "--buckets", "3", "--out", "part").exit_code == 0
    return Path("one.jsonl").read_bytes()


def _run(actions: str, store: str = "many.db") -> Any:
    return _invoke("run", "rules", "part", "--engine", "local", "--workers", "1",
                   "--store", store, "--actions", actions, "-q")  # fmt: skip


def test_a_symlink_is_followed(part: bytes) -> None:
    os.symlink("real.jsonl", "link.jsonl")
    r = _run("link.jsonl")
    assert r.exit_code == 0, r.output
    assert Path("link.jsonl").is_symlink() and Path("real.jsonl").read_bytes() == part


def test_a_named_pipe_is_written_to(part: bytes) -> None:
    os.mkfifo("pipe.jsonl")
    got: list[bytes] = []
    reader = threading.Thread(
        target=lambda: got.append(Path("pipe.jsonl").read_bytes()), daemon=True
    )
    reader.start()
    try:
        r = _run("pipe.jsonl")
    finally:
        if reader.is_alive():  # nothing opened the pipe: let the reader go
            with open("pipe.jsonl", "wb"):
                pass
        reader.join(10)
    assert r.exit_code == 0, r.output
    assert stat.S_ISFIFO(os.lstat("pipe.jsonl").st_mode)
    assert got == [part]


def test_a_log_with_content_is_refused_before_anything_runs(part: bytes) -> None:
    Path("old.jsonl").write_bytes(part)
    r = _run("old.jsonl")
    assert r.exit_code == 4, r.output
    assert "action log old.jsonl is not empty" in r.output
    assert Path("old.jsonl").read_bytes() == part and not Path("many.db").exists()
    Path("empty.jsonl").write_bytes(b"")  # an empty file is a new log, as for one process
    r = _run("empty.jsonl")
    assert r.exit_code == 0, r.output
    assert Path("empty.jsonl").read_bytes() == part
