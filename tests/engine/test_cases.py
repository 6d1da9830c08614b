"""The engine's conformance suite: YAML cases under cases/<topic>/, run through the real CLI.

Each YAML document is one case (a file may hold several, separated by `---`):

    name: short-id            # unique within its file
    note: what behaviour, citing docs/pardot.md §N
    rules: |                  # mrules text (one file)
    events: |                 # JSON Lines
    now: 2026-12-01T00:00:00Z # optional `--now`
    runs:                     # optional: several runs on one store instead of rules/events/now;
      - {rules: ..., events: ..., now: ..., file: name.jsonl, segment: true, exit: 3}
    xfail: "engine bug: ..."  # optional, strict
    want:
      prospects: {email: {key: value}}   # partial state-export records
      absent: [email]                    # no such prospect in the store
      actions: [{action: notify, ...}]   # every log record of the kinds named here, in order
      actions_include: [...]             # these appear, in this order, among others
      actions_none: [kind]               # no record of these kinds
      rejects: [{line: 2, reason: regex}]
      summary: {applied: 3, duplicates: 1, rejected: 0, prospects_created: 1}
      matches: {"completion action 'submit of form A' (rules/case.mr:3)": 2}  # top rules
      exit: 0                            # of the last run

Comparison is partial for mappings (only the keys given, recursively, also
inside lists of mappings, whose length must match) and exact otherwise.
Every run after the first reuses the previous rules unless it gives its own;
each run's events go to `file` (default `events.jsonl`, so a later run of the
same name resumes after its position).
The full state export of every case is also snapshotted (reviewed by hand).
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner
from syrupy.extensions.json import JSONSnapshotExtension

from mrules.cli import main

__all__: list[str] = []

CASES = Path(__file__).parent / "cases"
_SUMMARY_ROWS = {
    "applied": "events applied",
    "duplicates": "skipped (id already applied)",
    "rejected": "rejected",
    "prospects_created": "prospects created",
    "ignored": "ignored (CRM record, no prospect)",
    "notify_skipped": "notify skipped (no assigned user)",
    "autoresponder_skipped": "autoresponder skipped (opted out or do not email)",
    "unknown_assets": "events naming an unknown asset",
    "values_skipped": "field values skipped (do not fit)",
    "lead_updates_ignored": "lead update ignored (contact linked)",
    "throttled": "throttled",
    "assignment_kept": "assignment kept",
}
# A row of the summary's "top rules by matches": the rule, its place, its count.
_MATCH_ROW = re.compile(r"│ {3}(\S.*?\(\S*case\.mr:\d+\))\s*│\s*(-?[\d,]+)\s*│")


def _load() -> list[Any]:
    params = []
    for path in sorted(CASES.rglob("*.yaml")):
        topic = path.relative_to(CASES).with_suffix("").as_posix()
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            marks = []
            if doc.get("xfail"):
                marks.append(pytest.mark.xfail(strict=True, reason=doc["xfail"]))
            case_id = f"{topic.replace('/', '.')}.{doc['name']}"
            params.append(pytest.param(doc, id=case_id, marks=marks))
    return params


def partial(want: Any, got: Any, where: str = "") -> list[str]:
    """Differences between a partial expectation and a value (mappings compared by given keys)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: want a mapping, got {got!r}"]
        out = []
        for k, v in want.items():
            if k not in got:
                out.append(f"{where}.{k}: missing (have {sorted(got)})")
            else:
                out += partial(v, got[k], f"{where}.{k}")
        return out
    if isinstance(want, list) and any(isinstance(w, dict) for w in want):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: want {len(want)} items, got {got!r}"]
        pairs = enumerate(zip(want, got, strict=True))
        return [e for i, (w, g) in pairs for e in partial(w, g, f"{where}[{i}]")]
    if want != got:
        return [f"{where}: want {want!r}, got {got!r}"]
    return []


def _run_step(step: dict[str, Any], rules: str, work: Path) -> tuple[int, str]:
    rules_dir = work / "rules"
    rules_dir.mkdir(exist_ok=True)
    (rules_dir / "case.mr").write_text(rules, encoding="utf-8")
    runner = CliRunner()
    if step.get("segment"):
        res = runner.invoke(main, ["segment", "rules", "--store", "db"])
        return res.exit_code, res.output + _crash(res)
    events = work / step.get("file", "events.jsonl")
    events.write_text(step.get("events") or "", encoding="utf-8")
    args = ["run", "rules", events.name, "--store", "db", "--actions", "actions.jsonl"]
    if step.get("now"):
        args += ["--now", str(step["now"])]
    res = runner.invoke(main, args)
    return res.exit_code, res.stderr + _crash(res)


def _crash(res: Any) -> str:
    """A traceback, if the command crashed (a crash must fail the case, with its cause)."""
    if res.exception is None or isinstance(res.exception, SystemExit):
        return ""
    return "".join(traceback.format_exception(res.exception))


def _summary(stderr: str) -> dict[str, int]:
    out = {}
    for key, label in _SUMMARY_ROWS.items():
        m = re.search(rf"│\s+{re.escape(label)}\s*│\s*([\d,]+)", stderr)
        out[key] = int(m.group(1).replace(",", "")) if m else 0
    return out


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def _check_actions(want: dict[str, Any], log: list[dict[str, Any]]) -> list[str]:
    errors = []
    if "actions" in want:
        kinds = {a["action"] for a in want["actions"]}
        got = [r for r in log if r["action"] in kinds]
        if len(got) != len(want["actions"]):
            brief = [(r["action"], r["prospect"], r["args"]) for r in got]
            errors.append(f"actions: want {len(want['actions'])} records, got {brief}")
        else:
            for i, (w, g) in enumerate(zip(want["actions"], got, strict=True)):
                errors += partial(w, g, f"actions[{i}]")
    if "actions_include" in want:
        pos = 0
        for w in want["actions_include"]:
            while pos < len(log) and partial(w, log[pos]):
                pos += 1
            if pos == len(log):
                errors.append(f"actions_include: {w!r} not found (in order)")
                break
            pos += 1
    for kind in want.get("actions_none", ()):
        hits = [r for r in log if r["action"] == kind]
        if hits:
            errors.append(f"actions_none: {kind!r} happened: {hits}")
    return errors


@pytest.mark.parametrize("case", _load())
def test_case(
    case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    steps = case.get("runs") or [
        {"rules": case["rules"], "events": case.get("events"), "now": case.get("now")}
    ]
    rules, code, stderr = "", 0, ""
    for i, step in enumerate(steps):
        rules = step.get("rules") or rules
        code, stderr = _run_step(step, rules, tmp_path)
        last = i == len(steps) - 1
        expected = case["want"].get("exit", 0) if last else step.get("exit", 0)
        assert code == expected, f"run {i + 1} exit {code}:\n{stderr}"
    want = case["want"]
    res = CliRunner().invoke(main, ["state", "export", "--store", "db"])
    assert res.exit_code == 0, res.output
    state = {r["email"]: r for r in (orjson.loads(x) for x in res.stdout.splitlines())}
    errors: list[str] = []
    for email, record in (want.get("prospects") or {}).items():
        if email not in state:
            errors.append(f"prospect {email}: not in the store (have {sorted(state)})")
        else:
            errors += partial(record, state[email], email)
    for email in want.get("absent", ()):
        if email in state:
            errors.append(f"prospect {email}: should not exist")
    errors += _check_actions(want, _jsonl(tmp_path / "actions.jsonl"))
    if "rejects" in want:
        got = _jsonl(tmp_path / "db.rejects.jsonl")
        if [r["line"] for r in got] != [w["line"] for w in want["rejects"]]:
            errors.append(f"rejects: want lines {want['rejects']}, got {got}")
        for w, g in zip(want["rejects"], got, strict=False):
            if not re.search(w.get("reason", ""), g["reason"]):
                errors.append(f"rejects line {g['line']}: {g['reason']!r} !~ {w['reason']!r}")
    if "summary" in want:
        errors += partial(want["summary"], _summary(stderr), "summary")
    if "matches" in want:
        got_matches = {k: int(n.replace(",", "")) for k, n in _MATCH_ROW.findall(stderr)}
        if got_matches != want["matches"]:
            errors.append(f"matches: want {want['matches']}, got {got_matches}")
    assert not errors, "\n".join(errors)
    assert list(state.values()) == snapshot.use_extension(JSONSnapshotExtension)
