"""`mrules lsp`: the language server, on pygls and lsprotocol.

A document belongs to a rule set: the configured rule root (`rules` in
mrules.toml) that holds it, else its own folder with every `*.mr` below it.
The whole rule set is the program: open documents are read from the editor's
buffers (saved or not), the other files from disk. After a change the rule
set is checked again (`DEBOUNCE` seconds after the last keystroke; only the
changed file is parsed again) and diagnostics are published for each of its
files. Positions are converted between character offsets and the encoding
agreed with the client (UTF-16 unless the client offers another).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import faulthandler
import importlib.resources
import logging
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urlparse

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method

from mrules import ast
from mrules.buildinfo import __version__
from mrules.config import Config, ConfigError, find_config, load_config
from mrules.diagnostics import Diagnostic, Severity, help_uri
from mrules.loader import LIBRARY_PREFIX, RULE_SUFFIX, LoadError, unsearched
from mrules.lsp.analysis import (
    Analysis,
    NameRef,
    analyze,
    complete,
    hover,
    quick_fix,
    quote,
)
from mrules.lsp.testfiles import RuleTextName, TestName, find_names, rule_text_edit, yaml_scalar
from mrules.parser import Parsed
from mrules.source import Source

__all__ = ["DEBOUNCE", "MrulesLanguageServer", "serve", "server"]

DEBOUNCE = 0.03
"""Seconds to wait after a change before checking again (more changes restart the wait)."""
EXIT_GRACE = 5.0
"""Seconds the process may take to end after the client's `exit` before it is ended anyway."""
log = logging.getLogger(__name__)


def _units(text: str, encoding: str) -> int:
    if encoding == types.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding == types.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


_LINE_END = re.compile(r"\r\n?|\n")
"""A line ends with `\n`, `\r\n` or a lone `\r`, as LSP counts lines."""
_LONE_CR = re.compile(r"\r(?!\n)")


class Lines:
    """Offsets of one text <-> LSP positions (line, column in the agreed code units)."""

    def __init__(self, text: str, encoding: str) -> None:
        self.text = text
        self.encoding = encoding
        self.starts = [0]
        self.starts.extend(m.end() for m in _LINE_END.finditer(text))

    def _end(self, line: int) -> int:
        """Where a line's text ends: at its line end, before the whole of a `\r\n`."""
        found = _LINE_END.search(self.text, self.starts[line])
        return len(self.text) if found is None else found.start()

    def position(self, offset: int) -> types.Position:
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        offset = min(offset, self._end(line))  # between `\r` and `\n`: the line's end
        return types.Position(line, _units(self.text[self.starts[line] : offset], self.encoding))

    def range(self, start: int, end: int) -> types.Range:
        return types.Range(self.position(start), self.position(max(start, end)))

    def offset(self, pos: types.Position) -> int:
        """The first offset of the line at or past `pos.character` code units from its
        start; the line's end past it. Found by halving (a character is at least one
        unit, so the offset is at most `character` characters in), each half measured
        in one encoding: a loop over the characters took half a second a megabyte of the
        line before the cursor, at each hover, completion and edit of a range."""
        if pos.line >= len(self.starts):
            return len(self.text)
        start = self.starts[max(0, pos.line)]
        end = self._end(max(0, pos.line))
        last = min(end, start + max(0, pos.character))
        if self.text[start:last].isascii():  # a unit a character
            return last
        return (
            bisect.bisect_left(
                range(start, last),
                True,
                key=lambda i: _units(self.text[start:i], self.encoding) >= pos.character,
            )
            + start
        )


@dataclass
class _RuleSet:
    root: Path
    config: Config
    analysis: Analysis | None = None
    error: str | None = None
    published: dict[str, list[types.Diagnostic]] = field(default_factory=dict)
    """URI -> this rule set's own diagnostics of it, as last checked (the editor is shown
    the union of every rule set's: a file of a subfolder is in two)."""
    pending: asyncio.TimerHandle | None = None


def uri_to_path(uri: str) -> Path | None:
    """The file a URI names; None when it names none (not `file:`, or a NUL byte in it)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    # `%FF` is the byte 0xFF of a name that is not UTF-8, as the file system has it
    path = os.fsdecode(unquote_to_bytes(parsed.path))
    return None if "\x00" in path else Path(path)


def _rule_file(uri: str) -> Path | None:
    """The rule file (`*.mr`) a document's URI names, else None. Another file the editor
    hands the server as mrules (a `.txt`, a test file's YAML) is in no rule set: its
    folder was loaded as one all the same, and one without rule files was shown to the
    user as an error ("no rule files (*.mr) in this folder")."""
    path = uri_to_path(uri)
    return path if path is not None and path.suffix == RULE_SUFFIX else None


class _Unreadable:
    """A message whose params did not fit its method, already answered or logged."""


def _why(error: JsonRpcException) -> str:
    """What did not fit, as a path into the message (`$.params.position.line`)."""
    try:
        from cattrs import transform_error  # lsprotocol's own (de)serializer

        return "; ".join(transform_error(error.__cause__, path="$"))  # type: ignore[arg-type]
    except Exception:
        return str(error.__cause__ or error)


class MrulesProtocol(LanguageServerProtocol):
    """pygls's protocol, forgiving a client's mistakes: the editor gets an answer, never a
    popup about the server and never a request left waiting for ever."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        """A request whose params do not fit its method (a negative line, a missing field)
        is answered with an InvalidParams error naming the field: pygls dropped it with no
        answer, and showed "Error in server". A notification's is only logged."""
        try:
            return super().structure_message(data)
        except JsonRpcException as e:
            method = data.get("method")
            if not isinstance(method, str):  # no method: not a message of the protocol
                if "result" not in data and "error" not in data:
                    self._not_a_message(data)
                else:  # a response to nothing this server asked, or one it cannot read
                    log.warning("ignored a response that does not fit: %s", _why(e))
                return _Unreadable()
            why = _why(e)
            if "id" in data:
                self._send_response(
                    data["id"],
                    None,
                    JsonRpcInvalidParams(f"invalid params for {method}: {why}").to_response_error(),
                )
            else:
                log.warning("ignored %s: invalid params: %s", method, why)
            return _Unreadable()

    def _not_a_message(self, data: Any) -> None:
        """JSON that is no JSON-RPC message: answered InvalidRequest, as JSON-RPC says
        (pygls failed on it, shown to the user as "Error in server")."""
        id = data.get("id") if isinstance(data, dict) else None
        log.warning("ignored a message that is not JSON-RPC: %.200r", data)
        self.send_error(id, JsonRpcInvalidRequest("not a JSON-RPC 2.0 message"))

    def send_error(self, id: Any, error: JsonRpcException) -> None:
        """An error answer; its id is null when the request's id could not be read."""
        id = id if isinstance(id, int | str) else None
        self._send_data(types.ResponseErrorMessage(id=id, error=error.to_response_error()))

    initialized = False  # `initialize` came

    def handle_message(self, message: Any) -> None:
        """Before `initialize`, a request is answered ServerNotInitialized and a
        notification dropped, as the protocol says (the features reached for a workspace
        not made yet: an InternalError with a traceback, "Error in server"). After
        `shutdown`, a request is answered InvalidRequest."""
        if isinstance(message, _Unreadable):
            return
        if not hasattr(message, "jsonrpc"):  # `[1]`, `42`, `{}`: JSON, not JSON-RPC
            self._not_a_message(message)
            return
        method = getattr(message, "method", None)
        if not self.initialized and method not in (None, types.INITIALIZE, types.EXIT):
            if getattr(message, "id", None) is not None:
                error = JsonRpcServerNotInitialized(f"{method} before initialize")
                self._send_response(message.id, None, error.to_response_error())
            else:
                log.warning("ignored %s before initialize", method)
            return
        if self._shutdown and method not in (None, types.EXIT):
            # a request after `shutdown` errors with InvalidRequest, as the protocol says
            # (pygls logged it and never answered: the editor waited for ever)
            if getattr(message, "id", None) is not None:
                self.send_error(message.id, JsonRpcInvalidRequest(f"{method} after shutdown"))
            return
        if method == types.INITIALIZE:
            self.initialized = True
        super().handle_message(message)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        """A change to a document the client never opened is the client's mistake: logged
        and ignored (pygls raised a KeyError, shown to the user as a server error). A
        change of a range is applied on the lines as LSP counts them."""
        # pygls keeps open documents by the decoded URI (`My rules`, not `My%20rules`)
        doc = self.workspace.text_documents.get(unquote(params.text_document.uri))
        if doc is None:
            log.warning("ignored a change to %s, which is not open", params.text_document.uri)
            return
        encoding = str(self.workspace.position_encoding or types.PositionEncodingKind.Utf16)
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                # applied here on the lines LSP counts: pygls split them with
                # `splitlines`, at a form feed, NEL, U+2028... too (the edit landed
                # on another line), and took a column past a line's end past its `\n`
                text = doc.source
                lines = Lines(text, encoding)
                start, end = lines.offset(change.range.start), lines.offset(change.range.end)
                whole = text[:start] + change.text + text[max(start, end) :]
                change = types.TextDocumentContentChangeWholeDocument(text=whole)
            self.workspace.update_text_document(params.text_document, change)
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None


class MrulesLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("mrules", __version__, protocol_cls=MrulesProtocol)
        self.rule_sets: dict[Path, _RuleSet] = {}
        self.cache: dict[tuple[str, str], tuple[Source, Parsed]] = {}
        self.real_paths: dict[str, str] = {}  # shown path -> real path, from the checks
        self.debounce = DEBOUNCE
        self.config_errors: dict[str, str] = {}  # configuration file -> error shown
        self.shut_down = False  # after `shutdown`: nothing is checked or published again
        self.exiting = False  # the client sent `exit`
        self.line_tables: dict[str, Lines] = {}  # shown path -> its text's last table
        self.editor_uris: dict[str, str] = {}  # real path -> URI of the open document
        self._linked: tuple[tuple[Path, ...], list[tuple[Path, Path]]] | None = None
        self.folders_changed = False  # the client sent `workspace/didChangeWorkspaceFolders`

    # ------------------------------------------------------------- rule sets

    @property
    def encoding(self) -> str:
        with contextlib.suppress(Exception):
            enc = self.workspace.position_encoding
            if enc:
                return str(enc)
        return types.PositionEncodingKind.Utf16

    def folders(self) -> list[Path]:
        """The client's workspace folders (or its root), as it names them."""
        uris = [f.uri for f in self.workspace.folders.values()]
        # the root stands for the folders of a client that never names any; once the
        # client changed its folders, none left means none (not the first folder again)
        if not uris and self.workspace.root_uri and not self.folders_changed:
            uris = [self.workspace.root_uri]
        return [p for p in map(uri_to_path, uris) if p is not None]

    def in_workspace(self, real: Path) -> bool:
        """Whether a file lies in one of the client's workspace folders (or its root);
        every file does when the client named none."""
        folders = self.folders()
        return not folders or any(real.is_relative_to(os.path.realpath(f)) for f in folders)

    def rule_set_of(self, path: Path) -> _RuleSet:
        real = Path(os.path.realpath(path))
        found = find_config(real)
        try:
            config = load_config(found) if found is not None else Config()
        except ConfigError as e:
            # once per file and error, not at every keystroke: nor again after a file of
            # another project (its own configuration, good) was checked or hovered
            if str(e) != self.config_errors.get(str(found)):
                self.window_show_message(
                    types.ShowMessageParams(types.MessageType.Error, f"mrules: {e}")
                )
            self.config_errors[str(found)] = str(e)
            config = Config()
        else:
            self.config_errors.pop(str(found), None)
        # a file from outside the workspace (a download, the home folder) is checked
        # alone: its folder may be anything, and everything below it would be read
        root = real.parent if self.in_workspace(real) else real
        holding = []
        for configured in config.rules:
            croot = Path(os.path.realpath(configured))
            # not in a folder the root's rule set leaves out (a hidden one): its own, then
            if real.is_relative_to(croot) and not any(
                unsearched(part) for part in real.parent.relative_to(croot).parts
            ):
                holding.append(croot)
        if holding:  # roots one inside another: the innermost, whatever their order
            root = max(holding, key=lambda p: len(p.parts))
        rs = self.rule_sets.get(root)
        if rs is None:
            rs = self.rule_sets[root] = _RuleSet(root, config)
        else:
            rs.config = config
        return rs

    def overlays(self) -> dict[str, str]:
        out = {}
        self.editor_uris = {}
        for doc in list(self.workspace.text_documents.values()):
            path = uri_to_path(doc.uri)  # as sent: the keys are decoded once already
            if path is not None and path.suffix == RULE_SUFFIX:
                # a lone `\r` ends a line as `\n` does: one character for one, so every
                # offset holds, and what counts lines by `\n` (completion, the line of
                # "declared at" in hover) counts them as the editor does
                real = os.path.realpath(path)
                out[real] = _LONE_CR.sub("\n", doc.source)
                self.editor_uris[real] = doc.uri
        return out

    def refresh(self, rs: _RuleSet) -> Analysis | None:
        """Check a rule set again and publish its diagnostics."""
        if rs.pending is not None:
            rs.pending.cancel()
            rs.pending = None
        overlays = self.overlays()
        if str(rs.root) not in overlays and not os.path.lexists(rs.root):
            self.forget(rs)  # closed and not on disk: nothing is left to check
            return None
        try:
            analysis = analyze([rs.root], overlays, rs.config, self.cache)
        except LoadError as e:  # a file of the folder cannot be read (not UTF-8...)
            self.show_error(rs, f"mrules cannot check {rs.root}: {e}")
            return rs.analysis
        except Exception as e:  # never take the editor down with a bug: log it
            log.exception("mrules: checking %s failed", rs.root)
            self.show_error(rs, f"mrules: internal error checking {rs.root}: {e}")
            return rs.analysis
        rs.analysis, rs.error = analysis, None
        self.real_paths.update(analysis.result.real_paths)
        used = {(p, s.text) for p, s in analysis.result.sources.items()}
        self.cache = {
            k: v for k, v in self.cache.items() if k in used or k[0] not in analysis.result.sources
        }
        self.publish(rs, analysis)
        return analysis

    def forget(self, rs: _RuleSet) -> None:
        """Drop a rule set that is gone (a file checked alone, closed unsaved or deleted):
        its diagnostics are cleared (what other rule sets say of its files stays).
        Loading it showed "no such file" to the user, and what it last published stayed
        in the editor for good."""
        uris = list(rs.published)
        rs.published = {}
        self.rule_sets.pop(rs.root, None)
        for uri in uris:
            self.send_diagnostics(uri)

    def change_folders(self, removed: list[Path]) -> None:
        """After the client added or removed workspace folders: drop each rule set whose
        folder is in a removed folder and in no folder left (its diagnostics cleared:
        an empty list for each of its files, unless another rule set still holds it), and
        each file checked alone that now lies in the workspace; then check every open
        rule file again in the rule set it now belongs to (the added folder's, or alone
        for a file of a removed folder). The rule sets stayed as they were: a removed
        folder's diagnostics stayed in the editor, its names were still found, and an
        added folder was not read until the server started again."""
        if self.shut_down:
            return
        real_removed = [Path(os.path.realpath(f)) for f in removed]
        left = [Path(os.path.realpath(f)) for f in self.folders()]
        for rs in list(self.rule_sets.values()):
            root = Path(os.path.realpath(rs.root))
            gone = any(root.is_relative_to(f) for f in real_removed) and not any(
                root.is_relative_to(f) for f in left
            )
            alone = rs.root.suffix == RULE_SUFFIX and not rs.root.is_dir()
            if gone or (alone and self.in_workspace(root)):
                if rs.pending is not None:
                    rs.pending.cancel()
                    rs.pending = None
                self.forget(rs)
        for doc in list(self.workspace.text_documents.values()):
            path = _rule_file(doc.uri)
            if path is not None:
                self.schedule(path)

    def show_error(self, rs: _RuleSet, message: str) -> None:
        """Tell the user why a rule set has no diagnostics: once, not at every keystroke
        (a folder with one file that cannot be read published nothing, silently)."""
        if message != rs.error:
            self.window_show_message(types.ShowMessageParams(types.MessageType.Error, message))
        rs.error = message

    def report_server_error(self, error: Exception, source: Any) -> None:
        """pygls shows an error to the user with a message, except one of sending a message:
        telling that one fails the same way, and pygls reported that failure again, without
        end. It only goes to the log (pygls logged it already, with its traceback). Nor one
        of reading a message that is not JSON: that is answered with a ParseError."""
        if source is JsonRpcInternalError:
            return
        if source is JsonRpcException and isinstance(error, ValueError):
            # a body that is not JSON (or not UTF-8): the client's mistake, answered with
            # a ParseError as JSON-RPC says, never "Error in server" shown to the user
            log.warning("ignored a message that is not JSON: %s", error)
            if isinstance(self.protocol, MrulesProtocol):
                self.protocol.send_error(None, JsonRpcParseError())
            return
        super().report_server_error(error, source)

    def stop_checking(self) -> None:
        """At `shutdown`: a check still waiting for its debounce would publish after the
        client stopped listening, or, run as the process exits, into a closed stdout."""
        self.shut_down = True
        for rs in self.rule_sets.values():
            if rs.pending is not None:
                rs.pending.cancel()
                rs.pending = None

    def schedule(self, path: Path) -> None:
        """Check again, after the debounce, the rule set of a changed file and every other
        rule set that holds it: a file of a subfolder (`include "common/lists"`) is its
        own folder's rule set when opened, and also one of the folder above's. Only the
        first was checked: the includer kept diagnostics of the text before the change
        (a list deleted from the included file still resolved) until it changed itself."""
        if self.shut_down:
            return
        rs = self.rule_set_of(path)
        real = os.path.realpath(path)
        for other in list(self.rule_sets.values()):
            if other is not rs and self._holds(other, real):
                self._schedule(other)
        # its own rule set last (the file shows every rule set's diagnostics: `publish`)
        self._schedule(rs)

    @staticmethod
    def _holds(rs: _RuleSet, real: str) -> bool:
        """Whether a file (its real path) is, or may now be, one of a rule set's files."""
        if rs.analysis is not None and real in rs.analysis.result.real_paths.values():
            return True
        root = str(rs.root)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def _schedule(self, rs: _RuleSet) -> None:
        if rs.pending is not None:
            rs.pending.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.refresh(rs)
            return
        rs.pending = loop.call_later(self.debounce, self.refresh, rs)

    def current(self, uri: str) -> tuple[Analysis, str, str] | None:
        """The up-to-date analysis of a document, its path as diagnostics show it, its text."""
        path = _rule_file(uri)
        if path is None:
            return None
        rs = self.rule_set_of(path)
        analysis = (
            rs.analysis if rs.pending is None and rs.analysis is not None else self.refresh(rs)
        )
        if analysis is None:
            return None
        shown = self.shown_of(analysis, path)
        if shown is None:
            return None
        return analysis, shown, analysis.result.sources[shown].text

    # ------------------------------------------------------------- paths

    def path_of(self, shown: str) -> Path:
        if shown.startswith(LIBRARY_PREFIX):
            lib = importlib.resources.files("mrules").joinpath("library")
            return Path(str(lib)) / shown[len(LIBRARY_PREFIX) :]
        real = self.real_paths.get(shown)
        return Path(real if real is not None else os.path.realpath(shown))

    def uri_of(self, shown: str) -> str:
        """The URI the editor knows a file by: an open document's own, else its path in
        the workspace folder that holds it. The real path (links resolved) is another
        URI to the editor when the folder was opened through a symbolic link (a home
        folder on another disk, `/tmp` on macOS): the diagnostics of the open file went
        to a file it did not have open, and none showed."""
        real = self.path_of(shown)
        uri = self.editor_uris.get(str(real))
        if uri is not None:
            return uri
        for folder, target in self.linked_folders():
            if real.is_relative_to(target):
                return (folder / real.relative_to(target)).as_uri()
        return real.as_uri()

    def linked_folders(self) -> list[tuple[Path, Path]]:
        """(folder, its real path) for each workspace folder reached through a link;
        resolved again only when the folders change (once per file published: slow)."""
        folders = tuple(self.folders())
        if self._linked is None or self._linked[0] != folders:
            targets = [(f, Path(os.path.realpath(f))) for f in folders]
            self._linked = (folders, [(f, t) for f, t in targets if t != f])
        return self._linked[1]

    def shown_of(self, analysis: Analysis, path: Path) -> str | None:
        real = os.path.realpath(path)
        for shown in analysis.result.sources:
            if str(self.path_of(shown)) == real:
                return shown
        return None

    def lines(self, analysis: Analysis, shown: str) -> Lines:
        """A file's line table, made once per text: made for each diagnostic, publishing
        a file's diagnostics took time as their number times the file's size (seconds
        per keystroke for a few thousand)."""
        text, encoding = analysis.result.sources[shown].text, self.encoding
        table = self.line_tables.get(shown)
        if table is None or table.text is not text or table.encoding != encoding:
            table = self.line_tables[shown] = Lines(text, encoding)
        return table

    # ------------------------------------------------------------- diagnostics

    def to_lsp(self, analysis: Analysis, d: Diagnostic) -> types.Diagnostic:
        lines = self.lines(analysis, d.path)
        related = []
        for r in d.related:
            if r.path in analysis.result.sources:
                rl = self.lines(analysis, r.path)
                related.append(
                    types.DiagnosticRelatedInformation(
                        types.Location(self.uri_of(r.path), rl.range(r.start, r.end)), r.message
                    )
                )
        fix = quick_fix(d, analysis.result.sources[d.path].text)
        from mrules.checker import CODES

        return types.Diagnostic(
            range=lines.range(d.start, d.end),
            message=d.message + (f"\n{d.hint}" if d.hint else ""),
            severity=types.DiagnosticSeverity.Error
            if d.severity is Severity.ERROR
            else types.DiagnosticSeverity.Warning,
            code=d.code,
            code_description=types.CodeDescription(help_uri(d.code, CODES.get(d.code, d.code))),
            source="mrules",
            related_information=related or None,
            data={"fix": fix} if fix is not None else None,
        )

    def publish(self, rs: _RuleSet, analysis: Analysis) -> None:
        """Publish a rule set's diagnostics: for each of its files (and each it published
        for before), the union of what every rule set holding the file says of it. A file
        of a subfolder is in its own folder's rule set and in the one above's; each
        publication replaced the other's, and which one the editor showed depended on
        which was checked last."""
        by_path: dict[str, list[types.Diagnostic]] = {
            p: [] for p in analysis.result.sources if not p.startswith(LIBRARY_PREFIX)
        }
        for d in analysis.diagnostics:
            if d.path in by_path:
                by_path[d.path].append(self.to_lsp(analysis, d))
        uris = {self.uri_of(p): diags for p, diags in by_path.items()}
        before = rs.published
        rs.published = {u: d for u, d in uris.items() if d}
        for uri in {**before, **uris}:
            self.send_diagnostics(uri)

    def send_diagnostics(self, uri: str) -> None:
        """Publish a file's diagnostics: every rule set's, each once (same range, code and
        message); the innermost rule set's first, in the checker's order."""
        seen: dict[tuple[Any, ...], types.Diagnostic] = {}
        holders = sorted(self.rule_sets.values(), key=lambda r: (-len(r.root.parts), r.root))
        for other in holders:
            for d in other.published.get(uri, ()):
                r = d.range
                key = (r.start.line, r.start.character, r.end.line, r.end.character)
                seen.setdefault((*key, d.code, d.message), d)
        diags = list(seen.values())
        doc = self.workspace.text_documents.get(unquote(uri))
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri, diagnostics=diags, version=doc.version if doc else None
            )
        )


server = MrulesLanguageServer()


WATCHED = ("**/*" + RULE_SUFFIX, "**/mrules.toml", "**/pyproject.toml")
"""The files whose changes on disk (a git checkout, `mrules fmt`) are checked again."""


@server.feature(types.INITIALIZED)
def on_initialized(ls: MrulesLanguageServer, params: types.InitializedParams) -> None:
    """Ask the client to report changes to rule files and settings on disk, when it lets
    servers ask: only the VS Code extension asked for them, so in Neovim, Helix or Emacs
    a file changed, renamed or deleted outside the editor kept its diagnostics (and a
    list deleted from disk its uses) until the next keystroke."""
    caps = ls.client_capabilities.workspace
    watched = caps.did_change_watched_files if caps is not None else None
    if watched is None or not watched.dynamic_registration:
        return
    options = types.DidChangeWatchedFilesRegistrationOptions(
        watchers=[types.FileSystemWatcher(glob_pattern=glob) for glob in WATCHED]
    )
    registration = types.Registration(
        id="mrules-watched-files",
        method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=options,
    )
    ls.client_register_capability(types.RegistrationParams([registration]))


@server.feature(types.SHUTDOWN)
def on_shutdown(ls: MrulesLanguageServer, params: None) -> None:
    ls.stop_checking()


@server.feature(types.EXIT)
def on_exit(ls: MrulesLanguageServer, params: None) -> None:
    """pygls ends the process after this returns. Should anything keep the interpreter
    alive, the process ends `EXIT_GRACE` seconds later all the same, every thread's stack
    on stderr to say what held it: an editor must never be left with a server that won't
    go. Writes to stderr stop blocking first: editors often never read it, and a process
    blocked on a full stderr pipe (a watchdog writing stacks into it too) never ends."""
    ls.exiting = True
    with contextlib.suppress(OSError, ValueError):
        os.set_blocking(2, False)
    faulthandler.dump_traceback_later(EXIT_GRACE, exit=True)


# ------------------------------------------------------------------ documents


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: MrulesLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    path = _rule_file(params.text_document.uri)
    if path is not None:
        ls.schedule(path)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: MrulesLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    path = _rule_file(params.text_document.uri)
    if path is not None:
        ls.schedule(path)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: MrulesLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    path = _rule_file(params.text_document.uri)
    if path is not None:
        ls.schedule(path)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: MrulesLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    path = _rule_file(params.text_document.uri)
    if path is not None:  # the file on disk is the truth again
        ls.schedule(path)


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_files(ls: MrulesLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
    for change in params.changes:
        path = uri_to_path(change.uri)
        if path is None:
            continue
        if path.suffix == RULE_SUFFIX:
            ls.schedule(path)
        elif path.name in ("mrules.toml", "pyproject.toml"):  # settings: check everything
            for root in list(ls.rule_sets):
                ls.schedule(root / "_")


@server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
def did_change_folders(
    ls: MrulesLanguageServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    """pygls has already updated the workspace's folders."""
    ls.folders_changed = True
    ls._linked = None
    removed = [p for f in params.event.removed if (p := uri_to_path(f.uri)) is not None]
    ls.change_folders(removed)


# ------------------------------------------------------------------ features


def _ref_at(
    ls: MrulesLanguageServer, uri: str, pos: types.Position
) -> tuple[Analysis, NameRef] | None:
    cur = ls.current(uri)
    if cur is None:
        return None
    analysis, shown, _ = cur
    ref = analysis.name_at(shown, ls.lines(analysis, shown).offset(pos))
    return (analysis, ref) if ref is not None else None


def _location(ls: MrulesLanguageServer, analysis: Analysis, ref: NameRef) -> types.Location:
    return types.Location(
        ls.uri_of(ref.path), ls.lines(analysis, ref.path).range(ref.start, ref.end)
    )


@server.feature(types.TEXT_DOCUMENT_HOVER)
def on_hover(ls: MrulesLanguageServer, params: types.HoverParams) -> types.Hover | None:
    cur = ls.current(params.text_document.uri)
    if cur is None:
        return None
    analysis, shown, text = cur
    lines = ls.lines(analysis, shown)
    found = hover(analysis, shown, text, lines.offset(params.position))
    if found is None:
        return None
    markdown, (start, end) = found
    return types.Hover(
        types.MarkupContent(types.MarkupKind.Markdown, markdown), lines.range(start, end)
    )


_COMPLETION_KINDS = {
    "keyword": types.CompletionItemKind.Keyword,
    "field": types.CompletionItemKind.Field,
    "value": types.CompletionItemKind.EnumMember,
    "setting": types.CompletionItemKind.Property,
    "activity": types.CompletionItemKind.EnumMember,
}


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=['"']))
def on_completion(ls: MrulesLanguageServer, params: types.CompletionParams) -> types.CompletionList:
    cur = ls.current(params.text_document.uri)
    if cur is None:
        return types.CompletionList(is_incomplete=False, items=[])
    analysis, shown, text = cur
    lines = ls.lines(analysis, shown)
    offset = lines.offset(params.position)
    items = []
    for i, c in enumerate(complete(analysis, text, offset)):
        items.append(
            types.CompletionItem(
                label=c.label,
                kind=_COMPLETION_KINDS.get(c.kind, types.CompletionItemKind.Reference),
                detail=c.detail,
                sort_text=f"{i:05d}",
                text_edit=types.TextEdit(
                    lines.range(c.start, offset if c.end is None else c.end), c.insert
                ),
            )
        )
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def on_definition(
    ls: MrulesLanguageServer, params: types.DefinitionParams
) -> list[types.Location] | None:
    found = _ref_at(ls, params.text_document.uri, params.position)
    if found is None:
        return None
    analysis, ref = found
    return [_location(ls, analysis, d) for d in analysis.declarations(ref)] or None


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
def on_references(
    ls: MrulesLanguageServer, params: types.ReferenceParams
) -> list[types.Location] | None:
    found = _ref_at(ls, params.text_document.uri, params.position)
    if found is None:
        return None
    analysis, ref = found
    refs = analysis.references(ref, params.context.include_declaration)
    out = [_location(ls, analysis, r) for r in refs]
    for uri, lines, name in _test_names(ls, params.text_document.uri, ref):
        out.append(types.Location(uri, lines.range(name.start, name.end)))
    return out


def _test_names(
    ls: MrulesLanguageServer, uri: str, ref: NameRef
) -> Iterator[tuple[str, Lines, TestName]]:
    """(URI, line table, name) for each place a test file of the document's rule set
    writes the name `ref` as a name of its kind (docs/testing.md): the test files of the
    workspace folders that hold the rule set, read from the editor when open. Only at a
    rename or a references request: nothing is searched as you type."""
    from mrules.testing import _find_test_files

    path = uri_to_path(uri)
    if path is None:
        return
    root = ls.rule_set_of(path).root
    if not root.is_dir():  # a file checked alone: no tests of its own
        return
    real_root = Path(os.path.realpath(root))
    searched = [f for f in ls.folders() if real_root.is_relative_to(os.path.realpath(f))]
    if not ls.folders():
        searched = [root.parent]
    open_docs = {
        os.path.realpath(p): doc
        for doc in list(ls.workspace.text_documents.values())
        if (p := uri_to_path(doc.uri)) is not None
    }
    seen: set[str] = set()
    for folder in searched:
        for found in _find_test_files([str(folder)])[0]:
            real = os.path.realpath(found)
            if real in seen:
                continue
            seen.add(real)
            doc = open_docs.get(real)
            try:
                if doc is not None:
                    text = doc.source
                elif stat.S_ISREG(os.stat(found).st_mode):
                    text = Path(found).read_text("utf-8")
                else:  # a named pipe called x.test.yaml: reading it blocked the server
                    continue
            except (OSError, UnicodeDecodeError):
                continue
            names = [
                n
                for n in find_names(root, text, Path(found))
                if n.value == ref.key and ref.namespace in n.namespaces
            ]
            if names:
                lines = Lines(text, ls.encoding)
                test_uri = doc.uri if doc is not None else Path(found).as_uri()
                for n in names:
                    yield test_uri, lines, n


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
def on_prepare_rename(
    ls: MrulesLanguageServer, params: types.PrepareRenameParams
) -> types.PrepareRenamePlaceholder | None:
    """The name's span, and the name itself to edit: the span of a quoted name holds its
    quotes (and escapes), which an editor offered as the text to edit, and which rename
    then quoted again (`"Big"` became `"\\"Big\\""`)."""
    found = _ref_at(ls, params.text_document.uri, params.position)
    if found is None or not found[0].declarations(found[1]):
        return None
    analysis, ref = found
    return types.PrepareRenamePlaceholder(
        range=ls.lines(analysis, ref.path).range(ref.start, ref.end), placeholder=ref.key
    )


@server.feature(types.TEXT_DOCUMENT_RENAME)
def on_rename(ls: MrulesLanguageServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
    found = _ref_at(ls, params.text_document.uri, params.position)
    if found is None:
        return None
    analysis, ref = found
    if not analysis.declarations(ref):
        raise JsonRpcInvalidParams(f"{ref.namespace} '{ref.key}' is not declared in this rule set")
    if any(r.path.startswith(LIBRARY_PREFIX) for r in analysis.references(ref)):
        raise JsonRpcInvalidParams(
            f"{ref.namespace} '{ref.key}' is declared in the bundled "
            "library, which cannot be edited"
        )
    try:
        edits = analysis.rename_edits(ref, params.new_name)
    except ValueError as e:
        raise JsonRpcInvalidParams(str(e)) from None
    changes = {}
    for shown, spans in edits.items():
        lines = ls.lines(analysis, shown)
        changes[ls.uri_of(shown)] = [types.TextEdit(lines.range(s, e), new) for s, e, new in spans]
    for uri, lines, name in _test_names(ls, params.text_document.uri, ref):
        if isinstance(name, RuleTextName):  # a name in rule text: written as the rules do
            new = quote(params.new_name) if name.quoted else params.new_name
            if not rule_text_edit(lines.text, name, new):
                continue  # its scalar cannot hold it as written: left alone, and logged
        else:
            new = yaml_scalar(params.new_name, name.style)
        changes.setdefault(uri, []).append(types.TextEdit(lines.range(name.start, name.end), new))
    return types.WorkspaceEdit(changes=changes)


_SYMBOL_KINDS = {
    "field_decl": types.SymbolKind.Field,
    "user_decl": types.SymbolKind.Object,
    "group_decl": types.SymbolKind.Array,
    "queue_decl": types.SymbolKind.Object,
    "list_decl": types.SymbolKind.Array,
    "tag_decl": types.SymbolKind.Constant,
    "asset_decl": types.SymbolKind.File,
    "campaign_decl": types.SymbolKind.Event,
    "crm_campaign_decl": types.SymbolKind.Event,
    "completion_actions": types.SymbolKind.Event,
    "page_action": types.SymbolKind.Function,
    "automation_rule": types.SymbolKind.Function,
    "segmentation_rule": types.SymbolKind.Function,
    "dynamic_list": types.SymbolKind.Array,
    "scoring": types.SymbolKind.Namespace,
    "scoring_category": types.SymbolKind.Namespace,
    "grading_profile": types.SymbolKind.Class,
    "sync": types.SymbolKind.Module,
    "settings": types.SymbolKind.Module,
    "include": types.SymbolKind.Module,
}


def _symbol_name(item: ast.Node) -> tuple[str, ast.Span | None]:
    if isinstance(item, ast.CompletionActions):
        t = item.trigger
        return f'on {t.verb} of {t.asset_kind} "{t.asset.text}"', t.asset.span
    if isinstance(item, ast.Include):
        return f'include "{item.path.text}"', item.path.span
    name = getattr(item, "name", None)
    kind = item.kind.replace("_decl", "").replace("_", " ")
    if isinstance(item, ast.AssetDecl):
        kind = item.asset_kind
    if isinstance(name, ast.Name):
        return f"{kind} {name.text}", name.span
    return kind, None


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_document_symbol(
    ls: MrulesLanguageServer, params: types.DocumentSymbolParams
) -> list[types.DocumentSymbol]:
    cur = ls.current(params.text_document.uri)
    if cur is None:
        return []
    analysis, shown, _ = cur
    lines = ls.lines(analysis, shown)
    out = []
    for file in analysis.result.program.files:
        if file.path != shown:
            continue
        for item in file.items:
            name, span = _symbol_name(item)
            whole = lines.range(item.span.start, item.span.end)
            out.append(
                types.DocumentSymbol(
                    name=name,
                    kind=_SYMBOL_KINDS.get(item.kind, types.SymbolKind.Object),
                    range=whole,
                    selection_range=lines.range(span.start, span.end) if span else whole,
                )
            )
    return out


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def on_formatting(
    ls: MrulesLanguageServer, params: types.DocumentFormattingParams
) -> list[types.TextEdit] | None:
    from mrules.checker import suppression_anchors, suppressions_kept
    from mrules.printer import FormatError, FormatterBug, format_text

    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        # A document the editor never opened is read from disk: it may be gone, a
        # folder, unreadable or not UTF-8; there is then nothing to format.
        text = doc.source
    except (OSError, UnicodeDecodeError):
        return None
    try:
        anchors = suppression_anchors(text, doc.path)
        formatted = format_text(text, doc.path, verify=True, anchors=anchors)
    except (FormatError, FormatterBug, ValueError):
        return None  # syntax errors: the diagnostics say why; nothing is changed
    if anchors and not suppressions_kept(text, formatted, doc.path):
        # what `mrules fmt` refuses: a `# mrules: ignore` that silences what formatting
        # spreads over lines would stop silencing some of it (a warning appears)
        log.warning("not formatted: a `# mrules: ignore` comment would stop silencing")
        return None
    if formatted == text:
        return []
    lines = Lines(text, ls.encoding)
    return [types.TextEdit(lines.range(0, len(text)), formatted)]


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
)
def on_code_action(
    ls: MrulesLanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction]:
    actions = []
    for diag in params.context.diagnostics:
        data: Any = diag.data
        if (
            diag.source != "mrules"
            or not isinstance(data, dict)
            or not isinstance(data.get("fix"), str)
        ):
            continue
        fix = data["fix"]
        if diag.code == "MR030":
            title = "Remove the unused suppression" if not fix else f"Keep only {fix}"
        else:
            title = f"Change to {fix}"
        actions.append(
            types.CodeAction(
                title=title,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diag],
                is_preferred=True,
                edit=types.WorkspaceEdit(
                    changes={params.text_document.uri: [types.TextEdit(diag.range, fix)]}
                ),
            )
        )
    return actions


def _never_block_on_stderr() -> None:
    """Make a stderr pipe non-blocking: many editors never read the server's stderr, and a
    server whose log filled the pipe (64 KB: a few dozen tracebacks) blocked for good in
    the middle of a message. A log line that does not fit now is dropped. A terminal or a
    file is left as it is (the flag would stay on a terminal after the server ends)."""
    with contextlib.suppress(OSError, ValueError):
        mode = os.fstat(2).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            os.set_blocking(2, False)


def _not_unreadable_params(record: logging.LogRecord) -> bool:
    """pygls logs a whole traceback for a message whose params do not fit; MrulesProtocol
    answers it (or logs it) in one line instead."""
    return not str(record.msg).startswith("Unable to deserialize message")


def _refusals_in_one_line(record: logging.LogRecord) -> bool:
    """A request mrules refuses on purpose (a rename to a name taken: JsonRpcInvalidParams)
    is answered with its reason, which the editor shows; pygls also logged it with a whole
    traceback, in the editor's log, as if the server had failed. One line instead; an
    internal error keeps its traceback."""
    error = record.exc_info[1] if record.exc_info else None
    if (
        isinstance(error, JsonRpcException)
        and not isinstance(error, JsonRpcInternalError)
        and str(record.msg).startswith("Exception occurred for message")
    ):
        record.msg = f"{record.msg}: refused: {error}"
        record.exc_info = None
        record.exc_text = None
    return True


def _no_traceback_for_what_is_not_json(record: logging.LogRecord) -> bool:
    """pygls logs a whole traceback for a body that is not JSON (or not UTF-8), as if the
    server had failed; `report_server_error` logs it in one line and answers a ParseError."""
    error = record.exc_info[1] if record.exc_info else None
    return not (
        str(record.msg).startswith("Unable to handle message") and isinstance(error, ValueError)
    )


MAX_MESSAGE_BYTES = 1 << 30
"""The longest message body the server reads (1 GiB, far beyond any rule file's)."""


class MessageInput:
    """Standard input as pygls reads it: a header line, then a body of its Content-Length.

    pygls read the body with one `read(n)` of the length the header gave, which allocates
    n bytes first: `Content-Length: 999999999999` was a MemoryError, and 20 digits an
    OverflowError, each an internal error (exit 70) that stopped the server. A body is read
    a mebibyte at a time; a length beyond MAX_MESSAGE_BYTES cannot be followed (the next
    header is somewhere in what it says is the body): the server logs it in one line
    and stops as at the end of its input, exit 1 (`stream_lost`).
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.stream_lost = False

    def readline(self) -> bytes:
        return self._raw.readline()  # type: ignore[no-any-return]

    def read(self, n: int) -> bytes:
        if n > MAX_MESSAGE_BYTES:
            log.error(
                "a message says its body is %d bytes long, more than the %d a message may"
                " be: the input cannot be followed past it; the server stops",
                n,
                MAX_MESSAGE_BYTES,
            )
            self.stream_lost = True
            return b""  # pygls ends its loop at an empty body
        parts: list[bytes] = []
        left = n
        while left > 0:
            chunk = self._raw.read(min(left, 1 << 20))
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)


def serve() -> None:
    """Run the server over standard input and output until the client says exit."""
    _never_block_on_stderr()
    pygls_log = logging.getLogger("pygls.protocol.json_rpc")
    pygls_log.addFilter(_not_unreadable_params)
    pygls_log.addFilter(_refusals_in_one_line)
    logging.getLogger("pygls.server").addFilter(_no_traceback_for_what_is_not_json)
    stdin = MessageInput(sys.stdin.buffer)
    server.start_io(stdin)  # type: ignore[arg-type]  # pygls calls readline and read only
    if stdin.stream_lost:
        sys.exit(1)
    if server.exiting and not server.shut_down:
        # `exit` without `shutdown` first ends with 1, as the protocol says: pygls raised
        # SystemExit(1) inside its loop, caught it, and returned (the process ended 0)
        sys.exit(1)
