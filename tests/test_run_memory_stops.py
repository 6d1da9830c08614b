"""A run into `--store :memory:` that stops (Ctrl-C, an action log or rejects file on a
full disk) says that nothing is kept and the same command starts over. It said what a
run into a store file says, `the store keeps lines 1-N of EVENTS; running the same
command again resumes after them` (and `the next run repairs the log ... from the
store`): an in-memory store is gone when the run ends, and the next run applies every
line again from the first."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

import pytest

from conftest import EXAMPLE, mrules, stopped

RULES = EXAMPLE / "rules"
EVENTS = EXAMPLE / "events.jsonl"
NOTHING_KEPT = (
    "--store :memory: keeps nothing once the run ends: running the same command again starts"
    " from the first line (give --store FILE to keep the work and resume)"
)


def _bad_events(tmp_path: Path) -> Path:
    events = tmp_path / "e.jsonl"
    events.write_bytes(EVENTS.read_bytes() + b"not json\n")
    return events


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize(
    ("option", "what"), [("--actions", "action log"), ("--rejects", "rejects file")]
)
def test_an_output_on_a_full_disk_does_not_promise_a_resume(
    tmp_path: Path, option: str, what: str
) -> None:
    r = mrules(
        "run", RULES, _bad_events(tmp_path), "--store", ":memory:", "-q", option, "/dev/full"
    )
    assert r.exit_code == 4, r.output
    assert r.stderr == (
        f"mrules: error: cannot write {what} /dev/full: No space left on device; {NOTHING_KEPT}\n"
    )
    # a store file keeps what was committed, and says so
    r = mrules("run", RULES, _bad_events(tmp_path), "--store", tmp_path / "s.db", "-q", option,
               "/dev/full")  # fmt: skip
    assert r.exit_code == 4, r.output
    assert "the store keeps lines 1-29 of" in r.stderr and "resumes after them" in r.stderr


def _line(n: int) -> bytes:
    event = {
        "ts": f"2026-11-02T09:{n:02d}:00Z",
        "type": "form_submit",
        "prospect": f"p{n}@x.example",
        "asset": "Demande Get Cloudy",
    }
    return json.dumps(event).encode() + b"\n"


def test_an_interrupted_run_does_not_promise_a_resume(tmp_path: Path) -> None:
    log = tmp_path / "actions.jsonl"
    args = [sys.executable, "-m", "mrules", "run", str(RULES), "-", "--store", ":memory:", "-q"]
    args += ["--actions", str(log), "--commit-seconds", "0.3"]
    run = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdin is not None
    try:
        for n in range(1, 4):
            run.stdin.write(_line(n))
        run.stdin.flush()
        end = time.monotonic() + 60
        while not (log.exists() and log.stat().st_size) and time.monotonic() < end:
            time.sleep(0.1)  # until the run has committed (and logged) the lines
        assert log.stat().st_size
    finally:
        err = stopped(run, signal.SIGINT).decode()
    assert run.returncode == 130, err
    assert err == f"mrules: error: interrupted; {NOTHING_KEPT}\n"


def _interrupted(*args: object, **kwargs: object) -> NoReturn:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("seam", "said"),
    [
        # the store opening: "the store keeps what was committed"
        ("open_store", f"interrupted before the run began; {NOTHING_KEPT}"),
        # the rules loading: "what was committed is kept, and ... resumes"
        ("rules_or_exit", f"interrupted; {NOTHING_KEPT}"),
        # the summary, once the store is closed: the same
        ("render_summary", f"interrupted; {NOTHING_KEPT}"),
    ],
)
def test_an_interrupt_in_any_phase_says_nothing_is_kept(
    monkeypatch: pytest.MonkeyPatch, seam: str, said: str
) -> None:
    """Ctrl-C while the run opens its store, loads its rules or prints its summary: a real
    SIGINT cannot be timed into those phases (an in-memory store opens at once, and a
    rule file that is a named pipe is refused), so the module's own seams raise it."""
    import mrules.cli.run_cmd as run_cmd

    monkeypatch.setattr(run_cmd, seam, _interrupted)
    r = mrules("run", RULES, EVENTS, "--store", ":memory:")
    assert r.exit_code == 130, r.output
    assert r.stderr == f"mrules: error: {said}\n"
