"""The words of the command line: what lint, fmt, test, explain, state and report say
when they are given odd paths (a name with a newline, a file with a trailing slash,
standard input where it is not taken) and missing stores."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from conftest import CONTACT_RULES, EXAMPLE, example_store, leaf_commands, mrules

NEWLINE_FOLDER = "no\nsuch"
"""A folder that does not exist, named with a newline: a message shows it as `no\\x0asuch`,
on one line."""


def _one_line_error(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith("mrules: error:")]
    assert len(output.splitlines()) == 1, output  # the name split no message in two
    return line


def test_sarif_file_in_a_missing_folder_named_with_a_newline(here: Path) -> None:
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    r = mrules("lint", "r.mr", "--sarif-file", f"{NEWLINE_FOLDER}/x.sarif")
    assert r.exit_code == 2, r.output
    line = _one_line_error(r.output)
    assert "--sarif-file no\\x0asuch/x.sarif: no\\x0asuch does not exist" in line


def test_test_output_in_a_missing_folder_named_with_a_newline(here: Path) -> None:
    r = mrules("test", "-o", f"{NEWLINE_FOLDER}/junit.xml")
    assert r.exit_code == 2, r.output
    line = _one_line_error(r.output)
    assert "-o no\\x0asuch/junit.xml: no\\x0asuch does not exist" in line


def test_report_html_in_a_missing_folder_named_with_a_newline(here: Path) -> None:
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("e.jsonl").write_text("", "utf-8")
    assert mrules("run", "r.mr", "e.jsonl", "--store", "s.db").exit_code == 0
    r = mrules("report", "html", f"{NEWLINE_FOLDER}/r.html", "--store", "s.db")
    assert r.exit_code == 2, r.output
    line = _one_line_error(r.output)
    assert "no\\x0asuch/r.html" in line and "no folder no\\x0asuch" in line


@pytest.mark.parametrize("what", ["--sarif-file", "-o"])
def test_output_over_an_input_named_with_a_newline(here: Path, what: str) -> None:
    """`refuse_output_over_inputs`: the output file is an input, named with a newline."""
    if what == "-o":
        Path("r.mr").write_text(CONTACT_RULES, "utf-8")
        Path("a\nb.test.yaml").write_text("rules: r.mr\ntests: []\n", "utf-8")
        r = mrules("test", "a\nb.test.yaml", "-o", "a\nb.test.yaml")
        said = "-o a\\x0ab.test.yaml is a test file it runs"
    else:
        Path("a\nb.mr").write_text(CONTACT_RULES, "utf-8")
        r = mrules("lint", "a\nb.mr", "--sarif-file", "a\nb.mr")
        said = "--sarif-file a\\x0ab.mr is a rule file it lints"
    assert r.exit_code == 2, r.output
    assert said in _one_line_error(r.output)


@pytest.mark.parametrize("command", [["lint"], ["fmt"], ["fmt", "--check"], ["parse"]])
def test_standard_input_given_twice(here: Path, command: list[str]) -> None:
    """`- -` gives no file or folder: it is standard input twice, which is read once."""
    r = mrules(*command, "-", "-")
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == (
        "mrules: error: '-' (standard input) can be given once: it is read as one rule file"
    )
    Path("x.mr").write_text(CONTACT_RULES, "utf-8")
    r = mrules(*command, "-", "x.mr")
    assert r.exit_code == 2, r.output
    assert "cannot be mixed with file or folder paths" in _one_line_error(r.output)


@pytest.mark.parametrize("fmt", ["text", "junit"])
def test_test_does_not_read_standard_input(here: Path, fmt: str) -> None:
    """`-` is standard input to every command that reads one; `mrules test` reads none."""
    r = mrules("test", "-", "--format", fmt)
    assert r.exit_code == 2, r.output
    assert (
        "-: mrules test reads test files from files and folders, not standard input"
        " (a file named - is ./-)"
    ) in r.output
    assert "no such file" not in r.output


NOT_A_FOLDER = "r.mr/: not a folder (a file: give it without the trailing /)"


@pytest.mark.parametrize(
    "args",
    [
        ["lint", "r.mr/"],
        ["fmt", "r.mr/"],
        ["fmt", "--check", "r.mr/"],
        ["parse", "r.mr/"],
        ["run", "r.mr/", "e.jsonl", "--store", ":memory:"],
        ["replay", "r.mr", "r.mr/", "e.jsonl", "--diff"],
    ],
)
def test_a_rule_file_with_a_trailing_slash_is_not_a_folder(here: Path, args: list[str]) -> None:
    """The system refuses `r.mr/` (ENOTDIR); `Path("r.mr/")` is `r.mr`, read as the file."""
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("e.jsonl").write_text("", "utf-8")
    r = mrules(*args)
    assert r.exit_code == 2, r.output
    assert NOT_A_FOLDER in _one_line_error(r.output)
    assert Path("r.mr").read_text("utf-8") == CONTACT_RULES


def test_a_test_file_with_a_trailing_slash_is_not_a_folder(here: Path) -> None:
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("t.test.yaml").write_text(
        "rules: r.mr\ntests:\n  - name: t\n    expect: {prospects: {}}\n", "utf-8"
    )
    assert mrules("test", "t.test.yaml").exit_code == 0
    r = mrules("test", "t.test.yaml/")
    assert r.exit_code == 2, r.output
    assert "t.test.yaml/: not a folder (a file: give it without the trailing /)" in r.output
    assert "0 passed" not in r.output and "no tests run: 1 path above cannot be used" in r.output
    Path("t.test.yaml").write_text(
        "rules: r.mr/\ntests:\n  - name: t\n    expect: {prospects: {}}\n", "utf-8"
    )
    r = mrules("test", "t.test.yaml")
    assert r.exit_code == 2, r.output
    assert f"t.test.yaml:1:1: rules: {NOT_A_FOLDER}" in r.output


def test_a_rule_folder_with_a_trailing_slash_is_still_a_folder(here: Path) -> None:
    Path("rules").mkdir()
    Path("rules", "r.mr").write_text(CONTACT_RULES, "utf-8")
    r = mrules("lint", "rules/")
    assert r.exit_code == 0, r.output
    assert mrules("fmt", "--check", "rules/").exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["report", "funnel"],
        ["report", "campaigns"],
        ["report", "rules"],
        ["report", "scores"],
        ["report", "html", "o.html"],
        ["state", "export"],
        ["state", "outbox"],
        ["explain", "a@x.example"],
    ],
)
@pytest.mark.parametrize("store", [None, "nope.db", "no-folder/nope.db"])
def test_a_missing_store_says_how_to_make_one(
    here: Path, args: list[str], store: str | None
) -> None:
    """Every command that reads a store gives `report html`'s hint (only it did)."""
    r = mrules(*args, *(["--store", store] if store else []))
    assert r.exit_code == 2, r.output
    shown = store or "mrules.db"
    assert _one_line_error(r.output) == (
        f"mrules: error: no store at {shown} (run `mrules run ... --store {shown}` first)"
    )
    assert not Path(shown).exists() and not Path("o.html").exists()


@pytest.mark.parametrize(
    ("option", "args"),
    [
        ("--sarif-file", ["lint", "r.mr", "--sarif-file", "out.x/"]),
        ("-o", ["test", "t.test.yaml", "-o", "out.x/"]),
        ("--actions", ["run", "r.mr", "e.jsonl", "--store", "s.db", "--actions", "out.x/"]),
        ("OUT", ["report", "html", "out.x/", "--store", "s.db"]),
    ],
)
def test_an_output_file_name_ending_with_a_slash_is_refused(
    here: Path, option: str, args: list[str]
) -> None:
    """`Path("out.x/")` is `out.x`: the file was written under the name without the `/`,
    where the system refuses to open `out.x/` for writing."""
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("e.jsonl").write_text("", "utf-8")
    Path("t.test.yaml").write_text(
        "rules: r.mr\ntests:\n  - name: t\n    expect: {prospects: {}}\n", "utf-8"
    )
    if args[0] == "report":
        assert mrules("run", "r.mr", "e.jsonl", "--store", "s.db").exit_code == 0
    r = mrules(*args)
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == (
        f"mrules: error: {option} out.x/: a file name cannot end with / (that names a folder)"
    )
    assert not Path("out.x").exists()


def test_not_utf8_after_a_bom_names_the_byte_its_offset_and_line(here: Path) -> None:
    """The codec counts offsets after a BOM: `lint` named the byte before (0x0a), its
    offset 3 short and the line before."""
    Path("r.mr").write_bytes(b'\xef\xbb\xbflist "a"\n# \xff\n')
    r = mrules("lint", "r.mr")
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == (
        "mrules: error: r.mr:2: not UTF-8 text (byte 0xff at offset 14); save the file as UTF-8"
    )


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_test_file_not_utf8_says_which_byte_as_lint_does(here: Path, bom: bytes) -> None:
    """It said `not UTF-8 text (byte at offset 17)`: no byte, no line, no advice."""
    Path("t.test.yaml").write_bytes(bom + b"rules: r.mr\n# caf\xe9\n")
    r = mrules("test", "t.test.yaml")
    assert r.exit_code == 2, r.output
    at = 17 + len(bom)
    assert (
        f"t.test.yaml:2: not UTF-8 text (byte 0xe9 at offset {at}); save the file as UTF-8"
        in r.output
    )


def test_a_store_given_as_a_test_file_is_named(here: Path) -> None:
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("e.jsonl").write_text("", "utf-8")
    assert mrules("run", "r.mr", "e.jsonl", "--store", "s.db").exit_code == 0
    r = mrules("test", "s.db")
    assert r.exit_code == 2, r.output
    assert "s.db: an SQLite database (a store?), not a test file" in r.output


@pytest.mark.parametrize("check", [[], ["--check"], ["--diff"]])
def test_fmt_names_a_store_given_as_a_rule_file_as_lint_does(here: Path, check: list[str]) -> None:
    """`fmt --check mrules.db` said `mrules.db:1: not UTF-8 text (byte 0x.. at offset ..)`."""
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("e.jsonl").write_text("", "utf-8")
    assert mrules("run", "r.mr", "e.jsonl", "--store", "s.db").exit_code == 0
    before = Path("s.db").read_bytes()
    said = (
        "mrules: error: PATHS s.db is an SQLite database (a store?), not a rule file: give a"
        " rule folder or a rule file (*.mr)"
    )
    assert _one_line_error(mrules("lint", "s.db").output) == said
    r = mrules("fmt", *check, "s.db")
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == said
    assert Path("s.db").read_bytes() == before


@pytest.mark.parametrize("args", [["state", "export"], ["explain", "a@x.example"]])
def test_a_crm_or_sync_file_given_as_the_store_is_named(here: Path, args: list[str]) -> None:
    """They said `g.crm.db is not an mrules store (no schema version)`, with nothing to do."""
    store = example_store(here)
    r = mrules(
        "sync",
        "run",
        "--store",
        store,
        "--rules",
        EXAMPLE / "rules",
        "--until",
        "2026-12-01T00:00:00Z",
    )
    assert r.exit_code == 0, r.output
    for name, what in (("g.crm.db", "CRM"), ("g.sync.db", "sync")):
        assert Path(name).is_file()
        r = mrules(*args, "--store", name)
        assert r.exit_code == 4, r.output
        assert _one_line_error(r.output) == (
            f"mrules: error: {name} is an mrules {what} file, not a store: give the store"
            " (g.db) as --store"
        )
    r = mrules("report", "funnel", "--store", "g.crm.db")
    assert r.exit_code == 4 and "g.crm.db is an mrules CRM file, not a store" in r.output


NO_DEFAULT = {"--explain"}
"""Options that do something rather than set something: there is no default to state."""


@pytest.mark.parametrize(
    ("path", "command"),
    leaf_commands("lint", "fmt", "test", "explain", "state", "report"),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_option_says_its_default(path: str, command: click.Command) -> None:
    """A new user reads `--help`: an option that takes a value says what it is when not
    given, as click's `[default: ...]` (shown) or in the same words in its help."""
    silent = [
        max(p.opts, key=len)
        for p in command.params
        if isinstance(p, click.Option)
        and not p.is_flag
        and not p.show_default
        and max(p.opts, key=len) not in NO_DEFAULT
        and "[default:" not in (p.help or "")
    ]
    assert not silent, f"mrules {path}: {silent} say no default"


@pytest.mark.parametrize(
    ("path", "command"),
    leaf_commands("lint", "fmt", "test", "explain", "state", "report"),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_help_lists_the_exit_statuses(path: str, command: click.Command) -> None:
    """Each command's help says what its exit statuses mean (docs/exit-codes.md): every one
    of these commands can be interrupted (130) and write to standard output (4 when it
    is closed)."""
    r = mrules(*path.split(), "--help")
    text = " ".join(r.output.split())
    assert "Exit status (docs/exit-codes.md): 0" in text
    said = text.split("Exit status", 1)[1].split("Example", 1)[0]
    assert "130 interrupted" in said, path
    assert "standard output" in said, path


def test_help_examples_name_the_store_the_readme_names() -> None:
    """`explain`, `state export`, `state outbox`, `run`, `segment` and `crm` showed `--store
    /tmp/getcloudy.db`, the README and `report` `getcloudy.db`: one quick start, one path."""
    from conftest import ROOT

    readme = (ROOT / "README.md").read_text("utf-8")
    quick = re.search(r"mrules run examples/getcloudy/rules \S+ --store (\S+)", readme)
    assert quick is not None
    stores = {}
    for path, _ in leaf_commands("run", "segment", "explain", "state", "report", "sync", "crm"):
        text = mrules(*path.split(), "--help").output
        example = text.split("Example", 1)[-1].split("Options:", 1)[0]
        for store in re.findall(r"--store (\S+)", example):
            stores.setdefault(store, []).append(path)
    assert set(stores) == {quick.group(1)}, stores


def test_a_configuration_not_utf8_says_where_as_a_rule_file_does(here: Path) -> None:
    """`--config` said `bad.toml: not UTF-8 text` only; a store given there, the same."""
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("bad.toml").write_bytes(b"strict = true\n# \xff\n")
    r = mrules("lint", "r.mr", "--config", "bad.toml")
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == (
        "mrules: error: bad.toml:2: not UTF-8 text (byte 0xff at offset 16); save the file as UTF-8"
    )
    Path("e.jsonl").write_text("", "utf-8")
    assert mrules("run", "r.mr", "e.jsonl", "--store", "s.db").exit_code == 0
    r = mrules("lint", "r.mr", "--config", "s.db")
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == (
        "mrules: error: s.db: an SQLite database (a store?), not a configuration file"
    )


@pytest.mark.parametrize(
    "args", [["report", "funnel"], ["explain", "leung@example.com", "--timeline"]]
)
def test_the_store_or_crm_file_given_as_the_sync_file_is_named(here: Path, args: list[str]) -> None:
    """They said `g.crm.db is not an mrules sync file (no link or opportunity table)`."""
    example_store(here)
    for name, said in (
        ("g.crm.db", "g.crm.db is an mrules CRM file, not a sync file: give the sync file"),
        ("g.db", "g.db is the mrules store, not a sync file: give its sync file"),
    ):
        r = mrules(*args, "--store", "g.db", "--sync-db", name)
        assert r.exit_code == 4, r.output
        assert _one_line_error(r.output) == f"mrules: error: {said} (g.sync.db)"


@pytest.mark.parametrize(
    ("what", "args"),
    [
        ("EMAIL", ["explain", ""]),
        ("EMAIL", ["explain", " "]),
        ("--prospect", ["state", "export", "--prospect", ""]),
        ("--timeline", ["report", "html", "o.html", "--timeline", ""]),
    ],
)
def test_an_empty_email_is_said_to_be_empty(here: Path, what: str, args: list[str]) -> None:
    """`explain ""` (a variable left unset) said `no prospect '' in g.db`, as if searched."""
    example_store(here)
    r = mrules(*args, "--store", "g.db")
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == f"mrules: error: {what} is empty: give a prospect's email"
    assert not Path("o.html").exists()


def test_report_html_escapes_the_timeline_email_it_cannot_find(here: Path) -> None:
    example_store(here)
    r = mrules("report", "html", "o.html", "--timeline", "a\nb@x.example", "--store", "g.db")
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == "mrules: error: no prospect 'a\\x0ab@x.example' in g.db"


@pytest.mark.parametrize(
    "args",
    [["report", "rules"], ["report", "campaigns"], ["report", "html", "o.html"]],
)
def test_report_rules_refuses_a_store_or_an_empty_file_as_lint_does(
    here: Path, args: list[str]
) -> None:
    """`report rules --rules s.db` said `the rules cannot be read: s.db:1: not UTF-8 text`,
    and `--rules empty.txt` read an empty rule set."""
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("e.jsonl").write_text("", "utf-8")
    assert mrules("run", "r.mr", "e.jsonl", "--store", "s.db").exit_code == 0
    Path("empty.txt").write_bytes(b"")
    for given, what in (
        ("s.db", "an SQLite database (a store?)"),
        ("empty.txt", "an empty file (0 bytes)"),
    ):
        r = mrules(*args, "--store", "s.db", "--rules", given)
        assert r.exit_code == 2, r.output
        assert _one_line_error(r.output) == (
            f"mrules: error: --rules {given} is {what}, not a rule file: give a rule folder or"
            " a rule file (*.mr)"
        )
    assert not Path("o.html").exists()


def test_report_html_names_a_store_given_as_the_replay_diff(here: Path) -> None:
    Path("r.mr").write_text(CONTACT_RULES, "utf-8")
    Path("e.jsonl").write_text("", "utf-8")
    assert mrules("run", "r.mr", "e.jsonl", "--store", "s.db").exit_code == 0
    r = mrules("report", "html", "o.html", "--store", "s.db", "--replay-diff", "s.db")
    assert r.exit_code == 2, r.output
    assert _one_line_error(r.output) == (
        "mrules: error: --replay-diff s.db is an SQLite database (a store?), not the JSON of"
        " `mrules replay --diff ... --format json`"
    )
