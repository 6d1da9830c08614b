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
