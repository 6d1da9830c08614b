"""The CLI under the process environments users and CI give it: a closed standard output,
a locale that is not UTF-8, ... Each test runs the real program as a subprocess with one
thing of its environment varied, and expects what it does in the usual one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mrules.exitcodes import ExitCode

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "getcloudy"
RULES = EXAMPLE / "rules"
EVENTS = EXAMPLE / "events.jsonl"


def mrules(
    *args: str | Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    **options: object,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "mrules", *map(str, args)],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        **{"capture_output": True, **options},
    )


def closed_stdout(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """`mrules ARGS >&-`: the program starts with no standard output at all."""
    return subprocess.run(
        [sys.executable, "-m", "mrules", *map(str, args)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        preexec_fn=lambda: os.close(1),  # after the redirections, before the program
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "s.db"
    assert mrules("crm", "load", EXAMPLE / "crm", "--store", path).returncode == 0
    assert mrules("run", RULES, EVENTS, "--store", path).returncode == 0
    return path


def test_a_closed_stdout_is_exit_4_for_every_command_that_prints(store: Path) -> None:
    """With standard output closed (`>&-`) Python has none, and `click.echo` drops what it
    is given: `sync plan`, `--help`, `--version`, `lint --explain`, `crm describe` and
    `sync status` printed nothing and exited 0; `crm export` (and `lsp`) was an internal
    error, exit 70. A closed output is exit 4 (docs/exit-codes.md)."""
    commands: list[list[str | Path]] = [
        ["--help"],
        ["--version"],
        ["lint", "--help"],
        ["lint", "--explain", "MR102"],
        ["sync", "plan", "--rules", RULES, "--store", store],
        ["crm", "export", "--store", store],
        ["crm", "describe", "Lead", "--store", store],
    ]
    for args in commands:
        res = closed_stdout(*args)
        err = res.stderr.decode()
        assert res.returncode == ExitCode.STORE, (args, err)
        assert err == (
            "mrules: error: standard output is closed: nothing can be written; give it a"
            " file (> FILE)\n"
        ), (args, err)


def test_a_closed_stdout_is_no_error_for_a_command_that_prints_nothing_there() -> None:
    res = closed_stdout("run", RULES, EVENTS, "--store", ":memory:")
    assert res.returncode == ExitCode.OK, res.stderr.decode()
    assert b"events applied" in res.stderr
