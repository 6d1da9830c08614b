"""`mrules run`, `state export` and `explain` end to end, on the Get Cloudy example.

The example's facts are checked by hand against the seed scenario
(docs/pardot.md §2-§4): Leung submits "Demande Get Cloudy" and gets the
"Proposition d'horaire" autoresponder, +25 for getcloudy.com/consult, -10 on
the careers wildcard, and the MQL rule puts her in list "MQL". Whole outputs
are snapshotted too, and were read line by line when written.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from syrupy.filters import props
from tests.terminal import on_a_terminal

from conftest import EXAMPLE, run_reading_pipe
from mrules.cli import main

ROOT = Path(__file__).resolve().parent.parent
RULES = "examples/getcloudy/rules"
EVENTS = "examples/getcloudy/events.jsonl"
LEUNG = "leung@example.com"
GOOD = (
    '{"ts":"2026-11-02T09:00:00Z","type":"page_view","prospect":"a@example.com",'
    '"url":"https://getcloudy.com/"}\n'
)


@pytest.fixture
def repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from the repository root so rule locations read `examples/getcloudy/...`."""
    monkeypatch.chdir(ROOT)
    return ROOT


def invoke(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def no_crash(res: Result) -> None:
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output


def run_example(tmp_path: Path, *extra: str) -> Result:
    return invoke("run", RULES, EVENTS, "--store", str(tmp_path / "gc.db"), *extra)


def export(store: Path) -> dict[str, dict[str, Any]]:
    res = invoke("state", "export", "--store", str(store))
    assert res.exit_code == 0, res.output
    return {r["email"]: r for r in map(json.loads, res.stdout.splitlines())}


def explain_json(email: str, store: Path) -> dict[str, Any]:
    res = invoke("explain", email, "--store", str(store), "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# ----------------------------------------------------------------- the example


def test_example_runs_and_prints_the_summary(repo: Path, tmp_path: Path) -> None:
    res = run_example(tmp_path)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""
    rows = {
        line.strip("│ ").split("│")[0].strip(): line.split("│")[2].strip()
        for line in res.stderr.splitlines()
        if line.count("│") == 3
    }
    # 28 lines: one duplicate id (e08), one CRM record nobody has (e24).
    assert rows["lines read"] == "28"
    assert rows["events applied"] == "27"
    assert rows["skipped (id already applied)"] == "1"
    assert rows["ignored (CRM record, no prospect)"] == "1"
    assert rows["rejected"] == "0"
    assert rows["prospects created"] == "6"  # leung, bob, carol, dan, henry, ivy
    assert rows["store"]  # the path, maybe shortened to fit the width (see below)
    assert not (tmp_path / "gc.rejects.jsonl").exists()


def test_example_state_export(repo: Path, tmp_path: Path, snapshot: Any) -> None:
    assert run_example(tmp_path).exit_code == 0
    state = export(tmp_path / "gc.db")
    assert sorted(state) == [
        "bob@bigcorp.example",
        "carol@startup.example",
        "dan@jobseeker.example",
        "henry@example.org",
        "ivy@bigcorp.example",
        LEUNG,
    ]
    leung = state[LEUNG]
    assert leung["lists"] == ["MQL"]
    assert leung["tags"] == ["consult-request"]
    assert leung["assigned"]["name"] == "alan@getcloudy.com"  # the queue rule never reassigns
    assert leung["crm_status"] == "lead"
    assert leung["fields"]["lead_source"] == "Partner referral"  # `prefer crm`
    assert leung["fields"]["consult_requests"] == 2
    # Hand count: history 2x +1, form +50, consult +1 +25, careers +1 -10,
    # pricing +1 +10, form again +50, pricing +1 +10, decay at the tick -10.
    assert leung["score"] == 2 + 50 + 26 - 9 + 11 + 50 + 11 - 10 == 131
    bob = state["bob@bigcorp.example"]
    assert bob["lists"] == ["Enterprise"] and bob["dynamic_lists"] == ["Engaged enterprise"]
    assert bob["grade"] == "C-"  # D + 2/3 for "Company size"
    assert [w["kind"] for w in bob["pending_crm"]] == ["create_record", "campaign_member", "task"]
    assert state["dan@jobseeker.example"]["score"] == -8  # +1 history, +1 -10 after identify
    assert state["henry@example.org"]["opted_out"] is True
    assert "stranger@elsewhere.example" not in state
    assert list(state.values()) == snapshot


def test_example_explain_leung(repo: Path, tmp_path: Path, snapshot: Any) -> None:
    assert run_example(tmp_path).exit_code == 0
    ex = explain_json(LEUNG, tmp_path / "gc.db")
    score = [(r["args"]["points"], r["rule"]["kind"], r["rule"]["name"]) for r in ex["score"]]
    assert (25, "page action", "Demande Get Cloudy") in score
    assert (-10, "page action", "Careers") in score
    assert sum(p for p, *_ in score) == ex["prospect"]["score"] == ex["score_total"] == 131
    (mql,) = ex["lists"]
    assert mql["args"]["list"] == "MQL"
    assert (mql["rule"]["kind"], mql["rule"]["name"]) == ("automation rule", "MQL handoff")
    assert mql["rule"]["at"].startswith("examples/getcloudy/rules/30-automation.mr:")
    assert mql["event"]["id"] == "e07"  # the second submission lifts her over 100
    mails = [r for r in ex["outbox_and_crm"] if r["action"] == "autoresponder"]
    assert [(m["args"]["email"], m["event"]["id"]) for m in mails] == [
        ("Proposition d'horaire", "e03")  # e07 is 4 minutes later: throttled
    ]
    # seq numbers follow the engine's processing order (at a tick, prospects in
    # any order): not part of the explanation's meaning.
    assert ex == snapshot(exclude=props("seq", "source"))
    text = invoke("explain", "  Leung@Example.com", "--store", str(tmp_path / "gc.db"))
    assert text.exit_code == 0
    assert text.stdout.startswith("leung@example.com: score 131, grade -, CRM lead\n")
    assert "-10  Careers: page action 'Careers'" in text.stdout
    assert text.stdout == snapshot


def test_explain_unknown_email(repo: Path, tmp_path: Path) -> None:
    assert run_example(tmp_path).exit_code == 0
    res = invoke("explain", "nobody@example.com", "--store", str(tmp_path / "gc.db"))
    no_crash(res)
    assert res.exit_code == 2  # a wrong argument (docs/exit-codes.md), not findings in rules
    assert "no prospect 'nobody@example.com'" in res.stderr


def test_action_log_holds_every_explained_record(repo: Path, tmp_path: Path) -> None:
    actions = tmp_path / "a.jsonl"
    assert run_example(tmp_path, "--actions", str(actions)).exit_code == 0
    log = [json.loads(x) for x in actions.read_text().splitlines()]
    assert [r["seq"] for r in log] == list(range(1, len(log) + 1))
    by_seq = {r["seq"]: r for r in log}
    ex = explain_json(LEUNG, tmp_path / "gc.db")
    for key in ("score", "lists", "tags", "fields", "rules_matched", "outbox_and_crm"):
        for r in ex[key]:
            # A step of a visitor's history names the anonymous view behind it, read back
            # from the activities (the action log's record has the visitor only).
            view = r.pop("attached_view", None)
            assert (view is not None) == ("attached_from" in (r["args"] or {}))
            assert by_seq[r["seq"]] == r
    points = [r["args"]["points"] for r in log if r["prospect"] == LEUNG and r["action"] == "score"]
    assert sum(points) == 131


# ---------------------------------------------------------------- inputs


def test_bad_lines_exit_3_with_rejects_beside_the_store(tmp_path: Path) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_text(GOOD + "{oops\n" + '{"ts":"2026-11-02T09:00:00Z","type":"nope"}\n' + GOOD)
    res = invoke("run", str(ROOT / RULES), str(events), "--store", str(tmp_path / "s.db"))
    assert res.exit_code == 3, res.stderr
    rejects = [json.loads(x) for x in (tmp_path / "s.rejects.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2, 3]
    assert all(r["reason"] for r in rejects)
    assert "nope" in rejects[1]["reason"]


def test_summary_names_the_whole_rejects_path(tmp_path: Path) -> None:
    deep = tmp_path / ("a-long-folder-name-" * 3) / "run"
    deep.mkdir(parents=True)
    events = deep / "ev.jsonl"
    events.write_text("{oops\n" + GOOD)
    res = invoke("run", str(ROOT / RULES), str(events), "--store", str(deep / "s.db"))
    assert res.exit_code == 3
    assert str(deep / "s.rejects.jsonl") in res.stderr


def test_rejects_path_option(tmp_path: Path) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_text("not json\n" + GOOD)
    out = tmp_path / "elsewhere" / "bad.jsonl"
    out.parent.mkdir()
    args = ["--store", str(tmp_path / "s.db"), "--rejects", str(out), "-q"]
    res = invoke("run", str(ROOT / RULES), str(events), *args)
    assert res.exit_code == 3
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == [1]
    assert not (tmp_path / "s.rejects.jsonl").exists()
    assert res.stderr == ""  # -q: no table


def test_gzip_input_same_as_plain(repo: Path, tmp_path: Path) -> None:
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress((ROOT / EVENTS).read_bytes()))
    assert run_example(tmp_path).exit_code == 0
    res = invoke("run", RULES, str(gz), "--store", str(tmp_path / "gz.db"), "-q")
    assert res.exit_code == 0, res.stderr
    assert export(tmp_path / "gz.db") == export(tmp_path / "gc.db")


def test_stdin_input_same_as_file(repo: Path, tmp_path: Path) -> None:
    assert run_example(tmp_path).exit_code == 0
    data = (ROOT / EVENTS).read_bytes()
    res = invoke("run", RULES, "-", "--store", str(tmp_path / "in.db"), "-q", input=data)
    assert res.exit_code == 0, res.stderr
    assert export(tmp_path / "in.db") == export(tmp_path / "gc.db")


def _run_through_fifo(fifo: Path, data: bytes, store: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "mrules", "run", RULES, str(fifo), "--store", str(store), "-q"]
    return run_reading_pipe(cmd, fifo, data)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_read_like_standard_input(tmp_path: Path) -> None:
    """A pipe is a stream, not a file: it was refused as "no such file", and a line
    position kept under its path would skip the next run's first lines."""
    assert run_example(tmp_path).exit_code == 0
    fifo = tmp_path / "events.pipe"
    os.mkfifo(fifo)
    store = tmp_path / "pipe.db"
    first = _run_through_fifo(fifo, (ROOT / EVENTS).read_bytes(), store)
    assert first.returncode == 0, first.stderr
    assert export(store) == export(tmp_path / "gc.db")
    # The same pipe again, with one new event: it is line 1, and it is applied.
    new = GOOD.replace("a@example.com", "piped@example.com")
    second = _run_through_fifo(fifo, new.encode(), store)
    assert second.returncode == 0, second.stderr
    assert "piped@example.com" in export(store)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("name", ["events.jsonl.gz", "events.pipe"])
def test_gzip_through_a_named_pipe_is_read(tmp_path: Path, name: str) -> None:
    """`mrules run RULES <(cat events.jsonl.gz)`: the reader checked the gzip data for
    damage by reading it all, then went back to its start, which a pipe cannot: `cannot
    read: Illegal seek` (exit 2), and the pipe's data was gone. A pipe is read once, its
    damage found at the checksum (docs/events.md)."""
    assert run_example(tmp_path).exit_code == 0
    fifo = tmp_path / name
    os.mkfifo(fifo)
    store = tmp_path / "pipe.db"
    res = _run_through_fifo(fifo, gzip.compress((ROOT / EVENTS).read_bytes()), store)
    assert res.returncode == 0, res.stderr
    assert export(store) == export(tmp_path / "gc.db")


def test_cut_gzip_file_commits_the_lines_before_the_cut(repo: Path, tmp_path: Path) -> None:
    """A half-downloaded .gz stops the run with exit 2, but the whole lines before the cut
    are applied and committed; the complete file then resumes after them."""
    assert run_example(tmp_path).exit_code == 0
    packed = gzip.compress((ROOT / EVENTS).read_bytes())
    cut = tmp_path / "events.jsonl.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    whole = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut.read_bytes()).count(b"\n")
    assert whole > 0
    store = tmp_path / "cut.db"
    res = invoke("run", RULES, str(cut), "--store", str(store), "-q")
    no_crash(res)
    assert res.exit_code == 2
    assert "broken gzip data" in res.stderr
    assert f"the store keeps lines 1-{whole} of" in res.stderr
    assert "repair or complete the file" in res.stderr
    assert export(store)  # the prospects of those lines are there
    cut.write_bytes(packed)  # the download completes
    again = invoke("run", RULES, str(cut), "--store", str(store), "-q")
    assert again.exit_code == 0, again.stderr
    assert export(store) == export(tmp_path / "gc.db")


@pytest.mark.parametrize("where", [0.3, 0.5, 0.7])
def test_damaged_gzip_data_applies_nothing_of_the_file(
    repo: Path, tmp_path: Path, where: float
) -> None:
    """gzip checks its CRC only at the end: a byte flipped inside the data gave wrong
    lines first (rejected, committed as read), then the error, and the run on the
    restored file resumed after them: real events lost. Now the file is checked
    first, nothing of it is applied, and the restored file gives the clean result."""
    assert run_example(tmp_path).exit_code == 0
    packed = gzip.compress((ROOT / EVENTS).read_bytes())
    damaged = bytearray(packed)
    damaged[int(len(packed) * where)] ^= 0xFF
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(bytes(damaged))
    store = tmp_path / "damaged.db"
    res = invoke("run", RULES, str(path), "--store", str(store), "-q")
    no_crash(res)
    assert res.exit_code == 2
    assert "damaged gzip data" in res.stderr or "broken gzip data" in res.stderr
    assert "nothing of this file was applied" in res.stderr
    assert not (tmp_path / "damaged.rejects.jsonl").exists() or not (
        tmp_path / "damaged.rejects.jsonl"
    ).read_text("utf-8")
    path.write_bytes(packed)  # restored from a good copy
    again = invoke("run", RULES, str(path), "--store", str(store), "-q")
    assert again.exit_code == 0, again.stderr
    assert export(store) == export(tmp_path / "gc.db")


def _on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """`mrules ARGV` with standard error on a terminal (the progress bar on): the exit
    status and what the terminal showed."""
    code, _out, shown = on_a_terminal([sys.executable, "-m", "mrules", *argv])
    return code, shown


@pytest.mark.parametrize("case", ["damaged", "not-gzip"])
def test_a_gz_file_is_checked_on_a_terminal_as_in_a_pipe(
    repo: Path, tmp_path: Path, case: str
) -> None:
    """On a terminal `mrules run` opens the events file itself, for its progress bar, and
    the reader took the open file for a stream: a damaged .gz was applied up to the bad
    checksum (wrong lines rejected and committed as read) and a plain file named .gz was
    read as text, where the same command in a script or CI refused both whole."""
    packed = gzip.compress((ROOT / EVENTS).read_bytes())
    path = tmp_path / "events.jsonl.gz"
    if case == "damaged":
        damaged = bytearray(packed)
        damaged[len(packed) // 2] ^= 0xFF
        path.write_bytes(bytes(damaged))
        said = "nothing of this file was applied"
    else:
        path.write_bytes((ROOT / EVENTS).read_bytes())
        said = "not gzip data, though its name ends in .gz"
    store = tmp_path / "t.db"
    piped = invoke("run", RULES, str(path), "--store", str(tmp_path / "piped.db"))
    assert piped.exit_code == 2 and said in piped.stderr, piped.stderr
    code, shown = _on_a_terminal(["run", RULES, str(path), "--store", str(store)])
    assert code == 2, shown
    assert said in shown, shown
    assert "Traceback" not in shown
    assert invoke("state", "export", "--store", str(store)).stdout == ""
    assert not (tmp_path / "t.rejects.jsonl").exists()


def test_events_that_cannot_be_opened_on_a_terminal_are_a_usage_error(
    repo: Path, tmp_path: Path
) -> None:
    """On a terminal `mrules run` opens the events itself, for its progress bar, and an
    error there was not the reader's `cannot read` (exit 2): a socket given as EVENTS was
    an internal error (exit 70), a file without read permission `cannot write` (exit 4)."""
    import socket

    sock = tmp_path / "events.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        try:
            listening.bind(str(sock))
        except OSError as e:  # a temporary folder too deep for a socket's name
            pytest.skip(f"cannot make a socket there: {e}")
        store = tmp_path / "t.db"
        piped = invoke("run", RULES, str(sock), "--store", str(tmp_path / "piped.db"))
        assert piped.exit_code == 2, piped.output
        assert "cannot read: No such device or address" in piped.stderr
        # nothing was read: no word of lines kept, of repairs or of pipes not resumed
        assert piped.stderr.strip().endswith("cannot read: No such device or address"), piped.stderr
        code, shown = _on_a_terminal(["run", RULES, str(sock), "--store", str(store)])
    assert code == 2, shown
    assert f"{sock}: cannot read: No such device or address" in shown
    assert "internal error" not in shown and "Traceback" not in shown


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("rejects-is-store", "--rejects my.db is the store my.db"),
        ("diagnostics-is-events", "--diagnostics ev.jsonl is the events file ev.jsonl"),
        ("rejects-is-actions", "--rejects out.jsonl is also the output of --actions"),
        ("rejects-hard-link-to-events", "--rejects hard.jsonl is the events file ev.jsonl"),
        ("rejects-is-a-rule-file", "is a rule file of rules"),
        ("default-rejects-is-events", "the rejects file (the default beside --store mrules.db)"
         " mrules.rejects.jsonl is the events file mrules.rejects.jsonl"),
    ],
)  # fmt: skip
def test_an_output_that_is_an_input_is_refused_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, message: str
) -> None:
    """With nothing to report a run removes a stale rejects file: pointed at the store or the
    events, it deleted them (exit 0). Now every input and output is checked first."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / RULES, "rules")
    events = (ROOT / EVENTS).read_bytes()
    Path("ev.jsonl").write_bytes(events)
    assert invoke("run", "rules", "ev.jsonl", "--store", "my.db", "-q").exit_code == 0
    store = Path("my.db").read_bytes()
    args = {
        "rejects-is-store": ["ev.jsonl", "--store", "my.db", "--rejects", "my.db"],
        "diagnostics-is-events": ["ev.jsonl", "--store", "o.db", "--diagnostics", "ev.jsonl"],
        "rejects-is-actions": ["ev.jsonl", "--store", "o.db", "--rejects", "out.jsonl",
                               "--actions", "out.jsonl"],
        "rejects-hard-link-to-events": ["ev.jsonl", "--store", "o.db", "--rejects", "hard.jsonl"],
        "rejects-is-a-rule-file": ["ev.jsonl", "--store", "o.db", "--rejects",
                                   "rules/00-declarations.mr"],
        "default-rejects-is-events": ["mrules.rejects.jsonl"],
    }[case]  # fmt: skip
    os.link("ev.jsonl", "hard.jsonl")
    Path("mrules.rejects.jsonl").write_bytes(events)
    before = {p: p.read_bytes() for p in Path().rglob("*") if p.is_file()}
    res = invoke("run", "rules", *args, "-q")
    no_crash(res)
    assert res.exit_code == 2
    assert message in res.stderr and "writing it would destroy it" in res.stderr
    assert {p: p.read_bytes() for p in Path().rglob("*") if p.is_file()} == before
    assert Path("my.db").read_bytes() == store


@pytest.mark.parametrize(
    ("option", "path", "message"),
    [
        ("--diagnostics", "g.sync.db", "--diagnostics g.sync.db is the sync file g.sync.db"),
        ("--rejects", "./g.crm.db", "--rejects ./g.crm.db is the local CRM file g.crm.db"),
        ("--actions", "g.sync.db", "--actions g.sync.db is the sync file g.sync.db"),
    ],
)
def test_the_sync_and_crm_files_beside_the_store_are_refused_as_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, path: str, message: str
) -> None:
    """`--diagnostics g.sync.db` (or `--rejects g.crm.db`) on a run with nothing to report
    removed the sync's state and the local CRM beside the store `g.db`, exit 0."""
    monkeypatch.chdir(tmp_path)
    rules, events = str(ROOT / RULES), str(ROOT / EVENTS)
    assert invoke("run", rules, events, "--store", "g.db", "-q").exit_code == 0
    loaded = invoke("crm", "load", str(ROOT / "examples/getcloudy/crm"), "--store", "g.db")
    assert loaded.exit_code == 0, loaded.output
    synced = invoke("sync", "run", "--rules", rules, "--store", "g.db",
                    "--until", "2026-11-10T00:00:00Z")  # fmt: skip
    assert synced.exit_code == 0, synced.output
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert {"g.sync.db", "g.crm.db"} <= set(before)
    res = invoke("run", rules, events, "--store", "g.db", option, path, "-q")
    no_crash(res)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "writing it would destroy it" in res.stderr, res.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_a_line_still_being_written_is_read_by_the_next_run(tmp_path: Path) -> None:
    """A file that ends mid-line: the cut line was rejected for good and the position
    moved past it, so its event was lost once the writer finished the line."""

    def submit(who: str) -> str:
        return (f'{{"ts":"2026-11-02T09:00:00Z","type":"form_submit","prospect":"{who}",'
                '"asset":"Demande Get Cloudy"}')  # fmt: skip

    events, store = tmp_path / "grow.jsonl", tmp_path / "g.db"
    cut = len(submit("b@x.com")) // 2
    events.write_text(submit("a@x.com") + "\n" + submit("b@x.com")[:cut])
    first = invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q")
    assert first.exit_code == 0, first.stderr
    assert "line 2 of" in first.stderr and "not applied" in first.stderr
    assert sorted(export(store)) == ["a@x.com"]
    with events.open("a") as f:
        f.write(submit("b@x.com")[cut:] + "\n" + submit("c@x.com") + "\n")
    second = invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q")
    assert second.exit_code == 0, second.stderr
    assert sorted(export(store)) == ["a@x.com", "b@x.com", "c@x.com"]
    assert not (tmp_path / "g.rejects.jsonl").exists()
    # On standard input nothing comes back for it: the cut line is rejected.
    piped = invoke("run", str(ROOT / RULES), "-", "--store", str(tmp_path / "s.db"), "-q",
                   input=submit("d@x.com")[:cut])  # fmt: skip
    assert piped.exit_code == 3


def test_an_email_given_in_another_unicode_form_names_the_same_prospect(tmp_path: Path) -> None:
    """Events fold `José` (NFC) and `JOSE\u0301` (NFD) to one prospect; `explain` and
    `state export --prospect` said there was no such prospect, or printed nothing."""
    events, store = tmp_path / "n.jsonl", tmp_path / "n.db"
    events.write_text(
        '{"ts":"2026-11-02T09:00:00Z","type":"form_submit",'
        '"prospect":"Jos\\u00e9@example.com","asset":"Demande Get Cloudy"}\n'
    )
    assert invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q").exit_code == 0
    decomposed = "JOSE\u0301@example.com"
    explained = invoke("explain", decomposed, "--store", str(store))
    assert explained.exit_code == 0, explained.stderr
    assert explained.stdout.startswith("jos\u00e9@example.com: score 50")
    exported = invoke("state", "export", "--store", str(store), "--prospect", decomposed)
    emails = [json.loads(x)["email"] for x in exported.stdout.splitlines()]
    assert emails == ["jos\u00e9@example.com"]


def test_a_file_replaced_by_a_shorter_one_is_refused_not_skipped(tmp_path: Path) -> None:
    """Resume goes by line: a new file at the same path with fewer lines than the position
    was read to its end and skipped whole, silently (exit 0, nothing applied)."""

    def lines(prefix: str, n: int) -> str:
        return "".join(
            f'{{"ts":"2026-11-02T09:00:{i:02d}Z","type":"form_submit",'
            f'"prospect":"{prefix}{i}@x.com","asset":"Demande Get Cloudy"}}\n'
            for i in range(n)
        )

    events, store = tmp_path / "daily.jsonl", tmp_path / "r.db"
    events.write_text(lines("old", 10))
    assert invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q").exit_code == 0
    events.write_text(lines("new", 3))  # rotated: same name, another day's events
    res = invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q")
    no_crash(res)
    assert res.exit_code == 2
    assert "has 3 lines, fewer than the 10 already read" in res.stderr
    assert "under a new name" in res.stderr and "resumes after" not in res.stderr
    renamed = tmp_path / "daily-2.jsonl"
    events.rename(renamed)
    again = invoke("run", str(ROOT / RULES), str(renamed), "--store", str(store), "-q")
    assert again.exit_code == 0
    assert sum(e.startswith("new") for e in export(store)) == 3


def _submits(prefix: str, n: int) -> str:
    return "".join(
        f'{{"ts":"2026-11-02T09:00:{i:02d}Z","type":"form_submit",'
        f'"prospect":"{prefix}{i}@x.com","asset":"Demande Get Cloudy"}}\n'
        for i in range(n)
    )


def test_a_file_replaced_by_a_longer_one_is_refused_not_skipped(tmp_path: Path) -> None:
    """Tomorrow's export at the same path, longer than today's: its first lines were skipped
    by position, silently (exit 0), and those prospects lost. The store now keeps the last
    event applied from the file and checks it again."""
    events, store = tmp_path / "daily.jsonl", tmp_path / "r.db"
    events.write_text(_submits("old", 4))
    assert invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q").exit_code == 0
    before = export(store)
    events.write_text(_submits("new", 9))
    res = invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q")
    no_crash(res)
    assert res.exit_code == 2
    assert "daily.jsonl is not the file this store read 4 lines of" in res.stderr
    assert "its line 4 is not the event applied from it" in res.stderr
    assert "give the new file a new name" in res.stderr
    assert export(store) == before  # nothing of it applied
    renamed = tmp_path / "daily-2.jsonl"
    events.rename(renamed)
    again = invoke("run", str(ROOT / RULES), str(renamed), "--store", str(store), "-q")
    assert again.exit_code == 0
    assert sum(e.startswith("new") for e in export(store)) == 9


def test_a_file_appended_to_resumes_and_a_store_without_the_check_is_not_refused(
    tmp_path: Path,
) -> None:
    """The check must not refuse the normal case, a file that grows; nor a store written
    before mrules kept the check (it resumes by position, as it did)."""
    events, store = tmp_path / "live.jsonl", tmp_path / "r.db"
    first = _submits("a", 3)
    events.write_text(first[:-1])  # the last line not yet ended: whole JSON, applied
    assert invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q").exit_code == 0
    events.write_text(first + _submits("b", 2))
    assert invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q").exit_code == 0
    assert sorted(export(store)) == ["a0@x.com", "a1@x.com", "a2@x.com", "b0@x.com", "b1@x.com"]
    con = sqlite3.connect(store)
    with con:
        gone = con.execute("DELETE FROM meta WHERE key LIKE 'stream_anchor:%'").rowcount
    con.close()
    assert gone == 1
    events.write_text(_submits("c", 8))  # replaced, but the store cannot tell
    assert invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q").exit_code == 0
    assert sorted(e for e in export(store) if e.startswith("c")) == ["c5@x.com", "c6@x.com",
                                                                       "c7@x.com"]  # fmt: skip


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_with_nothing_to_report_only_a_regular_file_is_removed(tmp_path: Path) -> None:
    """A run with no rejects removes an earlier rejects file. Given `--rejects /dev/stdout`
    it removed /dev/stdout itself (as root); a link or a pipe is not a stale file."""
    target = tmp_path / "old-rejects.jsonl"
    target.write_text('{"line": 1}\n')
    link = tmp_path / "rejects.jsonl"
    link.symlink_to(target)
    fifo = tmp_path / "diagnostics.pipe"
    os.mkfifo(fifo)
    res = invoke("run", str(ROOT / RULES), str(ROOT / EVENTS), "--store", str(tmp_path / "s.db"),
                 "--rejects", str(link), "--diagnostics", str(fifo), "-q")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and target.read_text() == ""  # the link stays, emptied
    assert fifo.exists() and stat.S_ISFIFO(fifo.stat().st_mode)
    stale = tmp_path / "stale.jsonl"
    stale.write_text('{"line": 1}\n')
    res = invoke("run", str(ROOT / RULES), str(ROOT / EVENTS), "--store", str(tmp_path / "t.db"),
                 "--rejects", str(stale), "-q")  # fmt: skip
    assert res.exit_code == 0 and not stale.exists()  # a regular file is removed, as before


def test_rule_set_with_errors_refuses_to_run(tmp_path: Path) -> None:
    rules = tmp_path / "bad.mr"
    rules.write_text('form "A"\non submit of form "A" { add to list "Nope" }\n')
    events = tmp_path / "ev.jsonl"
    events.write_text(GOOD)
    res = invoke("run", str(rules), str(events), "--store", str(tmp_path / "s.db"))
    no_crash(res)
    assert res.exit_code == 1
    assert "error[" in res.stderr and "Nope" in res.stderr
    assert not (tmp_path / "s.db").exists()


def test_missing_events_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.jsonl")
    res = invoke("run", str(ROOT / RULES), missing, "--store", str(tmp_path / "s.db"))
    no_crash(res)
    assert res.exit_code == 2
    assert "nope.jsonl" in res.stderr and "no such file" in res.stderr


def test_store_path_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    events = tmp_path / "ev.jsonl"
    events.write_text(GOOD)
    res = invoke("run", str(ROOT / RULES), str(events), "--store", str(tmp_path / "dir.db"))
    no_crash(res)
    assert res.exit_code == 2
    assert "dir.db" in res.stderr and "mrules: error:" in res.stderr


def test_missing_rules(tmp_path: Path) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_text(GOOD)
    res = invoke("run", str(tmp_path / "no-rules"), str(events), "--store", str(tmp_path / "s.db"))
    no_crash(res)
    assert res.exit_code == 2
    assert "no-rules" in res.stderr


def test_export_of_a_missing_store(tmp_path: Path) -> None:
    res = invoke("state", "export", "--store", str(tmp_path / "none.db"))
    no_crash(res)
    assert res.exit_code == 2
    assert "none.db" in res.stderr


def test_copied_store_reads_the_same(repo: Path, tmp_path: Path) -> None:
    """A finished store is self-contained: a copy exports the same prospects."""
    assert run_example(tmp_path).exit_code == 0
    shutil.copy(tmp_path / "gc.db", tmp_path / "copy.db")
    assert export(tmp_path / "copy.db") == export(tmp_path / "gc.db")


@pytest.mark.parametrize("option", ["--actions", "--rejects"])
def test_an_output_in_a_missing_folder_is_a_usage_error(tmp_path: Path, option: str) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_text("not json\n" + GOOD)
    target = tmp_path / "no-such-folder" / "out.jsonl"
    res = invoke(
        "run",
        str(ROOT / RULES),
        str(events),
        "--store",
        str(tmp_path / "s.db"),
        option,
        str(target),
        "-q",
    )
    no_crash(res)
    assert res.exit_code == 2, res.output
    assert res.stderr == (
        f"mrules: error: {option} {target}: {target.parent} does not exist; create it first"
        " (mrules creates no folders)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.jsonl"], "nothing was written"


def test_a_rerun_of_a_stream_with_rejects_still_exits_3(tmp_path: Path) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_text("not json\n" + GOOD)
    args = ["run", str(ROOT / RULES), str(events), "--store", str(tmp_path / "s.db"), "-q"]
    assert invoke(*args).exit_code == 3
    again = invoke(*args)  # nothing new to read; the stream still has a rejected line
    assert again.exit_code == 3
    assert [
        json.loads(x)["line"] for x in (tmp_path / "s.rejects.jsonl").read_text().split("\n") if x
    ] == [1]


def summary_rows(stderr: str) -> dict[str, str]:
    return {
        line.strip("│ ").split("│")[0].strip(): line.split("│")[2].strip()
        for line in stderr.splitlines()
        if line.count("│") == 3
    }


def test_a_resumed_run_counts_the_earlier_rejects_it_exits_3_for(tmp_path: Path) -> None:
    """Exit 3 for lines an earlier run rejected: the summary says so and where they
    are, not `rejected 0` and no file."""
    events = tmp_path / "ev.jsonl"
    events.write_text("not json\n" + GOOD + "{}\n")
    args = ["run", str(ROOT / RULES), str(events), "--store", str(tmp_path / "s.db")]
    first = invoke(*args)
    assert first.exit_code == 3, first.stderr
    assert summary_rows(first.stderr)["rejected"] == "2  → " + str(tmp_path / "s.rejects.jsonl")
    again = invoke(*args)  # nothing new to read
    assert again.exit_code == 3, again.stderr
    rejects = str(tmp_path / "s.rejects.jsonl")
    assert summary_rows(again.stderr)["rejected"] == f"0 (+2 from earlier runs)  → {rejects}"
    with events.open("a") as f:
        f.write("[1]\n" + GOOD.replace("a@example", "b@example"))
    third = invoke(*args)
    assert third.exit_code == 3, third.stderr
    assert summary_rows(third.stderr)["lines read"] == "2"
    assert summary_rows(third.stderr)["rejected"] == f"1 (+2 from earlier runs)  → {rejects}"
    lines = (tmp_path / "s.rejects.jsonl").read_text().splitlines()
    assert [json.loads(x)["line"] for x in lines] == [1, 3, 4]


@pytest.mark.parametrize("url", ["postgresql://u@127.0.0.1:1/db", "postgresql://"])
def test_a_postgresql_store_without_psycopg_is_a_usage_error(tmp_path: Path, url: str) -> None:
    """A missing extra is for the command to fix (exit 2), as `--crm salesforce` and
    `--engine dask` say; `postgresql://` alone is a URL (libpq's defaults), not a folder."""
    no_psycopg = (
        "import sys; sys.modules['psycopg'] = None; from mrules.cli import main;"
        " sys.argv[0] = 'mrules'; main()"
    )
    res = subprocess.run(
        [sys.executable, "-c", no_psycopg, "run", RULES, EVENTS, "--store", url, "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    assert "needs psycopg: pip install 'mrules[postgres]'" in res.stderr
    assert "names a folder" not in res.stderr and "Traceback" not in res.stderr
    assert not list(tmp_path.iterdir())


def test_explain_shows_the_opt_out_of_an_unsubscribe_after_a_field_opted_in(
    tmp_path: Path,
) -> None:
    """`opted_out: false` given in a form's fields, then an `unsubscribe`: the prospect is
    opted out, but explain's fields still said `opted_out = false`, from the form."""
    events, store = tmp_path / "o.jsonl", tmp_path / "o.db"
    events.write_text(
        '{"ts":"2026-11-02T09:00:00Z","type":"prospect_update","prospect":"o@x.com",'
        '"fields":{"opted_out":true}}\n'
        '{"ts":"2026-11-02T09:01:00Z","type":"prospect_update","prospect":"o@x.com",'
        '"fields":{"opted_out":false}}\n'
        '{"ts":"2026-11-02T09:02:00Z","type":"unsubscribe","prospect":"o@x.com"}\n'
    )
    assert invoke("run", str(ROOT / RULES), str(events), "--store", str(store), "-q").exit_code == 0
    assert export(store)["o@x.com"]["opted_out"] is True
    ex = explain_json("o@x.com", store)
    [opted] = [r for r in ex["fields"] if r["args"]["field"] == "opted_out"]
    assert (opted["action"], opted["after"], opted["event"]["line"]) == ("opt out", True, 3)
    text = invoke("explain", "o@x.com", "--store", str(store)).stdout
    assert "opted_out = true: event unsubscribe" in text and "opted_out = false" not in text


@pytest.mark.parametrize("under", ["x.db", "sub/x.db"])
def test_a_store_under_a_file_says_the_parent_is_a_file(tmp_path: Path, under: str) -> None:
    """`--store events.jsonl/x.db` said "folder ... does not exist" of a file that exists."""
    events = tmp_path / "events.jsonl"
    shutil.copyfile(EXAMPLE / "events.jsonl", events)
    store = f"{events}/{under}"
    cmd = [sys.executable, "-m", "mrules", "run", str(EXAMPLE / "rules"), str(events),
           "--store", store, "-q"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert f"cannot create store {store}: {events} is a file, not a folder" in res.stderr
    assert "does not exist" not in res.stderr
    read = subprocess.run([sys.executable, "-m", "mrules", "state", "export", "--store", store],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert read.returncode == 2, read.stderr
    assert f"no store at {store}: {events} is a file, not a folder" in read.stderr
    assert events.read_bytes() == (EXAMPLE / "events.jsonl").read_bytes()


def test_a_partitioned_run_into_a_store_under_a_file_says_the_parent_is_a_file(
    tmp_path: Path,
) -> None:
    part, events = tmp_path / "part", tmp_path / "events.jsonl"
    shutil.copyfile(EXAMPLE / "events.jsonl", events)
    made = subprocess.run([sys.executable, "-m", "mrules", "partition", str(events),
                           "--buckets", "2", "--out", str(part)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    res = subprocess.run([sys.executable, "-m", "mrules", "run", str(EXAMPLE / "rules"),
                          str(part), "--store", f"{events}/x.db", "-q"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert f"{events} is a file, not a folder; give another --store path" in res.stderr


@pytest.mark.parametrize("events", ["-", EVENTS])
def test_an_interrupt_while_the_store_opens_is_not_said_to_resume_a_pipe(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: str
) -> None:
    """Ctrl-C between the store's lock and the run's start (a slow open, a migration) fell
    to the catch-all message, "running the same command again resumes", which a pipe
    never does (tests/test_slow_stream.py saw it under load)."""
    import mrules.cli.run_cmd as run_cmd

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(run_cmd, "open_store", interrupted)
    res = invoke("run", RULES, events, "--store", str(tmp_path / "s.db"), input=GOOD)
    no_crash(res)
    assert res.exit_code == 130, res.output
    assert "interrupted before the run began; the store keeps what was committed" in res.output
    if events == "-":
        assert "not resumed by position" in res.output and "resumes" not in res.output
    else:
        assert "running the same command again starts it" in res.output


def test_the_rules_run_retroactively_are_listed_in_order(tmp_path: Path) -> None:
    """The summary's `retroactive` row lists the rules new to the store sorted, whatever
    order a set of them comes in (found by mutation testing of engine/run.py: the set's
    own order passed)."""
    (tmp_path / "one.mr").write_text('form "F"\n', "utf-8")
    names = ["Kilo", "Alpha", "Echo", "Bravo", "Delta", "Charlie"]
    (tmp_path / "two.mr").write_text(
        'form "F"\ntag "t"\n'
        + "".join(
            f'automation rule "{n}" priority {i} {{ when all {{ submitted form "F" }}'
            ' then { add tag "t" } }\n'
            for i, n in enumerate(names, 1)
        ),
        "utf-8",
    )
    (tmp_path / "one.jsonl").write_text(
        '{"ts":"2026-11-02T10:00:00Z","type":"form_submit","prospect":"ann@example.com",'
        '"asset":"F"}\n',
        "utf-8",
    )
    (tmp_path / "two.jsonl").write_text("", "utf-8")
    store = str(tmp_path / "s.db")
    r = CliRunner().invoke(main, ["run", str(tmp_path / "one.mr"), str(tmp_path / "one.jsonl"),
                                  "--store", store, "-q"])  # fmt: skip
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        main, ["run", str(tmp_path / "two.mr"), str(tmp_path / "two.jsonl"), "--store", store]
    )
    assert r.exit_code == 0, r.output
    [row] = [line for line in r.stderr.splitlines() if "│ retroactive " in line]
    listed = row.split("│")[2].strip()
    assert listed == ", ".join(f"rule:{n}" for n in sorted(names)), row


def test_the_summary_s_time_is_the_run_s_own(repo: Path, tmp_path: Path) -> None:
    """`time` (and `events/s`, made of it) is how long the events took to apply: no
    longer than the whole command."""
    began = time.perf_counter()
    res = run_example(tmp_path)
    took = time.perf_counter() - began
    assert res.exit_code == 0, res.stderr
    rows = summary_rows(res.stderr)
    seconds = float(rows["time"].removesuffix(" s"))
    assert 0 <= seconds <= took + 0.005  # shown to the hundredth


def test_now_on_a_new_store_with_no_event_moves_its_clock(tmp_path: Path) -> None:
    """`--now` on a store no event has set the clock of (an empty file) is that time; it
    compared the time with no clock at all."""
    (tmp_path / "none.jsonl").write_text("")
    store = tmp_path / "s.db"
    res = invoke("run", RULES, str(tmp_path / "none.jsonl"), "--store", str(store), "-q",
                 "--now", "2026-11-10T00:00:00Z")  # fmt: skip
    assert res.exit_code == 0, res.output
    res = invoke("run", RULES, EVENTS, "--store", str(store), "-q")
    assert res.exit_code == 0, res.output
    # the events are older than the clock: each prospect is created at its first event
    assert export(store)[LEUNG]["created"] == "2026-11-02T09:02:10Z"


def test_a_file_that_was_empty_at_a_run_is_read_from_its_first_line_when_it_grows(
    tmp_path: Path,
) -> None:
    """A run of an empty file keeps its position in it: line 0, nothing read. The next runs
    of that file resume from there, as empty or grown."""
    events = tmp_path / "grows.jsonl"
    events.write_text("")
    store = tmp_path / "s.db"
    for _ in range(2):
        res = invoke("run", RULES, str(events), "--store", str(store), "-q")
        assert res.exit_code == 0, res.output
    shutil.copy(EVENTS, events)
    res = invoke("run", RULES, str(events), "--store", str(store), "-q")
    assert res.exit_code == 0, res.output
    assert export(store)[LEUNG]["created"] == "2026-11-02T09:02:10Z"


def test_the_steps_of_a_now_tick_name_no_event_line(tmp_path: Path) -> None:
    """The time-based rules a `--now` tick matches are said as by a tick, not as caused
    by some line of the stream."""
    assert run_example(tmp_path, "--now", "2027-03-01T00:00:00Z").exit_code == 0
    said = explain_json(LEUNG, tmp_path / "gc.db")
    steps = said["score"] + said["rules_matched"]
    ticked = [s for s in steps if s["time"] == "2027-03-01T00:00:00Z"]
    assert sorted(s["action"] for s in ticked) == ["rule matched", "score"]
    assert {(s["event"]["line"], s["event"]["id"]) for s in ticked} == {(None, None)}
