"""`mrules.atomic`: a user's file is replaced whole or not at all; a stream is written into."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mrules.atomic import atomic_write, atomic_writer

ROOT = Path(__file__).resolve().parent.parent


def test_a_regular_file_is_replaced_keeping_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left


def test_an_error_in_the_block_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"half")
        raise RuntimeError("stop")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_named_pipe_is_written_into_not_replaced(tmp_path: Path) -> None:
    """A rename over a pipe (or /dev/full, as root) replaced it with a regular file."""
    fifo = tmp_path / "report.html"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write(fifo, b"<html></html>")
    reader.join(timeout=30)
    assert got == [b"<html></html>"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_dev_stdout_as_an_output_file() -> None:
    """`-o /dev/stdout` into a pipe: the path resolves to no file in a folder, so the
    temporary file could not be made there ("No such file or directory", exit 4)."""
    res = subprocess.run(
        [sys.executable, "-m", "mrules", "test", "examples/getcloudy/tests", "--format", "junit",
         "-o", "/dev/stdout"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "<testsuites" in res.stdout
