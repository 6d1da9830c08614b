"""`--wait-timeout` has a maximum (1e300 waited forever), and `mrules segment` refuses a
RULES file that is plainly no rule file (an empty file, a store, binary data) instead of
running it as a rule set without segmentation rules (exit 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.test_cli_odd_paths_and_options import EXAMPLE, mrules

from mrules.cli.common import MAX_WAIT_SECONDS


def _args(command: str) -> list[str | Path]:
    if command == "segment":
        return ["segment", EXAMPLE / "rules", "--store", ":memory:"]
    return ["run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", ":memory:"]


@pytest.mark.parametrize("value", ["1e300", "1e10", str(MAX_WAIT_SECONDS + 1), "604800.5"])
@pytest.mark.parametrize("command", ["run", "segment"])
def test_wait_timeout_above_the_maximum_is_a_usage_error(command: str, value: str) -> None:
    r = mrules(*_args(command), "--wait-timeout", value)
    assert r.exit_code == 2, r.output  # 1e300 was taken: it waited as good as forever
    assert "Invalid value for '--wait-timeout'" in r.stderr
    assert f"{value}: at most 604800 seconds (7 days) can be waited" in r.stderr
    assert "--wait alone waits 600 seconds" in r.stderr


def test_wait_timeout_of_the_maximum_is_taken() -> None:
    assert MAX_WAIT_SECONDS == 604800  # docs/exit-codes.md and docs/store.md say so
    r = mrules(*_args("run"), "--wait-timeout", str(MAX_WAIT_SECONDS))
    assert r.exit_code == 0, r.output


@pytest.fixture
def store(here: Path) -> Path:
    """A store the example's run wrote."""
    r = mrules("run", EXAMPLE / "rules", EXAMPLE / "events.jsonl", "--store", "s.db", "-q")
    assert r.exit_code == 0, r.output
    return here / "s.db"


@pytest.mark.parametrize(
    ("name", "data", "what"),
    [
        ("empty.db", b"", "an empty file (0 bytes)"),
        ("rules", b"", "an empty file (0 bytes)"),
        ("blob.bin", b"\x00\x01\x02 list", "binary data (it holds a NUL byte)"),
        ("other.sqlite", b"SQLite format 3\x00" + b"\x00" * 84, "an SQLite database (a store?)"),
    ],
    ids=["empty-db", "empty-no-suffix", "binary", "sqlite"],
)
def test_segment_refuses_a_rules_file_that_is_no_rule_file(
    store: Path, name: str, data: bytes, what: str
) -> None:
    Path(name).write_bytes(data)
    r = mrules("segment", name, "--store", "s.db")
    assert r.exit_code == 2, r.output  # an empty file was "no segmentation rules", exit 0
    assert r.stderr == (
        f"mrules: error: RULES {name} is {what}, not a rule file: give the rule folder or a"
        " rule file (*.mr) first, and the store with --store\n"
    )
    assert r.stdout == ""


def test_segment_given_the_store_for_the_rules_says_so(store: Path) -> None:
    before = store.read_bytes()
    r = mrules("segment", "s.db")  # the rules forgotten: the store where RULES goes
    assert r.exit_code == 2, r.output  # was "s.db:1: not UTF-8 text ...; save the file as UTF-8"
    assert "RULES s.db is an SQLite database (a store?), not a rule file" in r.stderr
    assert "UTF-8" not in r.stderr
    assert store.read_bytes() == before


def test_segment_still_takes_an_empty_rule_file_and_a_rule_file_of_any_name(store: Path) -> None:
    Path("empty.mr").write_bytes(b"")  # a rule file (*.mr) with nothing in it: as lint takes it
    r = mrules("segment", "empty.mr", "--store", "s.db")
    assert r.exit_code == 0, r.output
    assert "no segmentation rules in this rule set" in r.stderr
    text = "".join(p.read_text("utf-8") for p in sorted((EXAMPLE / "rules").glob("*.mr")))
    Path("all-rules.txt").write_text(text, "utf-8")
    r = mrules("segment", "all-rules.txt", "--store", "s.db")
    assert r.exit_code == 0, r.output
    assert "Backfill consult tag: 3 prospects matched" in r.stdout


@pytest.mark.parametrize("command", ["run", "lint", "parse"])
def test_every_command_that_loads_rules_refuses_a_store_given_as_rules(
    store: Path, command: str
) -> None:
    before = store.read_bytes()
    args: list[str | Path] = [command, "s.db"]
    if command == "run":  # `run s.db events` ran no rules at all, exit 0
        args += [EXAMPLE / "events.jsonl", "--store", "other.db"]
    r = mrules(*args)
    assert r.exit_code == 2, r.output
    # named as the command's usage line names it: `run RULES ...`, `lint [PATHS]...`
    argument = "RULES" if command == "run" else "PATHS"
    assert f"{argument} s.db is an SQLite database (a store?), not a rule file" in r.stderr
    # `lint` and `parse` take no store: the hint does not send the user to --store
    assert ("--store" in r.stderr) == (command == "run")
    assert store.read_bytes() == before
    assert not Path("other.db").exists()


def test_a_utf16_rule_file_gets_the_loaders_save_as_utf8_hint(here: Path) -> None:
    Path("rules.txt").write_bytes("rule text".encode("utf-16"))  # NUL bytes, but text
    r = mrules("lint", "rules.txt")
    assert r.exit_code == 2, r.output
    assert "save the file as UTF-8" in r.stderr
    assert "binary data" not in r.stderr


def test_segment_help_names_the_crm_campaign_actions_it_applies(store: Path) -> None:
    """`segment --help` said segmentation rules apply their list and tag actions; they
    may also add to a CRM campaign (docs/language.md §6.1), and segment applies it."""
    rules = Path("rules")
    rules.mkdir()
    for path in (EXAMPLE / "rules").glob("*.mr"):
        (rules / path.name).write_text(path.read_text("utf-8"), "utf-8")
    (rules / "60-segment.mr").write_text(
        'segmentation rule "Consult campaign" {\n'
        '  when all { submitted form "Demande Get Cloudy" }\n'
        '  then { add to crm campaign "Get Cloudy Consult 2026" status "Sent" }\n'
        "}\n",
        "utf-8",
    )
    r = mrules("segment", rules, "--store", "s.db")
    assert r.exit_code == 0, r.output
    assert "Consult campaign: 3 prospects matched" in r.stdout
    r = mrules("state", "export", "--store", "s.db", "--prospect", "bob@bigcorp.example")
    [work] = [w for w in json.loads(r.stdout)["pending_crm"] if w["rule"] == "Consult campaign"]
    assert (work["kind"], work["status"]) == ("campaign_member", "Sent")
    shown = " ".join(mrules("segment", "--help").stdout.split())
    assert "apply their list, tag and CRM campaign actions" in shown


def test_segment_without_segmentation_rules_leaves_the_store_as_it_was(store: Path) -> None:
    """`segment` said "no segmentation rules in this rule set" and exit 0, having run the
    engine over the store with the rules given: an empty rule file lowered the grades
    of Bob and Ivy (C- to D, the example's grading profile absent), `by mrules segment`."""
    before = mrules("state", "export", "--store", "s.db").stdout
    assert '"grade":"C-"' in before
    Path("empty.mr").write_bytes(b"")
    Path("lists.mr").write_text('list "Other"\n', "utf-8")
    for rules in ("empty.mr", "lists.mr"):
        r = mrules("segment", rules, "--store", "s.db")
        assert r.exit_code == 0, r.output
        assert mrules("state", "export", "--store", "s.db").stdout == before
        assert r.stderr == "no segmentation rules in this rule set: the store is left as it was\n"
        assert r.stdout == ""
    r = mrules("segment", "empty.mr", "--store", "other.db")  # no store: still exit 2
    assert r.exit_code == 2 and "no store at other.db" in r.stderr
    Path("foreign.db").write_bytes(Path("s.db").read_bytes()[:100])  # a SQLite header only
    assert mrules("segment", "empty.mr", "--store", "foreign.db").exit_code == 4
