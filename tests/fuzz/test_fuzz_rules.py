"""Fuzzing rule files through every stage: the only outcomes are diagnostics or success.

Each input text goes through what the commands do, in-process for speed:
load (`load_text`), check (`check_loaded`) and every diagnostic renderer (text,
JSON, GitHub, SARIF; the output must encode as strict UTF-8, as a terminal or a
pipe takes it), `fmt` (`format_text` with its verification), `parse --format
json` (the AST dump, serialised), and for a rule set without errors, `compile`
and a one-event run into a fresh store, with the clock moved past every timer.
An exception from any stage is a failure; so is an error-free rule set that
does not compile, or a `fmt` output that does not mean what its input meant.

Four kinds of input:

* grammar-generated: random sentences of the grammar (`_Sentences`, an expansion
  of `grammar/mrules.lark` driven by a seeded `random.Random`), with terminals drawn
  from edge values (the limits, one past them, escapes, surrogates, NUL, long names),
  plus hypothesis' `from_lark` and the AST strategies of tests/strategies.py;
* mutated: corpus files (tests, examples, the library) with character, byte-level
  and token edits (delete, insert, duplicate, swap), and *value* mutations that keep
  the syntax and the names (numbers swapped for edge values, strings given odd
  characters) so that they reach `compile` and the run;
* pathological: deep nesting around the limit and far past it, huge literals,
  100,000 lines, long lines, unusual code points, NUL, CRLF, BOM, invalid UTF-8;
* a few runs of the real command line on the nastiest of them.

The default run is short. `pytest -m slow tests/fuzz/test_fuzz_rules.py` runs the
long one: `MRULES_FUZZ_RULES` inputs (default 200,000), `MRULES_FUZZ_SEED` picks the
seed, and it prints how many inputs of each kind ran and what each stage saw.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

from mrules import ast
from mrules.checker import CODES, check_loaded
from mrules.compiler import compile_program
from mrules.diagnostics import render_github, render_json, render_sarif, render_text
from mrules.engine import Engine
from mrules.events import Event, parse_line
from mrules.loader import LoadError, decode, load_text
from mrules.memstore import MemoryStore
from mrules.parser import MAX_NESTING, grammar_text
from mrules.printer import FormatError, FormatterBug, format_file, format_text
from mrules.store import Store
from strategies import files

ROOT = Path(__file__).resolve().parents[2]
CORPUS_FILES = sorted(
    {
        *ROOT.glob("tests/grammar/valid/*.mr"),
        *ROOT.glob("tests/grammar/invalid/*.mr"),
        *ROOT.glob("tests/fmt/**/*.mr"),
        *ROOT.glob("examples/**/*.mr"),
        *ROOT.glob("rules/*.mr"),
        *ROOT.glob("tests/engine/cases/**/*.mr"),
    }
)
CORPUS = [p.read_text("utf-8") for p in CORPUS_FILES]
EVENT_TS = "2026-11-02T09:00:00Z"
INCLUDE_CODES = {"MR020", "MR021", "MR022", "MR023", "MR024"}


# ------------------------------------------------------------------ the stages


class Outcome:
    DIAGNOSTICS = "diagnostics"
    CLEAN = "clean"  # no errors: compiled and run
    FMT_DECLINED = "diagnostics, fmt declined"  # lint errors, and fmt's check refused


@functools.cache
def _store_dir() -> Path:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="mrules-fuzz-", dir=base))


_runs = iter(range(10**12))


def _events_for(program: ast.Program) -> list[Event]:
    """One event the rules react to: a submit of a declared asset, or a view of a page."""
    assets = [i for f in program.files for i in f.items if isinstance(i, ast.AssetDecl)]
    pages = [i for f in program.files for i in f.items if isinstance(i, ast.PageAction)]
    kinds = {
        "form": "form_submit",
        "form handler": "form_handler_submit",
        "landing page": "landing_page_submit",
        "file": "file_download",
        "custom redirect": "custom_redirect_click",
        "email": "email_click",
    }
    line: dict[str, object] = {"ts": EVENT_TS, "prospect": "Fuzz@Example.com "}
    if assets:
        a = assets[len(assets) // 2]
        line.update(type=kinds[a.asset_kind], asset=a.name.text, fields={"company": "Acme"})
    else:
        url = pages[0].url.text.replace("*", "x") if pages else "https://example.com/"
        line.update(type="page_view", url=url if "://" in url else "https://" + url)
    item = parse_line(json.dumps(line).encode("utf-8"), 1)
    return [item] if isinstance(item, Event) else []


def _kept(store: Store | MemoryStore) -> tuple[object, ...]:
    """What a store keeps of a run: prospects, history (activities and ledger), outbox."""
    return (
        sorted(store.prospects()),
        list(store.activities()),
        list(store.ledger()),
        list(store.outbox()),
        list(store.crm_pending()),
    )


def _run_once(program: ast.Program, sources: dict) -> None:  # type: ignore[type-arg]
    """Compile and run one event into a fresh SQLite store, and into the in-memory store:
    each keeps exactly what the other does (a simpler model of the same reads)."""
    compiled = compile_program(program, sources)
    later = parse_line(b'{"ts":"2036-11-02T09:00:00Z","type":"tick"}', 2)
    assert isinstance(later, Event)
    kept = []
    path = _store_dir() / f"s{next(_runs)}.db"
    for store in (Store.open(path), MemoryStore()):
        try:
            engine = Engine(compiled, store, source="fuzz.jsonl")
            engine.start()
            engine.run(_events_for(program), now=later.ts_epoch)
            kept.append(_kept(store))
        finally:
            store.close()
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    assert kept[0] == kept[1], "the SQLite and in-memory stores keep different things"


def through_every_stage(text: str, *, run: bool = True) -> str:
    """Put one rule file's text through every stage; an exception is a finding."""
    result = load_text(text, "fuzz.mr")
    diags = check_loaded(result)
    for rendered in (
        render_text(diags, result.sources),
        render_json(diags, result.sources),
        render_github(diags, result.sources),
        render_sarif(diags, result.sources, CODES),
    ):
        rendered.encode("utf-8")  # strict, as click writes to a UTF-8 stream
        assert "\x1b" not in rendered or rendered.startswith("[")  # JSON escapes it itself
    parse_errors = [d for d in result.diagnostics if d.is_error]
    for d in diags:
        src = result.sources.get(d.path)
        assert src is None or 0 <= d.start <= d.end <= len(src.text), d
    try:
        formatted = format_text(text, "fuzz.mr", verify=True)
    except FormatterBug:
        # `mrules fmt` reports this and leaves the file alone; on a rule set lint rejects
        # (a setting named like a keyword, say) it is fmt declining, on a clean one a bug.
        assert any(d.is_error for d in diags), "fmt cannot format a rule set lint accepts"
        return Outcome.FMT_DECLINED
    except FormatError:
        assert parse_errors or any(d.path == "fuzz.mr" for d in result.diagnostics)
    else:  # fmt refuses exactly the texts with syntax errors (includes are not its business)
        assert not [
            d
            for d in result.diagnostics
            if d.is_error and d.path == "fuzz.mr" and d.code not in INCLUDE_CODES
        ]
        again = load_text(formatted, "fuzz.mr")
        assert not [
            d
            for d in again.diagnostics
            if d.is_error and d.path == "fuzz.mr" and d.code not in INCLUDE_CODES
        ], "fmt wrote a file that no longer parses"
    if not parse_errors:
        dumped = json.dumps(ast.dump(result.program, spans=True), ensure_ascii=False)
        dumped.encode("utf-8")
    if any(d.is_error for d in diags):
        return Outcome.DIAGNOSTICS
    if run:
        _run_once(result.program, result.sources)
    return Outcome.CLEAN


def through_bytes(data: bytes, *, run: bool = True) -> str:
    """Bytes as the loader reads a file: not UTF-8 is a LoadError (exit 2), never a crash."""
    try:
        text = decode(data, "fuzz.mr")
    except LoadError:
        return Outcome.DIAGNOSTICS
    return through_every_stage(text, run=run)


# ------------------------------------------------------------ edge values

EDGE_INTS = [
    "0",
    "1",
    "7",
    "30",
    "100",
    "9007199254740991",
    "9007199254740992",
    "18446744073709551616",
    "0" * 40 + "1",
    "9" * 4301,
]
EDGE_SIGNED = [
    "+0",
    "-1",
    "+25",
    "-10",
    "+9007199254740991",
    "-9007199254740991",
    "-9007199254740992",
    "+" + "9" * 30,
]
EDGE_NUMBERS = [
    "1",
    "-2.5",
    "0.0",
    "250",
    "9007199254740991",
    "-9007199254740992",
    "9" * 99 + ".5",
    "9" * 100 + ".5",
    "1." + "0" * 500 + "1",
    "-" + "9" * 4301,
]
EDGE_STRINGS = [
    '"MQL"',
    '""',
    '"a\\"b"',
    '"caf\\u00e9"',
    '"\\n\\t\\\\"',
    '"x*"',
    '"getcloudy.com/*"',
    '"\\ud83c\\udf89"',
    '"\\ud800"',
    '"\\udfff"',
    '"a\\u0000b"',
    '"\\u001b[31m"',
    '"\\u0085"',
    '"\\u202e"',
    '"\\ufeff"',
    '"\ufffe"',
    '"' + "x" * 300 + '"',
    '"library/pardot-default-scoring"',
    '"library/nope"',
    '"../out"',
    '"/etc/passwd"',
    '"a/b/c"',
    '"\U0001f600 日本"',
    '"\x7f\x01"',
    '"\\u0000"',
]
NAMES = ["company", "score", "status", "x", "_a1", "email", "n", "size", "on", "days"]


def _terminal_samples() -> dict[str, list[str]]:
    return {
        "INT": EDGE_INTS,
        "SIGNED_INT": EDGE_SIGNED,
        "NUMBER": EDGE_NUMBERS,
        "STRING": EDGE_STRINGS,
        "NAME": NAMES,
        "TIMESTAMP": [
            "2026-01-02",
            "2026-02-30",
            "2026-01-02T09:30Z",
            "9999-12-31T23:59:59Z",
            "0000-01-01",
            "2026-01-02T09:30:00+01:00",
        ],
        "WEIGHT": ["1/3", "2/3", "3/3"],
        "GRADE": ["F", "D-", "C", "B+", "A+"],
        "COMPARE": ["<", "<=", ">", ">="],
        "_DAYS": ["days", "day"],
        "_TIMES": ["times", "time"],
        "_MINUTES": ["minutes", "minute"],
    }


class _Sentences:
    """Random sentences of the grammar, expanded without recursion, depth-bounded."""

    def __init__(self) -> None:
        lark = Lark(grammar_text(), parser="lalr", lexer="contextual")
        self.rules: dict[str, list[list[tuple[bool, str]]]] = {}
        for rule in lark.rules:
            self.rules.setdefault(rule.origin.name, []).append(
                [(sym.is_term, sym.name) for sym in rule.expansion]
            )
        self.shortest = {
            name: min(options, key=lambda e: sum(not t for t, _ in e))
            for name, options in self.rules.items()
        }
        self.literals = {t.name: t.pattern.value for t in lark.terminals if t.pattern.type == "str"}
        self.samples = _terminal_samples()

    def __call__(self, rng: random.Random, max_depth: int = 18) -> str:
        out: list[str] = []
        stack: list[tuple[bool, str, int]] = [(False, "start", 0)]
        while stack:
            is_term, name, depth = stack.pop()
            if is_term:
                out.append(self.literals.get(name) or rng.choice(self.samples[name]))
                continue
            options = self.rules[name]
            expansion = self.shortest[name] if depth > max_depth else rng.choice(options)
            stack.extend((t, n, depth + 1) for t, n in reversed(expansion))
        sep = rng.choice([" ", "\n", " ", "\t", "\r\n"])
        return sep.join(out)


# ------------------------------------------------------------------ mutations

_TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|[+-]?[0-9]+(?:\.[0-9]+)?|[A-Za-z_]+|\S')
_NUMBER_RE = re.compile(r"(?<![\w.\"-])[+-]?[0-9]+(?:\.[0-9]+)?(?![\w.-])")
_STRING_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_INSERTS = [
    '"',
    "{",
    "}",
    ";",
    "\n",
    "\\",
    "#",
    "*",
    "<->",
    "\x00",
    "\ufeff",
    "é",
    "\r",
    "all {",
    "any {",
    "not ",
    "priority",
    "2026-13-40",
    "+",
    "-",
    "/",
    "\ud800",
    "\U0001f600",
    "\u202e",
    "\x1b",
    "9" * 30,
    " " * 200,
]


def mutate_chars(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 4)):
        n = len(text)
        i = rng.randint(0, n)
        j = rng.randint(i, min(n, i + 40))
        op = rng.randrange(4)
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            text = text[:i] + rng.choice(_INSERTS) + text[i:]
        elif op == 2:
            text = text[:j] + text[i:j] + text[j:]
        elif n >= 2:
            a, b = sorted((min(i, n - 1), rng.randrange(n)))
            text = text[:a] + text[b] + text[a + 1 : b] + text[a] + text[b + 1 :]
    return text


def mutate_tokens(rng: random.Random, text: str) -> str:
    tokens = _TOKEN_RE.findall(text)
    if not tokens:
        return text
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(tokens))
        op = rng.randrange(4)
        if op == 0:
            del tokens[i]
        elif op == 1:
            tokens.insert(i, rng.choice(tokens))
        elif op == 2:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i : i + 1] = [tokens[i]] * rng.randint(2, 5)
        if not tokens:
            return ""
    return " ".join(tokens)


def mutate_values(rng: random.Random, text: str) -> str:
    """Numbers to edge values, strings of unknown meaning to odd characters: names hold."""
    numbers = list(_NUMBER_RE.finditer(text))
    for m in rng.sample(numbers, min(len(numbers), rng.randint(1, 3))):
        old = m.group()
        pool = EDGE_SIGNED if old[0] in "+-" else EDGE_INTS if "." not in old else EDGE_NUMBERS
        new = rng.choice(pool)
        text = text[: m.start()] + new + text[m.end() :]
        break  # offsets moved: one value a pass
    if rng.random() < 0.3:
        strings = list(_STRING_RE.finditer(text))
        if strings:
            m = rng.choice(strings)
            text = text[: m.start()] + rng.choice(EDGE_STRINGS) + text[m.end() :]
    return text


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        i = rng.randint(0, len(data))
        op = rng.randrange(3)
        if op == 0:
            data = data[:i] + bytes([rng.randrange(256)]) + data[i:]
        elif op == 1 and data:
            data = data[:i] + data[i + 1 :]
        else:
            data = (
                data[:i]
                + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\r\n"])
                + data[i:]
            )
    if rng.random() < 0.2:
        data = b"\xef\xbb\xbf" + data
    return data


# -------------------------------------------------------------- pathological


def _deep(kind: str, depth: int) -> str:
    if kind == "not":
        crit = "not " * depth + 'in list "L"'
    elif kind == "mixed":
        crit = "".join(
            ("not " if i % 3 == 2 else "any { " if i % 2 else "all { ") for i in range(depth)
        )
        closes = sum(1 for i in range(depth) if i % 3 != 2)
        crit += 'in list "L"' + " }" * closes
    else:
        crit = f"{kind} {{ " * depth + 'in list "L"' + " }" * depth
    return (
        f'list "L"\nform "F"\nautomation rule "R" priority 1 {{\n  when all {{ {crit} }}\n'
        f'  then {{ add to list "L" }}\n}}\n'
        f'on submit of form "F" {{\n  if {crit} {{ score +1 }}\n}}\n'
    )


def pathological(heavy: bool = True) -> Iterator[tuple[str, str | bytes]]:
    """(label, text or bytes) of inputs built to break limits; `heavy` adds the big ones."""
    if heavy:
        yield "lines-100k", 'list "L"\n' + "# a comment\n" * 50_000 + 'tag "T"\n' * 50_000
        yield "items-20k", "".join(f'list "L{i}"\n' for i in range(20_000))
        yield "line-1M", 'list "' + "x" * 1_000_000 + '"\n'
        yield "int-100000", f'automation rule "R" priority {"9" * 100_000} {{ }}'
        yield "deep-mixed-20000", _deep("mixed", 20000)
        yield "deep-not-20000", _deep("not", 20000)
    for depth in (*range(MAX_NESTING - 3, MAX_NESTING + 3), 100, 124, 247, 250, 1000):
        for kind in ("all", "any", "not", "mixed"):
            yield f"deep-{kind}-{depth}", _deep(kind, depth)
    for digits in (15, 16, 17, 20, 300, 4300, 4301):
        big = "9" * digits
        yield (
            f"int-{digits}",
            f'automation rule "R" priority {big} {{ when all {{ score > {big} }} }}',
        )
        yield f"signed-{digits}", f'form "F"\non submit of form "F" {{ score -{big} }}'
        yield (
            f"decimal-{digits}",
            f'field n: number\nsegmentation rule "S" {{ when all {{ n > {big}.{big} }} }}',
        )
    yield "string-escapes", 'list "' + "\\u00e9" * 50_000 + '"\n'
    yield "unclosed-long", 'list "' + "x" * 200_000
    for cp in (
        0x0,
        0x7,
        0x1B,
        0x7F,
        0x85,
        0xA0,
        0x200B,
        0x202E,
        0x2028,
        0xFEFF,
        0xFFFE,
        0xFFFF,
        0x10FFFF,
        0x1F600,
        0xD800,
        0xDFFF,
    ):
        units = chr(cp).encode("utf-16-be", "surrogatepass")
        esc = "".join(
            f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2)
        )
        yield (
            f"escape-{cp:x}",
            f'tag "a{esc}b"\nform "F"\non submit of form "F" {{ add tag "a{esc}b" }}\n',
        )
        if not 0xD800 <= cp <= 0xDFFF:
            raw = chr(cp)
            yield f"raw-{cp:x}", f'tag "a{raw}b"\n{raw}list "L"{raw}\n'
    base = CORPUS[0] if CORPUS else 'list "L"\n'
    yield "bom", b"\xef\xbb\xbf" + base.encode()
    yield "crlf", base.replace("\n", "\r\n").encode()
    yield "cr-only", base.replace("\n", "\r").encode()
    yield "nul-bytes", base.encode().replace(b" ", b"\x00")
    yield "latin-1", 'list "café"'.encode("latin-1")
    yield "utf8-surrogate", b'list "\xed\xa0\x80"'
    yield "overlong", b'list "\xc0\xaf"'
    yield "utf16", base.encode("utf-16")
    yield "empty", ""
    yield "only-bom", b"\xef\xbb\xbf"
    yield "include-long", 'include "' + "a" * 5000 + '"'
    yield "include-nul", 'include "a\\u0000b"'
    yield "include-library-nul", 'include "library/a\\u0000b"'
    yield "include-library-dots", 'include "library/.."'


# ------------------------------------------------------------------ the runner


def _sources(rng: random.Random, sentences: _Sentences) -> Iterator[tuple[str, str | bytes]]:
    """An endless mix of generated and mutated inputs, seeded."""
    corpus = CORPUS or ['list "L"\n']
    while True:
        roll = rng.random()
        base = rng.choice(corpus)
        if roll < 0.25:
            yield "grammar", sentences(rng, rng.choice((6, 12, 18, 30)))
        elif roll < 0.45:
            yield "chars", mutate_chars(rng, base)
        elif roll < 0.6:
            yield "tokens", mutate_tokens(rng, base)
        elif roll < 0.9:
            text = base
            for _ in range(rng.randint(1, 3)):
                text = mutate_values(rng, text)
            yield "values", text
        else:
            yield "bytes", mutate_bytes(rng, base.encode("utf-8"))


class Tally:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.failures: list[tuple[str, str | bytes, str]] = []

    def feed(self, kind: str, data: str | bytes, *, run: bool = True) -> None:
        self.kinds[kind] += 1
        try:
            if isinstance(data, bytes):
                outcome = through_bytes(data, run=run)
            else:
                outcome = through_every_stage(data, run=run)
        except Exception as e:  # the finding: keep it with its input
            self.outcomes["EXCEPTION"] += 1
            if len(self.failures) < 50:
                self.failures.append((kind, data, f"{type(e).__name__}: {e}"[:300]))
        else:
            self.outcomes[outcome] += 1

    def report(self) -> str:
        lines = [
            f"inputs: {sum(self.kinds.values()):,}",
            "by kind: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.kinds.items())),
            "outcomes: " + ", ".join(f"{k} {v:,}" for k, v in sorted(self.outcomes.items())),
        ]
        for kind, data, error in self.failures[:10]:
            lines.append(f"  {kind}: {error}\n    input: {data[:200]!r}")
        return "\n".join(lines)


def fuzz(count: int, seed: int, *, run_every: int = 1, pathological_too: bool = True) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    if pathological_too:
        for label, data in pathological():
            tally.feed("pathological:" + label.split("-")[0], data)
    sentences = _Sentences()
    for i, (kind, data) in enumerate(_sources(rng, sentences)):
        if i >= count:
            break
        tally.feed(kind, data, run=i % run_every == 0)
    return tally


# ------------------------------------------------------------------- tests


def test_pathological_inputs_give_diagnostics_or_success() -> None:
    tally = Tally()
    for label, data in pathological(heavy=False):
        tally.feed(label, data)
    assert not tally.failures, tally.report()
    assert tally.outcomes[Outcome.CLEAN] > 10 and tally.outcomes[Outcome.DIAGNOSTICS] > 10


def test_a_short_seeded_mix_gives_diagnostics_or_success() -> None:
    tally = fuzz(int(os.environ.get("MRULES_FUZZ_SHORT", "600")), seed=1, pathological_too=False)
    assert not tally.failures, tally.report()
    assert tally.outcomes[Outcome.CLEAN] > 0  # some inputs reach compile and the run


def test_the_mutators_reach_every_outcome() -> None:
    # Valid corpus files run clean, mutated ones reach both outcomes.
    rng = random.Random(7)
    outcomes = {through_every_stage(mutate_values(rng, t), run=False) for t in CORPUS}
    assert {Outcome.CLEAN, Outcome.DIAGNOSTICS} <= outcomes


def test_the_harness_reports_a_crash_with_its_input(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(sys.modules[__name__], "format_text", broken)
    tally = Tally()
    tally.feed("one", 'list "L"\n')
    assert tally.outcomes == Counter({"EXCEPTION": 1})
    assert tally.failures == [
        ("one", 'list "L"\n', "RecursionError: maximum recursion depth exceeded")
    ]


_GRAMMAR = Lark(grammar_text(), parser="lalr", lexer="contextual")
_EXPLICIT = {
    "STRING": st.sampled_from(EDGE_STRINGS),
    "NAME": st.sampled_from(NAMES),
    "INT": st.sampled_from(EDGE_INTS),
    "SIGNED_INT": st.sampled_from(EDGE_SIGNED),
    "NUMBER": st.sampled_from(EDGE_NUMBERS),
    "TIMESTAMP": st.sampled_from(["2026-01-02", "2026-02-30", "2026-01-02T09:30Z"]),
    "WEIGHT": st.sampled_from(["1/3", "2/3", "3/3"]),
    "GRADE": st.sampled_from(["F", "D-", "C", "B+", "A+"]),
    "COMMENT": st.sampled_from(["# note", "#", "# é ☁ \x1b"]),
}
_HYPOTHESIS = settings(
    max_examples=int(os.environ.get("MRULES_FUZZ_HYPOTHESIS", "40")),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@_HYPOTHESIS
@given(from_lark(_GRAMMAR, start="start", explicit=_EXPLICIT))
def test_hypothesis_grammar_text_gives_diagnostics_or_success(text: str) -> None:
    through_every_stage(text)


@_HYPOTHESIS
@given(st.data())
def test_generated_trees_printed_and_mutated(data: st.DataObject) -> None:
    file = data.draw(files)
    text = format_file(file)
    through_every_stage(text)
    seed = data.draw(st.integers(0, 2**32))
    through_every_stage(mutate_values(random.Random(seed), text))


def test_the_cli_on_the_nastiest_inputs(tmp_path: Path) -> None:
    """A few real processes: exit 1 with diagnostics (2 for bytes that are not UTF-8)."""
    cases = {
        "deep.mr": (_deep("mixed", 5000).encode(), 1),
        "huge.mr": (f'automation rule "R" priority {"9" * 100_000} {{ }}'.encode(), 1),
        "surrogate.mr": (b'form "F"\non submit of form "F" { add tag "\\udfff" }\n', 1),
        "latin1.mr": ('list "café"'.encode("latin-1"), 2),
    }
    for name, (data, code) in cases.items():
        (tmp_path / name).write_bytes(data)
        for command in (["lint"], ["parse"], ["fmt", "--check"]):
            res = subprocess.run(
                [sys.executable, "-m", "mrules", *command, name],
                cwd=tmp_path,
                capture_output=True,
                timeout=120,
            )
            out = (res.stdout + res.stderr).decode("utf-8")
            assert "Traceback" not in out, (name, command, out[-2000:])
            assert res.returncode == code, (name, command, out[-2000:])


@pytest.mark.slow
def test_long_fuzz_run(request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the long fuzz run is opt-in: pytest -m slow")
    count = int(os.environ.get("MRULES_FUZZ_RULES", "200000"))
    seed = int(os.environ.get("MRULES_FUZZ_SEED", "20260903"))
    run_every = int(os.environ.get("MRULES_FUZZ_RUN_EVERY", "1"))
    started = time.perf_counter()
    tally = fuzz(count, seed, run_every=run_every)
    print(f"\nseed {seed}, {time.perf_counter() - started:.0f} s\n{tally.report()}")
    assert not tally.failures, tally.report()
