"""A damaged history row gives a clear store error (exit 4), never a traceback.

Random bytes often decode as some MessagePack value (b"\\x01" is the number 1),
so every reader checks that a row's data has the head of a packed row.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.history import load_data

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "getcloudy"

DAMAGE = {
    "a number": b"\x01",
    "not msgpack": b"\xc1",
    "a short array": b"\x91\x01",
    "nils": b"\x95\xc0\xc0\xc0\xc0\xc0",
    "short json": b"[1]",
    "broken json": b"[1, 2",
    "empty": b"",
}
COMMANDS = [
    ("explain", "leung@example.com"),
    ("state", "export"),
    ("report", "rules"),
    ("report", "scores"),
]


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("good") / "s.db"
    res = CliRunner().invoke(
        main,
        ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", str(store), "-q"],
    )
    assert res.exit_code == 0, res.output
    return store


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_damaged_row_is_a_store_error(
    good_store: Path, tmp_path: Path, damage: str, command: tuple[str, ...]
) -> None:
    store = tmp_path / "s.db"
    shutil.copy(good_store, store)
    conn = sqlite3.connect(store)
    with conn:  # the row of leung's form submission: every command reads it
        conn.execute(
            "UPDATE history SET data = ? WHERE id = (SELECT min(h.id) FROM history h"
            " JOIN prospects p ON p.id = h.prospect"
            " WHERE p.email = 'leung@example.com' AND h.seq IS NOT NULL)",
            (DAMAGE[damage],),
        )
    conn.close()
    res = CliRunner().invoke(main, [*command, "--store", str(store)])
    assert res.exit_code == 4, res.output
    assert "is damaged (a history row cannot be read" in res.output
    assert "Traceback" not in res.output


def test_load_data_reads_both_encodings_and_refuses_the_rest() -> None:
    assert load_data(b"[1,2,3,0,0]") == load_data(b"\x95\x01\x02\x03\x00\x00") == [1, 2, 3, 0, 0]
    for bad in DAMAGE.values():
        with pytest.raises(ValueError, match="not a history row"):
            load_data(bad)


STATE_DAMAGE = {
    "a prospect's state: not JSON": (
        "UPDATE prospects SET state = x'00ff10' WHERE email = 'leung@example.com'"
    ),
    "a prospect's state: a JSON number": (
        "UPDATE prospects SET state = '5' WHERE email = 'leung@example.com'"
    ),
    "a prospect's state: a list": (
        "UPDATE prospects SET state = '[1, 2]' WHERE email = 'leung@example.com'"
    ),
    "a prospect's state: an integer": (
        "UPDATE prospects SET state = 5 WHERE email = 'leung@example.com'"
    ),
    "the clock": "UPDATE meta SET value = 'abc' WHERE key = 'clock'",
    # Finite, but no time of the years 1 to 9999: the next run's OverflowError (exit 70).
    "the clock: 1e308": "UPDATE meta SET value = 1e308 WHERE key = 'clock'",
    "the clock: 2**63 - 1": "UPDATE meta SET value = 9223372036854775807 WHERE key = 'clock'",
    "a stream position": "UPDATE streams SET line = -5",
    "a stream position: text": "UPDATE streams SET line = 'abc'",
    "a stream position: its last event": (
        "UPDATE meta SET value = 'abc' WHERE key LIKE 'stream_anchor:%'"
    ),
    "the last seq": "UPDATE meta SET value = 'x' WHERE key = 'seq'",
}


@pytest.mark.parametrize("damage", list(STATE_DAMAGE))
@pytest.mark.parametrize(
    "command",
    [
        ("explain", "leung@example.com"),
        ("state", "export"),
        ("run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "-q"),
    ],
    ids=lambda c: c[0],
)
def test_damaged_state_is_a_store_error(
    good_store: Path, tmp_path: Path, damage: str, command: tuple[str, ...]
) -> None:
    """A prospect's state, the clock or a position that cannot be read: exit 4 and what is
    damaged, where these were internal errors (exit 70). A command that does not read the
    damaged value (export does not read the clock, a finished run no prospect) just works."""
    store = tmp_path / "s.db"
    shutil.copy(good_store, store)
    conn = sqlite3.connect(store)
    with conn:
        conn.execute(STATE_DAMAGE[damage])
    conn.close()
    res = CliRunner().invoke(main, [*command, "--store", str(store)])
    assert res.exit_code in (0, 4), res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    if res.exit_code == 4:
        assert "is damaged" in res.output
    if "state" in damage and command[0] != "run":  # both read leung's state (run: no event)
        assert res.exit_code == 4 and "leung@example.com" in res.output
    if damage.startswith(("the clock", "a stream position")) and command[0] == "run":
        assert res.exit_code == 4  # a run starts from both


@pytest.mark.parametrize(
    ("args", "step"),
    [
        ('{"points": 5}', "a rule matched step"),  # its count gone
        ("null", "a rule matched step"),  # no arguments at all
        ("{}", None),  # whichever step comes first that needs an argument
    ],
)
def test_a_step_without_the_argument_explain_reads_is_damage(
    good_store: Path, tmp_path: Path, args: str, step: str | None
) -> None:
    store = tmp_path / "s.db"
    shutil.copy(good_store, store)
    with sqlite3.connect(store) as raw:
        target = "count" if step else "%"
        raw.execute("UPDATE names SET text = ? WHERE text LIKE ?", (args, f'{{"{target}"%'))
    raw.close()
    res = CliRunner().invoke(main, ["explain", "leung@example.com", "--store", str(store)])
    assert res.exit_code == 4, res.output
    assert "is damaged" in res.output and "internal error" not in res.output
    if step:  # (`{}` everywhere: the store's reader already misses a score's points)
        assert f"the store is damaged: {step} (seq " in res.output and " has no count" in (
            res.output
        )


def _run_damaged(good_store: Path, tmp_path: Path, sql: str, events: str) -> Any:
    """`mrules run` of the example's rules on more `events`, into a copy of the example's
    store damaged by `sql`."""
    store = tmp_path / "s.db"
    shutil.copy(good_store, store)
    conn = sqlite3.connect(store)
    with conn:
        conn.execute(sql)
    conn.close()
    (tmp_path / "more.jsonl").write_text(events)
    args = ["run", str(EXAMPLE / "rules"), str(tmp_path / "more.jsonl"), "--store", str(store)]
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("seq", [2**53 + 1, 2**63 - 1])
def test_a_last_seq_no_run_can_go_past_is_damage(
    good_store: Path, tmp_path: Path, seq: int
) -> None:
    """The ledger's last seq, damaged to a number past 2**53: the next event's ledger
    entries overflowed SQLite's integers at the insert (2**63 - 1: exit 70), or were seqs
    JSON readers of the action log cannot keep exact."""
    res = _run_damaged(
        good_store,
        tmp_path,
        f"UPDATE meta SET value = {seq} WHERE key = 'seq'",
        '{"ts": "2026-12-21T09:00:00Z", "id": "m1", "type": "form_submit",'
        ' "prospect": "new@example.com", "asset": "Demande Get Cloudy"}\n',
    )
    assert res.exit_code == 4, res.output
    assert f"is damaged (the ledger's last seq is '{seq}')" in res.output, res.output
    assert "internal error" not in res.output


def test_an_event_id_that_is_not_text_is_damage(tmp_path: Path) -> None:
    """A history row whose event id is a blob: the action log written again from the store
    failed to make its JSON (a TypeError, exit 70), and `explain` showed the bytes."""
    store = tmp_path / "s.db"
    log = tmp_path / "a.jsonl"
    run = ["run", str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--store", str(store)]
    res = CliRunner().invoke(main, [*run, "-q", "--actions", str(log)])
    assert res.exit_code == 0 and log.read_bytes(), res.output  # its start noted: seq 0
    conn = sqlite3.connect(store)
    with conn:  # leung's form submission
        conn.execute(
            "UPDATE history SET event_id = x'00ff' WHERE id = (SELECT min(h.id) FROM history h"
            " JOIN prospects p ON p.id = h.prospect"
            " WHERE p.email = 'leung@example.com' AND h.seq IS NOT NULL)"
        )
    conn.close()
    log.write_bytes(b"")  # nothing written yet: every row after its noted start is written
    for args in ([*run, "-q", "--actions", str(log)], ["explain", "leung@example.com"]):
        res = CliRunner().invoke(
            main, [*args, "--store", str(store)] if args[0] == "explain" else args
        )
        assert res.exit_code == 4, (args[0], res.output)
        assert "is damaged (a history row cannot be read" in res.output, res.output
        assert "event id is " in res.output and "internal error" not in res.output


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("UPDATE visitors SET prospect = x'00ff'", "the prospect of visitor v-81"),
        ("UPDATE meta SET key = x'00' WHERE key = 'clock'", "a key of the meta table"),
    ],
)
def test_a_visitor_s_prospect_or_a_meta_key_that_is_not_text_is_damage(
    good_store: Path, tmp_path: Path, sql: str, what: str
) -> None:
    """A run met a blob where the store keeps text: a visitor's prospect (the commit sorts
    the emails it wrote: a TypeError), or a key of the meta table (the rejects file reads
    its keys as text): exit 70 both, where they are damage."""
    res = _run_damaged(
        good_store,
        tmp_path,
        sql,
        '{"ts": "2026-12-21T09:00:00Z", "id": "m1", "type": "page_view", "visitor": "v-81",'
        ' "url": "https://www.getcloudy.com/pricing"}\nnot json\n',
    )
    assert res.exit_code == 4, res.output
    assert f"is damaged ({what} is " in res.output and "internal error" not in res.output
