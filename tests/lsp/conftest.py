"""A language-server session over stdio: `mrules lsp` in a subprocess, driven by pygls's
client, with the published diagnostics collected as they arrive."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pygls")

from lsprotocol import types
from pygls.lsp.client import LanguageClient


class Session:
    """A started server; `run(coro)` drives it from synchronous tests."""

    def __init__(self, root: Path, capabilities: types.ClientCapabilities | None = None,
                 command: tuple[str, ...] = ("-m", "mrules", "lsp")) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.client = LanguageClient("mrules-tests", "1")
        self.diagnostics: dict[str, list[types.Diagnostic]] = {}
        self.versions: dict[str, int] = {}
        self.events: list[tuple[str, int]] = []

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: types.PublishDiagnosticsParams) -> None:
            self.diagnostics[params.uri] = list(params.diagnostics)
            self.events.append((params.uri, len(params.diagnostics)))

        self.messages: list[str] = []  # window/showMessage, in order

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def shown(params: types.ShowMessageParams) -> None:
            self.messages.append(params.message)

        self.run(self.client.start_io(sys.executable, *command, cwd=str(root)))
        self.init = self.run(self.client.initialize_async(types.InitializeParams(
            capabilities=capabilities or types.ClientCapabilities(),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(root.as_uri(), "root")],
        )))
        self.client.initialized(types.InitializedParams())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 60))

    def uri(self, rel: str) -> str:
        return (self.root / rel).resolve().as_uri()

    def open(self, rel: str, text: str | None = None) -> str:
        uri = self.uri(rel)
        text = (self.root / rel).read_text("utf-8") if text is None else text
        self.versions[uri] = 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="mrules", version=1, text=text)))
        return uri

    def change(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            [types.TextDocumentContentChangeWholeDocument(text=text)]))

    def wait_for(self, check: Callable[[], bool], timeout: float = 15) -> None:
        async def poll() -> None:
            deadline = self.loop.time() + timeout
            while not check():
                if self.loop.time() > deadline:
                    raise AssertionError(f"timed out; diagnostics: {self.diagnostics}")
                await asyncio.sleep(0.01)

        self.loop.run_until_complete(poll())

    def diagnostics_of(self, uri: str, after: int = 0) -> list[types.Diagnostic]:
        self.wait_for(lambda: any(u == uri for u, _ in self.events[after:]))
        return self.diagnostics[uri]

    def close(self) -> None:
        try:
            if not self.client.stopped:  # a test may have ended the server itself
                self.run(self.client.shutdown_async(None))
                self.client.exit(None)
        finally:
            try:
                self.run(self.client.stop())  # waits for the server process to end
            finally:
                process = self.client._server
                if process is not None and process.returncode is None:
                    process.kill()  # a failed test leaves no server behind
                    self.loop.run_until_complete(process.wait())
                self.loop.close()


@pytest.fixture
def session_factory() -> Iterator[Callable[..., Session]]:
    sessions: list[Session] = []

    def make(root: Path, **kw: Any) -> Session:
        s = Session(root, **kw)
        sessions.append(s)
        return s

    yield make
    for s in sessions:
        s.close()
