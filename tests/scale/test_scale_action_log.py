"""`mrules run DIR --engine local --actions PATH` where PATH is not a new file.

The merged log was written beside PATH and renamed over it: a symbolic link was
replaced by a regular file (the file it pointed to got nothing), a named pipe or a
device (`/dev/stdout`; as root, even `/dev/full`) by a regular file, and a log with
content, which `mrules run` refuses (written from another store, exit 4), was
silently overwritten."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from scale_helpers import ROOT, getcloudy_rules
from scale_helpers import invoke as _invoke

from mrules.store import Store


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


KILLED_BETWEEN_RENAMES = """
import os, signal, sys
import mrules.scale.driver as driver
from mrules.cli import main
put = driver._put_action_log
def put_then_die(*args):
    put(*args)
    os.kill(os.getpid(), signal.SIGKILL)  # the log is in place, the store not yet
driver._put_action_log = put_then_die
main(sys.argv[1:])
"""


def test_a_kill_between_the_logs_rename_and_the_stores_is_redone(part: bytes) -> None:
    """The rerun was refused: `action log many.jsonl is not empty` (a full log, no store)."""
    args = ["run", "rules", "part", "--engine", "local", "--workers", "1",
            "--store", "many.db", "--actions", "many.jsonl", "-q"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, *args],
                            capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert Path("many.jsonl").read_bytes() == part and not Path("many.db").exists()
    again = subprocess.run([sys.executable, "-m", "mrules", *args],
                           capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert Path("many.jsonl").read_bytes() == part
    with Store.open("many.db", readonly=True) as st:
        assert st.prospect_count() > 0
    assert not Path("many.db.shards").exists()
    # Another log with content is still refused, even with a killed run's note about.
    Path("other.jsonl").write_bytes(part)
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES,
                             *[a.replace("many", "more") for a in args]],
                            capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    Path("more.jsonl").unlink()
    os.link("other.jsonl", "more.jsonl")  # not the file the killed run put there
    r = _run("more.jsonl", "more.db")
    assert r.exit_code == 4 and "action log more.jsonl is not empty" in r.output, r.output
