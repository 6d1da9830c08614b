"""`mrules test`: test files for a rule set, run in memory with a simulated clock.

A test file is YAML (docs/testing.md): the rules it tests, then test cases,
each a starting state (`given`), events with times and clock ticks, and what
to expect afterwards (prospect state, actions taken and not taken, the
outbox, CRM work, rule matches, a snapshot of the whole state).

Each case runs on a fresh in-memory store through the public API
(`mrules.run`) only:

1. the starting state is made by a *setup run*: a rule set holding the
   declarations of the tested rules plus one automation rule per given
   prospect (`set score to`, `add to list`, `assign to`, ...), over one
   `prospect_update` event a prospect carrying its fields, at the time `at`;
2. the tested rules then run over the case's events on the same store (their
   automation rules see the starting state retroactively, as when a rule set
   is deployed on an existing database), and the clock moves to `now`;
3. what the second run did (ledger entries, outbox messages and CRM work
   after the setup's last `seq`) and the final state export are compared
   with the expectations. A failure shows expected and actual values and the
   rules (file:line) and events behind the actual value, as `mrules explain`
   does.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "t.test.yaml").write_text('''
... rules: |
...   list "MQL"
...   form "F"
...   on submit of form "F" { add to list "MQL" }
... tests:
...   - name: submit adds to MQL
...     events:
...       - {ts: 2026-11-02T09:00:00Z, type: form_submit, prospect: a@x.com, asset: F}
...     expect:
...       prospects:
...         a@x.com: {lists: [MQL]}
... ''')
>>> report = run_paths([str(folder)])
>>> [(o.name, o.status) for o in report.outcomes], report.exit_code
([('submit adds to MQL', 'pass')], 0)
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import json
import math
import os
import re
import signal
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from mrules.atomic import atomic_write
from mrules.diagnostics import printable
from mrules.events import prospect_key
from mrules.exitcodes import ExitCode
from mrules.pathkind import special_file_kind

__all__ = [
    "NO_TESTS",
    "Case",
    "Failure",
    "Outcome",
    "Report",
    "SnapshotWriteError",
    "TestFileError",
    "find_test_files",
    "input_files",
    "load_file",
    "run_case",
    "run_paths",
]

TEST_SUFFIXES = (".test.yaml", ".test.yml")
SNAPSHOT_FOLDER = "__snapshots__"
DEFAULT_AT = "2000-01-01T00:00:00Z"

# What a test file may say, for messages that suggest the key a typo meant.
FILE_KEYS = ("rules", "tests")
CASE_KEYS = ("name", "rules", "given", "events", "now", "expect", "skip")
GIVEN_KEYS = ("at", "prospects")
GIVEN_PROSPECT_KEYS = (
    "fields",
    "score",
    "lists",
    "tags",
    "assigned",
    "profile",
    "grading",
    "opted_out",
)
EXPECT_KEYS = (
    "prospects",
    "absent",
    "actions",
    "no_actions",
    "outbox",
    "crm",
    "rules",
    "rejects",
    "snapshot",
)
PROSPECT_KEYS = (
    "score",
    "grade",
    "profile",
    "fields",
    "lists",
    "dynamic_lists",
    "tags",
    "assigned",
    "category_scores",
    "crm_status",
    "crm_id",
    "do_not_sync",
    "opted_out",
    "source_campaign",
    "created",
    "last_activity",
)
_SET_KEYS = ("lists", "dynamic_lists", "tags")
_MATCHER_KEYS = ("action", "prospect", "rule", "rule_kind", "args", "event")
# The kinds of rule the action log names (`rule.kind`): the compiler's, and `event`.
RULE_KINDS = (
    "completion action",
    "page action",
    "scoring",
    "automation rule",
    "dynamic list",
    "segmentation rule",
    "event",
)
_GRADING_STATES = {
    "matches": "matches",
    "does not match": "does not match",
    "not known": "not known",
}
_ASSIGNEES = ("user", "group", "queue")


# --------------------------------------------------------------------------- the data

# Prospect keys set by one ledger action: what a failure names as the cause, or says.
_SET_BY: dict[str, tuple[str, str]] = {
    "source_campaign": ("source campaign", "no rule set the source campaign"),
    "opted_out": ("opt out", "no event opted it out"),
    "crm_status": ("crm status", "no CRM event changed the CRM status"),
    "do_not_sync": ("do not sync", "nothing set do not sync"),
}


class TestFileError(Exception):
    """A test file that cannot be used: its message starts with `file:line:`."""

    __test__ = False  # not a pytest class

    def __init__(self, path: str, line: int | None, message: str, col: int | None = None) -> None:
        self.path, self.line, self.message, self.col = path, line, message, col
        shown = printable(path)  # a newline in a file's name does not split the message
        where = f"{shown}:{line}" if line else shown
        if line and col:
            where += f":{col}"
        super().__init__(f"{where}: {message}")


class SnapshotWriteError(TestFileError):
    """`--update` cannot write a snapshot file: an output that fails (exit 4), not a broken test."""


@dataclass
class Case:
    """One test case of a test file."""

    __test__ = False

    file: str  # the test file as messages show it (display path, printable)
    name: str
    line: int
    rules: str | list[str]  # a path (or paths) or rule text
    rules_line: int
    given: dict[str, Any]
    events: list[dict[str, Any]]  # JSON events, ticks included
    event_lines: list[int]  # the YAML line of each event
    now: str | None
    expect: dict[str, Any]
    skip: str | None = None
    rules_at: RuleTextAt | None = None  # where rule text given in the test file sits in it
    path: str | None = None  # the test file as the file system names it (None: as `file`)

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"


@dataclass
class Failure:
    """One expectation that does not hold."""

    what: str  # e.g. `leung@example.com: score`
    expected: Any
    actual: Any
    line: int | None  # the expectation's line in the test file
    reasons: list[str] = field(default_factory=list)  # explain-style causes of the actual value
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "expected": self.expected,
            "actual": self.actual,
            "line": self.line,
            "reasons": self.reasons,
            "note": self.note,
        }


@dataclass
class Outcome:
    """What happened to one case (or to a file that could not be read)."""

    file: str
    name: str
    line: int | None
    status: str  # pass | fail | error | skip
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    message: str | None = None  # for errors and skips
    updated: bool = False  # --update wrote its snapshot

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "name": self.name,
            "line": self.line,
            "status": self.status,
            "seconds": round(self.seconds, 6),
            "message": self.message,
            "updated": self.updated,
            "failures": [f.as_dict() for f in self.failures],
        }


@dataclass
class Report:
    """Every outcome of a `mrules test` run."""

    outcomes: list[Outcome] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    broken_files: int = 0
    bad_paths: int = 0  # paths of the command line that cannot be used: no test ran
    found: int = 0  # the tests of the files read, selected by -k or not
    selected: int = 0  # the tests -k selected (all without -k)
    keywords: tuple[str, ...] = ()  # -k
    unwritable: int = 0  # snapshots --update could not write (exit 4, as `-o`)

    def counts(self) -> Counter[str]:
        return Counter(o.status for o in self.outcomes)

    @property
    def none_found(self) -> bool:
        """The paths hold no test at all: a usage error (a wrong folder in a CI job), never
        a run that looks passed, as pytest's "no tests collected" fails."""
        return not self.found and not self.broken_files and not self.bad_paths

    @property
    def unmatched(self) -> str | None:
        """`5 tests in 1 file, none matches -k 'x'`: a -k that selects no test is a
        usage error (a typo), never a run that looks complete; None otherwise."""
        if not self.keywords or not self.found or self.selected:
            return None
        from mrules.diagnostics import plural

        tests = plural(self.found, "test")
        n = len(self.files)
        ks = " or ".join(f"-k {_printable(k)!r}" for k in self.keywords)
        return f"{tests} in {plural(n, 'file')}, none matches {ks}"

    @property
    def exit_code(self) -> int:
        if self.unwritable:
            return int(ExitCode.STORE)
        if self.broken_files or self.unmatched or self.none_found:
            return int(ExitCode.USAGE)
        counts = self.counts()
        if counts["fail"] or counts["error"]:
            return int(ExitCode.DIAGNOSTICS)
        return int(ExitCode.OK)


# ---------------------------------------------------------------------- reading files


class _Map(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers its line, and the line of each key."""

    line: int = 0
    key_lines: dict[str, int]
    scalars: dict[str, _Scalar]  # where each scalar value sits in the file


class _List(list):  # type: ignore[type-arg]
    line: int = 0
    item_lines: list[int]
    scalars: list[_Scalar | None]


@dataclass(frozen=True)
class _Scalar:
    """Where a scalar value sits in the test file: its character offsets and YAML style."""

    start: int
    end: int
    style: str | None  # None (plain), "'", '"', "|" or ">"


def _scalar(node: yaml.Node) -> _Scalar | None:
    if not isinstance(node, yaml.ScalarNode):
        return None
    return _Scalar(node.start_mark.index, node.end_mark.index, node.style)


MAX_NESTING = 64
"""The most levels of lists and mappings a test file may nest (a test needs a handful)."""


class _TooDeep(Exception):
    """A list or mapping opened past MAX_NESTING levels, at `mark`."""

    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """Safe YAML, mappings and lists with lines, timestamps kept as text, and plain
    scalars read as YAML 1.2's core schema does (docs/testing.md#how-values-are-read),
    nested MAX_NESTING levels at most: deeper, reading recursed until Python's limit,
    and the file was refused with no line."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self._depth >= MAX_NESTING:
            raise _TooDeep(self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


# PyYAML reads plain scalars as YAML 1.1: `NO`, `yes`, `on` and `off` were booleans (a
# country code `NO` became false), `01234` an octal number (a zip code became 668), `1:20`
# a base-60 number, `1_000` a number. YAML 1.2's core schema, which test files follow:
# only true/false are booleans, numbers are written as numbers (`0o17`, `0x1F` in those
# bases); a whole number with a leading zero keeps its digits as text, since it is a
# code more often than a count. Timestamps stay text (the events' reader checks them).
_YAML_1_1_ONLY = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in _YAML_1_1_ONLY]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _rx, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (
        "tag:yaml.org,2002:int",
        r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$",
        "-+0123456789",
    ),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
):
    _Loader.add_implicit_resolver(_tag, re.compile(_rx), list(_first))


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    out = _Map()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    out.scalars = {}
    own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    merged = len(node.value) - own  # `<<: *base` pairs come first; the mapping's own override
    own_keys: set[str] = set()
    for n, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            )
        key = str(key) if not isinstance(key, str) else key
        if n >= merged and key in own_keys:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"'{key}' is given twice in this mapping (first on line {out.key_lines[key]}):"
                " YAML keeps only the last, so the first would be ignored",
                key_node.start_mark,
            )
        if n >= merged:
            own_keys.add(key)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
        found = _scalar(value_node)
        if found is not None:
            out.scalars[key] = found
    return out


def _construct_list(loader: _Loader, node: yaml.SequenceNode) -> _List:
    out = _List(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [n.start_mark.line + 1 for n in node.value]
    out.scalars = [_scalar(n) for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_list)


def _line(obj: Any, key: str | None = None, default: int | None = None) -> int | None:
    if key is not None and isinstance(obj, _Map):
        return obj.key_lines.get(key, obj.line)
    return getattr(obj, "line", default) or default


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (one of: {', '.join(choices)})"


def _check_keys(obj: Any, allowed: Sequence[str], path: str, what: str) -> None:
    for key in obj:
        if key not in allowed:
            raise TestFileError(
                path, _line(obj, key), f"unknown key '{key}' in {what}{_suggest(key, allowed)}"
            )


def _need_map(obj: Any, path: str, line: int | None, what: str) -> _Map:
    if obj is None:
        obj = _Map()
        obj.line, obj.key_lines = line or 0, {}
    if not isinstance(obj, dict):
        raise TestFileError(path, _line(obj, default=line), f"{what} must be a mapping")
    return obj  # type: ignore[return-value]


def _need_list(obj: Any, path: str, line: int | None, what: str) -> list[Any]:
    if obj is None:
        return []
    if not isinstance(obj, list):
        raise TestFileError(path, _line(obj, default=line), f"{what} must be a list")
    return obj


def _time_text(value: Any, path: str, line: int | None, what: str) -> str:
    """An RFC 3339 time as the event stream wants it (checked here for a clear message)."""
    from mrules.events import parse_timestamp

    text = str(value)
    try:
        parse_timestamp(text)
    except ValueError as e:
        why = re.search(r"\((.*)\)$", str(e))
        detail = f" ({why.group(1)})" if why else ""
        raise TestFileError(path, line, f"{what}: not an RFC 3339 time: {text!r}{detail}") from None
    return text


def _epoch(text: str) -> float:
    from mrules.events import parse_timestamp

    return parse_timestamp(text).timestamp()


# What a YAML error's context is, in a user's words, and what usually fixes it.
_YAML_CONTEXTS = {
    "while parsing a flow mapping": (
        "in the mapping this '{' opens",
        "close the '{' of line {n} with '}' (and put ',' between its items)",
    ),
    "while parsing a flow sequence": (
        "in the list this '[' opens",
        "close the '[' of line {n} with ']' (and put ',' between its items)",
    ),
    "while scanning a quoted scalar": (
        "in the text this quote opens",
        "close the quote of line {n} with the same quote",
    ),
}


def _too_deep(mark: yaml.Mark, text: str, shown: str) -> TestFileError:
    """`file:line:col: nested too deeply: ...`, the line with a caret at the list or
    mapping that opens the level past MAX_NESTING."""
    from mrules.diagnostics import excerpt
    from mrules.source import Source

    src = Source(text.replace("\r\n", " \n"), shown)  # offsets kept, no CR shown
    out = [
        f"nested too deeply: a list or mapping {MAX_NESTING + 1} levels deep;"
        f" a test file nests at most {MAX_NESTING}",
        *excerpt(src, mark.index, mark.index + 1),
        "hint: a test needs a few levels (tests, a test, expect, prospects, ...):"
        " look for brackets left open or repeated",
    ]
    return TestFileError(shown, mark.line + 1, "\n".join(out), col=mark.column + 1)


def _yaml_error(e: yaml.YAMLError, text: str, shown: str) -> TestFileError:
    """`file:line:col: not valid YAML: PROBLEM`, the line with a caret, where the mapping,
    list or text the problem is in was opened (the usual cause: it is not closed), and a
    hint. YAML notices a `{` left open only lines later, where the file or the flow ends:
    the line alone pointed past the mistake."""
    from mrules.diagnostics import excerpt
    from mrules.source import Source

    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if mark is None:
        return TestFileError(shown, None, f"not valid YAML: {problem}")
    src = Source(text.replace("\r\n", " \n"), shown)  # offsets kept, no CR shown
    out = [f"not valid YAML: {problem}"]
    if text[mark.index :].strip():  # not at the end of the file: show where
        out += excerpt(src, mark.index, mark.index + 1)
    context, opened = getattr(e, "context", None), getattr(e, "context_mark", None)
    known = _YAML_CONTEXTS.get(context or "")
    hint = None
    if opened is not None and context:
        where = f"{printable(shown)}:{opened.line + 1}:{opened.column + 1}"
        out.append(f"note: {where}: {known[0] if known else context}")
        out += excerpt(src, opened.index, opened.index + 1)
        if known:
            hint = known[1].replace("{n}", str(opened.line + 1))
    if "'\\t'" in problem:
        hint = "indent with spaces: YAML does not allow a tab there"
    elif problem == "mapping values are not allowed here":
        hint = 'quote a value with ": " in it (name: "a: b"), or indent the line less'
    if hint:
        out.append(f"hint: {hint}")
    return TestFileError(shown, mark.line + 1, "\n".join(out), col=mark.column + 1)


# What usually fixes a test file's message, by its words (as YAML errors have a hint).
_HINTS = (
    (
        "unknown key '",
        "check its spelling and its indentation: a key belongs to the mapping"
        " whose keys it lines up with (docs/testing.md lists them)",
    ),
    ("must be a mapping", "give `key: value` lines indented under it, or {key: value, ...}"),
    ("must be a list", "give `- item` lines indented under it, or [item, ...]"),
    ("a mapping like", "give {key: value, ...}, or `key: value` lines indented under the `-`"),
    ("not an RFC 3339 time", "give a date and time with its zone: 2026-11-02T09:00:00Z"),
    ("not an email address", "give the prospect's email address: ann@example.com"),
    ("' is a dynamic list", "move it to the key the hint names"),
    ("' is a static list", "move it to the key the hint names"),
    ("unknown action '", "give an action as the action log names it (docs/testing.md)"),
    ("unknown ", "use a name the rules declare (names are case-sensitive), or declare it"),
)
_QUOTED = re.compile(r"'([^'\n]+)'")


def _pointed_at(text: str, shown: str, line: int, message: str) -> tuple[int, str]:
    """`message` followed by the test file's line `line` with a caret under what the message
    quotes (the key, the name, the value), else under the line's first item, and a hint:
    (the column, the text). A broken test file's messages gave `file:line` only."""
    from mrules.diagnostics import excerpt
    from mrules.source import Source

    src = Source(text.replace("\r\n", " \n"), shown)  # offsets kept, no CR shown
    starts = [0]
    for m in re.finditer("\n", src.text):
        starts.append(m.end())
    if not 0 < line <= len(starts):
        return 0, message
    start = starts[line - 1]
    end = starts[line] - 1 if line < len(starts) else len(src.text)
    row = src.text[start:end]
    at, width = None, 1
    for quoted in _QUOTED.findall(message.split("(")[0] + message):
        found = re.search(rf"(?<![\w-]){re.escape(quoted)}(?![\w-])", row)
        if found is not None:
            at, width = found.start(), len(quoted)
            break
    if at is None:  # the line's first item, past its indentation and a list's `- `
        item = re.match(r"[ \t]*(?:-[ \t]+)?", row)
        at = item.end() if item is not None and item.end() < len(row) else 0
    out = [message, *excerpt(src, start + at, start + at + width)]
    hint = next((h for words, h in _HINTS if words in message), None)
    if hint is not None:
        out.append(f"hint: {hint}")
    return at + 1, "\n".join(out)


def _pointed(e: TestFileError, text: str, shown: str) -> TestFileError:
    """`e` with its column, the line with a caret and a hint (`_pointed_at`), when it is a
    one-line message about a line of this test file."""
    if (
        e.col is not None
        or not e.line
        or e.path != shown
        or "\n" in e.message
        or isinstance(e, SnapshotWriteError)
    ):
        return e
    col, message = _pointed_at(text, shown, e.line, e.message)
    if not col:
        return e
    return TestFileError(e.path, e.line, message, col=col)


def load_file(path: str | Path) -> list[Case]:
    """The cases of one test file.

    Raises:
        TestFileError: the file cannot be read, is not YAML, or says something
            mrules cannot use; the message starts with `file:line:`.
    """
    from mrules.loader import display_path

    real = display_path(path)
    shown = _printable(real)  # a name that is not UTF-8 with `\xNN`, as every command shows it
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # a named pipe called x.test.yaml would block the run
            raise TestFileError(shown, None, f"not a test file (it is {special_file_kind(mode)})")
        data = Path(path).read_bytes()
        text = data.decode("utf-8-sig")
    except OSError as e:
        raise TestFileError(shown, None, f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        if data.startswith(b"SQLite format 3\x00"):  # a store given where the tests go
            raise TestFileError(
                shown, None, "an SQLite database (a store?), not a test file"
            ) from None
        from mrules.loader import not_utf8

        line, what = not_utf8(data, e)
        raise TestFileError(shown, line, what) from None
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        raise _yaml_error(e, text, shown) from None
    except _TooDeep as e:
        raise _too_deep(e.mark, text, shown) from None
    except RecursionError:
        raise TestFileError(shown, None, "not valid YAML: nested too deeply") from None
    if doc is None:
        raise TestFileError(shown, 1, "empty test file: give 'rules' and 'tests'")
    try:
        cases = _cases(doc, path, real, shown, text)
    except TestFileError as e:
        raise _pointed(e, text, shown) from None
    return cases


def _cases(doc: Any, path: str | Path, real: str, shown: str, text: str) -> list[Case]:
    """The cases of a test file's YAML `doc` (`load_file`)."""
    try:
        if _values(doc, {}) > MAX_VALUES:
            raise TestFileError(
                shown,
                None,
                f"too large: its aliases (*name) expand to more than {MAX_VALUES:,} values",
            )
        _check_text(doc, shown, 1)
    except RecursionError:
        raise TestFileError(shown, None, "not valid YAML: nested too deeply") from None
    doc = _need_map(doc, shown, 1, "a test file")
    _check_keys(doc, FILE_KEYS, shown, "the test file")
    folder = Path(path).parent
    rules, rules_line = _rules_ref(doc.get("rules"), folder, shown, _line(doc, "rules"))
    rules_at = _rule_text_at(rules, doc, text)
    tests = _need_list(doc.get("tests"), shown, _line(doc, "tests"), "'tests'")
    if not tests:
        raise TestFileError(shown, _line(doc, "tests", 1), "no tests: give a list under 'tests'")
    cases: list[Case] = []
    names: dict[str, int] = {}
    lines = getattr(tests, "item_lines", [])
    for i, raw in enumerate(tests):
        line = lines[i] if i < len(lines) else None
        case = _case(raw, shown, line, folder, (rules, rules_line, rules_at), text)
        if case.name in names:
            raise TestFileError(
                shown,
                case.line,
                f"two tests named '{case.name}' (the other at line {names[case.name]})",
            )
        names[case.name] = case.line
        case.path = real
        cases.append(case)
    return cases


_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_VALUES = 1_000_000
"""The most values a test file may hold once its YAML aliases are expanded."""


def _values(obj: Any, memo: dict[int, int]) -> int:
    """How many values `obj` holds with its aliases expanded: a value an alias shares is
    counted each time it is used, and walked once (a few lines may stand for billions).

    >>> shared = ["x"] * 10
    >>> _values({"a": [shared] * 10}, {})
    113
    """
    if isinstance(obj, dict):
        items: list[Any] = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list):
        items = obj
    else:
        return 1
    if id(obj) not in memo:
        memo[id(obj)] = 1 + sum(_values(v, memo) for v in items)
    return memo[id(obj)]


_NOT_A_BYTE = re.compile("[\ud800-\udc7f\udd00-\udfff]")  # a surrogate no name's byte decodes to


def _printable(text: str) -> str:
    """Text any output can encode: a path's bytes that are not UTF-8 (which Python reads as
    lone surrogates) as `\\xNN`, as every command shows such paths; any other lone surrogate
    as `\\uXXXX`."""
    if not _SURROGATE.search(text):
        return text
    from mrules.loader import printable_path

    return printable_path(_NOT_A_BYTE.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def _printable_data(obj: Any) -> Any:
    """`_printable` on every string of a JSON-like value, keys included."""
    if isinstance(obj, str):
        return _printable(obj)
    if isinstance(obj, dict):
        return {_printable(str(k)): _printable_data(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_printable_data(v) for v in obj]
    return obj


def _check_text(obj: Any, path: str, line: int) -> None:
    """Refuse a lone surrogate (a YAML escape such as `"\\ud800"`): it is not text, and
    nothing can print or encode it; and a whole number beyond 64 bits, which no score,
    count or field of mrules holds and no JSON writer of its reports can write."""
    if isinstance(obj, int) and not isinstance(obj, bool) and not -(2**63) <= obj < 2**64:
        raise TestFileError(
            path, line, f"the number {str(obj)[:30]} is too large: numbers fit in 64 bits"
        )
    if isinstance(obj, str):
        found = _SURROGATE.search(obj)
        if found:
            code = f"\\u{ord(found.group()):04x}"
            raise TestFileError(
                path, line, f"not text: {code} is half a character (a lone surrogate)"
            )
    elif isinstance(obj, dict):
        lines = getattr(obj, "key_lines", {})
        for key, value in obj.items():
            at = lines.get(key, line)
            _check_text(key, path, at)
            _check_text(value, path, at)
    elif isinstance(obj, list):
        lines = getattr(obj, "item_lines", [])
        for i, value in enumerate(obj):
            _check_text(value, path, lines[i] if i < len(lines) else line)


def _folder_above(folder: Path) -> Path:
    """The folder that holds `folder`, from any working folder: `Path.parent` is `.` for
    `.` (a test file named without a folder) and for `..`, which is not the folder above."""
    folder = Path(os.path.normpath(folder))  # `a/..` is `.`; `..` only leads a relative path
    if folder.is_absolute() or folder.name not in ("", ".."):
        return folder.parent
    return folder / ".." if folder.name == ".." else Path("..")


def _rules_ref(value: Any, folder: Path, shown: str, line: int | None) -> tuple[Any, int]:
    """Rule text, or the rule paths (relative to the test file's folder), checked to exist."""
    if value is None:
        default = _folder_above(folder) / "rules"
        if default.is_dir():
            return str(default), line or 1
        return None, line or 1
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise TestFileError(shown, line, "'rules' must be a path, a list of paths, or rule text")
    if len(values) == 1 and _is_rule_text(values[0]):
        return values[0], line or 1
    paths = []
    for v in values:
        p = folder / v
        if v.endswith("/") and p.exists() and not p.is_dir():  # `Path` drops the `/`
            from mrules.loader import NOT_A_FOLDER

            raise TestFileError(shown, line, f"rules: {_printable(v)}: {NOT_A_FOLDER}")
        if not p.exists():
            raise TestFileError(
                shown, line, f"rules: no such file or folder: {v} (from {_printable(str(folder))})"
            )
        paths.append(str(p))
    return (paths[0] if len(paths) == 1 else paths), line or 1


@dataclass(frozen=True)
class RuleTextAt:
    """Rule text written in a test file (`rules: |`), and where each of its characters is.

    Character i of the rule text is `file_text[starts[i]:ends[i]]` (more than one
    character for an escape such as `\\"`), so a diagnostic about the rule text can
    point at the test file's own line and column.
    """

    file_text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    ends_with_newline: bool

    def _start(self, i: int) -> int:
        if not self.starts:
            return 0
        if i < len(self.starts):
            return self.starts[max(i, 0)]
        # the end of the text: the end of its last line (not the next line of the file)
        return self.starts[-1] if self.ends_with_newline else self.ends[-1]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The test-file span of the rule-text span `start:end`."""
        first = self._start(start)
        if end <= start or not self.ends:
            return first, first
        return first, max(first, self.ends[min(end, len(self.ends)) - 1])


def _rule_text_at(rules: Any, container: Any, text: str) -> RuleTextAt | None:
    """Where `rules`, if it is rule text, sits in the test file `text` (None: not known)."""
    if not isinstance(rules, str) or not _is_rule_text(rules):
        return None
    value = container.get("rules") if isinstance(container, dict) else None
    where = getattr(container, "scalars", {}).get("rules")
    if isinstance(value, list) and len(value) == 1:
        value, where = value[0], (getattr(value, "scalars", None) or [None])[0]
    if value != rules or where is None:
        return None
    spans = _literal_spans(rules, text, where) if where.style == "|" else None
    if spans is None:
        spans = _scalar_spans(rules, text, where)
    if spans is None:
        return None
    starts = tuple(a for a, _ in spans)
    ends = tuple(b for _, b in spans)
    return RuleTextAt(text, starts, ends, rules.endswith("\n"))


def _literal_spans(value: str, text: str, where: _Scalar) -> list[tuple[int, int]] | None:
    """A literal block (`|`): each line of the value is a line of the file, indented."""
    header_end = text.find("\n", where.start, where.end)
    if header_end < 0:
        return None
    lines = value.split("\n")
    file_lines: list[tuple[int, str]] = []
    pos = header_end + 1
    for _ in lines:
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        file_lines.append((pos, text[pos:end].removesuffix("\r")))
        pos = end + 1
    pairs = list(zip(file_lines, lines, strict=True))
    # the block's indentation: what its first line with text has before that text
    indent = next((len(fl) - len(vl) for (_, fl), vl in pairs if vl.strip()), -1)
    if indent < 0:
        return None
    out: list[tuple[int, int]] = []
    for i, ((start, fl), vl) in enumerate(pairs):
        if vl and fl[indent : indent + len(vl)] != vl:
            return None
        out.extend((k, k + 1) for k in range(start + indent, start + indent + len(vl)))
        if i < len(lines) - 1:
            out.append((start + len(fl), start + len(fl) + 1))  # its line break
    return out


def _scalar_spans(value: str, text: str, where: _Scalar) -> list[tuple[int, int]] | None:
    """Any other scalar: its characters in order, past quotes, indentation, escapes and
    folded line breaks (a line break of the file may be a space of the value)."""
    tokens: list[tuple[str | None, int, int]] = []  # (the character it stands for, its span)
    i, stop = where.start, min(where.end, len(text))
    replacements = yaml.scanner.Scanner.ESCAPE_REPLACEMENTS
    codes = yaml.scanner.Scanner.ESCAPE_CODES
    while i < stop:
        ch = text[i]
        if where.style == '"' and ch == "\\" and i + 1 < stop:
            nxt = text[i + 1]
            if nxt in replacements:
                tokens.append((replacements[nxt], i, i + 2))
                i += 2
                continue
            if nxt in codes:
                size = 2 + codes[nxt]
                try:
                    tokens.append((chr(int(text[i + 2 : i + size], 16)), i, i + size))
                except ValueError:
                    return None
                i += size
                continue
            tokens.append((None, i, i + 2))  # an escaped line break: stands for nothing
            i += 2
            continue
        tokens.append((ch, i, i + 1))
        i += 1
    out: list[tuple[int, int]] = []
    t = 0
    for ch in value:
        while t < len(tokens):
            got = tokens[t][0]
            if got == ch or (ch in " \n" and got == "\n"):
                break
            t += 1
        if t == len(tokens):
            return None
        out.append((tokens[t][1], tokens[t][2]))
        t += 1
    return out


def _rule_errors(case: Case, error: Exception) -> str:
    """The errors of rule text, pointed at the test file (file:line:col, caret, hint)."""
    from mrules.diagnostics import Diagnostic, render_text, sort_diagnostics
    from mrules.loader import LoadError, load_text
    from mrules.source import Source

    at = case.rules_at
    diags = getattr(error, "diagnostics", None)
    if at is None or not isinstance(case.rules, str) or not diags:
        return str(error)
    try:
        sources = dict(load_text(case.rules, _TEXT_SOURCE).sources)
    except LoadError:
        sources = {}
    # Offsets are kept: a CR before a line break is shown as a space (then stripped).
    sources[case.file] = Source(at.file_text.replace("\r\n", " \n"), case.file)

    def moved(d: Any) -> Any:
        if d.path != _TEXT_SOURCE:
            return d
        start, end = at.span(d.start, d.end)
        return d.model_copy(update={"path": case.file, "start": start, "end": end})

    out: list[Diagnostic] = []
    for d in diags:
        d = moved(d)
        if d.related:
            d = d.model_copy(update={"related": tuple(moved(r) for r in d.related)})
        out.append(d)
    return render_text(sort_diagnostics(out), sources)


_TEXT_SOURCE = "<string>"  # the name mrules.api.compile_rules gives rule text
_TEXT_LINE = re.compile(rf"^{re.escape(_TEXT_SOURCE)}:(\d+)$")


def _rule_location(case: Case, at: Any) -> str:
    """Where a rule is (`file:line`, as the action log gives it), a line of rule text written
    in the test file (`<string>:3`) made that file's own line, as `_rule_errors` does."""
    text = str(at)
    m = _TEXT_LINE.match(text)
    if m is None or not isinstance(case.rules, str):
        return text
    n = int(m.group(1))
    lines = case.rules.split("\n")
    if case.rules_at is None or not 0 < n <= len(lines):  # not known: the `rules` key's line
        return f"line {n} of the rules at {case.file}:{case.rules_line}"
    offset = sum(len(line) + 1 for line in lines[: n - 1])
    start, _ = case.rules_at.span(offset, offset + 1)
    line = case.rules_at.file_text.count("\n", 0, start) + 1
    return f"{case.file}:{line}"


def _is_rule_text(value: str) -> bool:
    """Rule text rather than a path: several lines, a brace or a quote."""
    return "\n" in value or "{" in value or '"' in value


def _case(
    raw: Any,
    path: str,
    line: int | None,
    folder: Path,
    file_rules: tuple[Any, int, RuleTextAt | None],
    text: str,
) -> Case:
    rules, rules_line, rules_at = file_rules
    raw = _need_map(raw, path, line, "a test")
    _check_keys(raw, CASE_KEYS, path, "a test")
    name = raw.get("name")
    where = getattr(raw, "scalars", {}).get("name")
    if isinstance(name, int | float) and where is not None and where.style is None:
        name = text[where.start : where.end]  # `name: 0x10` is a name, kept as written
    if not isinstance(name, str) or not name.strip():
        raise TestFileError(path, raw.line, "a test needs a 'name' (text)")
    if "rules" in raw:
        rules, rules_line = _rules_ref(raw["rules"], folder, path, _line(raw, "rules"))
        rules_at = _rule_text_at(rules, raw, text)
    if rules is None:
        raise TestFileError(
            path,
            raw.line,
            "which rules does this test? give 'rules: PATH' (a file or folder, relative to the"
            " test file) at the top of the file, or keep the tests in a folder beside 'rules/'",
        )
    given = _given(raw.get("given"), path, _line(raw, "given"))
    events, event_lines = _events(raw.get("events"), path, _line(raw, "events"))
    now = raw.get("now")
    if now is not None:
        now = _time_text(now, path, _line(raw, "now"), "now")
    expect = _need_map(raw.get("expect"), path, _line(raw, "expect", raw.line), "'expect'")
    _check_expect(expect, path)
    for r in expect.get("rejects") or ():  # an event the test does not have never matches
        if not 1 <= r["event"] <= len(events):
            from mrules.diagnostics import plural

            raise TestFileError(
                path,
                _line(r, default=_line(expect, "rejects")),
                f"expect.rejects: event {r['event']} is not one of this test's"
                f" {plural(len(events), 'event')} (N counts events from 1)",
            )
    for key in ("actions", "no_actions"):  # `event: 5` of 3 events, or `event: "2"`,
        items = expect.get(key) or ()  # never matches: `no_actions` held whatever happened
        lines = getattr(items, "item_lines", [])
        for i, m in enumerate(items):
            if m.get("event") is None:  # `event: null`: no event (when the rules started)
                continue
            n = m["event"]
            where = _line(m, "event", lines[i] if i < len(lines) else _line(expect, key))
            if isinstance(n, bool) or not isinstance(n, int):
                raise TestFileError(
                    path,
                    where,
                    f"expect.{key}: 'event' is the event's position in 'events' (a whole"
                    f" number from 1), not {_typed(n)}",
                )
            if not 1 <= n <= len(events):
                from mrules.diagnostics import plural

                raise TestFileError(
                    path,
                    where,
                    f"expect.{key}: 'event' {n} is not one of this test's"
                    f" {plural(len(events), 'event')} (N counts events from 1)",
                )
    at = given.get("at")
    if at is None:
        times = [e["ts"] for e in events]
        at = min(times, key=_epoch) if times else (now or DEFAULT_AT)
        given["at"] = at
    skip = raw.get("skip")
    if skip is True:  # `skip: true`: a test skipped without a reason ("True" was shown)
        skip = "skipped (no reason given)"
    elif skip is not None and skip is not False and not (isinstance(skip, str) and skip.strip()):
        raise TestFileError(
            path,
            _line(raw, "skip", raw.line),
            "'skip' takes a reason (text) or true, not "
            + ("an empty text" if isinstance(skip, str) else f"a {_kind(skip)}"),
        )
    return Case(
        file=path,
        name=name.strip(),
        line=raw.line,
        rules=rules,
        rules_line=rules_line,
        given=given,
        events=events,
        event_lines=event_lines,
        now=now,
        expect=expect,
        skip=None if skip in (None, False) else str(skip).strip(),
        rules_at=rules_at,
    )


def _given(raw: Any, path: str, line: int | None) -> dict[str, Any]:
    raw = _need_map(raw, path, line, "'given'")
    _check_keys(raw, GIVEN_KEYS, path, "'given'")
    out: dict[str, Any] = {"prospects": {}, "lines": {}}
    if raw.get("at") is not None:
        out["at"] = _time_text(raw["at"], path, _line(raw, "at"), "given.at")
    prospects = _need_map(raw.get("prospects"), path, _line(raw, "prospects"), "given.prospects")
    for email, state in prospects.items():
        where = prospects.key_lines.get(email, prospects.line)
        key = _email(email, path, where)
        state = _need_map(state, path, where, f"the starting state of {key}")
        for k in state:
            if k == "grade":
                raise TestFileError(
                    path,
                    _line(state, k),
                    "the grade is computed from the profile's criteria: give"
                    " 'grading: {CRITERION: matches}' (and 'profile') instead",
                )
        _check_keys(state, GIVEN_PROSPECT_KEYS, path, f"the starting state of {key}")
        _given_types(state, path, key)
        out["prospects"][key] = state
        out["lines"][key] = where
    return out


def _given_types(state: _Map, path: str, email: str) -> None:
    def bad(key: str, what: str) -> TestFileError:
        return TestFileError(path, _line(state, key), f"{email}: '{key}' must be {what}")

    if "score" in state and (
        isinstance(state["score"], bool)
        or not isinstance(state["score"], int)
        or state["score"] < 0
    ):
        raise bad("score", "a whole number, 0 or more")
    if "score" in state:
        from mrules.parser import MAX_NUMBER  # what `set score to` takes

        if state["score"] > MAX_NUMBER:  # the setup rules could not hold it: a broken file
            raise TestFileError(
                path,
                _line(state, "score"),
                f"{email}: score '{state['score']}' is out of range:"
                f" a score is a whole number from 0 to {MAX_NUMBER}",
            )
    if "fields" in state and not isinstance(state["fields"], dict):
        raise bad("fields", "a mapping of field names to values")
    for key in ("fields",):
        for name, value in (state.get(key) or {}).items():
            if isinstance(value, dict | list):
                raise bad(key, f"plain values (field '{name}' is not)")
    for key in ("lists", "tags"):
        if key in state and not (
            isinstance(state[key], list) and all(isinstance(x, str) for x in state[key])
        ):
            raise bad(key, "a list of names")
    if "assigned" in state:
        _assignee(state["assigned"], path, _line(state, "assigned"), email)
    if "profile" in state and not isinstance(state["profile"], str):
        raise bad("profile", "a profile name")
    if "grading" in state:
        g = state["grading"]
        if not isinstance(g, dict) or not all(
            isinstance(v, str) and v in _GRADING_STATES for v in g.values()
        ):
            raise bad(
                "grading", "a mapping of criterion names to matches / does not match / not known"
            )
    if "opted_out" in state and not isinstance(state["opted_out"], bool):
        raise bad("opted_out", "true or false")


def _assignee(value: Any, path: str, line: int | None, email: str) -> tuple[str, str] | None:
    """`user@x` (a user), `{queue: NAME}` (or user/group), or null (unassigned)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return "user", value
    if isinstance(value, dict) and len(value) == 1:
        ((kind, name),) = value.items()
        if kind in _ASSIGNEES and isinstance(name, str) and name:
            return kind, name
    raise TestFileError(
        path,
        line,
        f"{email}: 'assigned' must be a user's email, {{user|group|queue: NAME}} or null",
    )


def _email(value: Any, path: str, line: int | None) -> str:
    text = str(value).strip().lower() if value is not None else ""
    if text.count("@") != 1 or text.startswith("@") or text.endswith("@") or " " in text:
        raise TestFileError(path, line, f"not an email address: {value!r}")
    return text


def _events(raw: Any, path: str, line: int | None) -> tuple[list[dict[str, Any]], list[int]]:
    """The events as JSON objects; `{now: TIME}` is a clock tick."""
    items = _need_list(raw, path, line, "'events'")
    lines = list(getattr(items, "item_lines", [line or 0] * len(items)))
    out = []
    for i, item in enumerate(items):
        where = lines[i] if i < len(lines) else line
        if not isinstance(item, dict):
            raise TestFileError(path, where, "an event must be a mapping like {ts: ..., type: ...}")
        if "now" in item:
            if len(item) != 1:
                raise TestFileError(path, where, "a clock tick is {now: TIME} and nothing else")
            out.append({"ts": _time_text(item["now"], path, where, "now"), "type": "tick"})
            continue
        if "ts" not in item:
            raise TestFileError(path, where, "an event needs 'ts' (its RFC 3339 time)")
        event = dict(item)
        event["ts"] = _time_text(item["ts"], path, where, "ts")
        _finite(event, path, where, "")
        out.append(event)
    return out, lines


def _finite(value: Any, path: str, line: int | None, key: str) -> None:
    """An event's values go through JSON, which has no NaN or infinity: `.nan` or
    `.inf` was rejected as 'not JSON ... at column N' of a line the file does not have."""
    if isinstance(value, float) and not math.isfinite(value):
        raise TestFileError(
            path,
            line,
            f"event value '{key}' is {value}, which an event cannot carry (JSON has no"
            " NaN or infinity): quote it to give the text",
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _finite(v, path, line, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, path, line, f"{key}[{i}]")


def _check_expect(expect: _Map, path: str) -> None:
    _check_keys(expect, EXPECT_KEYS, path, "'expect'")
    prospects = _need_map(
        expect.get("prospects"), path, _line(expect, "prospects"), "expect.prospects"
    )
    for email, want in prospects.items():
        where = prospects.key_lines.get(email, prospects.line)
        _email(email, path, where)
        # `a@x.com:` with nothing after it: the prospect exists, as `a@x.com: {}` says
        want = prospects[email] = _need_map(want, path, where, f"the expectation for {email}")
        _check_keys(want, PROSPECT_KEYS, path, f"the expectation for {email}")
        for key in _SET_KEYS:
            if key in want:
                _set_expectation(want[key], path, _line(want, key), f"{email}: {key}")
        if "score" in want:
            _score_expectation(want["score"], path, _line(want, "score", where), email)
        if "assigned" in want:
            _assignee(want["assigned"], path, _line(want, "assigned"), email)
        for key in ("created", "last_activity"):  # `created: yesterday` could only fail
            if want.get(key) is not None:
                _time_text(want[key], path, _line(want, key, where), f"{email}: {key}")
    for email in _need_list(expect.get("absent"), path, _line(expect, "absent"), "expect.absent"):
        _email(email, path, _line(expect, "absent"))
    for key in ("actions", "no_actions", "outbox", "crm"):
        items = _need_list(expect.get(key), path, _line(expect, key), f"expect.{key}")
        lines = getattr(items, "item_lines", [])
        for i, m in enumerate(items):
            where = lines[i] if i < len(lines) else _line(expect, key)  # type: ignore[assignment]
            if not isinstance(m, dict):
                raise TestFileError(path, where, f"expect.{key}: each item must be a mapping")
            if key in ("actions", "no_actions") and "action" in m:
                _action_name(m["action"], path, where)
            if key in ("actions", "no_actions") and "rule_kind" in m:
                kind = m["rule_kind"]
                if kind not in RULE_KINDS:
                    raise TestFileError(
                        path,
                        _line(m, "rule_kind", where),
                        f"unknown rule_kind '{kind}'{_suggest(str(kind), RULE_KINDS)}",
                    )
    if "rules" in expect:
        rules = _need_map(expect["rules"], path, _line(expect, "rules"), "expect.rules")
        for name, n in rules.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise TestFileError(
                    path, rules.key_lines.get(name), f"expect.rules: '{name}' must be a count"
                )
    for r in _need_list(expect.get("rejects"), path, _line(expect, "rejects"), "expect.rejects"):
        if (
            not isinstance(r, dict)
            or not isinstance(r.get("event"), int)
            or isinstance(r.get("event"), bool)
        ):
            raise TestFileError(
                path,
                _line(r, default=_line(expect, "rejects")),
                "expect.rejects: each item is {event: N, reason: REGEX} (N counts events from 1)",
            )
        # `{event: 2, reasn: ...}` would expect the reject with no check of its reason
        _check_keys(r, ("event", "reason"), path, "an expected reject")
        with contextlib.suppress(KeyError):
            try:
                re.compile(str(r["reason"]))
            except re.error as e:
                raise TestFileError(path, _line(r), f"expect.rejects: bad regex: {e}") from None
    if "snapshot" in expect and not isinstance(expect["snapshot"], bool):
        raise TestFileError(
            path, _line(expect, "snapshot"), "expect.snapshot must be true or false"
        )


def _score_expectation(value: Any, path: str, line: int | None, email: str) -> None:
    """A score is a whole number or a test as text: `[1]`, `true` or `.nan` would only
    ever fail (or pass, `true == 1`), so they are a broken test, as `'>= abc'` is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return
    if isinstance(value, str) and _SCORE_TEST.match(value):
        return
    raise TestFileError(
        path,
        line,
        f"{email}: score: a whole number or a test like '>= 100', not {_typed(value)}",
    )


def _set_expectation(value: Any, path: str, line: int | None, what: str) -> None:
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return
    if isinstance(value, dict) and set(value) <= {"include", "exclude"}:
        for v in value.values():
            if not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                break
        else:
            return
    raise TestFileError(
        path,
        line,
        f"{what} must be a list of names (exactly these) or {{include: [..], exclude: [..]}}",
    )


def _action_name(value: Any, path: str, line: int | None) -> None:
    from mrules.vocab import Action

    names = [a.value for a in Action]
    if value not in names:
        raise TestFileError(path, line, f"unknown action '{value}'{_suggest(str(value), names)}")


# ------------------------------------------------------- the names the expectations use


@dataclass
class _Names:
    """The names a rule set declares, to refuse the expectations that name others."""

    rules: dict[str, str]  # every rule name the action log can show -> its kind
    automation_rules: set[str]
    lists: set[str]
    dynamic_lists: set[str]
    tags: set[str]  # declared, or added or removed by a rule
    categories: set[str]
    profiles: set[str]
    queues: set[str]
    groups: set[str]
    users: set[str]
    campaigns: set[str]
    crm_campaigns: set[str]
    emails: set[str]
    fields: set[str]  # declared and default fields (events may set others: see _check_names)

    @classmethod
    def of(cls, compiled: Any) -> _Names:
        """The names of a compiled rule set (mrules.compiler.CompiledRuleSet)."""
        from mrules import ast
        from mrules.vocab import AssetKind, EventType

        sym = compiled.symbols
        rules: dict[str, str] = {}
        # As the compiler names them in the ledger (compiler.RuleRef): completion
        # actions `submit of form X`, page actions, scoring rows, automation rules,
        # dynamic lists, segmentation rules; events as their type.
        refs = [b.ref for blocks in compiled.blocks.values() for b in blocks]
        refs += [a.ref for a in compiled.page_actions]
        refs += [ref for _, ref in (*compiled.scoring.values(), *compiled.crm_scoring.values())]
        refs += [r.ref for r in (*compiled.rules, *compiled.dynamic_lists, *compiled.segmentation)]
        for ref in refs:
            rules.setdefault(ref.name, ref.kind)
        for kind, declared in (
            ("automation rule", sym.automation_rules),  # paused ones too
            ("page action", sym.page_actions),
            ("dynamic list", sym.dynamic_lists),
            ("segmentation rule", sym.segmentation_rules),
        ):
            for name in declared:
                rules.setdefault(name, kind)
        tags = set(sym.tags)
        if compiled.program is not None:
            for f in compiled.program.files:
                for item in f.items:
                    if isinstance(item, ast.Scoring):
                        for row in item.rows:
                            rules.setdefault(row.activity.text, "scoring")
                    # a tag needs no declaration (MR109 is a warning): the rules' own count
                    for node in ast.walk(item):
                        if isinstance(node, ast.AddTag | ast.RemoveTag):
                            tags.add(node.tag.text)
        for event_type in (*(t.value for t in EventType), "run"):
            rules.setdefault(event_type, "event")
        return cls(
            rules=rules,
            automation_rules=set(sym.automation_rules),
            lists=set(sym.lists),
            dynamic_lists=set(sym.dynamic_lists),
            tags=tags,
            categories=set(sym.categories),
            profiles=set(sym.profiles),
            queues=set(sym.queues),
            groups=set(sym.groups),
            users=set(sym.users),
            campaigns=set(sym.campaigns),
            crm_campaigns=set(sym.crm_campaigns),
            emails=set(sym.asset_names(AssetKind.EMAIL.value)),
            fields=set(sym.fields),
        )


def _did_you_mean(word: str, choices: Iterable[str], plural: str) -> str:
    names = sorted(set(choices))
    close = [c for c in names if c.casefold() == word.casefold()]
    close = close or difflib.get_close_matches(word, names, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if not names:
        return f" (the rules declare no {plural})"
    shown = ", ".join(f"'{n}'" for n in names[:8]) + (", ..." if len(names) > 8 else "")
    return f" (the rules declare: {shown})"


def _check_names(case: Case, names: _Names) -> None:
    """Refuse expectations that name rules, lists, tags... the rule set does not declare.

    Without this, `no_actions: [{rule: MQL handof}]` or `lists: {exclude: [MQLs]}`
    would always hold, whatever the rules do.

    Raises:
        TestFileError: at the first unknown name's line, listing every unknown name.
    """
    problems: list[tuple[int | None, str]] = []

    def check(value: Any, choices: set[str], line: int | None, where: str, what: str) -> None:
        if isinstance(value, str) and value in choices:
            return
        plural = f"{what[:-1]}ies" if what.endswith("y") else f"{what}s"
        if not isinstance(value, str):
            hint = ""
        elif what == "list" and value in names.dynamic_lists:
            hint = f" ('{value}' is a dynamic list: expect it under 'dynamic_lists')"
        elif what == "dynamic list" and value in names.lists:
            hint = f" ('{value}' is a static list: expect it under 'lists')"
        else:
            hint = _did_you_mean(str(value), choices, plural)
        problems.append((line, f"{where}: unknown {what} '{value}'{hint}"))

    # `given` may add tags and fields no rule names (the engine keeps them), not lists: a
    # list it names must be one the rules declare (the setup refused it, without a hint)
    for email, st in case.given["prospects"].items():
        for name in st.get("lists") or ():
            line = case.given["lines"].get(email, case.line)
            if isinstance(name, str) and name in names.dynamic_lists:
                problems.append(
                    (
                        line,
                        f"given: {email}: lists: '{name}' is a dynamic list: its criteria"
                        " decide who is in it, `given` cannot add to it",
                    )
                )
            else:
                check(name, names.lists, line, f"given: {email}: lists", "list")

    expect = case.expect
    want_rules = expect.get("rules") or {}
    for name in want_rules:
        line = _line(want_rules, name)
        if name in names.automation_rules:
            continue
        kind = names.rules.get(name)
        if kind is not None:
            problems.append(
                (
                    line,
                    f"expect.rules: '{name}' is a {kind}, not an automation rule"
                    " (only automation rules are counted here)",
                )
            )
        else:
            check(name, names.automation_rules, line, "expect.rules", "automation rule")

    # A prospect no event of the test names and `given` does not give: `no_actions` about
    # it (a misspelt email) held whatever the rules did.
    known = {prospect_key(e) for e in case.given["prospects"]} | {
        prospect_key(e["prospect"]) for e in case.events if isinstance(e.get("prospect"), str)
    }

    def check_prospect(value: Any, line: int | None, where: str) -> None:
        if isinstance(value, str) and prospect_key(value) in known:
            return
        close = difflib.get_close_matches(prospect_key(str(value)), sorted(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        problems.append(
            (
                line,
                f"{where}: prospect '{value}' is not one of this test's prospects"
                f" (the ones its events and given name{hint})",
            )
        )

    for key in ("actions", "no_actions"):
        items = expect.get(key) or []
        lines = getattr(items, "item_lines", [])
        for i, m in enumerate(items):
            item_line = lines[i] if i < len(lines) else _line(expect, key)
            where = f"expect.{key}"
            if "prospect" in m:
                check_prospect(m["prospect"], _line(m, "prospect", item_line), where)
            if "rule" in m:
                check(m["rule"], set(names.rules), _line(m, "rule", item_line), where, "rule")
            args = m.get("args")
            for mapping in (m, args if isinstance(args, dict) else {}):
                _check_arg_names(m.get("action"), mapping, names, item_line, where, check)

    # `given` may add a tag no rule names (the engine takes it); expect may then check it
    given_tags = {t for st in case.given["prospects"].values() for t in st.get("tags") or ()}
    # a field the rules do not declare is still kept when an event or `given` sets it
    field_names = names.fields | {
        key
        for source in (*case.events, *case.given["prospects"].values())
        if isinstance(source.get("fields"), dict)
        for key in source["fields"]
    }
    prospects = expect.get("prospects") or {}
    for email, want in prospects.items():
        where = f"expect.prospects: {email}"
        for key, choices, what in (
            ("lists", names.lists, "list"),
            ("dynamic_lists", names.dynamic_lists, "dynamic list"),
            ("tags", names.tags | given_tags, "tag"),
        ):
            if key not in want:
                continue
            value = want[key]
            wanted = (
                value
                if isinstance(value, list)
                else [x for part in ("include", "exclude") for x in value.get(part) or ()]
            )
            for name in wanted:
                check(name, choices, _line(want, key), f"{where}: {key}", what)
        if isinstance(want.get("fields"), dict):
            for name in want["fields"]:
                check(name, field_names, _line(want, "fields"), f"{where}: fields", "field")
        if isinstance(want.get("category_scores"), dict):
            cats = want["category_scores"]
            for name in cats:
                check(
                    name,
                    names.categories,
                    _line(cats, name, _line(want, "category_scores")),
                    f"{where}: category_scores",
                    "scoring category",
                )
        if isinstance(want.get("profile"), str):
            check(want["profile"], names.profiles, _line(want, "profile"), where, "profile")
        if isinstance(want.get("source_campaign"), str):
            check(
                want["source_campaign"],
                names.campaigns,
                _line(want, "source_campaign"),
                where,
                "campaign",
            )
        assigned = want.get("assigned")
        if isinstance(assigned, dict) and len(assigned) == 1:
            ((kind, name),) = assigned.items()
            if kind in ("queue", "group"):
                choices = names.queues if kind == "queue" else names.groups
                check(name, choices, _line(want, "assigned"), f"{where}: assigned", kind)

    if problems:
        problems.sort(key=lambda p: p[0] or 0)
        text = _test_file_text(case)
        shown: list[tuple[int | None, int | None, str]] = []
        for n, message in problems:  # each with its column, the line, a caret and a hint
            at, said = _pointed_at(text, case.file, n, message) if text and n else (0, message)
            shown.append((n, at or None, said))
        (line, col, first), rest = shown[0], shown[1:]
        more = "".join(
            f"\n{case.file}:{n}{f':{c}' if c else ''}: {said}" if n else f"\n{said}"
            for n, c, said in rest
        )
        raise TestFileError(case.file, line, first + more, col=col)


def _test_file_text(case: Case) -> str | None:
    """The test file's text, to point at its lines; None when it cannot be read again."""
    try:
        return Path(case.path or case.file).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None


def _check_arg_names(
    action: Any,
    mapping: dict[str, Any],
    names: _Names,
    line: int | None,
    where: str,
    check: Any,
) -> None:
    """The names among an action matcher's args (`list`, `tag`, `category`...)."""
    for key, value in mapping.items():
        at = _line(mapping, key, line)
        if key == "list":
            check(value, names.lists | names.dynamic_lists, at, where, "list")
        elif key == "tag":
            check(value, names.tags, at, where, "tag")
        elif key == "category":
            check(value, names.categories, at, where, "scoring category")
        elif key == "profile":
            check(value, names.profiles, at, where, "profile")
        elif key == "campaign":
            if action == "source campaign":
                check(value, names.campaigns, at, where, "campaign")
            elif action == "crm campaign member":
                check(value, names.crm_campaigns, at, where, "crm campaign")
            else:
                check(value, names.campaigns | names.crm_campaigns, at, where, "campaign")
        elif key == "email" and action == "autoresponder":
            check(value, names.emails, at, where, "email")
        elif key == "name" and action == "assign":  # a rule's assignee (the CRM's has none)
            assignees = names.users | names.groups | names.queues
            check(value, assignees, at, where, "user, group or queue")


# --------------------------------------------------------------------- finding files


STDIN_REFUSED = (
    "mrules test reads test files from files and folders, not standard input"
    " (a file named - is ./-)"
)
"""What `mrules test -` says: `-` is standard input to every command that reads one."""


def find_test_files(paths: Iterable[str]) -> list[str]:
    """Test files: a file as given; in a folder, every `*.test.yaml` / `*.test.yml` below it.

    Raises:
        TestFileError: a path does not exist, cannot be looked at, or is neither a
            regular file nor a folder (/dev/null, a named pipe); the first of them.
    """
    files, bad = _find_test_files(paths)
    if bad:
        raise bad[0]
    return files


def _find_test_files(
    paths: Iterable[str], unreadable: list[TestFileError] | None = None
) -> tuple[list[str], list[TestFileError]]:
    """The test files under `paths`, and every path that cannot be used (`find_test_files`);
    a folder below them that cannot be read goes to `unreadable` (`_walk`)."""
    out: list[str] = []
    bad: list[TestFileError] = []
    for p in paths:
        if p == "-":  # every other command's standard input: never a file named `-` here
            bad.append(TestFileError("-", None, STDIN_REFUSED))
            continue
        path = Path(p)
        try:
            mode = os.stat(p).st_mode  # not `path`'s: `Path` drops the `/` of `t.test.yaml/`
        except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL byte
            if p.endswith("/") and os.path.lexists(p.rstrip("/")):
                from mrules.loader import NOT_A_FOLDER

                bad.append(TestFileError(_printable(p), None, NOT_A_FOLDER))
            else:
                bad.append(TestFileError(_printable(p), None, "no such file or folder"))
            continue
        except OSError as e:  # a link loop, no permission to look, a name too long
            bad.append(TestFileError(_printable(p), None, f"cannot read: {e.strerror or e}"))
            continue
        if stat.S_ISREG(mode):
            out.append(str(path))
        elif stat.S_ISDIR(mode):
            found = []
            for f in sorted(_walk(path, unreadable)):
                if f.name.endswith(TEST_SUFFIXES):
                    found.append(str(f))
            out.extend(found)
        else:  # /dev/null, a named pipe, a socket: reading one would block or read nothing
            bad.append(
                TestFileError(
                    _printable(p),
                    None,
                    f"not a test file or folder (it is {special_file_kind(mode)})",
                )
            )
    seen: set[str] = set()
    unique = []
    for name in out:
        key = os.path.realpath(name)  # a loop of links stays as it is: `load_file` says so
        if key not in seen:
            seen.add(key)
            unique.append(name)
    return unique, bad


Loaded = dict[str, list[Case] | TestFileError]
Progress = Callable[[int], contextlib.AbstractContextManager[Callable[[str], None]]]
"""`run_paths`' `progress`: given how many tests will run, a context whose value is
called with each test's name once it has run (`mrules test`'s bar on a terminal)."""
"""Test files read, by path: `input_files` fills it, and `run_paths` reads them no more."""


def input_files(paths: Sequence[str], loaded: Loaded | None = None) -> list[tuple[str, str]]:
    """What the tests under `paths` read, as (what it is, path) pairs: the test files, the
    rule files and folders they load, their snapshot files; `-o` may be none of them.
    A path or test file that cannot be used is left to the run to report."""
    from mrules.loader import LoadError, load

    files, _ = _find_test_files(paths or ["."])
    out: list[tuple[str, str]] = [("a test file it runs", f) for f in files]
    rule_refs: dict[str, list[str]] = {}
    for f in files:
        cases = _load_file_once(f, loaded)
        if isinstance(cases, TestFileError):
            continue
        for case in cases:
            if isinstance(case.rules, list) or not _is_rule_text(case.rules):
                refs = case.rules if isinstance(case.rules, list) else [case.rules]
                rule_refs.setdefault(_Rules.key(refs), refs)
            snapshot = _snapshot_path(case)
            if case.expect.get("snapshot") or snapshot.exists():
                out.append(("a snapshot file of the tests", str(snapshot)))
    for refs in rule_refs.values():
        with contextlib.suppress(LoadError):  # the run reports it
            sources = load(refs).sources  # with the files they include
            out += [("a rule file the tests load", n) for n in sources if os.path.isfile(n)]
        # a file named *.mr in a rule folder would be a rule file next time
        out += [("in a rule folder the tests load", r) for r in refs if os.path.isdir(r)]
    return out


def _load_file_once(path: str, loaded: Loaded | None) -> list[Case] | TestFileError:
    if loaded is not None and path in loaded:
        return loaded[path]
    try:
        cases: list[Case] | TestFileError = load_file(path)
    except TestFileError as e:
        cases = e
    if loaded is not None:
        loaded[path] = cases
    return cases


def _walk(folder: Path, unreadable: list[TestFileError] | None = None) -> Iterator[Path]:
    """Every entry below `folder` that is not a folder, by the walk `mrules lint` and
    `run` make of a rule folder (`loader.walk_below`): links to folders below it are not
    entered, `__snapshots__` is skipped as well; a folder that cannot be read (no
    permission, a path longer than the system allows) goes to `unreadable` and the walk
    goes on."""
    from mrules.loader import unsearched, walk_below

    def skipped(name: str) -> bool:
        return unsearched(name) or name == SNAPSHOT_FOLDER

    for path, err in walk_below(folder, skipped):
        if err is None:
            yield path
        elif unreadable is not None:
            why = err.strerror or str(err)
            if err.errno == errno.ENAMETOOLONG:
                why += " (the path is longer than the system allows)"
            unreadable.append(
                TestFileError(_printable(str(path)), None, f"cannot read the folder: {why}")
            )


# ---------------------------------------------------------------------------- running


class _Rules:
    """Compiled rule sets and their declarations, loaded once a run."""

    _DECLS = (
        "field_decl",
        "user_decl",
        "group_decl",
        "queue_decl",
        "list_decl",
        "tag_decl",
        "asset_decl",
        "campaign_decl",
        "crm_campaign_decl",
        "grading_profile",
        "scoring_category",
        "settings",
    )

    def __init__(self) -> None:
        self.compiled: dict[str, Any] = {}
        self.decls: dict[str, str] = {}
        self.names: dict[str, _Names] = {}

    @staticmethod
    def key(rules: str | list[str]) -> str:
        return repr(rules)  # not JSON: a path may hold bytes that are not UTF-8

    def get(self, rules: str | list[str]) -> Any:
        """The compiled rule set (raises mrules.api.RuleSetError)."""
        from mrules.api import compile_rules

        k = self.key(rules)
        if k not in self.compiled:
            try:
                self.compiled[k] = compile_rules(rules)
            except Exception as e:  # kept, so each case of the file reports it once
                _reraise_interrupt(e)  # never kept as the rules' error
                self.compiled[k] = e
        found = self.compiled[k]
        if isinstance(found, Exception):
            raise found
        return found

    def declared(self, rules: str | list[str]) -> _Names:
        """The names the rule set declares (raises mrules.api.RuleSetError)."""
        k = self.key(rules)
        if k not in self.names:
            self.names[k] = _Names.of(self.get(rules))
        return self.names[k]

    def declarations(self, rules: str | list[str]) -> str:
        """The declaration items of the rule set (with its includes), as rule text."""
        from mrules.loader import load, load_text

        k = self.key(rules)
        if k not in self.decls:
            if isinstance(rules, str) and not Path(rules).exists():
                result = load_text(rules, "<rules>")
            else:
                result = load([rules] if isinstance(rules, str) else rules)
            parts = []
            for f in result.program.files:
                source = result.sources.get(f.path)
                if source is None:
                    continue
                for item in f.items:
                    if item.kind in self._DECLS:
                        parts.append(source.text[item.span.start : item.span.end])
            self.decls[k] = "\n".join(parts) + "\n"
        return self.decls[k]

    def setup(self, text: str) -> Any:
        """The compiled setup rule set of one case's starting state. Not kept: its text
        names the case's prospects and line, so no other case asks for it again, and each
        one kept the whole rule set's declarations compiled, for every case of the run."""
        from mrules.api import compile_rules

        return compile_rules(text)


_GIVEN_SOURCE = "<given>"


def _q(text: str) -> str:
    from mrules.printer import quote

    return quote(text)


def _setup_rules(case: Case, decls: str) -> tuple[str, list[dict[str, Any]]]:
    """The setup rule set and its events for the case's starting state."""
    rules = [decls]
    events = []
    at = case.given["at"]
    for email, state in case.given["prospects"].items():
        event: dict[str, Any] = {"ts": at, "type": "prospect_update", "prospect": email}
        if state.get("fields"):
            event["fields"] = dict(state["fields"])
        events.append(event)
        actions = []
        if "score" in state:
            actions.append(f"set score to {int(state['score'])}")
        for name in state.get("lists") or ():
            actions.append(f"add to list {_q(name)}")
        for name in state.get("tags") or ():
            actions.append(f"add tag {_q(name)}")
        assignee = _assignee(state.get("assigned"), case.file, None, email)
        if assignee is not None:
            actions.append(f"assign to {assignee[0]} {_q(assignee[1])}")
        profile = state.get("profile")
        if profile:
            actions.append(f"change profile to {_q(profile)}")
        for criterion, st in (state.get("grading") or {}).items():
            prof = profile or "Default"
            actions.append(f"mark {_q(str(criterion))} of profile {_q(prof)} as {st}")
        if actions:
            line = case.given["lines"].get(email)
            rules.append(
                f"automation rule {_q(f'given {email} ({case.file}:{line})')} priority 1 {{\n"
                f"  when all {{ email is {_q(email)} }}\n"
                "  then {\n" + "".join(f"    {a}\n" for a in actions) + "  }\n}\n"
            )
        if state.get("opted_out"):
            events.append({"ts": at, "type": "unsubscribe", "prospect": email})
    return "".join(rules), events


@dataclass
class _Result:
    """What one case's run produced, read through the public store API."""

    records: dict[str, dict[str, Any]]
    ledger: list[Any]  # the tested run's ledger entries
    all_ledger: dict[str, list[Any]]  # every entry a prospect has (starting state included)
    outbox: list[dict[str, Any]]
    crm: list[dict[str, Any]]
    rejects: list[Any]
    setup_seq: int
    store: Any  # the in-memory store, for explanations


def run_case(case: Case, rules: _Rules | None = None) -> _Result:
    """Run one case in memory; raises TestFileError or mrules.api.RuleSetError."""
    import mrules
    from mrules.api import RuleSetError, open_store

    rules = rules or _Rules()
    compiled = rules.get(case.rules)
    _check_names(case, rules.declared(case.rules))
    store = open_store(":memory:")
    setup_seq = 0
    if case.given["prospects"]:
        text, events = _setup_rules(case, rules.declarations(case.rules))
        try:
            setup = rules.setup(text)
        except RuleSetError as e:
            messages = "; ".join(d.message for d in e.diagnostics) or str(e)
            first = next(iter(case.given["lines"].values()), case.line)
            raise TestFileError(
                case.file, first, f"given: the starting state cannot be made: {messages}"
            ) from None
        mrules.run(setup, events, store=store, source=_GIVEN_SOURCE, label=_GIVEN_SOURCE)
        bad = list(store.rejects(_GIVEN_SOURCE))
        if bad:
            email = events[bad[0].line - 1].get("prospect", "")
            raise TestFileError(
                case.file,
                case.given["lines"].get(email, case.line),
                f"given {email}: {bad[0].reason}",
            )
        setup_seq = store.max_seq()
    now = _epoch(case.now) if case.now else None
    source = f"{case.file}::{case.name}"
    result = mrules.run(compiled, case.events, store=store, now=now, source=source, label=case.file)
    st = result.store
    with st.snapshot():
        records = {r["email"]: r for r in result.export()}
        for r in records.values():
            r["pending_crm"] = [w for w in r["pending_crm"] if w["seq"] > setup_seq]
        ledger = list(st.ledger(after_seq=setup_seq))
        outbox = [_message(m) for m in st.outbox() if m[0] > setup_seq]
        crm = [_message(m) for m in st.crm_pending() if m[0] > setup_seq]
        rejects = list(st.rejects(source))
    return _Result(records, ledger, {}, outbox, crm, rejects, setup_seq, st)


def _message(m: Any) -> dict[str, Any]:
    from mrules.engine import iso  # as `state export` prints times

    seq, ts, prospect, kind, payload = m[:5]
    return {
        "seq": seq,
        "time": iso(ts),
        "prospect": prospect,
        "kind": kind,
        **orjson.loads(payload),
    }


# -------------------------------------------------------------------------- comparing

_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
_SCORE_TEST = re.compile(r"^\s*(==|!=|>=|<=|>|<)\s*(-?\d+)\s*$")


class _Checker:
    """Compares one case's result with its expectations; explains what it finds."""

    def __init__(self, case: Case, res: _Result) -> None:
        self.case, self.res = case, res
        self.failures: list[Failure] = []
        self._explained: dict[str, dict[str, Any]] = {}

    # -- explanations, as `mrules explain` gives them

    def explained(self, email: str) -> dict[str, Any]:
        from mrules.explain import explanation
        from mrules.outputs import action_record

        if email not in self._explained:
            rows = [action_record(e) for e in self.res.store.ledger(prospect=email)]
            self._explained[email] = explanation(self.res.records.get(email, {}), rows)
            self._explained[email]["rows"] = rows
        return self._explained[email]

    def from_start(self, r: dict[str, Any]) -> bool:
        """Whether an action-log record is the starting state's (`given`): the setup run
        wrote the entries up to `setup_seq`. Not by the rule's name: a tested rule may be
        named `given ...` too, and its actions are the test's."""
        return bool(r["seq"] <= self.res.setup_seq)

    def cause(self, r: dict[str, Any]) -> str:
        """Which rule (file:line) and which event made an action-log record."""
        rule, ev = r["rule"], r["event"]
        if self.from_start(r):
            m = re.search(r"\(([^()]*:\d+)\)$", rule["name"])
            return f"the starting state ({m.group(1)})" if m else "the starting state"
        if rule["kind"] == "event":
            where = f"event {rule['name']}"
        else:
            where = f"{rule['kind']} '{rule['name']}' ({_rule_location(self.case, rule['at'])})"
        line = ev.get("line")
        if line:
            yaml_line = (
                self.case.event_lines[line - 1] if 0 < line <= len(self.case.event_lines) else None
            )
            at = f" ({self.case.file}:{yaml_line})" if yaml_line else ""
            event = f", event {line}{at}"
        elif rule["kind"] != "event":
            event = ", when the rules started (retroactive) or at a tick"
        else:
            event = ""
        return f"{where}{event}, {r['time']}"

    def fail(self, what: str, expected: Any, actual: Any, line: int | None, **kw: Any) -> None:
        self.failures.append(Failure(what, expected, actual, line, **kw))

    # -- prospects

    def prospects(self) -> None:
        want_all = self.case.expect.get("prospects") or {}
        records = self.res.records
        for raw_email, want in want_all.items():
            email = raw_email.strip().lower()
            line = want_all.key_lines.get(raw_email) if isinstance(want_all, _Map) else None
            got = records.get(email)
            if got is None:
                close = difflib.get_close_matches(email, list(records), n=3)
                self.fail(
                    email,
                    "a prospect",
                    "no such prospect",
                    line,
                    note=f"prospects: {', '.join(sorted(records)) or 'none'}"
                    + (f"; did you mean {close[0]}?" if close else ""),
                )
                continue
            for key, value in want.items():
                self.prospect_key(email, key, value, got, _line(want, key, line))
        for email in self.case.expect.get("absent") or ():
            e = email.strip().lower()
            if e in records:
                ex = self.explained(e)
                created = next((r for r in ex["rows"] if r["action"] == "create prospect"), None)
                reasons = [f"created by {self.cause(created)}"] if created else []
                self.fail(
                    f"{e}", "absent", "exists", _line(self.case.expect, "absent"), reasons=reasons
                )

    def prospect_key(
        self, email: str, key: str, want: Any, got: dict[str, Any], line: int | None
    ) -> None:
        actual = got.get(key)
        what = f"{email}: {key}"
        if key == "score":
            if isinstance(want, str):
                m = _SCORE_TEST.match(want)
                if m is None:
                    raise TestFileError(
                        self.case.file, line, f"{what}: a number or a test like '>= 100'"
                    )
                ok = _OPS[m.group(1)](actual, int(m.group(2)))
            else:
                ok = actual == want
            if not ok:
                self.fail(what, want, actual, line, reasons=self.score_reasons(email))
        elif key in _SET_KEYS:
            self.set_key(email, key, want, actual or [], line)
        elif key == "assigned":
            w = _assignee(want, self.case.file, line, email)
            a = None if actual is None else (actual["kind"], actual["name"])
            if w != a:
                self.fail(
                    what,
                    _show_assignee(w),
                    _show_assignee(a),
                    line,
                    reasons=self.assign_reasons(email),
                )
        elif key in ("fields", "category_scores"):
            if not isinstance(want, dict):
                raise TestFileError(self.case.file, line, f"{what}: a mapping")
            for name, value in want.items():
                have = (actual or {}).get(name)
                if not _same(value, have):
                    self.fail(
                        f"{email}: {key}.{name}",
                        value,
                        have,
                        _line(want, name, line),
                        reasons=self.field_reasons(email, name)
                        if key == "fields"
                        else self.category_reasons(email, name),
                    )
        elif key in ("created", "last_activity"):
            if not _same_time(want, actual):
                self.fail(what, want, actual, line)
        elif not _same(want, actual):
            if key in ("grade", "profile"):
                reasons = self.grade_reasons(email)
            elif key in _SET_BY:
                reasons = self.set_by_reasons(email, key)
            else:
                reasons = []
            self.fail(what, want, actual, line, reasons=reasons)

    def set_key(self, email: str, key: str, want: Any, actual: list[str], line: int | None) -> None:
        have = set(actual)
        if isinstance(want, dict):
            missing = [x for x in want.get("include") or () if x not in have]
            extra = [x for x in want.get("exclude") or () if x in have]
            ok = not missing and not extra
        else:
            missing = [x for x in want if x not in have]
            extra = [x for x in actual if x not in set(want)]
            ok = set(want) == have
        if ok:
            return
        reasons = []
        if key in ("lists", "dynamic_lists", "tags"):  # a dynamic list's joins are "add to list"
            ex = self.explained(email)
            label = "tag" if key == "tags" else "list"
            for r in ex["tags" if key == "tags" else "lists"]:
                if r["args"][label] in extra:
                    reasons.append(f"{r['args'][label]}: added by {self.cause(r)}")
            for name in missing:
                removed = [
                    r
                    for r in ex["rows"]
                    if r["action"] == f"remove {'from list' if label == 'list' else 'tag'}"
                    and r["args"].get(label) == name
                ]
                if removed:
                    reasons.append(f"{name}: removed by {self.cause(removed[-1])}")
                elif key == "dynamic_lists":
                    reasons.append(f"{name}: its criteria never held for this prospect")
                else:
                    reasons.append(f"{name}: no rule added it")
        self.fail(f"{email}: {key}", want, sorted(actual), line, reasons=reasons)

    def score_reasons(self, email: str) -> list[str]:
        ex = self.explained(email)
        out = []
        for r in ex["score"]:
            args = r["args"] or {}
            pts = f"= {r['after']}" if r["action"] == "set score" else f"{args.get('points', 0):+d}"
            what = args.get("activity") or r["rule"]["name"]
            if self.from_start(r):
                what = "starting score"
            out.append(f"{pts:>5}  {what}: {self.cause(r)}")
        return out or ["no rule changed the score"]

    def assign_reasons(self, email: str) -> list[str]:
        ex = self.explained(email)
        a = ex["assignment"]
        rows = [r for r in ex["rows"] if r["action"] == "assign"]
        out = []
        if a is not None:
            out.append(f"assigned to {a['args'].get('to')} {a['after']} by {self.cause(a)}")
        out += [
            f"assignment kept ({r['args'].get('name')}): {self.cause(r)}"
            for r in rows
            if r is not a
        ][:3]
        return out or ["no rule assigned this prospect"]

    def field_reasons(self, email: str, name: str) -> list[str]:
        ex = self.explained(email)
        rows = [
            r for r in ex["rows"] if r["action"] == "set field" and r["args"].get("field") == name
        ]
        return [
            f"{name} = {orjson.dumps(r['after']).decode()}: {self.cause(r)}" for r in rows[-3:]
        ] or [f"nothing set {name}"]

    def category_reasons(self, email: str, name: str) -> list[str]:
        """What changed scoring category `name`: the rule, or the activity on an asset in
        the category's folders, and the event (the last three), as `score` says."""
        rows = [
            r
            for r in self.explained(email)["rows"]
            if r["action"] == "category score" and (r["args"] or {}).get("category") == name
        ]
        return [
            f"{(r['args'] or {}).get('points', 0):+5d}  {name} = {r['after']}: {self.cause(r)}"
            for r in rows[-3:]
        ] or [f"nothing scored in category '{name}'"]

    def set_by_reasons(self, email: str, key: str) -> list[str]:
        """What last set `source_campaign`, `opted_out`, `crm_status` or `do_not_sync`."""
        action, none = _SET_BY[key]
        rows = [r for r in self.explained(email)["rows"] if r["action"] == action]
        if not rows:
            return [none]
        r = rows[-1]
        given = {k: v for k, v in (r["args"] or {}).items() if v is not None}
        args = f" {orjson.dumps(given).decode()}" if given else ""
        return [f"{action}{args}: {self.cause(r)}"]

    def grade_reasons(self, email: str) -> list[str]:
        ex = self.explained(email)
        rows = [r for r in ex["rows"] if r["action"] in ("grading", "change profile", "grade")]
        return [
            f"{r['action']} {orjson.dumps(r['args']).decode()}: {self.cause(r)}" for r in rows[-3:]
        ] or ["no rule changed the grade or profile"]

    # -- actions, outbox, CRM work, rule matches

    def records(self) -> list[dict[str, Any]]:
        from mrules.outputs import action_record

        if not hasattr(self, "_records"):
            self._records = [action_record(e) for e in self.res.ledger]
        return self._records

    def actions(self) -> None:
        expect = self.case.expect
        rows = self.records()
        items = expect.get("actions") or []
        lines = getattr(items, "item_lines", [])
        pos = 0
        for i, m in enumerate(items):
            line = lines[i] if i < len(lines) else None
            start = pos
            while pos < len(rows) and not _matches(m, rows[pos]):
                pos += 1
            if pos == len(rows):
                anywhere = [r for r in rows if _matches(m, r)]
                same = [r for r in rows if r["action"] == m.get("action")] if "action" in m else []
                reasons = []
                if anywhere and start:
                    reasons.append("it happened, but before the action expected just above it")
                reasons += [f"{_brief(r)}: {self.cause(r)}" for r in (anywhere or same)[:5]]
                if not anywhere and not same and "action" in m:
                    reasons.append(f"no '{m['action']}' action at all in this test")
                self.fail(f"actions[{i}]", _plain(m), "not taken", line, reasons=reasons)
                pos = start
            else:
                pos += 1
        items = expect.get("no_actions") or []
        lines = getattr(items, "item_lines", [])
        for i, m in enumerate(items):
            hits = [r for r in rows if _matches(m, r)]
            if hits:
                from mrules.diagnostics import plural

                self.fail(
                    f"no_actions[{i}]",
                    "not taken",
                    f"taken {plural(len(hits), 'time')}",
                    lines[i] if i < len(lines) else None,
                    reasons=[f"{_brief(r)}: {self.cause(r)}" for r in hits[:5]],
                )

    def messages(self, key: str, got: list[dict[str, Any]]) -> None:
        want = self.case.expect.get(key)
        if want is None:
            return
        ok = len(want) == len(got) and all(_partial(w, g) for w, g in zip(want, got, strict=False))
        if ok:
            return
        from mrules.diagnostics import plural

        what = "message" if key == "outbox" else "CRM work item"  # `crm` holds no messages
        reasons = [
            f"{_value(_brief_message(g))}: {g.get('rule', '?')}"
            f" ({_rule_location(self.case, g['at']) if g.get('at') else '?'})"
            for g in got[:10]
        ]
        self.fail(
            key,
            [_plain(w) for w in want],
            [_brief_message(g) for g in got],
            _line(self.case.expect, key),
            reasons=reasons,
            note=f"want {plural(len(want), what)}, got {len(got):,}"
            if len(want) != len(got)
            else None,
        )

    def rules(self) -> None:
        want = self.case.expect.get("rules")
        if not want:
            return
        counts: Counter[str] = Counter(
            r["rule"]["name"] for r in self.records() if r["action"] == "rule matched"
        )
        for name, n in want.items():
            if counts[name] != n:
                hits = [
                    r
                    for r in self.records()
                    if r["action"] == "rule matched" and r["rule"]["name"] == name
                ]
                reasons = [f"{r['prospect']}: {self.cause(r)}" for r in hits[:5]]
                if not hits:
                    matched = ", ".join(f"{k} ({v})" for k, v in sorted(counts.items())) or "none"
                    reasons.append(f"rules that matched: {matched}")
                self.fail(f"rules: {name}", n, counts[name], _line(want, name))

                self.failures[-1].reasons = reasons

    def rejects(self) -> None:
        want = self.case.expect.get("rejects")
        got = self.res.rejects
        if want is None:
            if got:
                r = got[0]
                line = (
                    self.case.event_lines[r.line - 1]
                    if 0 < r.line <= len(self.case.event_lines)
                    else None
                )
                raise TestFileError(
                    self.case.file,
                    line,
                    f"event {r.line} was rejected: {r.reason} (expect it with 'rejects:' if meant)",
                )
            return
        pairs = [(r.line, r.reason) for r in got]
        ok = [w["event"] for w in want] == [p[0] for p in pairs] and all(
            re.search(str(w.get("reason", "")), p[1]) for w, p in zip(want, pairs, strict=False)
        )
        if not ok:
            self.fail(
                "rejects",
                [_plain(w) for w in want],
                [{"event": n, "reason": t} for n, t in pairs],
                _line(self.case.expect, "rejects"),
            )


def _show_assignee(a: tuple[str, str] | None) -> str:
    return "unassigned" if a is None else f"{a[0]} {a[1]}"


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got or (want == got and type(want) is type(got))
    return want == got


def _same_time(want: Any, got: Any) -> bool:
    if want is None or got is None:
        return want == got
    try:
        return _epoch(str(want)) == _epoch(str(got))
    except ValueError:
        return False


def _partial(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            k in got and _partial(v, got[k]) for k, v in want.items()
        )
    if isinstance(want, str) and isinstance(got, str) and "@" in want and "@" in got:
        return want.strip().lower() == got.strip().lower()
    return _same(want, got)


def _matches(m: dict[str, Any], r: dict[str, Any]) -> bool:
    """Does an action-log record match a matcher (keys other than the known ones are args)?"""
    for key, value in m.items():
        if key == "action":
            if r["action"] != value:
                return False
        elif key == "prospect":  # as the store keys it: `JOSE\u0301@x` is `josé@x`
            if (r["prospect"] or "") != prospect_key(str(value)):
                return False
        elif key == "rule":
            if r["rule"]["name"] != value:
                return False
        elif key == "rule_kind":
            if r["rule"]["kind"] != value:
                return False
        elif key == "event":
            if r["event"]["line"] != value:
                return False
        elif key == "args":
            if not _partial(value, r["args"] or {}):
                return False
        elif not _partial(value, (r["args"] or {}).get(key, _MISSING)):
            return False
    return True


_MISSING = object()


def _brief(r: dict[str, Any]) -> str:
    args = {k: v for k, v in (r["args"] or {}).items() if v is not None}
    text = f"{r['action']} {orjson.dumps(args).decode()}" if args else r["action"]
    return f"{r['prospect']}: {text}" if r["prospect"] else text


def _brief_message(g: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in g.items() if k not in ("seq", "time", "rule", "at")}


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


# -------------------------------------------------------------------------- snapshots


def _snapshot_stem(case: Case) -> tuple[Path, str]:
    f = Path(case.path or case.file)
    stem = f.name
    for suffix in (*TEST_SUFFIXES, ".yaml", ".yml"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return f, stem


def _snapshot_path(case: Case) -> Path:
    f, stem = _snapshot_stem(case)
    return f.parent / SNAPSHOT_FOLDER / f"{stem}.json"


def _snapshot_sharer(case: Case) -> Path | None:
    """Another test file of the folder whose snapshots go to the same file (`x.test.yml`
    beside `x.test.yaml`) and that has a snapshot test of the same name: the entries are
    found by the test's name, so each would replace the other's."""
    f, stem = _snapshot_stem(case)
    for suffix in TEST_SUFFIXES:
        other = f.parent / f"{stem}{suffix}"
        if other.name == f.name:
            continue
        try:
            if not other.is_file() or other.samefile(f):
                continue
            cases = load_file(other)
        except (OSError, TestFileError):  # a broken file says so when it runs
            continue
        if any(c.name == case.name and c.expect.get("snapshot") for c in cases):
            return other
    return None


_AT = re.compile(r"^(.+):(\d+)$")


def _snapshot_state(res: _Result, folder: Path) -> list[dict[str, Any]]:
    """The final state, with rule locations relative to the test file (the same from any cwd)."""

    def fix(obj: Any, key: str | None = None) -> Any:
        if isinstance(obj, dict):
            return {k: fix(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [fix(v) for v in obj]
        if key == "at" and isinstance(obj, str):
            m = _AT.match(obj)
            if m and Path(m.group(1)).exists():
                rel = os.path.relpath(Path(m.group(1)).resolve(), folder.resolve())
                return f"{Path(rel).as_posix()}:{m.group(2)}"
        return obj

    return [fix(res.records[k]) for k in sorted(res.records)]


def _read_snapshots(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, orjson.JSONDecodeError) as e:
        raise TestFileError(str(path), None, f"cannot read the snapshot file: {e}") from None
    if not isinstance(data, dict):
        raise TestFileError(str(path), None, "the snapshot file must hold one JSON object")
    return data


def _check_snapshot_entry(path: Path, name: str, entry: Any) -> None:
    """A test's snapshot is a list of prospect records (JSON objects), as `--update` writes."""
    if isinstance(entry, list) and all(isinstance(r, dict) for r in entry):
        return
    if isinstance(entry, list):
        what = "a list of other values"
    else:
        what = {dict: "a JSON object", str: "a string", bool: "true or false"}.get(
            type(entry), "null" if entry is None else "a number"
        )
    raise TestFileError(
        str(path),
        None,
        f"the snapshot of '{name}' must be a list of prospect records (JSON objects), not"
        f" {what}: repair the file, or run `mrules test --update` to write it again",
    )


def _snapshot(checker: _Checker, update: bool, outcome: Outcome) -> None:
    case = checker.case
    if not case.expect.get("snapshot"):
        return
    path = _snapshot_path(case)
    sharer = _snapshot_sharer(case)
    if sharer is not None:
        raise TestFileError(
            case.file,
            _line(case.expect, "snapshot"),
            f"snapshot: {_printable(sharer.name)} beside this file keeps its snapshots in the"
            f" same file, {_printable(str(path))}, and has a snapshot test named"
            f" '{_printable(case.name)}' too: each would replace the other's; rename one of"
            " the two tests (or files)",
        )
    snaps = _read_snapshots(path)
    if case.name in snaps and not update:
        _check_snapshot_entry(path, case.name, snaps[case.name])
    actual = _snapshot_state(checker.res, Path(case.path or case.file).parent)
    if snaps.get(case.name) == actual:
        return
    if update:
        snaps[case.name] = actual
        data = orjson.dumps(snaps, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        try:  # whole or not at all, its mode kept, no temporary file left behind
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, data)
        except OSError as e:
            folder = path.parent if path.parent.is_dir() else path.parent.parent
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                advice = "the disk is full: free some space, then run the same command again"
            else:
                advice = (
                    f"make {_printable(str(folder))} (and the snapshot file, if there is one)"
                    " writable"
                )
            raise SnapshotWriteError(
                _printable(str(path)),
                None,
                f"cannot write the snapshot: {e.strerror or e}; {advice}, or run without --update",
            ) from None
        outcome.updated = True
        return
    line = _line(case.expect, "snapshot")
    if case.name not in snaps:
        checker.fail(
            "snapshot",
            f"the state in {path}",
            "no snapshot yet",
            line,
            note="run `mrules test --update` to write it, then read and commit it",
        )
        return
    diff = _snapshot_diff(snaps[case.name], actual)
    if len(diff) > 20:
        from mrules.diagnostics import plural

        diff[20:] = [f"... and {plural(len(diff) - 20, 'more difference')}"]
    checker.fail(
        "snapshot",
        f"the state in {path}",
        "a different state",
        line,
        reasons=diff,
        note="if the change is intended: `mrules test --update`, then read the diff",
    )


_NONE = object()  # a key one side does not have


def _snapshot_diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Each difference as `EMAIL: KEY: SNAPSHOT -> ACTUAL` (a nested key dotted:
    `fields.lead_source`). A whole prospect record a line, its keys in two orders (the
    file's sorted, the state's as exported), showed every prospect whole and hid what
    changed."""

    def by_email(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i, r in enumerate(records):
            email = r.get("email")
            out[email if isinstance(email, str) else f"record {i + 1}"] = r
        return out

    def shown(value: Any) -> str:
        return "(none)" if value is _NONE else orjson.dumps(value).decode()

    def changed(a: dict[str, Any], b: dict[str, Any], prefix: str) -> Iterator[str]:
        for key in sorted(a.keys() | b.keys()):
            va, vb = a.get(key, _NONE), b.get(key, _NONE)
            if va == vb:
                continue
            if isinstance(va, dict) and isinstance(vb, dict):
                yield from changed(va, vb, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}: {shown(va)} -> {shown(vb)}"

    a, b = by_email(old), by_email(new)
    lines = []
    for email in sorted(a.keys() | b.keys()):
        if email not in b:
            lines.append(f"{email}: in the snapshot, not in the actual state")
        elif email not in a:
            lines.append(f"{email}: in the actual state, not in the snapshot")
        else:
            lines += [f"{email}: {d}" for d in changed(a[email], b[email], "")]
    return lines


# --------------------------------------------------------------------------- the run


def _evaluate(case: Case, rules: _Rules, update: bool) -> Outcome:
    from mrules.api import RuleSetError

    started = time.perf_counter()
    outcome = Outcome(case.file, case.name, case.line, "pass")
    if case.skip is not None:
        outcome.status, outcome.message = "skip", case.skip
        return outcome
    try:
        res = run_case(case, rules)
        checker = _Checker(case, res)
        checker.rejects()
        checker.prospects()
        checker.actions()
        checker.messages("outbox", res.outbox)
        checker.messages("crm", res.crm)
        checker.rules()
        _snapshot(checker, update, outcome)
    except RuleSetError as e:
        outcome.status = "error"
        errors = _rule_errors(case, e)
        outcome.message = f"{case.file}:{case.rules_line}: the rules have errors:\n{errors}"
    except TestFileError:
        raise
    except Exception as e:  # the run itself failed: report it on the case, never a traceback
        from mrules.events import EventSourceError

        _reraise_interrupt(e)
        if not isinstance(e, EventSourceError | OSError | ValueError):
            raise
        outcome.status = "error"
        outcome.message = f"{case.file}:{case.line}: {type(e).__name__}: {e}"
    else:
        outcome.failures = checker.failures
        if checker.failures:
            outcome.status = "fail"
    outcome.seconds = time.perf_counter() - started
    return outcome


def _selected(case: Case, keywords: Sequence[str]) -> bool:
    if not keywords:
        return True
    text = case.id.lower()  # its file as shown: `-k 'bad\xff'` as well as `-k $'bad\xff'`
    return any(_printable(k).lower() in text for k in keywords)


def _reraise_interrupt(error: BaseException) -> None:
    """Raise the Ctrl-C (or SIGTERM) behind `error`, if one is: pydantic turns one met in
    a serializer into a PydanticSerializationError (a ValueError) caused by it."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            raise e
        seen.add(id(e))
        e = e.__cause__ or e.__context__


@contextlib.contextmanager
def _noticing_interrupts() -> Iterator[list[int]]:
    """Remember each Ctrl-C and SIGTERM whose handler raised, in the list yielded.

    The handlers raise as before, but the exception can be lost on its way: pydantic
    wraps it in a ValueError, a library may swallow it. The run checks the list after
    each test, so an interrupt always ends it (exit 130), never a test's error or pass.
    A signal whose handler is not Python's (SIG_DFL, SIG_IGN) or a run outside the main
    thread is left as it is.
    """
    seen: list[int] = []
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        handler = previous[signum]
        try:
            handler(signum, frame)
        except BaseException:
            seen.append(signum)
            raise

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):  # not the main thread
            current = signal.getsignal(sig)
            if callable(current):
                signal.signal(sig, on_signal)
                previous[int(sig)] = current
    try:
        yield seen
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, handler)


def _stop_if_interrupted(seen: list[int]) -> None:
    if seen:
        raise KeyboardInterrupt


def run_paths(
    paths: Sequence[str],
    keywords: Sequence[str] = (),
    *,
    update: bool = False,
    loaded: Loaded | None = None,
    progress: Progress | None = None,
) -> Report:
    """Find, load and run the test files under `paths`; `keywords` select cases (-k);
    `loaded`: the test files `input_files` read; `progress(total)`: a context of the
    tests that will run, whose value is called with each test's name once it has run.

    Raises:
        KeyboardInterrupt: Ctrl-C or SIGTERM came, wherever it was met (`_noticing_interrupts`).
    """
    with _noticing_interrupts() as seen:
        try:
            report = _run_paths(paths, keywords, update, seen, loaded, progress)
        except Exception as e:
            _reraise_interrupt(e)
            _stop_if_interrupted(seen)
            raise
        _stop_if_interrupted(seen)
    return report


def _run_paths(
    paths: Sequence[str],
    keywords: Sequence[str],
    update: bool,
    seen: list[int],
    loaded: Loaded | None,
    progress: Progress | None = None,
) -> Report:
    started = time.perf_counter()
    report = Report(keywords=tuple(keywords))
    rules = _Rules()
    unreadable: list[TestFileError] = []  # a folder below them: reported as a broken file
    files, bad = _find_test_files(paths or ["."], unreadable)
    if bad:  # a path of the command line that cannot be used (a typo): a usage error, as
        # pytest makes it; every such path is named, and no test runs
        for e in bad:
            report.outcomes.append(Outcome(e.path, "(file)", None, "error", message=str(e)))
        report.broken_files += len(bad)
        report.bad_paths = len(bad)
        files, unreadable = [], []
    report.files = files
    read = [(f, _load_file_once(f, loaded)) for f in files]
    read += [(e.path, e) for e in unreadable]
    total = sum(
        1
        for _, cases in read
        if not isinstance(cases, TestFileError)
        for case in cases
        if _selected(case, keywords)
    )
    with progress(total) if progress else contextlib.nullcontext(_no_progress) as advance:
        _run_read(read, keywords, update, seen, report, rules, advance)
    report.seconds = time.perf_counter() - started
    return report


def _no_progress(name: str) -> None:
    pass


def _run_read(
    read: list[tuple[str, list[Case] | TestFileError]],
    keywords: Sequence[str],
    update: bool,
    seen: list[int],
    report: Report,
    rules: _Rules,
    advance: Callable[[str], None],
) -> None:
    """Run the selected cases of the files read, in order, into `report`."""
    for _f, cases in read:
        if isinstance(cases, TestFileError):
            e = cases
            _stop_if_interrupted(seen)
            report.outcomes.append(Outcome(e.path, "(file)", e.line, "error", message=str(e)))
            report.broken_files += 1
            continue
        report.found += len(cases)
        for case in cases:
            if not _selected(case, keywords):
                continue
            report.selected += 1
            try:
                outcome = _evaluate(case, rules, update)
            except TestFileError as e:
                outcome = Outcome(case.file, case.name, case.line, "error", message=str(e))
                if isinstance(e, SnapshotWriteError):
                    report.unwritable += 1
                else:
                    report.broken_files += 1
            _stop_if_interrupted(seen)  # before the outcome counts: it may be the interrupt's
            report.outcomes.append(outcome)
            advance(_printable(case.name))


# ------------------------------------------------------------------------- rendering


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    return orjson.dumps(_plain(v)).decode()


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "text"
    return "list" if isinstance(v, list) else "mapping" if isinstance(v, dict) else "value"


def _typed(v: Any) -> str:
    """A value with its type: `"1" (text)`, `1 (number)`, `NaN (number)`."""
    if isinstance(v, float) and not math.isfinite(v):
        shown = "NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity"
    else:
        shown = orjson.dumps(_plain(v), default=str).decode()
    return f"{shown} ({_kind(v)})"


def _hides(shown: str) -> bool:
    """Whether printed text may hide what tells it apart: a space at an end, or a character
    that does not show (a tab, a no-break space, a control character)."""
    shown = _printable(shown)  # a path's byte that is not UTF-8 shows, as `\xNN`
    return shown[:1] == " " or shown[-1:] == " " or not shown.isprintable()


def _quoted(v: Any) -> str:
    r"""A value as JSON, with every character that does not show escaped.

    >>> print(_quoted("New\u00a0York "))
    "New\u00a0York "
    """
    text = orjson.dumps(_printable_data(_plain(v)), default=str).decode()
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in text)


def _shown_pair(expected: Any, actual: Any) -> tuple[str, str]:
    """Expected and actual as a failure prints them; with their types when the plain text
    of both is the same (`expected: 1 / actual: 1` for "1" against 1 says nothing), and
    quoted, escaped, when it may hide the difference (`Acme` against `Acme `)."""
    e, a = _value(expected), _value(actual)
    if e == a:
        return _typed(expected), _typed(actual)
    if _hides(e) or _hides(a):
        return _quoted(expected), _quoted(actual)
    return e, a


NO_TESTS = "no tests found (test files end in .test.yaml)"
"""Why no test ran when the paths hold none."""


def render_text(report: Report, *, verbose: bool = False) -> str:
    """The report for a terminal: failures in full, passes as one line each with -v."""
    from mrules.diagnostics import plural

    out: list[str] = []
    current = None
    for o in report.outcomes:
        if o.file != current:
            current = o.file
            out.append(o.file)
        if o.status == "pass" and not verbose and not o.updated:
            continue
        mark = {"pass": "PASS", "fail": "FAIL", "error": "ERROR", "skip": "SKIP"}[o.status]
        where = f":{o.line}" if o.line else ""
        extra = " (snapshot updated)" if o.updated else ""
        out.append(f"  {mark:5} {o.name} [{o.file}{where}]{extra}")
        if o.message:
            out += [f"        {line}" for line in o.message.splitlines()]
        for f in o.failures:
            at = f"{o.file}:{f.line}: " if f.line else ""
            out.append(f"        {at}{f.what}")
            expected, actual = _shown_pair(f.expected, f.actual)
            out.append(f"          expected: {expected}")
            out.append(f"          actual:   {actual}")
            if f.note:
                out.append(f"          {f.note}")
            if f.reasons:
                out.append("          because:")
                out += [f"            {r}" for r in f.reasons]
    c = report.counts()
    parts = [f"{c['pass']} passed"]
    for key, word in (("fail", "failed"), ("error", "errors"), ("skip", "skipped")):
        if c[key]:
            parts.append(f"{c[key]} {'error' if word == 'errors' and c[key] == 1 else word}")
    if not report.outcomes:
        parts = [NO_TESTS]
    if report.none_found:
        out.append(f"no tests run: {NO_TESTS}")
    elif report.bad_paths:  # refused before any test ran, as pytest refuses a missing path
        paths = plural(report.bad_paths, "path")
        out.append(f"no tests run: {paths} above cannot be used")
    elif report.unmatched:  # the errors of broken files, then why no test ran
        out.append(", ".join([*parts[1:], f"no tests run: {report.unmatched}"]))
    else:
        out.append(f"{', '.join(parts)} in {report.seconds:.2f} s")
    # no control character steers the terminal, nor a newline in a name splits its line
    return "\n".join(printable(_printable(line)) for line in out)


def render_json(report: Report) -> bytes:
    c = report.counts()
    doc = {
        "tests": [o.as_dict() for o in report.outcomes],
        "summary": {
            "passed": c["pass"],
            "failed": c["fail"],
            "errors": c["error"],
            "skipped": c["skip"],
            "files": len(report.files),
            "seconds": round(report.seconds, 6),
            "exit": report.exit_code,
        },
    }
    return (
        orjson.dumps(
            _printable_data(doc),
            option=orjson.OPT_INDENT_2,
            default=lambda v: _printable(str(v)),
        )
        + b"\n"
    )


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str) -> str:
    return _XML_BAD.sub("\ufffd", _printable(text))


def _headline(f: Failure) -> str:
    expected, actual = _shown_pair(f.expected, f.actual)
    return f"{f.what}: expected {expected}, got {actual}"[:500]


def _error_headline(message: str | None) -> str:
    """An error's first line for JUnit's `message`; one that ends with ':' (`the rules
    have errors:`) is said with the line it introduces, the first error itself."""
    lines = (message or "").splitlines()
    if not lines:
        return "error"
    head = lines[0]
    if head.endswith(":") and len(lines) > 1:
        head = f"{head} {lines[1].strip()}"
    return head[:500]


def render_junit(report: Report) -> bytes:
    """JUnit XML, one `testsuite` a test file, as CI systems read it."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="mrules test")
    by_file: dict[str, list[Outcome]] = {}
    for o in report.outcomes:
        by_file.setdefault(o.file, []).append(o)
    totals: Counter[str] = Counter()
    for file, outcomes in by_file.items():
        c = Counter(o.status for o in outcomes)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml_text(file),
            tests=str(len(outcomes)),
            failures=str(c["fail"]),
            errors=str(c["error"]),
            skipped=str(c["skip"]),
            time=f"{sum(o.seconds for o in outcomes):.6f}",
        )
        for o in outcomes:
            tc = ET.SubElement(
                suite,
                "testcase",
                classname=_xml_text(file),
                name=_xml_text(o.name),
                time=f"{o.seconds:.6f}",
                file=_xml_text(file),
                line=str(o.line or 0),
            )
            if o.status == "fail":
                first = o.failures[0]
                el = ET.SubElement(
                    tc,
                    "failure",
                    message=_xml_text(_headline(first)),
                    type="AssertionError",
                )
                single = Report([o], [file])
                el.text = _xml_text(render_text(single).split("\n", 1)[1].rsplit("\n", 1)[0])
            elif o.status == "error":
                el = ET.SubElement(
                    tc,
                    "error",
                    message=_xml_text(_error_headline(o.message)),
                    type="TestFileError",
                )
                el.text = _xml_text(o.message or "")
            elif o.status == "skip":
                ET.SubElement(tc, "skipped", message=_xml_text(o.message or ""))
        totals.update(c)
        totals["tests"] += len(outcomes)
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["fail"]))
    root.set("errors", str(totals["error"]))
    root.set("skipped", str(totals["skip"]))
    root.set("time", f"{report.seconds:.6f}")
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
