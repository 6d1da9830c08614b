"""`mrules report` writing to a standard output that takes nothing: closed (`>&-`) or a
pipe whose reader has gone (`| head -1`). docs/exit-codes.md: exit 4 and one
`mrules: error:` line, never an internal error (70) or rich's silent exit 1."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

MRULES = [sys.executable, "-m", "mrules"]
BROKEN = "mrules: error: the output was closed before everything was written (broken pipe)\n"
CLOSED = "mrules: error: standard output is closed: nothing can be written; give it a file"


def _with_closed_stdout(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`mrules ARGS >&-`: standard output closed, as a shell does it."""
    cmd = " ".join(shlex.quote(str(a)) for a in (*MRULES, *args))
    return subprocess.run(
        ["sh", "-c", f"exec {cmd} >&-"], stderr=subprocess.PIPE, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["funnel"], id="funnel-table"),
        pytest.param(["funnel", "--format", "json"], id="funnel-json"),
        pytest.param(["funnel", "--format", "csv"], id="funnel-csv"),
        pytest.param(["campaigns"], id="campaigns"),
        pytest.param(["rules"], id="rules"),
        pytest.param(["scores"], id="scores"),
        pytest.param(["html", "-"], id="html-stdout"),
    ],
)
def test_a_closed_standard_output_is_exit_4(store: str, args: list[str]) -> None:
    """`mrules report funnel --store s.db >&-` was exit 70 (AttributeError: 'NoneType'
    object has no attribute 'isatty'), as `state export` once was."""
    res = _with_closed_stdout("report", *args, "--store", store)
    assert res.returncode == 4, res.stderr
    assert res.stderr.startswith(CLOSED), res.stderr
    assert "internal error" not in res.stderr


def test_html_into_a_file_needs_no_standard_output(store: str, tmp_path: Path) -> None:
    """The page goes to OUT, the message to standard error: with standard output closed
    it was written, then the command ended in an internal error (exit 70)."""
    out = tmp_path / "r.html"
    res = _with_closed_stdout("report", "html", out, "--store", store)
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith(f"wrote {out} ("), res.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
@pytest.mark.parametrize("report", ["funnel", "campaigns", "rules", "scores"])
def test_a_pipe_whose_reader_is_gone_is_exit_4(store: str, report: str, fmt: str) -> None:
    """`mrules report funnel | head -1` exited 1 with no word: rich met the broken pipe
    and ended the program itself (exit 1 is "the rules have errors"). Every format is
    exit 4 with one line, as `state export` is."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    try:
        res = subprocess.run(
            [*MRULES, "report", report, "--store", store, "--format", fmt],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
    finally:
        os.close(write)
    assert (res.returncode, res.stderr) == (4, BROKEN)
