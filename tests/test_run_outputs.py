"""What `mrules run` writes besides state, across runs on one store: the rejects it keeps
and the diagnostics file (docs/outputs.md)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import mrules
from mrules.api import open_store
from mrules.cli import main
from unsettled import OSCILLATING, unchecked_rules

ROOT = Path(__file__).resolve().parent.parent
RULES = str(ROOT / "examples" / "getcloudy" / "rules")


def good(who: str, n: int = 0) -> str:
    return (
        f'{{"ts":"2026-11-02T09:00:{n:02d}Z","type":"page_view","prospect":"{who}@example.com",'
        '"url":"https://getcloudy.com/"}\n'
    )


def invoke(*args: str, input: str | None = None) -> Result:
    res = CliRunner().invoke(main, list(args), input=input)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_two_runs_on_standard_input_keep_both_runs_rejects(tmp_path: Path) -> None:
    """Each run on `-` numbers its lines from 1: the second run's rejected line 2 replaced
    the first run's in the store, and the first run's line 3 was shown as the second's."""
    store = str(tmp_path / "s.db")
    first = good("a") + "{oops\n" + '{"ts":"2026-11-02T09:00:00Z","type":"nope"}\n'
    res = invoke("run", RULES, "-", "--store", store, "-q", input=first)
    assert res.exit_code == 3, res.stderr
    second = "[1]\n" + good("b") + "{}\n" + good("c")
    res = invoke("run", RULES, "-", "--store", store, "-q", input=second)
    assert res.exit_code == 3, res.stderr
    got = [(r["source"], r["line"], r["text"]) for r in lines_of(tmp_path / "s.rejects.jsonl")]
    assert got == [
        ("- (run 1)", 2, "{oops"),
        ("- (run 1)", 3, '{"ts":"2026-11-02T09:00:00Z","type":"nope"}'),
        ("- (run 2)", 1, "[1]"),
        ("- (run 2)", 3, "{}"),
    ]
    # a third run with no bad line still shows them (and exits 3, as a file's rerun does)
    res = invoke("run", RULES, "-", "--store", store, input=good("d"))
    assert res.exit_code == 3, res.stderr
    assert "0 (+4 from earlier runs)" in res.stderr
    assert len(lines_of(tmp_path / "s.rejects.jsonl")) == 4


def test_each_run_on_standard_input_is_counted_though_nothing_else_changed(
    tmp_path: Path,
) -> None:
    """The count of runs on `-` is kept by every run, not only by one that changes the
    store's other shared state: the third run of the same rules was numbered 2 again, and
    its rejected line 1 replaced the second run's (found by mutation testing of
    engine/run.py)."""
    store = str(tmp_path / "s.db")
    for n in (1, 2, 3):
        res = invoke("run", RULES, "-", "--store", store, "-q", input=f"[{n}]\n" + good("a", n))
        assert res.exit_code == 3, res.stderr
    got = [(r["source"], r["line"], r["text"]) for r in lines_of(tmp_path / "s.rejects.jsonl")]
    assert got == [("- (run 1)", 1, "[1]"), ("- (run 2)", 1, "[2]"), ("- (run 3)", 1, "[3]")]


def test_a_file_resumed_twice_keeps_its_rejects_once(tmp_path: Path) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_text("{oops\n" + good("a"))
    args = ["run", RULES, str(events), "--store", str(tmp_path / "s.db"), "-q"]
    assert invoke(*args).exit_code == 3
    with events.open("a") as f:
        f.write("[2]\n" + good("b"))
    assert invoke(*args).exit_code == 3
    assert invoke(*args).exit_code == 3  # nothing new
    got = [(r["source"], r["line"]) for r in lines_of(tmp_path / "s.rejects.jsonl")]
    assert got == [(str(events), 1), (str(events), 3)]


def test_a_clean_run_on_another_stream_keeps_the_earlier_stream_s_rejects(
    tmp_path: Path,
) -> None:
    """The rejects file mirrors every stream's rejects the store holds: a clean run on
    day2 removed the file that listed day1's bad lines, though the store kept them."""
    day1, day2 = tmp_path / "day1.jsonl", tmp_path / "day2.jsonl"
    day1.write_text(good("a") + "{oops\n" + "[2]\n")
    day2.write_text(good("b", 1))
    store = str(tmp_path / "s.db")
    res = invoke("run", RULES, str(day1), "--store", store)
    assert res.exit_code == 3, res.stderr
    res = invoke("run", RULES, str(day2), "--store", store)
    assert res.exit_code == 0, res.stderr  # the summary and exit code are day2's
    assert "(+" not in res.stderr
    got = [(r["source"], r["line"], r["text"]) for r in lines_of(tmp_path / "s.rejects.jsonl")]
    assert got == [(str(day1), 2, "{oops"), (str(day1), 3, "[2]")]
    # an explicit --rejects gets the same content, streams in the order first seen
    (tmp_path / "day0.jsonl").write_text("{bad\n")
    res = invoke("run", RULES, str(tmp_path / "day0.jsonl"), "--store", store, "-q")
    assert res.exit_code == 3, res.stderr
    out = tmp_path / "r.jsonl"
    res = invoke("run", RULES, str(day2), "--store", store, "--rejects", str(out), "-q")
    assert res.exit_code == 0, res.stderr
    got = [(r["source"], r["line"]) for r in lines_of(out)]
    assert got == [(str(day1), 2), (str(day1), 3), (str(tmp_path / "day0.jsonl"), 1)]
    assert out.read_bytes() == (tmp_path / "s.rejects.jsonl").read_bytes()


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_runs_of_the_library_on_one_store_keep_every_run_s_rejects(
    tmp_path: Path, where: str
) -> None:
    """Iterables and standard input are source `-`: every store keeps each run's rejects."""
    store = open_store(":memory:" if where == "memory" else str(tmp_path / "s.db"))
    try:
        mrules.run(RULES, [good("a"), "{oops"], store=store)
        mrules.run(RULES, ["[1]", good("b")], store=store)
        got = [(r.source, r.line, r.text) for r in store.rejects()]
        assert got == [("- (run 1)", 2, "{oops"), ("- (run 2)", 1, "[1]")]
    finally:
        store.close()


def test_the_rejects_of_an_older_store_s_standard_input_stay_first(tmp_path: Path) -> None:
    """A store written before runs were told apart keeps its `-` rows; new runs add theirs."""
    from mrules.batch import Batch

    store = open_store(str(tmp_path / "s.db"))
    store.commit(Batch("-", 2, None, rejects=[("-", 2, "not JSON", "{oops")]))
    store.close()
    res = invoke("run", RULES, "-", "--store", str(tmp_path / "s.db"), "-q", input="[1]\n")
    assert res.exit_code == 3, res.stderr
    got = [(r["source"], r["line"]) for r in lines_of(tmp_path / "s.rejects.jsonl")]
    assert got == [("-", 2), ("- (run 1)", 1)]


def update(who: str, n: int, **fields: str) -> str:
    event = {"ts": f"2026-11-02T09:00:{n:02d}Z", "type": "prospect_update",
             "prospect": f"{who}@x.com", "id": f"{who}{n}", "fields": fields}  # fmt: skip
    return json.dumps(event) + "\n"


def test_a_resumed_run_keeps_the_diagnostics_of_prospects_it_did_not_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run with nothing unsettled removed the earlier run's diagnostics file."""
    rules = unchecked_rules(monkeypatch, tmp_path)
    events = tmp_path / "e.jsonl"
    events.write_text(update("a", 1) + update("b", 2) + update("c", 3))
    args = ["run", str(rules), str(events), "--store", str(tmp_path / "s.db"), "-q"]
    diagnostics = tmp_path / "s.diagnostics.jsonl"
    assert invoke(*args).exit_code == 0
    assert [r["prospect"] for r in lines_of(diagnostics)] == ["a@x.com", "b@x.com", "c@x.com"]
    with events.open("a") as f:  # b changes (a field: its lists settle); a and c do not
        f.write(update("b", 4, city="Lyon") + update("d", 5, city="Nantes"))
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    got = [(r["prospect"], r["line"]) for r in lines_of(diagnostics)]
    assert got == [("a@x.com", 1), ("c@x.com", 3), ("d@x.com", 5)]
    assert invoke(*args).exit_code == 0  # nothing new: the file stays as it is
    assert [(r["prospect"], r["line"]) for r in lines_of(diagnostics)] == got


_PAST_THE_LINT = (
    "import sys, mrules.cli.run_cmd as r; r.check = lambda program: []; "
    "from mrules.cli import main; sys.exit(main())"
)


def test_a_killed_run_keeps_the_diagnostics_of_what_it_committed(tmp_path: Path) -> None:
    """The diagnostics file was written at the end of a run only: a run killed after
    committing an unsettled prospect lost its report, and the resumed run, which does
    not apply that event again, never made it."""
    rules = tmp_path / "r.mr"
    rules.write_text(OSCILLATING)
    store, diagnostics = tmp_path / "s.db", tmp_path / "s.diagnostics.jsonl"
    cmd = [sys.executable, "-c", _PAST_THE_LINT, "run", str(rules), "-", "--store", str(store),
           "-q", "--commit-every", "1", "--commit-seconds", "0.05"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write(update("a", 1).encode())
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not diagnostics.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # the stream still open: killed mid-run
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert [r["prospect"] for r in lines_of(diagnostics)] == ["a@x.com"]
    rerun = subprocess.run(cmd, input=update("c", 2, city="Lyon").encode(), capture_output=True,
                           timeout=120, check=False)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert [r["prospect"] for r in lines_of(diagnostics)] == ["a@x.com", "c@x.com"]


def test_the_diagnostics_of_two_runs_on_standard_input_name_their_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both runs' reports are kept, and each run numbers its lines from 1: `-` line 1
    twice would not say which event of which run left the prospect unsettled."""
    rules = unchecked_rules(monkeypatch, tmp_path)
    args = ["run", str(rules), "-", "--store", str(tmp_path / "s.db"), "-q"]
    assert invoke(*args, input=update("a", 1)).exit_code == 0
    assert invoke(*args, input=update("b", 2)).exit_code == 0
    got = [
        (r["prospect"], r["source"], r["line"]) for r in lines_of(tmp_path / "s.diagnostics.jsonl")
    ]
    assert got == [("a@x.com", "- (run 1)", 1), ("b@x.com", "- (run 2)", 1)]


def test_explain_and_the_ledger_name_each_piped_run(tmp_path: Path) -> None:
    """The ledger and `explain` named every standard-input event `-`: two piped runs'
    line 1 read as the same line, though the rejects already said `- (run N)`."""
    store = str(tmp_path / "s.db")
    actions = str(tmp_path / "actions.jsonl")
    args = ["run", RULES, "-", "--store", store, "--actions", actions, "-q"]
    assert invoke(*args, input=good("a", 1)).exit_code == 0
    assert invoke(*args, input=good("a", 2)).exit_code == 0
    res = invoke("explain", "a@example.com", "--store", store, "--format", "json")
    assert res.exit_code == 0, res.stderr
    sources = {(r["event"]["source"], r["event"]["line"]) for r in json.loads(res.stdout)["score"]}
    assert sources == {("- (run 1)", 1), ("- (run 2)", 1)}
    logged = {(r["event"]["source"], r["event"]["line"]) for r in lines_of(Path(actions))}
    assert ("- (run 1)", 1) in logged and ("- (run 2)", 1) in logged
    assert "-" not in {source for source, _ in logged}
    text = invoke("explain", "a@example.com", "--store", store)
    assert text.exit_code == 0, text.stderr
    assert "event line 1 of - (run 1)" in text.stdout
    assert "event line 1 of - (run 2)" in text.stdout


# Killed right after the store committed a batch with a report, before the file's write.
_KILLED_AFTER_COMMIT = (
    "import os, signal, sys, mrules.cli.run_cmd as r, mrules.outputs as o; "
    "r.check = lambda program: []; "
    "o.DiagnosticsFile.commit = lambda self, batch: (batch.unsettled and "
    "os.kill(os.getpid(), signal.SIGKILL)); "
    "from mrules.cli import main; sys.exit(main())"
)


def test_a_kill_between_the_commit_and_the_diagnostics_file_is_healed_on_resume(
    tmp_path: Path,
) -> None:
    """The reports lived in the file only: a kill after the store's commit and before the
    file's write lost that batch's reports for good (the resumed run does not apply the
    event again). The store keeps them now, and the next run repairs the file."""
    rules = tmp_path / "r.mr"
    rules.write_text(OSCILLATING)
    store, diagnostics = tmp_path / "s.db", tmp_path / "s.diagnostics.jsonl"
    events = tmp_path / "ev.jsonl"
    events.write_text(update("a", 1))
    tail = ["run", str(rules), str(events), "--store", str(store), "-q"]
    killed = subprocess.run([sys.executable, "-c", _KILLED_AFTER_COMMIT, *tail],
                            capture_output=True, timeout=120, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not diagnostics.exists()  # the window: committed, not written
    with events.open("a") as f:
        f.write(update("c", 2, city="Lyon"))
    rerun = subprocess.run([sys.executable, "-c", _PAST_THE_LINT, *tail],
                           capture_output=True, timeout=120, check=False)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    got = [(r["prospect"], r["line"]) for r in lines_of(diagnostics)]
    assert got == [("a@x.com", 1), ("c@x.com", 2)]  # a's line 1 was not applied again


def test_an_upgraded_store_takes_in_its_diagnostics_file(tmp_path: Path) -> None:
    """A store from before the store kept the reports has them in its file only: the first
    run takes them in, rather than repair the file to the store's (none)."""
    import sqlite3

    store = tmp_path / "s.db"
    events = tmp_path / "ev.jsonl"
    events.write_text(good("a"))
    assert invoke("run", RULES, str(events), "--store", str(store), "-q").exit_code == 0
    with sqlite3.connect(store) as conn:  # as schema 5 left it: no note, no rows
        conn.execute("DELETE FROM meta WHERE key = 'diagnostics_kept'")
    report = {"prospect": "old@x.com", "source": "e.jsonl", "line": 3, "id": None,
              "reason": "its rules do not settle", "rules": []}  # fmt: skip
    (tmp_path / "s.diagnostics.jsonl").write_text(json.dumps(report) + "\n")
    with events.open("a") as f:
        f.write(good("b", 1))
    assert invoke("run", RULES, str(events), "--store", str(store), "-q").exit_code == 0
    assert lines_of(tmp_path / "s.diagnostics.jsonl") == [report]
    with open_store(str(store)) as st:
        assert [json.loads(r) for r in st.diagnostics()] == [report]


CALMED = """
tag "calm"
dynamic list "A" {
  when all {
    not in list "B"
    not tagged "calm"
  }
}
dynamic list "B" {
  when all {
    in list "A"
  }
}
segmentation rule "Calm" {
  when all {
    not tagged "calm"
  }
  then {
    add tag "calm"
  }
}
"""


def test_segment_drops_the_report_of_a_prospect_whose_rules_now_settle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mrules segment` changed the prospect (its rules settle now) and left its report."""
    rules = unchecked_rules(monkeypatch, tmp_path, CALMED)
    store = str(tmp_path / "s.db")
    diagnostics = tmp_path / "s.diagnostics.jsonl"
    res = invoke("run", str(rules), "-", "--store", store, "-q", input=update("a", 1))
    assert res.exit_code == 0, res.stderr
    assert [r["prospect"] for r in lines_of(diagnostics)] == ["a@x.com"]
    res = invoke("segment", str(rules), "--store", store)
    assert res.exit_code == 0, res.stderr
    assert not diagnostics.exists()
    with open_store(store) as st:
        assert st.diagnostics() == []


@pytest.mark.parametrize(
    ("suffix", "option"), [(".rejects.jsonl", "--rejects"), (".diagnostics.jsonl", "--diagnostics")]
)
def test_a_folder_where_a_file_beside_the_store_goes_is_refused_before_the_run(
    tmp_path: Path, suffix: str, option: str
) -> None:
    """The rejects file beside the store a folder: the run applied its lines, then failed
    (exit 4, `Is a directory; ... the next run writes the file again`), and so did every
    run after it. It is refused before the store is opened, saying what to do."""
    (tmp_path / f"s{suffix}").mkdir()
    events = tmp_path / "e.jsonl"
    events.write_text(good("ann") + "not json\n", "utf-8")
    r = CliRunner().invoke(main, ["run", RULES, str(events), "--store", str(tmp_path / "s.db")])
    assert r.exit_code == 2, r.output
    assert r.stderr == (
        f"mrules: error: {tmp_path}/s{suffix} is a folder, where the run writes its"
        f" {option[2:]} file beside the store: move it away, or give {option} FILE\n"
    )
    assert not (tmp_path / "s.db").exists()
    elsewhere = str(tmp_path / f"other{suffix}")
    r = CliRunner().invoke(
        main, ["run", RULES, str(events), "--store", str(tmp_path / "s.db"), option, elsewhere]
    )
    assert r.exit_code == 3, r.output  # given elsewhere, the run goes on (a line rejected)


@pytest.mark.parametrize("suffix", [".rejects.jsonl", ".diagnostics.jsonl"])
def test_a_named_pipe_where_a_file_beside_the_store_goes_is_refused(
    tmp_path: Path, suffix: str
) -> None:
    """A named pipe at the rejects (or diagnostics) file beside the store: the run applied
    its lines, then waited for a reader of the pipe for ever. It is refused before the
    store opens, as a folder there is. (A pipe given as --rejects is written to: the user
    chose it.)"""
    import os

    os.mkfifo(tmp_path / f"s{suffix}")
    events = tmp_path / "e.jsonl"
    events.write_text(good("ann") + "not json\n", "utf-8")
    argv = [sys.executable, "-m", "mrules", "run", RULES, str(events), "--store"]
    r = subprocess.run([*argv, str(tmp_path / "s.db")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    option = "--" + suffix.split(".")[1]
    assert r.stderr == (
        f"mrules: error: {tmp_path}/s{suffix} is a named pipe, where the run writes its"
        f" {option[2:]} file beside the store: move it away, or give {option} FILE\n"
    )
    assert not (tmp_path / "s.db").exists()


def test_the_rejects_file_lists_the_streams_in_the_order_the_store_first_kept_them(
    tmp_path: Path,
) -> None:
    """Every stream's rejected lines are in the file (docs/outputs.md): the streams in the
    order the store first kept a rejected line of theirs, not by name; runs on standard
    input by run number; each stream's lines by number."""
    rules = tmp_path / "r.mr"
    rules.write_text('form "Contact"\n')
    good = b'{"ts":"2026-11-02T09:00:00Z","type":"prospect_update","prospect":"a@x.com"}\n'
    store = tmp_path / "s.db"
    for name, text in (
        ("z.jsonl", b"{bad\n" + good + b"{bad\n"),
        ("-", good + b"{bad\n"),
        ("a.jsonl", b"{bad\n{bad\n"),
        ("-", b"{bad\n"),
        ("z.jsonl", b"{bad\n" + good + b"{bad\n" + b"{bad\n"),  # the file grew: line 4
    ):
        args = ["run", str(rules), "-", "--store", str(store), "-q"]
        if name != "-":
            (tmp_path / name).write_bytes(text)
            args[2] = str(tmp_path / name)
        res = CliRunner().invoke(main, args, input=text if name == "-" else None)
        assert res.exit_code == 3, res.output
    listed = [json.loads(x) for x in (tmp_path / "s.rejects.jsonl").read_text().splitlines()]
    z, a = str(tmp_path / "z.jsonl"), str(tmp_path / "a.jsonl")
    assert [(r["source"], r["line"]) for r in listed] == [
        (z, 1), (z, 3), (z, 4), ("- (run 1)", 2), (a, 1), (a, 2), ("- (run 2)", 1),
    ]  # fmt: skip
