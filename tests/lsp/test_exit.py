"""After `exit` the server process ends, even when something would keep it alive."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from mrules.lsp.server import EXIT_GRACE

# A server with one more non-daemon thread that never ends: the interpreter waits for it
# at exit, as it would for a worker left blocked reading the client's open stdin.
HELD = (
    "import threading, sys\n"
    "threading.Thread(target=threading.Event().wait, name='held-open').start()\n"
    "from mrules.lsp.server import serve\n"
    "serve()\n"
)


def test_a_server_held_open_still_ends_after_exit(session_factory, tmp_path: Path) -> None:
    s = session_factory(tmp_path, command=("-c", HELD))
    s.run(s.client.shutdown_async(None))
    s.client.exit(None)
    started = time.monotonic()
    process = s.client._server
    s.run(asyncio.wait_for(process.wait(), EXIT_GRACE + 30))
    assert time.monotonic() - started >= EXIT_GRACE - 1  # ended by the watchdog, not at once
    stderr = s.run(process.stderr.read()).decode()
    assert "held-open" in stderr or "Thread 0x" in stderr, stderr  # every thread's stack


def test_a_clean_exit_is_quick_and_says_nothing(session_factory, tmp_path: Path) -> None:
    s = session_factory(tmp_path)
    s.run(s.client.shutdown_async(None))
    s.client.exit(None)
    process = s.client._server
    started = time.monotonic()
    assert s.run(asyncio.wait_for(process.wait(), 30)) == 0
    assert time.monotonic() - started < EXIT_GRACE
