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

    def __init__(
        self,
        root: Path,
        capabilities: types.ClientCapabilities | None = None,
        command: tuple[str, ...] = ("-m", "mrules", "lsp"),
    ) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.client = LanguageClient("mrules-tests", "1")
        self.diagnostics: dict[str, list[types.Diagnostic]] = {}
        self.versions: dict[str, int] = {}
        self.events: list[tuple[str, int]] = []
        self.shut_down = self.exited = False

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: types.PublishDiagnosticsParams) -> None:
            self.diagnostics[params.uri] = list(params.diagnostics)
            self.events.append((params.uri, len(params.diagnostics)))

        self.messages: list[str] = []  # window/showMessage, in order

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def shown(params: types.ShowMessageParams) -> None:
            self.messages.append(params.message)

        self.registrations: list[types.Registration] = []  # client/registerCapability

        @self.client.feature(types.CLIENT_REGISTER_CAPABILITY)
        def register(params: types.RegistrationParams) -> None:
            self.registrations.extend(params.registrations)

        self.run(self.client.start_io(sys.executable, *command, cwd=str(root)))
        self.init = self.run(
            self.client.initialize_async(
                types.InitializeParams(
                    capabilities=capabilities or types.ClientCapabilities(),
                    root_uri=root.as_uri(),
                    workspace_folders=[types.WorkspaceFolder(root.as_uri(), "root")],
                )
            )
        )
        self.client.initialized(types.InitializedParams())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, 60))

    def uri(self, rel: str) -> str:
        return (self.root / rel).resolve().as_uri()

    def open(self, rel: str, text: str | None = None) -> str:
        uri = self.uri(rel)
        text = (self.root / rel).read_text("utf-8") if text is None else text
        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="mrules", version=1, text=text)
            )
        )
        return uri

    def change(self, uri: str, text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
                [types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

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

    def shutdown(self) -> None:
        self.run(self.client.shutdown_async(None))
        self.shut_down = True

    def exit(self) -> None:
        self.client.exit(None)
        self.exited = True

    def ended(self, timeout: float) -> int:
        """The server's exit code, once its process has ended (not its pipes: asyncio's
        `wait()` also waits for them to close, and one nobody reads never does)."""
        process = self.client._server

        async def poll() -> int:
            while process.returncode is None:
                await asyncio.sleep(0.05)
            return process.returncode

        return self.loop.run_until_complete(asyncio.wait_for(poll(), timeout))

    def close(self) -> None:
        process = self.client._server
        try:
            if process.returncode is None and not self.shut_down:
                self.shutdown()
            if process.returncode is None and not self.exited:
                self.exit()
        finally:
            try:
                # stderr read to its end, as an editor's log would: the process can end,
                # and asyncio's wait() return (it waits for every pipe to close)
                async def drain_and_stop() -> None:
                    await asyncio.gather(process.stderr.read(), self.client.stop())

                self.run(drain_and_stop())
            finally:
                if process.returncode is None:
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
