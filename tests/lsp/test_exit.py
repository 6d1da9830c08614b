"""After `shutdown` the server publishes nothing; after `exit` its process ends, even when
something would keep it alive, a stderr pipe nobody reads among them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lsprotocol import types

from mrules.lsp.server import EXIT_GRACE, MrulesLanguageServer

# A server with one more non-daemon thread that never ends: the interpreter waits for it
# at exit, as for any thread something holds.
HELD = (
    "import threading, sys\n"
    "threading.Thread(target=threading.Event().wait, name='held-open').start()\n"
    "from mrules.lsp.server import serve\n"
    "serve()\n"
)


def test_a_server_held_open_still_ends_after_exit(session_factory, tmp_path: Path) -> None:
    s = session_factory(tmp_path, command=("-c", HELD))
    s.shutdown()
    s.exit()
    started = time.monotonic()
    assert s.ended(EXIT_GRACE + 30) == 1
    assert time.monotonic() - started >= EXIT_GRACE - 1  # ended by the watchdog, not at once
    stderr = s.run(s.client._server.stderr.read()).decode()
    assert stderr.count("Thread 0x") >= 2, stderr  # every thread's stack (faulthandler's)


# The same, held by a thread blocked writing to a stderr pipe the client never reads: the
# watchdog's own stacks would block on it too, unless stderr stopped blocking at exit.
STDERR_FULL = (
    "import os, threading\n"
    "threading.Thread(target=lambda: os.write(2, b'x' * 1_000_000), name='stderr-full').start()\n"
    "from mrules.lsp.server import serve\n"
    "serve()\n"
)


def test_a_server_blocked_on_a_full_stderr_still_ends_after_exit(
    session_factory, tmp_path: Path
) -> None:
    s = session_factory(tmp_path, command=("-c", STDERR_FULL))
    s.shutdown()
    s.exit()
    assert s.ended(EXIT_GRACE + 30) == 1


# A debounce long enough that the check of a change is still waiting at `shutdown`. A
# CI run once hung here: the waiting check ran as the process exited, published into
# the closed stdout, and pygls reported that failure by sending a message, which failed,
# without end, its tracebacks filling the stderr pipe until the process blocked on it.
SLOW_CHECKS = "import mrules.lsp.server as m\nm.server.debounce = 0.5\nm.serve()\n"


def test_nothing_is_published_after_shutdown(session_factory, tmp_path: Path) -> None:
    (tmp_path / "a.mr").write_text('list "MQL"\n', "utf-8")
    s = session_factory(tmp_path, command=("-c", SLOW_CHECKS))
    uri = s.open("a.mr")
    s.diagnostics_of(uri)  # the first check, 0.5 s after the open
    published = len(s.events)
    s.change(uri, 'list "MQL" @')  # a syntax error: its check would publish one diagnostic
    s.shutdown()
    s.run(asyncio.sleep(1.5))
    assert s.events[published:] == []


def test_a_failed_send_is_not_reported_by_sending_again() -> None:
    writes: list[bytes] = []

    class ClosedStdout:
        def write(self, data: bytes) -> None:
            writes.append(data)
            raise ValueError("I/O operation on closed file.")

        def close(self) -> None:
            pass

    ls = MrulesLanguageServer()
    ls.protocol.set_writer(ClosedStdout())
    ls.window_show_message(types.ShowMessageParams(types.MessageType.Info, "hello"))
    assert len(writes) == 1  # pygls's default sent an error message about it, and so on


def test_a_clean_exit_is_quick_and_says_nothing(session_factory, tmp_path: Path) -> None:
    s = session_factory(tmp_path)
    s.shutdown()
    s.exit()
    started = time.monotonic()
    assert s.ended(30) == 0
    assert time.monotonic() - started < EXIT_GRACE
    assert s.run(s.client._server.stderr.read()) == b""


def test_exit_without_shutdown_ends_with_status_1(session_factory, tmp_path: Path) -> None:
    # The protocol, `mrules lsp --help` and docs/editors.md say 1: the process ended 0
    # (pygls's SystemExit(1) from exit was caught and the server returned normally), so
    # a client could not tell a server it stopped from one that was dropped.
    s = session_factory(tmp_path)
    s.exit()
    started = time.monotonic()
    assert s.ended(30) == 1
    assert time.monotonic() - started < EXIT_GRACE
