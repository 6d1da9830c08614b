"""`mrules lsp` as a command: its help, and a clear message when the `lsp` extra is missing."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from mrules.cli import main


def test_lsp_help() -> None:
    result = CliRunner().invoke(main, ["lsp", "--help"])
    assert result.exit_code == 0 and "Language Server Protocol" in result.stdout


def test_lsp_without_pygls_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['pygls'] = None; sys.modules['pygls.lsp'] = None; "
        "sys.modules['pygls.lsp.server'] = None; sys.modules['pygls.exceptions'] = None; "
        "from mrules.cli import main; main(['lsp'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 2, out.stderr
    assert "pip install 'mrules[lsp]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_sigterm_ends_the_server_at_once() -> None:
    """Editors kill a server that hangs with SIGTERM. The program meets SIGTERM as it
    meets Ctrl-C, but the server's thread blocked on standard input would outlive that,
    so `mrules lsp` takes SIGTERM's default back: the process ends at once."""
    import json
    import select
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "mrules", "lsp"],
        stdin=subprocess.PIPE,  # kept open: the server waits for a message
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # Serving: it answers a request (a fixed sleep lost the race on a loaded machine,
        # and the signal came before the command took SIGTERM's default back).
        assert proc.stdin is not None and proc.stdout is not None
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}},
            }
        )
        proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        proc.stdin.flush()
        deadline = time.monotonic() + 120
        ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
        assert ready, "no answer to initialize"
        assert proc.stdout.readline().startswith(b"Content-Length:")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _message(**body: object) -> bytes:
    import json

    data = json.dumps({"jsonrpc": "2.0", **body}).encode()
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


INITIALIZE = _message(id=1, method="initialize", params={"capabilities": {}}) + _message(
    method="initialized", params={}
)


def test_closed_input_ends_the_server_quietly_with_0() -> None:
    """The protocol gives exit codes for `exit` only (1 without `shutdown` first); an
    input closed without it (the editor gone) ends the server with 0, as docs/editors.md
    says, shut down or not, and nothing on stderr."""
    for before_eof in (b"", INITIALIZE, INITIALIZE + _message(id=2, method="shutdown")):
        out = subprocess.run(
            [sys.executable, "-m", "mrules", "lsp"],
            input=before_eof,
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert (out.returncode, out.stderr) == (0, b""), before_eof
    out = subprocess.run(  # `exit` without `shutdown`: 1, as the protocol says
        [sys.executable, "-m", "mrules", "lsp"],
        input=INITIALIZE + _message(method="exit"),
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
