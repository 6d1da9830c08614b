"""Fault injection: a full disk, a read-only store, a damaged store, Ctrl-C, a closed pipe.

For each fault: the one-line message, its exit code (docs/exit-codes.md), no
traceback, nothing committed lost, and once the fault is gone a resume with
the same command that ends equal to a run without faults (state export, and
the action log byte for byte). The full disk is a small tmpfs and the
read-only store a read-only bind mount, both needing root (skipped with the
reason otherwise); an injected OSError covers the full disk everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mrules import outputs
from mrules.cli import main
from mrules.exitcodes import ExitCode
from mrules.store import Store
from test_durability import RULES, generate, write_events

ROOT = Path(__file__).resolve().parent.parent


def mrules(*args: str | Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mrules", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def cli(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def export(store: Path) -> list[dict[str, Any]]:
    res = cli("state", "export", "--store", store)
    assert res.exit_code == 0, res.output
    return [json.loads(x) for x in res.stdout.splitlines()]


def position(store: Path, events: Path) -> int:
    with Store.open(store, readonly=True) as s:
        return s.stream_position(str(events.resolve()))


def one_clean_line(stderr: str) -> str:
    """The message: one `mrules: error:` line, no traceback."""
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("mrules: error: "), stderr
    return lines[0]


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Rules, a 3,000-event stream, and its run without faults (store, export, action log)."""
    d = tmp_path_factory.mktemp("faults")
    (d / "rules").mkdir()
    (d / "rules" / "r.mr").write_text(RULES, encoding="utf-8")
    events = write_events(d / "events.jsonl", generate(120, 3000))
    res = mrules(
        "run",
        d / "rules",
        events,
        "--store",
        d / "a.db",
        "-q",
        "--batch-size",
        "250",
        "--actions",
        d / "a.actions.jsonl",
    )
    assert res.returncode == 0, res.stderr
    return {
        "dir": d,
        "rules": d / "rules",
        "events": events,
        "store": d / "a.db",
        "export": export(d / "a.db"),
        "actions": (d / "a.actions.jsonl").read_bytes(),
    }


def run_args(ref: dict[str, Any], store: Path, actions: Path) -> list[str | Path]:
    return [
        "run",
        ref["rules"],
        ref["events"],
        "--store",
        store,
        "-q",
        "--batch-size",
        "250",
        "--actions",
        actions,
    ]


def prefix_export(ref: dict[str, Any], tmp: Path, lines: int) -> list[dict[str, Any]]:
    """The state after the first `lines` lines of the stream, from a run without faults."""
    head = tmp / "head.jsonl"
    with ref["events"].open("rb") as f:
        head.write_bytes(b"".join(f.readline() for _ in range(lines)))
    res = mrules("run", ref["rules"], head, "--store", tmp / "head.db", "-q")
    assert res.returncode == 0, res.stderr
    return export(tmp / "head.db")


def assert_resumes_to_the_reference(ref: dict[str, Any], store: Path, actions: Path) -> None:
    res = mrules(*run_args(ref, store, actions))
    assert res.returncode == ExitCode.OK, res.stderr
    assert export(store) == ref["export"]
    assert actions.read_bytes() == ref["actions"]


def _root_mount_or_skip(*args: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs or a read-only bind mount")
    res = subprocess.run(["mount", *args], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"mount {' '.join(args)} failed: {res.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    _root_mount_or_skip("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# -- full disk ---------------------------------------------------------------------------


def test_full_disk_tmpfs(ref: dict[str, Any], tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "1200k") as small:
        store, actions = small / "s.db", small / "actions.jsonl"
        res = mrules(*run_args(ref, store, actions))
        assert res.returncode == ExitCode.STORE, res.stderr
        line = one_clean_line(res.stderr)
        # Which file meets the full disk first, the store ("database or disk is full") or
        # the action log ("No space left on device"), depends on the length of the paths
        # the log holds (pytest's numbered temporary folder): either way, exit 4 and resume.
        assert "full" in line or "No space left on device" in line, line
        assert "the same command again" in line, line
        done = position(store, ref["events"])
        assert 0 < done < 3000, "the disk filled neither too early nor never"
        # What was committed is kept: the state of the first `done` lines, exactly.
        assert export(store) == prefix_export(ref, tmp_path, done)
        # The fault goes away (more room); the same command resumes to the same end.
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        assert_resumes_to_the_reference(ref, store, actions)


@pytest.mark.parametrize("fail_at", [1, 4, 9])
def test_full_disk_while_writing_the_action_log(
    ref: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    """ENOSPC half-way through an action-log write: exit 4, then a byte-exact resume."""
    store, actions = tmp_path / "s.db", tmp_path / "actions.jsonl"
    real_write = outputs._write_all
    calls = {"n": 0}

    def write(fd: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == fail_at:
            real_write(fd, data[: len(data) // 2])  # part of it lands, then: full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(fd, data)

    monkeypatch.setattr(outputs, "_write_all", write)
    res = cli(*run_args(ref, store, actions))
    monkeypatch.undo()
    assert res.exit_code == ExitCode.STORE, res.output
    line = one_clean_line(res.stderr)
    assert f"cannot write action log {actions}: No space left on device" in line
    assert "the next run repairs the log and writes the missing rows from the store" in line
    assert "running the same command again resumes" in line
    assert not actions.read_bytes().endswith(b"\n"), "the test did tear the last line"
    assert_resumes_to_the_reference(ref, store, actions)


# -- read-only store ---------------------------------------------------------------------


def test_read_only_store(ref: dict[str, Any], tmp_path: Path) -> None:
    data, ro = tmp_path / "data", tmp_path / "ro"
    data.mkdir()
    ro.mkdir()
    store, actions = data / "s.db", data / "actions.jsonl"
    head = tmp_path / "first.jsonl"  # a store that committed part of the stream
    res = mrules(*run_args(ref, store, actions))
    assert res.returncode == 0
    shutil.rmtree(data)
    data.mkdir()
    with ref["events"].open("rb") as f:
        head.write_bytes(b"".join(f.readline() for _ in range(1000)))
    res = mrules("run", ref["rules"], head, "--store", store, "-q")
    assert res.returncode == 0, res.stderr
    before = export(store)
    _root_mount_or_skip("--bind", str(data), str(ro))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        res = mrules("run", ref["rules"], ref["events"], "--store", ro / "s.db", "-q")
        assert res.returncode == ExitCode.STORE, res.stderr
        line = one_clean_line(res.stderr)
        assert "read-only" in line and "writable" in line, line
        # Reading a read-only store works (an archive, a read-only mount).
        assert export(ro / "s.db") == before
        res = cli("explain", before[0]["email"], "--store", ro / "s.db")
        assert res.exit_code == 0, res.output
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert export(store) == before
    res = mrules("run", ref["rules"], ref["events"], "--store", store, "-q")
    assert res.returncode == ExitCode.OK, res.stderr
    assert export(store) == ref["export"]


def test_a_read_only_store_with_its_sync_file_is_read(tmp_path: Path) -> None:
    """docs/store.md: a store in a read-only folder (a read-only mount, an archive) is read
    by `state export` and `explain`. Once a sync had run beside it, they stopped with exit
    4, `NAME.sync.db: cannot use the sync file: unable to open database file` (SQLite
    could not make the sync file's `-shm` there), and so did `explain --timeline`, the
    reports and `sync status`: the sync file is now read as immutable there, as the
    store is."""
    example = ROOT / "examples" / "getcloudy"
    data, ro = tmp_path / "data", tmp_path / "ro"
    data.mkdir()
    ro.mkdir()
    store = data / "s.db"
    until = "2026-12-21T00:00:00Z"
    for args in (
        ("run", example / "rules", example / "events.jsonl", "--store", store, "-q"),
        ("crm", "load", "--store", store, *sorted((example / "crm").iterdir())),
        ("sync", "run", "--rules", example / "rules", "--store", store, "--until", until),
    ):
        res = mrules(*args)
        assert res.returncode == 0, res.stderr
    assert (data / "s.sync.db").is_file()
    email = "bob@bigcorp.example"
    readers = [
        ("state", "export"),
        ("state", "outbox"),
        ("explain", email),
        ("explain", email, "--format", "json"),
        ("explain", email, "--timeline"),
        ("report", "funnel"),
        ("report", "campaigns"),
        ("sync", "status", "--format", "json"),
    ]
    expected = {}
    for reader in readers:
        res = mrules(*reader, "--store", store)
        assert res.returncode == 0, (reader, res.stderr)
        expected[reader] = res.stdout
    files = sorted(p.name for p in data.iterdir())
    _root_mount_or_skip("--bind", str(data), str(ro))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        for reader in readers:
            res = mrules(*reader, "--store", ro / "s.db")
            assert res.returncode == 0, (reader, res.stderr)
            assert res.stdout == expected[reader], reader
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert sorted(p.name for p in data.iterdir()) == files


# -- damaged, truncated, empty and foreign stores ----------------------------------------


def _damage_middle(db: Path) -> None:
    """Overwrite pages in the middle of the file, and the first page of two tables."""
    conn = sqlite3.connect(db)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = [
        r
        for (r,) in conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name IN ('prospects', 'outbox')"
        )
    ]
    conn.close()
    size = db.stat().st_size
    with db.open("r+b") as f:
        for n in [*roots, size // page // 2, size // page // 2 + 1]:
            f.seek((n - 1) * page)
            f.write(b"\xa5" * page)


def _truncate_half(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def _zero_bytes(db: Path) -> None:
    os.truncate(db, 0)


def _header(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"not sqlite at all")


FAULTS = {
    "damaged-pages": (_damage_middle, "damaged"),
    "truncated": (_truncate_half, "damaged"),
    "zero-bytes": (_zero_bytes, "empty file (0 bytes)"),
    "not-a-database": (_header, "not an mrules store"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_damaged_stores(ref: dict[str, Any], tmp_path: Path, fault: str) -> None:
    damage, words = FAULTS[fault]
    store, actions = tmp_path / "s.db", tmp_path / "actions.jsonl"
    shutil.copy(ref["store"], store)  # a complete store, closed (no -wal)
    backup = tmp_path / "backup.db"
    shutil.copy(store, backup)
    damage(store)
    damaged = store.read_bytes()
    email = ref["export"][0]["email"]
    # segment reads the store only with a segmentation rule to run (without one, it
    # leaves the store as it was): the rules and one.
    segment_rules = tmp_path / "segment-rules"
    shutil.copytree(ref["rules"], segment_rules)
    (segment_rules / "segment.mr").write_text(
        'segmentation rule "All" {\n  when all { score >= 0 }\n  then { add tag "news" }\n}\n',
        encoding="utf-8",
    )
    commands = {
        "run": run_args(ref, store, actions),
        "state export": ["state", "export", "--store", store],
        "state outbox": ["state", "outbox", "--store", store],
        "explain": ["explain", email, "--store", store],
        "segment": ["segment", segment_rules, "--store", store],
    }
    for name, args in commands.items():
        res = cli(*args)
        assert res.exit_code == ExitCode.STORE, (name, res.output)
        assert isinstance(res.exception, SystemExit), res.exc_info
        line = one_clean_line(res.stderr)
        assert words in line, (name, line)
        assert any(w in line for w in ("backup", "rm ", "move it away", "another --store")), line
    assert store.read_bytes() == damaged, "a refused store is left as it was"
    shutil.copy(backup, store)  # the fault goes away: the backup is restored
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    res = cli(*run_args(ref, store, actions))
    assert res.exit_code == ExitCode.OK, res.output
    assert export(store) == ref["export"]


# -- Ctrl-C ------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_exits_130_and_the_same_command_resumes(
    ref: dict[str, Any], tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C, and SIGTERM (kill, a CI timeout) the same way: exit 130, the line that
    says where the store stops, and the same command resumes to the uninterrupted state."""
    store, actions = tmp_path / "s.db", tmp_path / "actions.jsonl"
    big = tmp_path / "big.jsonl"
    write_events(big, generate(300, 12000, seed=11))
    args = [
        sys.executable,
        "-m",
        "mrules",
        "run",
        str(ref["rules"]),
        str(big),
        "--store",
        str(store),
        "-q",
        "--batch-size",
        "100",
        "--actions",
        str(actions),
    ]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(Exception):
                if position(store, big) >= 300:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    line = one_clean_line(err)
    assert "interrupted" in line and "running the same command again resumes" in line
    done = position(store, big)
    assert f"lines 1-{done:,}" in line
    assert 300 <= done < 12000
    res = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert res.returncode == ExitCode.OK, res.stderr
    clean = tmp_path / "clean.db"
    res = mrules(
        "run", ref["rules"], big, "--store", clean, "-q", "--actions", tmp_path / "clean.jsonl"
    )
    assert res.returncode == ExitCode.OK, res.stderr
    assert export(store) == export(clean)
    assert actions.read_bytes() == (tmp_path / "clean.jsonl").read_bytes()


# -- output errors -----------------------------------------------------------------------


def test_state_export_into_a_closed_pipe(ref: dict[str, Any]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mrules", "state", "export", "--store", str(ref["store"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["email"]
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == ExitCode.STORE
    assert "broken pipe" in one_clean_line(err)


def test_rejects_file_on_a_full_disk_keeps_the_store(
    ref: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_bytes(ref["events"].read_bytes()[:20000].rsplit(b"\n", 1)[0] + b"\nnot json\n")
    rejects = tmp_path / "rejects.jsonl"
    rejects.write_bytes(b"the previous rejects file\n")

    def full(*_: Any, **__: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs, "atomic_write", full)
    store = tmp_path / "s.db"
    res = cli("run", ref["rules"], events, "--store", store, "-q", "--rejects", rejects)
    monkeypatch.undo()
    assert res.exit_code == ExitCode.STORE, res.output
    assert "cannot write rejects file" in one_clean_line(res.stderr)
    assert rejects.read_bytes() == b"the previous rejects file\n"
    res = cli("run", ref["rules"], events, "--store", store, "-q", "--rejects", rejects)
    assert res.exit_code == ExitCode.REJECTS, res.output
    assert [json.loads(x)["text"] for x in rejects.read_text().splitlines()] == ["not json"]
