"""Ctrl-C on `mrules run DIR --engine local` (or `dask`): one line and exit 130, no
worker's traceback, and running the same command again gives what one process gives.

Ctrl-C reaches every process of the terminal's process group. The workers took it as a
KeyboardInterrupt of their own: a worker waiting for its next task printed a traceback
of the pool's internals (`Process ForkProcess-1: Traceback ...`); and a run stopped by
an exception (SIGINT to its process alone) waited for the running buckets to finish."""

from __future__ import annotations

import concurrent.futures.process as pool_process
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from scale_helpers import assert_rerun_matches_one_process, interruptible_run

from mrules.scale.local import LocalPool


def _disposition(_task: dict[str, Any]) -> dict[str, Any]:
    return {"sigint": signal.getsignal(signal.SIGINT) == signal.SIG_IGN}


def _sleep(task: dict[str, Any]) -> dict[str, Any]:
    time.sleep(task["seconds"])
    return task


def test_the_workers_leave_sigint_to_the_run() -> None:
    got: list[dict[str, Any]] = []
    with LocalPool(2) as pool:
        pool.map(_disposition, [{}, {}], got.append)
    assert got == [{"sigint": True}, {"sigint": True}]


_GO = multiprocessing.get_context("fork").Event()
_worker = pool_process._process_worker


def _late_worker(*args: Any) -> None:
    """A worker that starts late (a loaded machine): Ctrl-C comes before its initializer."""
    _GO.wait(30)
    _worker(*args)


def test_ctrl_c_before_a_worker_is_set_up_is_ignored_by_it(monkeypatch: Any) -> None:
    """Ctrl-C between a worker's fork and its `_worker_init` was the worker's own
    KeyboardInterrupt: a traceback of the pool's internals, and the run lost a worker."""
    monkeypatch.setattr(pool_process, "_process_worker", _late_worker)
    _GO.clear()
    got: list[dict[str, Any]] = []
    with LocalPool(2) as pool:

        def ctrl_c() -> None:  # to each worker, as the terminal sends it, while it starts
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                processes = dict(getattr(pool.pool, "_processes", None) or {})
                if len(processes) == 2:
                    for pid in processes:
                        os.kill(pid, signal.SIGINT)
                    break
                time.sleep(0.001)
            _GO.set()

        sender = threading.Thread(target=ctrl_c)
        sender.start()
        try:
            pool.map(_disposition, [{}, {}], got.append)
        finally:
            _GO.set()
            sender.join()
    assert got == [{"sigint": True}, {"sigint": True}]


def test_an_interrupted_run_does_not_wait_for_the_running_buckets() -> None:
    def finished(out: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), LocalPool(2) as pool:
        pool.map(_sleep, [{"seconds": 0}, {"seconds": 60}], finished)
    assert time.monotonic() - started < 20


def _sigint_as_in_a_terminal() -> None:
    """In the run's process, before it starts: SIGINT as a terminal's foreground job has it.
    Tests started in the background of a script (`pytest ... &`, nohup) ignore SIGINT, and
    so did the run they started, which keeps a SIGINT ignored from the start (on purpose,
    as under nohup) and ran to the end: exit 0, not 130."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_ctrl_c_then_rerun_gives_the_same_result(tmp_path: Path, engine: str) -> None:
    if engine == "dask":
        pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    cmd = interruptible_run(tmp_path, engine)
    # Its own process group, as a terminal's foreground job: Ctrl-C is SIGINT to the group.
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True,
                            preexec_fn=_sigint_as_in_a_terminal)  # fmt: skip
    interrupted = False
    deadline = time.monotonic() + 60
    while not interrupted and time.monotonic() < deadline and proc.poll() is None:
        if any((tmp_path / "many.db.shards").glob("*/b*.db")):  # a bucket done, others not
            os.killpg(proc.pid, signal.SIGINT)
            interrupted = True
        time.sleep(0.002)
    _out, err = proc.communicate(timeout=120)
    assert interrupted, "the run ended before a bucket was done"
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err and b"Traceback" not in err, err.decode()
    # Dask's workers took the Ctrl-C too, and each logged a warning per task it cancelled.
    assert b"WARNING" not in err and b"distributed" not in err, err.decode()
    assert not (tmp_path / "many.db").exists()
    assert_rerun_matches_one_process(tmp_path, cmd)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the workers")
def test_sigterm_while_the_dask_cluster_starts_is_one_line(tmp_path: Path) -> None:
    """`kill PID` (a CI job's timeout, a container stopping) as Dask's local cluster starts:
    the half-made cluster was left to Dask's exit hook, which printed a traceback of its
    internals (`AssertionError: Status.init`) under the `interrupted` line."""
    pytest.importorskip("distributed", reason="Dask's distributed is not installed")
    cmd = interruptible_run(tmp_path, "dask")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not _children(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    time.sleep(0.3)  # the workers import Dask for about a second before they join
    assert proc.poll() is None, "the run ended before its cluster started"
    proc.send_signal(signal.SIGTERM)  # to the run alone, while its workers start
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert err.decode().splitlines() == [
        "mrules: error: interrupted; what was committed is kept, and running the same command"
        " again resumes"
    ]
    assert_rerun_matches_one_process(tmp_path, cmd)
