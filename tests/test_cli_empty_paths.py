"""An empty path is a usage error, never the current folder. `Path("")` is the folder `.`,
so `mrules fmt ""` (a variable left unset in a script: `mrules fmt "$RULES"`) reformatted
every rule file below the current folder and exited 0, `mrules lint ""` linted them, and
`mrules.run("", ...)` ran them as the rule set."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import mrules
from conftest import mrules as run_mrules

UNFORMATTED = 'list    "A"\n'

# Every command that takes a path, with an empty one where it goes.
COMMANDS = [
    ["fmt", ""],
    ["fmt", "--check", ""],
    ["fmt", "--diff", ""],
    ["fmt", "a.mr", ""],
    ["lint", ""],
    ["lint", "--config", ""],
    ["lint", "a.mr", "--sarif-file", ""],
    ["parse", ""],
    ["run", "", "e.jsonl", "--store", ":memory:"],
    ["run", "a.mr", "", "--store", ":memory:"],
    ["run", "a.mr", "e.jsonl", "--store", ":memory:", "--rejects", ""],
    ["segment", "", "--store", ":memory:"],
    ["replay", "--diff", "", "a.mr", "e.jsonl"],
    ["replay", "--diff", "--store-dir", "", "a.mr", "a.mr", "e.jsonl"],
    ["test", ""],
    ["test", "-o", ""],
    ["partition", "", "--out", "parts"],
    ["partition", "e.jsonl", "--out", ""],
    ["state", "export", "--store", ""],
    ["state", "outbox", "--store", ""],
    ["explain", "a@x.com", "--store", ""],
    ["explain", "a@x.com", "--timeline", "--sync-db", ""],
    ["report", "funnel", "--store", ""],
    ["report", "campaigns", "--rules", ""],
    ["report", "html", ""],
    ["report", "html", "o.html", "--replay-diff", ""],
    ["sync", "plan", "--rules", ""],
    ["sync", "plan", "--rules", "a.mr", "--crm", ""],
    ["sync", "plan", "--rules", "a.mr", "--out", ""],
    ["sync", "apply", "", "--rules", "a.mr"],
    ["sync", "run", "--rules", "a.mr", "--until", "2026-11-03T00:00:00Z", "--changes", ""],
    ["crm", "load", ""],
    ["crm", "export", "--crm", ""],
    ["crm", "export", "--out", ""],
    ["crm", "apply-changes", ""],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(repr(x) for x in a))
def test_an_empty_path_is_a_usage_error(here: Path, args: list[str]) -> None:
    (here / "a.mr").write_text(UNFORMATTED, encoding="utf-8")
    (here / "e.jsonl").write_text("", encoding="utf-8")
    before = sorted(p.name for p in here.iterdir())
    r = run_mrules(*args)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("mrules: error: "), r.stderr
    assert "an empty path" in r.stderr, r.stderr
    assert "Traceback" not in r.output
    assert (here / "a.mr").read_text(encoding="utf-8") == UNFORMATTED  # nothing formatted
    assert sorted(p.name for p in here.iterdir()) == before  # nothing written


@pytest.mark.parametrize(
    "args",
    [
        ["state", "export"],
        ["state", "outbox"],
        ["explain", "a@x.com"],
        ["report", "funnel"],
        ["report", "html", "o.html"],
        ["segment", "a.mr"],
    ],
    ids=" ".join,
)
@pytest.mark.parametrize("store", ["", " "], ids=["empty", "blank"])
def test_reading_commands_do_not_offer_a_store_in_memory(
    here: Path, args: list[str], store: str
) -> None:
    """`mrules state export --store ""` said "give the store's file, or :memory: for a
    run that keeps nothing", and `--store :memory:` is then refused: nothing to read."""
    (here / "a.mr").write_text(UNFORMATTED, encoding="utf-8")
    r = run_mrules(*args, "--store", store)
    assert r.exit_code == 2, r.output
    assert "give the store's file a run wrote" in r.stderr, r.stderr
    assert ":memory:" not in r.stderr, r.stderr
    r = run_mrules("run", "a.mr", "e.jsonl", "--store", store)  # a run can keep nothing
    assert r.exit_code == 2, r.output
    assert ":memory: for a run that keeps nothing" in r.stderr, r.stderr


def test_fmt_of_an_empty_path_formats_nothing(tmp_path: Path) -> None:
    """As a user meets it: the program, in a folder of rule files."""
    (tmp_path / "a.mr").write_text(UNFORMATTED, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mrules", "fmt", ""],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("mrules: error: PATHS needs a file or folder: an empty path")
    assert "give '.'" in done.stderr
    assert (tmp_path / "a.mr").read_text(encoding="utf-8") == UNFORMATTED


def test_a_path_given_is_still_taken(here: Path) -> None:
    """`.` is the current folder, as it always was."""
    (here / "a.mr").write_text(UNFORMATTED, encoding="utf-8")
    assert run_mrules("fmt", "--check", ".").exit_code == 1
    assert run_mrules("lint", ".").exit_code == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: mrules.load(""),
        lambda: mrules.load(["a.mr", ""]),
        lambda: mrules.run("", []),
        lambda: mrules.run(["a.mr", ""], []),
        lambda: mrules.run("a.mr", ""),
        lambda: mrules.run("a.mr", [], store=""),
    ],
)
def test_the_library_refuses_an_empty_path(here: Path, call: Callable[[], object]) -> None:
    (here / "a.mr").write_text(UNFORMATTED, encoding="utf-8")
    with pytest.raises(ValueError, match="an empty path"):
        call()
    assert sorted(p.name for p in here.iterdir()) == ["a.mr"]


def test_the_loader_refuses_an_empty_path() -> None:
    from mrules.loader import LoadError, rule_files

    with pytest.raises(LoadError, match="an empty path"):
        rule_files([""])
