"""`mrules.atomic`: a user's file is replaced whole or not at all; a stream is written into."""

from __future__ import annotations

import fcntl
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


KILLED_WRITER = """
import sys, time
from pathlib import Path
from mrules.atomic import atomic_writer
with atomic_writer(Path(sys.argv[1])) as f:
    f.write(b"half")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
"""


def test_a_killed_writers_temporary_file_goes_with_the_next_write(tmp_path: Path) -> None:
    """A kill -9 inside atomic_writer left `.NAME.xxxxxxxx.tmp` for good."""
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)],
                         stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "writing"
    finally:
        p.kill()
        p.wait(timeout=10)
    left = [x.name for x in tmp_path.iterdir() if x.name != "out.txt"]
    assert len(left) == 1 and left[0].startswith(".out.txt.") and left[0].endswith(".tmp")
    # not ours, or not a killed writer's: left alone
    others = [".out.txt.backup.tmp", ".out.txt.abcd1234.tmp.keep", ".other.txt.abcd1234.tmp",
              ".out.txt.x.abcd1234.tmp", "out.txt.abcd1234.tmp"]  # fmt: skip
    for name in others:
        (tmp_path / name).write_bytes(b"keep")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".out.txt.dir12345.tmp").mkdir()
    held = tmp_path / ".out.txt.held1234.tmp"  # a writer at work: it holds its lock
    with open(held, "wb") as h:
        fcntl.flock(h.fileno(), fcntl.LOCK_EX)
        atomic_write(target, b"new")
        assert held.exists()
    assert target.read_bytes() == b"new"
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        ["out.txt", "sub", ".out.txt.dir12345.tmp", held.name, *others]
    )
    atomic_write(target, b"newer")  # no writer holds it now
    assert not held.exists()


def test_concurrent_writers_of_one_file_never_remove_each_others_temporary(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.txt"
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(40):
                with atomic_writer(target) as f:
                    f.write(f"{n} {i}\n".encode() * 200)
        except BaseException as e:  # pragma: no cover - the failure being tested
            errors.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [x.name for x in tmp_path.iterdir()] == ["out.txt"]
