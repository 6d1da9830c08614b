"""Fuzz harness (b): event streams with every kind of bad line mixed into a valid one.

Each stream is the Get Cloudy example (`examples/getcloudy`) followed by
generated valid events, with bad lines inserted at random places. It runs
through the real CLI (`mrules run`, in process) and must end:

* with exit status 3 and no traceback;
* with every bad line in the rejects file, by its line number, and no other;
* in the same state (`mrules state export`) as the clean stream.

The rules are the example's plus `unknown_assets = "reject"` and
`bad_field_values = "reject"`, so that the engine's own refusals (an asset the
rules do not declare, a picklist value the field does not have) are bad lines
too. `BAD_KINDS` lists every kind of bad line (more than 90); each stream
draws from all of them.

Two more harnesses run streams of odd but valid lines (NUL, control and
combining characters, random code points, huge integers, long strings, field
values of every kind for typed fields), under every pair of policies, and
check that `run`, `state export`, `state outbox`, `segment` and `explain`
handle whatever the reader accepts, and that the random stream run in two
halves into one store ends in the state of the whole stream (what the store
keeps of an odd value reads back as the engine had it).

The default run is short (a few seconds). The long one is opt-in:

    MRULES_FUZZ_EVENT_LINES=10000 .venv/bin/python -m pytest -m slow tests/fuzz/test_fuzz_events.py

runs streams until that many bad lines were read (default 10,000), and a
quarter as many random valid events under each of the 9 policy pairs.
"""

from __future__ import annotations

import os
import random
import shutil
import traceback
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from mrules.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "getcloudy"
STRICT = 'settings {\n  unknown_assets = "reject"\n  bad_field_values = "reject"\n}\n'

Obj = dict[str, Any]

# ----------------------------------------------------------------- valid events

_FORMS = ["Demande Get Cloudy"]
_EMAILS = ["Newsletter", "Proposition d'horaire"]
_FILES = ["Cloud Buyer Guide.pdf"]
_REDIRECTS = ["Pricing CTA"]
_URLS = [
    "https://www.getcloudy.com/pricing",
    "https://getcloudy.com/consult?utm_source=x",
    "http://getcloudy.com/careers/ops/",
    "https://getcloudy.com/blog/a",
    "https://getcloudy.com/",
]
_SIZES = ["1-10", "11-50", "51-200", "200+"]


def _ts(n: int) -> str:
    """The n-th generated event's time: one minute apart, after the example's stream."""
    day, minute = divmod(n, 1440)
    return f"2026-12-{21 + day % 8:02d}T{minute // 60:02d}:{minute % 60:02d}:00Z"


def valid_event(rng: random.Random, n: int) -> Obj:
    """A valid event of any type against the example's rules (field values that fit)."""
    who = f"p{rng.randrange(40)}@gen.example"
    kind = rng.choice(
        [
            "page_view",
            "page_view",
            "form_submit",
            "email_open",
            "email_click",
            "file_download",
            "custom_redirect_click",
            "identify",
            "prospect_update",
            "crm_update",
            "unsubscribe",
            "tick",
            "landing_page_submit_skip",
        ]
    )
    e: Obj = {"ts": _ts(n), "id": f"g{n}", "type": kind}
    if kind == "landing_page_submit_skip":  # no landing page is declared: a page view instead
        e["type"] = kind = "page_view"
    if kind == "page_view":
        e["url"] = rng.choice(_URLS)
        if rng.random() < 0.5:
            e["visitor"] = f"v{rng.randrange(20)}"
        if rng.random() < 0.6 or "visitor" not in e:
            e["prospect"] = who
    elif kind != "tick":
        e["prospect"] = who
    if kind == "form_submit":
        e["asset"] = rng.choice(_FORMS)
        e["fields"] = {
            "first_name": rng.choice(["Ann", "Bo", "Zoë"]),
            "company_size": rng.choice(_SIZES),
        }
        if rng.random() < 0.3:
            e["visitor"] = f"v{rng.randrange(20)}"
    elif kind in ("email_open", "email_click"):
        e["asset"] = rng.choice(_EMAILS)
        if kind == "email_click":
            e["url"] = rng.choice(_URLS)
    elif kind == "file_download":
        e["asset"] = rng.choice(_FILES)
    elif kind == "custom_redirect_click":
        e["asset"] = rng.choice(_REDIRECTS)
    elif kind == "identify":
        e["visitor"] = f"v{rng.randrange(20)}"
    elif kind == "prospect_update":
        e["fields"] = {
            "company_size": rng.choice(_SIZES),
            "employees": rng.randrange(1, 900),
            "interests": rng.choice(["cloud", "data;security"]),
        }
    elif kind == "crm_update":
        e["object"] = rng.choice(["lead", "contact", "opportunity"])
        if e["object"] == "opportunity":
            e["status"] = rng.choice(["won", "lost"])
        else:
            e["fields"] = {"Phone": f"+33 {rng.randrange(10**8)}", "LeadSource": "Web"}
    elif kind == "unsubscribe" and rng.random() < 0.5:
        e["asset"] = rng.choice(_EMAILS)
    return e


# ------------------------------------------------------------- kinds of bad lines

# Every key the reader reads, the types that need it, and a wrong value of each JSON kind.
_STRING_KEYS = ("id", "prospect", "visitor", "url", "asset", "user", "object", "crm_id", "status")
_WRONG: dict[str, Any] = {
    "array": ["x"],
    "object": {"k": "v"},
    "integer": 7,
    "float": 2.5,
    "true": True,
    "false": False,
    "empty array": [],
}


def _dump(e: Obj) -> bytes:
    return orjson.dumps(e)


def _with(key: str, value: Any) -> Callable[[random.Random, Obj], bytes]:
    return lambda rng, e: _dump({**e, key: value})


def _without(key: str, kinds: tuple[str, ...]) -> Callable[[random.Random, Obj], bytes]:
    def make(rng: random.Random, e: Obj) -> bytes:
        e = _of_type(rng, e, kinds)
        return _dump({k: v for k, v in e.items() if k != key})

    return make


def _of_type(rng: random.Random, e: Obj, kinds: tuple[str, ...]) -> Obj:
    """A valid event of one of these types (a fresh one if e is not)."""
    for _ in range(200):
        if e["type"] in kinds:
            return {**e, "id": f"bad-{rng.randrange(10**9)}"}  # never an id applied before
        e = valid_event(rng, rng.randrange(10_000))
    raise AssertionError(f"no valid event of {kinds}")


def _raw(text: bytes) -> Callable[[random.Random, Obj], bytes]:
    return lambda rng, e: text


def _splice(rng: random.Random, e: Obj, junk: bytes) -> bytes:
    """The line with junk put inside it, where JSON cannot take it."""
    line = _dump(e)
    at = rng.randrange(1, len(line) - 1)
    return line[:at] + junk + line[at:]


def _ts_text(text: str) -> Callable[[random.Random, Obj], bytes]:
    return lambda rng, e: _dump({**e, "ts": text})


def _escaped(key: str, escape: str) -> Callable[[random.Random, Obj], bytes]:
    """A string key holding a JSON escape orjson refuses (lone surrogates)."""

    def make(rng: random.Random, e: Obj) -> bytes:
        return _dump({**e, key: "PLACEHOLDER"}).replace(b"PLACEHOLDER", escape.encode())

    return make


BAD_KINDS: dict[str, Callable[[random.Random, Obj], bytes]] = {}
for _key in ("ts", "type", *_STRING_KEYS):
    for _name, _value in _WRONG.items():
        BAD_KINDS[f"{_key} is {_name}"] = _with(_key, _value)
for _key in ("type", *_STRING_KEYS):
    BAD_KINDS[f"{_key} is an empty string"] = _with(_key, "")
for _name, _value in {"array": ["x"], "string": "x", "integer": 1, "true": True}.items():
    BAD_KINDS[f"fields is {_name}"] = _with("fields", _value)
for _name, _value in {"array": [1], "object": {"a": 1}, "empty object": {}}.items():
    BAD_KINDS[f"a field holds {_name}"] = _with("fields", {"first_name": "A", "f": _value})
BAD_KINDS.update(
    {
        # required keys
        "no ts": lambda rng, e: _dump({k: v for k, v in e.items() if k != "ts"}),
        "ts is null": _with("ts", None),
        "no type": lambda rng, e: _dump({k: v for k, v in e.items() if k != "type"}),
        "type is null": _with("type", None),
        "no prospect": _without(
            "prospect",
            (
                "form_submit",
                "email_open",
                "identify",
                "prospect_update",
                "crm_update",
                "unsubscribe",
            ),
        ),
        "no asset": _without(
            "asset",
            ("form_submit", "email_open", "email_click", "file_download", "custom_redirect_click"),
        ),
        "no url on a page view": _without("url", ("page_view",)),
        "no visitor on identify": _without("visitor", ("identify",)),
        "no object on crm_update": _without("object", ("crm_update",)),
        "page view of nobody": lambda rng, e: _dump(
            {"ts": e["ts"], "type": "page_view", "url": "u"}
        ),
        # values out of their set
        "unknown type": _with("type", "purchase"),
        "misspelt type": _with("type", "page_veiw"),
        "type in capitals": lambda rng, e: _dump({**e, "type": str(e["type"]).upper()}),
        "type with a NUL": lambda rng, e: _dump({**e, "type": f"{e['type']}\x00"}),
        "object not a CRM object": _with("object", "invoice"),
        "status not won or lost": _with("status", "open"),
        # bad emails
        "email without @": _with("prospect", "leung.example.com"),
        "email with two @": _with("prospect", "a@b@c.example"),
        "email with a space": _with("prospect", "le ung@example.com"),
        "email with a NUL": _with("prospect", "le\x00ung@example.com"),
        "email with a control character": _with("prospect", "le\x1bung@example.com"),
        "email of spaces": _with("prospect", "   "),
        "email of 100,000 characters": _with("prospect", "x" * 100_000),
        # timestamps
        "date alone": _ts_text("2026-11-02"),
        "no zone": _ts_text("2026-11-02T09:00:00"),
        "no seconds": _ts_text("2026-11-02T09:00Z"),
        "month 13": _ts_text("2026-13-02T09:00:00Z"),
        "day 30 of February": _ts_text("2026-02-30T09:00:00Z"),
        "hour 24": _ts_text("2026-11-02T24:00:00Z"),
        "week date": _ts_text("2026-W44-1T09:00:00Z"),
        "basic format": _ts_text("20261102T090000Z"),
        "offset without colon": _ts_text("2026-11-02T09:00:00+0100"),
        "offset 25 hours": _ts_text("2026-11-02T09:00:00+25:00"),
        "Arabic-Indic digit": _ts_text("2026-11-02T09:00:0\u0663Z"),
        "year 0 in UTC": _ts_text("0001-01-01T00:30:00+01:00"),
        "empty ts": _ts_text(""),
        "ts of 10,000 digits": _ts_text("9" * 10_000),
        "ts as epoch number": _with("ts", 1793610000),
        # not JSON, or not an object
        "truncated": lambda rng, e: _dump(e)[: rng.randrange(1, len(_dump(e)))],
        "trailing garbage": lambda rng, e: _dump(e) + b" x",
        "two objects": lambda rng, e: _dump(e) + _dump(e),
        "single quotes": lambda rng, e: _dump(e).replace(b'"', b"'"),
        "raw NUL": lambda rng, e: _splice(rng, e, b"\x00"),
        "raw control character": lambda rng, e: _splice(rng, e, b"\x07"),
        "invalid UTF-8": lambda rng, e: _splice(rng, e, b"\xff\xfe"),
        "truncated UTF-8 sequence": lambda rng, e: _dump({**e, "id": "caf"}).replace(
            b'"caf"', b'"caf\xc3"'
        ),
        "encoded surrogate": lambda rng, e: _dump({**e, "id": "x"}).replace(
            b'"x"', b'"\xed\xa0\x80"'
        ),
        "overlong UTF-8": lambda rng, e: _dump({**e, "id": "x"}).replace(b'"x"', b'"\xc0\xaf"'),
        "Latin-1 text": lambda rng, e: _dump({**e, "id": "x"}).replace(b'"x"', b'"caf\xe9"'),
        "byte order mark mid-file": lambda rng, e: b"\xef\xbb\xbf" + _dump(e),
        "UTF-16": lambda rng, e: _dump(e).decode().encode("utf-16"),
        "lone high surrogate escape": _escaped("id", "\\ud800"),
        "lone low surrogate escape": _escaped("prospect", "\\udc00@x.example"),
        "reversed surrogate pair": _escaped("asset", "\\udc00\\ud800"),
        "number too big for a double": lambda rng, e: _dump({**e, "fields": {"n": 0}}).replace(
            b'"n":0', b'"n":1e400'
        ),
        "4,301-digit number": lambda rng, e: _dump({**e, "fields": {"n": 0}}).replace(
            b'"n":0', b'"n":' + b"7" * 4301
        ),
        "NaN": lambda rng, e: _dump({**e, "fields": {"n": 0}}).replace(b'"n":0', b'"n":NaN'),
        "Infinity": lambda rng, e: _dump({**e, "fields": {"n": 0}}).replace(
            b'"n":0', b'"n":Infinity'
        ),
        "deep nesting": lambda rng, e: _dump(e)[:-1] + b',"x":' + b"[" * 3000 + b"]" * 3000 + b"}",
        "unclosed deep nesting": lambda rng, e: b"[" * 100_000,
        "JSON array": lambda rng, e: _dump([e]),
        "JSON string": _raw(b'"page_view"'),
        "JSON number": _raw(b"42"),
        "JSON null": _raw(b"null"),
        "JSON true": _raw(b"true"),
        "comment": lambda rng, e: b"// " + _dump(e),
        "key without quotes": lambda rng, e: _dump(e).replace(b'"ts"', b"ts", 1),
        "duplicate type key, last one a list": lambda rng, e: _dump(e)[:-1] + b',"type":["tick"]}',
        "only a brace": _raw(b"{"),
        "carriage return inside a string": lambda rng, e: _dump(e).replace(b'"ts":"', b'"ts":"\r'),
        "huge unknown key": lambda rng, e: _dump({**e, "note": "x" * 200_000})[:-2],
        # the engine's own refusals (unknown_assets / bad_field_values = "reject")
        "unknown form": lambda rng, e: _dump(
            {**_of_type(rng, e, ("form_submit",)), "asset": "Demande Get cloudy"}
        ),
        "unknown email": lambda rng, e: _dump(
            {**_of_type(rng, e, ("email_open", "email_click")), "asset": "Newsleter"}
        ),
        "email named like a form": lambda rng, e: _dump(
            {**_of_type(rng, e, ("email_open",)), "asset": "Demande Get Cloudy"}
        ),
        "unknown file": lambda rng, e: _dump(
            {**_of_type(rng, e, ("file_download",)), "asset": "guide.pdf"}
        ),
        "picklist value it does not have": lambda rng, e: _dump(
            {**_of_type(rng, e, ("prospect_update",)), "fields": {"company_size": "huge"}}
        ),
        "picklist value in another case": lambda rng, e: _dump(
            {**_of_type(rng, e, ("form_submit",)), "fields": {"company_size": "200+ "}}
        ),
        "many for a number": lambda rng, e: _dump(
            {**_of_type(rng, e, ("prospect_update",)), "fields": {"employees": "many"}}
        ),
        "NaN text for a number": lambda rng, e: _dump(
            {**_of_type(rng, e, ("prospect_update",)), "fields": {"employees": "nan"}}
        ),
        "boolean for a number": lambda rng, e: _dump(
            {**_of_type(rng, e, ("prospect_update",)), "fields": {"employees": True}}
        ),
        "yes for a boolean": lambda rng, e: _dump(
            {**_of_type(rng, e, ("prospect_update",)), "fields": {"do_not_email": "yes"}}
        ),
        "multiselect value it does not have": lambda rng, e: _dump(
            {**_of_type(rng, e, ("prospect_update",)), "fields": {"interests": "cloud;gaming"}}
        ),
        "CRM picklist value it does not have": lambda rng, e: _dump(
            {
                "ts": e["ts"],
                "type": "crm_update",
                "prospect": "leung@example.com",
                "object": "lead",
                "fields": {"Company_Size__c": "Huge"},
            }
        ),
    }
)


# --------------------------------------------------------------------- streams


def make_stream(
    rng: random.Random, valid: int, bad: int
) -> tuple[bytes, bytes, set[int], list[str]]:
    """(clean stream, stream with bad lines, their line numbers, their kinds)."""
    clean = [line.rstrip(b"\r") for line in (EXAMPLE / "events.jsonl").read_bytes().splitlines()]
    clean += [_dump(valid_event(rng, n)) for n in range(valid)]
    for i in rng.sample(range(len(clean)), k=len(clean) // 10):  # some CRLF: still valid
        clean[i] += b"\r"
    kinds = list(BAD_KINDS)
    rng.shuffle(kinds)
    chosen = [kinds[i % len(kinds)] for i in range(bad)]
    lines: list[tuple[bool, bytes]] = [(False, x) for x in clean]
    for k, kind in enumerate(chosen):
        # its id is new: a line whose id was applied is a duplicate, whatever else it holds
        base = {**valid_event(rng, rng.randrange(valid + 1_000)), "id": f"bad-{k}"}
        text = BAD_KINDS[kind](rng, base)
        assert b"\n" not in text, kind
        # anywhere after line 3, where the example creates leung@example.com (a CRM
        # update for an unknown prospect is ignored, not rejected)
        lines.insert(rng.randrange(3, len(lines) + 1), (True, text))
    for _ in range(rng.randrange(4)):  # blank lines count but are not rejected
        lines.insert(rng.randrange(1, len(lines) + 1), (False, rng.choice([b"", b"  ", b"\t\r"])))
    bad_lines = {n for n, (is_bad, _) in enumerate(lines, start=1) if is_bad}
    return (b"\n".join(clean) + b"\n", b"\n".join(x for _, x in lines) + b"\n", bad_lines, chosen)


def _rules(tmp: Path) -> Path:
    rules = tmp / "rules"
    if not rules.exists():
        shutil.copytree(EXAMPLE / "rules", rules)
        (rules / "90-strict.mr").write_text(STRICT, encoding="utf-8")
    return rules


def _invoke(*args: str) -> Result:
    res = CliRunner().invoke(main, list(args))
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        crash = "".join(traceback.format_exception(res.exception))
        raise AssertionError(f"mrules {' '.join(args[:1])} crashed:\n{crash}")
    assert "Traceback" not in res.output
    return res


def _run(tmp: Path, name: str, data: bytes, *extra: str) -> tuple[int, list[Obj], list[Obj]]:
    events = tmp / f"{name}.jsonl"
    events.write_bytes(data)
    store = tmp / f"{name}.db"
    res = _invoke(
        "run",
        str(_rules(tmp)),
        str(events),
        "--store",
        str(store),
        "--actions",
        str(tmp / f"{name}.actions.jsonl"),
        *extra,
    )
    rejects_file = tmp / f"{name}.rejects.jsonl"
    rejects = (
        [orjson.loads(x) for x in rejects_file.read_bytes().split(b"\n") if x]
        if (rejects_file.exists())
        else []
    )
    export = _invoke("state", "export", "--store", str(store))
    assert export.exit_code == 0, export.output
    state = [orjson.loads(x) for x in export.stdout_bytes.split(b"\n") if x]
    for line in (tmp / f"{name}.actions.jsonl").read_bytes().split(b"\n")[:-1]:
        orjson.loads(line)  # the action log stays JSON Lines
    return res.exit_code, state, rejects


def fuzz_streams(tmp: Path, seed: int, streams: int, valid: int, bad: int) -> dict[str, int]:
    """Run `streams` mixed streams; returns how many lines of each bad kind were read."""
    seen: dict[str, int] = {}
    for s in range(streams):
        rng = random.Random(seed * 1_000 + s)
        clean, mixed, bad_lines, kinds = make_stream(rng, valid, bad)
        code, want, none = _run(tmp, f"clean{s}", clean)
        assert code == 0 and not none, (code, none[:3])
        batch = ("--batch-size", str(rng.choice([1, 7, 50, 2000])))
        code, got, rejects = _run(tmp, f"mixed{s}", mixed, *batch)
        assert code == 3, code
        by_line = {r["line"]: r for r in rejects}
        missing = sorted(bad_lines - set(by_line))
        extra = sorted(set(by_line) - bad_lines)
        texts = mixed.split(b"\n")
        assert not missing and not extra, (
            f"seed {seed}, stream {s}: bad lines not rejected "
            f"{[(n, texts[n - 1][:120]) for n in missing[:5]]}, "
            f"good lines rejected {[by_line[n] for n in extra[:5]]}"
        )
        assert all(r["reason"] and len(r["text"]) <= 1000 for r in rejects)
        assert got == want, f"seed {seed}, stream {s}: the state differs from the clean stream's"
        for kind in kinds:
            seen[kind] = seen.get(kind, 0) + 1
    return seen


def test_there_are_more_than_90_kinds_of_bad_line() -> None:
    assert len(BAD_KINDS) >= 90, len(BAD_KINDS)


def test_each_kind_of_bad_line_is_rejected_by_the_reader_or_the_engine(tmp_path: Path) -> None:
    """One stream holding every kind once: each rejected, the state as without them."""
    seen = fuzz_streams(tmp_path, seed=1, streams=1, valid=150, bad=len(BAD_KINDS))
    assert set(seen) == set(BAD_KINDS)


def test_mixed_streams_short(tmp_path: Path) -> None:
    """The default run: two more streams, 150 bad lines each."""
    fuzz_streams(tmp_path, seed=2, streams=2, valid=200, bad=150)


def _slow_enabled(request: pytest.FixtureRequest) -> bool:
    return "slow" in (request.config.getoption("markexpr") or "") or bool(
        os.environ.get("MRULES_FUZZ_EVENT_LINES")
    )


@pytest.mark.slow
def test_mixed_streams_long(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The long run: MRULES_FUZZ_EVENT_LINES bad lines (10,000 by default), 500 a stream."""
    if not _slow_enabled(request):
        pytest.skip("long fuzz run: opt in with -m slow or MRULES_FUZZ_EVENT_LINES")
    total = int(os.environ.get("MRULES_FUZZ_EVENT_LINES", "10000"))
    seed = int(os.environ.get("MRULES_FUZZ_SEED", "7"))
    per_stream = 500
    streams = -(-total // per_stream)
    seen = fuzz_streams(tmp_path, seed=seed, streams=streams, valid=300, bad=per_stream)
    print(
        f"\nfuzz (b): {sum(seen.values()):,} bad lines of {len(seen)} kinds in {streams} "
        f"streams, seed {seed}: all rejected, state equal to the clean stream's"
    )


# ------------------------------------------------- odd but valid lines downstream

_ODD_TEXT = [
    "a\x00b",
    "\x1b[2J",
    "\u202eevil",
    "e\u0301",
    "\U0001f600",
    "\ufeff",
    "\u2028",
    "[bold]x[/]",
    "%s%n",
    "' OR 1=1 --",
    "\\",
    '"',
    "x" * 70_000,
    " ",
    "\t",
    "NUL\x00",
    "\x7f",
    "\ufffd",
]
_ODD_SCALARS = [2**64 - 1, -(2**63), 2**63, 1.7976931348623157e308, -0.0, 5e-324, True, None, ""]


def odd_event(rng: random.Random, n: int) -> Obj:
    """A valid event whose strings and values are as odd as the reader allows."""
    e = valid_event(rng, n)
    text = rng.choice(_ODD_TEXT)
    for key in ("visitor", "url", "asset", "user", "crm_id", "id"):
        if key in e or rng.random() < 0.2:
            if key == "asset" and e["type"] not in ("unsubscribe", "page_view", "tick"):
                continue  # the strict rules reject unknown assets; see the warn run below
            e[key] = rng.choice(_ODD_TEXT) + (str(n) if key == "id" else "")
    if "prospect" in e:
        domain = rng.choice(["example.com", "EXAMPLE.com", "ex\u00e4mple.de"])
        local = rng.choice(["jos\u00e9", "JOSE\u0301", "\u00df", "i\u0307", "x"])
        e["prospect"] = f"{local}{n % 7}@{domain}"
    e["fields"] = {
        rng.choice(["first_name", "comments", text[:40], "x" * 300]): rng.choice(
            _ODD_TEXT + _ODD_SCALARS
        )
        for _ in range(rng.randrange(4))
    }
    if e["type"] == "crm_update" and rng.random() < 0.5:
        e["fields"]["Phone"] = rng.choice(_ODD_TEXT + _ODD_SCALARS)
    return e


@pytest.mark.parametrize("policy", ["strict", "warn"])
def test_odd_valid_values_never_crash_a_command(tmp_path: Path, policy: str) -> None:
    """Whatever the reader accepts, run, state export, outbox and explain handle."""
    rng = random.Random(11)
    events = [odd_event(rng, n) for n in range(400)]
    for e in events[:60]:  # unknown assets: rejected when strict, counted when warned
        if e["type"] in ("form_submit", "email_open", "file_download"):
            e["asset"] = rng.choice(_ODD_TEXT)
    rules = _rules(tmp_path)
    if policy == "warn":
        (rules / "90-strict.mr").unlink()
    data = b"\n".join(_dump(e) for e in events) + b"\n"
    code, state, rejects = _run(tmp_path, policy, data)
    assert code in (0, 3), code
    assert policy == "strict" or not rejects, rejects[:3]
    store = str(tmp_path / f"{policy}.db")
    assert _invoke("state", "outbox", "--store", store).exit_code == 0
    for record in state[:25]:
        res = _invoke("explain", record["email"], "--store", store)
        assert res.exit_code == 0, res.output
    assert all(unicodedata.is_normalized("NFC", r["email"]) for r in state)
    assert "jos\u00e90@example.com" in {r["email"] for r in state}


def _any_text(rng: random.Random) -> str:
    """Any code points but surrogates (JSON cannot carry them), short or long."""
    n = rng.choice([1, 2, 5, 20, 300])
    text = "".join(chr(rng.randrange(0x110000)) for _ in range(n))
    return "".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF) or "x"


_VALUES = [
    "",
    "true",
    "FALSE",
    "2026-01-31",
    "2026-13-01",
    "nan",
    "1e999",
    "  7 ",
    "cloud;data",
    "200+",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    True,
    False,
    None,
]
_FIELD_NAMES = [
    "company_size",
    "employees",
    "interests",
    "do_not_email",
    "consult_requests",
    "lead_source",
    "first_name",
    "opted_out",
    "email",
    "last_seen",
    "Company_Size__c",
    "Phone",
    "LeadSource",
]


def random_event(rng: random.Random, n: int) -> Obj:
    """A valid event with random strings and random field values for typed fields."""
    e = valid_event(rng, n)
    for key in ("visitor", "url", "asset", "user", "crm_id", "id"):
        if rng.random() < 0.3:
            e[key] = _any_text(rng)
    if "prospect" in e and rng.random() < 0.3:
        local = _any_text(rng).replace("@", "").replace(" ", "")
        e["prospect"] = f"{local}@{_any_text(rng).replace('@', '')}"
    if rng.random() < 0.7:
        e["fields"] = {
            rng.choice([*_FIELD_NAMES, _any_text(rng)]): rng.choice(
                [
                    _any_text(rng),
                    rng.randrange(-(2**63), 2**64),
                    rng.random() * 10.0 ** rng.randrange(308),
                    *_VALUES,
                ]
            )
            for _ in range(rng.randrange(5))
        }
    return e


def _random_values(tmp_path: Path, unknown: str, bad_fields: str, count: int, seed: str) -> None:
    """`count` random events under one policy pair: run, export, outbox, segment, explain;
    and the same stream run in two halves into one store ends in the same state."""
    rules = _rules(tmp_path)
    (rules / "90-strict.mr").write_text(
        f'settings {{\n  unknown_assets = "{unknown}"\n  bad_field_values = "{bad_fields}"\n}}\n'
        "field last_seen: date\n",
        encoding="utf-8",
    )
    rng = random.Random(seed)
    lines = [_dump(random_event(rng, n)) for n in range(count)]
    code, state, rejects = _run(tmp_path, "random", b"\n".join(lines) + b"\n")
    assert code == (3 if rejects else 0), code
    allowed = ["'prospect' must be an email address"]  # random text may hold white space
    allowed += ["unknown "] if unknown == "reject" else []
    allowed += ["bad field value: "] if bad_fields == "reject" else []
    assert all(r["reason"].startswith(tuple(allowed)) for r in rejects), rejects[:3]
    store = str(tmp_path / "random.db")
    assert _invoke("state", "outbox", "--store", store).exit_code == 0
    assert _invoke("segment", str(rules), "--store", store).exit_code == 0
    for record in state[:10]:
        assert _invoke("explain", record["email"], "--store", store).exit_code == 0
    # What the store keeps of odd values reads back as the engine had it: a run resumed
    # halfway through the stream ends where the run of the whole stream did.
    halves = tmp_path / "halves.db"
    for i, part in enumerate((lines[: count // 2], lines[count // 2 :])):
        (tmp_path / f"half{i}.jsonl").write_bytes(b"\n".join(part) + b"\n")
        res = _invoke("run", str(rules), str(tmp_path / f"half{i}.jsonl"), "--store", str(halves))
        assert res.exit_code in (0, 3), res.output
    export = _invoke("state", "export", "--store", str(halves))
    resumed = [orjson.loads(x) for x in export.stdout_bytes.split(b"\n") if x]
    assert resumed == state, f"seed {seed!r}: the resumed run's state differs from the whole run's"


_POLICIES = [(u, b) for u in ("warn", "reject", "ignore") for b in ("skip", "reject", "keep")]


@pytest.mark.parametrize(("unknown", "bad_fields"), _POLICIES)
def test_random_valid_values_under_every_policy(
    tmp_path: Path, unknown: str, bad_fields: str
) -> None:
    """Random strings and field values, each policy pair: run, export, outbox, segment, explain."""
    _random_values(tmp_path, unknown, bad_fields, 300, f"{unknown}/{bad_fields}")


@pytest.mark.slow
@pytest.mark.parametrize(("unknown", "bad_fields"), _POLICIES)
def test_random_valid_values_under_every_policy_long(
    tmp_path: Path, unknown: str, bad_fields: str
) -> None:
    """The long run: a quarter of MRULES_FUZZ_EVENT_LINES random events a pair, seeded."""
    count = int(os.environ.get("MRULES_FUZZ_EVENT_LINES", "10000")) // 4
    seed = os.environ.get("MRULES_FUZZ_SEED", "7")
    _random_values(tmp_path, unknown, bad_fields, count, f"{unknown}/{bad_fields}/{seed}")
