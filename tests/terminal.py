"""Run a command with standard error on a pseudo-terminal, as a user at a shell does."""

from __future__ import annotations

import os
import pty
import select
import subprocess


def on_a_terminal(argv: list[str]) -> tuple[int, str, str]:
    """Run `argv` with standard error on a pseudo-terminal (so progress bars are on) and
    standard output a pipe: the exit status, standard output, and what the terminal showed."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=follower, env=env)
    os.close(follower)
    shown = b""
    while True:  # read the terminal while the process runs, or its writes would block
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the process closed its end
                chunk = b""
            shown += chunk
            if not chunk and proc.poll() is not None:
                break
        elif proc.poll() is not None:
            break
    out = proc.stdout.read().decode("utf-8", "replace") if proc.stdout else ""
    os.close(leader)
    return proc.wait(timeout=60), out, shown.decode("utf-8", "replace")


def output_on_a_terminal(
    argv: list[str], *, stderr_too: bool = False, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run `argv` with standard output on a pseudo-terminal (and standard error too with
    `stderr_too`, else nowhere): the exit status and what the terminal showed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower if stderr_too else subprocess.DEVNULL,
        env={**os.environ, "TERM": "xterm", **(env or {})},
    )
    os.close(follower)
    shown = b""
    while True:  # until the process closes its end
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return proc.wait(timeout=120), shown.decode("utf-8", "replace")
