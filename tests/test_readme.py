"""The README and the docs show real things: examples lint clean, transcripts and excerpts are
real output."""

from __future__ import annotations

import re

from click.testing import CliRunner

from conftest import ROOT, leaf_commands
from mrules.cli import main

README = (ROOT / "README.md").read_text("utf-8")

# The file behind the README's lint transcript.
MISSPELT = """automation rule "Enterprise" priority 5 {
  when all {
    compnay_size is "200+"
  }
  then {
    add to list "Enterprise"
  }
}
field company_size: picklist ["1-10", "11-50", "51-200", "200+"]
list "Enterprise"
"""


def test_readme_rule_example_lints_clean(tmp_path) -> None:
    block = re.search(r"```mrules\n(.*?)```", README, re.S)
    assert block is not None
    (tmp_path / "readme.mr").write_text(block.group(1))
    result = CliRunner().invoke(main, ["lint", str(tmp_path / "readme.mr")])
    assert result.exit_code == 0, result.output


def test_readme_lint_transcript_is_real_output(tmp_path, monkeypatch) -> None:
    transcript = re.search(r"```text\n\$ mrules lint rules/\n(.*?)```", README, re.S)
    assert transcript is not None
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "automation.mr").write_text(MISSPELT)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["lint", "rules/"])
    assert result.exit_code == 1
    assert result.output.strip() == transcript.group(1).strip()


def test_readme_commands_match_ci() -> None:
    lines = (ROOT / ".ci" / "run").read_text("utf-8").strip().splitlines()
    tests = [line for line in lines if "pytest" in line]
    # CI runs exactly the README's test commands: the tests on the editable install,
    # then again on the compiled wheel...
    assert len(tests) == 2, tests
    assert all(t in README for t in tests), tests
    assert "pip install -q -e '.[test]'" in tests[0]
    assert "MRULES_EXPECT_COMPILED=1" in tests[1] and " -e " not in tests[1]
    assert ".venv/bin/ruff check src tests bench" in lines  # ...lints (src, and the tests)
    assert ".venv/bin/mypy src" in lines


def test_readme_figures_are_the_examples() -> None:
    """The figures the README's prose gives of the bundled example and its history."""
    import csv
    import json

    import mrules

    example = ROOT / "examples" / "getcloudy"
    quick = re.search(r"what happened to the (\d+) events", README)
    points = re.search(r"explain leung@example\.com .*# why she has (\d+) points", README)
    history = re.search(r"\((\d+) prospects, (\d+) deals, (\w+)\s+campaigns with costs", README)
    assert quick and points and history
    lines = (example / "events.jsonl").read_bytes().splitlines()
    assert len(lines) == int(quick.group(1))
    with mrules.run(str(example / "rules"), str(example / "events.jsonl")) as r:
        scores = {p["email"]: p["score"] for p in map(json.loads, r.export_jsonl().splitlines())}
    assert scores["leung@example.com"] == int(points.group(1))
    with mrules.run(str(example / "rules"), str(example / "history" / "events.jsonl")) as r:
        assert len(r.export_jsonl().splitlines()) == int(history.group(1))
    crm = example / "history" / "crm"
    with (crm / "Opportunity.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == int(history.group(2))
    with (crm / "Campaign.csv").open(newline="") as f:
        costs = [c["Name"] for c in csv.DictReader(f) if c["ActualCost"]]
    # the CRM's costs, and one a rule declares (`cost 3600` in 50-campaigns.mr)
    declared = re.findall(r"\bcost \d+", (example / "rules" / "50-campaigns.mr").read_text())
    words = {"three": 3, "four": 4, "five": 5}
    assert len(costs) + len(declared) == words[history.group(3)]


def test_outputs_doc_excerpts_are_the_examples_output(tmp_path, monkeypatch) -> None:
    """docs/outputs.md's action-log row and `state export` line are the bundled example's
    (the events' path aside, and the pending CRM work the page cuts at its first item)."""
    import json

    page = (ROOT / "docs" / "outputs.md").read_text("utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(\{.*?\})\n```", page, re.S)]
    row = next(b for b in blocks if "seq" in b)
    export = next(b for b in blocks if "pending_crm" in b)
    monkeypatch.chdir(ROOT)
    store, actions = tmp_path / "o.db", tmp_path / "o.jsonl"
    example = "examples/getcloudy"
    run = [f"{example}/rules", f"{example}/events.jsonl", "--store", str(store), "-q"]
    result = CliRunner().invoke(main, ["run", *run, "--actions", str(actions)])
    assert result.exit_code == 0, result.output
    rows = {r["seq"]: r for r in map(json.loads, actions.read_text("utf-8").splitlines())}
    real = rows[row["seq"]]
    assert real["event"].pop("source").endswith(row["event"].pop("source")[-30:])
    assert real == row
    result = CliRunner().invoke(
        main, ["state", "export", "--store", str(store), "--prospect", export["email"]]
    )
    real = json.loads(result.stdout)
    assert export["pending_crm"][-1] == "…"
    assert real["pending_crm"][: len(export["pending_crm"]) - 1] == export["pending_crm"][:-1]
    assert {**real, "pending_crm": None} == {**export, "pending_crm": None}


def test_testing_doc_test_file_passes_beside_the_examples_tests(tmp_path) -> None:
    """docs/testing.md's "A test file" (`rules: ../rules`, adapted from the example's own
    tests) passes when it stands where it says, in a tests folder beside the rules."""
    import shutil

    page = (ROOT / "docs" / "testing.md").read_text("utf-8")
    section = page.split("## A test file", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None and "rules: ../rules" in block.group(1)
    shutil.copytree(ROOT / "examples" / "getcloudy" / "rules", tmp_path / "rules")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "doc.test.yaml").write_text(block.group(1), encoding="utf-8")
    result = CliRunner().invoke(main, ["test", str(tmp_path / "tests")])
    assert result.exit_code == 0, result.output
    assert "1 passed" in result.output


def test_readme_test_transcript_is_real_output(monkeypatch) -> None:
    """The README's `mrules test examples/getcloudy/tests` transcript, its time aside."""
    transcript = re.search(r"```text\n\$ mrules test (\S+)\n(.*?)```", README, re.S)
    assert transcript is not None
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["test", transcript.group(1)])
    assert result.exit_code == 0, result.output
    seconds = re.compile(r"in \d+\.\d\d s")
    assert seconds.sub("in N s", result.output) == seconds.sub("in N s", transcript.group(2))


def test_replay_doc_example_is_real_output(tmp_path, monkeypatch) -> None:
    """docs/replay.md's example, run where it says (new-rules/ beside the checkout's
    examples/): the transcript is the real report, up to where the page cuts it (`...`)."""
    import shutil

    from test_replay_cli import _lowered

    page = (ROOT / "docs" / "replay.md").read_text("utf-8")
    transcript = re.search(r"```text\n\$ mrules replay (.*?)\n(.*?)\.\.\.\n```", page, re.S)
    assert transcript is not None
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    _lowered(tmp_path).rename(tmp_path / "new-rules")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["replay", *transcript.group(1).split(), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(transcript.group(2)), result.output


def test_readme_sync_plan_excerpt_is_real_output(tmp_path, monkeypatch) -> None:
    """The README's abridged `sync plan` on the example: each line it shows is the real
    plan's, in the plan's order."""
    excerpt = re.search(r"```text\n(  < link .*?)```", README, re.S)
    assert excerpt is not None
    monkeypatch.chdir(ROOT)
    store, example = str(tmp_path / "getcloudy.db"), "examples/getcloudy"
    for args in (
        ["crm", "load", f"{example}/crm", "--store", store],
        ["run", f"{example}/rules", f"{example}/events.jsonl", "--store", store, "-q"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        main, ["sync", "plan", "--rules", f"{example}/rules", "--store", store]
    )
    assert result.exit_code == 2, result.output  # changes pending, as the README says
    lines = iter(result.stdout.splitlines())
    # a subsequence: every line shown is the plan's, in the plan's order
    missing = [line for line in excerpt.group(1).splitlines() if line not in lines]
    assert not missing, result.stdout


def test_readme_commands_table_names_every_command() -> None:
    """Each command a user can run is in the README's table (`mrules sync plan/apply/...`
    stands for each of them): `report html` was missing from the `report` row."""
    table = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    named = set()
    for row in re.findall(r"^\| `mrules ([^`]+)`", table, re.M):
        words = row.split()
        subs = words[1].split("/") if len(words) > 1 else [""]
        named |= {f"mrules {words[0]} {sub}".strip() for sub in subs} | {f"mrules {words[0]}"}
    missing = [path for path, _ in leaf_commands() if path not in named]
    assert not missing, missing


def test_outputs_doc_names_every_row_of_the_run_summary(tmp_path, monkeypatch) -> None:
    """docs/outputs.md's table of the summary's rows names each row `mrules run` prints on
    the bundled example, run and then resumed; it named neither `top rules by matches`
    nor `store`."""
    page = (ROOT / "docs" / "outputs.md").read_text("utf-8")
    section = page.split("## The summary (stderr)", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([^`]+)`", section))
    monkeypatch.chdir(ROOT)
    example = "examples/getcloudy"
    args = ["run", f"{example}/rules", f"{example}/events.jsonl", "--store", str(tmp_path / "s.db")]
    printed = set()
    for _ in range(2):  # the second run resumes: `resumed after line`
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        rows = re.findall(r"^[│|] (\S.*?)\s+[│|]", result.stderr, re.M)
        printed |= {row.strip() for row in rows}
    assert {"top rules by matches", "resumed after line", "store"} <= printed, printed
    assert not printed - named, sorted(printed - named)
