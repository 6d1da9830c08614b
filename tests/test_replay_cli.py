"""`mrules replay --diff` through the CLI, checked against two separate `mrules run`s.

The data: tests/replay/lower-threshold.sed turns the example's MQL handoff
rule (score >= 100) into score >= 50 with a notification to Alan.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from conftest import example_rules_without_grading, run_reading_pipe
from mrules.cli import main

EXAMPLE = Path(__file__).parent.parent / "examples" / "getcloudy"
SED = Path(__file__).parent / "replay" / "lower-threshold.sed"


def _mrules(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _lowered(folder: Path) -> Path:
    """The example's rules with the lowered threshold, in `folder`/rules."""
    rules = folder / "rules"
    shutil.copytree(EXAMPLE / "rules", rules)
    automation = rules / "30-automation.mr"
    text = automation.read_text(encoding="utf-8")
    for line in SED.read_text().splitlines():
        _, old, new, _ = line.split("/")
        assert re.search(old, text), old
        text = re.sub(old, new.replace("\\n", "\n"), text)
    automation.write_text(text, encoding="utf-8")
    return rules


def _separate_run(rules: Path, store: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    res = _mrules("run", str(rules), str(EXAMPLE / "events.jsonl"), "--store", str(store))
    assert res.exit_code == 0, res.output
    export = _mrules("state", "export", "--store", str(store))
    outbox = _mrules("state", "outbox", "--store", str(store))
    state = {r["email"]: r for r in map(orjson.loads, export.stdout.splitlines())}
    return state, [orjson.loads(x) for x in outbox.stdout.splitlines()]


def _key(m: dict[str, Any]) -> tuple[str, str, str]:
    body = {
        k: v
        for k, v in m.items()
        if k not in ("seq", "time", "rule", "at", "prospect", "kind", "count", "reason")
    }
    return (m["prospect"], m["kind"], orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode())


@pytest.fixture
def lowered(tmp_path: Path) -> Path:
    return _lowered(tmp_path)


def test_diff_matches_two_separate_runs(tmp_path: Path, lowered: Path) -> None:
    old_state, old_outbox = _separate_run(EXAMPLE / "rules", tmp_path / "old.db")
    new_state, new_outbox = _separate_run(lowered, tmp_path / "new.db")
    mql_old = {e for e, r in old_state.items() if "MQL" in r["lists"]}
    mql_new = {e for e, r in new_state.items() if "MQL" in r["lists"]}
    gained_by_hand = Counter(map(_key, new_outbox)) - Counter(map(_key, old_outbox))
    lost_by_hand = Counter(map(_key, old_outbox)) - Counter(map(_key, new_outbox))
    assert sorted(mql_new - mql_old) == ["bob@bigcorp.example"]  # the data is what we think

    res = _mrules(
        "replay",
        "--diff",
        str(EXAMPLE / "rules"),
        str(lowered),
        str(EXAMPLE / "events.jsonl"),
        "--format",
        "json",
    )
    assert res.exit_code == 0, res.output
    d = orjson.loads(res.stdout)
    assert d["mql"]["gained"]["prospects"] == sorted(mql_new - mql_old)
    assert d["mql"]["lost"]["prospects"] == sorted(mql_old - mql_new)
    assert (d["mql"]["old"], d["mql"]["new"]) == (len(mql_old), len(mql_new))
    gained = Counter({_key(m): m["count"] for m in d["outbox"]["gained"]["messages"]})
    assert gained == gained_by_hand and gained  # the notifications that would have gone out
    assert d["outbox"]["lost"]["total"] == sum(lost_by_hand.values())
    assert (d["outbox"]["old"], d["outbox"]["new"]) == (len(old_outbox), len(new_outbox))
    assert d["prospects"]["old"] == len(old_state) and d["prospects"]["new"] == len(new_state)
    old_scores = sorted(r["score"] for r in old_state.values())
    assert d["score"]["old"]["max"] == old_scores[-1]
    assert d["score"]["old"]["mean"] == round(sum(old_scores) / len(old_scores), 2)
    changed_assign = sorted(
        e for e in new_state if old_state[e]["assigned"] != new_state[e]["assigned"]
    )
    assert d["assignment"]["prospects"] == changed_assign
    rule = next(r for r in d["rules"] if r["name"] == "MQL handoff")
    assert rule["after"] > rule["before"]
    reason = d["mql"]["gained"]["examples"][0]["reason"]
    assert reason.startswith("automation rule 'MQL handoff' (") and "30-automation.mr:3)" in reason
    assert "event line 10 id e09" in reason


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_events_from_a_named_pipe_same_as_the_file(tmp_path: Path, lowered: Path) -> None:
    """A pipe can be read once, and replay runs the stream twice: it keeps the lines."""
    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(lowered)]
    from_file = _mrules(*args, str(EXAMPLE / "events.jsonl"), "--format", "json")
    fifo = tmp_path / "events.pipe"
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "mrules", *args, str(fifo), "--format", "json"]
    from_pipe = run_reading_pipe(cmd, fifo, (EXAMPLE / "events.jsonl").read_bytes())
    assert from_pipe.returncode == 0, from_pipe.stderr
    assert "Traceback" not in from_pipe.stderr
    piped, filed = orjson.loads(from_pipe.stdout), orjson.loads(from_file.stdout)
    assert piped["mql"] == filed["mql"] and piped["outbox"] == filed["outbox"]
    assert piped["prospects"] == filed["prospects"]


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="no /dev/fd here")
def test_events_from_process_substitution_are_named_as_the_shell_gave_them(
    lowered: Path,
) -> None:
    """`<(zcat events.jsonl.gz)` gives /dev/fd/63, a link to `pipe:[...]`: the report named
    the events `/proc/PID/fd/pipe:[1541616]`, no path a reader could use."""
    read, write = os.pipe()
    data = (EXAMPLE / "events.jsonl").read_bytes()
    cmd = [sys.executable, "-m", "mrules", "replay", "--diff", str(EXAMPLE / "rules")]
    cmd += [str(lowered), f"/dev/fd/{read}", "--jobs", "1"]
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(read,)
    ) as proc:
        os.close(read)
        with os.fdopen(write, "wb") as w:
            w.write(data)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.decode().startswith(f"Replay of 28 event lines (/dev/fd/{read})\n"), out


def test_text_summary(lowered: Path) -> None:
    res = _mrules(
        "replay", "--diff", str(EXAMPLE / "rules"), str(lowered), str(EXAMPLE / "events.jsonl")
    )
    assert res.exit_code == 0, res.output
    out = res.output
    assert 'MQLs (in list "MQL"): 2 -> 3  (+1 become MQLs, -0 no longer)' in out
    assert "  + bob@bigcorp.example (score 50 -> 50): automation rule 'MQL handoff'" in out
    assert "+ notify for bob@bigcorp.example" in out
    assert "automation rule 'MQL handoff'" in out.split("\nRules:")[1]


def test_never_touches_a_store(
    tmp_path: Path, lowered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = _mrules(
        "replay", "--diff", str(EXAMPLE / "rules"), str(lowered), str(EXAMPLE / "events.jsonl")
    )
    assert res.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules"]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@x", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_old_rev_from_a_subfolder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "marketing").mkdir(parents=True)
    shutil.copytree(EXAMPLE / "rules", repo / "marketing" / "rules")
    shutil.copy(EXAMPLE / "events.jsonl", repo / "events.jsonl")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "v1")
    shutil.rmtree(repo / "marketing" / "rules")
    _lowered(repo / "marketing")  # the change under review, not committed
    monkeypatch.chdir(repo / "marketing")
    res = _mrules(
        "replay", "--diff", "--old-rev", "HEAD", "rules", "../events.jsonl", "--format", "json"
    )
    assert res.exit_code == 0, res.output
    d = orjson.loads(res.stdout)
    assert d["mql"]["gained"]["prospects"] == ["bob@bigcorp.example"]
    assert d["old"]["rules"] == "rules at HEAD"
    res = _mrules("replay", "--diff", "--old-rev", "nosuchrev", "rules", "../events.jsonl")
    assert res.exit_code == 2 and "unknown revision 'nosuchrev'" in res.output
    (repo / "marketing" / "new").mkdir()
    shutil.copy(repo / "marketing" / "rules" / "00-declarations.mr", repo / "marketing" / "new")
    res = _mrules("replay", "--diff", "--old-rev", "HEAD", "new", "../events.jsonl")
    assert res.exit_code == 2 and "marketing/new does not exist at HEAD" in res.output


def test_old_rev_outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = _lowered(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    res = _mrules(
        "replay", "--diff", "--old-rev", "HEAD~1", str(rules), str(EXAMPLE / "events.jsonl")
    )
    assert res.exit_code == 2
    assert "is not inside a git repository" in res.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["a", "b", "c"], 2, "needs --diff"),
        (["--diff", "a", "b"], 2, "expected 3 paths, got 2"),
        (["--diff", "--old-rev", "HEAD", "a", "b", "c"], 2, "expected 2 paths, got 3"),
        (["--diff", "EX/rules", "EX/rules", "nope.jsonl"], 2, "no such events file: nope.jsonl"),
        (["--diff", "nope", "EX/rules", "EX/events.jsonl"], 2, "no such rule file or folder: nope"),
        (
            ["--diff", "EX/rules", "EX/rules", "EX/events.jsonl", "--mql-list", "mql"],
            2,
            "--mql-list 'mql': neither rule set has that list (did you mean 'MQL'?)",
        ),
        (
            ["--diff", "EX/rules", "EX/rules", "EX/events.jsonl", "--mql-list", "Enterprize"],
            2,
            "--mql-list 'Enterprize': neither rule set has that list (did you mean 'Enterprise'?)",
        ),
        (
            ["--diff", "EX/rules", "EX/rules", "EX/events.jsonl", "--mql-list", "Zebra"],
            2,
            "--mql-list 'Zebra': neither rule set has that list\n",
        ),
    ],
)
def test_bad_arguments(args: list[str], code: int, message: str) -> None:
    args = [a.replace("EX", str(EXAMPLE)) for a in args]
    res = _mrules("replay", *args)
    assert res.exit_code == code, res.output
    assert message in res.output and "Traceback" not in res.output


def test_rules_with_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mr"
    bad.write_text('automation rule "R" priority 1 {\n  when all { in list "Nope" }\n}\n')
    res = _mrules(
        "replay", "--diff", str(EXAMPLE / "rules"), str(bad), str(EXAMPLE / "events.jsonl")
    )
    assert res.exit_code == 1
    assert "the new rules have errors" in res.output and "unknown list 'Nope'" in res.output


def test_rules_that_are_not_utf8_are_unreadable_input(tmp_path: Path) -> None:
    """Exit 2 as for lint and run (docs/language.md), not 1 (a rule set with errors)."""
    latin = tmp_path / "latin.mr"
    latin.write_bytes(b'list "caf\xe9"\n')
    rules, events = str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")
    for old, new, which in ((rules, str(latin), "new"), (str(latin), rules, "old")):
        res = _mrules("replay", "--diff", old, new, events)
        assert res.exit_code == 2, res.output
        assert f"the {which} rules cannot be read: " in res.output
        assert "not UTF-8 text (byte 0xe9" in res.output


def test_rule_counts_fast_path_equals_the_ledger() -> None:
    import mrules
    from mrules.rulestats import rule_counts

    result = mrules.run(str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"))
    fast = rule_counts(result.store)
    slow = rule_counts(result.store, fast=False)
    assert fast == slow
    assert fast[0][("automation rule", "MQL handoff")] == 2
    assert fast[1][("automation rule", "MQL handoff")].endswith("30-automation.mr:3")


def test_rule_counts_read_an_sqlite_store_s_rows_as_they_go(tmp_path: Path) -> None:
    import mrules
    from mrules.rulestats import rule_counts

    in_memory = rule_counts(mrules.run(str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")).store)
    store = str(tmp_path / "s.db")
    with mrules.run(str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), store=store).store as st:
        entries = [e for row in st.ledger_rows() for e in row.entries()]
        assert sorted(entries, key=lambda e: e.seq) == list(st.ledger())  # the same, unsorted
        streamed = rule_counts(st)
        assert streamed == rule_counts(st, fast=False) == in_memory


def test_a_rule_counts_once_a_history_row_not_once_a_prospect_time_and_line(
    tmp_path: Path,
) -> None:
    """docs/replay.md: one event of one prospect counts once, and an event is a history
    row. The same form submitted by the same prospect at the same time, on line 1 of two
    streams, is two events: 2, as `report rules` counts it. (Counting distinct
    (rule, prospect, time, line) gave 1, and kept one entry an event, 390 MB at 2 million
    events.) Every way of reading gives 2."""
    import mrules
    from mrules.api import open_store
    from mrules.reports import rules_report
    from mrules.rulestats import rule_counts

    rules = (
        'settings { throttle_minutes = 0 }\nlist "MQL"\nform "F"\n'
        'on submit of form "F" { add to list "MQL"; score +5 }'
    )
    line = {"ts": "2026-11-02T09:00:00Z", "type": "form_submit", "prospect": "a@x.com",
            "asset": "F"}  # fmt: skip
    memory = open_store(":memory:")
    db = tmp_path / "s.db"
    for source, eid in (("a", "e1"), ("b", "e2")):
        mrules.run(rules, [{**line, "id": eid}], store=memory, source=source)
        mrules.run(rules, [{**line, "id": eid}], store=str(db), source=source).store.close()
    key = ("completion action", "submit of form F")
    assert rule_counts(memory)[0][key] == rule_counts(memory, fast=False)[0][key] == 2
    (tmp_path / "r.mr").write_text(rules)
    with open_store(db) as st:
        assert rule_counts(st)[0][key] == rule_counts(st, fast=False)[0][key] == 2
    report = rules_report(db, rules=tmp_path / "r.mr")
    assert [r["matches"] for r in report["rules"] if r["name"] == key[1]] == [2]


def test_every_jobs_setting_gives_the_same_diff(lowered: Path) -> None:
    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(lowered), str(EXAMPLE / "events.jsonl")]
    one = orjson.loads(_mrules(*args, "--format", "json", "--jobs", "1").stdout)
    two = orjson.loads(_mrules(*args, "--format", "json", "--jobs", "2").stdout)
    auto = orjson.loads(_mrules(*args, "--format", "json").stdout)
    for d in (one, two, auto):
        d.pop("seconds"), d.pop("old"), d.pop("new")
    assert one["mql"]["new"] > one["mql"]["old"]  # the lowered threshold made a difference
    assert one == two == auto


def test_jobs_takes_auto_1_or_2_only(lowered: Path) -> None:
    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(lowered), str(EXAMPLE / "events.jsonl")]
    res = _mrules(*args, "--jobs", "3")
    assert res.exit_code == 2
    assert "'3' is not one of 'auto', '1', '2'" in res.output


@pytest.mark.parametrize(
    ("cpus", "load", "expected"),
    [
        (1, 0.0, 1),  # one usable CPU: never two processes
        (2, 0.2, 2),  # a free core
        (2, 1.4, 1),  # the other core is busy: two processes would be slower
        (4, 2.5, 2),
        (2, None, 1),  # no load average to judge by
    ],
)
def test_auto_jobs_uses_a_second_process_only_with_a_free_core(
    monkeypatch: pytest.MonkeyPatch, cpus: int, load: float | None, expected: int
) -> None:
    import os

    from mrules.replay import auto_jobs

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cpus)), raising=False)

    def loadavg() -> tuple[float, float, float]:
        if load is None:
            raise OSError("no load average here")
        return (load, load, load)

    monkeypatch.setattr(os, "getloadavg", loadavg)
    assert auto_jobs() == expected


def _repo_at_lowered(tmp_path: Path) -> Path:
    """A git repository whose HEAD has the lowered rules, and whose work tree the example's:
    the old rules (HEAD) are the ones behind what the new rules lose (bob's MQL, messages)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _lowered(repo)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "lowered")
    shutil.rmtree(repo / "rules")
    shutil.copytree(EXAMPLE / "rules", repo / "rules")
    return repo


@pytest.mark.parametrize(
    ("cwd", "rules", "shown"),
    [
        (".", "rules", "rules/30-automation.mr:3"),  # the audit's case
        ("rules", ".", "30-automation.mr:3"),
        ("..", "repo/rules", "repo/rules/30-automation.mr:3"),
    ],
)
def test_old_rev_names_the_old_files_as_in_the_work_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cwd: str, rules: str, shown: str
) -> None:
    """Not the temporary folder git's copy was read from: it is deleted before the report is
    read, and its name changed every run."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = _repo_at_lowered(tmp_path)
    monkeypatch.chdir(repo / cwd)
    args = ["replay", "--diff", "--old-rev", "HEAD", rules, str(EXAMPLE / "events.jsonl")]
    res = _mrules(*args, "--format", "json", "--jobs", "1")
    assert res.exit_code == 0, res.output
    d = orjson.loads(res.stdout)
    assert d["old"]["rules"] == f"{rules} at HEAD"  # the revision, said once
    lost = d["mql"]["lost"]["examples"]
    assert [x["prospect"] for x in lost] == ["bob@bigcorp.example"]
    assert f"old rules: automation rule 'MQL handoff' ({shown})," in lost[0]["reason"]
    messages = d["outbox"]["lost"]["messages"]
    assert messages and all(m["reason"] == f"MQL handoff ({shown})" for m in messages)
    assert "mrules-old-rules" not in res.stdout  # (the repository itself may be in /tmp)
    text = _mrules(*args, "--jobs", "2").stdout
    assert f"({shown})" in text and "mrules-old-rules" not in text
    again = orjson.loads(_mrules(*args, "--format", "json", "--jobs", "1").stdout)
    for x in (d, again):
        x.pop("seconds"), x["old"].pop("seconds"), x["new"].pop("seconds")
    assert again == d  # the same on every run


def test_old_rev_errors_name_the_old_files_as_in_the_work_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE / "rules", repo / "rules")
    bad = repo / "rules" / "60-bad.mr"
    bad.write_text('automation rule "R" priority 1 {\n  when all { in list "Nope" }\n}\n')
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "an error")
    bad.write_bytes(b'on submit of form "x" { score +5 }\n\xff\n')
    _git(repo, "commit", "-qam", "not UTF-8")
    bad.unlink()  # fixed in the work tree
    monkeypatch.chdir(repo)
    events = str(EXAMPLE / "events.jsonl")
    res = _mrules("replay", "--diff", "--old-rev", "HEAD~1", "rules", events)
    assert res.exit_code == 1
    assert "the old rules (rules at HEAD~1) have errors:" in res.stderr
    assert "rules/60-bad.mr:2:22: error[MR103]: unknown list 'Nope'" in res.stderr
    assert "mrules-old-rules" not in res.stderr
    res = _mrules("replay", "--diff", "--old-rev", "HEAD", "rules", events)
    assert res.exit_code == 2  # unreadable input (docs/exit-codes.md), not rules with errors
    assert "the old rules (rules at HEAD) cannot be read: rules/60-bad.mr:2: not UTF-8" in (
        res.stderr
    )
    assert "mrules-old-rules" not in res.stderr


def test_old_rev_with_the_temporary_folder_inside_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from /tmp, say: the loader names git's copy relative to the working folder."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    _repo_at_lowered(tmp_path)
    (tmp_path / "t").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "t"))
    monkeypatch.chdir(tmp_path)
    res = _mrules(
        "replay", "--diff", "--old-rev", "HEAD", "repo/rules", str(EXAMPLE / "events.jsonl")
    )
    assert res.exit_code == 0, res.output
    assert "old rules: automation rule 'MQL handoff' (repo/rules/30-automation.mr:3)" in res.stdout
    assert "mrules-old-rules" not in res.stdout


def test_old_rev_follows_a_link_by_absolute_path_inside_the_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule file that is a link to another file of the rule folder, by its absolute path:
    `mrules run` follows it, and --old-rev was an internal error (tarfile's "data" filter
    refuses such a link). The old side reads the linked file as it was at the revision."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE / "rules", repo / "rules")
    (repo / "rules" / "extra").mkdir()
    tagging = repo / "rules" / "extra" / "tagging.mr"
    tagging.write_text(
        'automation rule "Tag everyone" priority 50 {\n'
        '  when all { score >= 0 }\n  then { add tag "seen" }\n}\n'
    )
    (repo / "rules" / "90-tagging.mr").symlink_to(tagging)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "tag everyone")
    tagging.write_text("# no tagging any more\n")  # the change under review
    monkeypatch.chdir(repo)
    assert _mrules("lint", "rules").exit_code == 0
    args = ["replay", "--diff", "--old-rev", "HEAD", "rules", str(EXAMPLE / "events.jsonl")]
    res = _mrules(*args, "--format", "json", "--jobs", "1")
    assert res.exit_code == 0, res.output
    d = orjson.loads(res.stdout)
    counts = {r["name"]: (r["before"], r["after"], r["at"]) for r in d["rules"]}
    assert counts["Tag everyone"] == (6, 0, "rules/extra/tagging.mr:1")  # each of the 6, once
    assert d["data"]["count"] == 6
    assert "mrules-old-rules" not in res.stdout


def test_old_rev_refuses_links_out_of_the_rules_as_the_new_rules_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Links that leave the rule folder at the revision: the old rules have the errors the
    same links give the new rules (MR024, naming the same targets), not an internal error."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE / "rules", repo / "rules")
    (repo / "lib").mkdir()
    (repo / "lib" / "shared.mr").write_text('list "Shared"\n')
    (repo / "rules" / "80-shared.mr").symlink_to("../lib/shared.mr")
    elsewhere = tmp_path / "elsewhere.mr"
    elsewhere.write_text('list "Elsewhere"\n')
    (repo / "rules" / "81-elsewhere.mr").symlink_to(elsewhere)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "links out")
    monkeypatch.chdir(repo)
    lint = _mrules("lint", "rules")
    assert lint.exit_code == 1
    errors = [x for x in lint.stdout.splitlines() if "error[MR024]" in x]
    assert len(errors) == 2, lint.stdout
    (repo / "rules" / "80-shared.mr").unlink()  # fixed in the work tree
    (repo / "rules" / "81-elsewhere.mr").unlink()
    res = _mrules("replay", "--diff", "--old-rev", "HEAD", "rules", str(EXAMPLE / "events.jsonl"))
    assert res.exit_code == 1, res.output
    assert "the old rules (rules at HEAD) have errors:" in res.stderr
    assert [x for x in res.stderr.splitlines() if "error[MR024]" in x] == errors
    assert "mrules-old-rules" not in res.stderr


def _without_timings(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("seconds"), d["old"].pop("seconds"), d["new"].pop("seconds")
    return d


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_store_dir_gives_the_same_diff_and_keeps_both_runs(
    tmp_path: Path, lowered: Path, jobs: str
) -> None:
    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(lowered), str(EXAMPLE / "events.jsonl"),
            "--format", "json", "--jobs", jobs]  # fmt: skip
    in_memory = _without_timings(orjson.loads(_mrules(*args).stdout))
    res = _mrules(*args, "--store-dir", str(tmp_path / "replay"))
    assert res.exit_code == 0, res.output
    on_disk = _without_timings(orjson.loads(res.stdout))
    assert on_disk["mql"]["new"] > on_disk["mql"]["old"]  # a change to report
    assert on_disk == in_memory
    for side, rules in (("old", EXAMPLE / "rules"), ("new", lowered)):
        state, outbox = _separate_run(rules, tmp_path / f"{side}-run.db")
        kept = tmp_path / "replay" / f"{side}.db"
        assert _separate_run(rules, kept) == (state, outbox)  # the same run: nothing left to do
        assert _mrules("run", str(rules), str(EXAMPLE / "events.jsonl"), "--store", str(kept),
                       "-q").exit_code == 0  # fmt: skip


def test_store_dir_refuses_a_store_there_already(tmp_path: Path, lowered: Path) -> None:
    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(lowered), str(EXAMPLE / "events.jsonl"),
            "--store-dir", str(tmp_path / "replay")]  # fmt: skip
    assert _mrules(*args).exit_code == 0
    kept = (tmp_path / "replay" / "old.db").read_bytes()
    res = _mrules(*args)
    assert res.exit_code == 2
    assert "old.db exists: a replay runs into new stores" in res.output
    assert "Traceback" not in res.output
    assert (tmp_path / "replay" / "old.db").read_bytes() == kept
    (tmp_path / "file").write_text("")
    res = _mrules(*args[:-1], str(tmp_path / "file"))
    assert res.exit_code == 2 and "Traceback" not in res.output


@pytest.mark.parametrize("side", ["old", "new"])
def test_store_dir_refuses_a_write_ahead_log_left_without_its_store(
    tmp_path: Path, lowered: Path, side: str
) -> None:
    """A replay killed in --store-dir leaves `old.db-wal`; its owner removes old.db and new.db
    and runs again. SQLite read the log into the new old.db, the run resumed on the killed
    run's store (the lowered rules' here), and the same rules on both sides reported
    `-1 no longer` MQLs. The log is refused, and kept."""
    import sqlite3

    killed = tmp_path / "killed.db"
    assert _mrules("run", str(lowered), str(EXAMPLE / "events.jsonl"), "--store", str(killed),
                   "-q").exit_code == 0  # fmt: skip
    folder = tmp_path / "replay"
    folder.mkdir()
    copy = sqlite3.connect(tmp_path / "copy.db")
    try:  # the killed run's store, all of it still in its write-ahead log
        copy.execute("PRAGMA journal_mode=wal")
        copy.execute("PRAGMA wal_autocheckpoint=0")
        with sqlite3.connect(killed) as source:
            source.backup(copy)
        wal = (tmp_path / "copy.db-wal").read_bytes()
        assert wal
    finally:
        copy.close()
    (folder / f"{side}.db-wal").write_bytes(wal)
    rules = str(EXAMPLE / "rules")
    res = _mrules("replay", "--diff", rules, rules, str(EXAMPLE / "events.jsonl"),
                  "--store-dir", str(folder), "--format", "json")  # fmt: skip
    assert res.exit_code == 2, res.output
    assert f"{side}.db-wal exists" in res.output and "Traceback" not in res.output
    assert (folder / f"{side}.db-wal").read_bytes() == wal
    assert sorted(p.name for p in folder.iterdir()) == [f"{side}.db-wal"]
    (folder / f"{side}.db-wal").unlink()
    res = _mrules("replay", "--diff", rules, rules, str(EXAMPLE / "events.jsonl"),
                  "--store-dir", str(folder), "--format", "json")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert orjson.loads(res.stdout)["prospects"]["changed"] == 0


def test_store_dir_on_a_full_disk_exits_4_and_leaves_no_store(
    tmp_path: Path, lowered: Path
) -> None:
    from tests.test_faults import tmpfs

    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(lowered), str(EXAMPLE / "events.jsonl")]
    with tmpfs(tmp_path / "small", "48k") as small:
        cmd = [sys.executable, "-m", "mrules", *args, "--store-dir", str(small / "r")]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 4, res.stderr
        assert not (small / "r").exists()  # so the same command, with room, starts over
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("mrules: error: ")
    assert "full" in res.stderr and "unfinished stores were removed" in res.stderr


def test_message_keys_the_comparison_keeps_are_their_own_size() -> None:
    """One key a message is kept until the report is made: not orjson's 4 KB buffer each."""
    from mrules.replay import _message_key

    key = _message_key({"seq": 7, "ts": 1.0, "prospect": "a@x.example", "kind": "notify",
                        "user": "alan@getcloudy.example", "rule": "R", "at": "r.mr:3"})  # fmt: skip
    assert orjson.loads(key) == {"kind": "notify", "prospect": "a@x.example",
                                 "user": "alan@getcloudy.example"}  # fmt: skip
    import tracemalloc

    tracemalloc.start()
    try:
        keys = [_message_key({"prospect": f"p{i}@x.example", "kind": "notify"}) for i in range(100)]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(set(keys)) == 100
    assert held < 100 * 200, held  # orjson's output as it is: about 4 KB each


def _edited(folder: Path, file: str, old: str, new: str) -> Path:
    """The example's rules in `folder`/rules with `old` replaced by `new` in `file`."""
    rules = folder / "rules"
    shutil.copytree(EXAMPLE / "rules", rules)
    path = rules / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return rules


def test_a_prospect_whose_score_alone_changes_is_counted_as_changed(tmp_path: Path) -> None:
    """The headline said "0 changed" over "Scores: 1 changed": a score is compared too."""
    new = _edited(tmp_path, "10-completion-actions.mr", "  score +5\n", "  score +7\n")
    old_state, _ = _separate_run(EXAMPLE / "rules", tmp_path / "old.db")
    new_state, _ = _separate_run(new, tmp_path / "new.db")
    by_hand = sorted(e for e in old_state if old_state[e]["score"] != new_state[e]["score"])
    assert by_hand == ["bob@bigcorp.example"]  # the data is what we think

    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(new), str(EXAMPLE / "events.jsonl")]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    assert d["score"]["changed"] == len(by_hand)
    assert d["prospects"]["changed"] == len(by_hand)
    text = _mrules(*args).output
    assert "Prospects: 6 before, 6 after; 1 changed" in text
    assert "Scores: 1 changed (1 up, 0 down" in text


def test_fields_and_tags_a_rule_change_sets_are_compared(tmp_path: Path) -> None:
    """A change of what a completion action writes (a field, a tag) said "0 changed" and
    nothing else: the prospects' data is compared too, against `state export` by hand."""
    new = _edited(
        tmp_path,
        "10-completion-actions.mr",
        '  set lead_source = "Web consult"\n',
        '  set lead_source = "Web form"\n  add tag "newsletter-reader"\n',
    )
    old_state, _ = _separate_run(EXAMPLE / "rules", tmp_path / "old.db")
    new_state, _ = _separate_run(new, tmp_path / "new.db")
    by_hand = {}
    for email, a in old_state.items():
        b = new_state[email]
        changes = [
            {"what": f"fields.{k}", "old": a["fields"].get(k), "new": b["fields"].get(k)}
            for k in sorted(a["fields"].keys() | b["fields"].keys())
            if a["fields"].get(k) != b["fields"].get(k)
        ]
        if a["tags"] != b["tags"]:
            changes.append({"what": "tags", "old": a["tags"], "new": b["tags"]})
        if changes:
            by_hand[email] = changes
    assert sorted(by_hand) == ["bob@bigcorp.example", "henry@example.org", "leung@example.com"]

    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(new), str(EXAMPLE / "events.jsonl")]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    assert d["data"]["prospects"] == sorted(by_hand)
    assert {i["prospect"]: i["changes"] for i in d["data"]["examples"]} == by_hand
    assert d["prospects"]["changed"] == len(by_hand)
    reason = d["data"]["examples"][0]["reason"]
    assert reason.startswith("completion action 'submit of form Demande Get Cloudy' (")
    text = _mrules(*args).output
    assert "Prospects: 6 before, 6 after; 3 changed" in text
    assert "Prospect data: 3 prospects change" in text
    assert '  ~ henry@example.org: lead_source "Web consult" -> "Web form"' in text
    assert "  ~ leung@example.com: +tag newsletter-reader: newsletter-reader: completion" in text


def test_creation_and_last_activity_a_rejected_line_moves_are_compared(tmp_path: Path) -> None:
    """New rules that refuse unknown assets reject an open of an email they do not declare:
    carol's last activity (what `days since last activity` reads) and zed's creation move,
    `state export` of the two runs differs, and the replay said "0 changed"."""
    new = tmp_path / "rules"
    shutil.copytree(EXAMPLE / "rules", new)
    (new / "90-settings.mr").write_text('settings {\n  unknown_assets = "reject"\n}\n')
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"ts":"2026-11-02T08:00:00Z","type":"email_open","prospect":"zed@x.example",'
        '"asset":"Old newsletter"}\n'
        '{"ts":"2026-11-03T08:00:00Z","type":"file_download","prospect":"carol@x.example",'
        '"asset":"Cloud Buyer Guide.pdf"}\n'
        '{"ts":"2026-11-04T08:00:00Z","type":"file_download","prospect":"zed@x.example",'
        '"asset":"Cloud Buyer Guide.pdf"}\n'
        '{"ts":"2026-11-05T08:00:00Z","type":"email_open","prospect":"carol@x.example",'
        '"asset":"Old newsletter"}\n'
    )
    exports = []
    for side, rules in (("old", EXAMPLE / "rules"), ("new", new)):
        store = str(tmp_path / f"{side}.db")
        assert _mrules("run", str(rules), str(events), "--store", store, "-q").exit_code in (0, 3)
        out = _mrules("state", "export", "--store", store).stdout
        exports.append({r["email"]: r for r in map(orjson.loads, out.splitlines())})
    old_state, new_state = exports
    by_hand = {
        email: [
            {"what": k, "old": old_state[email][k], "new": new_state[email][k]}
            for k in ("created", "last_activity")
            if old_state[email][k] != new_state[email][k]
        ]
        for email in old_state
    }
    assert by_hand == {  # the data is what we think: nothing else differs
        "carol@x.example": [
            {"what": "last_activity", "old": "2026-11-05T08:00:00Z", "new": "2026-11-03T08:00:00Z"}
        ],
        "zed@x.example": [
            {"what": "created", "old": "2026-11-02T08:00:00Z", "new": "2026-11-04T08:00:00Z"}
        ],
    }
    for email in old_state:
        for k in ("created", "last_activity"):
            old_state[email].pop(k), new_state[email].pop(k)
    assert old_state == new_state

    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(new), str(events)]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    assert d["new"]["rejected"] == 2
    assert {i["prospect"]: i["changes"] for i in d["data"]["examples"]} == by_hand
    assert d["prospects"]["changed"] == 2
    zed = next(i for i in d["data"]["examples"] if i["prospect"] == "zed@x.example")
    assert zed["reason"].startswith("event file_download, event line 3, 2026-11-04")
    text = _mrules(*args).output
    assert "Prospects: 2 before, 2 after; 2 changed" in text
    assert (
        '  ~ carol@x.example: last_activity "2026-11-05T08:00:00Z" -> "2026-11-03T08:00:00Z"\n'
        in text
    )


def test_the_same_rules_renamed_or_moved_change_nothing(tmp_path: Path) -> None:
    """A renamed rule and rules moved to other lines act the same: nothing changes but the
    renamed rule's counts (its name is how a rule is matched)."""
    new = _edited(tmp_path, "30-automation.mr", '"MQL handoff"', '"MQL handover"')
    moved = new / "30-automation.mr"
    moved.write_text("# moved down\n\n" + moved.read_text(encoding="utf-8"), encoding="utf-8")
    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(new), str(EXAMPLE / "events.jsonl")]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    assert d["prospects"]["changed"] == 0
    for key in ("assignment", "grade", "lists", "data", "crm", "only_old", "only_new"):
        assert d[key]["count"] == 0, key
    assert d["mql"]["gained"]["count"] == d["mql"]["lost"]["count"] == 0
    assert d["outbox"]["gained"]["total"] == d["outbox"]["lost"]["total"] == 0
    assert d["score"]["changed"] == 0
    moved_counts = {r["name"]: (r["before"], r["after"]) for r in d["rules"]}
    assert moved_counts["MQL handoff"][1] == 0 and moved_counts["MQL handover"][0] == 0
    assert moved_counts["MQL handoff"][0] == moved_counts["MQL handover"][1] > 0
    renamed = ("MQL handoff", "MQL handover")
    assert all(b == a for n, (b, a) in moved_counts.items() if n not in renamed)


def test_lines_only_one_rule_set_rejects_are_said_for_each_side(tmp_path: Path) -> None:
    """Old rules that reject a line (`unknown_assets = "reject"`) and new ones that apply
    it: the header said nothing, and `events.rejected` was the new side's 0. Each side's
    count is given, as two `mrules run`s give them."""
    strict = tmp_path / "strict"
    shutil.copytree(EXAMPLE / "rules", strict)
    (strict / "05-settings.mr").write_text('settings {\n  unknown_assets = "reject"\n}\n')
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        (EXAMPLE / "events.jsonl").read_bytes()
        + b'{"ts":"2026-11-02T09:00:00Z","type":"form_submit","prospect":"zed@x.example",'
        b'"asset":"Book a demo"}\n' + b"not json\n"
    )
    by_hand = {}
    for side, rules in (("old", strict), ("new", EXAMPLE / "rules")):
        store, rejects = tmp_path / f"{side}.db", tmp_path / f"{side}.rejects.jsonl"
        res = _mrules(
            "run", str(rules), str(events), "--store", str(store), "--rejects", str(rejects)
        )
        assert res.exit_code == 3, res.output
        by_hand[side] = len(rejects.read_text().splitlines())
    assert by_hand == {"old": 2, "new": 1}  # the data is what we think

    args = ["replay", "--diff", str(strict), str(EXAMPLE / "rules"), str(events)]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    assert (d["old"]["rejected"], d["new"]["rejected"]) == (2, 1)
    assert d["events"]["rejected"] == 1  # the new side's, as before
    assert (
        "  (2 lines rejected under the old rules, 1 under the new rules)\n" in _mrules(*args).output
    )
    same = ["replay", "--diff", str(EXAMPLE / "rules"), str(EXAMPLE / "rules"), str(events)]
    assert "  (1 line rejected under both rule sets)\n" in _mrules(*same).output


def test_an_mql_under_one_rule_set_only_is_gained_or_lost(tmp_path: Path) -> None:
    """Old rules that reject a form they do not declare, new ones that declare it and make
    its sender an MQL: 'MQLs: 2 -> 3 (+0 become MQLs, -0 no longer)'. The prospect that
    exists only under the new rules is an MQL gained (and lost, the other way round), as
    the MQL lists of two `mrules run`s compare."""
    settings = 'settings {\n  unknown_assets = "reject"\n}\n'
    old = tmp_path / "old"
    shutil.copytree(EXAMPLE / "rules", old)
    (old / "05-settings.mr").write_text(settings)
    new = tmp_path / "new"
    shutil.copytree(old, new)
    (new / "60-contact.mr").write_text(
        'form "Contact us"\non submit of form "Contact us" {\n  add to list "MQL"\n}\n'
    )
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        (EXAMPLE / "events.jsonl").read_bytes()
        + b'{"ts":"2026-11-02T09:00:00Z","type":"form_submit","prospect":"newbie@x.example",'
        b'"asset":"Contact us"}\n'
    )
    mqls = {}
    for side, rules in (("old", old), ("new", new)):
        store = tmp_path / f"{side}.db"
        _mrules("run", str(rules), str(events), "--store", str(store))
        export = _mrules("state", "export", "--store", str(store)).stdout.splitlines()
        mqls[side] = {r["email"] for r in map(orjson.loads, export) if "MQL" in r["lists"]}
    assert sorted(mqls["new"] - mqls["old"]) == ["newbie@x.example"]  # the data
    assert not mqls["old"] - mqls["new"]

    for a, b, gained, lost in (
        (old, new, ["newbie@x.example"], []),
        (new, old, [], ["newbie@x.example"]),
    ):
        args = ["replay", "--diff", str(a), str(b), str(events)]
        d = orjson.loads(_mrules(*args, "--format", "json").stdout)
        m = d["mql"]
        assert (m["gained"]["prospects"], m["lost"]["prospects"]) == (gained, lost)
        assert m["new"] - m["old"] == m["gained"]["count"] - m["lost"]["count"]
    text = _mrules("replay", "--diff", str(old), str(new), str(events)).output
    assert 'MQLs (in list "MQL"): 2 -> 3  (+1 become MQLs, -0 no longer)' in text
    assert "  + newbie@x.example (score none -> " in text


def test_a_grade_the_new_rules_no_longer_give_says_what_gave_it(tmp_path: Path) -> None:
    """New rules without the grading rule: the grade change had no reason at all (only the
    new side's ledger was read); it now names what graded the prospect under the old rules,
    as the lists and assignment sections do."""
    new = example_rules_without_grading(tmp_path)
    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(new), str(EXAMPLE / "events.jsonl")]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    assert d["grade"]["prospects"] == ["bob@bigcorp.example", "ivy@bigcorp.example"]
    for item in d["grade"]["examples"]:
        assert item["new"] is None
        assert item["reason"].startswith("old rules: automation rule 'Enterprise grading' ("), item
    back = ["replay", "--diff", str(new), str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")]
    d = orjson.loads(_mrules(*back, "--format", "json").stdout)
    for item in d["grade"]["examples"]:
        assert item["reason"].startswith("new rules: automation rule 'Enterprise grading' ("), item


def test_crm_work_changes_say_what_differs_and_which_rule(tmp_path: Path) -> None:
    """The form assigns to a queue instead of Alan: each lead to create has another owner.
    The text said `+create_record, -create_record` with no reason; it now shows what each
    piece holds and the rule behind the first one gained, against two separate runs."""
    new = _edited(
        tmp_path,
        "10-completion-actions.mr",
        '  assign to user "alan@getcloudy.com"\n',
        '  assign to queue "Inside Sales"\n',
    )
    old_state, _ = _separate_run(EXAMPLE / "rules", tmp_path / "old.db")
    new_state, _ = _separate_run(new, tmp_path / "new.db")

    def work(state: dict[str, Any], email: str) -> list[dict[str, Any]]:
        drop = ("seq", "time", "rule", "at")
        return [{k: v for k, v in w.items() if k not in drop} for w in state[email]["pending_crm"]]

    by_hand = sorted(e for e in old_state if work(old_state, e) != work(new_state, e))
    assert by_hand  # the data is what we think
    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(new), str(EXAMPLE / "events.jsonl")]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    assert d["crm"]["prospects"] == by_hand
    for item in d["crm"]["examples"]:
        e = item["prospect"]
        gained = [w for w in work(new_state, e) if w not in work(old_state, e)]
        assert item["added"] == [dict(sorted(w.items())) for w in gained]
        assert item["reason"].startswith(
            "new rules: completion action 'submit of form Demande Get Cloudy' ("
        ), item
    text = _mrules(*args).output
    line = next(x for x in text.splitlines() if x.startswith(f"  ~ {by_hand[0]}: +create_record"))
    assert '"owner":"Inside Sales"' in line and '-create_record {"as":"user"' in line
    assert ": new rules: completion action 'submit of form Demande Get Cloudy' (" in line


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_closed_standard_output_is_exit_4_before_any_run(tmp_path: Path, fmt: str) -> None:
    """`mrules replay --diff ... >&-` lost the text report with exit 0, and the JSON was an
    internal error (exit 70): exit 4, as `mrules report` and `mrules test` give."""
    args = [sys.executable, "-m", "mrules", "replay", "--diff", str(EXAMPLE / "rules")]
    args += [str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl"), "--format", fmt]
    cmd = " ".join(shlex.quote(a) for a in args)
    res = subprocess.run(
        ["sh", "-c", f"exec {cmd} >&-"], cwd=tmp_path, stderr=subprocess.PIPE, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 4, res.stderr
    assert res.stderr.startswith("mrules: error: standard output is closed"), res.stderr


@pytest.mark.parametrize("store_dir", [False, True])
def test_events_from_a_closed_standard_input_is_a_usage_error(
    tmp_path: Path, store_dir: bool
) -> None:
    """`mrules replay --diff OLD NEW - <&-` was `internal error: AttributeError:
    'NoneType' object has no attribute 'buffer'`, exit 70; now exit 2, as `mrules run`
    gives, before any run (no store is begun in --store-dir)."""
    args = [sys.executable, "-m", "mrules", "replay", "--diff", str(EXAMPLE / "rules")]
    args += [str(EXAMPLE / "rules"), "-"]
    if store_dir:
        args += ["--store-dir", str(tmp_path)]
    cmd = " ".join(shlex.quote(a) for a in args)
    res = subprocess.run(
        ["sh", "-c", f"exec {cmd} <&-"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr == (
        "mrules: error: - reads the events from standard input, which is closed: give the"
        " events file\n"
    )
    assert res.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_score_buckets_pair_up_when_one_side_has_no_negative_score(tmp_path: Path) -> None:
    """The `<0` bucket exists only on a side with a negative score: the Careers page action
    made positive left the old side with it and the new without, and the text paired the
    buckets by position, so every "after" figure sat one row too high. Against the scores
    of two separate runs, counted by hand."""
    new = _edited(tmp_path, "20-page-actions.mr", "  score -10\n", "  score +100\n")
    old_state, _ = _separate_run(EXAMPLE / "rules", tmp_path / "old.db")
    new_state, _ = _separate_run(new, tmp_path / "new.db")

    def bucket(score: int) -> str:
        for low, high, label in ((0, 24, "0-24"), (25, 49, "25-49"), (50, 99, "50-99"),
                                 (100, 149, "100-149"), (150, 199, "150-199")):  # fmt: skip
            if low <= score <= high:
                return label
        return "<0" if score < 0 else "200+"

    old_n = Counter(bucket(r["score"]) for r in old_state.values())
    new_n = Counter(bucket(r["score"]) for r in new_state.values())
    assert old_n["<0"] and not new_n["<0"]  # the data is what we think

    args = ["replay", "--diff", str(EXAMPLE / "rules"), str(new), str(EXAMPLE / "events.jsonl")]
    d = orjson.loads(_mrules(*args, "--format", "json").stdout)
    for side, by_hand in (("old", old_n), ("new", new_n)):
        got = {b["range"]: b["prospects"] for b in d["score"][side]["buckets"]}
        assert got == {label: by_hand[label] for label in got}, side
    assert [b["range"] for b in d["score"]["old"]["buckets"]] == [
        b["range"] for b in d["score"]["new"]["buckets"]
    ]
    text = _mrules(*args).output.split("\nScores:")[1].split("\nRules:")[0]
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[6:] if line.strip()}
    for label in set(old_n) | set(new_n):
        assert rows[label] == [str(old_n[label]), str(new_n[label])], (label, text)


def test_a_dynamic_list_change_names_the_list_behind_it(tmp_path: Path) -> None:
    """A dynamic list's criteria raised out of reach: the lists section listed
    `-Engaged enterprise (dynamic)` with no reason (the ledger was asked about a list
    named "Engaged enterprise (dynamic)"); it names the dynamic list, both ways."""
    new = _edited(tmp_path, "30-automation.mr", "    score >= 50\n", "    score >= 1000\n")
    ev = str(EXAMPLE / "events.jsonl")
    for old_rules, new_rules, sign, side in (
        (EXAMPLE / "rules", new, "removed", "Engaged enterprise (dynamic) (old rules): "),
        (new, EXAMPLE / "rules", "added", "Engaged enterprise (dynamic): "),
    ):
        res = _mrules("replay", "--diff", str(old_rules), str(new_rules), ev, "--format", "json")
        d = orjson.loads(res.stdout)
        assert d["lists"]["prospects"] == ["bob@bigcorp.example"]
        item = d["lists"]["examples"][0]
        assert item[sign] == ["Engaged enterprise (dynamic)"]
        assert item["reason"].startswith(f"{side}dynamic list 'Engaged enterprise' ("), item


@pytest.mark.parametrize("n", [1, 2])
def test_the_text_summary_counts_in_the_singular_and_the_plural(tmp_path: Path, n: int) -> None:
    """`Replay of 1 event lines`, `1 prospect(s) change`, `0 -> 1 messages`: each count
    of the summary takes the noun (and the verb) that goes with it."""
    rule = 'automation rule "R" priority 1 { when all { score > 0 } then { add to list "L" } }'
    for side, then in (("old", "score +1"), ("new", 'notify user "a@x.com"')):
        (tmp_path / side).mkdir()
        (tmp_path / side / "r.mr").write_text(
            'list "MQL"\nlist "L"\nuser "a@x.com"\nform "F"\n'
            f'on submit of form "F" {{ {then} }}\n{rule}\n',
            encoding="utf-8",
        )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            '{"ts":"2026-11-02T10:00:00Z","type":"form_submit",'
            f'"prospect":"p{i}@example.com","asset":"F"}}\n'
            for i in range(n)
        )
        + '{"ts":"nope"}\n' * n,
        encoding="utf-8",
    )
    args = ["replay", "--diff", str(tmp_path / "old"), str(tmp_path / "new"), str(events)]
    text = _mrules(*args).output
    if n == 1:
        assert text.startswith(f"Replay of 2 event lines ({events})\n"), text
        assert "  (1 line rejected under both rule sets)\n" in text
        assert "\nLists: 1 prospect changes\n" in text
        assert "\nOutbox: 0 -> 1 message (+1 gained, -0 lost)\n" in text
    else:
        assert text.startswith(f"Replay of 4 event lines ({events})\n"), text
        assert "  (2 lines rejected under both rule sets)\n" in text
        assert "\nLists: 2 prospects change\n" in text
        assert "\nOutbox: 0 -> 2 messages (+2 gained, -0 lost)\n" in text
    assert "\nRules: 1 of 2 acts a different number of times\n" in text


def test_a_replay_of_one_line_says_one_event_line(tmp_path: Path) -> None:
    (tmp_path / "r.mr").write_text(
        'list "MQL"\nform "F"\non submit of form "F" { score +1 }\n', encoding="utf-8"
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"ts":"2026-11-02T10:00:00Z","type":"form_submit","prospect":"p@x.com","asset":"F"}\n',
        encoding="utf-8",
    )
    rules = str(tmp_path / "r.mr")
    text = _mrules("replay", "--diff", rules, rules, str(events)).output
    assert text.startswith(f"Replay of 1 event line ({events})\n"), text
    assert "\nRules: 0 of 1 act a different number of times\n" in text


@pytest.mark.parametrize("flag", [None, "-q", "--no-progress"])
def test_q_leaves_the_bar_out_on_a_terminal(tmp_path: Path, flag: str | None) -> None:
    """On a terminal a replay shows a bar for each side; `-q` leaves it out, as
    `--no-progress` does and as every command's `-q` (docs/outputs.md): replay had no -q.
    The report is the same."""
    from tests.terminal import on_a_terminal

    new = _lowered(tmp_path)
    argv = [sys.executable, "-m", "mrules", "replay", "--diff", str(EXAMPLE / "rules"), str(new)]
    argv += [str(EXAMPLE / "events.jsonl"), *([flag] if flag else [])]
    code, out, shown = on_a_terminal(argv)
    assert code == 0, shown
    assert out.startswith("Replay of 28 event lines"), out
    assert 'MQLs (in list "MQL"): 2 -> 3' in out, out
    assert ("old rules" in shown) is (flag is None), shown[:300]


def test_q_and_progress_are_refused_together(tmp_path: Path) -> None:
    rules, events = str(EXAMPLE / "rules"), str(EXAMPLE / "events.jsonl")
    r = _mrules("replay", "--diff", "-q", "--progress", rules, rules, events)
    assert r.exit_code == 2
    assert r.stderr == "mrules: error: -q and --progress: give one (-q shows no bar)\n"
