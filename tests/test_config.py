"""Configuration files (`mrules.toml`, `[tool.mrules]`) and inline suppressions, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.config import Config, find_config, load_config

WARNS = (
    'tag "a"\nform "F"\non submit of form "F" { add tag "b" }\n'  # MR109 warning
    'automation rule "A" priority 1 { when all { score > 1 } then { score +1 } }\n'
    'automation rule "B" priority 1 { when all { score > 2 } then { score +1 } }\n'
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.mr").write_text(WARNS, "utf-8")
    return tmp_path


def lint(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(main, ["lint", "--format", "json", *args])
    codes = [d["code"] for d in json.loads(result.stdout)] if result.stdout.strip() else []
    return result.exit_code, codes, result.stderr


def test_no_configuration_reports_everything(project: Path) -> None:
    assert lint("rules") == (0, ["MR109", "MR312"], "2 warnings in 1 file\n")


def test_mrules_toml_ignores_selects_and_is_strict(project: Path) -> None:
    (project / "mrules.toml").write_text('ignore = ["MR109"]\nstrict = true\n', "utf-8")
    code, codes, _ = lint("rules")
    assert (code, codes) == (1, ["MR312"])
    (project / "mrules.toml").write_text('select = ["MR1"]\n', "utf-8")
    assert lint("rules")[:2] == (0, ["MR109"])


def test_pyproject_table_is_found_from_the_rule_path_upward(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.mrules]\nignore = ["MR3"]\nrules = ["rules"]\n', "utf-8"
    )
    assert find_config(project / "rules" / "main.mr") == project / "pyproject.toml"
    assert lint()[:2] == (0, ["MR109"])  # no path: the configured rule roots


def test_a_pyproject_without_the_table_is_skipped(project: Path) -> None:
    (project / "rules" / "pyproject.toml").write_text('[project]\nname = "x"\n', "utf-8")
    (project / "mrules.toml").write_text('ignore = ["MR312"]\n', "utf-8")
    assert find_config(project / "rules") == project / "mrules.toml"


def test_options_override_the_configuration(project: Path) -> None:
    (project / "mrules.toml").write_text('strict = true\nformat = "github"\n', "utf-8")
    assert lint("rules", "--no-strict")[0] == 0
    result = CliRunner().invoke(main, ["lint", "rules"])
    assert result.stdout.startswith("::warning file=rules/main.mr,")
    assert lint("rules", "--ignore", "mr109")[1] == ["MR312"]
    assert lint("rules", "--select", "MR312,MR1")[1] == ["MR109", "MR312"]


def test_explicit_config_file(project: Path) -> None:
    (project / "other.toml").write_text('ignore = ["MR312"]\n', "utf-8")
    assert lint("rules", "--config", "other.toml")[1] == ["MR109"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ignore = [", "not valid TOML"),
        ('ignores = ["MR1"]', "unknown key 'ignores'"),
        ('ignore = ["E501"]', "'E501' is not a code"),
        ('strict = "yes"', "'strict' must be true or false"),
        ('format = "xml"', "'format' must be one of"),
        ("select = [1]", "'select' must be a list of strings"),
    ],
)
def test_a_bad_configuration_is_a_usage_error(project: Path, text: str, message: str) -> None:
    (project / "mrules.toml").write_text(text, "utf-8")
    code, _, err = lint("rules")
    assert code == 2 and message in err and "Traceback" not in err


def test_a_bad_code_on_the_command_line(project: Path) -> None:
    code, _, err = lint("rules", "--ignore", "warning")
    assert code == 2 and "'WARNING' is not a code" in err


def test_no_path_and_no_configured_rules(project: Path) -> None:
    code, _, err = lint()
    assert code == 2 and "give at least one rule file" in err


def test_inline_suppression_and_unused_one_through_the_cli(project: Path) -> None:
    text = WARNS.replace('{ add tag "b" }', '{ add tag "b" }  # mrules: ignore[MR109]')
    text += 'list "L"  # mrules: ignore[MR101]\n'
    (project / "rules" / "main.mr").write_text(text, "utf-8")
    assert lint("rules")[1] == ["MR312", "MR030"]
    (project / "mrules.toml").write_text('ignore = ["MR030"]\n', "utf-8")
    assert lint("rules")[1] == ["MR312"]


def test_a_suppression_silences_diagnostics_of_its_own_file_only(project: Path) -> None:
    """The files without a suppression keep every diagnostic, loaded before or after
    the one with it."""
    main_mr = project / "rules" / "main.mr"
    silenced = WARNS.replace('{ add tag "b" }', '{ add tag "b" }  # mrules: ignore')
    main_mr.write_text(silenced, "utf-8")
    (project / "rules" / "a.mr").write_text('on submit of form "F" { add tag "c" }\n', "utf-8")
    (project / "rules" / "z.mr").write_text('on submit of form "F" { add tag "e" }\n', "utf-8")
    result = CliRunner().invoke(main, ["lint", "--format", "json", "rules"])
    assert result.exit_code == 0, result.output
    got = [(Path(d["path"]).name, d["line"], d["code"]) for d in json.loads(result.stdout)]
    assert got == [("a.mr", 1, "MR109"), ("main.mr", 5, "MR312"), ("z.mr", 1, "MR109")]


def test_file_wide_suppression(project: Path) -> None:
    text = "# mrules: ignore-file[MR109, MR312]\n" + WARNS
    (project / "rules" / "main.mr").write_text(text, "utf-8")
    assert lint("rules")[:2] == (0, [])


def test_errors_are_never_silenced(project: Path) -> None:
    """`mrules run` refuses a rule set with an error, so lint shows every error: a
    comment, `select` or `ignore` that would hide one leaves it (and the comment is
    reported), and lint exits 1."""
    main_mr = project / "rules" / "main.mr"
    main_mr.write_text(WARNS + 'list "L"\nlist "L"  # mrules: ignore[MR101, MR312]\n', "utf-8")
    code, codes, _ = lint("rules")
    assert code == 1 and sorted(codes) == ["MR030", "MR030", "MR101", "MR109", "MR312"]
    result = CliRunner().invoke(main, ["lint", "rules"])
    assert "errors cannot be silenced: MR101" in result.stdout
    assert "unused suppression of MR312" in result.stdout
    main_mr.write_text(WARNS + 'on submit of form "F" { add to list "Nope" }\n', "utf-8")
    assert lint("rules", "--ignore", "MR1")[:2] == (1, ["MR312", "MR103"])
    assert lint("rules", "--select", "MR3")[:2] == (1, ["MR312", "MR103"])
    (project / "mrules.toml").write_text('ignore = ["MR103"]\n', "utf-8")
    assert lint("rules")[:2] == (1, ["MR109", "MR312", "MR103"])
    (project / "mrules.toml").unlink()
    main_mr.write_text("# mrules: ignore-file[MR001]\n" + WARNS + "}\n", "utf-8")
    code, codes, _ = lint("rules")
    assert code == 1 and "MR001" in codes and "MR030" in codes


def test_defaults() -> None:
    assert Config().wants("MR001") and Config().format == "text"


def test_load_config_reads_paths_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "mrules.toml").write_text('rules = ["a", "b/c"]\n', "utf-8")
    assert load_config(tmp_path / "mrules.toml").rules == (tmp_path / "a", tmp_path / "b/c")


def test_stdin_filename_finds_the_configuration(project: Path) -> None:
    (project / "rules" / "mrules.toml").write_text('ignore = ["MR109"]\n', "utf-8")
    result = CliRunner().invoke(
        main, ["lint", "-", "--stdin-filename", "rules/draft.mr", "--format", "json"], input=WARNS
    )
    assert [d["code"] for d in json.loads(result.stdout)] == ["MR312"]


@pytest.mark.parametrize(
    "text",
    [
        'tool.mrules.ignore = ["MR3"]\ntool.mrules.rules = ["rules"]\n',
        '[tool]\nmrules = {ignore = ["MR3"], rules = ["rules"]}\n',
        '[tool]\nmrules.ignore = ["MR3"]\nmrules.rules = ["rules"]\n',
    ],
)
def test_a_pyproject_table_written_with_dotted_keys_is_found(project: Path, text: str) -> None:
    """TOML allows `[tool.mrules]` to be written with dotted keys or an inline table: the
    configuration is the same, and it is never skipped as if the file had none."""
    (project / "pyproject.toml").write_text(text + '\n[project]\nname = "x"\n', "utf-8")
    assert find_config(project / "rules" / "main.mr") == project / "pyproject.toml"
    assert lint()[:2] == (0, ["MR109"])


def test_a_pyproject_whose_tool_is_not_a_table_is_a_usage_error(project: Path) -> None:
    (project / "pyproject.toml").write_text("tool = 1  # [tool.mrules]\n", "utf-8")
    code, _, err = lint("rules")
    assert code == 2 and "[tool.mrules]: must be a table" in err


def test_a_path_whose_name_is_too_long_is_a_usage_error(project: Path) -> None:
    """The configuration is looked for from the path first: a name longer than the
    system takes was an internal error there (exit 70), before the loader could say so."""
    code, _, err = lint("n" * 300 + ".mr")
    assert code == 2 and "name too long" in err and "internal error" not in err


def test_an_explicit_pyproject_without_the_table_is_a_usage_error(project: Path) -> None:
    """`--config pyproject.toml` whose table is missing (or misspelt: `[tools.mrules]`)
    ran with the defaults, silently: every check the file meant to set was off."""
    (project / "pyproject.toml").write_text("[tools.mrules]\nstrict = true\n", "utf-8")
    code, _, err = lint("rules", "--config", "pyproject.toml")
    assert code == 2 and "pyproject.toml has no [tool.mrules] table" in err


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("mrules.toml", 'ignore = ["MR3"]\nrules = ["rules"]\n'),
        ("pyproject.toml", '[tool.mrules]\nignore = ["MR3"]\nrules = ["rules"]\n'),
        ("pyproject.toml", 'tool.mrules.ignore = ["MR3"]\ntool.mrules.rules = ["rules"]\n'),
    ],
)
def test_a_configuration_with_a_byte_order_mark_is_read(
    project: Path, name: str, text: str
) -> None:
    """A file saved as UTF-8 with a byte order mark (Windows Notepad, PowerShell) was `not
    valid TOML: Invalid statement (at line 1, column 1)`, exit 2, or, a pyproject.toml with
    dotted keys, skipped as if it had no table. Rule files and events take the mark too."""
    (project / name).write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert lint() == (0, ["MR109"], "1 warning in 1 file\n")


def test_a_pyproject_whose_table_is_commented_out_is_skipped(project: Path) -> None:
    """A pyproject.toml with `# [tool.mrules]` (the table commented out, to turn it off)
    stopped every `mrules lint` with `has no [tool.mrules] table`, exit 2, and hid the
    configuration of the folders above it: a file without the table is skipped."""
    (project / "mrules.toml").write_text('ignore = ["MR312"]\n', "utf-8")
    (project / "rules" / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n# [tool.mrules]\n# strict = true\n', "utf-8"
    )
    assert find_config(project / "rules" / "main.mr") == project / "mrules.toml"
    assert lint("rules") == (0, ["MR109"], "1 warning in 1 file\n")


def test_codes_in_the_configuration_are_read_in_any_case(project: Path) -> None:
    """`--ignore mr109` worked on the command line, but `ignore = ["mr109"]` in the
    configuration was exit 2 ("not a code"): the same code, written the same way."""
    (project / "mrules.toml").write_text('ignore = ["mr109"]\nselect = ["mr1", "Mr3"]\n')
    assert lint("rules")[:2] == (0, ["MR312"])


@pytest.mark.parametrize(
    ("name", "text", "shown"),
    [
        ("missing\udcff.toml", None, "missing\\xff.toml: cannot read"),
        ("bad\udcff.toml", "strict = [", "bad\\xff.toml: not valid TOML"),
        ("new\nline.toml", "colour = 1\n", "new\\x0aline.toml: unknown key 'colour'"),
    ],
)
def test_a_configuration_path_is_shown_as_other_paths_are(
    project: Path, name: str, text: str | None, shown: str
) -> None:
    """A byte of the name that is not UTF-8 is `\\xff`, as in every other message, not
    Python's `\\udcff`; a newline is escaped as `\\x0a`, so the message stays on one line."""
    if text is not None:
        (project / name).write_text(text, "utf-8")
    code, _, err = lint("rules", "--config", name)
    assert code == 2 and shown in err and "\\udcff" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("mrules.toml", 'rules = [""]\n', 1),
        ("mrules.toml", "# the rules\nstrict = true\nrules = [\n  \"rules\",\n  '',\n]\n", 5),
        ("mrules.toml", 'ignore = ["MR109"]  # not ""\nrules = ""\n', 2),
        ("pyproject.toml", '[project]\nname = "x"\n\n[tool.mrules]\nrules = ["rules", ""]\n', 5),
    ],
)
def test_an_empty_rules_path_is_refused_with_its_line(
    project: Path, name: str, text: str, line: int
) -> None:
    """`rules = [""]` linted the configuration's own folder, `rules/` and every other
    folder under it, where `mrules lint ""` is refused: an empty path is no folder."""
    (project / name).write_text(text, "utf-8")
    (project / "other").mkdir()
    (project / "other" / "broken.mr").write_text("this is not mrules\n", "utf-8")
    for args in ((), ("rules",)):
        code, codes, err = lint(*args)
        assert (code, codes) == (2, []), err
        assert err == (
            f"mrules: error: {project / name}:{line}: 'rules' needs a file or folder: an empty"
            ' path is not this file\'s folder (write "." for it)\n'
        )
