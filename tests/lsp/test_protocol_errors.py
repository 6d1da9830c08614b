"""A client's mistakes (params that do not fit a method, a change to a document it never
opened) get an answer or are ignored: never a popup about the server, never a request
left unanswered; and a stderr nobody reads never stops the server.

pygls's own client checks params before it sends them, so these tests speak JSON-RPC
over the server's pipes themselves, reading stdout as an editor would and, like many
editors, never reading stderr while the server runs."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


class RawClient:
    def __init__(self, root: Path, initialize: bool = True) -> None:
        self.root = root
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mrules", "lsp"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.buf = b""
        self.received: list[dict[str, Any]] = []
        if initialize:
            self.initialize(1)

    def initialize(self, id: int) -> None:
        self.request(id, "initialize", {"capabilities": {}, "rootUri": self.root.as_uri()})
        self.notify("initialized", {})

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, id: int, method: str, params: Any) -> dict[str, Any]:
        self.send({"id": id, "method": method, "params": params})
        return self.answer(id)

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def answer(self, id: int, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for m in self.received:
                if m.get("id") == id and "method" not in m:
                    return m
            left = deadline - time.monotonic()
            assert left > 0, f"no answer to request {id}; received {self.received[-3:]}"
            self._read(left)

    def _read(self, timeout: float) -> None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], min(timeout, 0.2))
        if ready:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            assert chunk, "the server closed its stdout"
            self.buf += chunk
        while b"\r\n\r\n" in self.buf:
            head, rest = self.buf.split(b"\r\n\r\n", 1)
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            if len(rest) < length:
                break
            self.received.append(json.loads(rest[:length]))
            self.buf = rest[length:]

    def messages_shown(self) -> list[str]:
        return [
            m["params"]["message"] for m in self.received if m.get("method") == "window/showMessage"
        ]

    def close(self) -> tuple[int, bytes]:
        try:
            self.request(9999, "shutdown", None)
            self.notify("exit", None)
            _, err = self.proc.communicate(timeout=30)
            return self.proc.returncode, err
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def client(tmp_path: Path):
    (tmp_path / "a.mr").write_text('list "A"\n', "utf-8")
    c = RawClient(tmp_path)
    yield c
    if c.proc.poll() is None:
        c.proc.kill()
        c.proc.wait()


def _symbols_params(c: RawClient) -> dict[str, Any]:
    return {"textDocument": {"uri": (c.root / "a.mr").as_uri()}}


def _symbols(c: RawClient, id: int) -> dict[str, Any]:
    return c.request(id, "textDocument/documentSymbol", _symbols_params(c))


@pytest.mark.parametrize(
    "position, where",
    [
        ({"line": -1, "character": 0}, "$.params.position"),
        ({"line": "x", "character": 0}, "$.params.position.line"),
        (None, "$.params.position"),
    ],
)
def test_a_request_with_params_that_do_not_fit_is_answered_with_invalid_params(
    client: RawClient, position: Any, where: str
) -> None:
    params: dict[str, Any] = {"textDocument": {"uri": (client.root / "a.mr").as_uri()}}
    if position is not None:
        params["position"] = position
    answer = client.request(5, "textDocument/hover", params)
    assert answer["error"]["code"] == -32602  # InvalidParams
    assert answer["error"]["message"].startswith("invalid params for textDocument/hover")
    assert where in answer["error"]["message"]
    assert client.messages_shown() == []  # no "Error in server" popup
    assert _symbols(client, 6)["result"][0]["name"] == "list A"  # and the server goes on
    assert client.close()[0] == 0


def test_a_change_to_a_document_never_opened_is_ignored(client: RawClient) -> None:
    uri = (client.root / "a.mr").as_uri()
    client.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": 'list "B"\n'}]},
    )
    # The file on disk stays the truth: the change had no document to apply to.
    assert _symbols(client, 6)["result"][0]["name"] == "list A"
    assert client.messages_shown() == []
    rc, err = client.close()
    assert rc == 0
    assert b"not open" in err and b"KeyError" not in err


@pytest.mark.parametrize("name", ["nul%00.mr", "n" * 300 + ".mr"])
def test_a_document_no_file_can_have_is_no_server_error(client: RawClient, name: str) -> None:
    """A URI with a NUL byte, or a name longer than the system takes, names no file: the
    server's requests on it answer nothing (it was "Error in server: ValueError:
    embedded null byte", a popup at every request)."""
    uri = client.root.as_uri() + "/" + name
    item = {"uri": uri, "languageId": "mrules", "version": 1, "text": 'list "B"\n'}
    client.notify("textDocument/didOpen", {"textDocument": item})
    where = {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 6}}
    assert client.request(5, "textDocument/hover", where).get("error") is None
    symbols = client.request(6, "textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert symbols.get("error") is None
    assert client.messages_shown() == []
    assert _symbols(client, 7)["result"][0]["name"] == "list A"  # and the server goes on
    assert client.close()[0] == 0


def test_a_notification_with_params_that_do_not_fit_is_only_logged(client: RawClient) -> None:
    client.notify("textDocument/didOpen", {"textDocument": {"uri": 7}})
    assert _symbols(client, 6)["result"][0]["name"] == "list A"
    assert client.messages_shown() == []
    rc, err = client.close()
    assert rc == 0
    assert b"ignored textDocument/didOpen: invalid params" in err


def test_a_stderr_nobody_reads_never_stops_the_server(client: RawClient) -> None:
    # Each unknown method is a warning on stderr: 3,000 of them are well over a pipe's
    # 64 KB. A server writing its log to a blocking pipe stopped half-way, for good.
    # (in rounds, each answer read, so that neither side's stdout pipe fills)
    for first in range(100, 3100, 100):
        for i in range(first, first + 100):
            client.send({"id": i, "method": "mrules/nothing", "params": {}})
        assert client.answer(first + 99)["error"]["code"] == -32601  # MethodNotFound
        client.received.clear()
    assert _symbols(client, 6)["result"][0]["name"] == "list A"
    assert client.close()[0] == 0


def test_a_request_before_initialize_is_refused_as_not_initialized(tmp_path: Path) -> None:
    # The protocol: a request before `initialize` gets ServerNotInitialized (-32002) and
    # a notification is dropped. The server answered InternalError with a traceback, and
    # a didOpen raised, shown to the user as "Error in server".
    (tmp_path / "a.mr").write_text('list "A"\n', "utf-8")
    c = RawClient(tmp_path, initialize=False)
    try:
        doc = {"uri": (tmp_path / "a.mr").as_uri()}
        c.notify(
            "textDocument/didOpen",
            {"textDocument": {**doc, "languageId": "mrules", "version": 1, "text": "lst\n"}},
        )
        at = {"textDocument": doc, "position": {"line": 0, "character": 0}}
        answer = c.request(1, "textDocument/hover", at)
        assert answer["error"]["code"] == -32002, answer
        assert "traceback" not in json.dumps(answer)
        c.initialize(2)
        assert "error" not in c.request(3, "textDocument/hover", at)
        assert c.messages_shown() == []
        published = [m for m in c.received if m.get("method") == "textDocument/publishDiagnostics"]
        assert all(m["params"]["diagnostics"] == [] for m in published)  # the disk's text
        code, _ = c.close()
        assert code == 0
    finally:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


@pytest.mark.parametrize(
    "body, answer",
    [
        (b"{{{{{", (None, -32700)),  # not JSON
        (b'{"jsonrpc": "2.0", "id": 5, "method": "\xff"}', (None, -32700)),  # not UTF-8
        (b"[1, 2]", (None, -32600)),  # JSON, not a message
        (b"null", (None, -32600)),
        (b'{"id": 7, "method": "textDocument/hover"}', (7, -32600)),  # no "jsonrpc"
        (b'{"jsonrpc": "2.0", "id": 8}', (8, -32600)),  # no method, and not a response
    ],
)
def test_a_body_that_is_not_a_message_is_answered_as_json_rpc_says(
    client: RawClient, body: bytes, answer: tuple[int | None, int]
) -> None:
    # JSON-RPC answers a ParseError (-32700) or an InvalidRequest (-32600); the server
    # showed the user "Error in server: Expecting property name...", or "'list' object
    # has no attribute 'jsonrpc'", and left a request with an id unanswered.
    assert client.proc.stdin is not None
    client.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    client.proc.stdin.flush()
    assert "result" in _symbols(client, 2)  # and the next message is read as ever
    errors = [m for m in client.received if "error" in m]
    assert [(e.get("id"), e["error"]["code"]) for e in errors] == [answer]
    assert client.messages_shown() == []
    code, _ = client.close()
    assert code == 0


def test_a_request_after_shutdown_is_answered_invalid_request(client: RawClient) -> None:
    # The protocol: requests after `shutdown` error with InvalidRequest. pygls logged
    # "Server shutting down. No more requests!" and never answered: the editor's
    # request waited for ever.
    assert client.request(2, "shutdown", None)["result"] is None
    answer = client.request(3, "textDocument/documentSymbol", _symbols_params(client))
    assert answer["error"]["code"] == -32600, answer
    client.notify("exit", None)
    assert client.proc.wait(timeout=30) == 0


def test_a_refused_rename_is_one_log_line_not_a_traceback(tmp_path: Path) -> None:
    """A rename to a name already declared is refused with its reason (InvalidParams),
    which the editor shows. pygls also logged it with a whole traceback, in the editor's
    log, as if the server had failed: now one line with the reason."""
    (tmp_path / "a.mr").write_text('list "A"\nlist "B"\n', "utf-8")
    c = RawClient(tmp_path)
    uri = (tmp_path / "a.mr").as_uri()
    doc = {"uri": uri, "languageId": "mrules", "version": 1, "text": 'list "A"\nlist "B"\n'}
    c.notify("textDocument/didOpen", {"textDocument": doc})
    answer = c.request(
        5,
        "textDocument/rename",
        {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 6}, "newName": "B"},
    )
    assert answer["error"]["code"] == -32602, answer
    assert "already declared" in answer["error"]["message"]
    code, err = c.close()
    assert code == 0
    log = err.decode()
    assert "Traceback" not in log, log
    assert "refused: list 'B' is already declared" in log, log


def test_a_body_that_is_not_json_is_one_log_line_not_a_traceback(client: RawClient) -> None:
    """pygls logged `Unable to handle message` with a whole traceback (a JSONDecodeError)
    before the server's own line, as if the server had failed."""
    assert client.proc.stdin is not None
    client.proc.stdin.write(b"Content-Length: 5\r\n\r\n{{{{{")
    client.proc.stdin.flush()
    assert "result" in _symbols(client, 2)
    code, err = client.close()
    assert code == 0
    log = err.decode()
    assert "Traceback" not in log and "Unable to handle message" not in log, log
    assert "ignored a message that is not JSON: Expecting property name" in log, log


@pytest.mark.parametrize("length", [99999999999999999999, 999999999999, (1 << 30) + 1])
def test_a_content_length_no_message_can_have_stops_the_server_in_one_line(
    client: RawClient, length: int
) -> None:
    """A length beyond any message was an internal error (exit 70, `OverflowError` or
    `MemoryError`): pygls read the body with one `read(length)`. The input cannot be
    followed past such a header: the server says so in one line and ends, exit 1."""
    assert client.proc.stdin is not None
    client.proc.stdin.write(b"Content-Length: %d\r\n\r\n{}" % length)
    client.proc.stdin.flush()
    _, err = client.proc.communicate(timeout=60)
    assert client.proc.returncode == 1, err
    log = err.decode()
    assert "Traceback" not in log and "internal error" not in log, log
    assert (
        f"a message says its body is {length} bytes long, more than the 1073741824 a message"
        " may be: the input cannot be followed past it; the server stops"
    ) in log
