"""`mrules parse` end to end: the example's AST and summary, a broken file, a missing path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from syrupy.extensions.json import JSONSnapshotExtension

from mrules.cli import main

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    # Paths in the output are shown relative to the working directory.
    monkeypatch.chdir(ROOT)


@pytest.mark.usefixtures("in_repo")
def test_parse_example_as_json_without_spans(snapshot) -> None:
    result = CliRunner().invoke(
        main, ["parse", "examples/getcloudy/rules", "--format", "json", "--no-spans"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert '"span"' not in result.stdout
    assert data["kind"] == "program"
    assert data == snapshot.use_extension(JSONSnapshotExtension)


@pytest.mark.usefixtures("in_repo")
def test_parse_example_summary(snapshot) -> None:
    result = CliRunner().invoke(main, ["parse", "examples/getcloudy/rules", "--format", "summary"])
    assert result.exit_code == 0, result.output
    assert result.stdout == snapshot


def test_broken_file_exits_1_with_diagnostics_on_stderr(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("broken.mr").write_text('list "MQL"\npage action "p" on "x.com" { score 5 }\n')
    result = CliRunner().invoke(main, ["parse", "broken.mr"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("broken.mr:2:36: error[MR001]: unexpected '5'")
    assert "^" in result.stderr and "score +25" in result.stderr


def test_missing_path_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["parse", str(tmp_path / "nowhere.mr")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.stderr
    assert "Traceback" not in result.output


def test_file_that_is_not_utf8_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "latin1.mr"
    path.write_bytes('list "Caf\xe9"\n'.encode("latin-1"))
    result = CliRunner().invoke(main, ["parse", str(path)])
    assert result.exit_code == 2
    assert "not UTF-8" in result.stderr


def test_the_json_is_what_docs_language_md_says(tmp_path: Path, monkeypatch) -> None:
    """docs/language.md §12: spans are character offsets into the text as read (no BOM,
    `\\n` line ends), a name's span covers its quotes and its text has its escapes
    read; `mrules.ast.Program.model_validate` rebuilds the tree and `dump` gives the
    same JSON back, with spans and without."""
    from mrules import ast

    monkeypatch.chdir(tmp_path)
    Path("d.mr").write_bytes(
        '\ufefflist "Caf\u00e9 \\"1\\""\r\nform "D\u00e9mo"\r\n'.encode()
        + b'on submit of form "D\xc3\xa9mo" { add to list "Caf\xc3\xa9 \\"1\\"" }\r\n'
    )
    text = 'list "Caf\u00e9 \\"1\\""\nform "D\u00e9mo"\non submit of form "D\u00e9mo" {'
    for spans in (True, False):
        args = ["parse", "d.mr"] + ([] if spans else ["--no-spans"])
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert ast.dump(ast.Program.model_validate(data), spans=spans) == data
        assert [f["path"] for f in data["files"]] == ["d.mr"]
    data = json.loads(CliRunner().invoke(main, ["parse", "d.mr"]).stdout)
    first, second, third = data["files"][0]["items"]
    name = first["name"]
    assert name["text"] == 'Caf\u00e9 "1"'
    assert text[slice(*name["span"])] == '"Caf\u00e9 \\"1\\""'
    assert text[slice(*second["span"])] == 'form "D\u00e9mo"'
    assert text[third["span"][0] :].startswith("on submit of form")
