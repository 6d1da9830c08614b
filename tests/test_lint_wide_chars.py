"""The caret under a lint excerpt sits under the text as a terminal shows it: a wide
character (CJK, most emoji) takes two columns. `line:col` and the JSON and SARIF
columns still count code points."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from mrules.cli import main
from mrules.exitcodes import ExitCode

RULES = """\
list "MQL"
form "日本語フォーム"
form "🚀 launch"
on submit of form "日本語フォーム" { add to lst "MQL" }
on submit of form "🚀 launch" { add to list "ＭＱＬ" }
"""


def _columns(text: str) -> int:
    """Terminal columns, counted independently of mrules' own helper."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    Path("wide.mr").write_text(RULES, encoding="utf-8")
    return tmp_path


def _caret_under(output: str, line_no: int) -> tuple[str, str]:
    lines = output.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith(f"{line_no} | "))
    return lines[at], lines[at + 1]


def test_caret_after_wide_characters(workdir: Path) -> None:
    res = CliRunner().invoke(main, ["lint", "wide.mr"])
    assert res.exit_code == ExitCode.DIAGNOSTICS, res.output
    # positions count code points, as before
    assert "wide.mr:4:38: error[MR001]: unexpected 'lst'" in res.output
    assert "wide.mr:5:44: error[MR103]: unknown list 'ＭＱＬ'" in res.output

    shown, caret = _caret_under(res.output, 4)
    source = RULES.splitlines()[3]
    assert shown == f"4 | {source}"
    assert (
        caret == "  | " + " " * _columns(source[: source.index("lst")]) + "^^^ did you mean 'list'?"
    )

    shown, caret = _caret_under(res.output[res.output.index("wide.mr:5:") :], 5)
    source = RULES.splitlines()[4]
    start = source.index('"ＭＱＬ"')
    marks = _columns('"ＭＱＬ"')  # 3 fullwidth letters and 2 quotes: 8 columns
    assert marks == 8
    assert caret.startswith("  | " + " " * _columns(source[:start]) + "^" * marks + " ")


def test_json_columns_still_count_code_points(workdir: Path) -> None:
    res = CliRunner().invoke(main, ["lint", "wide.mr", "--format", "json"])
    found = {(d["line"], d["column"], d["end_column"]) for d in json.loads(res.stdout)}
    assert (4, 38, 41) in found and (5, 44, 49) in found


def test_sarif_columns_still_count_code_points(workdir: Path) -> None:
    res = CliRunner().invoke(main, ["lint", "wide.mr", "--format", "sarif"])
    results = json.loads(res.stdout)["runs"][0]["results"]
    regions = {
        (r["startLine"], r["startColumn"], r["endColumn"])
        for r in (x["locations"][0]["physicalLocation"]["region"] for x in results)
    }
    assert (4, 38, 41) in regions and (5, 44, 49) in regions


@pytest.mark.parametrize("invisible", ["\u202e", "\u2066", "\u200f", "\u2028", "\u2029"])
def test_a_direction_override_or_line_separator_is_shown_escaped(
    workdir: Path, invisible: str
) -> None:
    # A right-to-left override (Trojan Source) printed raw turned the rest of the excerpt
    # around in the terminal, the caret under another character; U+2028 broke the line.
    Path("bidi.mr").write_text(f'tag "x{invisible}y" @\n', encoding="utf-8")
    r = CliRunner().invoke(main, ["lint", "bidi.mr"])
    assert r.exit_code == ExitCode.DIAGNOSTICS
    assert invisible not in r.output
    escaped = f"\\u{ord(invisible):04x}"
    line, caret = _caret_under(r.output, 1)
    assert line == f'1 | tag "x{escaped}y" @'
    assert line[caret.index("^")] == "@"
    out = CliRunner().invoke(main, ["fmt", "-"], input=f'tag "x{invisible}y"\n')
    assert out.exit_code == 0 and out.stdout == f'tag "x{escaped}y"\n'


@pytest.mark.parametrize(
    ("text", "marked"),
    [
        ('list "a\tbc\n', '"a\tbc'),  # MR004: the whole unclosed string
        (
            'form "F"\non submit of form "F" {\n'
            '\tcreate crm task "C" (due in 1 day, due\tin 2 days)\n}\n',
            "due\tin 2 days",  # MR010: the repeated option
        ),
    ],
)
def test_caret_run_over_a_tab_ends_under_the_span(workdir: Path, text: str, marked: str) -> None:
    # The run of carets measured its span's tab from the span's start, not the line's,
    # so it ran past the span (or stopped short) when the tab stop fell elsewhere.
    Path("tab.mr").write_text(text, encoding="utf-8")
    r = CliRunner().invoke(main, ["lint", "tab.mr"])
    assert r.exit_code == ExitCode.DIAGNOSTICS, r.output
    line_no = text.count("\n", 0, text.index(marked)) + 1
    source = text.splitlines()[line_no - 1]
    line, caret = _caret_under(r.output, line_no)
    assert line == f"{line_no} | {source.expandtabs(4)}"
    start = len(source[: source.index(marked)].expandtabs(4))
    end = len(source[: source.index(marked) + len(marked)].expandtabs(4))
    assert caret.startswith("  | " + " " * start + "^" * (end - start) + " "), (line, caret)
