"""`mrules replay --diff` with odd inputs: each a clear message and a documented exit
code (docs/replay.md), never a report of nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mrules.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "getcloudy"


def _mrules(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _store(path: Path) -> Path:
    sqlite3.connect(path).execute("CREATE TABLE t(x)").connection.close()
    return path


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p: p.write_bytes(b"") or p, "an empty file (0 bytes)"),
        (_store, "an SQLite database (a store?)"),
        (lambda p: p.write_bytes(b"\x00\x01rules") or p, "binary data (it holds a NUL byte)"),
    ],
)
@pytest.mark.parametrize("side", ["OLD_RULES", "NEW_RULES"])
def test_a_file_that_is_plainly_no_rule_text_is_refused(
    tmp_path: Path, make: object, what: str, side: str
) -> None:
    """A store, an empty file or binary data given as a rule set (the paths in the wrong
    order) was replayed as a rule set of no rules, exit 0, every MQL "lost"."""
    bad = tmp_path / "mrules.db"
    make(bad)  # type: ignore[operator]
    rules = EXAMPLE / "rules"
    old, new = (bad, rules) if side == "OLD_RULES" else (rules, bad)
    res = _mrules("replay", "--diff", old, new, EXAMPLE / "events.jsonl", "--jobs", "1")
    assert res.exit_code == 2, res.output
    assert res.stderr == (
        f"mrules: error: {side} {bad} is {what}, not a rule file: give a rule folder or a"
        " rule file (*.mr)\n"
    )
    assert res.stdout == ""


def test_an_empty_rule_file_named_mr_is_a_rule_set(tmp_path: Path) -> None:
    empty = tmp_path / "none.mr"
    empty.write_text("")
    res = _mrules("replay", "--diff", empty, EXAMPLE / "rules", EXAMPLE / "events.jsonl")
    assert res.exit_code == 0, res.output
    assert "old rules: " in res.stdout


def test_a_store_dir_a_read_only_parent_cannot_hold_is_exit_4(tmp_path: Path) -> None:
    """`--store-dir` that cannot be made in a read-only folder is a store that cannot be
    written (exit 4, docs/replay.md); it was exit 2, the code of a missing parent."""
    import contextlib
    import os
    import subprocess

    parent = tmp_path / "ro"
    parent.mkdir()
    with contextlib.ExitStack() as stack:
        if os.geteuid() != 0:
            parent.chmod(0o555)
            stack.callback(parent.chmod, 0o755)
        else:
            mount = ["mount", "--bind", str(parent), str(parent)]
            if subprocess.run(mount, capture_output=True).returncode:
                pytest.skip("needs a read-only bind mount (mount --bind failed)")
            stack.callback(subprocess.run, ["umount", "-l", str(parent)], check=False)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(parent)], check=True)
        rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
        res = _mrules("replay", "--diff", rules, rules, events, "--store-dir", parent / "new")
        assert res.exit_code == 4, res.output
        assert res.stderr.startswith(f"mrules: error: --store-dir {parent / 'new'}: cannot create")
        assert not (parent / "new").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_report_on_a_full_disk_is_exit_4(fmt: str) -> None:
    """The JSON report on a full disk (stdout `/dev/full`) failed only at Python's last
    flush: `Exception ignored ... OSError: [Errno 28]`, exit 120. It is exit 4 with one
    line, as the text report is."""
    import subprocess
    import sys

    rules, events = EXAMPLE / "rules", EXAMPLE / "events.jsonl"
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "mrules", "replay", "--diff", rules, rules, events,
             "--format", fmt],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert r.returncode == 4, r.stderr
    assert r.stderr == "mrules: error: cannot write the output: No space left on device\n"
